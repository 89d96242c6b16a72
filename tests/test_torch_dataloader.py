"""A PyTorch DataLoader as the input of fit/evaluate/predict (skipped where torch is missing): its batches of
tensors (x, (x,), (x, y), (x, y, sample_weight), dicts of inputs) give what the same arrays give batch by batch;
steps_per_epoch continues a pass across epochs; what Keras refuses beside a DataLoader is refused; and gpu_dl
imports no torch of its own."""
import subprocess
import sys

import numpy
import pytest

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset  # noqa: E402

from foreign_dataset_cases import arrays, classifier, quiet_fit  # noqa: E402
import gpu_dl  # noqa: E402
from gpu_dl import layers  # noqa: E402


def tensors(*parts):
    return [torch.from_numpy(numpy.asarray(p)) for p in parts]


@pytest.mark.parametrize("with_weights", [False, True], ids=["x_y", "x_y_sample_weight"])
def test_fit_evaluate_predict_equal_the_same_arrays(with_weights):
    x, y, sw = arrays()
    parts = (x, y, sw) if with_weights else (x, y)
    loader = DataLoader(TensorDataset(*tensors(*parts)), batch_size=5, shuffle=False)
    ours, expected = classifier(), classifier()
    history = quiet_fit(ours, loader, epochs=2)
    assert history == expected.fit(x, y, sample_weight=sw if with_weights else None, batch_size=5, epochs=2,
                                   shuffle=False, verbose=0).history
    for a, b in zip(ours.get_weights(), expected.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    assert ours.evaluate(loader, verbose=0) == expected.evaluate(x, y, sample_weight=sw if with_weights else None,
                                                                batch_size=5, verbose=0)
    only_x = DataLoader(TensorDataset(*tensors(x)), batch_size=5)      # batches [x]
    numpy.testing.assert_array_equal(ours.predict(only_x, verbose=0), expected.predict(x, verbose=0))


class Pairs(Dataset):
    """Items ({"a": row, "b": row}, label) of float64 NumPy rows: the default collate makes a dict of tensors."""

    def __init__(self, a, b, labels):
        self.a, self.b, self.labels = a, b, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"a": self.a[i], "b": self.b[i]}, self.labels[i]


class Rows(Dataset):
    """Items that are single tensors: a batch is one tensor, the inputs."""

    def __init__(self, x):
        self.x = torch.from_numpy(x)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


def test_dict_inputs_and_bare_tensor_batches():
    rng = numpy.random.default_rng(2)
    a, b, y = rng.standard_normal((11, 3)), rng.standard_normal((11, 2)), rng.standard_normal((11, 1))
    first, second = gpu_dl.Input((3,), name="a"), gpu_dl.Input((2,), name="b")
    model = gpu_dl.Model([first, second], layers.Dense(1)(layers.Concatenate()([first, second])))
    model.compile("sgd", "mse")
    loader = DataLoader(Pairs(a, b, y), batch_size=4)
    expected = model.evaluate([a, b], y, batch_size=4, verbose=0)
    assert model.evaluate(loader, verbose=0) == pytest.approx(expected, rel=1e-6)
    numpy.testing.assert_allclose(model.predict(DataLoader(Pairs(a, b, y), batch_size=4), verbose=0),
                                  model.predict([a, b], verbose=0), rtol=1e-6)
    x = rng.standard_normal((9, 4)).astype("float32")
    net = classifier()
    numpy.testing.assert_array_equal(net.predict(DataLoader(Rows(x), batch_size=4), verbose=0),
                                     net.predict(x, verbose=0))


class Stream(IterableDataset):
    """An iterable dataset without a length: a pass ends when its iterator does."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __iter__(self):
        return iter(zip(torch.from_numpy(self.x), torch.from_numpy(self.y)))


class Counter(gpu_dl.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.steps = getattr(self, "steps", []) + [0]

    def on_train_batch_end(self, batch, logs=None):
        self.steps[-1] += 1


def test_steps_per_epoch_continues_the_pass_and_starts_a_new_one_where_it_ends():
    x, y, _ = arrays(n=23)
    loader = DataLoader(TensorDataset(*tensors(x, y)), batch_size=5)      # 5 batches a pass
    counter = Counter()
    with pytest.warns(UserWarning, match="ran out of data"):
        quiet_fit(classifier(), loader, epochs=4, steps_per_epoch=2, callbacks=[counter])
    assert counter.steps == [2, 2, 1, 2]        # the first pass ends in the third epoch; the fourth starts anew
    counter = Counter()
    quiet_fit(classifier(), loader, epochs=2, callbacks=[counter])
    assert counter.steps == [5, 5]
    # Without a length a pass ends with the loader; steps_per_epoch takes batches of the pass under way.
    unsized = DataLoader(Stream(x, y), batch_size=5)
    counter = Counter()
    history = quiet_fit(classifier(), unsized, epochs=2, callbacks=[counter])
    assert counter.steps == [5, 5] and len(history["loss"]) == 2
    counter = Counter()
    with pytest.warns(UserWarning, match="ran out of data"):
        quiet_fit(classifier(), unsized, epochs=3, steps_per_epoch=3, callbacks=[counter])
    assert counter.steps == [3, 2, 3]
    # A DataLoader as validation data is run afresh at each validation.
    history = quiet_fit(classifier(), loader, epochs=2, validation_data=loader)
    assert history["val_loss"][0] != history["val_loss"][1]


def test_what_keras_refuses_beside_a_dataloader_is_refused():
    x, y, sw = arrays()
    loader = DataLoader(TensorDataset(*tensors(x, y)), batch_size=5)
    model = classifier()
    with pytest.raises(ValueError, match="When providing `x` as a torch DataLoader, `y` should not be passed"):
        model.fit(loader, y, verbose=0)
    with pytest.raises(ValueError, match="`sample_weight` should not be passed"):
        model.evaluate(loader, sample_weight=sw, verbose=0)
    with pytest.raises(ValueError, match="`class_weight` is not supported for torch DataLoader"):
        model.fit(loader, class_weight={0: 1.0, 1: 2.0, 2: 1.0}, verbose=0)
    with pytest.warns(UserWarning, match="shuffle=True.*torch DataLoader"):
        model.fit(loader, epochs=1, verbose=0)
    with pytest.raises(TypeError, match=r"`x` is a torch Dataset.*DataLoader\(dataset"):
        model.fit(TensorDataset(*tensors(x, y)), verbose=0)
    with pytest.raises(ValueError, match="0 batches"):
        model.predict(DataLoader(TensorDataset(*tensors(x[:0])), batch_size=5), verbose=0)
    bad = DataLoader(TensorDataset(*tensors(x[:, :3], y)), batch_size=5)
    with pytest.raises(ValueError, match="Batch 0 of `x`: .*expects `x` of shape \\(None, 4\\)"):
        model.evaluate(bad, verbose=0)


def test_tensors_that_need_gradients_and_float64_tensors_are_taken():
    x, y, _ = arrays()
    features = torch.from_numpy(x.astype("float64")).requires_grad_(True)
    loader = DataLoader(TensorDataset(features, torch.from_numpy(y)), batch_size=6)
    model = classifier()
    assert model.evaluate(loader, verbose=0) == pytest.approx(model.evaluate(x, y, batch_size=6, verbose=0),
                                                              rel=1e-6)


def test_gpu_dl_imports_no_torch():
    code = ("import sys, numpy, gpu_dl\n"
            "m = gpu_dl.Sequential([gpu_dl.Input((2,)), gpu_dl.layers.Dense(1)])\n"
            "m.compile('sgd', 'mse')\n"
            "m.fit(numpy.ones((4, 2)), numpy.ones((4, 1)), verbose=0)\n"
            "m.evaluate((numpy.ones((2, 2)), numpy.ones((2, 1))) for _ in range(2))\n"
            "assert 'torch' not in sys.modules, sorted(k for k in sys.modules if 'torch' in k)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
