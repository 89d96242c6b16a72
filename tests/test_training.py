"""fit / evaluate / predict / train_on_batch, progress output, callbacks, History."""

import numpy
import pytest

from gpu_dl import backend, callbacks, layers, optimizers
from gpu_dl.models import Sequential
from toy_data import blobs, quiet



def classifier(seed=0):
    backend.set_random_seed(seed)
    model = Sequential([layers.Input((2,)), layers.Dense(16, activation="relu"), layers.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model



def test_fit_learns_and_history_records_each_epoch(xp):
    x, y = blobs(120)
    model = classifier()
    history, _ = quiet(model.fit, x, y, epochs=15, batch_size=16, validation_split=0.25, verbose=0)
    assert history.epoch == list(range(15))
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.history["loss"][-1] < 0.3 * history.history["loss"][0]
    assert history.history["val_accuracy"][-1] > 0.9
    loss, accuracy = model.evaluate(x, y, verbose=0)
    assert accuracy > 0.9
    probs = model.predict(x, verbose=0)
    assert isinstance(probs, numpy.ndarray) and probs.shape == (120, 3)
    numpy.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    assert (probs.argmax(1) == y).mean() == pytest.approx(accuracy, abs=1e-6)


def test_evaluate_loss_matches_loss_written_out():
    x, y = blobs(50)
    model = classifier()
    probs = model.predict(x, verbose=0).astype(numpy.float64)
    expected = -numpy.log(numpy.clip(probs[numpy.arange(50), y], 1e-7, 1 - 1e-7)).mean()
    loss, accuracy = model.evaluate(x, y, batch_size=7, verbose=0)
    assert loss == pytest.approx(expected, rel=1e-5)
    assert accuracy == pytest.approx((probs.argmax(1) == y).mean())
    assert model.evaluate(x, y, verbose=0, return_dict=True).keys() == {"loss", "accuracy"}


def test_one_sgd_step_equals_the_update_written_out():
    """A linear model with MSE: one train_on_batch is exactly w -= lr * dL/dw."""
    rng = numpy.random.default_rng(1)
    x = rng.standard_normal((7, 3))
    y = rng.standard_normal((7, 2))
    model = Sequential([layers.Input((3,)), layers.Dense(2, dtype="float64", bias_initializer="random_normal")])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.1), loss="mse")
    w, b = model.get_weights()
    err = x @ w + b - y
    expected_loss = (err ** 2).mean()
    grad_w = x.T @ (2 * err / err.size)
    grad_b = (2 * err / err.size).sum(0)
    loss = model.train_on_batch(x, y)
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    w2, b2 = model.get_weights()
    numpy.testing.assert_allclose(w2, w - 0.1 * grad_w, rtol=1e-12)
    numpy.testing.assert_allclose(b2, b - 0.1 * grad_b, rtol=1e-12)
    # the next call reports its own batch's loss, not a mean with the one before (Keras 3 resets)
    x2, y2 = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    assert model.train_on_batch(x2, y2) == pytest.approx(((x2 @ w2 + b2 - y2) ** 2).mean(), rel=1e-12)


def test_sample_weight_and_class_weight_scale_the_loss():
    x, y = blobs(30)
    model = classifier()
    plain = model.test_on_batch(x, y)[0]
    doubled = model.test_on_batch(x, y, sample_weight=numpy.full(30, 2.0))[0]
    assert doubled == pytest.approx(2 * plain, rel=1e-6)
    before = model.get_weights()
    model.train_on_batch(x, y, class_weight={0: 1.0, 1: 1.0, 2: 1.0})
    assert any((a != b).any() for a, b in zip(before, model.get_weights()))


def test_regularizers_add_to_loss_and_gradient():
    rng = numpy.random.default_rng(2)
    x = rng.standard_normal((5, 3))
    y = rng.standard_normal((5, 2))
    model = Sequential([layers.Input((3,)), layers.Dense(2, dtype="float64", kernel_regularizer="l2")])
    model.compile(optimizer=optimizers.SGD(learning_rate=0.5), loss="mse")
    w, b = model.get_weights()
    err = x @ w + b - y
    l2 = 0.01 * (w ** 2).sum()
    loss = model.train_on_batch(x, y)
    assert loss == pytest.approx((err ** 2).mean() + l2, rel=1e-12)
    grad_w = x.T @ (2 * err / err.size) + 2 * 0.01 * w
    numpy.testing.assert_allclose(model.get_weights()[0], w - 0.5 * grad_w, rtol=1e-12)


def test_evaluate_adds_regularization_penalties(xp):
    # Keras 3 adds the weight and activity penalties to the loss evaluate reports, as to the training loss;
    # the activity penalty is that of the evaluation's own (inference) forward pass, divided by the batch size.
    rng = numpy.random.default_rng(3)
    x = rng.standard_normal((6, 3))
    y = rng.standard_normal((6, 2))
    model = Sequential([layers.Input((3,)),
                        layers.Dense(4, dtype="float64", kernel_regularizer="l2", activity_regularizer="l1"),
                        layers.Dropout(0.5, dtype="float64"),
                        layers.Dense(2, dtype="float64")])
    model.compile(optimizer=optimizers.SGD(), loss="mse")
    w1, b1, w2, b2 = model.get_weights()
    hidden = x @ w1 + b1
    err = hidden @ w2 + b2 - y
    expected = (err ** 2).mean() + 0.01 * (w1 ** 2).sum() + 0.01 * numpy.abs(hidden).sum() / len(x)
    assert model.test_on_batch(x, y) == pytest.approx(expected, rel=1e-12)
    assert model.evaluate(x, y, batch_size=6, verbose=0) == pytest.approx(expected, rel=1e-12)
    # Batches of 4 and 2: each batch's penalty over its own batch size, averaged over samples as the loss is.
    parts = [slice(0, 4), slice(4, 6)]
    per_batch = [(err[p] ** 2).mean() + 0.01 * (w1 ** 2).sum() + 0.01 * numpy.abs(hidden[p]).sum() / len(x[p])
                 for p in parts]
    assert model.evaluate(x, y, batch_size=4, verbose=0) == pytest.approx((4 * per_batch[0] + 2 * per_batch[1]) / 6,
                                                                          rel=1e-12)
    assert model.get_weights()[0] is not w1 and (model.get_weights()[0] == w1).all()


def test_frozen_layer_does_not_change_in_fit():
    x, y = blobs(40)
    model = classifier()
    model.layers[0].trainable = False
    frozen = model.layers[0].get_weights()
    quiet(model.fit, x, y, epochs=2, verbose=0)
    for a, b in zip(frozen, model.layers[0].get_weights()):
        numpy.testing.assert_array_equal(a, b)


def test_validation_data_and_initial_epoch():
    x, y = blobs(60)
    model = classifier()
    history, _ = quiet(model.fit, x[:40], y[:40], validation_data=(x[40:], y[40:]), epochs=4, initial_epoch=2,
                       verbose=0)
    assert history.epoch == [2, 3]
    assert len(history.history["val_loss"]) == 2


def test_verbose_output_without_terminal_has_no_carriage_returns():
    x, y = blobs(100)
    model = classifier()
    _, out = quiet(model.fit, x, y, epochs=3, batch_size=10, verbose=1)
    assert "\r" not in out
    lines = out.splitlines()
    assert lines[0].startswith("gpu_dl: running on")
    assert lines[1:3] and lines[1] == "Epoch 1/3"
    bars = [l for l in lines if l.startswith("10/10 ")]
    assert len(bars) == 3 and all("accuracy: " in l and " - loss: " in l and "/step" in l for l in bars)
    assert bars[0].index("accuracy") < bars[0].index("loss")   # Keras 3 prints logs sorted by name
    _, out2 = quiet(model.fit, x, y, epochs=2, batch_size=10, verbose=2)
    per_epoch = [l for l in out2.splitlines() if l.startswith("10/10 - ")]
    assert len(per_epoch) == 2 and "━" not in out2
    _, silent = quiet(model.fit, x, y, epochs=1, verbose=0)
    assert silent == ""


def test_callbacks_see_batches_and_can_stop_training():
    x, y = blobs(64)
    model = classifier()
    seen = []

    class StopAfterTwo(callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append((batch, sorted(logs)))

        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True

    history, _ = quiet(model.fit, x, y, batch_size=32, epochs=10, callbacks=[StopAfterTwo()], verbose=0)
    assert history.epoch == [0, 1]
    assert seen == [(0, ["accuracy", "loss"]), (1, ["accuracy", "loss"])] * 2


def test_training_is_reproducible_under_a_seed():
    x, y = blobs(50)
    results = []
    for _ in range(2):
        model = classifier(seed=11)
        backend.set_random_seed(11)
        quiet(model.fit, x, y, epochs=2, verbose=0)
        results.append(model.get_weights())
    for a, b in zip(*results):
        numpy.testing.assert_array_equal(a, b)
