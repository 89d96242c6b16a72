"""Merge layers: forward against NumPy, backward against float64 finite differences, broadcasting, masks,
shapes of symbolic calls, configs and the errors Keras raises."""
import numpy
import pytest

from gpu_dl import layers
from gpu_dl.backend import array_module, to_numpy
from gradcheck import assert_gradient

ELEMENTWISE = {
    "Add": lambda xs: sum(xs[1:], xs[0]),
    "Subtract": lambda xs: xs[0] - xs[1],
    "Multiply": lambda xs: numpy.prod(numpy.broadcast_arrays(*xs), axis=0),
    "Average": lambda xs: sum(xs[1:], xs[0]) / len(xs),
    "Maximum": lambda xs: numpy.max(numpy.broadcast_arrays(*xs), axis=0),
    "Minimum": lambda xs: numpy.min(numpy.broadcast_arrays(*xs), axis=0),
}


def _keras_aligned(xs):
    """Keras's alignment of lower ranks: axes of size 1 inserted after the batch axis."""
    rank = max(x.ndim for x in xs)
    return [x.reshape((x.shape[0],) + (1,) * (rank - x.ndim) + x.shape[1:]) for x in xs]


def _objective(layer, xs, w):
    return (layer(xs, training=True) * w).sum()


def _check_gradients(layer, xs, rng):
    """Each input's gradient from backward against finite differences of sum(layer(xs) * w)."""
    xp = array_module(xs[0])
    y = layer(xs, training=True)
    w = xp.asarray(rng.standard_normal(y.shape))
    grads = layer.backward(w)
    assert len(grads) == len(xs)
    for i in range(len(xs)):
        def f(v, i=i):
            return _objective(layer, xs[:i] + [v] + xs[i + 1:], w)
        assert_gradient(f, xs[i], grads[i], rng, what=f"{layer.name} input {i}")


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
@pytest.mark.parametrize("shapes", [[(3, 5)] * 2, [(1, 17)] * 3, [(4, 3, 2), (4, 3, 2), (4, 3, 2)],
                                    [(2, 33), (2, 1)], [(3, 4, 5), (3, 5)], [(2, 1, 6), (2, 3, 1)]])
def test_elementwise_forward_and_gradients(xp, rng, name, shapes):
    if name == "Subtract" and len(shapes) != 2:
        shapes = shapes[:2]
    hosts = [rng.standard_normal(s) for s in shapes]
    xs = [xp.asarray(h) for h in hosts]
    layer = getattr(layers, name)(dtype="float64")
    y = layer(xs, training=True)
    expected = ELEMENTWISE[name](_keras_aligned(hosts))
    assert y.shape == expected.shape
    assert tuple(layer.compute_output_shape([(None,) + s[1:] for s in shapes])) == (None,) + expected.shape[1:]
    numpy.testing.assert_allclose(to_numpy(y), expected, rtol=1e-12, atol=1e-12)
    _check_gradients(layer, xs, rng)


@pytest.mark.parametrize("axis,shapes", [(-1, [(3, 2), (3, 5)]), (1, [(2, 1, 4), (2, 3, 4), (2, 17, 4)]),
                                         (2, [(2, 3, 1), (2, 3, 2)]), (-2, [(1, 4, 3), (1, 1, 3)])])
def test_concatenate_forward_and_gradients(xp, rng, axis, shapes):
    hosts = [rng.standard_normal(s) for s in shapes]
    xs = [xp.asarray(h) for h in hosts]
    layer = layers.Concatenate(axis=axis, dtype="float64")
    y = layer(xs, training=True)
    numpy.testing.assert_array_equal(to_numpy(y), numpy.concatenate(hosts, axis=axis))
    assert tuple(layer.compute_output_shape([(None,) + s[1:] for s in shapes])) == (None,) + y.shape[1:]
    _check_gradients(layer, xs, rng)


def test_functional_forms_match_the_layers(xp, rng):
    a, b = (xp.asarray(rng.standard_normal((3, 4))) for _ in range(2))
    ha, hb = to_numpy(a), to_numpy(b)
    for fn, expected in [(layers.add, ha + hb), (layers.subtract, ha - hb), (layers.multiply, ha * hb),
                         (layers.average, (ha + hb) / 2), (layers.maximum, numpy.maximum(ha, hb)),
                         (layers.minimum, numpy.minimum(ha, hb)), (layers.concatenate, numpy.hstack([ha, hb]))]:
        numpy.testing.assert_allclose(to_numpy(fn([a, b], dtype="float64")), expected, rtol=1e-12)
    assert layers.concatenate([a, b], axis=0, dtype="float64").shape == (6, 4)
    assert layers.add([a, b], name="sum_ab").shape == (3, 4)


def test_float32_inputs_stay_float32_and_other_dtypes_are_cast(xp, rng):
    a = xp.asarray(rng.standard_normal((2, 3)), dtype="float32")
    b = xp.asarray(numpy.arange(6).reshape(2, 3))
    y = layers.Add()([a, b])
    assert y.dtype == numpy.float32
    numpy.testing.assert_allclose(to_numpy(y), to_numpy(a) + numpy.arange(6).reshape(2, 3), rtol=1e-6)


def test_maximum_ties_send_the_gradient_to_one_input(xp):
    a = xp.asarray([[1.0, 2.0, 3.0]])
    layer = layers.Maximum(dtype="float64")
    layer([a, a.copy()], training=True)
    ga, gb = layer.backward(xp.ones((1, 3)))
    numpy.testing.assert_array_equal(to_numpy(ga + gb), numpy.ones((1, 3)))   # the total is not doubled


# ------------------------------------------------------------------ masks
def test_masks_merge_as_keras_merges_them(xp, rng):
    """OR of the masks; Maximum/Minimum/Multiply leave masked-out values out, as Keras's fold does."""
    a_h, b_h = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 4, 3))
    ma_h = numpy.array([[1, 1, 0, 0], [1, 0, 1, 0]], bool)
    mb_h = numpy.array([[1, 0, 1, 0], [0, 0, 1, 1]], bool)
    a, b, ma, mb = (xp.asarray(v) for v in (a_h, b_h, ma_h, mb_h))
    either = (ma_h | mb_h)[..., None]
    wa, wb = ma_h[..., None], mb_h[..., None]

    for name in ("Maximum", "Minimum"):
        pick = numpy.maximum if name == "Maximum" else numpy.minimum
        layer = getattr(layers, name)(dtype="float64")
        y = layer([a, b], mask=[ma, mb], training=True)
        # A masked value takes the other's; where both are masked the first input's value stays.
        b_used = numpy.where(wb, b_h, a_h)
        a_used = numpy.where(wa, a_h, b_used)
        numpy.testing.assert_allclose(to_numpy(y), pick(a_used, b_used), rtol=1e-12)
        numpy.testing.assert_array_equal(to_numpy(layer.compute_mask([a, b], [ma, mb])), ma_h | mb_h)
        _check_masked_gradients(layer, [a, b], [ma, mb], rng)

    layer = layers.Multiply(dtype="float64")
    y = layer([a, b], mask=[ma, mb], training=True)
    expected = numpy.where(either, numpy.where(wa, a_h, 1) * numpy.where(wb, b_h, 1), 0)
    numpy.testing.assert_allclose(to_numpy(y), expected, rtol=1e-12)
    _check_masked_gradients(layer, [a, b], [ma, mb], rng)

    add = layers.Add(dtype="float64")
    numpy.testing.assert_allclose(to_numpy(add([a, b], mask=[ma, mb])), a_h + b_h)   # values untouched
    assert add.compute_mask([a, b], [ma, None]) is None

    concat = layers.Concatenate(axis=1, dtype="float64")
    numpy.testing.assert_array_equal(to_numpy(concat.compute_mask([a, b], [ma, None])),
                                     numpy.concatenate([ma_h, numpy.ones((2, 4), bool)], axis=1))
    concat_last = layers.Concatenate(dtype="float64")
    numpy.testing.assert_array_equal(to_numpy(concat_last.compute_mask([a, b], [ma, mb])), ma_h | mb_h)
    assert concat_last.compute_mask([a, b], [None, None]) is None


def _check_masked_gradients(layer, xs, masks, rng):
    xp = array_module(xs[0])
    y = layer(xs, mask=masks, training=True)
    w = xp.asarray(rng.standard_normal(y.shape))
    grads = layer.backward(w)
    for i in range(len(xs)):
        def f(v, i=i):
            return (layer(xs[:i] + [v] + xs[i + 1:], mask=masks, training=True) * w).sum()
        assert_gradient(f, xs[i], grads[i], rng, what=f"{layer.name} masked input {i}")


# ------------------------------------------------------------------ symbolic calls and errors
def test_symbolic_calls_give_keras_output_shapes():
    a, b, c = layers.Input((3, 1)), layers.Input((1, 4)), layers.Input((4,))
    assert layers.Add()([a, b]).shape == (None, 3, 4)
    assert layers.Multiply()([a, c]).shape == (None, 3, 4)
    assert layers.Concatenate(axis=1)([b, layers.Input((2, 4))]).shape == (None, 3, 4)
    # Keras's: the other axes are the first input's, unknown where it leaves them so (shapes checked all the same)
    assert layers.Concatenate()([layers.Input((None, 2)), layers.Input((5, 3))]).shape == (None, None, 5)
    assert layers.Concatenate()([layers.Input((5, 2)), layers.Input((None, 3))]).shape == (None, 5, 5)
    assert layers.Concatenate(axis=1)([layers.Input((None, 2)), layers.Input((5, 2))]).shape == (None, None, 2)
    assert layers.Maximum()([layers.Input((None, 2)), layers.Input((5, 2))]).shape == (None, None, 2)


def test_incompatible_shapes_name_the_layer_and_shapes(xp):
    with pytest.raises(ValueError, match=r"Add layer 'adder'.*\(None, 3\).*\(None, 4\)"):
        layers.Add(name="adder")([layers.Input((3,)), layers.Input((4,))])
    with pytest.raises(ValueError, match=r"Multiply layer 'mul'.*incompatible shapes \[\(2, 3\), \(2, 5\)\]"):
        layers.Multiply(name="mul")([xp.ones((2, 3)), xp.ones((2, 5))])
    with pytest.raises(ValueError, match=r"Concatenate layer 'cat'.*matching shapes except for the concatenation "
                                         r"axis.*\[\(None, 2, 3\), \(None, 4, 3\)\]"):
        layers.Concatenate(name="cat")([layers.Input((2, 3)), layers.Input((4, 3))])
    with pytest.raises(ValueError, match="matching shapes"):
        layers.Concatenate()([xp.ones((2, 3)), xp.ones((2, 3, 1))])
    with pytest.raises(ValueError, match="axis 3 is out of range"):
        layers.Concatenate(axis=3)([xp.ones((2, 3)), xp.ones((2, 3))])
    with pytest.raises(ValueError, match="different batch sizes"):
        layers.Add()([xp.ones((2, 3)), xp.ones((5, 3))])
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        layers.Subtract()([xp.ones((2, 3))] * 3)
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        layers.Subtract()([layers.Input((3,))] * 3)
    with pytest.raises(ValueError, match="list of inputs"):
        layers.Add()(xp.ones((2, 3)))
    with pytest.raises(ValueError, match="list of at least one input"):
        layers.Add()(layers.Input((3,)))
    with pytest.raises(ValueError, match="list of at least one input"):
        layers.Add()([])
    with pytest.raises(TypeError, match="mixes symbolic tensors"):
        layers.Add()([layers.Input((3,)), xp.ones((2, 3))])
    with pytest.raises(ValueError, match="axis must be an integer"):
        layers.Concatenate(axis="last")
    with pytest.raises(ValueError, match="one mask"):
        layers.Add()([xp.ones((2, 3))] * 2, mask=[None])


def test_a_built_merge_layer_takes_other_compatible_shapes(xp):
    # Merge layers hold no weights, so a shared one takes any shapes that merge, as in Keras.
    layer = layers.Add()
    assert layer([xp.ones((2, 3)), xp.ones((2, 3))]).shape == (2, 3)
    assert layer([xp.ones((4, 5, 2)), xp.ones((4, 1, 2))]).shape == (4, 5, 2)
    assert layer.input_spec == [(None, 3), (None, 3)]


def test_configs_round_trip():
    for cls in (layers.Add, layers.Subtract, layers.Multiply, layers.Average, layers.Maximum, layers.Minimum):
        layer = cls(name=f"m_{cls.__name__.lower()}", dtype="float64")
        config = layer.get_config()
        assert config == {"name": layer.name, "trainable": True, "dtype": "float64"}
        assert type(cls.from_config(config)) is cls
    config = layers.Concatenate(axis=1, name="cat").get_config()
    assert config["axis"] == 1 and layers.Concatenate.from_config(config).axis == 1
