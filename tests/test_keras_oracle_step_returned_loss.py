"""A hand-written train_step/test_step that returns the loss its code computed (the loss value itself, a NumPy
scalar or a 0-d array) against Keras 3 itself: each batch's hooks get the step's value; the epoch's logs and
evaluate's result are the compiled metrics' results where the step's keys are theirs (Keras's
``_get_metrics_result_or_logs``: its loss tracker was not updated, so 0.0), else the last batch's logs; the
``*_on_batch`` methods return the step's logs."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402


@pytest.fixture(autouse=True)
def cpu(on_cpu):
    """gpu_dl on NumPy, as Keras runs here on the CPU."""


def _as_form(lib, loss, form):
    if form == "loss value":
        return loss
    value = float(keras.ops.convert_to_numpy(loss)) if lib is keras else float(loss)
    return numpy.float32(value) if form == "numpy scalar" else numpy.asarray(value)


def _model(lib, form, key):
    class Returning(lib.Model):
        def train_step(self, data):
            x, y = data[0], data[1]
            return {key: _as_form(lib, self.compute_loss(x, y, self(x, training=True)), form)}

        def test_step(self, data):
            x, y = data[0], data[1]
            return {key: _as_form(lib, self.compute_loss(x, y, self(x, training=False)), form)}

    inputs = lib.Input((3,))
    model = Returning(inputs, lib.layers.Dense(1, kernel_initializer="ones")(inputs))
    model.compile(optimizer="sgd", loss="mse")
    return model


def _run(lib, form, key, x, y):
    model = _model(lib, form, key)
    seen = []

    class Batches(lib.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(("train", dict(logs)))

        def on_test_batch_end(self, batch, logs=None):
            seen.append(("test", dict(logs)))

    history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0, callbacks=[Batches()])
    evaluated = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True, callbacks=[Batches()])
    return (seen, history.history, evaluated, model.train_on_batch(x, y, return_dict=True),
            model.test_on_batch(x, y, return_dict=True), model.test_on_batch(x, y))


@pytest.mark.parametrize("form", ["loss value", "numpy scalar", "0-d array"])
@pytest.mark.parametrize("key", ["loss", "total"])
def test_the_logs_of_a_step_that_returns_its_loss_are_keras_s(rng, form, key):
    x = rng.standard_normal((12, 3)).astype("float32")
    y = rng.standard_normal((12, 1)).astype("float32")
    ours, theirs = _run(gpu_dl, form, key, x, y), _run(keras, form, key, x, y)
    (seen, history, evaluated, trained, tested, listed) = ours
    # the batches' losses, by hand: the weights never change (the steps apply no gradient)
    want = [float(numpy.mean((x[i:i + 4].sum(axis=1, keepdims=True) - y[i:i + 4]) ** 2)) for i in (0, 4, 8)]
    assert [kind for kind, _ in seen] == ["train"] * 6 + ["test"] * 3
    numpy.testing.assert_allclose([logs[key] for _, logs in seen], want * 3, rtol=1e-5)
    # a step whose keys are the compiled metrics' ("loss") logs the untouched loss tracker at the epoch's end
    epoch = 0.0 if key == "loss" else want[-1]
    assert list(history) == [key] and history[key] == pytest.approx([epoch, epoch], rel=1e-5)
    assert evaluated == {key: pytest.approx(epoch, rel=1e-5)}
    assert trained == tested == {key: pytest.approx(float(numpy.mean((x.sum(axis=1, keepdims=True) - y) ** 2)),
                                                    rel=1e-5)}
    assert listed == pytest.approx(trained[key], rel=1e-5)
    # and Keras logs the same
    assert [(kind, list(logs)) for kind, logs in seen] == [(kind, list(logs)) for kind, logs in theirs[0]]
    numpy.testing.assert_allclose([logs[key] for _, logs in theirs[0]], want * 3, rtol=1e-5)
    assert theirs[1] == {key: pytest.approx(history[key], rel=1e-5, abs=1e-7)}
    assert theirs[2] == {key: pytest.approx(evaluated[key], rel=1e-5, abs=1e-7)}
    assert theirs[3] == {key: pytest.approx(trained[key], rel=1e-5)}
    assert theirs[4] == {key: pytest.approx(tested[key], rel=1e-5)}
    assert float(theirs[5]) == pytest.approx(listed, rel=1e-5)
