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
from keras_affine import affine_tolerance, rounded_positions  # noqa: E402


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


# ------------------------------------------------------ shear and perspective
@pytest.mark.parametrize("fill_mode", ["reflect", "wrap", "constant", "nearest"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_shear_with_fixed_draws_matches_keras(xp, rng, fill_mode, interpolation, data_format):
    import torch
    x = rng.uniform(0, 255, (2, 5, 6, 3)).astype("float32")
    if data_format == "channels_first":
        x = x.transpose(0, 3, 1, 2).copy()
    shears = numpy.array([[0.21, -0.13], [-0.37, 0.29]], "float32")
    kwargs = dict(interpolation=interpolation, fill_mode=fill_mode, fill_value=7.0, data_format=data_format)
    k = keras.layers.RandomShear(0.4, 0.4, **kwargs)

    def keras_s():
        return theirs(k.transform_images(torch.tensor(x), {"shear_factor": torch.tensor(shears),
                                                           "input_shape": x.shape}))
    matrices = layers.geometric_augmentation.shear_matrices(shears[:, 0], shears[:, 1])
    ours = layers.RandomShear(0.4, 0.4, **kwargs)
    ours._matrices = lambda n, h, w: matrices
    got = to_numpy(ours(xp.asarray(x)))
    # to the bit where Keras's positions are the correctly rounded float32 ones; within the rounding of its
    # machine's BLAS of them as Keras runs (tests/keras_affine.py)
    with rounded_positions():
        numpy.testing.assert_array_equal(got, keras_s())
    values = [x.min(), x.max(), kwargs["fill_value"]]
    numpy.testing.assert_allclose(got, keras_s(), rtol=0, atol=affine_tolerance(matrices, 5, 6, values, interpolation))


@pytest.mark.parametrize("name,args", [("RandomRotation", (0.4,)), ("RandomShear", (0.4, 0.4)),
                                       ("RandomTranslation", (0.3, 0.2)), ("RandomZoom", (0.3,))])
def test_keras_s_positions_are_exact_ones_to_float32_rounding(rng, name, args):
    """What affine_tolerance (tests/keras_affine.py) rests on: Keras's sampling positions, as its einsum computes
    them (however the BLAS sums) and as rounded_einsum does, are each within gamma_3 sum |a_i x_i| of the exact
    dot products."""
    import torch
    from keras_affine import SUBSCRIPTS, rounded_einsum
    seen = []
    with rounded_positions(seen):
        getattr(keras.layers, name)(*args, seed=2)(rng.uniform(0, 255, (3, 11, 9, 3)).astype("float32"),
                                                   training=True)
    assert len(seen) == 1
    indices, transform = seen[0]
    assert indices.dtype == transform.dtype == torch.float32 and tuple(indices.shape) == (3, 11, 9, 3, 3)
    exact = numpy.einsum(SUBSCRIPTS, indices.double().numpy(), transform.double().numpy())
    scale = numpy.einsum(SUBSCRIPTS, abs(indices.double().numpy()), abs(transform.double().numpy()))
    u = 2.0 ** -24
    for found in (torch.einsum(SUBSCRIPTS, indices, transform), rounded_einsum(indices, transform)):
        assert found.dtype == torch.float32
        assert (abs(found.double().numpy() - exact) <= 3 * u / (1 - 3 * u) * scale).all()
    # the channel position is the channel index itself, exactly
    numpy.testing.assert_array_equal(rounded_einsum(indices, transform)[..., 2].numpy(), indices[..., 2].numpy())


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_perspective_with_fixed_draws_matches_keras(xp, rng, interpolation, data_format):
    x = rng.uniform(0, 255, (3, 5, 6, 3)).astype("float32")
    if data_format == "channels_first":
        x = x.transpose(0, 3, 1, 2).copy()
    kwargs = dict(interpolation=interpolation, fill_value=3.0, data_format=data_format)
    k = keras.layers.RandomPerspective(0.7, 0.8, seed=1, **kwargs)
    draw = k.get_random_transformation(x)
    expected = theirs(k.transform_images(x, draw))
    ours = layers.RandomPerspective(0.7, 0.8, **kwargs)
    fixed = [theirs(draw[key]) for key in ("apply_perspective", "start_points", "end_points")]
    ours.draw = lambda n, h, w: fixed
    # Keras solves the homography in float32, gpu_dl in float64: positions differ by ~1e-6 pixel
    numpy.testing.assert_allclose(to_numpy(ours(xp.asarray(x))), expected, rtol=0, atol=2e-3)
    # with Keras's own float32 homographies, the resampling is Keras's to the bit
    import torch
    from keras.src.backend.torch.image import compute_homography_matrix
    transforms = theirs(compute_homography_matrix(torch.tensor(fixed[1]), torch.tensor(fixed[2])))
    last = x if data_format == "channels_last" else x.transpose(0, 2, 3, 1)
    warped = to_numpy(layers.geometric_augmentation.perspective_resample(xp.asarray(last), transforms,
                                                                         interpolation, 3.0))
    warped = numpy.where(fixed[0].reshape(-1, 1, 1, 1), warped, last)
    expected_last = expected if data_format == "channels_last" else expected.transpose(0, 2, 3, 1)
    numpy.testing.assert_array_equal(warped, expected_last)


def test_shear_and_perspective_at_inference_and_factor_forms_match_keras(rng):
    x = rng.uniform(0, 255, (2, 4, 5, 3)).astype("float32")
    for name in ("RandomShear", "RandomPerspective"):
        numpy.testing.assert_array_equal(getattr(layers, name)()(x, training=False),
                                         theirs(getattr(keras.layers, name)()(x, training=False)))
    for x_factor, y_factor in ((0.3, (0.5, 0.1)), ((0.0, 1.0), 0.0)):
        ours, k = layers.RandomShear(x_factor, y_factor), keras.layers.RandomShear(x_factor, y_factor)
        assert (ours.x_factor, ours.y_factor) == (tuple(k.x_factor), tuple(k.y_factor))
    for factor in (0.4, (0.6, 0.2), 1.0):
        assert layers.RandomPerspective(factor).factor == tuple(keras.layers.RandomPerspective(factor).factor)
    for bad in (1.5, -0.2, (0.1, 1.2)):
        with pytest.raises(ValueError):
            keras.layers.RandomShear(bad)
        with pytest.raises(ValueError):
            layers.RandomShear(bad)
    with pytest.raises(ValueError):
        keras.layers.RandomPerspective(scale=1.5)
    with pytest.raises(ValueError):
        layers.RandomPerspective(scale=1.5)


CONFIGS = [
    ("RandomShear", (0.2, (0.1, 0.3)), {}),
    ("RandomShear", (), {"fill_mode": "constant", "fill_value": 2.0, "interpolation": "nearest", "seed": 3,
                         "data_format": "channels_first"}),
    ("RandomPerspective", (0.4,), {}),
    ("RandomPerspective", ((0.2, 0.9), 0.5), {"interpolation": "nearest", "fill_value": 1.0, "seed": 2}),
]


@pytest.mark.parametrize("name,args,kwargs", CONFIGS)
def test_configs_match_keras_key_for_key(name, args, kwargs):
    ours = getattr(layers, name)(*args, **kwargs).get_config()
    k = getattr(keras.layers, name)(*args, **kwargs).get_config()
    assert set(ours) == set(k)
    assert plain(ours) == plain(k)


def geometric_keras_model():
    L = keras.layers
    return keras.Sequential([
        keras.Input((6, 5, 3)), L.RandomShear((0.0, 0.2), (0.1, 0.3), fill_mode="constant", seed=1),
        L.RandomPerspective(0.5, 0.3, interpolation="nearest", seed=2),
        L.Conv2D(2, 3, padding="same"), L.GlobalAveragePooling2D(), L.Dense(2)])


def test_geometric_layers_in_keras_files_both_ways(tmp_path, rng):
    model = geometric_keras_model()
    model.save(tmp_path / "k.keras")
    ours = load_model(tmp_path / "k.keras")
    assert [type(layer).__name__ for layer in ours.layers] == [type(layer).__name__ for layer in model.layers]
    assert ours.layers[0].y_factor == (0.1, 0.3) and ours.layers[1].interpolation == "nearest"
    x = rng.uniform(0, 255, (4, 6, 5, 3)).astype("float32")
    expected = theirs(model.predict(x, verbose=0))
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4)
    ours.save(tmp_path / "again.keras")
    again = keras.models.load_model(tmp_path / "again.keras")
    numpy.testing.assert_allclose(theirs(again.predict(x, verbose=0)), expected, rtol=1e-4, atol=1e-4)
    assert [type(layer).__name__ for layer in again.layers] == [type(layer).__name__ for layer in model.layers]


def test_a_keras_file_with_a_shear_factor_number_loads(tmp_path):
    # Keras 3.15 writes RandomShear(0.2)'s x_factor as (-0.2, 0.2), which Keras's own loading refuses
    model = keras.Sequential([keras.Input((6, 5, 3)), keras.layers.RandomShear(0.2), keras.layers.Flatten()])
    model.save(tmp_path / "shear.keras")
    ours = load_model(tmp_path / "shear.keras")
    assert ours.layers[0].x_factor == (-0.2, 0.2) and ours.layers[0].y_factor == (0.0, 0.0)


# ------------------------------------------------------------ RandAugment, AugMix
@pytest.mark.parametrize("name,kwargs", [("RandAugment", {}), ("RandAugment", {"factor": (0.2, 0.7)}),
                                         ("AugMix", {"value_range": (0, 1)}), ("AugMix", {"all_ops": False})])
def test_policy_ops_are_built_as_keras_builds_them(name, kwargs):
    ours, k = getattr(layers, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
    names = k._AUGMENT_LAYERS if name == "RandAugment" else k._augment_layers
    from gpu_dl.layers import policy_augmentation
    listed = (policy_augmentation.RAND_AUGMENT_OPS if name == "RandAugment"
              else policy_augmentation.AUGMIX_OPS_ALL if ours.all_ops else policy_augmentation.AUGMIX_OPS)
    assert list(listed) == list(names)
    for op in names:
        a, b = ours.ops[op].get_config(), getattr(k, op).get_config()
        assert type(ours.ops[op]).__name__ == type(getattr(k, op)).__name__
        a.pop("seed", None), b.pop("seed", None)
        assert plain(a) == plain(b), op


@pytest.mark.parametrize("name,kwargs", [("RandAugment", {"num_ops": 3, "factor": 0.4, "seed": 2}),
                                         ("AugMix", {"num_chains": 2, "alpha": 0.5, "all_ops": False,
                                                     "interpolation": "nearest", "value_range": (0, 1)})])
def test_policy_configs_match_keras_key_for_key_and_inference(rng, name, kwargs):
    ours, k = getattr(layers, name)(**kwargs), getattr(keras.layers, name)(**kwargs)
    assert set(ours.get_config()) == set(k.get_config())
    assert plain(ours.get_config()) == plain(k.get_config())
    x = rng.uniform(0, 1, (2, 4, 5, 3)).astype("float32")
    numpy.testing.assert_array_equal(ours(x, training=False), theirs(k(x, training=False)))


def test_policies_in_keras_files_both_ways(tmp_path, rng):
    L = keras.layers
    model = keras.Sequential([keras.Input((6, 5, 3)), L.RandAugment(num_ops=3, seed=1),
                              L.AugMix(chain_depth=2, all_ops=False), L.Flatten(), L.Dense(2)])
    model.save(tmp_path / "k.keras")
    ours = load_model(tmp_path / "k.keras")
    assert [type(layer).__name__ for layer in ours.layers] == [type(layer).__name__ for layer in model.layers]
    assert ours.layers[0].num_ops == 3 and ours.layers[1].all_ops is False
    x = rng.uniform(0, 255, (2, 6, 5, 3)).astype("float32")
    expected = theirs(model.predict(x, verbose=0))
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4)
    ours.save(tmp_path / "again.keras")
    again = keras.models.load_model(tmp_path / "again.keras")
    numpy.testing.assert_allclose(theirs(again.predict(x, verbose=0)), expected, rtol=1e-4, atol=1e-4)
