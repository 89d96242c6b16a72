"""gpu_dl.applications against Keras 3's keras.applications (where Keras is installed).

The same models built by both with weights=None have the same layers, layer configs and weight shapes;
weights copied from Keras predict the same; Keras's legacy HDF5 weight files (the format of its ImageNet
files, written here with Keras's own writer) and Keras 3 ``.weights.h5`` files load; one model trains the
same few steps. Inputs are small (32x32) to keep the file fast.
"""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
h5py = pytest.importorskip("h5py")

import gpu_dl  # noqa: E402
from gpu_dl import applications  # noqa: E402

from applications_oracle import assert_same_model, assert_same_predictions, randomize, write_legacy  # noqa: E402


CASES = {
    "resnet50_notop_max": ("ResNet50", dict(include_top=False, input_shape=(32, 32, 3), pooling="max")),
    "resnet101_top": ("ResNet101", dict(include_top=True, input_shape=(32, 32, 3), classes=3)),
    "resnet152_notop": ("ResNet152", dict(include_top=False, input_shape=(32, 32, 3))),
    "mobilenetv2_top": ("MobileNetV2", dict(include_top=True, input_shape=(32, 32, 3), classes=10)),
    "mobilenetv2_035_odd": ("MobileNetV2", dict(include_top=False, input_shape=(35, 35, 3), alpha=0.35)),
    "mobilenetv2_14_avg": ("MobileNetV2", dict(include_top=False, input_shape=(96, 96, 3), alpha=1.4,
                                               pooling="avg")),
    "vgg16_top": ("VGG16", dict(include_top=True, input_shape=(32, 32, 3), classes=7)),
    "vgg19_any_size_avg": ("VGG19", dict(include_top=False, pooling="avg")),
}


def build(lib_applications, case):
    fn, kwargs = CASES[case]
    return getattr(lib_applications, fn)(weights=None, **kwargs)


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_configs_and_weight_shapes_match_keras(case):
    assert_same_model(build(applications, case), build(keras.applications, case))


def _keras_with_random_state(case, rng):
    """The Keras model with its initial kernels, and random biases and batch-norm statistics."""
    return randomize(keras, build(keras.applications, case), rng)


def _images(case, rng):
    shape = CASES[case][1].get("input_shape") or (32, 32, 3)
    return rng.uniform(-1, 1, (2,) + tuple(shape)).astype("float32")


@pytest.mark.parametrize("case", ["resnet50_notop_max", "resnet152_notop", "mobilenetv2_top", "mobilenetv2_035_odd",
                                  "vgg16_top", "vgg19_any_size_avg"])
def test_weights_copied_from_keras_predict_the_same(case, rng):
    theirs = _keras_with_random_state(case, rng)
    ours = build(applications, case)
    ours.set_weights([keras.ops.convert_to_numpy(w) for w in theirs.weights])
    assert_same_predictions(ours, theirs, _images(case, rng))


@pytest.mark.parametrize("case", ["resnet101_top", "mobilenetv2_top", "vgg16_top"])
def test_legacy_keras_2_files_load_by_order_and_predict_the_same(case, rng, tmp_path):
    theirs = _keras_with_random_state(case, rng)
    path = tmp_path / "weights.h5"
    write_legacy(theirs, path)
    ours = build(applications, case)
    ours.load_weights(path)
    assert_same_predictions(ours, theirs, _images(case, rng))
    # The constructor's `weights` takes the same file.
    fn, kwargs = CASES[case]
    assert_same_predictions(getattr(applications, fn)(weights=str(path), **kwargs), theirs, _images(case, rng))


def test_legacy_by_name_and_skip_mismatch(rng, tmp_path):
    theirs = _keras_with_random_state("mobilenetv2_top", rng)
    path = tmp_path / "top.h5"
    write_legacy(theirs, path)
    x = _images("mobilenetv2_top", rng)
    features = keras.Model(theirs.input, theirs.get_layer("out_relu").output)

    # No top: by order the file has one layer too many; by name the top is simply not used.
    notop = applications.MobileNetV2(weights=None, include_top=False, input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match="legacy Keras 2.*layer count mismatch.*by_name=True"):
        notop.load_weights(path)
    notop.load_weights(path, by_name=True)
    assert_same_predictions(notop, features, x)

    # Another number of classes: the classifier's shapes differ; skip_mismatch keeps the rest.
    other = applications.MobileNetV2(weights=None, include_top=True, input_shape=(32, 32, 3), classes=4)
    kernel_before = other.get_layer("predictions").get_weights()[0].copy()
    with pytest.raises(ValueError, match="shape mismatch .*predictions.*\\(1280, 4\\).*\\(1280, 10\\)"):
        other.load_weights(path)
    with pytest.warns(UserWarning, match="shape mismatch"):
        other.load_weights(path, skip_mismatch=True)
    numpy.testing.assert_array_equal(other.get_layer("predictions").get_weights()[0], kernel_before)
    numpy.testing.assert_allclose(other.get_layer("Conv_1").get_weights()[0],
                                  keras.ops.convert_to_numpy(theirs.get_layer("Conv_1").kernel))


def test_imagenet_weights_are_read_from_the_local_copy_keras_names(rng, tmp_path, monkeypatch):
    keras_model = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(96, 96, 3),
                                                 alpha=0.35)
    keras_model.set_weights([w + rng.uniform(-0.05, 0.05, w.shape).astype("float32")
                             for w in keras_model.get_weights()])
    (tmp_path / "data" / "models").mkdir(parents=True)
    write_legacy(keras_model, tmp_path / "data" / "models" /
                  "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5")
    monkeypatch.setenv("GPU_DL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    ours = applications.MobileNetV2(weights="imagenet", include_top=False, input_shape=(96, 96, 3), alpha=0.35)
    assert_same_predictions(ours, keras_model, rng.uniform(-1, 1, (2, 96, 96, 3)).astype("float32"))


@pytest.mark.parametrize("fn, name", [("EfficientNetB0", "mine"), ("EfficientNetB1", None),
                                      ("EfficientNetV2B0", None)])
def test_efficientnet_imagenet_files_are_named_after_the_model_as_keras_names_them(fn, name, rng, tmp_path,
                                                                                   monkeypatch):
    """Keras asks for the file ``<model name>[_notop].h5`` (a renamed model for one of its own name); gpu_dl
    reads the local copy of the same name."""
    from keras.src.utils import file_utils
    kwargs = dict(include_top=False, input_shape=(32, 32, 3), **({"name": name} if name else {}))
    source = getattr(keras.applications, fn)(weights=None, **kwargs)
    source.set_weights([w + rng.uniform(-0.05, 0.05, w.shape).astype("float32") for w in source.get_weights()])
    write_legacy(source, tmp_path / "weights.h5")
    asked = []

    def get_file(fname=None, origin=None, **options):
        asked.append(fname)
        return str(tmp_path / "weights.h5")
    monkeypatch.setattr(file_utils, "get_file", get_file)
    theirs = getattr(keras.applications, fn)(weights="imagenet", **kwargs)
    assert asked == [f"{theirs.name}_notop.h5"]
    (tmp_path / "data" / "models").mkdir(parents=True)
    (tmp_path / "weights.h5").rename(tmp_path / "data" / "models" / asked[0])
    monkeypatch.setenv("GPU_DL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    ours = getattr(applications, fn)(weights="imagenet", **kwargs)
    assert ours.name == theirs.name
    assert_same_predictions(ours, theirs, rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32"))


def test_keras_3_weights_files_load_both_ways(rng, tmp_path):
    theirs = _keras_with_random_state("resnet50_notop_max", rng)
    theirs.save_weights(tmp_path / "k.weights.h5")
    ours = build(applications, "resnet50_notop_max")
    ours.load_weights(tmp_path / "k.weights.h5")
    x = _images("resnet50_notop_max", rng)
    assert_same_predictions(ours, theirs, x)
    ours.save_weights(tmp_path / "g.weights.h5")
    again = build(keras.applications, "resnet50_notop_max")
    again.load_weights(tmp_path / "g.weights.h5")
    assert_same_predictions(ours, again, x)


def test_preprocess_input_matches_keras(rng):
    images = rng.uniform(0, 255, (2, 5, 4, 3)).astype("float32")
    for ours, theirs in ((applications.resnet50, keras.applications.resnet50),
                         (applications.mobilenet_v2, keras.applications.mobilenet_v2),
                         (applications.vgg19, keras.applications.vgg19)):
        numpy.testing.assert_allclose(ours.preprocess_input(images.copy()), theirs.preprocess_input(images.copy()),
                                      rtol=1e-6)
    for mode in ("caffe", "tf", "torch"):
        for data_format, x in (("channels_last", images), ("channels_first", images.transpose(0, 3, 1, 2)),
                               ("channels_first", images[0].transpose(2, 0, 1))):
            numpy.testing.assert_allclose(
                applications.imagenet_utils.preprocess_input(x.copy(), data_format=data_format, mode=mode),
                keras.applications.imagenet_utils.preprocess_input(x.copy(), data_format=data_format, mode=mode),
                rtol=1e-6, atol=1e-6)


def test_mobilenetv2_with_a_head_trains_the_same_steps_as_keras(rng):
    def model(lib, apps):
        base = apps.MobileNetV2(weights=None, include_top=False, input_shape=(32, 32, 3), alpha=0.35,
                                pooling="avg")
        out = lib.layers.Dense(3, activation="softmax", name="head")(base.output)
        return lib.Model(base.input, out, name="classifier")

    gpu_dl.backend.set_random_seed(4)
    ours = model(gpu_dl, applications)
    theirs = model(keras, keras.applications)
    theirs.set_weights(ours.get_weights())
    ours.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    theirs.compile(optimizer=keras.optimizers.SGD(), loss="sparse_categorical_crossentropy")
    # One step, at a looser tolerance than keras_steps' float32 one: in training, 52 batch normalizations over
    # batch statistics of few values (the 32x32 input is 1x1 at the end) amplify float32 rounding to about 1e-4
    # relative, and a further step grows it beyond what a tolerance could still tell from an error.
    before = ours.get_weights()
    x = rng.standard_normal((8, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 3, 8)
    assert ours.train_on_batch(x, y) == pytest.approx(float(theirs.train_on_batch(x, y)), rel=5e-4)
    # The updates (not just the weights, which barely move in one step) agree weight by weight; the moving
    # statistics of batch normalization too. The floor is float32 rounding of a weight whose gradient is
    # zero in exact arithmetic (the beta of a batch normalization whose output feeds another one).
    for w, start, a, b in zip(ours.weights, before, ours.get_weights(), theirs.get_weights()):
        ours_update, keras_update = a - start, b - start
        assert numpy.linalg.norm(ours_update - keras_update) <= 2e-3 * numpy.linalg.norm(keras_update) + \
            1e-6 * numpy.sqrt(start.size), \
            w.name
