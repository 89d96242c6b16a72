"""Resizing, CenterCrop, RandomCrop, RandomContrast and RandomBrightness against Keras 3 itself (where Keras is
installed, torch backend): deterministic outputs, output shapes, factor forms, configs key for key, and .keras
files both ways."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import layers  # noqa: E402
from gpu_dl.backend import to_numpy  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402

SIZES = [(1, 1), (1, 3), (3, 17), (17, 33), (33, 17), (33, 1), (5, 5), (64, 48)]


def theirs(layer, x, training):
    return keras.ops.convert_to_numpy(layer(x, training=training))


def assert_same(ours, keras_out, x):
    # float32 rounding of values up to 255: PyTorch's vectorised sums may differ by an ulp or two (1e-6 of the values)
    numpy.testing.assert_allclose(ours, keras_out, rtol=0, atol=1e-6 * max(1.0, float(abs(x).max())))


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("target", SIZES)
def test_resizing_matches_keras(xp, rng, interpolation, target):
    x = rng.uniform(0, 255, (2, 17, 9, 3)).astype(numpy.float32)
    for options in ({}, {"crop_to_aspect_ratio": True}, {"pad_to_aspect_ratio": True, "fill_value": 4.0}):
        ours = to_numpy(layers.Resizing(*target, interpolation=interpolation, **options)(xp.asarray(x)))
        k = keras.layers.Resizing(*target, interpolation=interpolation, **options)
        assert_same(ours, theirs(k, x, False), x)
        assert ours.shape == (2,) + target + (3,) == k.compute_output_shape((2, 17, 9, 3))


@pytest.mark.parametrize("source", [(1, 1), (3, 17), (33, 17), (7, 5)])
def test_resizing_up_and_down_one_image_and_channels_first_match_keras(xp, rng, source):
    x = rng.standard_normal(source + (2,)).astype(numpy.float32)
    for target in ((1, 3), (17, 33), (2, 2)):
        assert_same(to_numpy(layers.Resizing(*target)(xp.asarray(x))), theirs(keras.layers.Resizing(*target), x, 0), x)
        first = x.transpose(2, 0, 1)[None]
        k = keras.layers.Resizing(*target, data_format="channels_first")
        assert_same(to_numpy(layers.Resizing(*target, data_format="channels_first")(xp.asarray(first))),
                    theirs(k, first, False), x)


@pytest.mark.parametrize("target", SIZES + [(17, 9), (18, 9), (17, 10), (40, 2)])
def test_center_crop_matches_keras(xp, rng, target):
    x = rng.uniform(0, 255, (2, 17, 9, 3)).astype(numpy.float32)
    ours = to_numpy(layers.CenterCrop(*target)(xp.asarray(x)))
    assert_same(ours, theirs(keras.layers.CenterCrop(*target), x, False), x)
    assert layers.CenterCrop(*target).compute_output_shape((None, 17, 9, 3)) == \
        keras.layers.CenterCrop(*target).compute_output_shape((None, 17, 9, 3))


@pytest.mark.parametrize("target", [(3, 4), (17, 9), (17, 4), (20, 3), (40, 40), (2, 9)])
def test_random_crop_at_inference_and_when_it_cannot_move_matches_keras(xp, rng, target):
    x = rng.uniform(0, 255, (2, 17, 9, 3)).astype(numpy.float32)
    ours, k = layers.RandomCrop(*target, seed=1), keras.layers.RandomCrop(*target, seed=1)
    assert_same(to_numpy(ours(xp.asarray(x), training=False)), theirs(k, x, False), x)
    assert ours.compute_output_shape((None, 17, 9, 3)) == k.compute_output_shape((None, 17, 9, 3))
    if not (17 > target[0] and 9 > target[1]):     # no room to move: Keras's deterministic window
        assert_same(to_numpy(ours(xp.asarray(x), training=True)), theirs(k, x, True), x)


def test_random_crop_windows_lie_where_keras_can_put_them(rng):
    x = numpy.arange(17 * 9, dtype=numpy.float32).reshape(1, 17, 9, 1)
    for layer in (layers.RandomCrop(5, 4, seed=3), keras.layers.RandomCrop(5, 4, seed=3)):
        corners = {(int(y[0, 0, 0, 0]) // 9, int(y[0, 0, 0, 0]) % 9)
                   for y in (numpy.asarray(keras.ops.convert_to_numpy(layer(x, training=True))) for _ in range(60))}
        assert all(0 <= t <= 12 and 0 <= left <= 5 for t, left in corners) and len(corners) > 15


@pytest.mark.parametrize("factor", [(0.5, 0.5), (-0.3, -0.3), 0.0, (1.0, 1.0), (-1.0, -1.0)])
@pytest.mark.parametrize("value_range", [(0, 255), (-1.0, 1.0)])
def test_brightness_with_a_fixed_factor_matches_keras(xp, rng, factor, value_range):
    x = rng.uniform(value_range[0], value_range[1], (3, 5, 4, 3)).astype(numpy.float32)
    ours = to_numpy(layers.RandomBrightness(factor, value_range=value_range)(xp.asarray(x), training=True))
    k = keras.layers.RandomBrightness(factor, value_range=value_range)
    numpy.testing.assert_array_equal(ours, theirs(k, x, True))
    numpy.testing.assert_array_equal(to_numpy(layers.RandomBrightness(factor)(xp.asarray(x), training=False)),
                                     theirs(k, x, False))


# PyTorch's mean sums in another order than NumPy's and CuPy's: a few units in the last place of values up to 255
MEAN_ROUNDING = 1e-6 * 255


# Keras reads a pair (a, b) as contrast factors from [1 - a, 1 + b]: (-c, c) fixes the factor at 1 + c.
@pytest.mark.parametrize("factor", [(-0.5, 0.5), (-0.2, 0.2), 0.0, (-1.0, 1.0)])
@pytest.mark.parametrize("value_range", [(0, 255), (50, 120)])
def test_contrast_with_a_fixed_factor_matches_keras(xp, rng, factor, value_range):
    x = rng.uniform(0, 255, (3, 5, 4, 3)).astype(numpy.float32)
    ours = to_numpy(layers.RandomContrast(factor, value_range=value_range)(xp.asarray(x), training=True))
    k = keras.layers.RandomContrast(factor, value_range=value_range)
    numpy.testing.assert_allclose(ours, theirs(k, x, True), rtol=0, atol=MEAN_ROUNDING)
    channels_first = x.transpose(0, 3, 1, 2)
    ours = to_numpy(layers.RandomContrast(factor, value_range=value_range, data_format="channels_first")(
        xp.asarray(channels_first), training=True))
    k = keras.layers.RandomContrast(factor, value_range=value_range, data_format="channels_first")
    numpy.testing.assert_allclose(ours, theirs(k, channels_first, True), rtol=0, atol=MEAN_ROUNDING)


def test_factor_forms_and_refusals_follow_keras():
    for factor in (0.3, 1.0, 0, (0.2, 0.6), (0.6, 0.2), [-0.5, 0.5], (-2.0, 0.3), (0.9, 4.0)):
        assert layers.RandomContrast(factor).factor == tuple(keras.layers.RandomContrast(factor).factor)
    for factor in (0.3, -0.3, 1, (0.2, -0.6), (-0.6, 0.2), (-3.0, 0.5)):
        assert layers.RandomBrightness(factor).factor == tuple(keras.layers.RandomBrightness(factor).factor)
    for cls, bad in ((layers.RandomContrast, 1.5), (layers.RandomContrast, -0.1), (layers.RandomContrast, (0.3, -0.2)),
                     (layers.RandomBrightness, 1.2), (layers.RandomBrightness, (1.5, 2.0))):
        with pytest.raises(ValueError):
            getattr(keras.layers, cls.__name__)(bad)
        with pytest.raises(ValueError, match=f"{cls.__name__} layer 'f': factor"):
            cls(bad, name="f")


CONFIGS = [
    ("Resizing", (3, 4), {"interpolation": "nearest", "crop_to_aspect_ratio": True}),
    ("Resizing", (5, 2), {"pad_to_aspect_ratio": True, "fill_value": 2.5, "data_format": "channels_first"}),
    ("CenterCrop", (2, 3), {}),
    ("RandomCrop", (3, 3), {"seed": 4}),
    ("RandomContrast", ((0.1, 0.4),), {"value_range": (0, 1), "seed": 2}),
    ("RandomBrightness", (0.2,), {"value_range": (1, -1), "seed": 5}),
]


@pytest.mark.parametrize("name,args,kwargs", CONFIGS)
def test_configs_match_keras_key_for_key(name, args, kwargs):
    ours = getattr(layers, name)(*args, **kwargs).get_config()
    k = getattr(keras.layers, name)(*args, **kwargs).get_config()
    assert set(ours) == set(k)
    plain = lambda config: {key: list(v) if isinstance(v, tuple) else v   # noqa: E731
                            for key, v in config.items() if key not in ("name", "dtype")}
    assert plain(ours) == plain(k)


def keras_model():
    L = keras.layers
    return keras.Sequential([
        keras.Input((17, 13, 3)),
        L.Resizing(12, 10), L.CenterCrop(9, 9), L.RandomContrast(0.2, seed=1), L.RandomBrightness(0.1, seed=2),
        L.Resizing(8, 8, interpolation="nearest", crop_to_aspect_ratio=True), L.RandomCrop(6, 6, seed=3),
        L.Conv2D(2, 3, padding="same"), L.GlobalAveragePooling2D(), L.Dense(2),
    ])


def test_files_written_by_keras_load_and_predict_the_same(tmp_path, rng):
    keras.utils.set_random_seed(0)
    model = keras_model()
    model.set_weights([0.1 * rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    model.save(tmp_path / "k.keras")
    ours = load_model(tmp_path / "k.keras")
    assert [type(l).__name__ for l in ours.layers] == [type(l).__name__ for l in model.layers]
    assert ours.layers[2].factor == (0.0, 0.2) and ours.layers[5].height == 6
    x = rng.uniform(0, 255, (4, 17, 13, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(model.predict(x, verbose=0))
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-4)
    # and back: Keras reads the file gpu_dl writes
    ours.save(tmp_path / "again.keras")
    again = keras.models.load_model(tmp_path / "again.keras")
    numpy.testing.assert_allclose(keras.ops.convert_to_numpy(again.predict(x, verbose=0)), expected, rtol=1e-5,
                                  atol=1e-4)
    assert [type(l).__name__ for l in again.layers] == [type(l).__name__ for l in model.layers]


def test_output_shapes_match_keras():
    model = gpu_dl.Sequential([layers.Input((17, 13, 3)), layers.Resizing(12, 10), layers.CenterCrop(9, 9),
                               layers.RandomCrop(6, 5), layers.RandomContrast(0.2), layers.RandomBrightness(0.1)])
    k = keras.Sequential([keras.Input((17, 13, 3)), keras.layers.Resizing(12, 10), keras.layers.CenterCrop(9, 9),
                          keras.layers.RandomCrop(6, 5), keras.layers.RandomContrast(0.2),
                          keras.layers.RandomBrightness(0.1)])
    assert model.output_shape == tuple(k.output_shape) == (None, 6, 5, 3)
