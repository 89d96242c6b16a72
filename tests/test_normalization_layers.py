"""BatchNormalization and LayerNormalization: forward against plain NumPy, backward against finite
differences (training and inference), the moving statistics, masks, non-trainable weights in models,
and bad arguments and inputs."""
import numpy
import pytest

import gpu_dl
from gpu_dl import backend, data, layers, optimizers
from gpu_dl.backend import to_numpy
from gpu_dl.ops.normalization import batch_norm_inference, normalize_backward
from gradcheck import assert_gradient

EPSILON = 1e-3


def expected_batch_norm(x, axis, gamma, beta, epsilon=EPSILON, mean=None, variance=None, kept=None):
    """The textbook formula in float64, statistics over all axes but ``axis`` unless given; with ``kept``
    (booleans of x's shape without its last axis) only those positions count, over count + 1e-7 as in Keras."""
    x = numpy.asarray(x, dtype=numpy.float64)
    axis = axis % x.ndim
    others = tuple(i for i in range(x.ndim) if i != axis)
    shape = [1] * x.ndim
    shape[axis] = x.shape[axis]
    if mean is None and kept is None:
        mean, variance = x.mean(axis=others), x.var(axis=others)
    elif mean is None:
        w = numpy.broadcast_to(kept[..., None], x.shape).astype(numpy.float64)
        count = w.sum(axis=others) + 1e-7
        mean = (w * x).sum(axis=others) / count
        variance = (w * (x - mean.reshape(shape)) ** 2).sum(axis=others) / count
    y = (x - mean.reshape(shape)) / numpy.sqrt(variance.reshape(shape) + epsilon)
    return y * gamma.reshape(shape) + beta.reshape(shape), mean, variance


def expected_layer_norm(x, axes, gamma, beta, epsilon=EPSILON):
    x = numpy.asarray(x, dtype=numpy.float64)
    axes = tuple(sorted(a % x.ndim for a in axes))
    shape = [x.shape[i] if i in axes else 1 for i in range(x.ndim)]
    mean, variance = x.mean(axis=axes, keepdims=True), x.var(axis=axes, keepdims=True)
    y = (x - mean) / numpy.sqrt(variance + epsilon) * gamma.reshape(shape)
    return y if beta is None else y + beta.reshape(shape)


def randomised(layer, shape, rng):
    """``layer`` built for ``shape`` with random gamma and beta, moving means and positive moving variances."""
    layer.build(shape)
    values = []
    for v in layer.weights:
        value = rng.standard_normal(v.shape)
        values.append(numpy.abs(value) + 0.5 if v.name == "moving_variance" else value)
    layer.set_weights(values)
    return layer


# (input shape, axis): 2-D (batch, features), 3-D sequences, 4-D NHWC images, odd sizes, other axes.
BATCH_NORM_CASES = [((3, 17), -1), ((17, 3), 1), ((1, 5), -1), ((3, 17, 5), -1), ((3, 17, 5), 1),
                    ((3, 5, 1, 17), -1), ((3, 5, 3, 17), 1), ((1, 3, 5, 2), -2)]


@pytest.mark.parametrize("shape,axis", BATCH_NORM_CASES)
def test_batch_norm_training_forward_and_moving_statistics(xp, rng, shape, axis):
    layer = randomised(layers.BatchNormalization(axis=axis, momentum=0.9, dtype="float64"), shape, rng)
    gamma, beta, moving_mean, moving_variance = layer.get_weights()
    x = rng.standard_normal(shape) * 2 + 0.5
    y = layer(xp.asarray(x), training=True)
    expected, mean, variance = expected_batch_norm(x, axis, gamma, beta)
    assert type(y) is type(xp.asarray(x)) and y.dtype == numpy.float64
    numpy.testing.assert_allclose(to_numpy(y), expected, rtol=1e-10, atol=1e-10)
    after = layer.get_weights()
    numpy.testing.assert_allclose(after[2], moving_mean * 0.9 + mean * 0.1, rtol=1e-12, atol=1e-14)
    numpy.testing.assert_allclose(after[3], moving_variance * 0.9 + variance * 0.1, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shape,axis", BATCH_NORM_CASES)
def test_batch_norm_inference_uses_the_moving_statistics_and_leaves_them(xp, rng, shape, axis):
    layer = randomised(layers.BatchNormalization(axis=axis, epsilon=0.01, dtype="float64"), shape, rng)
    weights = layer.get_weights()
    x = rng.standard_normal(shape)
    y = layer(xp.asarray(x))
    expected, _, _ = expected_batch_norm(x, axis, weights[0], weights[1], 0.01, mean=weights[2], variance=weights[3])
    numpy.testing.assert_allclose(to_numpy(y), expected, rtol=1e-12, atol=1e-12)
    for before, after in zip(weights, layer.get_weights()):
        numpy.testing.assert_array_equal(after, before)


def test_batch_norm_without_center_or_scale_has_only_the_statistics(xp, rng):
    layer = layers.BatchNormalization(center=False, scale=False, dtype="float64")
    x = rng.standard_normal((6, 4)) * 3
    y = layer(xp.asarray(x), training=True)
    assert [v.name for v in layer.weights] == ["moving_mean", "moving_variance"] and layer.trainable_weights == []
    numpy.testing.assert_allclose(to_numpy(y), (x - x.mean(0)) / numpy.sqrt(x.var(0) + EPSILON), rtol=1e-12)
    assert layer.backward(xp.ones((6, 4))).shape == (6, 4)


def test_float32_stays_float32(xp, rng):
    for layer in (layers.BatchNormalization(), layers.LayerNormalization(axis=[1, 2])):
        x = xp.asarray(rng.standard_normal((4, 3, 5)).astype("float32"))
        y = layer(x, training=True)
        assert y.dtype == numpy.float32
        assert layer.backward(xp.ones_like(y)).dtype == numpy.float32
        assert all(v.grad.dtype == numpy.float32 for v in layer.trainable_weights)
        assert all(v.dtype == numpy.float32 for v in layer.weights)


def test_moving_statistics_move_in_the_dtype_with_keras_s_rounding(xp, rng):
    """moving * momentum + batch * (1 - momentum), each factor rounded to float32 as Keras's variables have
    it: bit for bit, not merely close."""
    layer = randomised(layers.BatchNormalization(momentum=0.7), (33, 5), rng)
    before = xp.asarray(layer.get_weights()[2])
    x = xp.asarray(rng.standard_normal((33, 5)).astype("float32"))
    layer(x, training=True)
    f32 = numpy.float32
    expected = before * f32(0.7) + x.mean(axis=0) * f32(1.0 - 0.7)
    assert expected.dtype == numpy.float32
    numpy.testing.assert_array_equal(layer.get_weights()[2], to_numpy(expected))


# ------------------------------------------------------------------------------------- gradients
def check_layer_gradients(layer, x, rng, what, *, mask=None):
    """Finite differences of sum(layer(x, training=True) * w) against the layer's input, gamma and beta
    gradients (those it has)."""
    xp = backend.array_module(x)
    w = xp.asarray(rng.standard_normal(x.shape))

    def objective(v):
        return (layer(v, training=True, mask=mask) * w).sum()
    layer(x, training=True, mask=mask)
    dx = layer.backward(w)
    assert_gradient(objective, x, dx, rng, what=f"{what} input")
    for var in layer.trainable_weights:
        layer(x, training=True, mask=mask)
        layer.backward(w)
        grad, original = var.grad.copy(), var.value.copy()

        def of_weight(value, var=var):
            var.value[...] = value
            return objective(x)
        assert_gradient(of_weight, original.copy(), grad, rng, what=f"{what} {var.name}")
        var.value[...] = original
    return dx


@pytest.mark.parametrize("shape,axis", BATCH_NORM_CASES)
def test_batch_norm_training_gradients(xp, rng, shape, axis):
    layer = randomised(layers.BatchNormalization(axis=axis, dtype="float64"), shape, rng)
    x = xp.asarray(rng.standard_normal(shape) + 0.3)
    dx = check_layer_gradients(layer, x, rng, "BatchNormalization")
    # Through the batch's own statistics: each feature's input gradient sums to zero.
    others = tuple(i for i in range(len(shape)) if i != axis % len(shape))
    numpy.testing.assert_allclose(to_numpy(dx).sum(axis=others), 0, atol=1e-10)
    assert [v.name for v in layer.trainable_weights] == ["gamma", "beta"]


@pytest.mark.parametrize("shape,axis", [((3, 17), -1), ((3, 5, 3, 17), 1), ((4, 3, 5), -1)])
def test_frozen_batch_norm_trains_in_inference_mode(xp, rng, shape, axis):
    """As in Keras 3: trainable=False normalizes with the moving statistics even when training, leaves them
    alone, and back-propagates through them as constants."""
    layer = randomised(layers.BatchNormalization(axis=axis, dtype="float64"), shape, rng)
    layer.trainable = False
    weights = layer.get_weights()
    x = xp.asarray(rng.standard_normal(shape))
    expected, _, _ = expected_batch_norm(to_numpy(x), axis, weights[0], weights[1], mean=weights[2],
                                         variance=weights[3])
    numpy.testing.assert_allclose(to_numpy(layer(x, training=True)), expected, rtol=1e-12, atol=1e-12)
    for before, after in zip(weights, layer.get_weights()):
        numpy.testing.assert_array_equal(after, before)
    dx = check_layer_gradients(layer, x, rng, "frozen BatchNormalization")
    scale = weights[0] / numpy.sqrt(weights[3] + EPSILON)
    shape_of_axis = [1] * len(shape)
    shape_of_axis[axis] = shape[axis]
    assert layer.gamma.grad is None and layer.beta.grad is None and layer.trainable_weights == []
    assert len(layer.non_trainable_weights) == 4
    w = rng.standard_normal(shape)
    layer(x, training=True)
    numpy.testing.assert_allclose(to_numpy(layer.backward(xp.asarray(w))), w * scale.reshape(shape_of_axis),
                                  rtol=1e-12)
    assert dx.shape == tuple(shape)


def test_inference_mode_gamma_and_beta_gradients(xp, rng):
    """The op's backward through fixed statistics, gamma and beta included (what a frozen layer skips)."""
    x = xp.asarray(rng.standard_normal((5, 3, 4)))
    mean, variance = xp.asarray(rng.standard_normal((1, 1, 4))), xp.asarray(rng.random((1, 1, 4)) + 0.2)
    gamma, beta = xp.asarray(rng.standard_normal((1, 1, 4))), xp.asarray(rng.standard_normal((1, 1, 4)))
    w = xp.asarray(rng.standard_normal((5, 3, 4)))
    _, saved = batch_norm_inference(x, mean, variance, EPSILON, gamma, beta)
    dx, dgamma, dbeta = normalize_backward(w, saved, (0, 1), (0, 1), gamma, through_statistics=False)

    def objective(x=x, gamma=gamma, beta=beta):
        return (batch_norm_inference(x, mean, variance, EPSILON, gamma, beta)[0] * w).sum()
    assert_gradient(lambda v: objective(x=v), x, dx, rng, what="inference input")
    assert_gradient(lambda v: objective(gamma=v), gamma, dgamma, rng, what="inference gamma")
    assert_gradient(lambda v: objective(beta=v), beta, dbeta, rng, what="inference beta")


def test_a_model_without_input_gradient_skips_it(xp, rng):
    layer = randomised(layers.BatchNormalization(dtype="float64"), (4, 3), rng)
    layer(xp.asarray(rng.standard_normal((4, 3))), training=True)
    layer.input_gradient_wanted = False
    assert layer.backward(xp.ones((4, 3))) is None and layer.gamma.grad.shape == (3,)


# ------------------------------------------------------------------------------------------ masks
def test_batch_norm_leaves_masked_steps_out_of_the_statistics(xp, rng):
    layer = randomised(layers.BatchNormalization(momentum=0.5, dtype="float64"), (3, 5, 4), rng)
    gamma, beta, moving_mean, moving_variance = layer.get_weights()
    x = rng.standard_normal((3, 5, 4))
    kept = numpy.ones((3, 5), dtype=bool)
    kept[0, 3:] = kept[2, 1:] = False
    x[~kept] = 1e3       # padding far from the data: it would dominate statistics that counted it
    y = layer(xp.asarray(x), training=True, mask=xp.asarray(kept))
    expected, mean, variance = expected_batch_norm(x, -1, gamma, beta, kept=kept)
    numpy.testing.assert_allclose(to_numpy(y), expected, rtol=1e-10)
    numpy.testing.assert_allclose(layer.get_weights()[2], moving_mean * 0.5 + mean * 0.5, rtol=1e-12)
    numpy.testing.assert_allclose(layer.get_weights()[3], moving_variance * 0.5 + variance * 0.5, rtol=1e-12)
    dx = check_layer_gradients(layer, xp.asarray(rng.standard_normal((3, 5, 4))), rng, "masked BatchNormalization",
                               mask=xp.asarray(kept))
    assert dx.shape == (3, 5, 4)


def test_the_masked_gradient_includes_the_count_s_epsilon(xp, rng, monkeypatch):
    """Keras divides the masked sums by count + 1e-7, so the kept deviations do not quite sum to zero; the
    backward carries that term. At 1e-7 finite differences cannot see it: made 0.5 here, they do."""
    from gpu_dl.ops import normalization
    monkeypatch.setattr(normalization, "MASKED_COUNT_EPSILON", 0.5)
    layer = randomised(layers.BatchNormalization(dtype="float64"), (3, 4, 2), rng)
    kept = numpy.array([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0]], dtype=bool)
    check_layer_gradients(layer, xp.asarray(rng.standard_normal((3, 4, 2)) + 2), rng, "BatchNormalization",
                          mask=xp.asarray(kept))


def test_an_all_masked_batch_keeps_finite_statistics(xp, rng):
    layer = layers.BatchNormalization(dtype="float64")
    y = layer(xp.asarray(rng.standard_normal((2, 3, 4))), training=True, mask=xp.zeros((2, 3), dtype=bool))
    assert numpy.isfinite(to_numpy(y)).all()
    numpy.testing.assert_array_equal(layer.get_weights()[2], 0)       # 0 / (0 + 1e-7) as in Keras


def test_masks_reach_batch_norm_and_pass_through_both_layers_in_a_model(xp, rng):
    model = gpu_dl.Sequential([layers.Input((6, 3)), layers.Masking(0.0), layers.BatchNormalization(momentum=0.0),
                               layers.LayerNormalization(), layers.LSTM(2, return_sequences=True)])
    x = rng.standard_normal((4, 6, 3)).astype("float32")
    x[1, 4:] = x[3, 1:] = 0
    kept = numpy.ones((4, 6), dtype=bool)
    kept[1, 4:] = kept[3, 1:] = False
    model(x, training=True)
    # With momentum 0 the moving statistics are the batch's: the padded steps' zeros are left out.
    numpy.testing.assert_allclose(model.layers[1].get_weights()[2], x[kept].mean(axis=0), rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(model.layers[1].get_weights()[3], x[kept].var(axis=0), rtol=1e-5, atol=1e-6)
    numpy.testing.assert_array_equal(to_numpy(model.output_mask), kept)


# ---------------------------------------------------------------------------------- layer norm
LAYER_NORM_CASES = [((3, 17), -1), ((1, 3, 17), [-1]), ((3, 17, 5), 1), ((3, 5, 1, 17), [1, 2, 3]),
                    ((3, 5, 3, 17), [-2, -1]), ((17, 3, 4), [1, -1])]


@pytest.mark.parametrize("shape,axis", LAYER_NORM_CASES)
def test_layer_norm_forward_and_gradients(xp, rng, shape, axis):
    layer = randomised(layers.LayerNormalization(axis=axis, dtype="float64"), shape, rng)
    gamma, beta = layer.get_weights()
    x = rng.standard_normal(shape) * 2 + 1
    axes = axis if isinstance(axis, list) else [axis]
    assert gamma.shape == tuple(shape[a] for a in sorted(a % len(shape) for a in axes))
    y = layer(xp.asarray(x))
    numpy.testing.assert_allclose(to_numpy(y), expected_layer_norm(x, axes, gamma, beta), rtol=1e-10, atol=1e-10)
    check_layer_gradients(layer, xp.asarray(x), rng, "LayerNormalization")


@pytest.mark.parametrize("center,scale", [(False, True), (True, False), (False, False)])
def test_layer_norm_without_center_or_scale(xp, rng, center, scale):
    layer = layers.LayerNormalization(center=center, scale=scale, dtype="float64")
    x = rng.standard_normal((4, 7))
    layer.build(x.shape)
    assert [v.name for v in layer.weights] == ["gamma"] * scale + ["beta"] * center
    ones, zeros = numpy.ones(7), numpy.zeros(7)
    numpy.testing.assert_allclose(to_numpy(layer(xp.asarray(x))), expected_layer_norm(x, [-1], ones, zeros),
                                  rtol=1e-10)
    check_layer_gradients(layer, xp.asarray(x), rng, "LayerNormalization")


def test_layer_norm_rms_scaling(xp, rng):
    with pytest.warns(UserWarning, match="deprecated"):
        layer = layers.LayerNormalization(axis=[-2, -1], rms_scaling=True, dtype="float64")
    x = rng.standard_normal((3, 4, 5)) + 2
    randomised(layer, x.shape, rng)
    assert [v.name for v in layer.weights] == ["gamma"]
    (gamma,) = layer.get_weights()
    expected = x / numpy.sqrt(x.var(axis=(1, 2), keepdims=True) + EPSILON) * gamma
    numpy.testing.assert_allclose(to_numpy(layer(xp.asarray(x))), expected, rtol=1e-10)
    check_layer_gradients(layer, xp.asarray(x), rng, "rms-scaling LayerNormalization")


def test_layer_norm_takes_other_ranks_with_negative_axes_only(xp):
    layer = layers.LayerNormalization(dtype="float64")
    layer(xp.ones((2, 3, 4)))
    assert layer(xp.ones((5, 4))).shape == (5, 4)
    fixed = layers.LayerNormalization(axis=2, name="fixed", dtype="float64")
    fixed(xp.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"layer 'fixed'.*only the rank and axis \[2\] must match"):
        fixed(xp.ones((2, 3, 4, 4)))


# ----------------------------------------------------------------------- models and saving
def bn_model(seed=0):
    backend.set_random_seed(seed)
    model = gpu_dl.Sequential([layers.Input((6, 6, 2)), layers.Conv2D(3, 3), layers.BatchNormalization(),
                               layers.Flatten(), layers.Dense(4), layers.LayerNormalization(), layers.Dense(3)])
    model.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    return model


def test_weights_order_and_trainability_as_in_keras(xp):
    model = bn_model()
    bn = model.layers[1]
    assert [v.name for v in bn.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [v.name for v in bn.trainable_weights] == ["gamma", "beta"]
    assert [v.name for v in bn.non_trainable_weights] == ["moving_mean", "moving_variance"]
    assert [v.path for v in model.non_trainable_weights] == [f"{model.name}/{bn.name}/moving_mean",
                                                             f"{model.name}/{bn.name}/moving_variance"]
    assert len(model.get_weights()) == 2 + 4 + 2 + 2 + 2
    lines = []
    model.summary(print_fn=lambda text: lines.extend(text.splitlines()))
    # 57 (Conv2D) + 12 (BatchNormalization, 6 of them non-trainable) + 196 (Dense) + 8 (LayerNormalization) + 15
    assert lines[-3:] == [" Total params: 288 (1.12 KB)", " Trainable params: 282 (1.10 KB)",
                          " Non-trainable params: 6 (24.00 B)"]
    assert "12" in next(line for line in lines if "batch_normalization" in line)


def test_the_optimizer_leaves_the_moving_statistics_to_the_layer(xp, rng):
    """One training step moves the statistics by the layer's formula only; the optimizer has slots for the
    trainable weights alone."""
    model = bn_model()
    x, y = rng.standard_normal((8, 6, 6, 2)).astype("float32"), rng.integers(0, 3, 8)
    model.train_on_batch(x, y)      # builds the optimizer
    bn = model.layers[1]
    conv_out = to_numpy(model.layers[0](backend.to_device(x)))
    before = bn.get_weights()
    model.train_on_batch(x, y)
    mean = conv_out.mean(axis=(0, 1, 2))
    numpy.testing.assert_allclose(bn.get_weights()[2], before[2] * numpy.float32(0.99) + mean * numpy.float32(0.01),
                                  rtol=1e-5, atol=1e-7)
    assert bn.moving_mean.grad is None and bn.moving_variance.grad is None
    # the step count, the learning rate, then Adam's two slots each
    assert len(model.optimizer.variables) == 2 + 2 * len(model.trainable_weights)


def test_saved_models_keep_the_moving_statistics(xp, rng, tmp_path):
    import h5py
    model = bn_model()
    x, y = rng.standard_normal((16, 6, 6, 2)).astype("float32"), rng.integers(0, 3, 16)
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    model.save(tmp_path / "bn.keras")
    model.save_weights(tmp_path / "bn.weights.h5")
    loaded = gpu_dl.models.load_model(tmp_path / "bn.keras")
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    numpy.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    with h5py.File(tmp_path / "bn.weights.h5", "r") as f:
        stored = [f[f"layers/batch_normalization/vars/{i}"][()] for i in range(4)]
        assert list(f["layers/layer_normalization/vars"].keys()) == ["0", "1"]
    for a, b in zip(stored, model.layers[1].get_weights()):
        numpy.testing.assert_array_equal(a, b)
    fresh = bn_model(seed=1)
    fresh.load_weights(tmp_path / "bn.weights.h5")
    numpy.testing.assert_array_equal(fresh.layers[1].get_weights()[3], model.layers[1].get_weights()[3])
    config = loaded.layers[1].get_config()
    assert (config["momentum"], config["epsilon"], config["axis"]) == (0.99, 0.001, -1)
    assert loaded.layers[4].get_config()["axis"] == [-1]


@pytest.mark.slow
def test_a_digits_cnn_with_batch_norm_trains(xp):
    backend.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = data.load_digits(image_shape=True)
    model = gpu_dl.Sequential([
        layers.Input((8, 8, 1)), layers.Conv2D(16, 3, padding="same", use_bias=False),
        # momentum 0.9: in 3 epochs (135 steps) the default 0.99 would leave a quarter of the initial
        # statistics in the moving ones, and the test accuracy (inference mode) would show it.
        layers.BatchNormalization(momentum=0.9),
        layers.ReLU(), layers.MaxPooling2D(), layers.Flatten(), layers.Dense(32), layers.LayerNormalization(),
        layers.ReLU(), layers.Dense(10, activation="softmax")])
    model.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, y_train, epochs=3, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] / 2
    assert accuracy >= 0.94, f"test accuracy {accuracy:.3f}"
    # Inference used the moving statistics, which training moved away from their start.
    assert not numpy.allclose(model.layers[1].get_weights()[3], 1)


# --------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs,message", [
    ({"momentum": 1.5}, r"momentum must be a number in \[0.0, 1.0\], got 1.5"),
    ({"momentum": -0.1}, "momentum must be a number in"),
    ({"epsilon": -1e-3}, "epsilon must be a number >= 0.0"),
    ({"epsilon": "0.001"}, "epsilon must be a number"),
    ({"axis": [1, 2]}, "axis must be an integer"),
    ({"axis": 1.0}, "axis must be an integer"),
    ({"renorm": True}, "renorm=True"),
])
def test_batch_norm_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=rf"BatchNormalization layer 'bn'.*{message}"):
        layers.BatchNormalization(name="bn", **kwargs)


@pytest.mark.parametrize("kwargs,message", [
    ({"epsilon": -1.0}, "epsilon must be a number >= 0.0"),
    ({"axis": []}, "at least one axis"),
    ({"axis": "x"}, "axis .*must be an integer"),
    ({"axis": [-1, 1.5]}, "axis must be an integer"),
])
def test_layer_norm_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=rf"LayerNormalization layer 'ln'.*{message}"):
        layers.LayerNormalization(name="ln", **kwargs)


@pytest.mark.parametrize("cls,axis,message", [
    (layers.BatchNormalization, 3, r"axis 3 is out of bounds for inputs of rank 3"),
    (layers.BatchNormalization, -4, r"axis -4 is out of bounds"),
    (layers.BatchNormalization, 0, "names the batch axis"),
    (layers.LayerNormalization, [1, 5], r"axis \[1, 5\] is out of bounds"),
    (layers.LayerNormalization, -3, "names the batch axis"),
    (layers.LayerNormalization, [2, -1], "names one axis twice"),
])
def test_axes_outside_the_input_are_refused_when_built(xp, cls, axis, message):
    layer = cls(axis=axis, name="norm")
    with pytest.raises(ValueError, match=rf"layer 'norm'.*{message}"):
        layer(xp.ones((2, 3, 4), dtype="float32"))
    with pytest.raises(ValueError, match=message):
        gpu_dl.Sequential([layers.Input((3, 4)), cls(axis=axis)])


def test_inputs_that_differ_from_the_built_ones_are_refused(xp):
    bn = layers.BatchNormalization(name="bn")
    bn(xp.ones((2, 3, 4), dtype="float32"))
    with pytest.raises(ValueError, match=r"layer 'bn' \(BatchNormalization\).*expected shape \(None, 3, 4\), got "
                                         r"\(2, 3, 5\) \(only the rank and axis -1 must match\)"):
        bn(xp.ones((2, 3, 5), dtype="float32"))
    with pytest.raises(ValueError, match=r"layer 'bn'.*got \(2, 4\)"):        # Keras's BN fixes the rank too
        bn(xp.ones((2, 4), dtype="float32"))
    assert bn(xp.ones((5, 7, 4), dtype="float32")).shape == (5, 7, 4)
    ln = layers.LayerNormalization(axis=[-2, -1], name="ln")
    ln(xp.ones((2, 3, 4), dtype="float32"))
    with pytest.raises(ValueError, match=r"layer 'ln'.*got \(2, 4, 4\) \(only axis \[-2, -1\] must match\)"):
        ln(xp.ones((2, 4, 4), dtype="float32"))
    # A built layer placed after other features: the model names it before any layer runs.
    model = gpu_dl.Sequential([layers.Input((5,)), layers.Dense(3)])
    model.add(bn)
    with pytest.raises(ValueError, match=r"layer 'bn'.*expected shape \(None, 3, 4\), got \(None, 3\)"):
        model.predict(numpy.ones((2, 5), dtype="float32"), verbose=0)


def test_a_mask_that_does_not_fit_the_input_is_refused(xp):
    bn = layers.BatchNormalization(name="bn")
    with pytest.raises(ValueError, match=r"layer 'bn'.*one axis less than the input"):
        bn(xp.ones((2, 3, 4, 5), dtype="float32"), training=True, mask=xp.ones((2, 3), dtype=bool))
    with pytest.raises(ValueError, match=r"'bn'.*mask must have shape"):
        bn(xp.ones((2, 3, 4, 5), dtype="float32"), training=True, mask=xp.ones((2, 4), dtype=bool))
