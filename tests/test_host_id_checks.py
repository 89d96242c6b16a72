"""Ids checked on the host: a model fed host arrays refuses ids its first id layers cannot map before any batch
runs (no weight changed, no callback called), streamed batches when they arrive and before their device copy, and
those layers then make no device read-back in the steps; direct calls, computed ids and device inputs keep the
device check."""
import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers
from gpu_dl.callbacks import Callback
from gpu_dl.layers import id_checks

IDS, DIM = 4, 10        # ids per sample, Embedding(input_dim=DIM)
EMBEDDING_ERROR = r"Embedding layer 'tokens' has input_dim=10: ids must lie in \[0, 9\], got ids from 0 to 10\."


class Recorder(Callback):
    """Records the name of every hook called."""

    def __init__(self):
        super().__init__()
        self.calls = []


for _hook in ("on_train_begin", "on_epoch_begin", "on_train_batch_begin", "on_train_batch_end", "on_epoch_end",
              "on_train_end", "on_test_begin", "on_test_batch_begin", "on_test_end", "on_predict_begin",
              "on_predict_batch_begin", "on_predict_end"):
    setattr(Recorder, _hook, lambda self, *args, _name=_hook: self.calls.append(_name))


@pytest.fixture
def read_backs(monkeypatch):
    """How many device read-backs the id layers made (each goes through ``id_checks.to_numpy``)."""
    count = [0]
    real = id_checks.to_numpy

    def counting(a):
        count[0] += 1
        return real(a)
    monkeypatch.setattr(id_checks, "to_numpy", counting)
    return count


def embedding_model(seed=0):
    backend.set_random_seed(seed)
    model = gpu_dl.Sequential([layers.Input((IDS,)), layers.Embedding(DIM, 3, name="tokens"), layers.Flatten(),
                               layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def data(n=12, seed=0):
    rng = numpy.random.default_rng(seed)
    return rng.integers(0, DIM, (n, IDS)), rng.integers(0, 2, n)


def assert_same_weights(before, after):
    assert len(before) == len(after)
    for b, a in zip(before, after):
        numpy.testing.assert_array_equal(b, a)


# ------------------------------------------------------------------ the host check is the layer's own
@pytest.mark.parametrize("make", [lambda: layers.Embedding(DIM, 2, name="tokens"),
                                  lambda: layers.CategoryEncoding(DIM, output_mode="one_hot", name="kinds"),
                                  lambda: layers.IntegerLookup(vocabulary=[3, 5, 9], mask_token=0, num_oov_indices=0,
                                                               name="lookup")],
                         ids=["Embedding", "CategoryEncoding", "IntegerLookup"])
def test_the_host_check_refuses_what_the_call_refuses_with_the_same_message(xp, make):
    layer = make()
    for ids in ([[3, 5], [9, 0]], [[-0.9, 9.9]], [[3.5, 10.0]], [[-1, 4]], [[0, 12]], [[3.0, 2.0 ** 40]]):
        ids = numpy.array(ids, dtype="float32" if isinstance(ids[0][0], float) else "int64")
        try:
            layer(xp.asarray(ids))
        except ValueError as exc:
            with pytest.raises(ValueError) as caught:
                layer.check_host_ids(ids)
            assert str(caught.value) == str(exc)
        else:
            layer.check_host_ids(ids)


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast")
@pytest.mark.parametrize("make", [lambda: layers.Embedding(DIM, 2), lambda: layers.CategoryEncoding(DIM),
                                  lambda: layers.IntegerLookup(vocabulary=[3, 5, 9], num_oov_indices=0)],
                         ids=["Embedding", "CategoryEncoding", "IntegerLookup"])
def test_floats_beyond_int64_are_refused_on_the_host(make):
    # Their cast to int64 has no defined value (x86 gives the smallest int64, a GPU saturates): refused either way.
    layer = make()
    for big in (1e30, -1e30):
        with pytest.raises(ValueError, match="ids must lie in|OOV values"):
            layer.check_host_ids(numpy.array([[3.0, big]], "float32"))


# ------------------------------------------------------------------ whole arrays: refused before anything runs
@pytest.mark.parametrize("where", ["x", "validation_data"])
def test_fit_refuses_an_id_in_the_last_batch_before_any_weight_or_callback(xp, where):
    model = embedding_model()
    x, y = data()
    bad = x.copy()
    bad[-1, 2] = DIM                        # last sample: the last of three batches of 4
    model.fit(x[:4], y[:4], batch_size=4, verbose=0)   # built, with optimizer slots: a partial run would show
    before = model.get_weights()
    recorder = Recorder()
    kwargs = dict(x=bad, y=y) if where == "x" else dict(x=x, y=y, validation_data=(bad, y))
    with pytest.raises(ValueError, match=EMBEDDING_ERROR):
        model.fit(**kwargs, batch_size=4, epochs=2, verbose=0, callbacks=[recorder])
    assert recorder.calls == []
    assert_same_weights(before, model.get_weights())


@pytest.mark.parametrize("method", ["evaluate", "predict", "train_on_batch", "test_on_batch", "predict_on_batch"])
def test_other_entry_points_refuse_bad_ids_before_running(xp, method):
    model = embedding_model()
    x, y = data()
    model.fit(x, y, batch_size=4, verbose=0)
    before = model.get_weights()
    x[-1, 0] = DIM
    recorder = Recorder()
    call = {"evaluate": lambda: model.evaluate(x, y, batch_size=4, verbose=0, callbacks=[recorder]),
            "predict": lambda: model.predict(x, batch_size=4, verbose=0, callbacks=[recorder]),
            "train_on_batch": lambda: model.train_on_batch(x, y),
            "test_on_batch": lambda: model.test_on_batch(x, y),
            "predict_on_batch": lambda: model.predict_on_batch(x)}[method]
    with pytest.raises(ValueError, match=EMBEDDING_ERROR):
        call()
    assert recorder.calls == []
    assert_same_weights(before, model.get_weights())


def test_float_inputs_are_checked_as_the_layer_truncates_them(xp):
    # A Sequential hands the Embedding float32 ids; the layer truncates them, as Keras casts: -0.9 and 9.9 name
    # rows 0 and 9, 10.0 names none. The host check must see the same ids.
    model = embedding_model()
    x, y = data(4)
    x = x.astype("float32")
    x[0, :2] = [-0.9, 9.9]
    model.fit(x, y, verbose=0)
    table = model.get_layer("tokens").get_weights()[0]
    out = model.layers[0](xp.asarray(x[:1]))
    numpy.testing.assert_array_equal(backend.to_numpy(out)[0, :2], table[[0, 9]])
    x[1, 3] = 10.0
    with pytest.raises(ValueError, match=EMBEDDING_ERROR):
        model.predict(x, verbose=0)


# ------------------------------------------------------------------ streamed batches: refused at the bad batch
@pytest.mark.parametrize("kind", ["generator", "PyDataset"])
def test_a_streamed_bad_batch_is_refused_on_the_host_after_the_batches_before_it(xp, read_backs, kind):
    """The batches before the bad one have trained (as they would in Keras, which cannot know the later batches);
    the bad one is refused on the host, before its device copy: the weights are those the two good batches
    give, and the layer never read ids back."""
    x, y = data()
    bad = x.copy()
    bad[9, 1] = DIM                          # in batch 2 of 3

    def batches(xs, count):
        if kind == "generator":
            return ((xs[i * 4:(i + 1) * 4], y[i * 4:(i + 1) * 4]) for i in range(count))

        class Batches(gpu_dl.utils.PyDataset):
            def __len__(self):
                return count

            def __getitem__(self, i):
                return xs[i * 4:(i + 1) * 4], y[i * 4:(i + 1) * 4]
        return Batches()

    reference = embedding_model()
    reference.fit(batches(x, 2), epochs=1, verbose=0, shuffle=False)
    model = embedding_model()
    recorder = Recorder()
    with pytest.raises(ValueError, match=r"Batch 2 of `x`: " + EMBEDDING_ERROR):
        model.fit(batches(bad, 3), epochs=1, verbose=0, shuffle=False, callbacks=[recorder])
    assert recorder.calls.count("on_train_batch_end") == 2 and recorder.calls[-1] == "on_train_batch_begin"
    for ours, theirs in zip(model.get_weights(), reference.get_weights()):
        numpy.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7)
    assert read_backs[0] == 0
    with pytest.raises(ValueError, match=r"Batch 2 of `x`: " + EMBEDDING_ERROR):
        model.predict(batches(bad, 3), verbose=0)
    assert read_backs[0] == 0


# ------------------------------------------------------------------ no read-back on the host-checked path
def test_host_checked_steps_make_no_device_read_back(xp, read_backs):
    model = embedding_model()
    x, y = data()
    model.fit(x, y, batch_size=4, epochs=2, validation_data=(x, y), verbose=0)
    model.evaluate(x, y, batch_size=4, verbose=0)
    model.predict(x, batch_size=4, verbose=0)
    model.train_on_batch(x, y)
    model.test_on_batch(x, y)
    model.predict_on_batch(x)
    model.fit(((x[i:i + 4], y[i:i + 4]) for i in range(0, 12, 4)), verbose=0, shuffle=False)
    assert read_backs[0] == 0
    # called directly, on an array the model did not check (a device array included), the check stays
    model(xp.asarray(x, dtype=xp.float32))
    assert read_backs[0] == 1
    embedding = model.get_layer("tokens")
    embedding(xp.asarray(x))
    assert read_backs[0] == 2
    x[0, 0] = -1
    with pytest.raises(ValueError, match=r"'tokens' has input_dim=10: .* got ids from -1 to 9\."):
        embedding(xp.asarray(x))
    with pytest.raises(ValueError, match=r"'tokens' has input_dim=10: .* got ids from -1 to 9\."):
        model(xp.asarray(x, dtype=xp.float32))


def test_computed_ids_keep_the_device_check(xp, read_backs):
    # IntegerLookup takes the input (checked on the host); the Embedding takes the indices it computes, which
    # only the device has: that Embedding checks them in each call.
    backend.set_random_seed(0)
    vocabulary = [12, 36, 1138, 42]
    model = gpu_dl.Sequential([layers.Input((IDS,)), layers.IntegerLookup(vocabulary=vocabulary, num_oov_indices=0,
                                                                           name="lookup"),
                               layers.Embedding(len(vocabulary), 3), layers.Flatten(), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    rng = numpy.random.default_rng(0)
    x, y = rng.choice(vocabulary, (8, IDS)), rng.standard_normal((8, 1))
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert read_backs[0] == 2                 # the Embedding's, one per step; none from the IntegerLookup
    before = model.get_weights()
    x[7, 3] = 7
    with pytest.raises(ValueError, match=r"IntegerLookup layer 'lookup': .* found OOV values \[7\]"):
        model.fit(x, y, batch_size=4, verbose=0)
    assert_same_weights(before, model.get_weights())


def test_functional_and_nested_models_check_the_layers_their_inputs_feed(xp, read_backs):
    backend.set_random_seed(0)
    a, b = gpu_dl.Input((IDS,), name="a"), gpu_dl.Input((2,), name="b")
    inner = gpu_dl.Sequential([layers.Input((IDS,)), layers.Embedding(DIM, 3, name="tokens"), layers.Flatten()])
    encoded = layers.CategoryEncoding(5, output_mode="one_hot", name="kinds")(b)
    joined = layers.Concatenate()([inner(a), layers.Flatten()(encoded)])
    model = gpu_dl.Model([a, b], layers.Dense(1)(joined))
    model.compile(optimizer="sgd", loss="mse")
    rng = numpy.random.default_rng(0)
    xa, xb, y = rng.integers(0, DIM, (8, IDS)), rng.integers(0, 5, (8, 2)), rng.standard_normal((8, 1))
    model.fit([xa, xb], y, batch_size=4, verbose=0)
    model.predict({"a": xa, "b": xb}, verbose=0)
    assert read_backs[0] == 0
    before = model.get_weights()
    xb[5, 1] = 5
    with pytest.raises(ValueError, match=r"CategoryEncoding layer 'kinds' has num_tokens=5: .* from 0 to 5\."):
        model.fit([xa, xb], y, batch_size=4, verbose=0)
    xb[5, 1], xa[6, 0] = 4, DIM
    with pytest.raises(ValueError, match=EMBEDDING_ERROR):
        model.evaluate([xa, xb], y, verbose=0)
    assert_same_weights(before, model.get_weights())


def test_a_mark_holds_for_one_array_inside_its_block_only(xp):
    layer = layers.Embedding(DIM, 2, name="tokens")
    checked, other = xp.asarray(numpy.array([[1, 2]])), xp.asarray(numpy.array([[1, DIM]]))
    with id_checks.marked([(layer, checked)]):
        assert id_checks.prechecked(layer, checked) and not id_checks.prechecked(layer, other)
        with pytest.raises(ValueError, match=r"'tokens' has input_dim=10: .* got ids from 1 to 10\."):
            layer(other)
    assert not id_checks.prechecked(layer, checked)
    with pytest.raises(ValueError, match="boom"), id_checks.marked([(layer, checked)]):
        raise ValueError("boom")
    assert not id_checks.prechecked(layer, checked)


def test_a_model_of_several_outputs_checks_its_ids_on_the_host_too(xp, read_backs):
    backend.set_random_seed(0)
    ids = layers.Input((IDS,))
    h = layers.Flatten()(layers.Embedding(DIM, 3, name="tokens")(ids))
    model = gpu_dl.Model(ids, [layers.Dense(2, activation="softmax", name="a")(h), layers.Dense(1, name="b")(h)])
    model.compile(optimizer="adam", loss=["sparse_categorical_crossentropy", "mse"])
    x, y = data()
    targets = [y, y.astype("float32")[:, None]]
    model.fit(x, targets, batch_size=4, epochs=1, verbose=0)
    assert read_backs[0] == 0
    before = model.get_weights()
    bad = x.copy()
    bad[-1, 0] = DIM
    with pytest.raises(ValueError, match=EMBEDDING_ERROR):
        model.fit(bad, targets, batch_size=4, epochs=1, verbose=0)
    assert_same_weights(before, model.get_weights())
