"""gpu_dl.applications.InceptionV3 against Keras 3's keras.applications.InceptionV3 (where Keras is installed):
the same layers, configs and weights; the same predictions from Keras's weights and files. Inputs are 75x75,
the smallest InceptionV3 takes, to keep the file fast."""
import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
pytest.importorskip("h5py")

from gpu_dl import applications  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402

from applications_oracle import check_family, check_imagenet_file, check_preprocessing  # noqa: E402


@pytest.mark.parametrize("kwargs", [dict(include_top=True, input_shape=(75, 75, 3), classes=4),
                                    dict(include_top=False, input_shape=(76, 80, 3), pooling="max")],
                         ids=["top", "notop_max"])
def test_inception_v3_matches_keras(kwargs, rng, tmp_path):
    check_family(keras, applications, "InceptionV3", kwargs, rng, tmp_path, load_model)


def test_inception_v3_imagenet_file_and_preprocessing(rng, tmp_path, monkeypatch):
    check_imagenet_file(keras, applications, "InceptionV3", dict(include_top=False, input_shape=(75, 75, 3)),
                        "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5", rng, tmp_path, monkeypatch)
    assert applications.inception_v3.InceptionV3 is applications.InceptionV3
    check_preprocessing(applications.inception_v3, keras.applications.inception_v3, rng)
