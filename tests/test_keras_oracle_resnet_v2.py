"""gpu_dl.applications' ResNet50V2/101V2/152V2 against Keras 3's keras.applications.resnet_v2 (where Keras is
installed): the same layers, configs and weights; the same predictions from Keras's weights and files. Inputs
are 32x32 to keep the file fast."""
import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
pytest.importorskip("h5py")

from gpu_dl import applications  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402

from applications_oracle import check_family, check_imagenet_file, check_preprocessing  # noqa: E402


@pytest.mark.parametrize("fn, kwargs, files", [
    ("ResNet50V2", dict(include_top=True, input_shape=(32, 32, 3), classes=4), True),
    ("ResNet101V2", dict(include_top=False, input_shape=(33, 35, 3), pooling="max"), False),
    ("ResNet152V2", dict(include_top=False, input_shape=(32, 32, 3), pooling="avg"), False),
], ids=["50_top", "101_notop_max", "152_notop_avg"])
def test_resnet_v2_matches_keras(fn, kwargs, files, rng, tmp_path):
    check_family(keras, applications, fn, kwargs, rng, tmp_path, load_model, files=files)


def test_resnet_v2_imagenet_file_and_preprocessing(rng, tmp_path, monkeypatch):
    check_imagenet_file(keras, applications, "ResNet50V2", dict(include_top=False, input_shape=(32, 32, 3)),
                        "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5", rng, tmp_path, monkeypatch)
    assert applications.resnet_v2.ResNet152V2 is applications.ResNet152V2
    check_preprocessing(applications.resnet_v2, keras.applications.resnet_v2, rng)
