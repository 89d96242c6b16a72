"""gpu_dl.applications' MobileNet (v1) and MobileNetV3Small/Large against Keras 3's keras.applications (where
Keras is installed): the same layers, operations, configs and weights; the same predictions from Keras's weights
and files. Inputs are small to keep the file fast."""
import os
import warnings

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
pytest.importorskip("h5py")

from gpu_dl import applications  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402

from applications_oracle import (assert_same_model, build, check_family, check_imagenet_file,  # noqa: E402
                                 check_preprocessing)


@pytest.mark.parametrize("fn, kwargs", [
    ("MobileNet", dict(include_top=True, input_shape=(32, 32, 3), classes=5, alpha=0.5)),
    ("MobileNet", dict(include_top=False, input_shape=(35, 37, 3), depth_multiplier=2, pooling="avg", alpha=0.25)),
    ("MobileNetV3Small", dict(include_top=True, input_shape=(32, 32, 3), classes=4)),
    ("MobileNetV3Small", dict(include_top=False, input_shape=(33, 40, 3), pooling="max", alpha=0.75,
                              include_preprocessing=False)),
    ("MobileNetV3Large", dict(include_top=True, input_shape=(32, 32, 3), classes=3, minimalistic=True,
                              dropout_rate=0.0)),
    ("MobileNetV3Large", dict(include_top=False, input_shape=(32, 32, 3), pooling="avg", alpha=1.25)),
], ids=["v1_top", "v1_notop_avg", "v3small_top", "v3small_notop_max", "v3large_minimal_top", "v3large_wide_avg"])
def test_mobilenets_match_keras(fn, kwargs, rng, tmp_path):
    check_family(keras, applications, fn, kwargs, rng, tmp_path, load_model)


def test_mobilenet_v3_tops_take_any_size_as_in_keras(rng):
    kwargs = dict(include_top=True, classes=3)
    ours, theirs = build(applications, "MobileNetV3Small", kwargs), build(keras.applications, "MobileNetV3Small",
                                                                        kwargs)
    assert ours.input_shape == (None, None, None, 3)
    assert_same_model(ours, theirs)
    assert ours.predict(numpy.zeros((1, 40, 48, 3), "float32"), verbose=0).shape == (1, 3)


@pytest.mark.parametrize("fn, kwargs, filename, warns", [
    ("MobileNet", dict(include_top=False, input_shape=(128, 128, 3), alpha=0.25), "mobilenet_2_5_128_tf_no_top.h5",
     False),
    ("MobileNetV3Small", dict(include_top=False, input_shape=(32, 32, 3), alpha=0.75),
     "weights_mobilenet_v3_small_224_0.75_float_no_top_v2.h5", True),
    ("MobileNetV3Large", dict(include_top=True, input_shape=(32, 32, 3), minimalistic=True),
     "weights_mobilenet_v3_large_minimalistic_224_1.0_float.h5", True),
])
def test_mobilenets_read_the_imagenet_file_keras_names(fn, kwargs, filename, warns, rng, tmp_path, monkeypatch):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_imagenet_file(keras, applications, fn, kwargs, filename, rng, tmp_path, monkeypatch)
    # As Keras: MobileNetV3's files are for 224x224 inputs, and loading them into another size says so.
    assert warns == any("Weights for input shape (224, 224) will be loaded" in str(w.message) for w in caught)


def test_mobilenet_preprocessing():
    rng = numpy.random.default_rng(0)
    check_preprocessing(applications.mobilenet, keras.applications.mobilenet, rng)
    check_preprocessing(applications.mobilenet_v3, keras.applications.mobilenet_v3, rng)
    image = numpy.full((1, 2, 2, 3), 255.0, "float32")
    assert applications.mobilenet_v3.preprocess_input(image) is image
    assert applications.mobilenet.MobileNet is applications.MobileNet
