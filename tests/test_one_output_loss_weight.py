"""compile(loss_weights=...) for a model of one output, as Keras 3 takes it: a float (or a list or dict of one
number) multiplies the one loss, in what is logged as `loss` and in its gradient, on the fused step (softmax fused
into the cross-entropy included) and on the overridable steps (compute_loss), and is kept in a .keras file's
compile config. Keras 3 (torch backend) is the oracle where it is installed."""
import json
import os
import zipfile

import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers
from gpu_dl.models import Sequential, load_model


def _dense(units=2, activation=None, seed=0):
    backend.set_random_seed(seed)
    return Sequential([layers.Input((3,)), layers.Dense(units, activation=activation, name="out")])


class _OwnMetrics(Sequential):
    """Overrides compute_metrics only: fit runs the overridable train_step, whose loss is compute_loss's."""

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, y, y_pred, sample_weight)


@pytest.mark.parametrize("given", [0.5, [0.5], (0.5,), {"out": 0.5}, {"anything": 0.5}])
def test_the_weight_scales_the_logged_loss_and_the_step(xp, given):
    rng = numpy.random.default_rng(0)
    x, y = rng.standard_normal((6, 3)).astype("float32"), rng.standard_normal((6, 2)).astype("float32")
    sw = rng.random(6).astype("float32")
    weighted, plain = _dense(), _dense()
    weighted.compile(optimizer=gpu_dl.optimizers.SGD(0.1), loss="mse", loss_weights=given)
    # SGD: a loss times 0.5 steps as the plain loss does at half the learning rate
    plain.compile(optimizer=gpu_dl.optimizers.SGD(0.05), loss="mse")
    kernel, bias = weighted.get_weights()
    expected = 0.5 * ((((x @ kernel + bias) - y) ** 2).mean(axis=-1) * sw).mean()
    assert weighted.train_on_batch(x, y, sample_weight=sw) == pytest.approx(expected, rel=1e-5)
    assert plain.train_on_batch(x, y, sample_weight=sw) == pytest.approx(2 * expected, rel=1e-5)
    for a, b in zip(weighted.get_weights(), plain.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert weighted.evaluate(x, y, sample_weight=sw, verbose=0) == pytest.approx(
        0.5 * plain.evaluate(x, y, sample_weight=sw, verbose=0), rel=1e-5)


@pytest.mark.parametrize("sample_weighted", [False, True])
def test_the_fused_softmax_cross_entropy_takes_the_weight(xp, sample_weighted):
    rng = numpy.random.default_rng(1)
    x, labels = rng.standard_normal((7, 3)).astype("float32"), rng.integers(0, 4, 7)
    sw = rng.random(7).astype("float32") if sample_weighted else None
    weighted, plain = _dense(4, "softmax"), _dense(4, "softmax")
    weighted.compile(optimizer=gpu_dl.optimizers.SGD(0.3), loss="sparse_categorical_crossentropy",
                     loss_weights=2.0)
    plain.compile(optimizer=gpu_dl.optimizers.SGD(0.6), loss="sparse_categorical_crossentropy")
    value = weighted.train_on_batch(x, labels, sample_weight=sw)
    assert weighted._fused_softmax
    assert value == pytest.approx(2.0 * plain.train_on_batch(x, labels, sample_weight=sw), rel=1e-5)
    for a, b in zip(weighted.get_weights(), plain.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_compute_loss_takes_the_weight(on_cpu):
    rng = numpy.random.default_rng(2)
    x, y = rng.standard_normal((5, 3)).astype("float32"), rng.standard_normal((5, 2)).astype("float32")
    backend.set_random_seed(0)
    model = _OwnMetrics([layers.Input((3,)), layers.Dense(2)])
    model.compile(optimizer=gpu_dl.optimizers.SGD(0.1), loss="mse", loss_weights=0.25)
    plain = _dense()
    plain.set_weights(model.get_weights())
    plain.compile(optimizer=gpu_dl.optimizers.SGD(0.025), loss="mse")
    logs = model.train_on_batch(x, y, return_dict=True)
    assert logs["loss"] == pytest.approx(0.25 * plain.train_on_batch(x, y), rel=1e-5)
    for a, b in zip(model.get_weights(), plain.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    value = model.compute_loss(x, y, model(x), training=False)
    kernel, bias = model.get_weights()
    assert float(value) == pytest.approx(0.25 * (((x @ kernel + bias) - y) ** 2).mean(), rel=1e-5)


def test_a_compile_without_a_loss_keeps_the_weight(on_cpu):
    model = _dense()
    model.compile(optimizer="sgd", loss="mse", loss_weights=0.5)
    model.compile(optimizer="adam")
    assert model._loss_weight == 0.5
    model.compile(optimizer="adam", loss="mse")
    assert model._loss_weight is None


@pytest.mark.parametrize("bad, message", [
    (2, "Expected `loss_weights` argument to be a float"),
    ("a", "Expected `loss_weights` argument to be a float"),
    ([0.5, 0.5], "`loss_weights` must match the number of losses, got 1 losses and 2 weights"),
    ({"a": 1.0, "b": 2.0}, "`loss_weights` must match the number of losses"),
    ([float("nan")], "must be a finite number"),
    (["x"], "must be a finite number"),
])
def test_bad_weights_are_refused(on_cpu, bad, message):
    model = _dense()
    with pytest.raises(ValueError, match=message):
        model.compile(optimizer="sgd", loss="mse", loss_weights=bad)
    assert not model.compiled


def test_the_weight_is_saved_and_loaded(on_cpu, tmp_path):
    model = _dense()
    model.compile(optimizer="sgd", loss="mse", loss_weights={"out": 0.5})
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        written = json.loads(archive.read("config.json"))
    assert written["compile_config"]["loss_weights"] == {"out": 0.5}
    loaded = load_model(tmp_path / "m.keras")
    assert loaded._loss_weight == 0.5
    x = numpy.ones((2, 3), "float32")
    assert loaded.evaluate(x, x[:, :2], verbose=0) == pytest.approx(model.evaluate(x, x[:, :2], verbose=0))


# ------------------------------------------------------------------ Keras 3 as the oracle
@pytest.fixture
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def _pair(keras, units, activation, rng):
    def make(lib):
        inputs = lib.Input((3,))
        return lib.Model(inputs, lib.layers.Dense(units, activation=activation, name="out")(inputs))
    ours, theirs = make(gpu_dl), make(keras)
    weights = [rng.standard_normal(w.shape).astype("float32") for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    return ours, theirs


def _same_history(ours, theirs):
    assert sorted(ours) == sorted(theirs)
    for key in theirs:
        numpy.testing.assert_allclose(ours[key], theirs[key], rtol=2e-5, atol=1e-6, err_msg=key)


CASES = [("mse", None, 0.5), ("mse", None, [0.5]), ("mse", None, {"out": 3.0}),
         ("sparse_categorical_crossentropy", "softmax", 0.5), ("categorical_crossentropy", "softmax", [2.0])]


@pytest.mark.parametrize("loss, activation, given", CASES, ids=[f"{c[0]}-{c[2]}" for c in CASES])
def test_fit_logs_and_weights_as_keras(on_cpu, keras, loss, activation, given):
    rng = numpy.random.default_rng(3)
    ours, theirs = _pair(keras, 4, activation, rng)
    x, vx = rng.standard_normal((10, 3)).astype("float32"), rng.standard_normal((6, 3)).astype("float32")
    if loss == "mse":
        y, vy = rng.standard_normal((10, 4)).astype("float32"), rng.standard_normal((6, 4)).astype("float32")
    elif loss.startswith("sparse"):
        y, vy = rng.integers(0, 4, 10), rng.integers(0, 4, 6)
    else:
        y, vy = numpy.eye(4, dtype="float32")[rng.integers(0, 4, 10)], numpy.eye(4, dtype="float32")[[0, 1, 2, 3, 0, 1]]
    sw = rng.random(10).astype("float32")
    for m in (ours, theirs):
        m.compile(optimizer="adam", loss=loss, loss_weights=given, metrics=["mae" if loss == "mse" else "accuracy"])
    histories = [m.fit(x, y, sample_weight=sw, batch_size=4, epochs=2, shuffle=False, verbose=0,
                       validation_data=(vx, vy)).history for m in (ours, theirs)]
    _same_history(*histories)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    assert ours.evaluate(x, y, verbose=0) == pytest.approx(theirs.evaluate(x, y, verbose=0), rel=2e-5)


def test_custom_step_logs_as_keras(on_cpu, keras):
    rng = numpy.random.default_rng(4)

    def make(lib):
        class Steps(lib.Model):
            def train_step(self, data):
                return super().train_step(data)
        inputs = lib.Input((3,))
        return Steps(inputs, lib.layers.Dense(2, name="out")(inputs))
    ours, theirs = make(gpu_dl), make(keras)
    theirs.set_weights(ours.get_weights())
    x, y = rng.standard_normal((8, 3)).astype("float32"), rng.standard_normal((8, 2)).astype("float32")
    for m in (ours, theirs):
        m.compile(optimizer="sgd", loss="mse", loss_weights=0.5)
    _same_history(*[m.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history for m in (ours, theirs)])
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("given", [0.5, [0.5], {"out": 0.5}])
def test_keras_files_carry_the_weight_both_ways(on_cpu, keras, tmp_path, given):
    rng = numpy.random.default_rng(5)
    ours, theirs = _pair(keras, 2, None, rng)
    x, y = rng.standard_normal((6, 3)).astype("float32"), rng.standard_normal((6, 2)).astype("float32")
    for m in (ours, theirs):
        m.compile(optimizer="sgd", loss="mse", loss_weights=given)
    ours.save(tmp_path / "g.keras")
    theirs.save(tmp_path / "k.keras")
    keras_reads = keras.models.load_model(tmp_path / "g.keras")
    we_read = load_model(tmp_path / "k.keras")
    expected = theirs.evaluate(x, y, verbose=0)
    assert keras_reads.evaluate(x, y, verbose=0) == pytest.approx(expected, rel=2e-5)
    assert we_read.evaluate(x, y, verbose=0) == pytest.approx(expected, rel=2e-5)
    assert keras_reads.get_compile_config()["loss_weights"] == theirs.get_compile_config()["loss_weights"]
