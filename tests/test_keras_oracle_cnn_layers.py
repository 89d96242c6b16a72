"""UpSampling2D/3D, Cropping2D/3D, ZeroPadding3D and the regularization layers against Keras 3 itself (where
Keras is installed): outputs (bilinear up-sampling included) and output shapes of the deterministic layers,
configs key for key, what the random layers draw, training steps with an activity penalty, and .keras files
both ways."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import layers  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402
from keras_steps import assert_keras_file_loads_both_ways, assert_training_steps_match  # noqa: E402

CASES = [
    ("UpSampling2D", {}),
    ("UpSampling2D", {"size": (3, 1)}),
    ("UpSampling2D", {"interpolation": "bilinear"}),
    ("UpSampling2D", {"size": (3, 2), "interpolation": "bilinear"}),
    ("UpSampling2D", {"size": (1, 5), "interpolation": "bilinear"}),
    ("UpSampling2D", {"size": 4, "interpolation": "bilinear", "data_format": "channels_first"}),
    ("UpSampling2D", {"size": (2, 3), "data_format": "channels_first"}),
    ("Cropping2D", {}),
    ("Cropping2D", {"cropping": ((0, 2), (1, 0))}),
    ("Cropping2D", {"cropping": (0, 1), "data_format": "channels_first"}),
    ("UpSampling3D", {}),
    ("UpSampling3D", {"size": (1, 2, 3), "data_format": "channels_first"}),
    ("Cropping3D", {"cropping": ((0, 1), (1, 0), 0)}),
    ("Cropping3D", {"cropping": ((1, 0), 0, (0, 2)), "data_format": "channels_first"}),
    ("ZeroPadding3D", {}),
    ("ZeroPadding3D", {"padding": ((0, 2), (1, 0), 3), "data_format": "channels_first"}),
]
SIZES_2D = [(1, 1), (3, 4), (17, 5), (2, 33)]


def sample_shape(name, kwargs, sizes):
    rank = 3 if name.endswith("3D") else 2
    spatial = sizes if rank == 2 else sizes[:1] + (2,) + sizes[1:]
    return (3,) + spatial if kwargs.get("data_format") == "channels_first" else spatial + (3,)


def fits(name, kwargs, shape):
    """Whether a crop leaves something (both libraries refuse otherwise)."""
    if not name.startswith("Cropping"):
        return True
    rank = 3 if name.endswith("3D") else 2
    layer = getattr(layers, name)(**kwargs)
    spatial = shape[1:] if kwargs.get("data_format") == "channels_first" else shape[:-1]
    return all(n > sum(pair) for n, pair in zip(spatial, layer.cropping[:rank]))


# PyTorch computes each bilinear weight from a float32 scale (1/3 rounded, say), so its float32 weights drift
# from the exact ones by a few units in the 6th digit along a long axis; in float64 both agree to rounding.
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}


@pytest.mark.parametrize("name,kwargs", CASES)
@pytest.mark.parametrize("sizes", SIZES_2D)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_layer_output_matches_keras(rng, name, kwargs, sizes, dtype):
    shape = sample_shape(name, kwargs, sizes)
    if not fits(name, kwargs, shape):
        pytest.skip("Keras refuses this crop too (tests/test_resampling_layers.py checks gpu_dl's error)")
    x = rng.standard_normal((2,) + shape).astype(dtype)
    ours, theirs = getattr(layers, name)(**kwargs, dtype=dtype), getattr(keras.layers, name)(**kwargs, dtype=dtype)
    y_ours = ours(x)
    y_theirs = keras.ops.convert_to_numpy(theirs(x))
    assert y_ours.shape == y_theirs.shape and y_ours.dtype == y_theirs.dtype == dtype
    numpy.testing.assert_allclose(y_ours, y_theirs, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])
    symbolic = (None,) + shape
    assert tuple(ours.compute_output_shape(symbolic)) == tuple(theirs.compute_output_shape(symbolic))
    assert_configs_match(ours, theirs)


def assert_configs_match(ours, theirs):
    """The same keys, and the same values but for the name and Keras's dtype policy."""
    ours_config, theirs_config = ours.get_config(), theirs.get_config()
    assert set(ours_config) == set(theirs_config)
    assert ({k: v for k, v in ours_config.items() if k not in ("name", "dtype")}
            == {k: v for k, v in theirs_config.items() if k not in ("name", "dtype")})


RANDOM = [
    ("SpatialDropout1D", {"rate": 0.3}, (7, 4)),
    ("SpatialDropout2D", {"rate": 0.3, "seed": 2}, (5, 3, 4)),
    ("SpatialDropout2D", {"rate": 0.5, "data_format": "channels_first"}, (4, 5, 3)),
    ("SpatialDropout3D", {"rate": 0.2}, (2, 3, 4, 5)),
    ("SpatialDropout3D", {"rate": 0.2, "data_format": "channels_first"}, (5, 2, 3, 4)),
    ("GaussianNoise", {"stddev": 0.5, "seed": 1}, (6, 5)),
    ("GaussianDropout", {"rate": 0.4}, (6, 5)),
    ("AlphaDropout", {"rate": 0.2}, (6, 5)),
    ("AlphaDropout", {"rate": 0.2, "noise_shape": (None, 1, 5), "seed": 3}, (6, 5)),
    ("ActivityRegularization", {"l1": 0.1, "l2": 0.01}, (6, 5)),
]


@pytest.mark.parametrize("name,kwargs,shape", RANDOM)
def test_random_layers_configs_and_inference_match_keras(rng, name, kwargs, shape):
    x = rng.standard_normal((3,) + shape).astype("float32")
    ours, theirs = getattr(layers, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
    numpy.testing.assert_array_equal(ours(x), keras.ops.convert_to_numpy(theirs(x)))     # inference: x itself
    numpy.testing.assert_array_equal(ours(x), x)
    assert_configs_match(ours, theirs)
    # each rebuilds the other's layer from its config (the dtype policy apart: the file loader unwraps it)
    def without_dtype(config):
        return {k: v for k, v in config.items() if k != "dtype"}
    assert_configs_match(getattr(layers, name).from_config(without_dtype(theirs.get_config())), theirs)
    assert_configs_match(ours, getattr(keras.layers, name).from_config(without_dtype(ours.get_config())))


def test_spatial_dropout_draws_what_keras_draws():
    """In training both keep whole channels, scaled by 1 / (1 - rate), and drop the others."""
    x = numpy.ones((200, 4, 3, 30), "float32")
    ours = layers.SpatialDropout2D(0.25, seed=1)(x, training=True)
    theirs = keras.ops.convert_to_numpy(keras.layers.SpatialDropout2D(0.25, seed=1)(x, training=True))
    for y in (ours, theirs):
        numpy.testing.assert_allclose(numpy.unique(y), [0, 1 / 0.75], rtol=1e-6)
        assert (y == y[:, :1, :1, :]).all()
        assert abs((y[:, 0, 0] == 0).mean() - 0.25) < 0.025      # 6000 draws: standard error 0.0056


def test_alpha_and_gaussian_dropout_draw_what_keras_draws():
    x = numpy.full((400, 500), 0.5, "float32")
    ours = numpy.unique(layers.AlphaDropout(0.3, seed=1)(x, training=True))
    theirs = numpy.unique(keras.ops.convert_to_numpy(keras.layers.AlphaDropout(0.3, seed=1)(x, training=True)))
    assert len(ours) == len(theirs) == 2
    numpy.testing.assert_allclose(ours, theirs, rtol=1e-6)     # the dropped value and a * 0.5 + b
    ours = layers.GaussianDropout(0.3, seed=1)(x, training=True) / 0.5
    theirs = keras.ops.convert_to_numpy(keras.layers.GaussianDropout(0.3, seed=1)(x, training=True)) / 0.5
    for noise in (ours, theirs):       # 200 000 draws each: standard errors about 0.0015 of both
        assert abs(noise.mean() - 1) < 0.01 and abs(noise.std() - numpy.sqrt(0.3 / 0.7)) < 0.01


def test_training_steps_with_an_activity_penalty_and_bilinear_up_sampling_match_keras(rng):
    def stack(lib):
        return [lib.layers.ZeroPadding2D(((0, 1), (1, 0))),
                lib.layers.Conv2D(4, 3, padding="same", activation="relu"),
                lib.layers.ActivityRegularization(l1=0.01, l2=0.02),
                lib.layers.MaxPooling2D(2),
                lib.layers.UpSampling2D((2, 3), interpolation="bilinear"),
                lib.layers.Cropping2D(((1, 0), (2, 1))),
                lib.layers.Conv2D(3, 3, strides=2, activation="tanh"),
                lib.layers.UpSampling2D(2),
                lib.layers.Flatten(),
                lib.layers.Dense(5, activation="softmax")]
    gpu_dl.backend.set_random_seed(4)
    ours = gpu_dl.Sequential([layers.Input((7, 6, 2))] + stack(gpu_dl))
    theirs = keras.Sequential([keras.Input((7, 6, 2))] + stack(keras))
    assert_training_steps_match(keras, ours, theirs, rng, (7, 6, 2), classes=5, batch=6)


# ------------------------------------------------------------------------ .keras files
NEW = {name for name, _ in CASES} | {name for name, _, _ in RANDOM}


def keras_model():
    L = keras.layers
    return keras.Sequential([
        keras.Input((5, 6, 2)),
        L.GaussianNoise(0.2, seed=1), L.SpatialDropout2D(0.2),
        L.Conv2D(4, 3, padding="same", activation="relu"),
        L.UpSampling2D(2, interpolation="bilinear"), L.Cropping2D(((1, 0), (2, 3))),
        L.GaussianDropout(0.1), L.ActivityRegularization(l2=0.01),
        L.Conv2D(3, 2, data_format="channels_last"),
        L.Reshape((2, 4, 6, 3)), L.ZeroPadding3D(((0, 1), (1, 0), (0, 0))), L.UpSampling3D((1, 1, 2)),
        L.Cropping3D(((0, 1), 1, (2, 2))), L.SpatialDropout3D(0.3, seed=2),
        L.Reshape((2 * 3 * 8, 3)), L.SpatialDropout1D(0.1), L.Flatten(), L.AlphaDropout(0.1),
        L.Dense(2),
    ])


def test_files_written_by_keras_load_and_predict_the_same(tmp_path):
    keras.utils.set_random_seed(0)
    theirs = keras_model()
    ours, _ = assert_keras_file_loads_both_ways(keras, theirs, lambda rng: rng.standard_normal((9, 5, 6, 2))
                                                .astype("float32"), tmp_path, load_model)
    for a, b in zip(ours.layers, theirs.layers):
        if type(a).__name__ in NEW:
            assert_configs_match(a, b)


def test_keras_loads_a_model_gpu_dl_trained(tmp_path, rng):
    gpu_dl.backend.set_random_seed(1)
    model = gpu_dl.Sequential([
        layers.Input((2, 6, 5)),
        layers.GaussianNoise(0.1), layers.SpatialDropout2D(0.2, data_format="channels_first", seed=4),
        layers.Conv2D(4, 3, padding="same", activation="relu", data_format="channels_first"),
        layers.UpSampling2D((2, 1), data_format="channels_first", interpolation="bilinear"),
        layers.Cropping2D((1, 0), data_format="channels_first"),
        layers.GaussianDropout(0.2, seed=5), layers.AlphaDropout(0.05),
        layers.ActivityRegularization(l1=0.001),
        layers.Flatten(), layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = rng.standard_normal((12, 2, 6, 5)).astype("float32"), rng.integers(0, 3, 12)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    model.save(tmp_path / "g.keras")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    numpy.testing.assert_allclose(theirs.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    assert int(theirs.optimizer.iterations) == model.optimizer.iterations == 3
    assert [type(l).__name__ for l in theirs.layers] == [type(l).__name__ for l in model.layers]
    for a, b in zip(model.layers, theirs.layers):
        if type(a).__name__ in NEW:
            assert_configs_match(a, b)
