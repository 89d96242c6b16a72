"""Resizing, CenterCrop, RandomCrop, RandomContrast, RandomBrightness: plain NumPy expectations, gradients, seeds,
bad arguments. (Keras 3 itself: test_keras_oracle_image_preprocessing.py.)"""
import math

import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gpu_dl.ops.resize import resize, resize_backward
from gpu_dl.ops.upsample import upsample_linear
from gradcheck import assert_gradient


def images(rng, shape, low=0.0, high=255.0, dtype=numpy.float32):
    return rng.uniform(low, high, shape).astype(dtype)


def plain_resize(x, height, width, interpolation):
    """The resize written out pixel by pixel (half-pixel centres, ends clamped), in float64."""
    n, h, w, c = x.shape
    out = numpy.zeros((n, height, width, c))

    def taps(o, n_in, n_out):
        if interpolation == "nearest":
            return [(min(math.floor((o + 0.5) * n_in / n_out), n_in - 1), 1.0)]
        src = max((o + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = min(math.floor(src), n_in - 1)
        t = src - i0
        return [(i0, 1.0 - t), (min(i0 + 1, n_in - 1), t)]

    for i in range(height):
        for j in range(width):
            for (a, wa) in taps(i, h, height):
                for (b, wb) in taps(j, w, width):
                    out[:, i, j] += wa * wb * x[:, a, b]
    return out


# ------------------------------------------------------------------ the resize op
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("size,target", [((1, 3), (17, 33)), ((3, 17), (1, 3)), ((17, 33), (33, 17)),
                                         ((33, 1), (3, 3)), ((5, 4), (5, 4)), ((6, 8), (3, 4))])
def test_resize_matches_the_pixel_by_pixel_formula(xp, rng, interpolation, size, target):
    x = images(rng, (2,) + size + (3,), dtype=numpy.float64)
    y = resize(xp.asarray(x), *target, interpolation=interpolation)
    assert y.shape == (2,) + target + (3,) and y.dtype == numpy.float64
    numpy.testing.assert_allclose(to_numpy(y), plain_resize(x, *target, interpolation), rtol=1e-12, atol=1e-10)


def test_halving_is_average_pooling_and_doubling_is_bilinear_upsampling(xp, rng):
    x = images(rng, (2, 6, 8, 3))
    pooled = x.reshape(2, 3, 2, 4, 2, 3).mean(axis=(2, 4))
    numpy.testing.assert_allclose(to_numpy(resize(xp.asarray(x), 3, 4)), pooled, rtol=1e-6)
    numpy.testing.assert_array_equal(to_numpy(resize(xp.asarray(x), 3, 4, "nearest")), x[:, 1::2, 1::2])
    numpy.testing.assert_allclose(to_numpy(resize(xp.asarray(x), 12, 16)),
                                  to_numpy(upsample_linear(xp.asarray(x), (1, 2), (2, 2))), rtol=1e-6)


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("size,target", [((1, 3), (4, 17)), ((17, 33), (3, 1)), ((3, 17), (33, 3)), ((7, 5), (7, 9))])
def test_resize_backward_is_the_gradient(xp, rng, interpolation, size, target):
    x = xp.asarray(rng.standard_normal((2,) + size + (2,)))
    w = xp.asarray(rng.standard_normal((2,) + target + (2,)))
    dx = resize_backward(w, *size, interpolation=interpolation)
    assert_gradient(lambda v: (resize(v, *target, interpolation=interpolation) * w).sum(), x, dx, rng,
                    what=f"resize {size} -> {target} ({interpolation})")


# ------------------------------------------------------------------- Resizing
def test_resizing_layer_shapes_one_image_and_channels_first(xp, rng):
    x = images(rng, (3, 7, 5, 2))
    layer = layers.Resizing(4, 9)
    y = to_numpy(layer(xp.asarray(x), training=False))
    numpy.testing.assert_allclose(y, plain_resize(x, 4, 9, "bilinear"), rtol=1e-5, atol=1e-4)
    numpy.testing.assert_array_equal(to_numpy(layer(xp.asarray(x), training=True)), y)   # no randomness
    assert layer.compute_output_shape((None, 7, 5, 2)) == (None, 4, 9, 2)
    assert layer.compute_output_shape((7, 5, 2)) == (4, 9, 2)
    single = layer(xp.asarray(x[1]))
    assert single.shape == (4, 9, 2)
    numpy.testing.assert_array_equal(to_numpy(single), y[1])
    first = layers.Resizing(4, 9, data_format="channels_first")
    y_first = to_numpy(first(xp.asarray(x.transpose(0, 3, 1, 2))))
    numpy.testing.assert_allclose(y_first.transpose(0, 2, 3, 1), y, rtol=1e-6)
    assert first.compute_output_shape((None, 2, 7, 5)) == (None, 2, 4, 9)


def test_resizing_crop_and_pad_to_aspect_ratio(xp, rng):
    x = images(rng, (2, 6, 12, 1))
    # target 4 x 4 (square): the centred 6 x 6 window, columns 3..8
    y = to_numpy(layers.Resizing(4, 4, crop_to_aspect_ratio=True)(xp.asarray(x)))
    numpy.testing.assert_allclose(y, plain_resize(x[:, :, 3:9], 4, 4, "bilinear"), rtol=1e-5, atol=1e-4)
    # padded to 12 x 12 with 3 rows of 7s above and below, then halved
    y = to_numpy(layers.Resizing(6, 6, pad_to_aspect_ratio=True, fill_value=7.0)(xp.asarray(x)))
    padded = numpy.full((2, 12, 12, 1), 7.0)
    padded[:, 3:9] = x
    numpy.testing.assert_allclose(y, plain_resize(padded, 6, 6, "bilinear"), rtol=1e-5, atol=1e-4)
    # an odd difference: Keras pads int((11 - 6) / 2) = 2 rows each side, 10 rows in all
    y = to_numpy(layers.Resizing(11, 12, pad_to_aspect_ratio=True)(xp.asarray(x), training=False))
    padded = numpy.zeros((2, 10, 12, 1))
    padded[:, 2:8] = x
    numpy.testing.assert_allclose(y, plain_resize(padded, 11, 12, "bilinear"), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("make", [
    lambda: layers.Resizing(5, 3, dtype="float64"),
    lambda: layers.Resizing(17, 4, interpolation="nearest", dtype="float64"),
    lambda: layers.Resizing(3, 3, crop_to_aspect_ratio=True, dtype="float64"),
    lambda: layers.Resizing(4, 3, pad_to_aspect_ratio=True, fill_value=2.0, dtype="float64"),
    lambda: layers.Resizing(4, 3, data_format="channels_first", dtype="float64"),
    lambda: layers.CenterCrop(3, 2, dtype="float64"),
    lambda: layers.CenterCrop(9, 2, dtype="float64"),
    lambda: layers.RandomCrop(2, 3, seed=1, dtype="float64"),
    lambda: layers.RandomCrop(9, 3, seed=1, dtype="float64"),
])
def test_size_layers_backward_is_the_gradient(xp, rng, make):
    layer = make()
    x = xp.asarray(rng.standard_normal((2, 6, 5, 3)))
    y = layer(x, training=True)
    w = xp.asarray(rng.standard_normal(y.shape))
    dx = layer.backward(w)
    # RandomCrop draws a new window per call: the check repeats the window of the call above.
    window = layer._saved
    assert_gradient(lambda v: (crop_again(layer, v, window) * w).sum(), x, dx, rng, what=type(layer).__name__)
    layer.input_gradient_wanted = False
    assert layer.backward(w) is None


def crop_again(layer, v, saved):
    """The layer's output for ``v`` through the window ``saved`` of an earlier call."""
    from gpu_dl.layers.image_resizing import crop_pad_resize
    _, box, pads = saved
    last = layer.to_last(v)
    y = crop_pad_resize(last, box, pads, (layer.height, layer.width), layer.interpolation,
                        getattr(layer, "fill_value", 0.0))
    return layer.from_last(y)


# ------------------------------------------------------------------ CenterCrop
@pytest.mark.parametrize("size", [(1, 1), (3, 17), (17, 3), (17, 33), (33, 17)])
def test_center_crop_is_the_middle_window(xp, rng, size):
    x = images(rng, (2, 33, 33, 2))
    y = to_numpy(layers.CenterCrop(*size)(xp.asarray(x), training=False))
    top, left = (33 - size[0]) // 2, (33 - size[1]) // 2
    numpy.testing.assert_array_equal(y, x[:, top:top + size[0], left:left + size[1]])


def test_center_crop_of_a_smaller_image_resizes_its_aspect_window(xp, rng):
    x = images(rng, (2, 6, 12, 3))
    y = to_numpy(layers.CenterCrop(8, 8)(xp.asarray(x)))
    numpy.testing.assert_allclose(y, plain_resize(x[:, :, 3:9], 8, 8, "bilinear"), rtol=1e-5, atol=1e-4)
    y = to_numpy(layers.CenterCrop(3, 17)(xp.asarray(x)))      # taller than wide in ratio: rows 2..3
    numpy.testing.assert_allclose(y, plain_resize(x[:, 2:4], 3, 17, "bilinear"), rtol=1e-5, atol=1e-4)


# ------------------------------------------------------------------ RandomCrop
def find_window(y, x):
    """The (top, left) where the (h, w) images y sit in x, the same for the whole batch."""
    h, w = y.shape[1:3]
    for top in range(x.shape[1] - h + 1):
        for left in range(x.shape[2] - w + 1):
            if numpy.array_equal(x[:, top:top + h, left:left + w], y):
                return top, left
    raise AssertionError("not a window of the input")


def test_random_crop_takes_a_random_window_in_training_only(xp, rng):
    x = images(rng, (4, 9, 8, 2))
    layer = layers.RandomCrop(4, 3, seed=5)
    corners = {find_window(to_numpy(layer(xp.asarray(x), training=True)), x) for _ in range(40)}
    assert len(corners) > 10 and all(0 <= t <= 5 and 0 <= l <= 5 for t, l in corners)
    # as Keras 3.15: the input unchanged at inference
    numpy.testing.assert_array_equal(to_numpy(layer(xp.asarray(x), training=False)), x)
    assert layer.compute_output_shape((None, 9, 8, 2)) == (None, 4, 3, 2)
    # not larger along both axes: Keras's aspect-ratio window, deterministic
    y = to_numpy(layers.RandomCrop(9, 3)(xp.asarray(x), training=True))
    numpy.testing.assert_array_equal(y, x[:, :, 2:5])
    y = to_numpy(layers.RandomCrop(12, 4)(xp.asarray(x), training=True))
    numpy.testing.assert_allclose(y, plain_resize(x[:, :, 2:6], 12, 4, "bilinear"), rtol=1e-5, atol=1e-4)


def test_random_crop_same_seed_same_windows(xp, rng):
    x = images(rng, (2, 17, 33, 1))
    a, b, c = layers.RandomCrop(3, 3, seed=7), layers.RandomCrop(3, 3, seed=7), layers.RandomCrop(3, 3, seed=8)
    wa = [find_window(to_numpy(a(xp.asarray(x), training=True)), x) for _ in range(5)]
    wb = [find_window(to_numpy(b(xp.asarray(x), training=True)), x) for _ in range(5)]
    wc = [find_window(to_numpy(c(xp.asarray(x), training=True)), x) for _ in range(5)]
    assert wa == wb and wa != wc


# ----------------------------------------------------- RandomContrast / RandomBrightness
def test_brightness_with_a_fixed_factor_adds_and_clips(xp, rng):
    x = images(rng, (3, 5, 4, 3))
    for factor, delta in (((0.25, 0.25), 63.75), ((-0.5, -0.5), -127.5)):
        y = to_numpy(layers.RandomBrightness(factor)(xp.asarray(x), training=True))
        numpy.testing.assert_allclose(y, numpy.clip(x + delta, 0, 255), rtol=1e-6)
    y = to_numpy(layers.RandomBrightness((0.1, 0.1), value_range=(1.0, -1.0))(xp.asarray(x / 255), training=True))
    numpy.testing.assert_allclose(y, numpy.clip(x / 255 + 0.2, -1, 1), rtol=1e-6)


def test_contrast_with_a_fixed_factor_scales_about_the_channel_means(xp, rng):
    x = images(rng, (3, 5, 4, 3))
    mean = x.mean(axis=(1, 2), keepdims=True)
    # Keras's pair (-0.5, 0.5) draws from [1 + 0.5, 1 + 0.5]; a factor 0 draws from [1, 1]
    for factor, c in (((-0.5, 0.5), 1.5), (0.0, 1.0), ((-0.3, 0.3), 1.3)):
        y = to_numpy(layers.RandomContrast(factor)(xp.asarray(x), training=True))
        numpy.testing.assert_allclose(y, numpy.clip((x - mean) * c + mean, 0, 255), rtol=1e-5, atol=1e-3)


def test_color_layers_draw_one_factor_per_image_in_their_range(xp, rng):
    x = images(rng, (64, 4, 4, 2), 100, 150)
    y = to_numpy(layers.RandomContrast((0.2, 0.5), value_range=(-1e4, 1e4), seed=3)(xp.asarray(x), training=True))
    xc, yc = x - x.mean(axis=(1, 2), keepdims=True), y - y.mean(axis=(1, 2), keepdims=True)
    c = (yc * xc).sum(axis=(1, 2, 3)) / (xc * xc).sum(axis=(1, 2, 3))
    numpy.testing.assert_allclose(yc, xc * c[:, None, None, None], rtol=1e-3, atol=1e-3)   # one factor per image
    assert c.min() >= 0.8 - 1e-5 and c.max() <= 1.5 + 1e-5 and c.max() - c.min() > 0.4
    y = to_numpy(layers.RandomBrightness(0.1, seed=3)(xp.asarray(x), training=True))
    d = (y - x).reshape(64, -1)
    numpy.testing.assert_allclose(d, d[:, :1] * numpy.ones_like(d), atol=1e-4)
    assert d.min() >= -25.5 - 1e-3 and d.max() <= 25.5 + 1e-3 and (d[:, 0] < 0).any() and (d[:, 0] > 0).any()


@pytest.mark.parametrize("make", [
    lambda **kw: layers.RandomContrast(0.5, **kw), lambda **kw: layers.RandomBrightness(0.3, **kw),
    lambda **kw: layers.RandomCrop(3, 2, **kw)])
def test_random_layers_inactive_at_inference_and_reproducible(xp, rng, make):
    x = images(rng, (5, 6, 4, 3))
    a, b, c = make(seed=11), make(seed=11), make(seed=12)
    numpy.testing.assert_array_equal(to_numpy(a(xp.asarray(x), training=False)), x)
    outs = [[to_numpy(layer(xp.asarray(x), training=True)) for _ in range(3)] for layer in (a, b, c)]
    for ya, yb in zip(outs[0], outs[1]):
        numpy.testing.assert_array_equal(ya, yb)
    assert not all(numpy.array_equal(ya, yc) for ya, yc in zip(outs[0], outs[2]))
    assert not numpy.array_equal(outs[0][0], outs[0][1])
    assert not numpy.array_equal(to_numpy(make()(xp.asarray(x))), x)    # a direct call augments


@pytest.mark.parametrize("make", [
    lambda: layers.RandomContrast((0.1, 0.6), value_range=(-1.0, 1.0), seed=2, dtype="float64"),
    lambda: layers.RandomContrast(0.4, value_range=(-1.0, 1.0), seed=2, dtype="float64",
                                  data_format="channels_first"),
    lambda: layers.RandomBrightness((-0.2, 0.4), value_range=(-1.0, 1.0), seed=2, dtype="float64"),
])
def test_color_layers_backward_is_the_gradient(xp, rng, make):
    layer = make()
    x = xp.asarray(rng.uniform(-1.2, 1.2, (3, 5, 4, 2)))     # some values clip
    start = layer.generator.state.numpy()      # the draws of the call below, made again in f
    y = layer(x, training=True)
    w = xp.asarray(rng.standard_normal(y.shape))
    dx = layer.backward(w)

    def f(v):
        layer.generator.state.assign(start)
        return (layer(v, training=True) * w).sum()

    assert_gradient(f, x, dx, rng, what=type(layer).__name__)


# ------------------------------------------------------------------ arguments
def test_bad_arguments_name_the_layer():
    for cls in (layers.Resizing, layers.CenterCrop, layers.RandomCrop):
        for bad in (0, -3, 2.5, True, None, "4"):
            with pytest.raises(ValueError, match=f"{cls.__name__} layer 'b': height must be a positive integer"):
                cls(bad, 3, name="b")
            with pytest.raises(ValueError, match=f"{cls.__name__} layer 'b': width must be a positive integer"):
                cls(3, bad, name="b")
        with pytest.raises(ValueError, match=f"{cls.__name__} layer 'r' expects inputs of rank 4"):
            cls(2, 2, name="r")(numpy.zeros((2, 3), numpy.float32), training=True)
    for bad in ("bicubic", "lanczos3", "area", "cubic", None):
        with pytest.raises(ValueError, match=f"Resizing layer 'z': interpolation.*{bad!r}|Resizing layer 'z': "
                                             f"interpolation {bad!r} is not supported"):
            layers.Resizing(2, 2, interpolation=bad, name="z")
    with pytest.raises(ValueError, match="Resizing layer 'z': antialias=True"):
        layers.Resizing(2, 2, antialias=True, name="z")
    with pytest.raises(ValueError, match="Resizing layer 'z': only one of"):
        layers.Resizing(2, 2, crop_to_aspect_ratio=True, pad_to_aspect_ratio=True, name="z")
    with pytest.raises(ValueError, match="Resizing layer 'z': fill_mode"):
        layers.Resizing(2, 2, fill_mode="reflect", name="z")
    for bad in (1.5, -0.1, (1.2, 3.0), (-0.5, -0.1), (0.1,), "0.2", None, float("nan"), (0.1, float("inf"))):
        with pytest.raises(ValueError, match=r"RandomContrast layer 'c': factor must be a number in \[0, 1\]"):
            layers.RandomContrast(bad, name="c")
    for bad in (1.5, -1.01, (1.2, 3.0), (-3.0, -2.0), (0.1, 0.2, 0.3), True):
        with pytest.raises(ValueError, match=r"RandomBrightness layer 'l': factor must be a number in \[-1, 1\]"):
            layers.RandomBrightness(bad, name="l")
    for cls in (layers.RandomContrast, layers.RandomBrightness):
        for bad in (255, (0,), (0, "a"), (0, float("nan"))):
            with pytest.raises(ValueError, match=f"{cls.__name__} layer 'v': value_range must be a pair"):
                cls(0.1, value_range=bad, name="v")
    with pytest.raises(ValueError, match="RandomContrast layer 'v': value_range must be .* low <= high"):
        layers.RandomContrast(0.1, value_range=(1, 0), name="v")
    for cls in (layers.RandomContrast, layers.RandomBrightness):
        for shape in ((2, 3), (1, 2, 3, 4, 5)):
            with pytest.raises(ValueError, match=f"{cls.__name__} layer 'r' expects inputs of rank 4"):
                cls(0.1, name="r")(numpy.zeros(shape, numpy.float32), training=True)


def test_keras_factor_forms():
    assert layers.RandomContrast(0.3).factor == (0.0, 0.3)          # Keras: max(-f, 0)
    assert layers.RandomContrast((0.4, 0.1)).factor == (0.1, 0.4)
    with pytest.raises(ValueError, match="factor"):       # Keras checks the pair as given, before sorting it
        layers.RandomContrast((0.3, -0.3))
    assert layers.RandomBrightness(-0.3).factor == (-0.3, 0.3)
    assert layers.RandomBrightness((0.5, -0.2)).factor == (-0.2, 0.5)
    assert layers.RandomBrightness(0.1, value_range=(1, -1)).value_range == [-1, 1]


def test_config_round_trip_and_registration():
    from gpu_dl.models.keras_config import _layer_classes
    table = _layer_classes()
    for layer in (layers.Resizing(3, 4, interpolation="nearest", crop_to_aspect_ratio=True),
                  layers.Resizing(3, 4, pad_to_aspect_ratio=True, fill_value=2.0, data_format="channels_first"),
                  layers.CenterCrop(2, 5), layers.RandomCrop(3, 3, seed=4),
                  layers.RandomContrast((0.1, 0.3), value_range=(0, 1), seed=2),
                  layers.RandomBrightness(0.2, value_range=(-1, 1))):
        config = layer.get_config()
        config.pop("name")
        again = table[type(layer).__name__].from_config(config).get_config()
        again.pop("name")
        assert again == config


def test_a_model_with_the_new_layers_trains_and_predicts(rng):
    gpu_dl.backend.set_random_seed(0)
    model = gpu_dl.Sequential([layers.Input((9, 11, 1)), layers.Resizing(8, 8), layers.RandomBrightness(0.1, seed=1),
                               layers.RandomContrast(0.2, seed=2), layers.CenterCrop(6, 6),
                               layers.Rescaling(1 / 255.0), layers.Flatten(), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x = images(rng, (16, 9, 11, 1))
    history = model.fit(x, rng.integers(0, 3, 16), epochs=2, batch_size=8, verbose=0)
    assert numpy.all(numpy.isfinite(history.history["loss"]))
    assert model.layers[3].compute_output_shape((None, 8, 8, 1)) == (None, 6, 6, 1)
    numpy.testing.assert_array_equal(model.predict(x, verbose=0), model.predict(x, verbose=0))
