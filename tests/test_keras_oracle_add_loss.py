"""Layer.add_loss and Layer.losses against Keras 3 itself (where Keras is installed), with the classes of Keras's
guide "Making new layers and models via subclassing" written once for both libraries (tests/add_loss_classes.py):
the same losses lists, the same reported losses, and the same weights after training steps, with a compiled loss
and without one."""
import contextlib
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402

from add_loss_classes import activity_regularization, outer, outer_with_kernel_regularizer, vae  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402


def _values(losses):
    return [float(numpy.asarray(v.detach() if hasattr(v, "detach") else gpu_dl.backend.to_numpy(v))) for v in losses]


def test_outer_layer_losses_as_keras():
    ours, theirs = outer(gpu_dl)(), outer(keras)()
    assert ours.losses == [] and theirs.losses == []
    x = numpy.random.default_rng(0).standard_normal((3, 2)).astype("float32")
    for _ in range(2):                  # reset per top-level call: one value after each call
        ours(x)
        theirs(x)
        assert len(ours.losses) == len(theirs.losses) == 1
        assert _values(ours.losses) == pytest.approx(_values(theirs.losses), rel=1e-6)


@pytest.mark.parametrize("activity", [None, "l1"])
def test_kernel_regularizer_and_activity_losses_as_keras(activity):
    ours = outer_with_kernel_regularizer(gpu_dl)(activity_regularizer=activity)
    theirs = outer_with_kernel_regularizer(keras)(activity_regularizer=activity)
    x = numpy.random.default_rng(1).standard_normal((4, 3)).astype("float32")
    ours(x)
    theirs(x)
    ours.set_weights(theirs.get_weights())
    ours(x)
    assert len(ours.losses) == len(theirs.losses) == (2 if activity else 1)
    assert _values(ours.losses) == pytest.approx(_values(theirs.losses), rel=1e-5)


def test_guide_activity_regularization_model_reports_keras_losses():
    def model(lib):
        inputs = lib.Input(shape=(3,))
        return lib.Model(inputs, activity_regularization(lib)()(inputs))
    ours, theirs = model(gpu_dl), model(keras)
    rng = numpy.random.default_rng(2)
    x, y = rng.random((5, 3)).astype("float32"), rng.random((5, 3)).astype("float32")
    for compile_kwargs in ({"loss": "mse"}, {}):      # Keras's second compile, without a loss, keeps the first's
        ours.compile(optimizer="adam", **compile_kwargs)
        theirs.compile(optimizer="adam", **compile_kwargs)
        ours_history = ours.fit(x, y, batch_size=5, verbose=0).history["loss"]
        theirs_history = theirs.fit(x, y, batch_size=5, verbose=0).history["loss"]
        assert ours_history == pytest.approx(theirs_history, rel=1e-6)
        assert ours.evaluate(x, y, verbose=0) == pytest.approx(theirs.evaluate(x, y, verbose=0), rel=1e-6)
    fresh_ours, fresh_theirs = model(gpu_dl), model(keras)
    fresh_ours.compile(optimizer="adam")
    fresh_theirs.compile(optimizer="adam")
    assert fresh_ours.train_on_batch(x, y) == pytest.approx(float(fresh_theirs.train_on_batch(x, y)), rel=1e-6)
    fresh_ours.predict(x, verbose=0)
    fresh_theirs.predict(x, verbose=0)
    assert _values(fresh_ours.losses) == pytest.approx(_values(fresh_theirs.losses), rel=1e-6)


def _between_dense_layers(lib):
    inputs = lib.Input(shape=(3,))
    h = activity_regularization(lib)(0.5)(lib.layers.Dense(4, activation="tanh")(inputs))
    return lib.Model(inputs, lib.layers.Dense(3)(h))


@pytest.mark.parametrize("loss", ["mse", None])
def test_activity_regularization_between_layers_trains_as_keras(loss):
    rng = numpy.random.default_rng(3)
    # Without a loss, the last layer's weights get no gradient: both libraries warn and leave them as they are.
    with contextlib.nullcontext() if loss else pytest.warns(UserWarning, match="radients do not exist"):
        assert_training_steps_match(keras, _between_dense_layers(gpu_dl), _between_dense_layers(keras), rng, (3,),
                                    classes=0, batch=6, loss=loss,
                                    targets=lambda rng, batch: rng.random((batch, 3)).astype("float32"))


@pytest.mark.parametrize("compiled", [True, False], ids=["mse", "no-loss"])
def test_vae_trains_as_keras(compiled):
    ours, theirs = vae(gpu_dl)(6), vae(keras)(6)
    x = numpy.random.default_rng(4).random((2, 6)).astype("float32")
    ours(x)
    theirs(x)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    rng = numpy.random.default_rng(5)
    # Without a loss, the decoder's weights get no gradient: both libraries warn and leave them as they are.
    with contextlib.nullcontext() if compiled else pytest.warns(UserWarning, match="radients do not exist"):
        assert_training_steps_match(keras, ours, theirs, rng, (6,), classes=0, batch=8,
                                    loss=gpu_dl.losses.MeanSquaredError() if compiled else None,
                                    keras_loss=keras.losses.MeanSquaredError() if compiled else None,
                                    inputs=lambda rng, batch: rng.random((batch, 6)).astype("float32"),
                                    targets=lambda rng, batch: rng.random((batch, 6)).astype("float32"))
    theirs.set_weights(ours.get_weights())      # the same weights again (training left them equal to rounding)
    ours(x)
    theirs(x)
    assert _values(ours.losses) == pytest.approx(_values(theirs.losses), rel=1e-5)
