"""gpu_dl.applications' EfficientNetV2 models against Keras 3's keras.applications.efficientnet_v2 (where Keras is
installed): the same layers (the preprocessing inside, fused and plain MBConv blocks, the drop-connect Dropouts),
configs and weights; the same predictions from Keras's weights and files. Inputs are small to keep the file
fast."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
pytest.importorskip("h5py")

from gpu_dl import applications  # noqa: E402
from gpu_dl.applications import efficientnet_v2  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402

from applications_oracle import check_family, check_imagenet_file, check_preprocessing  # noqa: E402

VARIANTS = ["EfficientNetV2B0", "EfficientNetV2B1", "EfficientNetV2B2", "EfficientNetV2B3", "EfficientNetV2S",
            "EfficientNetV2M", "EfficientNetV2L"]


@pytest.mark.parametrize("fn, kwargs, files, atol_scale, seed", [
    ("EfficientNetV2B0", dict(include_top=True, input_shape=(32, 32, 3), classes=3), True, 1e-5, 0),
    # The larger S (40 blocks) without the file round trips B0 has made, to keep the file fast. Through its
    # depth, with random weights, each library's float32 result lies 1e-5 of the outputs' largest or more from
    # the float64 one (gpu_dl's float64 model), in either direction: the two, several times that. How far
    # depends on Keras's initial kernels: from seed 0 the model amplifies rounding to 2-5% of its outputs in
    # either library; from seed 3 both lie 7e-6 from float64.
    ("EfficientNetV2S", dict(include_top=False, input_shape=(33, 35, 3), pooling="avg"), False, 1e-4, 3),
    ("EfficientNetV2B1", dict(include_top=False, input_shape=(32, 32, 3), include_preprocessing=False), False, 1e-5,
     0),
], ids=["b0_top", "s_notop_avg", "b1_unprocessed"])
def test_efficientnet_v2_matches_keras(fn, kwargs, files, atol_scale, seed, rng, tmp_path):
    keras.utils.set_random_seed(seed)     # Keras's unseeded initializers draw from Python's random
    check_family(keras, applications, fn, kwargs, rng, tmp_path, load_model, files=files, atol_scale=atol_scale)


def test_efficientnet_v2_imagenet_file(rng, tmp_path, monkeypatch):
    check_imagenet_file(keras, applications, "EfficientNetV2B0", dict(include_top=False, input_shape=(32, 32, 3),
                                                                      pooling="max"),
                        "efficientnetv2-b0_notop.h5", rng, tmp_path, monkeypatch)


def test_each_variant_has_keras_scales_and_stages(monkeypatch):
    """Each model passes Keras's width, depth, size, name and weights name to EfficientNetV2, with the stages
    Keras looks up by the name (recorded from both libraries' builders without building the models)."""
    from keras.src.applications import efficientnet_v2 as keras_efficientnet_v2

    def recorder(calls):
        def record(**kwargs):
            kwargs.pop("fn_name", None)
            stages = kwargs.pop("blocks_args", "default")
            if stages == "default":
                stages = keras_efficientnet_v2.DEFAULT_BLOCKS_ARGS[kwargs["name"]]
            calls.append((kwargs, stages))
        return record

    ours, theirs = [], []
    monkeypatch.setattr(efficientnet_v2, "EfficientNetV2", recorder(ours))
    monkeypatch.setattr(keras_efficientnet_v2, "EfficientNetV2", recorder(theirs))
    for fn in VARIANTS:
        getattr(applications, fn)(weights=None)
        getattr(keras.applications, fn)(weights=None)
    assert ours == theirs
    assert len(ours) == 7


def test_efficientnet_v2_arguments_and_preprocessing(rng):
    with pytest.raises(ValueError, match="EfficientNetV2: blocks_args='default' takes the stages of the model"):
        efficientnet_v2.EfficientNetV2(1.0, 1.0, 224, name="mine", weights=None)
    stages = [dict(efficientnet_v2.DEFAULT_BLOCKS_ARGS["efficientnetv2-b0"][0], num_repeat=0)]
    with pytest.raises(ValueError, match="EfficientNetV2: the number of repeats in `EfficientNetV2` must be > 0"):
        efficientnet_v2.EfficientNetV2(1.0, 1.0, 224, blocks_args=stages, weights=None)
    with pytest.raises(ValueError, match="EfficientNetV2: `blocks_args` should be 'default' or a list of dicts"):
        efficientnet_v2.EfficientNetV2(1.0, 1.0, 224, blocks_args=[dict(kernel_size=3)], weights=None)
    # A renamed B model keeps its stages, and is preprocessed as Keras does by the name.
    mine = applications.EfficientNetV2B0(weights=None, include_top=False, input_shape=(32, 32, 3), name="mine")
    assert [type(layer).__name__ for layer in mine.layers[1:3]] == ["Rescaling", "Conv2D"]
    image = numpy.full((1, 2, 2, 3), 255.0, "float32")
    assert applications.efficientnet_v2.preprocess_input(image) is image
    check_preprocessing(applications.efficientnet_v2, keras.applications.efficientnet_v2, rng)
    for fn in VARIANTS:
        assert getattr(applications.efficientnet_v2, fn) is getattr(applications, fn)
