"""The built-in random layers against Keras 3 itself (where Keras is installed): each holds Keras's SeedGenerators
under Keras's attribute (``seed_generator`` for the dropout and noise layers, ``generator`` for the image
augmentation layers, and one more per part of the jitter and the policies), with the same seed states among its
``variables`` and none among its weights; the dropout and noise layers move their state as Keras's do; weight
files leave the states out, as Keras's, and load both ways."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402

from keras_steps import assert_seed_states_stay_out_of_weight_files, seed_generator_attributes  # noqa: E402
from keras_steps import seed_states as states  # noqa: E402

REGULARIZATION = {
    "Dropout": (0.5,), "SpatialDropout1D": (0.3,), "SpatialDropout2D": (0.3,), "SpatialDropout3D": (0.3,),
    "GaussianNoise": (0.1,), "GaussianDropout": (0.2,), "AlphaDropout": (0.2,),
}
AUGMENTATION = {
    "RandomFlip": ((), {}), "RandomTranslation": ((0.1, 0.1), {}), "RandomRotation": ((0.1,), {}),
    "RandomZoom": ((0.1,), {}), "RandomContrast": ((0.1,), {}), "RandomBrightness": ((0.1,), {}),
    "RandomColorJitter": ((), {"brightness_factor": 0.1, "contrast_factor": 0.1, "saturation_factor": 0.1,
                               "hue_factor": 0.1}),
    "MixUp": ((), {}), "CutMix": ((), {}), "RandomErasing": ((), {}), "RandomGrayscale": ((), {}),
    "RandomHue": ((0.1,), {}), "RandomSaturation": ((0.1,), {}), "RandomColorDegeneration": ((0.1,), {}),
    "RandomInvert": ((), {}), "RandomSharpness": ((0.1,), {}), "RandomGaussianBlur": ((), {}),
    "RandomShear": ((0.1,), {}), "RandomPerspective": ((), {}), "RandomPosterization": ((4,), {}),
    "Solarization": ((0.1,), {}), "RandAugment": ((), {}), "AugMix": ((), {}), "RandomCrop": ((4, 4), {}),
    "AutoContrast": ((), {}), "Equalization": ((), {}), "Resizing": ((4, 4), {}), "CenterCrop": ((4, 4), {}),
}


@pytest.mark.parametrize("name", sorted(REGULARIZATION))
def test_dropout_and_noise_layers_hold_and_move_keras_s_seed_state(name):
    x = numpy.random.default_rng(0).uniform(0.5, 1.5, (2, 3, 4, 5, 6)[:{"1D": 3, "3D": 5}.get(name[-2:], 4)])
    x = x.astype("float32")
    found = []
    for lib in (gpu_dl, keras):
        layer = getattr(lib.layers, name)(*REGULARIZATION[name], seed=11)
        made = (seed_generator_attributes(lib, layer), states(lib, layer), len(layer.weights))
        layer(x, training=False)
        layer(x, training=True)
        layer(x, training=True)
        found.append(made + (states(lib, layer),))
    assert found[0] == found[1]
    assert found[0][:3] == (["seed_generator"], [("seed_generator_state", (2,), False, [11, 0])], 0)
    assert found[0][3][0][3] == [11, 2]
    for lib in (gpu_dl, keras):     # a rate of 0 draws nothing: no generator
        layer = getattr(lib.layers, name)(0.0)
        assert layer.variables == [] and not seed_generator_attributes(lib, layer)


@pytest.mark.parametrize("name", sorted(AUGMENTATION))
def test_image_layers_hold_keras_s_seed_generators(name):
    args, kwargs = AUGMENTATION[name]
    seeded = {} if name in ("AutoContrast", "Equalization", "Resizing", "CenterCrop") else {"seed": 11}
    ours = getattr(gpu_dl.layers, name)(*args, **seeded, **kwargs)
    theirs = getattr(keras.layers, name)(*args, **seeded, **kwargs)
    assert seed_generator_attributes(gpu_dl, ours) == seed_generator_attributes(keras, theirs)
    assert states(gpu_dl, ours) == states(keras, theirs)
    assert ours.weights == [] and theirs.weights == []
    if seeded:
        assert seed_generator_attributes(gpu_dl, ours) == ["generator"]
        assert states(gpu_dl, ours)[0] == ("seed_generator_state", (2,), False, [11, 0])
        x = numpy.random.default_rng(1).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
        ours(x, training=True)
        assert ours.generator.state.numpy()[1] > 0          # the layer's own generator drives its draws
        assert all(s[3] == [11, 0] for s in states(gpu_dl, ours)[1:])     # its parts' are held, as Keras's are
    else:
        assert states(gpu_dl, ours) == []


def _model(lib):
    L = lib.layers
    return lib.Sequential([
        lib.Input((8, 8, 3)), L.RandomFlip(seed=1), L.Conv2D(2, 3), L.SpatialDropout2D(0.2, seed=2), L.Flatten(),
        L.Dropout(0.5, seed=3), L.GaussianNoise(0.1), L.Dense(4), L.AlphaDropout(0.1), L.GaussianDropout(0.2),
        L.Dense(2)])


def test_weight_files_leave_the_seed_states_out_as_keras_s_and_load_both_ways(tmp_path):
    ours, theirs = _model(gpu_dl), _model(keras)
    back, _ = assert_seed_states_stay_out_of_weight_files(
        ours, theirs, 6, numpy.random.default_rng(2), lambda rng: rng.uniform(0, 1, (3, 8, 8, 3)).astype("float32"),
        tmp_path, gpu_dl.models.load_model)
    assert len(ours.weights) == 6
    assert [layer.seed for layer in back.layers if hasattr(layer, "seed")] == [1, 2, 3, None, None, None]
    # its seed; no draws in inference
    assert back.layers[4].seed_generator.state.numpy().tolist() == [3, 0]
