"""Pipeline, RandomShear, RandomPerspective, RandAugment and AugMix against Keras 3 itself (where Keras is
installed, torch backend): outputs with fixed draws, configs key for key, .keras files both ways."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

from gpu_dl import layers  # noqa: E402
from gpu_dl.backend import to_numpy  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402


def theirs(x):
    return keras.ops.convert_to_numpy(x)


def plain(config):
    """A config with tuples as lists (JSON's view), without the keys whose forms differ (name, dtype policy)."""
    def fix(v):
        if isinstance(v, (tuple, list)):
            return [fix(u) for u in v]
        if isinstance(v, dict):
            return {k: fix(u) for k, u in v.items() if k not in ("name", "dtype")}
        return v
    return fix(config)


# ------------------------------------------------------------------ Pipeline
def test_pipeline_config_matches_keras_key_for_key():
    ours = layers.Pipeline([layers.RandomFlip("horizontal", seed=1), layers.RandomRotation(0.1)], name="p")
    k = keras.layers.Pipeline([keras.layers.RandomFlip("horizontal", seed=1), keras.layers.RandomRotation(0.1)],
                              name="p")
    ours, k = ours.get_config(), k.get_config()
    assert set(ours) == set(k) == {"layers", "name"} and ours["name"] == k["name"]
    for a, b in zip(ours["layers"], k["layers"]):
        assert set(a) == set(b) and set(a["config"]) == set(b["config"])
    assert plain(ours) == plain(k)
    # a config Keras wrote (dtype policies and all) rebuilds as gpu_dl's layers
    again = layers.Pipeline.from_config(k)
    assert [type(layer) for layer in again.layers] == [layers.RandomFlip, layers.RandomRotation]


def test_pipeline_in_keras_files_both_ways(tmp_path, rng):
    L = keras.layers
    model = keras.Sequential([keras.Input((4, 5, 3)),
                              L.Pipeline([L.RandomFlip("horizontal", seed=1), L.Dense(2), L.RandomRotation(0.1)]),
                              L.Flatten(), L.Dense(2)])
    model.save(tmp_path / "k.keras")
    ours = load_model(tmp_path / "k.keras")
    assert [type(layer).__name__ for layer in ours.layers[0].layers] == ["RandomFlip", "Dense", "RandomRotation"]
    x = rng.uniform(0, 1, (3, 4, 5, 3)).astype("float32")
    expected = theirs(model.predict(x, verbose=0))          # inference: the random layers pass through
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    ours.save(tmp_path / "again.keras")
    again = keras.models.load_model(tmp_path / "again.keras")
    assert type(again.layers[0]).__name__ == "Pipeline"
    numpy.testing.assert_allclose(theirs(again.predict(x, verbose=0)), expected, rtol=1e-5, atol=1e-6)


def test_pipeline_called_directly_trains_as_keras_does(rng):
    x = rng.uniform(0, 1, (2, 4, 3)).astype("float32")
    # Dropout(rate) in a pipeline called without `training`: Keras's Pipeline defaults it to True
    ours = to_numpy(layers.Pipeline([layers.Dropout(0.99999, seed=1)])(x))
    k = theirs(keras.layers.Pipeline([keras.layers.Dropout(0.99999, seed=1)])(x))
    assert (ours == 0).all() and (k == 0).all()
