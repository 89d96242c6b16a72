"""ContrastLimitedAdaptiveHistogramEqualization and RandomElasticTransform against Keras 3 itself (where Keras is
installed, torch backend): CLAHE's outputs on random images; the elastic transform's with the same displacement
fields (Keras's torch backend draws them from torch's global generator, so the test gives it gpu_dl's), and with
Keras's NumPy backend's draws for the same seed, the fields' noise drawn from the seed pair Keras's layer gives
its elastic_transform by gpu_dl's counter-based generator (gpu_dl draws its noise on the images' device, so not
NumPy's normal draws Keras's NumPy backend takes); configs key for key; .keras files both ways."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

from gpu_dl import layers  # noqa: E402
from gpu_dl.backend import to_numpy  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402
from gpu_dl.ops import counter_noise  # noqa: E402

from keras_steps import assert_keras_file_loads_both_ways  # noqa: E402

from test_keras_oracle_augmentation_draws import _numpy_backend_draws  # noqa: E402
from test_keras_oracle_geometric_augmentation import plain, theirs  # noqa: E402

NAME = "ContrastLimitedAdaptiveHistogramEqualization"


# ------------------------------------------------------------------------ CLAHE
CASES = [((2, 17, 13, 3), (4, 3), 4.0, (0, 255), "float32"), ((1, 9, 11, 1), (8, 8), 2.0, (0, 255), "uint8"),
         ((3, 33, 20, 2), (2, 5), 0.0, (0, 1), "float32"), ((16, 15, 3), (3, 3), 1.3, (0, 255), "float32"),
         ((2, 12, 12, 3), (3, 4), 4.0, (0, 1), "float64"), ((2, 12, 12, 3), (3, 4), 40.0, (0, 255), "int32"),
         ((10, 7, 1), (8, 8), 4.0, (0, 1), "float32"), ((2, 31, 29, 3), (8, 8), 6.0, (0, 255), "uint8")]


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("shape,grid,clip_limit,value_range,dtype", CASES)
def test_clahe_is_keras_s(xp, rng, shape, grid, clip_limit, value_range, dtype, data_format):
    if value_range == (0, 1):
        x = rng.uniform(0, 1, shape).astype(dtype)
    else:
        x = rng.integers(0, 256, shape).astype(dtype) if dtype != "float32" else rng.uniform(0, 255, shape)
        x = x.astype(dtype)
    band = x[..., : shape[-3] // 3, :, :]
    band[...] = (band * 0.3).astype(dtype)            # a darker band: histograms the limit clips
    if data_format == "channels_first":
        x = numpy.moveaxis(x, -1, -3).copy()
    kwargs = dict(value_range=value_range, clip_limit=clip_limit, tile_grid_size=grid, data_format=data_format)
    want = theirs(getattr(keras.layers, NAME)(**kwargs)(x))
    got = getattr(layers, NAME)(**kwargs)(xp.asarray(x))
    assert got.dtype == want.dtype and got.shape == want.shape
    numpy.testing.assert_allclose(to_numpy(got), want, rtol=0, atol=1e-6 * 255)


def test_clahe_config_and_inference_match_keras(rng):
    kwargs = dict(value_range=(0, 1), clip_limit=2.0, tile_grid_size=(4, 2))
    ours, k = getattr(layers, NAME)(**kwargs), getattr(keras.layers, NAME)(**kwargs)
    assert set(ours.get_config()) == set(k.get_config())
    assert plain(ours.get_config()) == plain(k.get_config())
    again = getattr(layers, NAME).from_config(k.get_config())
    x = rng.uniform(0, 1, (2, 9, 10, 3)).astype("float32")
    numpy.testing.assert_allclose(again(x, training=False), theirs(k(x, training=False)), rtol=0, atol=1e-6)


# ------------------------------------------------------------------ elastic
def keras_with_our_fields(k, x, apply, distortion, noise, monkeypatch):
    """Keras's transform_images with the given draws: its torch backend's two torch.normal calls return the
    column and then the row noise."""
    n = len(apply)
    queue = [torch.tensor(noise[:n]), torch.tensor(noise[n:])]
    monkeypatch.setattr(torch, "normal", lambda *args, **kwargs: queue.pop(0))
    transformation = {"apply_transform": torch.tensor(apply), "distortion_factor": torch.tensor(distortion),
                      "seed": None}
    y = theirs(k.transform_images(x, transformation, training=True))
    monkeypatch.undo()
    assert queue == []
    return y


@pytest.mark.parametrize("fill_mode", ["reflect", "mirror", "constant", "wrap", "nearest"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_elastic_with_the_same_fields_is_keras_s(xp, rng, monkeypatch, fill_mode, interpolation, data_format):
    x = rng.uniform(0, 255, (3, 41, 37, 2)).astype("float32")
    if data_format == "channels_first":
        x = x.transpose(0, 3, 1, 2).copy()
    kwargs = dict(factor=(0.6, 1.0), scale=(0.5, 1.0), interpolation=interpolation, fill_mode=fill_mode,
                  fill_value=7.0, value_range=(10, 240), data_format=data_format)
    ours = layers.RandomElasticTransform(seed=3, **kwargs)
    apply, distortion, noise = ours.draw(3, 41, 37)
    apply = numpy.array([True, False, True])
    ours.draw = lambda n, h, w, xp=numpy: (apply, distortion, noise)
    got = to_numpy(ours(xp.asarray(x)))
    want = keras_with_our_fields(keras.layers.RandomElasticTransform(**kwargs), x, apply, distortion, noise,
                                 monkeypatch)
    # the Gaussian blur: one 2-D correlation in Keras, two 1-D passes here (float32 rounding of the positions)
    close = numpy.isclose(got, want, rtol=0, atol=2e-3)
    assert close.all() if interpolation == "bilinear" else close.mean() > 0.999
    assert not numpy.allclose(got, numpy.clip(x, 10, 240), atol=1)


@pytest.fixture
def numpy_draws(monkeypatch):
    """Keras's torch backend drawing what Keras's NumPy backend draws, for this test: its keras.random functions;
    and elastic_transform's two normal draws from the seed pair it is given (torch's backend ignores it), drawn
    there by gpu_dl's counter-based generator: one (2N, H, W) draw, the columns' noise and then the rows'."""
    from keras.src.backend.torch import image as torch_image
    from keras.src.backend.torch import random as torch_random
    from keras.src.random.seed_generator import draw_seed
    for function in _numpy_backend_draws():
        monkeypatch.setattr(torch_random, function.__name__, function)
    original = torch_image.elastic_transform

    def elastic_transform(images, *args, seed=None, **kwargs):
        pair = numpy.asarray(theirs(draw_seed(seed))).astype("uint32")
        n, h, w = images.shape[0], images.shape[-3], images.shape[-2]
        if kwargs.get("data_format") == "channels_first":
            h, w = images.shape[-2], images.shape[-1]
        noise = counter_noise.normal(numpy, pair, (2 * n, h, w), "float32")
        queue = [torch.tensor(noise[:n]), torch.tensor(noise[n:])]
        real_normal = torch.normal
        torch.normal = lambda *a, **k: queue.pop(0)
        try:
            return original(images, *args, seed=seed, **kwargs)
        finally:
            torch.normal = real_normal
    monkeypatch.setattr(torch_image, "elastic_transform", elastic_transform)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_elastic_with_keras_numpy_backend_s_draws_and_our_noise_is_keras_s(xp, numpy_draws, data_format):
    x = numpy.random.default_rng(1).uniform(0, 255, (4, 23, 26, 3)).astype("float32")
    x = x if data_format == "channels_last" else x.transpose(0, 3, 1, 2).copy()
    kwargs = dict(factor=(0.3, 0.9), scale=(0.4, 1.0), seed=11, data_format=data_format)
    ours, k = layers.RandomElasticTransform(**kwargs), keras.layers.RandomElasticTransform(**kwargs)
    for _ in range(2):
        want = theirs(k(x, training=True))
        got = to_numpy(ours(xp.asarray(x), training=True))
        numpy.testing.assert_allclose(got, want, rtol=0, atol=2e-3)
        assert not numpy.allclose(got, x, atol=1)
    assert int(ours.generator.state.numpy()[1]) == int(theirs(k.generator.state.value)[1]) == 8


def test_elastic_inference_factors_config_and_errors_match_keras(rng):
    x = rng.uniform(0, 255, (2, 8, 9, 3)).astype("float32")
    # at inference, and in training with a factor or scale of 0: the input as it is
    for kwargs, training in (({}, False), ({"factor": 0.0}, True), ({"scale": 0.0}, True)):
        want = theirs(keras.layers.RandomElasticTransform(**kwargs)(x, training=training))
        numpy.testing.assert_array_equal(want, x)
        numpy.testing.assert_array_equal(layers.RandomElasticTransform(**kwargs)(x, training=training), want)
    for factor in (0.4, (0.6, 0.2), 1.0, (-0.5, 0.5)):
        ours, k = layers.RandomElasticTransform(factor, factor), keras.layers.RandomElasticTransform(factor, factor)
        assert (ours.factor, ours.scale) == (tuple(k.factor), tuple(k.scale))
    for config in ({}, {"factor": (0.1, 0.8), "scale": 0.3, "interpolation": "nearest", "fill_mode": "mirror",
                        "fill_value": 2.0, "value_range": (0, 1), "seed": 4, "data_format": "channels_first"}):
        ours, k = layers.RandomElasticTransform(**config), keras.layers.RandomElasticTransform(**config)
        assert set(ours.get_config()) == set(k.get_config())
        assert plain(ours.get_config()) == plain(k.get_config())
        assert plain(layers.RandomElasticTransform.from_config(k.get_config()).get_config()) == plain(
            k.get_config())
    for bad in ({"factor": 1.5}, {"scale": -0.2}, {"factor": (0.1, 0.2, 0.3)}):
        with pytest.raises(ValueError):
            keras.layers.RandomElasticTransform(**bad)
        with pytest.raises(ValueError, match="RandomElasticTransform layer"):
            layers.RandomElasticTransform(**bad)
    for bad in ({"interpolation": "bicubic"}, {"fill_mode": "edge"}):
        with pytest.raises(NotImplementedError):         # Keras's type; gpu_dl's is a ValueError
            keras.layers.RandomElasticTransform(**bad)
        with pytest.raises(ValueError, match="RandomElasticTransform layer"):
            layers.RandomElasticTransform(**bad)


# --------------------------------------------------------------- .keras files
def keras_model():
    L = keras.layers
    return keras.Sequential([
        keras.Input((13, 11, 3)), L.ContrastLimitedAdaptiveHistogramEqualization((0, 1), 3.0, (3, 2)),
        L.RandomElasticTransform(factor=0.8, scale=(0.2, 0.6), fill_mode="mirror", seed=2),
        L.Conv2D(2, 3, padding="same"), L.GlobalAveragePooling2D(), L.Dense(2)])


def test_layers_in_keras_files_both_ways(tmp_path):
    # CLAHE applies at inference, the elastic layer does not: the predictions compared go through both
    ours, x = assert_keras_file_loads_both_ways(keras, keras_model(), lambda rng: rng.uniform(
        0, 1, (4, 13, 11, 3)).astype("float32"), tmp_path, load_model)
    assert ours.layers[0].tile_grid_size == (3, 2) and ours.layers[0].value_range == [0, 1]
    assert ours.layers[1].fill_mode == "mirror" and ours.layers[1].scale == (0.2, 0.6) and ours.layers[1].seed == 2
    # in front of the weights, neither layer is asked for an input gradient: the model trains
    ours.compile(optimizer="adam", loss="mse")
    before = [w.copy() for w in ours.get_weights()]
    ours.fit(x, numpy.zeros((len(x), 2), "float32"), epochs=1, batch_size=2, verbose=0)
    assert all(not numpy.array_equal(a, b) for a, b in zip(ours.get_weights(), before))
