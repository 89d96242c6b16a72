"""UpSampling2D/3D (nearest and bilinear), Cropping2D/3D and ZeroPadding3D: forward against NumPy written
per axis, backward against finite differences, channels_first, shapes, configs and bad input."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gpu_dl.ops.upsample import upsample_linear_axis, upsample_linear_axis_backward
from gradcheck import assert_gradient
from test_conv_layers import check_layer_gradients


# ------------------------------------------------------------------ expectations
def nearest(x, axis, size):
    """Output o along ``axis`` is input o // size."""
    return numpy.take(x, numpy.arange(size * x.shape[axis]) // size, axis=axis)


def linear(x, axis, size):
    """Half-pixel resize: output o reads src = (o + 0.5) / size - 0.5, clamped at 0, between floor(src) and the
    next entry (the last entry past the end), as PyTorch's interpolate(align_corners=False) computes it."""
    n = x.shape[axis]
    src = numpy.maximum((numpy.arange(size * n) + 0.5) / size - 0.5, 0)
    lo = numpy.floor(src).astype(int)
    hi = numpy.minimum(lo + 1, n - 1)
    frac = (src - lo).reshape((-1,) + (1,) * (x.ndim - axis - 1))
    return numpy.take(x, lo, axis=axis) * (1 - frac) + numpy.take(x, hi, axis=axis) * frac


def as_format(x_last, data_format):
    return numpy.moveaxis(x_last, -1, 1) if data_format == "channels_first" else x_last


def to_last(y, data_format):
    return numpy.moveaxis(y, 1, -1) if data_format == "channels_first" else y


# ------------------------------------------------------------------ UpSampling2D / 3D
UP2D = [((2, 3, 5, 4), (2, 2)), ((1, 1, 7, 2), (3, 1)), ((3, 17, 1, 3), (1, 4)), ((2, 4, 3, 1), (3, 5)),
        ((1, 1, 1, 2), (2, 3))]


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
@pytest.mark.parametrize("shape,size", UP2D)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_up_sampling2d(xp, rng, interpolation, shape, size, data_format):
    layer = layers.UpSampling2D(size, data_format=data_format, interpolation=interpolation, dtype="float64")
    x_last = rng.standard_normal(shape)
    x = as_format(x_last, data_format)
    y = to_numpy(layer(xp.asarray(x)))
    expect = nearest if interpolation == "nearest" else linear
    want = expect(expect(x_last, 2, size[1]), 1, size[0])
    numpy.testing.assert_allclose(to_last(y, data_format), want, rtol=1e-13, atol=1e-13)
    assert layer.compute_output_shape((None,) + x.shape[1:]) == (None,) + y.shape[1:]
    assert y.flags.c_contiguous
    check_layer_gradients(layer, xp.asarray(x), rng)


def test_bilinear_values_written_out(xp):
    """One row [0, 1, 2] up-sampled 2x: edges held, interior at the quarter points."""
    layer = layers.UpSampling2D((1, 2), interpolation="bilinear", dtype="float64")
    y = to_numpy(layer(xp.asarray(numpy.array([0.0, 1.0, 2.0]).reshape(1, 1, 3, 1))))
    numpy.testing.assert_allclose(y.reshape(-1), [0, 0.25, 0.75, 1.25, 1.75, 2], rtol=1e-15)
    layer = layers.UpSampling2D((3, 1), interpolation="BiLinear", dtype="float64")   # any case, as in Keras
    assert layer.interpolation == "bilinear"
    y = to_numpy(layer(xp.asarray(numpy.array([0.0, 3.0]).reshape(1, 2, 1, 1))))
    numpy.testing.assert_allclose(y.reshape(-1), [0, 0, 1, 2, 3, 3], rtol=1e-15, atol=1e-15)


@pytest.mark.parametrize("n,size", [(1, 2), (2, 3), (5, 4), (7, 5), (3, 1)])
def test_linear_axis_op_and_its_backward(xp, rng, n, size):
    x = xp.asarray(rng.standard_normal((2, n, 3)))
    y = upsample_linear_axis(x, 1, size)
    numpy.testing.assert_allclose(to_numpy(y), linear(to_numpy(x), 1, size), rtol=1e-13, atol=1e-14)
    w = xp.asarray(rng.standard_normal(y.shape))
    dx = upsample_linear_axis_backward(w, 1, size)
    assert_gradient(lambda v: (upsample_linear_axis(v, 1, size) * w).sum(), x, dx, rng)
    # each output is a convex combination of inputs, so the weights each input sends out sum to size
    ones = upsample_linear_axis_backward(xp.ones(y.shape), 1, size)
    numpy.testing.assert_allclose(to_numpy(ones).sum(axis=1), numpy.full((2, 3), float(size * n)), rtol=1e-13)


@pytest.mark.parametrize("shape,size", [((2, 2, 3, 1, 2), (2, 2, 2)), ((1, 1, 2, 3, 3), (3, 1, 2))])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_up_sampling3d(xp, rng, shape, size, data_format):
    layer = layers.UpSampling3D(size, data_format=data_format, dtype="float64")
    x_last = rng.standard_normal(shape)
    x = as_format(x_last, data_format)
    y = to_numpy(layer(xp.asarray(x)))
    want = nearest(nearest(nearest(x_last, 1, size[0]), 2, size[1]), 3, size[2])
    numpy.testing.assert_array_equal(to_last(y, data_format), want)
    assert layer.compute_output_shape((None,) + x.shape[1:]) == (None,) + y.shape[1:]
    check_layer_gradients(layer, xp.asarray(x), rng)


def test_up_sampling_defaults_and_unknown_sizes():
    assert layers.UpSampling2D().size == (2, 2) and layers.UpSampling2D(3).size == (3, 3)
    assert layers.UpSampling2D().interpolation == "nearest"
    assert layers.UpSampling3D().size == (2, 2, 2)
    assert layers.UpSampling2D((2, 3)).compute_output_shape((None, None, 5, 4)) == (None, None, 15, 4)
    assert (layers.UpSampling2D((2, 3), data_format="channels_first").compute_output_shape((4, 3, 5, None))
            == (4, 3, 10, None))
    assert layers.UpSampling3D((1, 2, 3)).compute_output_shape((None, 2, 2, 2, 1)) == (None, 2, 4, 6, 1)


# ------------------------------------------------------------------ Cropping2D / 3D
CROP2D = [(1, ((1, 1), (1, 1))), ((2, 0), ((2, 2), (0, 0))), (((0, 3), (4, 1)), ((0, 3), (4, 1))),
          (((16, 0), (0, 0)), ((16, 0), (0, 0))), ([[1, 2], 3], ((1, 2), (3, 3)))]


@pytest.mark.parametrize("cropping,pairs", CROP2D)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_cropping2d(xp, rng, cropping, pairs, data_format):
    layer = layers.Cropping2D(cropping, data_format=data_format, dtype="float64")
    x_last = rng.standard_normal((2, 17, 9, 3))
    x = as_format(x_last, data_format)
    y = to_numpy(layer(xp.asarray(x)))
    assert layer.cropping == pairs
    (top, bottom), (left, right) = pairs
    numpy.testing.assert_array_equal(to_last(y, data_format), x_last[:, top:17 - bottom, left:9 - right])
    assert layer.compute_output_shape((None,) + x.shape[1:]) == (None,) + y.shape[1:]
    assert y.flags.c_contiguous
    check_layer_gradients(layer, xp.asarray(x), rng)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_cropping3d(xp, rng, data_format):
    layer = layers.Cropping3D(((1, 0), 2, (0, 3)), data_format=data_format, dtype="float64")
    x_last = rng.standard_normal((2, 3, 5, 7, 2))
    x = as_format(x_last, data_format)
    y = to_numpy(layer(xp.asarray(x)))
    assert layer.cropping == ((1, 0), (2, 2), (0, 3))
    numpy.testing.assert_array_equal(to_last(y, data_format), x_last[:, 1:, 2:3, :4])
    check_layer_gradients(layer, xp.asarray(x), rng)


def test_cropping_defaults_are_keras_s():
    assert layers.Cropping2D().cropping == ((0, 0), (0, 0))
    assert layers.Cropping3D().cropping == ((1, 1), (1, 1), (1, 1))
    assert layers.Cropping3D(2).cropping == ((2, 2),) * 3
    assert layers.Cropping2D(1).compute_output_shape((None, None, 5, 3)) == (None, None, 3, 3)


# ------------------------------------------------------------------ ZeroPadding3D
@pytest.mark.parametrize("padding,pairs", [(None, ((1, 1),) * 3), (2, ((2, 2),) * 3),
                                           ((0, 1, 2), ((0, 0), (1, 1), (2, 2))),
                                           (((1, 0), (0, 2), (3, 1)), ((1, 0), (0, 2), (3, 1)))])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_zero_padding3d(xp, rng, padding, pairs, data_format):
    kwargs = {} if padding is None else {"padding": padding}
    layer = layers.ZeroPadding3D(data_format=data_format, dtype="float64", **kwargs)
    x_last = rng.standard_normal((2, 3, 1, 4, 2))
    x = as_format(x_last, data_format)
    y = to_numpy(layer(xp.asarray(x)))
    assert layer.padding == pairs
    numpy.testing.assert_array_equal(to_last(y, data_format), numpy.pad(x_last, ((0, 0),) + pairs + ((0, 0),)))
    assert layer.compute_output_shape((None,) + x.shape[1:]) == (None,) + y.shape[1:]
    check_layer_gradients(layer, xp.asarray(x), rng)


# ------------------------------------------------------------------ models, configs, errors
def encoder_decoder():
    return gpu_dl.Sequential([
        layers.Input((9, 7, 2)),
        layers.ZeroPadding2D(((0, 1), (0, 1))),                     # 10 x 8
        layers.Conv2D(4, 3, padding="same", activation="tanh"),
        layers.MaxPooling2D(2),                                     # 5 x 4
        layers.UpSampling2D(2, interpolation="bilinear"),           # 10 x 8
        layers.Conv2D(3, 3, padding="same", activation="tanh"),
        layers.UpSampling2D((1, 2)),                                # 10 x 16
        layers.Cropping2D(((0, 1), (4, 5))),                        # 9 x 7
        layers.Conv2D(2, 1),
    ])


def test_an_encoder_decoder_learns_and_its_summary_shows_the_shapes(xp, capsys):
    """A student of the same architecture fits a teacher's outputs: gradients flow through every layer."""
    gpu_dl.backend.set_random_seed(0)
    teacher, student = encoder_decoder(), encoder_decoder()
    student.summary()
    text = capsys.readouterr().out
    for shape in ["(None, 10, 8, 2)", "(None, 5, 4, 4)", "(None, 10, 8, 4)", "(None, 10, 16, 3)", "(None, 9, 7, 3)",
                  "(None, 9, 7, 2)"]:
        assert shape in text, shape
    x = xp.asarray(numpy.random.default_rng(0).standard_normal((32, 9, 7, 2)).astype("float32"))
    target = teacher.predict(x, verbose=0)
    student.compile(optimizer=gpu_dl.optimizers.Adam(0.01), loss="mse")
    losses = student.fit(x, target, epochs=30, batch_size=8, verbose=0).history["loss"]
    assert losses[-1] < 0.2 * losses[0], losses


def test_configs_round_trip_through_sequential(rng):
    model = gpu_dl.Sequential([
        layers.Input((2, 6, 5)),
        layers.UpSampling2D((2, 1), data_format="channels_first", interpolation="bilinear"),
        layers.Cropping2D(((1, 0), (0, 2)), data_format="channels_first"),
        layers.Reshape((2, 11, 3, 1)),
        layers.ZeroPadding3D(((1, 0), (0, 0), (1, 1))),
        layers.UpSampling3D((1, 2, 1)),
        layers.Cropping3D(((0, 1), (1, 1), (0, 2))),
        layers.Flatten(),
    ])
    copy = gpu_dl.Sequential.from_config(model.get_config())
    x = rng.standard_normal((2, 2, 6, 5)).astype("float32")
    numpy.testing.assert_array_equal(to_numpy(copy.predict(x, verbose=0)), to_numpy(model.predict(x, verbose=0)))
    up, crop = copy.layers[0], copy.layers[1]
    assert (up.size, up.data_format, up.interpolation) == ((2, 1), "channels_first", "bilinear")
    assert crop.cropping == ((1, 0), (0, 2)) and crop.data_format == "channels_first"
    assert copy.layers[3].padding == ((1, 0), (0, 0), (1, 1)) and copy.layers[5].cropping == ((0, 1), (1, 1), (0, 2))
    names = [layer.name.rstrip("_0123456789") for layer in model.layers]
    assert names == ["up_sampling2d", "cropping2d", "reshape", "zero_padding3d", "up_sampling3d", "cropping3d",
                     "flatten"]


@pytest.mark.parametrize("make,match", [
    (lambda: layers.UpSampling2D(0), r"size must be >= 1, got 0"),
    (lambda: layers.UpSampling2D((2, -1)), r"size must be >= 1, got \(2, -1\)"),
    (lambda: layers.UpSampling2D((2, 2, 2)), "size must be an integer or a 2-tuple"),
    (lambda: layers.UpSampling2D(1.5), "size"),
    (lambda: layers.UpSampling3D((2, 2)), "size must be an integer or a 3-tuple"),
    (lambda: layers.UpSampling2D(interpolation="bicubic"), r"interpolation must be 'nearest' or 'bilinear', "
                                                           r"got 'bicubic'"),
    (lambda: layers.UpSampling2D(interpolation="lanczos3"), "interpolation"),
    (lambda: layers.UpSampling2D(data_format="nhwc"), "data_format"),
    (lambda: layers.Cropping2D(-1), "cropping must hold non-negative integers, got -1"),
    (lambda: layers.Cropping2D(((1, -2), (0, 0))), "non-negative"),
    (lambda: layers.Cropping2D((1, 2, 3)), r"cropping must have 2 entries \(height, width\)"),
    (lambda: layers.Cropping2D(((1, 2, 3), 1)), r"pair \(before, after\)"),
    (lambda: layers.Cropping2D("1"), "cropping"),
    (lambda: layers.Cropping3D((1, 1)), r"cropping must have 3 entries \(depth, height, width\)"),
    (lambda: layers.ZeroPadding3D(-1), "padding must hold non-negative integers"),
    (lambda: layers.ZeroPadding3D((1, 1)), "padding must have 3 entries"),
])
def test_bad_arguments_are_clear_errors(make, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make()


@pytest.mark.parametrize("cls,rank,layout", [
    (layers.UpSampling2D, 4, r"\(batch, height, width, channels\)"),
    (layers.Cropping2D, 4, r"\(batch, height, width, channels\)"),
    (layers.UpSampling3D, 5, r"\(batch, depth, height, width, channels\)"),
    (layers.Cropping3D, 5, r"\(batch, depth, height, width, channels\)"),
    (layers.ZeroPadding3D, 5, r"\(batch, depth, height, width, channels\)"),
])
def test_inputs_of_another_rank_name_the_layer(xp, cls, rank, layout):
    layer = cls(name="layer_a")
    with pytest.raises(ValueError, match=rf"layer_a' expects inputs of rank {rank} {layout}, got shape \(2, 8, 3\) "
                                         r"\(rank 3\)"):
        layer(xp.ones((2, 8, 3), dtype="float32"))
    assert not layer.built
    first = cls(data_format="channels_first", name="layer_b")
    with pytest.raises(ValueError, match=r"layer_b.*\(batch, channels, "):
        first.compute_output_shape((None,) * (rank + 1))


def test_cropping_more_than_the_input_quotes_the_numbers(xp):
    with pytest.raises(ValueError, match=r"Cropping2D layer 'crop': height cropping \(3, 4\) removes 7 of the "
                                         r"input's 5 \(shape \(2, 5, 9, 3\)\), leaving -2; the input's height must "
                                         r"be more than 7"):
        layers.Cropping2D(((3, 4), (0, 0)), name="crop")(xp.ones((2, 5, 9, 3), dtype="float32"))
    with pytest.raises(ValueError, match=r"width cropping \(4, 5\) removes 9 of the input's 9.*leaving 0"):
        layers.Cropping2D(((0, 0), (4, 5)), data_format="channels_first").compute_output_shape((None, 3, 5, 9))
    with pytest.raises(ValueError, match=r"Cropping3D layer 'c3': depth cropping \(1, 1\) removes 2 of the "
                                         r"input's 2"):
        layers.Cropping3D(name="c3").compute_output_shape((None, 2, 5, 5, 1))
    # a model built for any size checks each batch
    model = gpu_dl.Sequential([layers.Input((None, None, 1)), layers.Cropping2D(((2, 2), (1, 0)))])
    assert model.output_shape == (None, None, None, 1)
    assert tuple(model(xp.ones((1, 5, 2, 1), dtype="float32")).shape) == (1, 1, 1, 1)
    with pytest.raises(ValueError, match="leaving 0"):
        model(xp.ones((1, 4, 2, 1), dtype="float32"))
    with pytest.raises(ValueError, match="Cropping2D.*'cropping2d.*removes 4"):
        gpu_dl.Sequential([layers.Input((4, 4, 1)), layers.Cropping2D(2)])
