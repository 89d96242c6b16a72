"""A PyTorch DataLoader given to fit/evaluate/predict against Keras 3 itself (where Keras and torch are installed):
the same DataLoader, model and weights give the same history (steps_per_epoch and validation data included),
weights, evaluation and predictions in both libraries."""
import os
import warnings

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset  # noqa: E402

import gpu_dl  # noqa: E402


def classifier(lib):
    return lib.Sequential([lib.Input((4,)), lib.layers.Dense(6, activation="tanh"),
                           lib.layers.Dense(3, activation="softmax")])


def pair(make):
    theirs = make(keras)
    ours = make(gpu_dl)
    ours.set_weights(theirs.get_weights())
    for lib, model in ((gpu_dl, ours), (keras, theirs)):
        model.compile(optimizer=lib.optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    return ours, theirs


def fit_both(models, loader, **kwargs):
    histories = []
    for model in models:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Your input ran out of data")
            histories.append(model.fit(loader, verbose=0, shuffle=False, **kwargs).history)
    assert set(histories[0]) == set(histories[1])
    for key in histories[0]:
        numpy.testing.assert_allclose(histories[0][key], histories[1][key], rtol=1e-5, atol=1e-6, err_msg=key)
    for a, b in zip(*(m.get_weights() for m in models)):
        numpy.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def data(n=23, seed=0):
    rng = numpy.random.default_rng(seed)
    return [torch.from_numpy(a) for a in (rng.standard_normal((n, 4)).astype("float32"), rng.integers(0, 3, n),
                                          rng.uniform(0.5, 2.0, n).astype("float32"))]


@pytest.mark.parametrize("parts", [2, 3], ids=["x_y", "x_y_sample_weight"])
def test_fit_evaluate_predict_on_a_dataloader_as_keras(parts):
    x, y, sw = data()
    loader = DataLoader(TensorDataset(*(x, y, sw)[:parts]), batch_size=5)
    models = pair(classifier)
    fit_both(models, loader, epochs=2, validation_data=DataLoader(TensorDataset(x[:9], y[:9]), batch_size=4))
    numpy.testing.assert_allclose(*(m.evaluate(loader, verbose=0) for m in models), rtol=1e-5, atol=1e-6)
    only_x = DataLoader(TensorDataset(x), batch_size=7)
    numpy.testing.assert_allclose(*(m.predict(only_x, verbose=0) for m in models), rtol=1e-5, atol=1e-6)


def test_steps_per_epoch_walks_the_passes_as_keras():
    x, y, _ = data()
    loader = DataLoader(TensorDataset(x, y), batch_size=5)        # 5 batches: epochs of 2, 2, 1, 2, 2 batches
    fit_both(pair(classifier), loader, epochs=5, steps_per_epoch=2)


class Pairs(Dataset):
    def __init__(self, a, b, labels):
        self.a, self.b, self.labels = a, b, labels

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"a": self.a[i], "b": self.b[i]}, self.labels[i]


def test_dict_inputs_as_keras():
    def two_inputs(lib):
        first, second = lib.Input((3,), name="a"), lib.Input((1,), name="b")
        hidden = lib.layers.Concatenate()([first, second])
        return lib.Model({"a": first, "b": second}, lib.layers.Dense(3, activation="softmax")(hidden))
    rng = numpy.random.default_rng(4)
    a, b = rng.standard_normal((13, 3)).astype("float32"), rng.standard_normal((13, 1)).astype("float32")
    loader = DataLoader(Pairs(a, b, rng.integers(0, 3, 13)), batch_size=4)
    models = pair(two_inputs)
    fit_both(models, loader, epochs=2)
    numpy.testing.assert_allclose(*(m.predict(loader, verbose=0) for m in models), rtol=1e-5, atol=1e-6)


class _Unsized(IterableDataset):
    """A dataset without a length: 6 batches (x, y) of 4 rows whose targets are the batch's index."""

    def __init__(self, n):
        self.n = n

    def __iter__(self):
        for i in range(self.n):
            yield numpy.zeros((4, 3), "float32"), numpy.full((4, 1), i, "float32")


@pytest.mark.parametrize("sized", [True, False], ids=["len", "no_len"])
@pytest.mark.parametrize("steps, epochs", [(2, 3), (9, 2), (None, 2)])
def test_validation_restarts_the_loader_and_ran_out_warnings_as_keras(sized, steps, epochs):
    """Each validation is a new pass of the loader; a loader of unknown length warns whenever it runs out, as
    Keras's EpochIterator does (one of known length only where validation_steps outruns it)."""
    def loader():
        if sized:
            x = torch.zeros((24, 3))
            y = torch.arange(6, dtype=torch.float32).repeat_interleave(4)[:, None]
            return DataLoader(TensorDataset(x, y), batch_size=4)
        return DataLoader(_Unsized(6), batch_size=None)
    results = []
    for lib in (gpu_dl, keras):
        inputs = lib.Input((3,))
        model = lib.Model(inputs, lib.layers.Dense(1, kernel_initializer="zeros")(inputs))
        model.compile(optimizer=lib.optimizers.SGD(learning_rate=0.0), loss="mse")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            history = model.fit(numpy.zeros((4, 3), "float32"), numpy.zeros((4, 1), "float32"), epochs=epochs,
                                verbose=0, validation_data=loader(), validation_steps=steps)
        results.append((history.history["val_loss"], [str(w.message) for w in caught if "ran out" in str(w.message)]))
    (ours, our_warnings), (theirs, their_warnings) = results
    numpy.testing.assert_allclose(ours, theirs, rtol=1e-6)
    assert our_warnings == their_warnings
    assert len(their_warnings) == (0 if steps == 2 or (sized and steps is None) else epochs)
