"""gpu_dl.applications' ConvNeXt models against Keras 3's keras.applications.convnext (where Keras is installed):
the same layers (nested Sequential stems, Keras's LayerScale and StochasticDepth under their module), configs and
weights; the same predictions from Keras's weights and files, and Keras reads the file gpu_dl writes. Inputs are
32x32 to keep the file fast."""
import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
pytest.importorskip("h5py")

from gpu_dl import applications  # noqa: E402
from gpu_dl.applications import convnext  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402

from applications_oracle import (assert_same_model, assert_same_predictions, check_family,  # noqa: E402
                                 check_imagenet_file, check_preprocessing)


def images(rng, shape=(32, 32, 3)):
    return rng.uniform(0, 255, (2,) + shape).astype("float32")


@pytest.mark.parametrize("fn, kwargs, files", [
    ("ConvNeXtTiny", dict(include_top=True, input_shape=(32, 32, 3), classes=3), True),
    ("ConvNeXtSmall", dict(include_top=False, input_shape=(35, 33, 3), pooling="avg"), False),
    ("ConvNeXtTiny", dict(include_top=False, input_shape=(32, 32, 3), include_preprocessing=False), False),
], ids=["tiny_top", "small_notop_avg", "tiny_unprocessed"])
def test_convnext_matches_keras(fn, kwargs, files, rng, tmp_path):
    check_family(keras, applications, fn, kwargs, rng, tmp_path, load_model, files=files)


def test_each_variant_passes_keras_configuration(monkeypatch):
    """Each model passes Keras's depths, widths, rates, size, name and weights name to ConvNeXt (recorded from
    both libraries' builders without building the models)."""
    from keras.src.applications import convnext as keras_convnext
    assert convnext.MODEL_CONFIGS == keras_convnext.MODEL_CONFIGS

    def recorder(calls):
        def record(**kwargs):
            kwargs.pop("fn_name", None)
            calls.append(kwargs)
        return record

    ours, theirs = [], []
    monkeypatch.setattr(convnext, "ConvNeXt", recorder(ours))
    monkeypatch.setattr(keras_convnext, "ConvNeXt", recorder(theirs))
    for fn in ("ConvNeXtTiny", "ConvNeXtSmall", "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtXLarge"):
        getattr(applications, fn)(weights=None)
        getattr(keras.applications, fn)(weights=None)
    assert ours == theirs and len(ours) == 5


def test_stochastic_depth_and_layer_scale_as_keras_writes_and_reads_them(rng, tmp_path):
    from keras.src.applications import convnext as keras_convnext
    kwargs = dict(depths=[1, 1, 2, 1], projection_dims=[8, 8, 16, 16], drop_path_rate=0.3,
                  layer_scale_init_value=0.5, input_shape=(32, 32, 3), include_top=False, name="small_convnext")
    ours, theirs = convnext.ConvNeXt(**kwargs), keras_convnext.ConvNeXt(**kwargs)
    assert_same_model(ours, theirs)
    assert [layer.drop_path_rate for layer in ours.layers if type(layer).__name__ == "StochasticDepth"] == \
        pytest.approx([0.075, 0.15, 0.225, 0.3])     # linspace(0, 0.3, 5): the first block has none
    ours.set_weights([w + rng.uniform(-0.1, 0.1, w.shape).astype("float32") for w in ours.get_weights()])
    ours.save(tmp_path / "g.keras")
    loaded = keras.models.load_model(tmp_path / "g.keras")
    assert type(loaded.get_layer("small_convnext_stage_3_block_0_layer_scale")).__module__ == \
        "keras.src.applications.convnext"
    assert_same_predictions(ours, loaded, images(rng))
    again = load_model(tmp_path / "g.keras")
    assert type(again.get_layer("small_convnext_stage_1_block_0_stochastic_depth")) is convnext.StochasticDepth
    assert_same_predictions(again, loaded, images(rng))


def test_keras_reads_the_file_gpu_dl_writes(rng, tmp_path):
    ours = applications.ConvNeXtTiny(weights=None, include_top=True, input_shape=(32, 32, 3), classes=4)
    ours.set_weights([w + rng.uniform(-0.1, 0.1, w.shape).astype("float32") for w in ours.get_weights()])
    ours.save(tmp_path / "g.keras")
    assert_same_predictions(ours, keras.models.load_model(tmp_path / "g.keras"), images(rng))


def test_convnext_imagenet_file_and_preprocessing(rng, tmp_path, monkeypatch):
    check_imagenet_file(keras, applications, "ConvNeXtTiny", dict(include_top=False, input_shape=(32, 32, 3)),
                        "convnext_tiny_notop.h5", rng, tmp_path, monkeypatch)
    image = images(rng)
    assert applications.convnext.preprocess_input(image) is image
    check_preprocessing(applications.convnext, keras.applications.convnext, rng)
    for fn in ("ConvNeXtTiny", "ConvNeXtSmall", "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtXLarge"):
        assert getattr(applications.convnext, fn) is getattr(applications, fn)
