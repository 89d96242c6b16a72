"""keras.ops.conv and keras.ops.conv_transpose as ``gpu_dl.ops.conv`` / ``gpu_dl.ops.conv_transpose``: on arrays
and in functional models against plain NumPy (odd sizes, strides 1 to 3, dilation 1 and 2, both paddings, both
data formats, 1-, 2- and 3-D), gradients in the input and the kernel against float64 finite differences, saving
and loading, the errors, the namespaces, and a composite layer whose call uses them."""
import pkgutil

import numpy
import pytest

import gpu_dl
from gpu_dl import layers, ops
from gpu_dl.backend import array_module, to_numpy
from gpu_dl.models import load_model
from gpu_dl.models.saving import model_config, model_from_config
from conv_op_cases import CASES, IDS, call, expected, np_conv
from gradcheck import assert_gradient
from keras_ops_harness import assert_input_gradients, assert_weight_gradients


def _arrays(rng, x_shape, kernel_shape, dtype="float64"):
    return rng.standard_normal(x_shape).astype(dtype), rng.standard_normal(kernel_shape).astype(dtype)


def _model(x_shape, kernel_shape, transposed, settings, dtype="float64"):
    x = gpu_dl.Input(batch_shape=x_shape, dtype=dtype, name="x")
    kernel = gpu_dl.Input(batch_shape=kernel_shape, dtype=dtype, name="kernel")
    return gpu_dl.Model([x, kernel], call(ops, transposed, x, kernel, settings))


@pytest.mark.parametrize("name,x_shape,kernel_shape,transposed,settings", CASES, ids=IDS)
def test_each_call_on_arrays_computes_what_numpy_does(xp, rng, name, x_shape, kernel_shape, transposed, settings):
    x, kernel = _arrays(rng, x_shape, kernel_shape)
    y = call(ops, transposed, xp.asarray(x), xp.asarray(kernel), settings)
    assert array_module(y) is xp and y.dtype == numpy.float64 and y.flags.c_contiguous
    numpy.testing.assert_allclose(to_numpy(y), expected(transposed, x, kernel, settings), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name,x_shape,kernel_shape,transposed,settings", CASES, ids=IDS)
def test_each_call_in_a_functional_model_computes_what_numpy_does(xp, rng, name, x_shape, kernel_shape,
                                                                 transposed, settings):
    model = _model(x_shape, kernel_shape, transposed, settings)
    x, kernel = _arrays(rng, x_shape, kernel_shape)
    want = expected(transposed, x, kernel, settings)
    assert tuple(model.output_shape) == want.shape
    y = model.forward([xp.asarray(x), xp.asarray(kernel)])
    assert array_module(y) is xp and y.dtype == numpy.float64
    numpy.testing.assert_allclose(to_numpy(y), want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name,x_shape,kernel_shape,transposed,settings", CASES, ids=IDS)
def test_the_input_and_kernel_gradients_are_finite_differences(xp, rng, name, x_shape, kernel_shape, transposed,
                                                                 settings):
    model = _model(x_shape, kernel_shape, transposed, settings)
    arrays = [xp.asarray(a) for a in _arrays(rng, x_shape, kernel_shape)]
    w = xp.asarray(rng.standard_normal(expected(transposed, *(to_numpy(a) for a in arrays), settings).shape))
    model.forward(arrays, training=True)
    grads = model.backward(w)
    for i, what in enumerate(("input", "kernel")):
        def objective(v, i=i):
            given = list(arrays)
            given[i] = v
            return (model.forward(given, training=True) * w).sum()
        assert_gradient(objective, arrays[i], grads[i], rng, what=f"{name}: {what}", rtol=1e-6)


@pytest.mark.parametrize("name,x_shape,kernel_shape,transposed,settings", CASES, ids=IDS)
def test_each_call_is_saved_and_loaded_as_keras_writes_it(tmp_path, rng, name, x_shape, kernel_shape, transposed,
                                                          settings):
    model = _model(x_shape, kernel_shape, transposed, settings)
    arrays = list(_arrays(rng, x_shape, kernel_shape))
    want = expected(transposed, *arrays, settings)
    numpy.testing.assert_allclose(model_from_config(model_config(model)).forward(arrays), want, rtol=1e-10)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    numpy.testing.assert_allclose(loaded.forward(arrays), want, rtol=1e-10, atol=1e-10)
    entry, = [e for e in model_config(loaded)["config"]["layers"] if e["module"] == "keras.src.ops.nn"]
    assert entry["class_name"] == ("ConvTranspose" if transposed else "Conv")
    keys = ["name", "strides", "padding"] + (["output_padding"] if transposed else []) + \
        ["data_format", "dilation_rate"]
    assert sorted(entry["config"]) == sorted(keys)
    assert entry["config"]["data_format"] == settings.get("data_format", "channels_last")
    assert entry["config"]["strides"] == (list(settings["strides"]) if isinstance(settings.get("strides"), tuple)
                                          else settings.get("strides", 1))


def test_float32_gives_float32_and_integers_floatx(rng):
    name, x_shape, kernel_shape, transposed, settings = CASES[5]
    x, kernel = _arrays(rng, x_shape, kernel_shape, "float32")
    y = call(ops, transposed, x, kernel, settings)
    assert y.dtype == numpy.float32
    numpy.testing.assert_allclose(y, expected(transposed, x, kernel, settings), rtol=1e-4, atol=1e-5)
    model = _model(x_shape, kernel_shape, transposed, settings, "float32")
    assert model.outputs[0].dtype == "float32" and model.forward([x, kernel]).dtype == numpy.float32
    ints = rng.integers(-3, 4, (2, 6, 5, 2)).astype("int32")
    y = ops.conv(ints, numpy.ones((2, 2, 2, 1), "int32"))
    assert y.dtype == numpy.float32
    numpy.testing.assert_array_equal(y, np_conv(ints, numpy.ones((2, 2, 2, 1))))


def test_an_input_of_more_channels_than_the_kernel_takes_is_a_grouped_convolution(xp, rng):
    x, kernel = _arrays(rng, (2, 6, 5, 6), (3, 2, 2, 9))        # three groups of 2 channels, 3 filters each
    y = ops.conv(xp.asarray(x), xp.asarray(kernel), padding="same")
    want = numpy.concatenate([np_conv(x[..., 2 * g:2 * g + 2], kernel[..., 3 * g:3 * g + 3], padding="same")
                              for g in range(3)], axis=-1)
    numpy.testing.assert_allclose(to_numpy(y), want, rtol=1e-10, atol=1e-10)
    model = _model(x.shape, kernel.shape, False, {"padding": "same"})
    arrays = [xp.asarray(x), xp.asarray(kernel)]
    assert_input_gradients(model, arrays, xp.asarray(rng.standard_normal(want.shape)), rng, "grouped conv: argument")


def test_unknown_sizes_stay_unknown_in_the_output_shape():
    x = gpu_dl.Input((None, None, 3))
    kernel = numpy.ones((3, 3, 3, 4), "float32")
    assert tuple(ops.conv(x, kernel, 2, "same").shape) == (None, None, None, 4)
    assert tuple(ops.conv_transpose(x, numpy.ones((3, 3, 5, 3), "float32"), 2, "same").shape) == \
        (None, None, None, 5)
    known = gpu_dl.Input((7, 5, 3))
    assert tuple(ops.conv_transpose(known, numpy.ones((3, 3, 5, 3), "float32"), 2).shape) == (None, 15, 11, 5)


def test_bad_arguments_say_what_was_expected():
    x = numpy.ones((2, 7, 6, 3), "float32")
    with pytest.raises(ValueError, match=r"conv.*kernel of an input of 2 spatial axes has rank 4"):
        ops.conv(x, numpy.ones((3, 3, 4), "float32"))
    with pytest.raises(ValueError, match=r"3 channels .* multiple of the kernel's 2 input channels"):
        ops.conv(x, numpy.ones((3, 3, 2, 4), "float32"))
    with pytest.raises(ValueError, match=r"make 3 groups, which must divide the kernel's 4 output channels"):
        ops.conv(x, numpy.ones((3, 3, 1, 4), "float32"))
    with pytest.raises(ValueError, match=r"ConvTranspose.*takes 4 input channels, the input .* has 3"):
        ops.conv_transpose(x, numpy.ones((3, 3, 3, 4), "float32"))
    with pytest.raises(ValueError, match=r"`output_padding` must be less than `strides`"):
        ops.conv_transpose(x, numpy.ones((3, 3, 2, 3), "float32"), strides=2, output_padding=2)
    with pytest.raises(ValueError, match=r"`padding` must be 'valid' or 'same', got 'causal'"):
        ops.conv(x, numpy.ones((3, 3, 3, 4), "float32"), padding="causal")
    with pytest.raises(ValueError, match=r"a window of 9 \(dilation 1\) does not fit an axis of 7"):
        ops.conv(x, numpy.ones((9, 3, 3, 4), "float32"))
    with pytest.raises(ValueError, match=r"`strides` must be a positive int or 2 positive ints"):
        ops.conv(x, numpy.ones((3, 3, 3, 4), "float32"), strides=(1, 2, 1))
    with pytest.raises(ValueError, match=r"data_format must be 'channels_last' or 'channels_first', got 'NHWC'"):
        ops.conv(x, numpy.ones((3, 3, 3, 4), "float32"), data_format="NHWC")
    with pytest.raises(ValueError, match=r"the input must have rank 3 or 4 or 5"):
        ops.conv(numpy.ones((2, 3), "float32"), numpy.ones((3, 3), "float32"))


def test_the_functions_are_keras_s_in_both_namespaces_and_no_internal_module_takes_a_keras_name():
    from gpu_dl.layers import keras_ops
    from gpu_dl.ops import nn
    import gpu_dl.ops.convolution                               # an internal module imported ...
    import gpu_dl.ops.transposed_convolution  # noqa: F401
    assert callable(ops.conv) and ops.conv.__name__ == "conv"   # ... leaves the Keras functions in place
    assert ops.conv_transpose.__name__ == "conv_transpose"
    assert nn.conv is ops.conv and nn.conv_transpose is ops.conv_transpose
    assert "conv" in dir(nn) and "conv_transpose" in dir(ops)
    internal = {m.name for m in pkgutil.iter_modules(gpu_dl.ops.__path__)}
    # (the module files named as Keras's namespaces stand for those namespaces: `import gpu_dl.ops.nn`)
    assert "convolution" in internal and internal & set(keras_ops.__all__) == set(keras_ops.NAMESPACES)


class UpDown(layers.Layer):
    """A composite layer: a strided convolution down and a transposed one back up, with its own kernels."""

    def build(self, input_shape):
        self.down = self.add_weight(shape=(3, 3, input_shape[-1], 4), initializer="glorot_uniform", name="down")
        self.up = self.add_weight(shape=(3, 3, 2, 4), initializer="glorot_uniform", name="up")

    def call(self, x):
        h = ops.relu(ops.conv(x, self.down, strides=2, padding="same"))
        return ops.conv_transpose(h, self.up, strides=2, padding="same", data_format="channels_last")


def test_a_composite_layer_using_the_ops_has_exact_weight_gradients(rng):
    x = gpu_dl.Input((5, 7, 3), dtype="float64")
    layer = UpDown(dtype="float64")
    model = gpu_dl.Model(x, layer(x))
    assert tuple(model.output_shape) == (None, 6, 8, 2)
    data = rng.standard_normal((2, 5, 7, 3))
    w = rng.standard_normal((2, 6, 8, 2))
    assert_weight_gradients(model, data, w, rng, weights=(layer.down, layer.up))
