"""The layers of Keras 3's guide "Introduction to Keras for researchers" that hold variables made in ``__init__``
(``Linear`` and ``ComputeSum``), written once for both libraries, against Keras itself: the variables are the
layer's weights in the same order, trainable or not as made, and the layers compute and train the same. The
guide's training loops use the backend's automatic differentiation (GradientTape, jax.grad), which gpu_dl does
not have; here the layers train through fit."""
import os
import warnings

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402


@pytest.fixture(autouse=True)
def cpu(on_cpu):
    """gpu_dl on NumPy, as Keras runs here on the CPU."""


def linear_class(lib):
    class Linear(lib.layers.Layer):
        """y = w.x + b"""

        def __init__(self, units=32, input_dim=32):
            super().__init__()
            w_init = lib.initializers.RandomNormal(seed=1)
            self.w = lib.Variable(initializer=w_init(shape=(input_dim, units), dtype="float32"), trainable=True)
            b_init = lib.initializers.Zeros()
            self.b = lib.Variable(initializer=b_init(shape=(units,), dtype="float32"), trainable=True)

        def call(self, inputs):
            return lib.ops.matmul(inputs, self.w) + self.b

    return Linear


def compute_sum_class(lib):
    class ComputeSum(lib.layers.Layer):
        """Returns the sum of the inputs."""

        def __init__(self, input_dim):
            super().__init__()
            self.total = lib.Variable(initializer=lib.initializers.Zeros()(shape=(input_dim,)), trainable=False)

        def call(self, inputs):
            self.total.assign_add(lib.ops.sum(inputs, axis=0))
            return self.total

    return ComputeSum


def test_variables_made_in_init_are_the_layers_weights():
    for lib in (gpu_dl, keras):
        linear_layer = linear_class(lib)(units=4, input_dim=2)
        y = linear_layer(numpy.ones((2, 2), "float32"))
        assert tuple(y.shape) == (2, 4)
        assert linear_layer.weights == [linear_layer.w, linear_layer.b]
        assert linear_layer.trainable_weights == [linear_layer.w, linear_layer.b]
        numpy.testing.assert_allclose(lib.ops.convert_to_numpy(y), numpy.ones((2, 2)) @ numpy.asarray(linear_layer.w),
                                      rtol=1e-6)

        my_sum = compute_sum_class(lib)(2)
        x = numpy.ones((2, 2), "float32")
        numpy.testing.assert_array_equal(lib.ops.convert_to_numpy(my_sum(x)), [2.0, 2.0])
        numpy.testing.assert_array_equal(lib.ops.convert_to_numpy(my_sum(x)), [4.0, 4.0])
        assert my_sum.weights == [my_sum.total]
        assert my_sum.non_trainable_weights == [my_sum.total]
        assert my_sum.trainable_weights == []


def test_a_layer_of_variables_trains_as_in_keras():
    rng = numpy.random.default_rng(0)
    x, y = rng.random((8, 2)).astype("float32"), rng.random((8, 3)).astype("float32")
    histories, weights = [], []
    for lib in (gpu_dl, keras):
        model = lib.Sequential([lib.Input((2,)), linear_class(lib)(3, 2)])
        model.set_weights([numpy.arange(6, dtype="float32").reshape(2, 3) / 10, numpy.zeros(3, "float32")])
        model.compile(optimizer="sgd", loss="mse")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            histories.append(model.fit(x, y, epochs=3, verbose=0, shuffle=False).history["loss"])
        weights.append(model.get_weights())
    numpy.testing.assert_allclose(histories[0], histories[1], rtol=1e-5)
    for a, b in zip(*weights):
        numpy.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_the_variable_constructor_takes_keras_arguments():
    for lib in (gpu_dl, keras):
        assert str(lib.Variable(5.0).dtype) == "float32"
        assert str(lib.Variable(numpy.zeros(2)).dtype) == "float64"        # an array keeps its dtype
        assert tuple(lib.Variable("ones", shape=(2, 3)).shape) == (2, 3)
        named = lib.Variable(numpy.ones(2), dtype="float32", name="a", trainable=False)
        assert named.name == "a" and not named.trainable and str(named.dtype) == "float32"
        with pytest.raises(ValueError, match="the `shape` argument should be specified"):
            lib.Variable("zeros")
        with pytest.raises(ValueError, match="cannot contain character `/`"):
            lib.Variable(1.0, name="a/b")
