"""Pipeline, RandomShear, RandomPerspective, RandAugment and AugMix: plain NumPy expectations, seeds, training
flags, gradients where they exist and clear errors where they do not."""
import random as python_random

import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy


def images(rng, shape=(2, 4, 5, 3)):
    return rng.uniform(0, 255, shape).astype(numpy.float32)


# ------------------------------------------------------------------ Pipeline
class Recorder(layers.Layer):
    """Appends its tag and the training flag it was given to a shared log; adds its tag to the input."""

    def __init__(self, tag=0.0, log=None, **kwargs):
        super().__init__(**kwargs)
        self.tag, self.log = tag, log if log is not None else []

    def call(self, x, training=False):
        self.log.append((self.tag, training))
        return x * 2 + self.tag

    def backward(self, dy):
        self.log.append((self.tag, "backward", self.input_gradient_wanted))
        return dy * 2


def test_pipeline_applies_its_layers_in_order_and_passes_training(xp):
    log = []
    pipe = layers.Pipeline([Recorder(1.0, log), Recorder(10.0, log)])
    x = xp.ones((2, 3), dtype=xp.float32)
    numpy.testing.assert_array_equal(to_numpy(pipe(x)), numpy.full((2, 3), (1 * 2 + 1) * 2 + 10))
    assert log == [(1.0, True), (10.0, True)]        # Keras's Pipeline: training defaults to True
    log.clear()
    pipe(x, training=False)
    assert log == [(1.0, False), (10.0, False)]
    log.clear()
    pipe.input_gradient_wanted = False
    numpy.testing.assert_array_equal(to_numpy(pipe.backward(xp.ones((2, 3), dtype=xp.float32))), 4)
    assert log == [(10.0, "backward", True), (1.0, "backward", False)]


def test_pipeline_of_augmentation_layers_at_inference_and_in_a_model(xp, rng):
    x = xp.asarray(images(rng))
    pipe = layers.Pipeline([layers.RandomFlip(seed=1), layers.RandomRotation(0.2, seed=2)], name="aug")
    numpy.testing.assert_array_equal(to_numpy(pipe(x, training=False)), to_numpy(x))
    assert not numpy.array_equal(to_numpy(pipe(x)), to_numpy(x))
    assert pipe(x[0]).shape == x[0].shape            # one image without a batch axis
    model = gpu_dl.Sequential([layers.Input((4, 5, 3)), pipe, layers.Flatten(), layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(to_numpy(x) / 255, numpy.zeros((2, 2), numpy.float32), epochs=1, verbose=0)
    numpy.testing.assert_array_equal(model.predict(to_numpy(x), verbose=0), model.predict(to_numpy(x), verbose=0))


def test_pipeline_weights_gradients_and_config_round_trip(rng):
    inner = layers.Dense(3)
    pipe = layers.Pipeline([layers.Dropout(0.5, seed=4), inner, layers.Dense(2)])
    x = rng.standard_normal((4, 5)).astype(numpy.float32)
    y = pipe(x, training=True)
    assert len(pipe.weights) == 4 and pipe.weights[0] is inner.kernel
    dx = pipe.backward(numpy.ones_like(y))
    assert dx.shape == x.shape and inner.kernel.grad is not None
    pipe.trainable = False
    assert pipe.trainable_weights == [] and not inner.trainable
    config = pipe.get_config()
    assert set(config) == {"layers", "name"} and [e["class_name"] for e in config["layers"]] == [
        "Dropout", "Dense", "Dense"]
    again = layers.Pipeline.from_config(config)
    assert [type(layer) for layer in again.layers] == [layers.Dropout, layers.Dense, layers.Dense]
    assert again.layers[0].rate == 0.5 and again.layers[2].units == 2 and again.name == pipe.name


def test_pipeline_refuses_what_is_not_a_list_of_its_layers():
    with pytest.raises(ValueError, match="Pipeline layer 'p': layers must be a list"):
        layers.Pipeline(layers.Dense(2), name="p")
    with pytest.raises(ValueError, match="gpu_dl's layer classes"):
        layers.Pipeline.from_config({"layers": [{"class_name": "os.system", "config": {}}], "name": "p"})
    with pytest.raises(ValueError, match="'layers'"):
        layers.Pipeline.from_config({"name": "p"})


# ------------------------------------------------- per-pixel references
def fixed_index(i, size, fill_mode):
    """Keras's fill modes for one integer position, written out; None: outside in constant mode."""
    if fill_mode == "constant":
        return i if 0 <= i < size else None
    if fill_mode == "nearest":
        return min(max(i, 0), size - 1)
    if fill_mode == "wrap":
        return i % size
    k = i % (2 * size)
    return k if k < size else 2 * size - 1 - k


def sample(image, x, y, fill_mode, interpolation, fill_value):
    """image (H, W, C) read at column x, row y."""
    h, w, _ = image.shape
    if interpolation == "nearest":
        nodes = [(round(y), round(x), 1.0)]        # Python's round: half to even, as numpy.round
    else:
        y0, x0 = numpy.floor(y), numpy.floor(x)
        nodes = [(y0 + dy, x0 + dx, (y - y0 if dy else 1 - (y - y0)) * (x - x0 if dx else 1 - (x - x0)))
                 for dy in (0, 1) for dx in (0, 1)]
    total = 0.0
    for row, col, weight in nodes:
        r, c = fixed_index(int(row), h, fill_mode), fixed_index(int(col), w, fill_mode)
        total = total + weight * (fill_value if r is None or c is None else image[r, c].astype(numpy.float64))
    return total


def shear_reference(x, shears, fill_mode, interpolation, fill_value):
    out = numpy.empty(x.shape)
    for n, (sx, sy) in enumerate(shears):
        for row in range(x.shape[1]):
            for col in range(x.shape[2]):
                out[n, row, col] = sample(x[n], col + sx * row, sy * col + row, fill_mode, interpolation, fill_value)
    return out


def perspective_reference(x, start, end, interpolation, fill_value):
    out = numpy.empty(x.shape)
    for n in range(x.shape[0]):
        # the homography taking the moved corners (end) onto the corners (start), solved plainly
        a, b = [], []
        for (sx, sy), (ex, ey) in zip(start[n], end[n]):
            a.append([ex, ey, 1, 0, 0, 0, -sx * ex, -sx * ey])
            a.append([0, 0, 0, ex, ey, 1, -sy * ex, -sy * ey])
            b += [sx, sy]
        t = numpy.linalg.solve(numpy.array(a, float), numpy.array(b, float))
        for row in range(x.shape[1]):
            for col in range(x.shape[2]):
                k = t[6] * col + t[7] * row + 1
                out[n, row, col] = sample(x[n], (t[0] * col + t[1] * row + t[2]) / k,
                                          (t[3] * col + t[4] * row + t[5]) / k, "constant", interpolation, fill_value)
    return out


class Draws:
    """A generator stand-in that returns fixed U(0, 1) numbers, to pin a layer's draws."""

    def __init__(self, values):
        self.values = list(values)

    def random(self, n):
        taken, self.values = self.values[:n], self.values[n:]
        return numpy.asarray(taken, dtype=float)

    def uniform(self, size, low=0.0, high=1.0):
        return low + (high - low) * self.random(int(numpy.prod(size))).reshape(size)


@pytest.mark.parametrize("fill_mode", ["reflect", "wrap", "constant", "nearest"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_shear_matches_a_per_pixel_reference(xp, rng, fill_mode, interpolation):
    x = images(rng, (2, 4, 5, 2))
    layer = layers.RandomShear((0.1, 0.5), (0.2, 0.6), interpolation=interpolation, fill_mode=fill_mode,
                               fill_value=9.0)
    # draws in Keras's order: the signs, then y, then x; image 0 keeps its sign, image 1 turns it
    draws = Draws([0.2, 0.7, 0.5, 0.25, 0.75, 1.0])
    layer.host_rng = lambda: draws
    y = to_numpy(layer(xp.asarray(x)))
    shears = [(0.1 + 0.4 * 0.75, 0.2 + 0.4 * 0.5), (-(0.1 + 0.4 * 1.0), -(0.2 + 0.4 * 0.25))]
    numpy.testing.assert_allclose(y, shear_reference(x, shears, fill_mode, interpolation, 9.0), rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_perspective_matches_a_per_pixel_reference(xp, rng, interpolation):
    x = images(rng, (3, 4, 5, 2))
    layer = layers.RandomPerspective((0.5, 0.5), scale=0.6, interpolation=interpolation, fill_value=-4.0)
    offsets = rng.uniform(0, 1, 24)
    # p = 0.5 for every image; thresholds 0.1, 0.9, 0.3 (the second image is left as it is); 24 corner offsets
    draws = Draws([0.0, 0.0, 0.0, 0.1, 0.9, 0.3] + list(offsets))
    layer.host_rng = lambda: draws
    y = to_numpy(layer(xp.asarray(x)))
    start = numpy.array([[[0, 0], [4, 0], [0, 3], [4, 3]]] * 3, float)
    end = start + start * (-0.3 + 0.6 * offsets).reshape(3, 4, 2)
    expected = perspective_reference(x, start, end, interpolation, -4.0)
    expected[1] = x[1]
    numpy.testing.assert_allclose(y, expected, rtol=1e-5, atol=2e-3)


GEOMETRIC = [lambda **kw: layers.RandomShear(0.3, 0.2, **kw), lambda **kw: layers.RandomPerspective(**kw)]


@pytest.mark.parametrize("make", GEOMETRIC)
def test_geometric_layers_seeds_inference_layouts(xp, rng, make):
    x = xp.asarray(images(rng, (3, 4, 5, 2)))
    numpy.testing.assert_array_equal(to_numpy(make(seed=1)(x, training=False)), to_numpy(x))
    a, b, c = make(seed=5), make(seed=5), make(seed=6)
    ya, yb, yc = (to_numpy(layer(x, training=True)) for layer in (a, b, c))
    numpy.testing.assert_array_equal(ya, yb)
    assert not numpy.array_equal(ya, yc) and not numpy.array_equal(ya, to_numpy(x))
    first = make(seed=5, data_format="channels_first")(x.transpose(0, 3, 1, 2))
    numpy.testing.assert_allclose(to_numpy(first).transpose(0, 2, 3, 1), ya, rtol=0, atol=1e-4)
    one = make(seed=5)(x[0])
    numpy.testing.assert_allclose(to_numpy(one), to_numpy(make(seed=5)(x[:1]))[0], rtol=0, atol=1e-4)


@pytest.mark.parametrize("make", GEOMETRIC)
def test_geometric_layer_backward_is_the_adjoint(xp, rng, make):
    layer = make(seed=4, dtype="float64", **({"fill_mode": "constant"} if make is GEOMETRIC[0] else {}))
    x = xp.asarray(rng.standard_normal((3, 4, 5, 2)))
    y = layer(x, training=True)
    dy = xp.asarray(rng.standard_normal(y.shape))
    dx = layer.backward(dy)
    # y = A x (fill value 0), so <A x, dy> = <x, A^T dy>
    numpy.testing.assert_allclose(float((y * dy).sum()), float((x * dx).sum()), rtol=1e-10)
    layer.input_gradient_wanted = False
    assert layer.backward(dy) is None


def test_geometric_layers_refuse_bad_arguments():
    for call, what in ((lambda: layers.RandomShear(1.5, name="s"), "RandomShear layer 's': x_factor"),
                       (lambda: layers.RandomShear(0.1, (0.1, -0.2), name="s"), "RandomShear layer 's': y_factor"),
                       (lambda: layers.RandomShear(fill_mode="mirror", name="s"), "RandomShear layer 's': fill_mode"),
                       (lambda: layers.RandomPerspective(1.5, name="p"), "RandomPerspective layer 'p': factor"),
                       (lambda: layers.RandomPerspective(scale=2, name="p"), "RandomPerspective layer 'p': scale"),
                       (lambda: layers.RandomPerspective(interpolation="bicubic", name="p"),
                        "RandomPerspective layer 'p': interpolation")):
        with pytest.raises(ValueError, match=what):
            call()


# --------------------------------------------------------- RandAugment, AugMix
class PolicyDraws:
    """A generator stand-in for the policies' own draws (the ops here draw nothing): RandAugment's op indices,
    AugMix's gammas (their shares are the chain weights) and mixing weight."""

    def __init__(self, picks=(), gammas=None, beta=None):
        self.picks, self.fixed_gammas, self.fixed_beta = list(picks), gammas, beta

    def integers(self, low, high, size, dtype):
        taken, self.picks = self.picks[:size[0]], self.picks[size[0]:]
        return numpy.asarray(taken, dtype=dtype)

    def gamma(self, alpha, scale, size):
        return numpy.asarray(self.fixed_gammas)

    def beta(self, a, b, size):
        return numpy.asarray(self.fixed_beta)


def test_rand_augment_applies_the_drawn_ops_in_turn(xp, rng):
    from gpu_dl.layers.policy_augmentation import RAND_AUGMENT_OPS
    x = xp.asarray(images(rng, (2, 4, 5, 3)))
    layer = layers.RandAugment(num_ops=2)
    layer.host_rng = lambda: PolicyDraws([RAND_AUGMENT_OPS.index("auto_contrast"),
                                           RAND_AUGMENT_OPS.index("equalization")])
    expected = layers.Equalization()(layers.AutoContrast()(x, training=True), training=True)
    numpy.testing.assert_allclose(to_numpy(layer(x)), to_numpy(expected), rtol=1e-6, atol=1e-4)


def test_aug_mix_mixes_its_chains_as_keras_does(xp, rng, monkeypatch):
    from gpu_dl.layers import policy_augmentation
    from gpu_dl.layers.policy_augmentation import AUGMIX_OPS
    x_host = images(rng, (2, 4, 5, 3))
    x = xp.asarray(x_host)
    layer = layers.AugMix(num_chains=2, chain_depth=2, all_ops=False)
    draws = PolicyDraws(gammas=[0.5, 1.5], beta=0.4)          # chain weights 0.25 and 0.75
    layer.host_rng = lambda: draws
    # Keras picks the ops with Python's random.choice over the ops and None (no op)
    picks = iter(["auto_contrast", None, None, None])
    monkeypatch.setattr(policy_augmentation.python_random, "choice",
                        lambda options: options[options.index(next(picks))])
    assert list(AUGMIX_OPS)[5] == "auto_contrast"
    contrasted = to_numpy(layers.AutoContrast()(x)).astype(numpy.float64)
    expected = numpy.clip(0.4 * x_host + 0.6 * (0.25 * contrasted + 0.75 * x_host), 0, 255)
    numpy.testing.assert_allclose(to_numpy(layer(x)), expected, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("make", [lambda **kw: layers.RandAugment(**kw),
                                  lambda **kw: layers.AugMix(**kw)])
def test_policies_seeds_inference_layouts_and_no_gradient(xp, rng, make):
    x = xp.asarray(images(rng, (2, 4, 5, 3)))
    numpy.testing.assert_array_equal(to_numpy(make(seed=1)(x, training=False)), to_numpy(x))

    def run(layer, inputs):
        python_random.seed(3)       # AugMix picks its ops with Python's random, as Keras's does
        return to_numpy(layer(inputs, training=True))
    outs = [run(make(seed=s), x) for s in (7, 7, 8)]
    numpy.testing.assert_array_equal(outs[0], outs[1])
    assert not numpy.array_equal(outs[0], outs[2])
    first = run(make(seed=7, data_format="channels_first"), x.transpose(0, 3, 1, 2))
    numpy.testing.assert_allclose(to_numpy(first).transpose(0, 2, 3, 1), outs[0], rtol=0, atol=1e-3)
    assert make(seed=7)(x[0]).shape == x[0].shape
    layer = make(seed=2, name="policy")
    y = layer(x, training=True)
    with pytest.raises(NotImplementedError, match="layer 'policy': has no gradient"):
        layer.backward(xp.ones_like(y))


def test_policies_refuse_bad_arguments():
    for call, what in ((lambda: layers.RandAugment(factor=1.5, name="r"), "RandAugment layer 'r': factor"),
                       (lambda: layers.RandAugment(num_ops=0, name="r"), "RandAugment layer 'r': num_ops"),
                       (lambda: layers.RandAugment(interpolation="cubic", name="r"),
                        "RandAugment layer 'r': interpolation"),
                       (lambda: layers.AugMix(num_chains=0, name="a"), "AugMix layer 'a': num_chains"),
                       (lambda: layers.AugMix(chain_depth=1.5, name="a"), "AugMix layer 'a': chain_depth"),
                       (lambda: layers.AugMix(alpha=0, name="a"), "AugMix layer 'a': alpha")):
        with pytest.raises(ValueError, match=what):
            call()


def test_a_pipeline_can_be_wrapped_where_a_model_cannot():
    """A Pipeline holds layers but is no model: TimeDistributed takes it (a model is refused)."""
    wrapped = gpu_dl.layers.TimeDistributed(gpu_dl.layers.Pipeline([gpu_dl.layers.Rescaling(0.5)]))
    x = numpy.arange(24, dtype="float32").reshape(2, 3, 2, 2, 1)
    numpy.testing.assert_allclose(wrapped(x, training=False), x * 0.5)
