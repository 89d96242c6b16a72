"""Sample weights of one weight per step, shape (N, T), for models whose loss gives a value per step (a sequence
output (N, T, C): TimeDistributed Dense, a recurrent layer with return_sequences=True), as Keras 3 weighs them:
fit's fused step (the fused softmax + cross-entropy too, one row weight per step), evaluate, validation data with
weights, PyDatasets and generators yielding (x, y, sw), masks of Embedding(mask_zero=True), the overridable steps,
and the weighted metrics. class_weight, which gives one weight per sample, is refused for per-step labels, as
Keras refuses it. Keras 3 (torch backend) is the oracle where it is installed."""
import os

import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers
from gpu_dl.models import Sequential

N, T, F, C = 6, 5, 3, 4


def _data(rng, n=N):
    return (rng.standard_normal((n, T, F)).astype("float32"), rng.integers(0, C, (n, T)),
            rng.random((n, T)).astype("float32"))


def _softmax(z):
    e = numpy.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_per_step_weights_weigh_the_fused_cross_entropy_and_its_gradient(xp):
    rng = numpy.random.default_rng(0)
    x, labels, sw = _data(rng)
    backend.set_random_seed(0)
    model = Sequential([layers.Input((T, F)), layers.TimeDistributed(layers.Dense(C, activation="softmax"))])
    model.compile(optimizer=gpu_dl.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
    kernel, bias = [w.astype("float64") for w in model.get_weights()]
    probs = _softmax(x.astype("float64") @ kernel + bias)
    onehot = numpy.eye(C)[labels]
    nll = -numpy.log((probs * onehot).sum(axis=-1))
    expected = (sw * nll).sum() / (N * T)
    dlogits = (probs - onehot) * sw[..., None] / (N * T)
    assert model.train_on_batch(x, labels, sample_weight=sw) == pytest.approx(expected, rel=1e-5)
    assert model._fused_softmax
    new_kernel, new_bias = model.get_weights()
    numpy.testing.assert_allclose(new_kernel, kernel - 0.5 * numpy.einsum("ntf,ntc->fc", x, dlogits), rtol=1e-5,
                                  atol=1e-6)
    numpy.testing.assert_allclose(new_bias, bias - 0.5 * dlogits.sum(axis=(0, 1)), rtol=1e-5, atol=1e-6)
    # a weight of zero leaves a step out: the same as its label not counting
    zero = sw.copy()
    zero[:, 2] = 0
    assert model.evaluate(x, labels, sample_weight=zero, verbose=0) == pytest.approx(
        model.evaluate(x, labels, sample_weight=zero[..., None], verbose=0), rel=1e-6)


def test_per_step_weights_weigh_mse_of_a_sequence_output(xp):
    rng = numpy.random.default_rng(1)
    x, _, sw = _data(rng)
    y = rng.standard_normal((N, T, 2)).astype("float32")
    backend.set_random_seed(0)
    model = Sequential([layers.Input((T, F)), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse", weighted_metrics=["mae"])
    kernel, bias = model.get_weights()
    out = x @ kernel + bias
    logs = model.evaluate(x, y, sample_weight=sw, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx((sw * ((out - y) ** 2).mean(axis=-1)).sum() / (N * T), rel=1e-5)
    assert logs["mae"] == pytest.approx((sw * numpy.abs(out - y).mean(axis=-1)).sum() / sw.sum(), rel=1e-5)


def test_weights_that_do_not_fit_the_loss_values_are_refused(on_cpu):
    rng = numpy.random.default_rng(2)
    x, labels, sw = _data(rng)
    model = Sequential([layers.Input((T, F)), layers.Dense(C, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"one weight per sample, shape \(6,\), but the loss gives a value per "
                                         r"step, shape \(6, 5\)"):
        model.fit(x, labels, sample_weight=sw[:, 0], verbose=0)
    with pytest.raises(ValueError, match=r"`sample_weight` must have shape \(6,\), one weight per sample, or "
                                         r"\(6, 5\)"):
        model.fit(x, labels, sample_weight=sw[:, :3], verbose=0)
    with pytest.raises(ValueError, match=r"`validation_data\[2\]`|sample_weight"):
        model.fit(x, labels, validation_data=(x, labels, sw[:, :2]), verbose=0)
    flat = Sequential([layers.Input((F,)), layers.Dense(C, activation="softmax")])
    flat.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=r"must have shape \(6,\), one weight per sample, got \(6, 5\) \(the loss "
                                         r"gives one value per sample"):
        flat.fit(x[:, 0], labels[:, 0], sample_weight=sw, verbose=0)


@pytest.mark.parametrize("one_hot", [False, True])
def test_class_weight_is_refused_for_per_step_labels(on_cpu, one_hot):
    rng = numpy.random.default_rng(3)
    x, labels, _ = _data(rng)
    model = Sequential([layers.Input((T, F)), layers.Dense(C, activation="softmax")])
    model.compile(optimizer="sgd", loss="categorical_crossentropy" if one_hot else "sparse_categorical_crossentropy")
    y = numpy.eye(C, dtype="float32")[labels] if one_hot else labels
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(ValueError, match="`class_weight` gives one weight per sample, but the targets of shape"):
        model.fit(x, y, class_weight={0: 1.0, 1: 2.0}, verbose=0)
    for a, b in zip(before, model.get_weights()):
        numpy.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ Keras 3 as the oracle
@pytest.fixture
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def _same(ours, theirs):
    assert sorted(ours) == sorted(theirs)
    for key in theirs:
        numpy.testing.assert_allclose(ours[key], theirs[key], rtol=5e-5, atol=1e-6, err_msg=key)


def _pair(keras, make, seed=0):
    ours, theirs = make(gpu_dl), make(keras)
    rng = numpy.random.default_rng(seed)
    weights = [0.5 * rng.standard_normal(w.shape).astype("float32") for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    return ours, theirs


def _same_weights(ours, theirs):
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def _time_distributed(lib):
    inputs = lib.Input((T, F))
    return lib.Model(inputs, lib.layers.TimeDistributed(lib.layers.Dense(C, activation="softmax"))(inputs))


def _recurrent(lib):
    inputs = lib.Input((T, F))
    hidden = lib.layers.SimpleRNN(3, return_sequences=True)(inputs)
    return lib.Model(inputs, lib.layers.Dense(2)(hidden))


def _masked(lib):
    inputs = lib.Input((T,), dtype="int32")
    hidden = lib.layers.Embedding(7, 3, mask_zero=True)(inputs)
    hidden = lib.layers.LSTM(4, return_sequences=True)(hidden)
    return lib.Model(inputs, lib.layers.Dense(C, activation="softmax")(hidden))


def _ids(rng, n=N):
    ids = rng.integers(1, 7, (n, T))
    ids[:, -2:] *= rng.integers(0, 2, (n, 1))       # padded tails
    return ids


@pytest.mark.parametrize("kind", ["time_distributed", "recurrent", "masked"])
def test_fit_and_evaluate_with_per_step_weights_as_keras(on_cpu, keras, kind):
    rng = numpy.random.default_rng(4)
    make = {"time_distributed": _time_distributed, "recurrent": _recurrent, "masked": _masked}[kind]
    ours, theirs = _pair(keras, make)
    x, labels, sw = _data(rng, 10)
    vx, vlabels, vsw = _data(rng, 7)
    if kind == "masked":
        x, vx = _ids(rng, 10), _ids(rng, 7)
    if kind == "recurrent":
        labels, vlabels = rng.standard_normal((10, T, 2)).astype("float32"), rng.standard_normal((7, T, 2))
        loss, metrics = "mse", ["mae"]
    else:
        loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
    # Adam's first steps move a weight by the learning rate whatever its gradient's size: on the gradients of
    # padded steps (zero in one library, rounding noise in the other) SGD compares the libraries, Adam cannot.
    optimizer = "sgd" if kind == "masked" else "adam"
    # With a mask, Keras's torch backend scales the batch's sample weights in place as its loss weighs the padded
    # steps out (by the batch's steps over its unpadded steps), and its weighted metrics then read them so: they
    # agree with gpu_dl's (and Keras's on its other backends) only over one batch.
    batch = 10 if kind == "masked" else 4
    for m in (ours, theirs):
        m.compile(optimizer=optimizer, loss=loss, metrics=metrics, weighted_metrics=metrics)
    histories = [m.fit(x, labels, sample_weight=sw, batch_size=batch, epochs=2, shuffle=False, verbose=0,
                       validation_data=(vx, vlabels, vsw)).history for m in (ours, theirs)]
    _same(*histories)
    _same_weights(ours, theirs)
    _same(*[m.evaluate(vx, vlabels, sample_weight=vsw, batch_size=7 if kind == "masked" else 3, verbose=0,
                       return_dict=True) for m in (ours, theirs)])
    if kind == "masked":    # the loss over batches of several sizes, without the weighted metrics
        for m in (ours, theirs):
            m.compile(optimizer="sgd", loss=loss, metrics=metrics)
        _same(*[m.fit(x, labels, sample_weight=sw, batch_size=4, epochs=2, shuffle=False, verbose=0,
                      validation_data=(vx, vlabels, vsw)).history for m in (ours, theirs)])
        _same_weights(ours, theirs)


def test_generators_and_py_datasets_yielding_per_step_weights_as_keras(on_cpu, keras):
    rng = numpy.random.default_rng(5)
    x, labels, sw = _data(rng, 12)

    def batches():
        for start in range(0, 12, 4):
            yield x[start:start + 4], labels[start:start + 4], sw[start:start + 4]

    def dataset(lib):
        class Batches(lib.utils.PyDataset):
            def __len__(self):
                return 3

            def __getitem__(self, i):
                return x[4 * i:4 * i + 4], labels[4 * i:4 * i + 4], sw[4 * i:4 * i + 4]
        return Batches()
    ours, theirs = _pair(keras, _time_distributed)
    for m in (ours, theirs):
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", weighted_metrics=["accuracy"])
    _same(*[m.fit(batches(), epochs=1, steps_per_epoch=3, verbose=0).history for m in (ours, theirs)])
    _same(*[m.fit(dataset(lib), epochs=2, shuffle=False, verbose=0, validation_data=dataset(lib)).history
            for m, lib in ((ours, gpu_dl), (theirs, keras))])
    _same(*[m.fit(dataset(lib), epochs=1, shuffle=False, verbose=0, validation_data=batches(),
                  validation_steps=3).history for m, lib in ((ours, gpu_dl), (theirs, keras))])
    _same_weights(ours, theirs)
    _same(*[m.evaluate(dataset(lib), verbose=0, return_dict=True) for m, lib in ((ours, gpu_dl), (theirs, keras))])


def test_a_train_step_of_its_own_gets_per_step_weights_as_keras(on_cpu, keras):
    rng = numpy.random.default_rng(6)
    x, labels, sw = _data(rng, 8)

    def make(lib):
        class Steps(lib.Model):
            def train_step(self, data):
                assert tuple(data[2].shape) == (4, T)
                return super().train_step(data)
        inputs = lib.Input((T, F))
        return Steps(inputs, lib.layers.Dense(C, activation="softmax")(inputs))
    ours, theirs = _pair(keras, make)
    for m in (ours, theirs):
        m.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    _same(*[m.fit(x, labels, sample_weight=sw, batch_size=4, epochs=2, shuffle=False, verbose=0).history
            for m in (ours, theirs)])
    _same_weights(ours, theirs)


def test_per_output_weights_of_a_sequence_and_a_flat_output_as_keras(on_cpu, keras):
    rng = numpy.random.default_rng(7)
    x, labels, sw = _data(rng, 8)
    flat = rng.standard_normal((8, 2)).astype("float32")
    flat_sw = rng.random(8).astype("float32")

    def make(lib):
        inputs = lib.Input((T, F))
        steps = lib.layers.Dense(C, activation="softmax", name="steps")(inputs)
        pooled = lib.layers.Dense(2, name="pooled")(lib.layers.GlobalAveragePooling1D()(inputs))
        return lib.Model(inputs, {"steps": steps, "pooled": pooled})
    ours, theirs = _pair(keras, make)
    for m in (ours, theirs):
        m.compile(optimizer="adam", loss={"steps": "sparse_categorical_crossentropy", "pooled": "mse"})
    _same(*[m.fit(x, {"steps": labels, "pooled": flat}, sample_weight={"steps": sw, "pooled": flat_sw},
                  batch_size=4, epochs=2, shuffle=False, verbose=0).history for m in (ours, theirs)])
    _same_weights(ours, theirs)
