"""gpu_dl.applications.InceptionResNetV2 against Keras 3's keras.applications.InceptionResNetV2 (where Keras is
installed): the same layers (Keras's CustomScaleLayer among them, under its module), configs and weights; the
same predictions from Keras's weights and files, and Keras reads the file gpu_dl writes. Inputs are 75x75, the
smallest the model takes, to keep the file fast."""
import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
pytest.importorskip("h5py")

from gpu_dl import applications  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402

from applications_oracle import (assert_same_predictions, check_family, check_imagenet_file,  # noqa: E402
                                 check_preprocessing, images)


def test_inception_resnet_v2_matches_keras(rng, tmp_path):
    check_family(keras, applications, "InceptionResNetV2", dict(include_top=True, input_shape=(75, 75, 3), classes=3),
                 rng, tmp_path, load_model)


def test_keras_reads_the_file_gpu_dl_writes(rng, tmp_path):
    kwargs = dict(include_top=False, input_shape=(76, 75, 3), pooling="avg")
    ours = applications.InceptionResNetV2(weights=None, **kwargs)
    ours.set_weights([w + rng.uniform(-0.05, 0.05, w.shape).astype("float32") for w in ours.get_weights()])
    ours.save(tmp_path / "g.keras")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    scales = [layer for layer in theirs.layers if type(layer).__name__ == "CustomScaleLayer"]
    assert len(scales) == 40 and type(scales[0]).__module__ == "keras.src.applications.inception_resnet_v2"
    assert [layer.scale for layer in scales[:1] + scales[10:11] + scales[30:]] == [0.17, 0.1] + [0.2] * 9 + [1.0]
    assert_same_predictions(ours, theirs, images(kwargs, rng))


def test_inception_resnet_v2_imagenet_file_and_preprocessing(rng, tmp_path, monkeypatch):
    check_imagenet_file(keras, applications, "InceptionResNetV2", dict(include_top=False, input_shape=(75, 75, 3)),
                        "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5", rng, tmp_path,
                        monkeypatch)
    assert applications.inception_resnet_v2.InceptionResNetV2 is applications.InceptionResNetV2
    check_preprocessing(applications.inception_resnet_v2, keras.applications.inception_resnet_v2, rng)
