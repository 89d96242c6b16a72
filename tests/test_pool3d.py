"""The 3-D pooling layers and ops: forward against NumPy written as a reduction over window taps, backward
against finite differences, ties, padding never picked, shapes, configs and bad input."""
import numpy
import pytest

from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gpu_dl.ops import pool3d
from test_conv3d_layers import pads_of, triple
from test_conv_layers import check_layer_gradients


def expected_pool3d(x, window, strides, pads, kind):
    """Max or mean of each window's in-bounds values (padding never counts), one window tap at a time."""
    padded = numpy.pad(x, ((0, 0),) + tuple(pads) + ((0, 0),))
    inside = numpy.pad(numpy.ones(x.shape[1:4], bool), pads)
    out = [(padded.shape[i + 1] - k) // s + 1 for i, (k, s) in enumerate(zip(window, strides))]
    values, valid = [], []
    for a in range(window[0]):
        for b in range(window[1]):
            for q in range(window[2]):
                where = tuple(slice(t, t + s * (o - 1) + 1, s) for t, s, o in zip((a, b, q), strides, out))
                values.append(padded[(slice(None),) + where])
                valid.append(inside[where][None, :, :, :, None])
    values, valid = numpy.stack(values), numpy.stack(valid)
    if kind == "max":
        return numpy.where(valid, values, -numpy.inf).max(axis=0)
    return (values * valid).sum(axis=0) / valid.sum(axis=0)


POOL_CASES = [
    ({}, (2, 5, 4, 7, 3)),
    ({"pool_size": 3, "strides": 2, "padding": "same"}, (1, 7, 5, 3, 2)),
    ({"pool_size": (2, 1, 3), "strides": 1, "padding": "same"}, (2, 3, 5, 5, 1)),
    ({"pool_size": (3, 2, 2), "strides": (3, 1, 2)}, (1, 7, 3, 5, 2)),
    ({"pool_size": 3, "strides": 2, "padding": "same"}, (2, 1, 1, 3, 2)),
    ({"pool_size": 1}, (1, 1, 1, 1, 3)),
    ({"pool_size": 2, "strides": 3, "padding": "same"}, (1, 3, 5, 7, 2)),
]


@pytest.mark.parametrize("cls,kind", [(layers.MaxPooling3D, "max"), (layers.AveragePooling3D, "avg")])
@pytest.mark.parametrize("kwargs,shape", POOL_CASES)
def test_pooling3d_forward_and_gradients(xp, rng, cls, kind, kwargs, shape):
    if kind == "avg" and "pool_size" not in kwargs:
        kwargs = {"pool_size": 2, **kwargs}     # as Keras 3.15's, the average poolings have no default pool_size
    layer = cls(**kwargs, dtype="float64")
    x_host = rng.standard_normal(shape)
    x = xp.asarray(x_host)
    y = layer(x)
    window = triple(kwargs.get("pool_size", 2))
    strides = triple(kwargs.get("strides", window))
    assert layer.pool_size == window and layer.strides == strides
    pads = [pads_of(kwargs.get("padding", "valid"), n, k, s) for n, k, s in zip(shape[1:4], window, strides)]
    numpy.testing.assert_allclose(to_numpy(y), expected_pool3d(x_host, window, strides, pads, kind), rtol=1e-12)
    assert tuple(y.shape)[1:] == layer.compute_output_shape((None,) + shape[1:])[1:]
    assert type(y) is type(x)
    check_layer_gradients(layer, x, rng)
    layer(x, training=True)
    assert type(layer.backward(xp.ones(y.shape))) is type(x)


@pytest.mark.parametrize("cls,kind", [(layers.MaxPool3D, "max"), (layers.AvgPool3D, "avg")])
def test_pooling3d_channels_first(xp, rng, cls, kind):
    layer = cls(3, strides=2, padding="same", data_format="channels_first", dtype="float64")
    x = rng.standard_normal((2, 3, 5, 7, 4))
    y = to_numpy(layer(xp.asarray(x)))
    want = expected_pool3d(x.transpose(0, 2, 3, 4, 1), (3,) * 3, (2,) * 3, [(1, 1), (1, 1), (0, 1)], kind)
    numpy.testing.assert_allclose(y, want.transpose(0, 4, 1, 2, 3), rtol=1e-12)
    assert layer.compute_output_shape((None, 3, 5, 7, 4)) == (None, 3, 3, 4, 2) == (None,) + y.shape[1:]
    check_layer_gradients(layer, xp.asarray(x), rng)


def test_max_ties_go_to_the_first_position_as_in_2d(xp):
    """Equal values: the gradient goes to the first of them in row-major (depth, height, width) order."""
    x = xp.ones((1, 4, 4, 4, 1))
    y, argmax = pool3d.max_pool3d_forward(x, (2, 2, 2), (2, 2, 2), ((0, 0),) * 3)
    assert (to_numpy(argmax) == 0).all()
    dx = to_numpy(pool3d.max_pool3d_backward(xp.ones(y.shape), argmax, x.shape, (2, 2, 2), (2, 2, 2),
                                             ((0, 0),) * 3))
    want = numpy.zeros((1, 4, 4, 4, 1))
    want[:, ::2, ::2, ::2] = 1
    numpy.testing.assert_array_equal(dx, want)


def test_max_never_routes_to_padding_even_when_every_value_is_minus_infinity(xp):
    x = xp.full((1, 3, 3, 3, 2), -numpy.inf)
    padding = ((1, 1),) * 3               # pool 3, stride 2, "same" on 3: a pad before and after each axis
    y, argmax = pool3d.max_pool3d_forward(x, (3, 3, 3), (2, 2, 2), padding)
    assert (to_numpy(y) == -numpy.inf).all()
    dx = to_numpy(pool3d.max_pool3d_backward(xp.ones(y.shape), argmax, x.shape, (3, 3, 3), (2, 2, 2), padding))
    assert dx.sum() == y.size       # every output's gradient reached an input position


def test_max_nan_wins_and_overlapping_windows_add(xp):
    x_host = numpy.arange(2 * 3 * 3 * 3, dtype=float).reshape(1, 3, 3, 3, 2)
    x_host[0, 1, 1, 1, 0] = numpy.nan
    y, argmax = pool3d.max_pool3d_forward(xp.asarray(x_host), (2, 2, 2), (1, 1, 1), ((0, 0),) * 3)
    assert numpy.isnan(to_numpy(y)[..., 0]).all() and not numpy.isnan(to_numpy(y)[..., 1]).any()
    dx = to_numpy(pool3d.max_pool3d_backward(xp.ones(y.shape), argmax, x_host.shape, (2, 2, 2), (1, 1, 1),
                                             ((0, 0),) * 3))
    assert dx[0, 1, 1, 1, 0] == 8 and dx[..., 0].sum() == 8     # the NaN wins in all 8 windows it is in
    assert (dx[0, 1:, 1:, 1:, 1] == 1).all() and dx[..., 1].sum() == 8   # elsewhere each window's last corner


@pytest.mark.parametrize("cls", [layers.GlobalMaxPooling3D, layers.GlobalAveragePooling3D])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("data_format,shape", [("channels_last", (3, 5, 3, 7, 4)),
                                               ("channels_first", (2, 4, 3, 5, 1)),
                                               ("channels_last", (2, 1, 1, 1, 3))])
def test_global_pooling3d(xp, rng, cls, keepdims, data_format, shape):
    layer = cls(keepdims=keepdims, data_format=data_format, dtype="float64")
    x_host = rng.standard_normal(shape)
    y = layer(xp.asarray(x_host))
    axes = (2, 3, 4) if data_format == "channels_first" else (1, 2, 3)
    reduce = numpy.max if cls is layers.GlobalMaxPooling3D else numpy.mean
    numpy.testing.assert_allclose(to_numpy(y), reduce(x_host, axis=axes, keepdims=keepdims), rtol=1e-12)
    assert tuple(y.shape)[1:] == layer.compute_output_shape((None,) + shape[1:])[1:]
    check_layer_gradients(layer, xp.asarray(x_host), rng)


def test_aliases():
    assert layers.MaxPool3D is layers.MaxPooling3D and layers.AvgPool3D is layers.AveragePooling3D
    assert layers.GlobalMaxPool3D is layers.GlobalMaxPooling3D
    assert layers.GlobalAvgPool3D is layers.GlobalAveragePooling3D
    assert layers.MaxPooling3D().pool_size == (2, 2, 2) == layers.AveragePooling3D(2).strides


@pytest.mark.parametrize("make,match", [
    (lambda: layers.MaxPooling3D(0), "pool_size"),
    (lambda: layers.MaxPooling3D((2, 2)), "pool_size"),
    (lambda: layers.AveragePooling3D((2, -1, 2)), "pool_size"),
    (lambda: layers.AveragePooling3D(2, strides=0), "strides"),
    (lambda: layers.MaxPooling3D(2, strides=(1, 1, -1)), "strides"),
    (lambda: layers.MaxPooling3D(padding="causal"), "padding"),
    (lambda: layers.AveragePooling3D(2, padding="full"), "padding"),
    (lambda: layers.GlobalMaxPooling3D(data_format="ndhwc"), "data_format"),
])
def test_bad_arguments_are_clear_errors(make, match):
    with pytest.raises((ValueError, TypeError), match=f"Pool.*3D layer .*{match}"):
        make()


@pytest.mark.parametrize("cls", [layers.MaxPooling3D, layers.AveragePooling3D, layers.GlobalMaxPooling3D,
                                 layers.GlobalAveragePooling3D])
def test_inputs_of_another_rank_name_the_layer(xp, cls):
    layer = cls(2, name="pool_a") if cls is layers.AveragePooling3D else cls(name="pool_a")
    with pytest.raises(ValueError, match=r"pool_a.*rank 5 \(batch, depth, height, width, channels\).*rank 4"):
        layer(xp.ones((2, 8, 8, 3), dtype="float32"))
    assert layer.built      # Keras builds it when it is made; the refused call leaves it so
    out = layer(xp.ones((2, 4, 4, 4, 3), dtype="float32"))   # and the shape it then gets is checked again
    assert out.shape[0] == 2 and out.shape[-1] == 3


@pytest.mark.parametrize("make,shape,match", [
    (lambda: layers.MaxPooling3D(name="small"), (1, 4, 1, 4, 2), r"small.*height window 2 is larger.*// 2 \+ 1 = 0"),
    (lambda: layers.AveragePooling3D((3, 1, 1), strides=2, name="small"), (1, 2, 4, 4, 2),
     r"small.*depth window 3 is larger.*\(2 - 3 \+ 0\) // 2 \+ 1 = 0"),
    (lambda: layers.GlobalMaxPooling3D(name="zero"), (2, 3, 0, 3, 2), r"zero.*nothing to pool over"),
    (lambda: layers.GlobalAveragePooling3D(name="zero"), (2, 0, 3, 3, 2), r"zero.*nothing to pool over"),
])
def test_windows_that_do_not_fit_are_clear_errors(xp, make, shape, match):
    with pytest.raises(ValueError, match=match):
        make()(xp.ones(shape, dtype="float32"))


def test_same_padding_pools_a_window_larger_than_the_input(xp, rng):
    layer = layers.AveragePooling3D(3, strides=1, padding="same", dtype="float64")
    x = rng.standard_normal((1, 1, 2, 1, 2))
    y = to_numpy(layer(xp.asarray(x)))
    numpy.testing.assert_allclose(y, numpy.broadcast_to(x.mean(axis=2, keepdims=True), x.shape), rtol=1e-12)
