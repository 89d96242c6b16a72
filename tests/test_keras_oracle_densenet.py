"""gpu_dl.applications' DenseNets against Keras 3's keras.applications.densenet (where Keras is installed): the
same layers, configs and weights; the same predictions from Keras's weights and files. Inputs are 32x32 to keep
the file fast."""
import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
pytest.importorskip("h5py")

from gpu_dl import applications  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402

from applications_oracle import (assert_same_model, build, check_family, check_imagenet_file,  # noqa: E402
                                 check_preprocessing)


@pytest.mark.parametrize("fn, kwargs", [
    ("DenseNet121", dict(include_top=True, input_shape=(32, 32, 3), classes=6)),
    ("DenseNet169", dict(include_top=False, input_shape=(35, 33, 3), pooling="avg")),
], ids=["121_top", "169_notop_avg"])
def test_densenet_matches_keras(fn, kwargs, rng, tmp_path):
    check_family(keras, applications, fn, kwargs, rng, tmp_path, load_model)


def test_densenet201_and_max_pooling_build_as_in_keras():
    kwargs = dict(include_top=False, input_shape=(32, 32, 3), pooling="max")
    assert_same_model(build(applications, "DenseNet201", kwargs), build(keras.applications, "DenseNet201", kwargs))


def test_densenet_imagenet_file_and_preprocessing(rng, tmp_path, monkeypatch):
    check_imagenet_file(keras, applications, "DenseNet121", dict(include_top=False, input_shape=(32, 32, 3)),
                        "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5", rng, tmp_path, monkeypatch)
    for fn in ("DenseNet121", "DenseNet169", "DenseNet201"):
        assert getattr(applications.densenet, fn) is getattr(applications, fn)
    check_preprocessing(applications.densenet, keras.applications.densenet, rng)
