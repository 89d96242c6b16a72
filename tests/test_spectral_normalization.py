"""SpectralNormalization: the power iteration against NumPy, what a training call leaves in the kernel and
vector_u, inference, the gradient (the wrapped layer's, at the stored kernel) against finite differences,
weights, configs, files and bad input."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gradcheck import assert_gradient
from test_conv_layers import weighted_sum


def expected_normalization(kernel, u, iterations):
    """Keras's sequence with NumPy's norms: (u, kernel / sigma)."""
    w = kernel.reshape(-1, kernel.shape[-1])
    for _ in range(iterations):
        v = u @ w.T
        v = v / numpy.linalg.norm(v)
        u = v @ w
        u = u / numpy.linalg.norm(u)
    sigma = (v @ w @ u.T).item()
    return u, kernel / sigma


def wrapped(kind, **kwargs):
    init = {"kernel_initializer": gpu_dl.initializers.GlorotUniform(seed=1),
            "bias_initializer": gpu_dl.initializers.RandomNormal(seed=2)}
    if kind == "dense":
        return layers.Dense(5, activation="tanh", **init, **kwargs), (2, 7)
    if kind == "conv2d":
        return layers.Conv2D(3, (2, 3), **init, **kwargs), (2, 5, 6, 2)
    if kind == "conv1d":
        return layers.Conv1D(4, 3, padding="same", **init, **kwargs), (2, 7, 3)
    return layers.Embedding(9, 4, embeddings_initializer=gpu_dl.initializers.RandomNormal(seed=3), **kwargs), (2, 5)


KINDS = ["dense", "conv2d", "conv1d", "embedding"]


def inputs(kind, shape, rng, xp):
    if kind == "embedding":
        return xp.asarray(rng.integers(0, 9, shape))
    return xp.asarray(rng.standard_normal(shape))


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("iterations", [1, 3])
def test_training_call_normalizes_the_kernel_as_keras_does(xp, rng, kind, iterations):
    inner, shape = wrapped(kind, dtype="float64")
    layer = layers.SpectralNormalization(inner, power_iterations=iterations)
    x = inputs(kind, shape, rng, xp)
    layer(x)                                    # builds; inference leaves the kernel alone
    kernel, u = layer.kernel.numpy(), layer.vector_u.numpy()
    assert u.shape == (1, kernel.shape[-1]) and not layer.vector_u.trainable
    numpy.testing.assert_array_equal(to_numpy(layer(x)), to_numpy(inner(x)))
    numpy.testing.assert_array_equal(layer.kernel.numpy(), kernel)
    y = layer(x, training=True)
    want_u, want_kernel = expected_normalization(kernel, u, iterations)
    numpy.testing.assert_allclose(layer.vector_u.numpy(), want_u, rtol=1e-12, atol=1e-15)
    numpy.testing.assert_allclose(layer.kernel.numpy(), want_kernel, rtol=1e-12, atol=1e-15)
    assert layer.kernel is getattr(inner, "kernel", None) or layer.kernel is inner.embeddings
    numpy.testing.assert_array_equal(to_numpy(y), to_numpy(inner(x)))      # the layer ran with W / sigma
    numpy.testing.assert_array_equal(to_numpy(layer(x)), to_numpy(y))      # and inference keeps it


def test_many_iterations_give_a_spectral_norm_of_one(xp, rng):
    layer = layers.SpectralNormalization(layers.Dense(6, dtype="float64"), power_iterations=200)
    layer(xp.asarray(rng.standard_normal((3, 9))), training=True)
    assert numpy.linalg.norm(layer.kernel.numpy(), 2) == pytest.approx(1.0, rel=1e-9)


def test_an_all_zero_kernel_is_left_as_it_is(xp, rng):
    layer = layers.SpectralNormalization(layers.Dense(3, kernel_initializer="zeros"))
    x = xp.asarray(rng.standard_normal((2, 4)).astype("float32"))
    layer(x)
    u = layer.vector_u.numpy()
    layer(x, training=True)
    numpy.testing.assert_array_equal(layer.vector_u.numpy(), u)
    assert (layer.kernel.numpy() == 0).all()


@pytest.mark.parametrize("kind", ["dense", "conv2d", "conv1d"])
def test_gradients_are_the_wrapped_layers_at_the_stored_kernel(xp, rng, kind):
    """Keras's gradient: of the output with respect to the kernel variable, which holds W / sigma when the
    wrapped layer reads it; sigma is not differentiated (the assignment is outside the gradient)."""
    inner, shape = wrapped(kind, dtype="float64")
    layer = layers.SpectralNormalization(inner, power_iterations=2)
    x = inputs(kind, shape, rng, xp)
    y = layer(x, training=True)
    w = xp.asarray(rng.standard_normal(y.shape))
    dx = layer.backward(w)
    normalized = layer.kernel.value.copy()
    # inference runs the stored kernel as it is: the function whose gradient the training call's backward is
    assert_gradient(lambda v: weighted_sum(inner, v, w), x, dx, rng, what="input")
    for var in layer.trainable_weights:
        grad, original = var.grad.copy(), var.value.copy()

        def objective(value, var=var):
            var.value[...] = value
            return weighted_sum(inner, x, w)

        assert_gradient(objective, original.copy(), grad, rng, what=var.name)
        var.value[...] = original
    numpy.testing.assert_array_equal(to_numpy(layer.kernel.value), to_numpy(normalized))


def test_weights_in_keras_order_and_counts(capsys):
    layer = layers.SpectralNormalization(layers.Dense(3), name="sn")
    model = gpu_dl.Sequential([layers.Input((4,)), layer])
    assert [v.name for v in layer.weights] == ["kernel", "vector_u", "bias"]
    assert [v.name for v in layer.trainable_weights] == ["kernel", "bias"]
    assert [v.name for v in layer.non_trainable_weights] == ["vector_u"]
    assert [w.shape for w in layer.get_weights()] == [(4, 3), (1, 3), (3,)]
    assert layer.count_params() == 18
    model.summary()
    text = capsys.readouterr().out
    assert "(None, 3)" in text and "18" in text
    layer.trainable = False
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 3 and not layer.layer.trainable
    layer.set_weights([numpy.ones((4, 3)), numpy.full((1, 3), 2.0), numpy.zeros(3)])
    assert (layer.vector_u.numpy() == 2).all() and (layer.layer.kernel.numpy() == 1).all()
    with pytest.raises(ValueError, match="'sn' expects 3 weight"):
        layer.set_weights([numpy.ones((4, 3))])


def test_training_and_files(tmp_path, rng):
    gpu_dl.backend.set_random_seed(2)
    model = gpu_dl.Sequential([layers.Input((6, 5, 2)),
                               layers.SpectralNormalization(layers.Conv2D(3, 3, activation="relu")),
                               layers.Flatten(),
                               layers.SpectralNormalization(layers.Dense(4, activation="softmax"), 2)])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = rng.standard_normal((8, 6, 5, 2)).astype("float32"), rng.integers(0, 4, 8)
    history = model.fit(x, y, epochs=3, batch_size=4, verbose=0)
    assert numpy.isfinite(history.history["loss"]).all()
    model.save(tmp_path / "m.keras")
    again = gpu_dl.models.load_model(tmp_path / "m.keras")
    for a, b in zip(model.get_weights(), again.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    numpy.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    config = model.layers[-1].get_config()
    assert config["power_iterations"] == 2 and config["layer"]["class_name"] == "Dense"
    rebuilt = layers.SpectralNormalization.from_config(config)
    assert rebuilt.power_iterations == 2 and rebuilt.layer.units == 4


@pytest.mark.parametrize("inner", [layers.Flatten(), layers.MaxPooling2D(), layers.Activation("relu")])
def test_a_layer_without_a_kernel_is_refused(inner):
    with pytest.raises(ValueError, match=r"SpectralNormalization layer 'sn'.*'" + inner.name + "'.*no 'kernel'"):
        layers.SpectralNormalization(inner, name="sn")


@pytest.mark.parametrize("iterations", [0, -1, 1.5, True])
def test_bad_power_iterations(iterations):
    with pytest.raises(ValueError, match=r"SpectralNormalization layer 'sn'.*power_iterations"):
        layers.SpectralNormalization(layers.Dense(2), power_iterations=iterations, name="sn")


def test_not_a_layer():
    with pytest.raises(TypeError, match="SpectralNormalization wraps"):
        layers.SpectralNormalization("dense")
