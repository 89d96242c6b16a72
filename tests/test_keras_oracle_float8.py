"""float8 training against Keras 3 (torch backend): the same weights quantized to float8 in both give the same
variables, configs and predictions; a few SGD steps give the same losses, weights and float8 scales and amax
histories; the float8 policies serialize alike; a float8 model saved by either loads in the other."""
import os
import warnings

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_sessions():
    # the variable paths compared below carry names both libraries number by a process-wide count
    keras.backend.clear_session()
    gpu_dl.backend.clear_session()


def dense_model(lib, activation="tanh"):
    return lib.Sequential([lib.Input((7,)), lib.layers.Dense(9, activation="relu"),
                           lib.layers.Dense(4, use_bias=False), lib.layers.Dense(3, activation=activation)])


def einsum_model(lib):
    return lib.Sequential([lib.Input((3, 5)),
                           lib.layers.EinsumDense("abc,cde->abde", (3, 2, 4), bias_axes="de", activation="relu"),
                           lib.layers.EinsumDense("abde,de->ab", (3,), bias_axes=None)])


def quantized_pair(make):
    theirs, ours = make(keras), make(gpu_dl)
    rng = numpy.random.default_rng(0)
    theirs.set_weights([0.5 * rng.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()])
    ours.set_weights(theirs.get_weights())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs.quantize("float8")
    ours.quantize("float8")
    return theirs, ours


def assert_same_variables(theirs, ours, exact=False):
    assert [w.path for w in ours.weights] == [w.path for w in theirs.weights]
    for a, b in zip(theirs.weights, ours.weights):
        if exact:
            numpy.testing.assert_array_equal(b.numpy(), keras.ops.convert_to_numpy(a), err_msg=b.path)
        else:
            numpy.testing.assert_allclose(b.numpy(), keras.ops.convert_to_numpy(a), rtol=2e-5, atol=1e-7,
                                          err_msg=b.path)


@pytest.mark.parametrize("make, shape, targets", [(dense_model, (7,), (3,)), (einsum_model, (3, 5), (3,))])
def test_float8_training_steps_match(make, shape, targets):
    theirs, ours = quantized_pair(make)
    assert_same_variables(theirs, ours, exact=True)
    assert [l.get_config() for l in ours.layers] == [l.get_config() for l in theirs.layers]
    assert [w.overwrite_with_gradient for w in ours.weights] == [w.overwrite_with_gradient for w in theirs.weights]
    rng = numpy.random.default_rng(1)
    x = 2 * rng.standard_normal((6,) + shape).astype("float32")
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
    theirs.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    ours.compile(optimizer=gpu_dl.optimizers.SGD(0.1), loss="mse")
    for step in range(4):
        x = 2 * rng.standard_normal((6,) + shape).astype("float32")
        y = rng.standard_normal((6,) + targets).astype("float32")
        theirs_loss, ours_loss = float(theirs.train_on_batch(x, y)), ours.train_on_batch(x, y)
        theirs.reset_metrics()
        ours.reset_metrics()
        assert ours_loss == pytest.approx(theirs_loss, rel=2e-5, abs=1e-7), f"step {step}"
        # the weights after each step carry the gradients; the scales and histories what the backward computed
        assert_same_variables(theirs, ours)
    # four steps' amax in the history: the latest first, the earlier ones rolled to its end
    history = keras.ops.convert_to_numpy(theirs.layers[0].inputs_amax_history)
    assert (history[[0, -1, -2, -3]] > 0).all() and not history[1:-3].any()
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_float8_gradients_match():
    import torch
    theirs, ours = quantized_pair(lambda lib: dense_model(lib, activation=None))
    rng = numpy.random.default_rng(2)
    x = 2 * rng.standard_normal((5, 7)).astype("float32")
    dy = rng.standard_normal((5, 3)).astype("float32")
    inputs = torch.tensor(x, requires_grad=True)
    out = theirs(inputs, training=True)
    variables = theirs.trainable_variables
    grads = torch.autograd.grad((out * torch.tensor(dy)).sum(), [inputs] + [v.value for v in variables])
    y = ours(x, training=True)
    numpy.testing.assert_allclose(y, out.detach().numpy(), rtol=1e-6, atol=1e-6)
    dx = ours.backward(dy)
    numpy.testing.assert_allclose(dx, grads[0].numpy(), rtol=1e-5, atol=1e-8)
    by_path = {w.path: w for w in ours.trainable_weights}
    for var, grad in zip(variables, grads[1:]):
        numpy.testing.assert_allclose(by_path[var.path].grad, grad.numpy(), rtol=1e-5, atol=1e-9, err_msg=var.path)


def test_float8_policies_match():
    theirs = keras.dtype_policies.get("float8_from_float32")
    ours = gpu_dl.dtype_policies.get("float8_from_float32")
    assert type(ours).__name__ == type(theirs).__name__ == "QuantizedFloat8DTypePolicy"
    assert ours.get_config() == theirs.get_config()
    assert gpu_dl.dtype_policies.serialize(ours) == keras.dtype_policies.serialize(theirs)
    short = keras.dtype_policies.QuantizedFloat8DTypePolicy("float8", "float32", amax_history_length=16)
    ours_short = gpu_dl.dtype_policies.deserialize(keras.dtype_policies.serialize(short))
    assert ours_short.amax_history_length == 16 and ours_short.name == short.name
    theirs_layer, ours_layer = keras.layers.Dense(2, dtype=short), gpu_dl.layers.Dense(2, dtype=ours_short)
    theirs_layer.build((None, 3))
    ours_layer.build((None, 3))
    assert [(w.path, tuple(w.shape)) for w in ours_layer.weights] == \
        [(w.path, tuple(w.shape)) for w in theirs_layer.weights]
    assert ours_layer.get_config() == theirs_layer.get_config()


@pytest.mark.parametrize("make, shape", [(dense_model, (7,)), (einsum_model, (3, 5))])
def test_float8_files_load_both_ways(tmp_path, make, shape):
    theirs, ours = quantized_pair(make)
    rng = numpy.random.default_rng(3)
    x = 2 * rng.standard_normal((6,) + shape).astype("float32")
    y = theirs.predict(x, verbose=0) + 0.1
    theirs.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    theirs.fit(x, y, epochs=2, batch_size=3, verbose=0)
    theirs.save(tmp_path / "k.keras")
    expected = theirs.predict(x, verbose=0)
    loaded = gpu_dl.models.load_model(tmp_path / "k.keras")
    assert_same_variables(keras.models.load_model(tmp_path / "k.keras"), loaded, exact=True)
    numpy.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-6)
    # the next step from the file's state is Keras's
    assert loaded.train_on_batch(x, y) == pytest.approx(float(theirs.train_on_batch(x, y)), rel=2e-5)
    ours.compile(optimizer=gpu_dl.optimizers.SGD(0.1), loss="mse")
    ours.fit(x, y, epochs=2, batch_size=3, verbose=0)
    ours.save(tmp_path / "g.keras")
    numpy.testing.assert_allclose(keras.models.load_model(tmp_path / "g.keras").predict(x, verbose=0),
                                  ours.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_layers_without_float8_are_skipped_with_keras_warning():
    def make(lib):
        return lib.Sequential([lib.Input((3,), dtype="int32"), lib.layers.Embedding(5, 4), lib.layers.Flatten(),
                               lib.layers.Dense(2)])
    messages = []
    for model in (make(keras), make(gpu_dl)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model.quantize("float8")
        messages.append(([str(w.message) for w in caught if "quantization mode" in str(w.message)],
                         [layer.dtype_policy.name for layer in model.layers]))
    assert messages[1] == messages[0]
    assert messages[0][1] == ["float32", "float32", "float8_from_float32"]


def test_mixed_float16_float8_under_loss_scaling_matches():
    def make(lib):
        return lib.Sequential([lib.Input((5,)), lib.layers.Dense(4, dtype="mixed_float16", activation="relu"),
                               lib.layers.Dense(2, dtype="float32")])
    theirs, ours = quantized_pair(make)
    assert ours.layers[0].dtype_policy.name == theirs.layers[0].dtype_policy.name == "float8_from_mixed_float16"
    theirs.compile(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1), initial_scale=64.0),
                   loss="mse")
    ours.compile(optimizer=gpu_dl.optimizers.LossScaleOptimizer(gpu_dl.optimizers.SGD(0.1), initial_scale=64.0),
                 loss="mse")
    rng = numpy.random.default_rng(4)
    for step in range(3):
        x = rng.standard_normal((6, 5)).astype("float32")
        y = rng.standard_normal((6, 2)).astype("float32")
        assert ours.train_on_batch(x, y) == pytest.approx(float(theirs.train_on_batch(x, y)), rel=1e-3), step
        theirs.reset_metrics()
        ours.reset_metrics()
    # the scales and histories take their values as computed, not divided by the loss scale
    for a, b in zip(theirs.weights, ours.weights):
        numpy.testing.assert_allclose(b.numpy(), keras.ops.convert_to_numpy(a), rtol=1e-3, atol=1e-6,
                                      err_msg=b.path)
