"""Adaptive pooling (ops and layers): forward against NumPy written as a loop over windows, backward against
finite differences, ties, both data formats, shapes, configs and bad input."""
import itertools
import math

import numpy
import pytest

from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gpu_dl.ops import adaptive_pool
from test_conv_layers import check_layer_gradients


def windows(size, out):
    """PyTorch's rule, written with math.floor and math.ceil."""
    return [(math.floor(i * size / out), math.ceil((i + 1) * size / out)) for i in range(out)]


def expected(x, output_size, kind):
    """channels_last x: one window at a time."""
    reduce = numpy.max if kind == "max" else numpy.mean
    spatial = x.shape[1:-1]
    y = numpy.empty(x.shape[:1] + tuple(output_size) + x.shape[-1:])
    for position in itertools.product(*(range(o) for o in output_size)):
        box = tuple(slice(*windows(s, o)[i]) for s, o, i in zip(spatial, output_size, position))
        y[(slice(None),) + position] = reduce(x[(slice(None),) + box], axis=tuple(range(1, len(spatial) + 1)))
    return y


def test_windows_rule():
    assert adaptive_pool.adaptive_windows(7, 3) == [(0, 3), (2, 5), (4, 7)]
    assert adaptive_pool.adaptive_windows(1, 5) == [(0, 1)] * 5
    assert adaptive_pool.adaptive_windows(3, 5) == [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)]
    for size, out in itertools.product([1, 3, 7, 17], [1, 2, 5, 33]):
        assert adaptive_pool.adaptive_windows(size, out) == windows(size, out)


CLASSES = {(rank, kind): getattr(layers, f"Adaptive{'Max' if kind == 'max' else 'Average'}Pooling{rank}D")
           for rank in (1, 2, 3) for kind in ("max", "avg")}
CASES = [   # (rank, input spatial sizes, output_size)
    (1, (1,), 1), (1, (3,), 2), (1, (7,), 5), (1, (17,), (5,)), (1, (3,), 7), (1, (1,), 2),
    (2, (1, 1), 1), (2, (7, 3), (2, 5)), (2, (17, 7), (5, 2)), (2, (3, 1), (5, 2)), (2, (17, 17), 5),
    (3, (1, 3, 7), (1, 2, 5)), (3, (7, 17, 3), (5, 5, 2)), (3, (3, 2, 1), (5, 1, 3)),
]


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("rank,sizes,output_size", CASES)
def test_forward_and_gradients(xp, rng, kind, rank, sizes, output_size):
    layer = CLASSES[rank, kind](output_size, dtype="float64")
    x_host = rng.standard_normal((2,) + sizes + (3,))
    x = xp.asarray(x_host)
    y = layer(x)
    want = expected(x_host, layer.output_size, kind)
    assert type(y) is type(x) and y.shape == want.shape
    numpy.testing.assert_allclose(to_numpy(y), want, rtol=1e-12, atol=1e-15)
    assert layer.compute_output_shape((None,) + sizes + (3,)) == (None,) + want.shape[1:]
    check_layer_gradients(layer, x, rng)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("rank,sizes,output_size", [(1, (7,), 3), (2, (5, 7), (2, 3)), (3, (3, 4, 5), (2, 3, 2))])
def test_channels_first(xp, rng, kind, rank, sizes, output_size):
    layer = CLASSES[rank, kind](output_size, data_format="channels_first", dtype="float64")
    x = rng.standard_normal((2, 3) + sizes)
    y = to_numpy(layer(xp.asarray(x)))
    want = expected(numpy.moveaxis(x, 1, -1), layer.output_size, kind)
    numpy.testing.assert_allclose(y, numpy.moveaxis(want, -1, 1), rtol=1e-12, atol=1e-15)
    assert layer.compute_output_shape((None, 3) + sizes) == (None, 3) + layer.output_size
    check_layer_gradients(layer, xp.asarray(x), rng)


def test_float32_keeps_its_dtype(xp, rng):
    x = xp.asarray(rng.standard_normal((2, 9, 5, 3)).astype("float32"))
    for cls in (layers.AdaptiveMaxPooling2D, layers.AdaptiveAveragePooling2D):
        y = cls((4, 2))(x, training=True)
        assert y.dtype == numpy.float32


def test_max_ties_go_to_the_first_position_in_row_major_order(xp):
    """Equal values: the gradient goes to the first of them (depth, then height, then width), as MaxPooling."""
    x = xp.ones((1, 4, 4, 4, 1))
    layer = layers.AdaptiveMaxPooling3D(2, dtype="float64")
    y = layer(x, training=True)
    dx = to_numpy(layer.backward(xp.ones(y.shape)))
    want = numpy.zeros((1, 4, 4, 4, 1))
    want[:, ::2, ::2, ::2] = 1
    numpy.testing.assert_array_equal(dx, want)
    # a tie between the two halves of a window's rows: the earlier row wins, whatever the column
    x = numpy.zeros((1, 2, 2, 1))
    x[0, 0, 1, 0] = x[0, 1, 0, 0] = 5.0
    layer = layers.AdaptiveMaxPooling2D(1, dtype="float64")
    layer(xp.asarray(x), training=True)
    dx = to_numpy(layer.backward(xp.ones((1, 1, 1, 1))))
    numpy.testing.assert_array_equal(dx[0, :, :, 0], [[0, 1], [0, 0]])


def test_overlapping_windows_add_their_gradients(xp):
    """3 -> 2: the middle position is in both windows; 1 -> 5: one position in all five."""
    layer = layers.AdaptiveAveragePooling1D(2, dtype="float64")
    layer(xp.zeros((1, 3, 1)), training=True)
    numpy.testing.assert_allclose(to_numpy(layer.backward(xp.ones((1, 2, 1))))[0, :, 0], [0.5, 1.0, 0.5])
    layer = layers.AdaptiveMaxPooling1D(5, dtype="float64")
    layer(xp.ones((1, 1, 2)), training=True)
    numpy.testing.assert_allclose(to_numpy(layer.backward(xp.ones((1, 5, 2)))), [[[5.0, 5.0]]])


def test_any_input_size_once_built(xp, rng):
    layer = layers.AdaptiveAveragePooling2D((3, 2))
    assert layer(xp.asarray(rng.standard_normal((1, 9, 9, 2)).astype("float32"))).shape == (1, 3, 2, 2)
    assert layer(xp.asarray(rng.standard_normal((2, 4, 17, 5)).astype("float32"))).shape == (2, 3, 2, 5)


def test_config_round_trip():
    layer = layers.AdaptiveMaxPooling2D([3, 4], data_format="channels_first", name="pool")
    config = layer.get_config()
    assert config["output_size"] == (3, 4) and config["data_format"] == "channels_first"
    again = layers.AdaptiveMaxPooling2D.from_config(config)
    assert again.output_size == (3, 4) and again.data_format == "channels_first" and again.name == "pool"
    assert layers.AdaptiveAveragePooling1D(4).output_size == (4,)
    assert layers.AdaptiveAveragePooling3D(2).output_size == (2, 2, 2)


def test_in_a_model_summary_shapes(capsys):
    import gpu_dl
    model = gpu_dl.models.Sequential([layers.Input((9, 7, 3)), layers.Conv2D(4, 3),
                                      layers.AdaptiveAveragePooling2D((3, 2)), layers.Flatten(),
                                      layers.Dense(2)])
    model.summary()
    text = capsys.readouterr().out
    assert "(None, 3, 2, 4)" in text and "adaptive_average_pooling2d" in text


@pytest.mark.parametrize("cls", [layers.AdaptiveMaxPooling2D, layers.AdaptiveAveragePooling1D,
                                 layers.AdaptiveAveragePooling3D])
def test_bad_output_size(cls):
    with pytest.raises(ValueError, match=r"layer 'bad'.*output_size.*>= 1"):
        cls(0, name="bad")
    with pytest.raises(ValueError, match=r"layer 'bad'.*output_size"):
        cls(-2, name="bad")
    with pytest.raises(TypeError, match=r"layer 'bad'.*output_size"):
        cls((2,) * (cls.rank + 1), name="bad")


@pytest.mark.parametrize("cls,shape", [(layers.AdaptiveMaxPooling2D, (2, 5, 3)),
                                       (layers.AdaptiveAveragePooling1D, (2, 5, 3, 1)),
                                       (layers.AdaptiveAveragePooling3D, (2, 5, 3, 1))])
def test_wrong_rank(cls, shape):
    with pytest.raises(ValueError, match=r"layer 'bad'.*rank"):
        cls(2, name="bad")(numpy.zeros(shape, "float32"))


def test_empty_axis_is_refused():
    with pytest.raises(ValueError, match=r"layer 'bad'.*no width positions"):
        layers.AdaptiveMaxPooling2D(2, name="bad").compute_output_shape((None, 3, 0, 2))
    with pytest.raises(ValueError, match="rank 3"):
        adaptive_pool.adaptive_max_pool_forward(numpy.zeros((2, 3, 3, 1)), (2,))
