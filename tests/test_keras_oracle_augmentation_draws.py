"""The random image layers' draws against Keras 3 itself (where Keras is installed, torch backend): each call moves
the layer's seed generator as Keras's call moves it (in training, and outside training where Keras's layer draws
all the same), and with Keras's random functions drawing what its NumPy backend draws for the same seed pairs
(the ``numpy_draws`` fixture), Keras's layers give the outputs gpu_dl's give on NumPy and on the GPU: to the bit,
or to float32 rounding where the two sum in different orders. Keras's affine layers compute their sampling
positions as the correctly rounded float32 arithmetic here (``rounded_positions``, tests/keras_affine.py: as it
runs, Keras rounds them as the machine's BLAS does)."""
import os
import random as python_random

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

from gpu_dl import layers  # noqa: E402
from gpu_dl.backend import to_numpy  # noqa: E402
from keras_affine import rounded_positions  # noqa: E402

LAYERS = {
    "RandomTranslation": ((0.2, 0.3), {}), "RandomShear": ((0.2, 0.3), {}), "RandomCrop": ((5, 6), {}),
    "MixUp": ((), {}), "CutMix": ((), {}), "RandomErasing": ((), {}), "RandAugment": ((), {}), "AugMix": ((), {}),
    "RandomColorDegeneration": ((0.3,), {}), "RandomSharpness": ((0.3,), {}), "RandomPosterization": ((4,), {}),
    "RandomHue": ((0.3,), {}), "RandomSaturation": ((0.3,), {}), "RandomGrayscale": ((), {}),
    "RandomRotation": ((0.3,), {}), "RandomZoom": ((0.2, (-0.3, 0.1)), {}), "RandomContrast": ((0.4,), {}),
}


def counters(lib, layer):
    def value(v):
        return keras.ops.convert_to_numpy(v.value) if lib is keras else v.numpy()
    return [int(value(v)[1]) for v in layer.variables]


def images(shape, seed=1):
    return numpy.random.default_rng(seed).uniform(0, 255, shape).astype("float32")


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_each_call_moves_the_seed_generator_as_keras_s(name):
    args, kwargs = LAYERS[name]
    x = images((3, 8, 9, 3))
    found = []
    for lib in (layers, keras.layers):
        layer = getattr(lib, name)(*args, seed=11, **kwargs)
        moved = []
        for inputs, training in ((x, False), (x, True), (x[0], True), (x[0], False), (x, True)):
            python_random.seed(5)       # AugMix picks its ops with Python's random, as Keras's does
            layer(inputs, training=training)
            moved.append(counters(keras if lib is keras.layers else None, layer))
        found.append(moved)
    assert found[0] == found[1]
    assert found[0][1][0] > 0


def _numpy_backend_draws():
    """Keras's NumPy backend's random functions (keras/src/backend/numpy/random.py), drawing from the seed pair
    of a SeedGenerator, returning torch tensors."""
    from keras.src.random.seed_generator import draw_seed

    def rng(seed):
        return numpy.random.default_rng(numpy.asarray(keras.ops.convert_to_numpy(draw_seed(seed))).astype("uint32"))

    def host(v):
        return keras.ops.convert_to_numpy(v) if isinstance(v, torch.Tensor) else v

    def uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None):
        return torch.as_tensor(rng(seed).uniform(size=shape, low=host(minval), high=host(maxval)).astype(
            dtype or "float32"))

    def normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None):
        return torch.as_tensor(rng(seed).normal(size=shape, loc=mean, scale=stddev).astype(dtype or "float32"))

    def beta(shape, alpha, beta, dtype=None, seed=None):
        return torch.as_tensor(rng(seed).beta(a=host(alpha), b=host(beta), size=shape).astype(dtype or "float32"))

    def gamma(shape, alpha, dtype=None, seed=None):
        return torch.as_tensor(rng(seed).gamma(host(alpha), scale=1.0, size=shape).astype(dtype or "float32"))

    def shuffle(x, axis=0, seed=None):
        return torch.as_tensor(rng(seed).permuted(host(x), axis=axis))

    def randint(shape, minval, maxval, dtype="int32", seed=None):
        return torch.as_tensor(rng(seed).integers(low=minval, high=maxval, size=shape, dtype=dtype))
    return uniform, normal, beta, gamma, shuffle, randint


@pytest.fixture
def numpy_draws(monkeypatch):
    """Keras's torch backend drawing what Keras's NumPy backend draws, for this test."""
    from keras.src.backend.torch import random as torch_random
    for function in _numpy_backend_draws():
        monkeypatch.setattr(torch_random, function.__name__, function)


DRAWN = [("RandomTranslation", (0.2, 0.3), {}), ("RandomTranslation", ((-0.3, 0.1), 0.25), {"fill_mode": "constant"}),
         ("RandomShear", (0.2, 0.3), {}), ("RandomShear", ((0.1, 0.4),), {"fill_mode": "nearest"}),
         ("RandomCrop", (5, 6), {}), ("MixUp", (), {}), ("MixUp", (0.7,), {}), ("CutMix", (), {}),
         ("CutMix", ((0.2, 0.6),), {}), ("RandomErasing", (), {}), ("RandomErasing", (0.8, (0.1, 0.5), 7.0), {}),
         ("RandomErasing", (), {"value_range": (0, 1)}), ("RandomPosterization", ((2, 6),), {}), ("AugMix", (), {}),
         ("AugMix", (), {"all_ops": False, "num_chains": 2}),
         ("RandomZoom", (0.3,), {}), ("RandomZoom", ((-0.4, 0.2), (0.1, 0.5)), {"fill_mode": "wrap"}),
         ("RandomZoom", (0.3, 0.2), {"fill_mode": "constant", "fill_value": 3.0, "interpolation": "nearest"}),
         ("RandomZoom", ((0.2, 0.6),), {"fill_mode": "nearest"}), ("RandomContrast", (0.5,), {}),
         ("RandomContrast", ((0.2, 0.9),), {"value_range": (10, 200)}), ("RandomSharpness", (0.5,), {}),
         ("RandomSharpness", ((0.1, 0.9),), {"value_range": (20, 230)}), ("RandomSaturation", (0.4,), {}),
         ("RandomSaturation", ((0.1, 0.7),), {"value_range": (0, 1)}), ("RandomHue", (0.3,), {}),
         ("RandomColorDegeneration", (0.5,), {}), ("RandomGrayscale", (0.5,), {}), ("Solarization", (0.3, 0.6), {})]
# Outputs that differ from Keras's by float32 rounding only, because the two round sums differently (PyTorch's
# mean of RandomContrast sums in another order, its convolution of RandomSharpness accumulates with fused
# multiply-adds, also inside AugMix; CuPy's reductions): up to a few units in the last place of values up to 255,
# 1e-6 of the value range. The others agree to the bit.
ROUNDING = 1e-6 * 255
SUMS_IN_ANOTHER_ORDER = ("RandomContrast", "RandomSharpness", "AugMix")


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("name,args,kwargs", DRAWN)
def test_outputs_are_keras_s_with_its_numpy_backend_s_draws(xp, numpy_draws, name, args, kwargs, data_format):
    x = images((4, 8, 9, 3))
    x = x if data_format == "channels_last" else x.transpose(0, 3, 1, 2)
    kwargs = {"seed": 11, **kwargs}
    ours = getattr(layers, name)(*args, data_format=data_format, **kwargs)
    theirs = getattr(keras.layers, name)(*args, data_format=data_format, **kwargs)
    for call in range(2):
        python_random.seed(call)
        with rounded_positions():
            want = keras.ops.convert_to_numpy(theirs(x, training=True))
        python_random.seed(call)
        got = to_numpy(ours(xp.asarray(x), training=True))
        numpy.testing.assert_allclose(got, want, rtol=0, atol=ROUNDING if name in SUMS_IN_ANOTHER_ORDER else 0)
        assert got.shape != x.shape or not numpy.allclose(got, x)
    assert counters(None, ours) == counters(keras, theirs)


def test_rand_augment_draws_keras_s_ops_and_parameters(xp, numpy_draws):
    """RandAugment against Keras's own ops applied in turn with the transformations Keras's RandAugment draws
    (its call itself is not the oracle: on torch, Keras's RandomBrightness adds to its input in place, so its
    RandAugment brightens every batch whichever ops it picked)."""
    x = images((4, 8, 9, 3))
    for seed in (11, 12, 13):
        ours = layers.RandAugment(num_ops=3, seed=seed)
        theirs = keras.layers.RandAugment(num_ops=3, seed=seed)
        drawn = theirs.get_random_transformation(x, training=True)
        want = torch.as_tensor(x.copy())
        for index in keras.ops.convert_to_numpy(drawn["layer_idxes"]):
            op = theirs._AUGMENT_LAYERS[index]
            with rounded_positions():
                want = getattr(theirs, op).transform_images(want.clone(), drawn["transforms"][op])
        got = to_numpy(ours(xp.asarray(x), training=True))
        numpy.testing.assert_allclose(got, keras.ops.convert_to_numpy(want), rtol=0, atol=ROUNDING)
        assert counters(None, ours) == counters(keras, theirs)


@pytest.mark.parametrize("fill_mode", ["reflect", "wrap", "constant", "nearest"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_rotations_are_keras_s_to_the_last_place_of_cos_and_sin(xp, numpy_draws, fill_mode, interpolation,
                                                                 data_format):
    """RandomRotation's matrices are Keras's float32 arithmetic with correctly rounded cos and sin, where PyTorch's
    float32 cos and sin (Keras's) may be one unit in the last place off: images whose matrices agree come out
    the same to the bit; the others differ by what the matrices' difference moves the sampling positions."""
    n, h, w = 6, 11, 9
    x = images((n, h, w, 3))
    x = x if data_format == "channels_last" else x.transpose(0, 3, 1, 2)
    kwargs = dict(fill_mode=fill_mode, interpolation=interpolation, fill_value=3.0, data_format=data_format, seed=7)
    ours, ours_drawing = layers.RandomRotation(0.4, **kwargs), layers.RandomRotation(0.4, **kwargs)
    theirs, theirs_drawing = keras.layers.RandomRotation(0.4, **kwargs), keras.layers.RandomRotation(0.4, **kwargs)
    same = 0
    for call in range(4):
        with rounded_positions():
            want = keras.ops.convert_to_numpy(theirs(x, training=True))
        got = to_numpy(ours(xp.asarray(x), training=True))
        keras_matrices = keras.ops.convert_to_numpy(
            theirs_drawing.get_random_transformation(x)["rotation_matrix"])[:, :6].reshape(n, 2, 3)
        matrices = ours_drawing._matrices(n, h, w)
        assert matrices.dtype == numpy.float32
        # cos and sin one unit in the last place (2**-24 below 1) apart, the offsets by that times the centre
        numpy.testing.assert_allclose(matrices[:, :, :2], keras_matrices[:, :, :2], rtol=0, atol=2.0 ** -24)
        numpy.testing.assert_allclose(matrices[:, :, 2], keras_matrices[:, :, 2], rtol=0, atol=(h + w) * 2.0 ** -24)
        for i in range(n):
            if (matrices[i] == keras_matrices[i]).all():
                same += 1
                numpy.testing.assert_array_equal(got[i], want[i])
            else:
                # positions move by at most |dM| (w, h, 1) plus a unit in the last place of each sum
                moved = float(abs(matrices[i] - keras_matrices[i]).max()) * (h + w + 1) + 4 * (h + w) * 2.0 ** -24
                numpy.testing.assert_allclose(got[i], want[i], rtol=0, atol=255 * moved)
    assert counters(None, ours) == counters(keras, theirs)
    assert same >= 3 * n            # most of Keras's matrices are matched to the bit


@pytest.mark.parametrize("seed,kwargs", [(11, {}), (3, {"num_chains": 4, "chain_depth": 2}),
                                         (5, {"all_ops": False, "alpha": 0.5, "interpolation": "nearest"})])
def test_aug_mix_picks_keras_s_ops_and_gives_keras_s_output(xp, numpy_draws, seed, kwargs):
    """Keras 3.15's AugMix picks each chain's ops with Python's ``random.choice`` and draws their parameters, its
    chain weights and its mixing weight from its SeedGenerator: with Python's random seeded alike, gpu_dl's picks
    the same ops in the same order and gives the same images (channels_last: Keras's AutoContrast reads
    channels_first images along the wrong axes, which gpu_dl's does not repeat)."""
    x = images((4, 8, 9, 3))
    ours, theirs = layers.AugMix(seed=seed, **kwargs), keras.layers.AugMix(seed=seed, **kwargs)
    theirs_drawing = keras.layers.AugMix(seed=seed, **kwargs)
    picked = []
    apply = ours.apply
    ours.apply = lambda name, batch, pairs: picked.append(name) or apply(name, batch, pairs)
    for call in range(4):
        python_random.seed(100 + call)
        drawn = theirs_drawing.get_random_transformation(x)
        python_random.seed(100 + call)
        with rounded_positions():
            want = keras.ops.convert_to_numpy(theirs(x, training=True))
        python_random.seed(100 + call)
        picked.clear()
        got = to_numpy(ours(xp.asarray(x), training=True))
        assert picked == [op["layer_name"] for chain in drawn["chain_transforms"] for op in chain]
        numpy.testing.assert_allclose(got, want, rtol=0, atol=ROUNDING)
    assert counters(None, ours) == counters(keras, theirs)
    # the picks are Python's: another Python seed, the same generator state, other ops
    again = layers.AugMix(seed=seed, **kwargs)
    python_random.seed(100)
    first = to_numpy(again(xp.asarray(x), training=True))
    again.generator.state.assign(numpy.array([seed, 0]))
    python_random.seed(7)
    assert not numpy.allclose(to_numpy(again(xp.asarray(x), training=True)), first)


def test_aug_mix_seeds_reproduce_it_as_keras_s_do(xp):
    """A layer's seed fixes AugMix's weights and the ops' parameters, not its picks: in Keras 3.15 as in gpu_dl,
    two AugMix(seed=1) layers give other images unless Python's random is seeded alike before each (as
    utils.set_random_seed seeds it), and then give the same ones."""
    import gpu_dl
    x = images((2, 8, 9, 3))

    def outputs(lib, reseed):
        found = []
        for _ in range(2):
            if reseed:
                lib.utils.set_random_seed(5)
            layer = lib.layers.AugMix(seed=1)
            y = layer(xp.asarray(x) if lib is gpu_dl else x, training=True)
            found.append(keras.ops.convert_to_numpy(y) if lib is keras else to_numpy(y))
        return found

    python_random.seed(3)
    for lib in (keras, gpu_dl):
        first, second = outputs(lib, reseed=False)
        assert not numpy.allclose(first, second)
        first, second = outputs(lib, reseed=True)
        numpy.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("name,args,kwargs", [("RandomTranslation", (0.3, 0.2), {}), ("RandomZoom", (0.4, 0.3), {}),
                                              ("RandomRotation", (0.3,), {"fill_mode": "constant"}),
                                              ("RandomShear", (0.3, 0.2), {"interpolation": "nearest"})])
def test_float64_layers_sample_where_keras_s_do(xp, numpy_draws, name, args, kwargs):
    """With a float64 dtype policy, Keras's translation, zoom and rotation still make float32 transforms and sample
    at float32 positions (its shear works in float64 throughout): gpu_dl's do the same, so the float64 outputs
    agree to the bit (rotations: but for PyTorch's cos and sin, see above)."""
    n, h, w = 4, 8, 9
    x = images((n, h, w, 3)).astype("float64")
    ours = getattr(layers, name)(*args, seed=3, dtype="float64", **kwargs)
    theirs = getattr(keras.layers, name)(*args, seed=3, dtype="float64", **kwargs)
    for call in range(2):
        with rounded_positions():
            want = keras.ops.convert_to_numpy(theirs(x, training=True))
        got = to_numpy(ours(xp.asarray(x), training=True))
        assert got.dtype == want.dtype == numpy.float64
        # one unit in the last place of a rotation's cos or sin moves the positions by up to (h + w + 1) 2**-24
        cos_and_sin = 255 * (h + w + 1) * 2.0 ** -24 if name == "RandomRotation" else 0
        numpy.testing.assert_allclose(got, want, rtol=0, atol=cos_and_sin)
    assert counters(None, ours) == counters(keras, theirs)
