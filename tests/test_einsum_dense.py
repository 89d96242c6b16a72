"""EinsumDense: shapes as Keras's equation analysis gives them, forward against numpy.einsum, backward against
float64 finite differences for the input, kernel and bias, a model that trains and reloads, and the errors.
One body per backend."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gpu_dl.models import load_model
from gradcheck import assert_gradient
from toy_data import assert_trains_and_reloads

# (equation, output_shape, bias_axes, input shape, kernel shape, bias shape, output shape)
CASES = [
    ("ab,bc->ac", 4, "c", (3, 5), (5, 4), (4,), (3, 4)),
    ("abc,cd->abd", (None, 4), "d", (3, 17, 5), (5, 4), (4,), (3, 17, 4)),
    ("abc,cde->abde", (None, 2, 3), "e", (1, 3, 5), (5, 2, 3), (3,), (1, 3, 2, 3)),
    ("abc,cde->abde", (None, 2, 3), "d", (3, 1, 5), (5, 2, 3), (2, 1), (3, 1, 2, 3)),
    ("...b,bc->...c", 4, "c", (3, 2, 5), (5, 4), (4,), (3, 2, 4)),
    ("...b,bc->...c", 1, None, (3, 5), (5, 1), None, (3, 1)),
    ("ab,bcd->acd", (2, 3), "cd", (3, 5), (5, 2, 3), (2, 3), (3, 2, 3)),
    ("abc...,cd->abd...", (None, 4), "d", (3, 2, 5, 3), (5, 4), (4, 1), (3, 2, 4, 3)),
    ("abc,cd->ad", 4, "d", (3, 2, 5), (5, 4), (4,), (3, 4)),
    ("bqm,muh->bquh", (None, 2, 3), "uh", (3, 4, 5), (5, 2, 3), (2, 3), (3, 4, 2, 3)),
    ("bquh,uhm->bqm", (None, 5), "m", (3, 4, 2, 3), (2, 3, 5), (5,), (3, 4, 5)),
]
IDS = [f"{c[0]}|{c[2]}" for c in CASES]


def _expected(equation, x, kernel, bias, activation):
    z = numpy.einsum(equation, x, kernel)
    if bias is not None:
        z = z + bias
    return numpy.tanh(z) if activation == "tanh" else z


@pytest.mark.parametrize("equation,out,bias_axes,shape,kernel_shape,bias_shape,out_shape", CASES, ids=IDS)
@pytest.mark.parametrize("activation", [None, "tanh"])
def test_forward_and_gradients(xp, rng, equation, out, bias_axes, shape, kernel_shape, bias_shape, out_shape,
                               activation):
    layer = layers.EinsumDense(equation, out, bias_axes=bias_axes, activation=activation, dtype="float64")
    host = rng.standard_normal(shape)
    x = xp.asarray(host)
    layer(x)
    assert layer.kernel.shape == kernel_shape
    assert (layer.bias.shape if layer.bias is not None else None) == bias_shape
    layer.set_weights([rng.standard_normal(w.shape) for w in layer.weights])
    y = layer(x, training=True)
    w = [v.numpy() for v in layer.weights]
    want = _expected(equation, host, w[0], w[1] if len(w) > 1 else None, activation)
    assert y.shape == out_shape
    numpy.testing.assert_allclose(to_numpy(y), want, rtol=1e-12, atol=1e-12)
    spec = layer.compute_output_shape((None,) + shape[1:])
    assert len(spec) == len(out_shape) and all(s in (None, o) for s, o in zip(spec[1:], out_shape[1:]))

    direction = xp.asarray(rng.standard_normal(out_shape))
    dx = layer.backward(direction)

    def f(value):
        return (layer(value) * direction).sum()
    assert_gradient(f, x, dx, rng, what=f"{equation} input")
    for var in layer.weights:
        grad, original = var.grad, var.value.copy()

        def g(value, var=var, original=original):
            var.value[...] = value
            out_value = (layer(x) * direction).sum()
            var.value[...] = original
            return out_value
        assert_gradient(g, original.copy(), grad, rng, what=f"{equation} {var.name}")


def test_fan_axes_reach_the_initializer():
    layer = layers.EinsumDense("abc,cde->abde", (None, 8, 16), kernel_initializer="glorot_uniform")
    layer.build((None, 3, 32))
    # Glorot over fan_in 32 and fan_out 8 * 16, not over the last two axes alone.
    limit = numpy.sqrt(6 / (32 + 128))
    assert numpy.abs(layer.kernel.numpy()).max() <= limit
    assert numpy.abs(layer.kernel.numpy()).max() > 0.8 * limit


def test_in_a_model_it_trains_and_reloads(tmp_path, rng):
    gpu_dl.backend.set_random_seed(0)
    x = layers.Input((4, 6))
    h = layers.EinsumDense("abc,cde->abde", (4, 2, 3), bias_axes="de", activation="relu", name="e1")(x)
    y = layers.EinsumDense("abde,bdek->ak", 3, bias_axes="k", name="e2")(h)
    model = gpu_dl.Model(x, layers.Activation("softmax")(y))
    assert model.get_layer("e1").count_params() == 6 * 2 * 3 + 2 * 3
    data, target = rng.standard_normal((32, 4, 6)).astype("float32"), rng.integers(0, 3, 32)
    assert_trains_and_reloads(model, data, target, tmp_path, load_model)
    config = model.get_layer("e1").get_config()
    again = layers.EinsumDense.from_config(config)
    assert (again.equation, again.partial_output_shape, again.bias_axes) == ("abc,cde->abde", (4, 2, 3), "de")


def test_bad_arguments_and_inputs_name_the_layer(xp):
    for equation in ("ab->ac", "ab,bc", "a...b,bc->ac", "ab,bc->ac,d", "aab,bc->ac", 3):
        with pytest.raises(ValueError, match=r"EinsumDense layer 'e'"):
            layers.EinsumDense(equation, 4, name="e")
    with pytest.raises(ValueError, match=r"EinsumDense layer 'e'.*'x'.*no corresponding dim"):
        layers.EinsumDense("ab,bc->ax", 4, name="e")
    with pytest.raises(ValueError, match=r"EinsumDense layer 'e'.*weight dimension 'd'"):
        layers.EinsumDense("ab,bd->ab", 4, name="e")
    with pytest.raises(ValueError, match=r"EinsumDense layer 'e'.*output_shape \(3, 4\) must give 1 size"):
        layers.EinsumDense("ab,bc->ac", (3, 4), name="e")
    with pytest.raises(ValueError, match=r"EinsumDense layer 'e'.*bias dimension 'z'"):
        layers.EinsumDense("ab,bc->ac", 4, bias_axes="z", name="e")
    with pytest.raises(ValueError, match=r"EinsumDense layer 'e'.*lora_rank"):
        layers.EinsumDense("ab,bc->ac", 4, lora_rank=0, name="e")
    layer = layers.EinsumDense("abc,cd->abd", (5, 4), name="e")
    with pytest.raises(ValueError, match=r"EinsumDense layer 'e'.*shared dimension 'b'"):
        layer(xp.ones((2, 3, 6)))
    layer = layers.EinsumDense("abc,cd->abd", (None, 4), name="e")
    layer(xp.ones((2, 3, 6)))
    with pytest.raises(ValueError, match=r"EinsumDense layer 'e'.*built for inputs"):
        layer(xp.ones((2, 3, 7)))
    with pytest.raises(ValueError, match=r"EinsumDense layer 'e'.*rank exactly 3"):
        layer(xp.ones((2, 6)))
    with pytest.raises(ValueError, match=r"EinsumDense layer 'e'.*unknown size"):
        layers.EinsumDense("abc,cd->abd", (None, None), name="e").build((None, 3, 6))


RANK4_MODELS = {
    "einsum_abcd": (lambda lib: lib.layers.EinsumDense("abcd,de->abce", (3, 4, 6), bias_axes="e"), (3, 4, 5)),
    "einsum_abc": (lambda lib: lib.layers.EinsumDense("abc,cde->abde", (3, 4, 6), bias_axes="de"), (3, 5)),
    "dense": (lambda lib: lib.layers.Dense(6), (3, 4, 5)),
    "conv2d": (lambda lib: lib.layers.Conv2D(6, 3, padding="same"), (3, 4, 5)),
}


def rank4_losses(kind, loss, x, y):
    """The initial weights, and the losses train_on_batch (3 samples), test_on_batch (7) and evaluate (batches of 2)
    return, of a new model of ``kind``."""
    make, sample_shape = RANK4_MODELS[kind]
    ours = gpu_dl.Sequential([layers.Input(sample_shape), make(gpu_dl)])
    initial = ours.get_weights()
    ours.compile(optimizer="sgd", loss=loss)
    values = [ours.train_on_batch(x[:3], y[:3]), ours.test_on_batch(x, y), ours.evaluate(x, y, batch_size=2, verbose=0)]
    assert {w.dtype for w in ours.get_weights()} == {numpy.dtype("float32")}
    return initial, values


@pytest.mark.parametrize("loss", ["mse", "mae"])
@pytest.mark.parametrize("kind", sorted(RANK4_MODELS))
def test_rank4_output_losses_are_float32_values(xp, rng, kind, loss):
    """The loss train_on_batch, test_on_batch and evaluate return is a float32 mean (a Python float holding a
    float32 value) as Keras's loss tracker's: not the float32 sum divided in float64 (3 and 7 samples make that
    division inexact), nor a loss NumPy 1.26 made float64 (a float32 scalar plus a Python 0.0 of no weight
    penalty, or times a Python int of samples)."""
    x = rng.standard_normal((7,) + RANK4_MODELS[kind][1]).astype("float32")
    _, values = rank4_losses(kind, loss, x, rng.standard_normal((7, 3, 4, 6)).astype("float32"))
    for value in values:
        assert type(value) is float
        assert float(numpy.float32(value)) == value


@pytest.mark.parametrize("loss", ["mse", "mae"])
@pytest.mark.parametrize("kind", sorted(RANK4_MODELS))
def test_rank4_output_losses_match_keras(xp, rng, kind, loss):
    keras = pytest.importorskip("keras")
    make, sample_shape = RANK4_MODELS[kind]
    x = rng.standard_normal((7,) + sample_shape).astype("float32")
    y = rng.standard_normal((7, 3, 4, 6)).astype("float32")
    initial, values = rank4_losses(kind, loss, x, y)
    theirs = keras.Sequential([keras.Input(sample_shape), make(keras)])
    theirs.set_weights(initial)
    theirs.compile(optimizer="sgd", loss=loss)
    expected = [theirs.train_on_batch(x[:3], y[:3]), theirs.test_on_batch(x, y),
                theirs.evaluate(x, y, batch_size=2, verbose=0)]
    # rel 1e-4: the GPU conv kernel sums in its own order
    assert values == pytest.approx([float(v) for v in expected], rel=1e-4)
    assert [float(numpy.float32(v)) for v in expected] == [float(v) for v in expected]    # Keras's are float32
