"""gpu_dl.applications' EfficientNetB0..B7 against Keras 3's keras.applications.efficientnet (where Keras is
installed): the same layers (the Rescaling and Normalization inside, the drop-connect Dropouts), configs and
weights; the same predictions from Keras's weights and files. Inputs are small to keep the file fast."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
pytest.importorskip("h5py")

from gpu_dl import applications  # noqa: E402
from gpu_dl.applications import efficientnet  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402

from applications_oracle import check_family, check_imagenet_file, check_preprocessing  # noqa: E402

VARIANTS = [f"EfficientNetB{i}" for i in range(8)]


@pytest.mark.parametrize("fn, kwargs", [
    ("EfficientNetB0", dict(include_top=True, input_shape=(32, 32, 3), classes=3)),
    ("EfficientNetB2", dict(include_top=False, input_shape=(35, 33, 3), pooling="max")),
], ids=["b0_top", "b2_notop_max"])
def test_efficientnet_matches_keras(fn, kwargs, rng, tmp_path):
    ours, _ = check_family(keras, applications, fn, kwargs, rng, tmp_path, load_model)
    # The drop connect: one draw per sample, at the rate 0.2 * b / blocks for block b counting from 0: B0 has
    # 16 blocks, block2b the third; B2 has 23 (its stages repeated 2, 3, 3, 4, 4, 5, 2 times), block2b the fourth.
    drop = ours.get_layer("block2b_drop")
    assert drop.noise_shape == (None, 1, 1, 1)
    assert drop.rate == pytest.approx(0.2 * 3 / 23 if fn == "EfficientNetB2" else 0.2 * 2 / 16)


def test_efficientnet_imagenet_file_adds_keras_rescaling(rng, tmp_path, monkeypatch):
    # With weights="imagenet" Keras adds a Rescaling after the Normalization; the file holds the Normalization's
    # mean and variance.
    check_imagenet_file(keras, applications, "EfficientNetB1", dict(include_top=False, input_shape=(32, 32, 3)),
                        "efficientnetb1_notop.h5", rng, tmp_path, monkeypatch)


def test_each_variant_has_keras_scales(monkeypatch):
    """B0..B7 pass Keras's width, depth, size, dropout, name and weights name to EfficientNet (recorded from
    both libraries' builders without building the models)."""
    from keras.src.applications import efficientnet as keras_efficientnet

    def recorder(calls):
        def record(*args, **kwargs):
            kwargs.pop("fn_name", None)
            calls.append((args, kwargs))
        return record

    ours, theirs = [], []
    monkeypatch.setattr(efficientnet, "EfficientNet", recorder(ours))
    monkeypatch.setattr(keras_efficientnet, "EfficientNet", recorder(theirs))
    for fn in VARIANTS:
        getattr(applications, fn)(weights=None)
        getattr(keras.applications, fn)(weights=None)
    assert ours == theirs
    assert len(ours) == 8


def test_efficientnet_arguments_and_preprocessing(rng):
    with pytest.raises(ValueError, match="EfficientNet: the number of repeats in `EfficientNet` must be > 0"):
        efficientnet.EfficientNet(1.0, 1.0, 224, blocks_args=[dict(repeats=0)], weights=None)
    with pytest.raises(ValueError, match="EfficientNet: `blocks_args` should be 'default' or a list of dicts"):
        efficientnet.EfficientNet(1.0, 1.0, 224, blocks_args=[dict(repeats=1, kernel=3)], weights=None)
    with pytest.raises(ValueError, match="EfficientNet: weights='imagenet' need `weights_name`"):
        efficientnet.EfficientNet(1.0, 1.0, 224, weights="imagenet")
    image = numpy.full((1, 2, 2, 3), 255.0, "float32")
    assert applications.efficientnet.preprocess_input(image) is image
    check_preprocessing(applications.efficientnet, keras.applications.efficientnet, rng)
    for fn in VARIANTS:
        assert getattr(applications.efficientnet, fn) is getattr(applications, fn)
