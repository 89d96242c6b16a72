"""The Dot merge layer: forward against NumPy, backward against float64 finite differences (normalised too),
Keras's output shapes, functional models, configs, saving, and the errors it raises."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gpu_dl.models import load_model
from gradcheck import assert_gradient


def _expected(x, y, axes, normalize=False):
    """Keras's batch_dot written out with einsum: x's other axes, then y's other axes past the batch axis."""
    if normalize:
        x = x / numpy.maximum(numpy.sqrt((x * x).sum(axis=axes[0], keepdims=True)), 1e-7)
        y = y / numpy.maximum(numpy.sqrt((y * y).sum(axis=axes[1], keepdims=True)), 1e-7)
    letters = "bcdefgh"
    x_sub = ["a"] + [letters[i] for i in range(x.ndim - 1)]
    y_sub = ["a"] + [letters[x.ndim - 1 + i] for i in range(y.ndim - 1)]
    x_sub[axes[0]] = y_sub[axes[1]] = "z"
    out_sub = [c for c in x_sub if c != "z"] + [c for c in y_sub[1:] if c != "z"]
    out = numpy.einsum(f"{''.join(x_sub)},{''.join(y_sub)}->{''.join(out_sub)}", x, y)
    return out.reshape(out.shape + (1,)) if out.ndim == 1 else out


# (axes as given, the shapes, the axes they resolve to)
CASES = [
    (1, [(3, 5), (3, 5)], (1, 1)),                      # inner products: (batch, 1)
    (-1, [(1, 17), (1, 17)], (1, 1)),
    ((2, 1), [(2, 3, 4), (2, 4)], (2, 1)),              # matrix times vector
    ((1, 1), [(4, 3), (4, 3, 5)], (1, 1)),              # vector times matrix
    ((1, 2), [(2, 3, 4), (2, 5, 3)], (1, 2)),
    (-1, [(2, 3, 4), (2, 5, 4)], (2, 2)),               # x y^T per sample
    ((-1, 1), [(2, 3, 1, 4), (2, 4, 33)], (3, 1)),      # 4-D with 3-D
    ((2, -2), [(3, 2, 17, 3), (3, 17, 2)], (2, 1)),
]


def _check_gradients(layer, xs, rng):
    xp = gpu_dl.backend.array_module(xs[0])
    y = layer(xs, training=True)
    w = xp.asarray(rng.standard_normal(y.shape))
    grads = layer.backward(w)
    assert len(grads) == 2
    for i in range(2):
        def f(v, i=i):
            return (layer(xs[:i] + [v] + xs[i + 1:], training=True) * w).sum()
        assert_gradient(f, xs[i], grads[i], rng, what=f"{layer.name} input {i}")


@pytest.mark.parametrize("normalize", [False, True], ids=["plain", "normalize"])
@pytest.mark.parametrize("axes,shapes,resolved", CASES)
def test_forward_and_gradients(xp, rng, axes, shapes, resolved, normalize):
    hosts = [rng.standard_normal(s) for s in shapes]
    xs = [xp.asarray(h) for h in hosts]
    layer = layers.Dot(axes=axes, normalize=normalize, dtype="float64")
    y = layer(xs, training=True)
    expected = _expected(*hosts, resolved, normalize)
    assert y.shape == expected.shape
    numpy.testing.assert_allclose(to_numpy(y), expected, rtol=1e-12, atol=1e-12)
    symbolic = [(None,) + s[1:] for s in shapes]
    assert tuple(layer.compute_output_shape(symbolic)) == (None,) + expected.shape[1:]
    _check_gradients(layer, xs, rng)


def test_normalize_keeps_a_zero_vector_zero_and_its_gradient_finite(xp, rng):
    """Keras floors the norm at 1e-7: a zero (or tiny) vector is scaled by 1e7, not divided by zero."""
    x_h, y_h = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    x_h[1] = 0.0
    x_h[2] *= 1e-9                                   # norm below the floor: scaled by 1e7, a constant
    x, y = xp.asarray(x_h), xp.asarray(y_h)
    layer = layers.Dot(axes=1, normalize=True, dtype="float64")
    out = to_numpy(layer([x, y], training=True))
    unit_y = y_h / numpy.linalg.norm(y_h, axis=1, keepdims=True)
    numpy.testing.assert_allclose(out[:, 0], [(x_h[0] / numpy.linalg.norm(x_h[0])) @ unit_y[0], 0.0,
                                              1e7 * x_h[2] @ unit_y[2]], rtol=1e-12)
    gx, gy = layer.backward(xp.ones((3, 1)))
    assert numpy.isfinite(to_numpy(gx)).all() and numpy.isfinite(to_numpy(gy)).all()
    numpy.testing.assert_allclose(to_numpy(gx)[1:], 1e7 * unit_y[1:], rtol=1e-12)
    numpy.testing.assert_array_equal(to_numpy(gy)[1], numpy.zeros(4))   # x is zero: no change of y matters
    # Above the floor, the cosine's gradient: the other unit vector less its part along this one, over the norm.
    # (Finite differences cannot check the floored rows: a step of 1e-6 leaves the floor.)
    norm = numpy.linalg.norm(x_h[0])
    unit_x = x_h[0] / norm
    numpy.testing.assert_allclose(to_numpy(gx)[0], (unit_y[0] - unit_x * (unit_x @ unit_y[0])) / norm, rtol=1e-12)


def test_float32_stays_float32_and_other_dtypes_are_cast(xp, rng):
    a = xp.asarray(rng.standard_normal((2, 3)), dtype="float32")
    b = xp.asarray(numpy.arange(6).reshape(2, 3))
    y = layers.Dot(axes=1)([a, b])
    assert y.dtype == numpy.float32 and y.shape == (2, 1)
    numpy.testing.assert_allclose(to_numpy(y)[:, 0], (to_numpy(a) * numpy.arange(6).reshape(2, 3)).sum(axis=1),
                                  rtol=1e-6)


def test_the_functional_form_defaults_to_the_last_axes(xp, rng):
    a, b = xp.asarray(rng.standard_normal((2, 3, 4))), xp.asarray(rng.standard_normal((2, 5, 4)))
    numpy.testing.assert_allclose(to_numpy(layers.dot([a, b], dtype="float64")),
                                  _expected(to_numpy(a), to_numpy(b), (2, 2)), rtol=1e-12)
    cosine = to_numpy(layers.dot([a, b], normalize=True, name="cos", dtype="float64"))
    numpy.testing.assert_allclose(cosine, _expected(to_numpy(a), to_numpy(b), (2, 2), normalize=True), rtol=1e-12)
    assert abs(cosine).max() <= 1 + 1e-12


def test_masks_are_not_passed_on(xp):
    layer = layers.Dot(axes=1)
    x = xp.ones((2, 3))
    mask = xp.asarray([True, False])
    assert layer.compute_mask([x, x], [mask, mask]) is None
    numpy.testing.assert_array_equal(to_numpy(layer([x, x], mask=[mask, mask])), numpy.full((2, 1), 3.0))


# ------------------------------------------------------------------ symbolic calls, models, configs
def test_symbolic_calls_give_keras_output_shapes():
    assert layers.Dot(axes=1)([layers.Input((4,)), layers.Input((4,))]).shape == (None, 1)
    assert layers.Dot(axes=(2, 1))([layers.Input((3, 4)), layers.Input((4,))]).shape == (None, 3)
    assert layers.Dot(axes=(1, 1))([layers.Input((4,)), layers.Input((4, 5))]).shape == (None, 5)
    assert layers.Dot(axes=(-1, 1))([layers.Input((2, 3, 4)), layers.Input((4, 5))]).shape == (None, 2, 3, 5)
    assert layers.Dot(axes=1)([layers.Input((None, 4)), layers.Input((None, 4))]).shape == (None, 4, 4)
    # an unknown size is taken on trust until real arrays arrive
    assert layers.Dot(axes=1)([layers.Input((None, 4)), layers.Input((3, 2))]).shape == (None, 4, 2)
    assert layers.Dot(axes=1).compute_output_shape([(5, 3), (None, 3)]) == (5, 1)


def test_a_functional_model_with_dot_trains_and_its_gradients_reach_both_branches(rng):
    gpu_dl.backend.set_random_seed(0)
    a, b = layers.Input((5, 4), name="a"), layers.Input((4,), name="b")
    scores = layers.Dot(axes=(2, 1), name="scores")([layers.Dense(3, name="qa")(a), layers.Dense(3, name="kb")(b)])
    model = gpu_dl.Model([a, b], layers.Dense(2, name="out")(scores))
    model.compile(optimizer="sgd", loss="mse")
    xs = [rng.standard_normal((8, 5, 4)).astype("float32"), rng.standard_normal((8, 4)).astype("float32")]
    target = rng.standard_normal((8, 2)).astype("float32")
    before = {l.name: [w.copy() for w in l.get_weights()] for l in model.layers if l.get_weights()}
    first = model.train_on_batch(xs, target)
    for name, weights in before.items():         # both branches of the product moved
        assert not numpy.array_equal(model.get_layer(name).get_weights()[0], weights[0]), name
    for _ in range(20):
        last = model.train_on_batch(xs, target)
    assert last < first


def test_config_round_trips_and_saved_models_load(tmp_path, rng):
    layer = layers.Dot(axes=(1, 2), normalize=True, name="d")
    config = layer.get_config()
    assert config == {"name": "d", "trainable": True, "dtype": "float32", "axes": (1, 2), "normalize": True}
    again = layers.Dot.from_config(config)
    assert (again.axes, again.normalize, again.name) == ((1, 2), True, "d")
    assert layers.Dot(axes=[2, 1]).axes == (2, 1) and layers.Dot(axes=numpy.int64(1)).axes == 1

    a, b = layers.Input((3, 4), name="a"), layers.Input((4,), name="b")
    joined = layers.Dot(axes=(2, 1), name="scores")([a, layers.Dense(4, name="kb")(b)])
    cosine = layers.dot([a, a], axes=1, normalize=True, name="gram")
    model = gpu_dl.Model([a, b], [joined, cosine])
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert [type(l).__name__ for l in loaded.layers] == [type(l).__name__ for l in model.layers]
    assert (loaded.get_layer("scores").axes, loaded.get_layer("gram").normalize) == ((2, 1), True)
    xs = [rng.standard_normal((2, 3, 4)).astype("float32"), rng.standard_normal((2, 4)).astype("float32")]
    for got, want in zip(loaded.predict(xs, verbose=0), model.predict(xs, verbose=0)):
        numpy.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------ errors
def test_bad_arguments_are_refused_naming_the_layer():
    with pytest.raises(TypeError, match=r"Dot layer 'd'.*`axes` must be an integer or a list of two"):
        layers.Dot(axes="1", name="d")
    with pytest.raises(TypeError, match="`axes` must be an integer"):
        layers.Dot(axes=True)
    with pytest.raises(ValueError, match=r"Dot layer 'd'.*two integers.*\(1, 2, 3\)"):
        layers.Dot(axes=(1, 2, 3), name="d")
    with pytest.raises(ValueError, match=r"entries of `axes` must be integers.*\(1.0, 2\)"):
        layers.Dot(axes=(1.0, 2))
    with pytest.raises(TypeError, match="`normalize` must be True or False"):
        layers.Dot(axes=1, normalize="yes")
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'axes'"):
        layers.Dot()


def test_bad_inputs_are_refused_naming_the_layer_and_shapes(xp):
    with pytest.raises(ValueError, match=r"Dot layer 'd'.*incompatible input shapes: axis values 3 \(at axis 1\) != "
                                         r"4 \(at axis 1\). Full input shapes: \(None, 3\), \(None, 4\)"):
        layers.Dot(axes=1, name="d")([layers.Input((3,)), layers.Input((4,))])
    with pytest.raises(ValueError, match=r"Dot layer 'd'.*axis values 3 \(at axis 1\) != 4 \(at axis 2\).*"
                                         r"\(2, 3\), \(2, 5, 4\)"):
        layers.Dot(axes=(1, 2), name="d")([xp.ones((2, 3)), xp.ones((2, 5, 4))])
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        layers.Dot(axes=1)([layers.Input((3,))] * 3)
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        layers.Dot(axes=1)([xp.ones((2, 3))])
    with pytest.raises(ValueError, match=r"Dot layer 'd'.*names the batch axis"):
        layers.Dot(axes=0, name="d")([layers.Input((3,)), layers.Input((3,))])
    with pytest.raises(ValueError, match="names the batch axis"):
        layers.Dot(axes=(1, -3))([xp.ones((2, 3, 3)), xp.ones((2, 3, 3))])
    with pytest.raises(ValueError, match=r"axes=3 is out of range for inputs of shapes \(2, 3, 4\) and \(2, 3, 4\)"):
        layers.Dot(axes=3)([xp.ones((2, 3, 4)), xp.ones((2, 3, 4))])
    with pytest.raises(ValueError, match="out of range"):
        layers.Dot(axes=-4)([layers.Input((3, 4)), layers.Input((3, 4))])
    with pytest.raises(ValueError, match="a batch axis and at least one more"):
        layers.Dot(axes=0)([xp.ones(3), xp.ones(3)])
    with pytest.raises(ValueError, match="different batch sizes"):
        layers.Dot(axes=1)([xp.ones((2, 3)), xp.ones((5, 3))])
    with pytest.raises(ValueError, match="list of inputs"):
        layers.Dot(axes=1)(xp.ones((2, 3)))
