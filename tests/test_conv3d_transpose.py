"""Conv3DTranspose: forward against a scatter-add written in NumPy, backward against float64 finite differences,
output sizes with output_padding and "same", configs and files, and bad inputs naming the layer."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gpu_dl.models import load_model
from test_conv_layers import check_layer_gradients
from test_conv_transpose import keras_axis, seeded


def expected_conv3d_transpose(x, kernel, strides, dilation, padding, output_padding=None):
    """Every input voxel times the kernel, scatter-added at stride ``strides`` into the full output
    ((D - 1) * sd + span_d, ...), then cut (or extended with zeros at the back/bottom/right) to Keras's
    output. x (N, D, H, W, C), kernel (KD, KH, KW, F, C)."""
    n, sizes, channels = x.shape[0], x.shape[1:4], x.shape[4]
    windows, filters = kernel.shape[:3], kernel.shape[3]
    full = numpy.zeros((n,) + tuple((s - 1) * st + d * (k - 1) + 1
                                    for s, st, d, k in zip(sizes, strides, dilation, windows)) + (filters,))
    for i in range(sizes[0]):
        for j in range(sizes[1]):
            for k in range(sizes[2]):
                for a in range(windows[0]):
                    for b in range(windows[1]):
                        for c in range(windows[2]):
                            at = (i * strides[0] + a * dilation[0], j * strides[1] + b * dilation[1],
                                  k * strides[2] + c * dilation[2])
                            full[:, at[0], at[1], at[2]] += x[:, i, j, k] @ kernel[a, b, c].T
    assert kernel.shape[4] == channels
    extras = (None,) * 3 if output_padding is None else output_padding
    axes = [keras_axis(*args, padding, e) for args, e in zip(zip(sizes, windows, strides, dilation), extras)]
    full = numpy.pad(full, [(0, 0)] + [(0, max(0, start + length - f)) for (length, start), f in
                                       zip(axes, full.shape[1:4])] + [(0, 0)])
    (od, front), (oh, top), (ow, left) = axes
    return full[:, front:front + od, top:top + oh, left:left + ow]


CASES = [
    ({"filters": 2, "kernel_size": 2}, (2, 2, 3, 2, 3)),
    ({"filters": 3, "kernel_size": (2, 3, 1), "strides": (2, 1, 3), "padding": "same"}, (1, 3, 2, 2, 2)),
    ({"filters": 2, "kernel_size": 3, "strides": 2, "output_padding": 1}, (1, 2, 2, 3, 1)),
    ({"filters": 2, "kernel_size": (3, 2, 3), "strides": (3, 2, 2), "padding": "same", "output_padding": (1, 0, 1)},
     (2, 2, 2, 1, 2)),
    ({"filters": 1, "kernel_size": 2, "dilation_rate": (2, 1, 2), "padding": "same"}, (1, 3, 2, 3, 2)),
    ({"filters": 2, "kernel_size": 1, "strides": 3}, (1, 2, 1, 2, 3)),
]


@pytest.mark.parametrize("kwargs,shape", CASES)
@pytest.mark.parametrize("activation", ["tanh", None])
def test_forward_is_the_scatter_and_gradients_match_finite_differences(xp, rng, kwargs, shape, activation):
    layer = layers.Conv3DTranspose(activation=activation, **seeded(**kwargs))
    x = xp.asarray(rng.standard_normal(shape))
    y = to_numpy(layer(x))
    kernel, bias = layer.get_weights()
    assert kernel.shape == layer.kernel_size + (kwargs["filters"], shape[-1])
    z = expected_conv3d_transpose(to_numpy(x), kernel, layer.strides, layer.dilation_rate, layer.padding,
                                  layer.output_padding) + bias
    numpy.testing.assert_allclose(y, numpy.tanh(z) if activation else z, rtol=1e-12, atol=1e-12)
    assert layer.compute_output_shape((None,) + shape[1:]) == (None,) + y.shape[1:]
    check_layer_gradients(layer, x, rng)


def test_channels_first_is_channels_last_transposed(xp, rng):
    last = layers.Conv3DTranspose(2, 2, strides=2, **seeded())
    first = layers.Conv3DTranspose(2, 2, strides=2, data_format="channels_first", **seeded())
    x = xp.asarray(rng.standard_normal((1, 2, 3, 2, 3)))
    want = to_numpy(last(x))
    first.build((1, 3, 2, 3, 2))
    first.set_weights(last.get_weights())
    got = to_numpy(first(xp.ascontiguousarray(x.transpose(0, 4, 1, 2, 3))))
    numpy.testing.assert_allclose(got.transpose(0, 2, 3, 4, 1), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding", ["valid", "same"])
@pytest.mark.parametrize("output_padding", [None, 0, 1])
def test_output_sizes_follow_keras_formulas(padding, output_padding):
    layer = layers.Conv3DTranspose(1, (3, 2, 4), strides=(2, 3, 2), padding=padding, output_padding=output_padding)
    want = tuple(keras_axis(n, k, s, 1, padding, output_padding)[0] for n, k, s in zip((4, 5, 3), (3, 2, 4),
                                                                                      (2, 3, 2)))
    assert layer.compute_output_shape((None, 4, 5, 3, 2)) == (None,) + want + (1,)


def test_bad_arguments_and_inputs_name_the_layer(xp):
    with pytest.raises(ValueError, match=r"up_v.*output_padding must be less than strides.*depth"):
        layers.Conv3DTranspose(2, 3, strides=(1, 2, 2), output_padding=1, name="up_v")
    with pytest.raises(ValueError, match=r"up_v.*filters"):
        layers.Conv3DTranspose(0, 3, name="up_v")
    up = layers.Conv3DTranspose(2, 2, name="up_v")
    with pytest.raises(ValueError, match=r"up_v.*rank 5"):
        up(xp.ones((2, 3, 3, 1), dtype="float32"))
    assert not up.built
    up(xp.ones((1, 2, 2, 2, 3), dtype="float32"))
    with pytest.raises(ValueError, match=r"up_v.*3 input channels"):
        up(xp.ones((1, 2, 2, 2, 4), dtype="float32"))
    with pytest.raises(ValueError, match=r"up_v.*along the depth, an input of 1 gives an output of 0"):
        layers.Conv3DTranspose(1, 2, padding="same", output_padding=0, name="up_v").compute_output_shape(
            (None, 1, 2, 2, 1))


def test_keras_positional_order_and_aliases():
    layer = layers.Convolution3DTranspose(2, 3, 2, "same", "channels_last", 1)
    assert layers.Convolution3DTranspose is layers.Conv3DTranspose
    assert layer.output_padding == (1, 1, 1) and layer.data_format == "channels_last"


def test_configs_round_trip_and_files_load(tmp_path, rng):
    model = gpu_dl.Sequential([layers.Input((2, 3, 2, 2)),
                               layers.Conv3DTranspose(3, 2, strides=2, padding="same", activation="relu"),
                               layers.Convolution3DTranspose(1, (1, 2, 3), output_padding=(0, 0, 0))])
    x = rng.standard_normal((2, 2, 3, 2, 2)).astype("float32")
    want = model.predict(x, verbose=0)
    assert want.shape == (2, 4, 7, 6, 1)
    copy = layers.Conv3DTranspose.from_config(model.layers[0].get_config())
    assert copy.get_config() == {**model.layers[0].get_config(), "name": copy.name}
    model.save(tmp_path / "up.keras")
    loaded = load_model(tmp_path / "up.keras")
    assert [type(layer).__name__ for layer in loaded.layers] == ["Conv3DTranspose"] * 2
    numpy.testing.assert_allclose(loaded.predict(x, verbose=0), want, rtol=1e-6, atol=1e-6)
