"""gpu_dl.applications' NASNetMobile and NASNetLarge against Keras 3's keras.applications.nasnet (where Keras is
installed): the same layers, configs and weights; the same predictions from Keras's weights and files. Keras
3.15 refuses NASNetMobile on its torch backend, so its oracle is Keras's NASNet with NASNetMobile's arguments.
Inputs are small to keep the file fast."""
import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
pytest.importorskip("h5py")

from gpu_dl import applications  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402

from applications_oracle import check_family, check_imagenet_file, check_preprocessing  # noqa: E402


def keras_nasnet_mobile(input_shape=None, include_top=True, **kwargs):
    """Keras's NASNetMobile on a backend that builds it: its NASNet call."""
    from keras.src.applications import nasnet
    if not include_top and input_shape is None:
        input_shape = (224, 224, 3)
    return nasnet.NASNet(input_shape, penultimate_filters=1056, num_blocks=4, stem_block_filters=32,
                         skip_reduction=False, filter_multiplier=2, include_top=include_top, default_size=224,
                         name=kwargs.pop("name", "nasnet_mobile"), **kwargs)


def test_nasnet_mobile_matches_keras(rng, tmp_path):
    check_family(keras, applications, "NASNetMobile", dict(include_top=True, input_shape=(32, 32, 3), classes=3),
                 rng, tmp_path, load_model, keras_fn=keras_nasnet_mobile)


def test_nasnet_large_matches_keras(rng, tmp_path):
    # The larger model (1040 layers) without the file round trips the mobile one has made.
    check_family(keras, applications, "NASNetLarge", dict(include_top=False, input_shape=(35, 33, 3),
                                                          pooling="avg"),
                 rng, tmp_path, load_model, files=False)


def test_nasnet_imagenet_files_and_preprocessing(rng, tmp_path, monkeypatch):
    # Keras keeps the file under another name than the one it downloads (NASNet-mobile-no-top.h5).
    check_imagenet_file(keras, applications, "NASNetMobile", dict(include_top=False, input_shape=(32, 32, 3),
                                                                  pooling="max"),
                        "nasnet_mobile_no_top.h5", rng, tmp_path, monkeypatch, keras_fn=keras_nasnet_mobile)
    assert applications.nasnet.NASNetLarge is applications.NASNetLarge
    check_preprocessing(applications.nasnet, keras.applications.nasnet, rng)


def test_nasnet_mobile_without_top_defaults_to_224():
    model = applications.NASNetMobile(weights=None, include_top=False, pooling="avg")
    assert model.input_shape == (None, 224, 224, 3) and model.output_shape == (None, 1056)
