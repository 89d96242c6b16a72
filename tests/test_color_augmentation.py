"""The colour and tone image layers: plain NumPy expectations, seeds, inference, gradients, bad arguments.
(Keras 3 itself: test_keras_oracle_color_augmentation.py.)"""
import colorsys

import numpy
import pytest

from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gradcheck import assert_gradient


def images(rng, shape, low=0.0, high=255.0, dtype=numpy.float32):
    return rng.uniform(low, high, shape).astype(dtype)


def run(layer, xp, x, training=True):
    return to_numpy(layer(xp.asarray(x), training=training))


def gray(x):
    return (0.2989 * x[..., :1] + 0.587 * x[..., 1:2] + 0.114 * x[..., 2:])


# ------------------------------------------------------------ plain expectations
def test_grayscale_and_invert_with_probability_one_and_zero(xp, rng):
    x = images(rng, (3, 5, 4, 3))
    numpy.testing.assert_allclose(run(layers.RandomGrayscale(1.0), xp, x), numpy.broadcast_to(gray(x), x.shape),
                                  rtol=1e-6)
    numpy.testing.assert_array_equal(run(layers.RandomGrayscale(0.0), xp, x), x)
    one = images(rng, (2, 3, 3, 1))
    numpy.testing.assert_array_equal(run(layers.RandomGrayscale(1.0), xp, one), one)
    numpy.testing.assert_allclose(run(layers.RandomInvert((1.0, 1.0)), xp, x), 255 - x, rtol=1e-6)
    numpy.testing.assert_allclose(run(layers.RandomInvert((1.0, 1.0), value_range=(-1, 1)), xp, x / 255),
                                  1 - x / 255, rtol=1e-6, atol=1e-7)
    numpy.testing.assert_array_equal(run(layers.RandomInvert(0.0), xp, x), x)


def hsv_expectation(x, change):
    """Each pixel through colorsys (x in [0, 1]): change(h, s, v) -> (h, s, v)."""
    out = numpy.empty(x.shape)
    for index in numpy.ndindex(x.shape[:-1]):
        out[index] = colorsys.hsv_to_rgb(*change(*colorsys.rgb_to_hsv(*x[index])))
    return out


def test_hue_half_turn_and_saturation_scaling_follow_the_hsv_formulas(xp, rng):
    x = images(rng, (2, 3, 4, 3), 0.05, 1.0, numpy.float64)
    y = run(layers.RandomHue((1.0, 1.0), value_range=(0, 1)), xp, x)
    numpy.testing.assert_allclose(y, hsv_expectation(x, lambda h, s, v: ((h + 0.5) % 1.0, s, v)), atol=1e-6)
    y = run(layers.RandomHue((1.0, 1.0)), xp, x * 255)
    numpy.testing.assert_allclose(y / 255, hsv_expectation(x, lambda h, s, v: ((h + 0.5) % 1.0, s, v)), atol=1e-6)
    # factor 0.25 -> k = 1/3; 0.5 keeps the image; (-0.2) clips the saturation to value_range's low end
    for f, k in ((0.25, 1 / 3), (0.5, 1.0), (-0.2, 0.0)):
        y = run(layers.RandomSaturation((f, f), value_range=(0, 1)), xp, x)
        numpy.testing.assert_allclose(y, hsv_expectation(x, lambda h, s, v: (h, min(max(s * k, 0), 1), v)),
                                      atol=1e-6)


def test_color_degeneration_blends_towards_gray_and_clips(xp, rng):
    x = images(rng, (3, 4, 5, 3))
    for f in (0.0, 0.3, 1.0, -0.6):
        y = run(layers.RandomColorDegeneration((f, f)), xp, x)
        numpy.testing.assert_allclose(y, numpy.clip(x + f * (gray(x) - x), 0, 255), rtol=1e-5, atol=1e-3)


def test_posterization_keeps_the_top_bits(xp, rng):
    x = images(rng, (2, 4, 4, 3))
    for bits in (1, 3, 8):
        step = 2 ** (8 - bits)
        y = run(layers.RandomPosterization((bits, bits)), xp, x)
        numpy.testing.assert_array_equal(y, numpy.floor(numpy.trunc(x) / step) * step)
    y = run(layers.RandomPosterization((2, 2), value_range=(0, 1)), xp, x / 255)
    numpy.testing.assert_allclose(y, numpy.floor(numpy.trunc(x) / 64) * 64 / 255, rtol=1e-6)
    bits = {int(v) for v in numpy.unique(run(layers.RandomPosterization(4, seed=1), xp,
                                             numpy.full((64, 1, 1, 1), 255.0, numpy.float32)))}
    assert bits == {255 - (255 % 2 ** (8 - b)) for b in (1, 2, 3)}      # randint [1, 4): 4 bits never drawn


def test_solarization_inverts_above_the_threshold(xp, rng):
    x = images(rng, (3, 4, 4, 2))
    numpy.testing.assert_allclose(run(layers.Solarization(), xp, x), 255 - x, rtol=1e-6)   # threshold 0
    layer = layers.Solarization(addition_factor=0.2, threshold_factor=(0.5, 0.5), seed=3)
    y = run(layer, xp, x)
    # per image: y = r if r < t else 255 - r, r = clip(x + a, 0, 255), a in [0, 51], t in [0.5, 127.5]
    # each of the two draws from a generator of the next seed pair of the layer's SeedGenerator: (3, 0), (3, 1)
    a = 0.0 + (0.2 * 255 - 0.0) * numpy.random.default_rng(numpy.array([3, 0], numpy.uint32)).random(3)
    t = 0.5 + (0.5 * 255 - 0.5) * numpy.random.default_rng(numpy.array([3, 1], numpy.uint32)).random(3)
    r = numpy.clip(x + a[:, None, None, None], 0, 255)
    numpy.testing.assert_allclose(y, numpy.where(r < t[:, None, None, None], r, 255 - r), rtol=1e-5, atol=1e-3)


def test_auto_contrast_stretches_each_channel_always(xp, rng):
    x = images(rng, (2, 4, 5, 3), 60, 120)
    x[1, ..., 2] = 7.0                                             # a constant channel stays as it is
    low, high = x.min(axis=(1, 2), keepdims=True), x.max(axis=(1, 2), keepdims=True)
    expected = numpy.where(high > low, (x - low) / numpy.where(high > low, high - low, 1) * 255, x)
    for training in (True, False):
        numpy.testing.assert_allclose(run(layers.AutoContrast(), xp, x, training), expected, rtol=1e-5, atol=1e-3)
    first = layers.AutoContrast(value_range=(0, 1), data_format="channels_first")
    y = run(first, xp, (x / 255).transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
    numpy.testing.assert_allclose(y, numpy.where(high > low, expected / 255, x / 255), rtol=1e-5, atol=1e-6)


def test_equalization_maps_each_channel_through_its_cdf_over_the_batch(xp, rng):
    x = numpy.floor(images(rng, (2, 4, 4, 2)))
    y = run(layers.Equalization(), xp, x)
    for c in range(2):
        values = x[..., c].astype(int)
        hist = numpy.bincount(values.ravel(), minlength=256)
        cdf = numpy.cumsum(hist)
        cdf_min = cdf[numpy.nonzero(cdf)[0][0]]
        table = numpy.clip(numpy.round((cdf - cdf_min) * 255 / (cdf[-1] - cdf_min)), 0, 255)
        numpy.testing.assert_allclose(y[..., c], table[values], atol=1e-4)
    numpy.testing.assert_array_equal(run(layers.Equalization(), xp, x, training=False), x)   # Keras: training only
    flat = numpy.full((1, 3, 3, 1), 9.0, numpy.float32)
    numpy.testing.assert_array_equal(run(layers.Equalization(), xp, flat), flat)


def plain_filter(x, kernel):
    n, h, w, c = x.shape
    k = kernel.shape[0] // 2
    padded = numpy.zeros((n, h + 2 * k, w + 2 * k, c))
    padded[:, k:k + h, k:k + w] = x
    out = numpy.zeros(x.shape)
    for i in range(h):
        for j in range(w):
            out[:, i, j] = (padded[:, i:i + 2 * k + 1, j:j + 2 * k + 1] * kernel[None, :, :, None]).sum(axis=(1, 2))
    return out


def test_sharpness_and_gaussian_blur_filter_with_keras_kernels(xp, rng):
    x = images(rng, (2, 5, 6, 3))
    kernel = numpy.full((3, 3), 1 / 13)
    kernel[1, 1] = 5 / 13
    for f in (0.0, 0.5, 0.8):
        s = 2 * f
        y = run(layers.RandomSharpness((f, f)), xp, x)
        numpy.testing.assert_allclose(y, numpy.clip(x + (1 - s) * (plain_filter(x, kernel) - x), 0, 255),
                                      rtol=1e-5, atol=1e-3)
    sigma = 0.6 + 1e-6
    t = numpy.arange(5) - 2.0
    g = numpy.exp(-0.5 * (t / sigma) ** 2)
    g /= g.sum()
    y = run(layers.RandomGaussianBlur((1.0, 1.0), kernel_size=5, sigma=(0.6, 0.6)), xp, x)
    numpy.testing.assert_allclose(y, numpy.clip(plain_filter(x, numpy.outer(g, g)), 0, 255), rtol=1e-5, atol=1e-3)
    numpy.testing.assert_array_equal(run(layers.RandomGaussianBlur(0.0), xp, x), x)


def test_color_jitter_composes_its_parts_in_keras_order(xp, rng):
    x = images(rng, (2, 4, 4, 3), 40, 200)
    jitter = layers.RandomColorJitter(brightness_factor=(0.1, 0.1), contrast_factor=(-0.5, 0.5),
                                      saturation_factor=(0.25, 0.25), hue_factor=(1.0, 1.0))
    parts = [layers.RandomBrightness((0.1, 0.1)), layers.RandomContrast((-0.5, 0.5)),
             layers.RandomSaturation((0.25, 0.25)), layers.RandomHue((1.0, 1.0))]
    expected = x
    for part in parts:
        expected = run(part, xp, expected)
    numpy.testing.assert_allclose(run(jitter, xp, x), expected, rtol=1e-5, atol=1e-3)
    numpy.testing.assert_array_equal(run(layers.RandomColorJitter(), xp, x), x)


# ------------------------------------------------------------ seeds, inference, layouts
RANDOM = [
    lambda **kw: layers.RandomGrayscale(0.5, **kw), lambda **kw: layers.RandomHue(0.5, **kw),
    lambda **kw: layers.RandomSaturation(0.6, **kw), lambda **kw: layers.RandomColorDegeneration(0.7, **kw),
    lambda **kw: layers.RandomInvert(**kw), lambda **kw: layers.RandomPosterization(6, **kw),
    lambda **kw: layers.Solarization(0.5, 0.5, **kw), lambda **kw: layers.RandomSharpness(0.9, **kw),
    lambda **kw: layers.RandomGaussianBlur(sigma=(0.2, 1.0), **kw),
    lambda **kw: layers.RandomColorJitter(brightness_factor=0.2, contrast_factor=0.3, saturation_factor=0.5,
                                          hue_factor=0.3, **kw),
]


@pytest.mark.parametrize("make", RANDOM)
def test_random_layers_inactive_at_inference_and_reproducible(xp, rng, make):
    x = images(rng, (6, 5, 4, 3))
    a, b, c = make(seed=11), make(seed=11), make(seed=12)
    numpy.testing.assert_array_equal(run(a, xp, x, training=False), x)
    # where Keras's layer draws outside training too, its generator moves there: b goes the same way
    assert a.generator.state.numpy()[1] == a.pairs_outside_training
    run(b, xp, x, training=False)
    outs = [[run(layer, xp, x) for _ in range(3)] for layer in (a, b, c)]
    for ya, yb in zip(outs[0], outs[1]):
        numpy.testing.assert_array_equal(ya, yb)
    assert not all(numpy.array_equal(ya, yc) for ya, yc in zip(outs[0], outs[2]))
    assert not numpy.array_equal(outs[0][0], outs[0][1])
    # a direct call augments (unseeded: enough images that some are drawn to change whatever the seed)
    many = images(rng, (64, 5, 4, 3))
    assert not numpy.array_equal(to_numpy(make()(xp.asarray(many))), many)


@pytest.mark.parametrize("make", RANDOM + [lambda **kw: layers.AutoContrast(data_format=kw.get("data_format")),
                                           lambda **kw: layers.Equalization(data_format=kw.get("data_format"))])
def test_one_image_and_channels_first_match_the_batch(xp, rng, make):
    x = images(rng, (2, 5, 4, 3))
    single = make(seed=5)(xp.asarray(x[0]))
    assert single.shape == x[0].shape
    numpy.testing.assert_allclose(to_numpy(single), run(make(seed=5), xp, x[:1])[0], rtol=1e-5, atol=1e-3)
    batch = run(make(seed=5), xp, x)
    y = run(make(seed=5, data_format="channels_first"), xp, x.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
    numpy.testing.assert_allclose(y, batch, rtol=1e-5, atol=1e-3)


# ------------------------------------------------------------ gradients
DIFFERENTIABLE = [
    lambda: layers.RandomGrayscale(0.5, seed=2, dtype="float64"),
    lambda: layers.RandomInvert(0.8, value_range=(-1, 1), seed=2, dtype="float64"),
    lambda: layers.RandomColorDegeneration((-0.5, 0.8), value_range=(-0.3, 0.8), seed=2, dtype="float64"),
    lambda: layers.RandomSaturation((0.2, 0.9), value_range=(0, 1), seed=2, dtype="float64"),
    lambda: layers.RandomSaturation((-0.3, 0.6), value_range=(0.1, 1.5), seed=2, dtype="float64",
                                    data_format="channels_first"),
    lambda: layers.Solarization((0.1, 0.3), (0.2, 0.6), value_range=(0, 1), seed=2, dtype="float64"),
    lambda: layers.AutoContrast(value_range=(-1, 2), dtype="float64"),
    lambda: layers.RandomSharpness((0.1, 0.9), value_range=(0, 0.9), seed=2, dtype="float64"),
    lambda: layers.RandomGaussianBlur((0.5, 1.0), 5, (0.3, 1.0), value_range=(0.1, 0.8), seed=2, dtype="float64",
                                      data_format="channels_first"),
    lambda: layers.RandomColorJitter((0, 1), brightness_factor=0.2, contrast_factor=0.5, saturation_factor=0.7,
                                     seed=2, dtype="float64"),
]


@pytest.mark.parametrize("make", DIFFERENTIABLE)
def test_backward_is_the_gradient(xp, rng, make):
    layer = make()
    # values away from Solarization's threshold and the clips' ends would need care; random values in (0, 1)
    # hit the kinks with probability zero
    x = xp.asarray(rng.uniform(0.02, 0.98, (3, 3, 5, 3)))   # 3 channels in either layout
    # the draws of the call below, made again in f (AutoContrast draws nothing and has no SeedGenerator)
    start = layer.generator.state.numpy() if hasattr(layer, "generator") else None
    y = layer(x, training=True)
    w = xp.asarray(rng.standard_normal(y.shape))
    dx = layer.backward(w)

    def f(v):
        if start is not None:
            layer.generator.state.assign(start)
        return (layer(v, training=True) * w).sum()

    assert_gradient(f, x, dx, rng, h=1e-7, rtol=1e-5, what=type(layer).__name__)
    layer.input_gradient_wanted = False
    assert layer.backward(w) is None


@pytest.mark.parametrize("make", [lambda: layers.RandomHue(0.3), lambda: layers.RandomPosterization(4),
                                  lambda: layers.Equalization(),
                                  lambda: layers.RandomColorJitter(hue_factor=0.2, brightness_factor=0.1)])
def test_input_side_layers_refuse_a_backward(xp, rng, make):
    layer = make()
    x = xp.asarray(images(rng, (2, 3, 3, 3)))
    y = layer(x, training=True)
    with pytest.raises(NotImplementedError, match=f"{type(layer).__name__} layer '{layer.name}': has no gradient"):
        layer.backward(y)
    layer.input_gradient_wanted = False
    assert layer.backward(y) is None       # first in a model: no input gradient asked for


# ------------------------------------------------------------ arguments, configs
def test_bad_arguments_name_the_layer():
    checks = [
        (lambda v: layers.RandomGrayscale(v, name="z"), (1.5, -0.1, (0.1, 0.2), "a", True), "factor"),
        (lambda v: layers.RandomHue(v, name="z"), (1.5, -0.1, (2.0, 3.0), (0.1,)), "factor"),
        (lambda v: layers.RandomSaturation(v, name="z"), (1.5, (-3.0, -2.0)), "factor"),
        (lambda v: layers.RandomColorDegeneration(v, name="z"), (-1.5, "x"), "factor"),
        (lambda v: layers.RandomInvert(v, name="z"), (2.0, -0.5), "factor"),
        (lambda v: layers.RandomPosterization(v, name="z"), (0, 9, (9, 10)), "factor"),
        (lambda v: layers.Solarization(v, name="z"), (1.5, -0.1, (0.2, 1.2), (0.1, 0.2, 0.3)), "addition_factor"),
        (lambda v: layers.Solarization(0.1, v, name="z"), (2,), "threshold_factor"),
        (lambda v: layers.RandomSharpness(v, name="z"), (1.1, -0.5), "factor"),
        (lambda v: layers.RandomGaussianBlur(v, name="z"), (1.1,), "factor"),
        (lambda v: layers.RandomGaussianBlur(sigma=v, name="z"), (1.5, (2.0, 3.0)), "sigma"),
        (lambda v: layers.RandomGaussianBlur(kernel_size=v, name="z"), (4, 0, -3, 2.5, (3, 5), (3, 4), "3"),
         "kernel_size"),
        (lambda v: layers.Equalization(bins=v, name="z"), (0, 2.5, None), "bins"),
        (lambda v: layers.RandomColorJitter(brightness_factor=v, name="z"), (1.5,), "factor"),
    ]
    for make, bads, what in checks:
        for bad in bads:
            with pytest.raises(ValueError, match=f"layer 'z.*: {what}"):
                make(bad)
    for make in (lambda v: layers.RandomHue(0.1, value_range=v, name="z"),
                 lambda v: layers.RandomSaturation(0.1, value_range=v, name="z"),
                 lambda v: layers.RandomColorDegeneration(0.1, value_range=v, name="z"),
                 lambda v: layers.RandomInvert(value_range=v, name="z"),
                 lambda v: layers.RandomPosterization(2, value_range=v, name="z"),
                 lambda v: layers.Solarization(value_range=v, name="z"),
                 lambda v: layers.AutoContrast(value_range=v, name="z"),
                 lambda v: layers.Equalization(value_range=v, name="z"),
                 lambda v: layers.RandomSharpness(0.1, value_range=v, name="z"),
                 lambda v: layers.RandomGaussianBlur(value_range=v, name="z")):
        for bad in ((1, 1), (0,), 5, (0, "a"), (0, float("inf"))):
            with pytest.raises(ValueError, match="layer 'z': value_range"):
                make(bad)
    for make in (lambda v: layers.RandomHue(0.1, value_range=v, name="z"),
                 lambda v: layers.RandomInvert(value_range=v, name="z"),
                 lambda v: layers.RandomGaussianBlur(value_range=v, name="z")):
        with pytest.raises(ValueError, match="layer 'z': value_range must be .* low < high"):
            make((255, 0))
    assert layers.RandomSaturation(0.1, value_range=(1, 0)).value_range == [0, 1]     # Keras sorts these
    for cls in (layers.RandomHue, layers.RandomSaturation):
        with pytest.raises(ValueError, match=f"{cls.__name__} layer 'c': expects images with 3 channels"):
            cls(0.2, name="c")(numpy.zeros((1, 2, 2, 2), numpy.float32))
    with pytest.raises(ValueError, match="RandomGrayscale layer 'r' expects inputs of rank 4"):
        layers.RandomGrayscale(name="r")(numpy.zeros((2, 3), numpy.float32))
    with pytest.raises(ValueError, match="Solarization layer 'd': you passed an input with a 'bounding_boxes' key"):
        layers.Solarization(name="d")({"images": numpy.zeros((1, 2, 2, 3), numpy.float32), "bounding_boxes": {}})


def test_keras_factor_forms():
    assert layers.RandomHue(0.3).factor == (0.0, 0.3)
    assert layers.RandomSaturation(0.3).factor == (-0.3, 0.3)
    assert layers.RandomInvert().factor == (0.0, 1.0)
    assert layers.RandomPosterization(4).factor == (1.0, 4.0)
    assert layers.Solarization(0.4, (0.6, 0.2)).addition_factor == (0.0, 0.4)
    assert layers.Solarization(0.4, (0.6, 0.2)).threshold_factor == (0.2, 0.6)
    blur = layers.RandomGaussianBlur(kernel_size=5, sigma=0.5)
    assert blur.kernel_size == (5, 5) and blur.sigma == (0.0, 0.5) and blur.factor == (0.0, 1.0)


def test_config_round_trip_and_registration():
    from gpu_dl.models.keras_config import _layer_classes
    table = _layer_classes()
    for layer in (layers.RandomGrayscale(0.3, seed=1), layers.RandomHue((0.1, 0.4), value_range=(0, 1), seed=2),
                  layers.RandomSaturation(0.2, data_format="channels_first"), layers.RandomColorDegeneration(0.4),
                  layers.RandomInvert(0.5, value_range=(-1, 1)), layers.RandomPosterization((2, 5), seed=3),
                  layers.Solarization(0.2, (0.1, 0.4), value_range=(1, 0)), layers.AutoContrast((0, 1)),
                  layers.Equalization(bins=64), layers.RandomSharpness(0.4),
                  layers.RandomGaussianBlur(0.5, 5, (0.2, 0.8), seed=4),
                  layers.RandomColorJitter((0, 1), 0.1, 0.2, 0.3, 0.4, seed=5)):
        config = layer.get_config()
        config.pop("name")
        again = table[type(layer).__name__].from_config(config).get_config()
        again.pop("name")
        assert again == config
