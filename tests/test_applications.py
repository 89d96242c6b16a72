"""gpu_dl.applications without Keras: argument checks, weights files found or asked for, preprocessing,
decoding predictions, input tensors, and the legacy HDF5 reader's refusals."""
import json

import numpy
import pytest

h5py = pytest.importorskip("h5py")

from gpu_dl import applications, layers, models  # noqa: E402
from gpu_dl.applications import imagenet_utils  # noqa: E402


@pytest.fixture
def no_local_files(tmp_path, monkeypatch):
    """No weights or class index on this machine: empty data and home folders."""
    monkeypatch.setenv("GPU_DL_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


# Each builder and the smallest input side it takes.
MIN_SIZES = {"ResNet50": 32, "ResNet101": 32, "ResNet152": 32, "MobileNetV2": 32, "VGG16": 32, "VGG19": 32,
             "Xception": 71, "InceptionV3": 75, "DenseNet121": 32, "DenseNet169": 32, "DenseNet201": 32,
             "MobileNet": 32, "MobileNetV3Small": 32, "MobileNetV3Large": 32, "EfficientNetB0": 32,
             "EfficientNetB7": 32, "EfficientNetV2B0": 32, "EfficientNetV2L": 32,
             "NASNetMobile": 32, "NASNetLarge": 32, "ResNet50V2": 32, "ResNet152V2": 32,
             "InceptionResNetV2": 75, "ConvNeXtTiny": 32, "ConvNeXtXLarge": 32}
# Their tops take any image size (a global pooling, then 1x1 convolutions), as Keras's.
ANY_SIZE_TOP = {"MobileNetV3Small", "MobileNetV3Large"}


@pytest.mark.parametrize("fn", sorted(MIN_SIZES))
def test_bad_arguments_name_the_function_and_argument(fn, tmp_path):
    build = getattr(applications, fn)
    side = MIN_SIZES[fn]
    shape = (side, side, 3)
    with pytest.raises(ValueError, match=f"{fn}: the `weights` argument"):
        build(weights="imagenet21k", include_top=False, input_shape=shape)
    with pytest.raises(ValueError, match=f"{fn}: the `weights` argument.*no such file"):
        build(weights=str(tmp_path / "missing.h5"), include_top=False, input_shape=shape)
    with pytest.raises(ValueError, match=f"{fn}: the `weights` argument"):
        build(weights=3, include_top=False, input_shape=shape)
    with pytest.raises(ValueError, match=f"{fn}: .*`classes` should be 1000"):
        build(weights="imagenet", classes=10)
    with pytest.raises(ValueError, match=f"{fn}: `input_shape`: input size must be at least {side}x{side}"):
        build(weights=None, include_top=False, input_shape=(side - 1, side, 3))
    with pytest.raises(ValueError, match=f"{fn}: `input_shape` must be a tuple of three"):
        build(weights=None, include_top=False, input_shape=shape[:2])
    if fn in ANY_SIZE_TOP:
        assert build(weights=None, include_top=True, input_shape=(None, None, 3), classes=2).output_shape == (None, 2)
    else:
        with pytest.raises(ValueError, match=f"{fn}: if `include_top` is True, you should specify a static"):
            build(weights=None, include_top=True, input_shape=(None, None, 3))
    with pytest.raises(ValueError, match=f"{fn}: `pooling` should be None, 'avg' or 'max'"):
        build(weights=None, include_top=False, input_shape=shape, pooling="mean")
    with pytest.raises(ValueError, match=f"{fn}: only `None` and `softmax`.*classifier_activation"):
        build(weights=str(_any_file(tmp_path)), include_top=True, input_shape=shape, classes=3,
              classifier_activation="sigmoid")
    with pytest.raises(ValueError, match=f"{fn}: `input_tensor` must be a symbolic tensor"):
        build(weights=None, include_top=False, input_tensor=numpy.zeros((1,) + shape, "float32"))


def _any_file(tmp_path):
    path = tmp_path / "any.weights.h5"
    path.write_bytes(b"")
    return path


def test_imagenet_without_a_local_file_says_where_to_put_it(no_local_files):
    with pytest.raises(ValueError, match=r"(?s)ResNet50: weights='imagenet' need the file "
                                         r"'resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5'.*does not download"
                                         r".*data/models.*\.gpu_dl/models.*\.keras/models"):
        applications.ResNet50(weights="imagenet", include_top=False)
    with pytest.raises(ValueError, match="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.5_128.h5"):
        applications.MobileNetV2(weights="imagenet", alpha=0.5, input_shape=(128, 128, 3))
    with pytest.raises(ValueError, match=r"ResNet101V2: .*'resnet101v2_weights_tf_dim_ordering_tf_kernels.h5'.*"
                                         r"keras-applications/resnet/resnet101v2_weights"):
        applications.ResNet101V2(weights="imagenet")
    with pytest.raises(ValueError, match=r"InceptionResNetV2: .*'inception_resnet_v2_weights_tf_dim_ordering_tf_"
                                         r"kernels_notop.h5'.*keras-applications/inception_resnet_v2/"):
        applications.InceptionResNetV2(weights="imagenet", include_top=False)
    with pytest.raises(ValueError, match=r"ConvNeXtBase: .*'convnext_base_notop.h5'.*keras-applications/convnext/"):
        applications.ConvNeXtBase(weights="imagenet", include_top=False)
    with pytest.raises(ValueError, match='ConvNeXtSmall: model name "mine" does not match weights variant '
                                         '"convnext_small"'):
        applications.ConvNeXtSmall(weights="imagenet", name="mine")
    with pytest.raises(ValueError, match=r"ConvNeXt: architecture configuration does not match convnext_tiny "
                                         r"variant.*Expected depths: \[3, 3, 9, 3\], got: \[3, 3, 3, 3\]"):
        applications.convnext.ConvNeXt([3, 3, 3, 3], [96, 192, 384, 768], weights="imagenet",
                                       weights_name="convnext_tiny", name="convnext_tiny")
    with pytest.raises(ValueError, match="vgg19_weights_tf_dim_ordering_tf_kernels.h5"):
        applications.VGG19(weights="imagenet")
    with pytest.raises(ValueError, match=r"Xception: .*'xception_weights_tf_dim_ordering_tf_kernels.h5'.*"
                                         r"keras-applications/xception/xception_weights"):
        applications.Xception(weights="imagenet")
    with pytest.raises(ValueError, match=r"InceptionV3: .*'inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5'"
                                         r".*keras-applications/inception_v3/inception_v3_weights"):
        applications.InceptionV3(weights="imagenet", include_top=False)
    with pytest.raises(ValueError, match=r"DenseNet201: .*'densenet201_weights_tf_dim_ordering_tf_kernels.h5'"
                                         r".*keras-applications/densenet/densenet201_weights"):
        applications.DenseNet201(weights="imagenet")
    with pytest.raises(ValueError, match=r"DenseNet: weights='imagenet' exist for blocks .* Received: "
                                         r"blocks=\[6, 12, 24, 24\]"):
        applications.densenet.DenseNet([6, 12, 24, 24], weights="imagenet")
    with pytest.raises(ValueError, match=r"MobileNet: .*'mobilenet_7_5_160_tf.h5'.*keras-applications/mobilenet/"):
        applications.MobileNet(weights="imagenet", alpha=0.75, input_shape=(160, 160, 3))
    with pytest.raises(ValueError, match=r"MobileNetV3Large: .*'weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5'"
                                         r".*keras-applications/mobilenet_v3/weights_mobilenet_v3_large"):
        applications.MobileNetV3Large(weights="imagenet", include_top=False, input_shape=(224, 224, 3))
    with pytest.raises(ValueError, match=r"EfficientNetB3: .*'efficientnetb3.h5'.*"
                                         r"https://storage.googleapis.com/keras-applications/efficientnetb3.h5"):
        applications.EfficientNetB3(weights="imagenet")
    with pytest.raises(ValueError, match=r"EfficientNetB3: when setting `include_top=True` and loading `imagenet` "
                                         r"weights, `input_shape` should be \(300, 300, 3\)"):
        applications.EfficientNetB3(weights="imagenet", input_shape=(224, 224, 3))
    with pytest.raises(ValueError, match=r"EfficientNetV2S: .*'efficientnetv2-s_notop.h5'.*"
                                         r"keras-applications/efficientnet_v2/efficientnetv2-s_notop.h5"):
        applications.EfficientNetV2S(weights="imagenet", include_top=False)
    with pytest.raises(ValueError, match=r"EfficientNetV2B2: .*'efficientnetv2-b2.h5'"):
        applications.EfficientNetV2B2(weights="imagenet")
    # A renamed EfficientNet looks for a file of its own name, as Keras's
    with pytest.raises(ValueError, match=r"EfficientNetV2B2: .*'renamed.h5'.*efficientnet_v2/renamed.h5"):
        applications.EfficientNetV2B2(weights="imagenet", name="renamed")
    with pytest.raises(ValueError, match=r"EfficientNetB1: .*'mine_notop.h5'.*keras-applications/mine_notop.h5"):
        applications.EfficientNetB1(weights="imagenet", name="mine", include_top=False)
    with pytest.raises(ValueError, match=r"NASNetLarge: .*'nasnet_large.h5'.*nasnet/NASNet-large.h5"):
        applications.NASNetLarge(weights="imagenet")
    with pytest.raises(ValueError, match=r"NASNetMobile: .*'nasnet_mobile_no_top.h5'.*nasnet/NASNet-mobile-no-top.h5"):
        applications.NASNetMobile(weights="imagenet", include_top=False)
    with pytest.raises(ValueError, match="NASNetMobile: when specifying the input shape of a NASNet and loading "
                                         "`ImageNet` weights, the input_shape argument must be static"):
        applications.NASNetMobile(weights="imagenet", include_top=False, input_shape=(None, None, 3))
    with pytest.raises(ValueError, match=r"NASNet: ImageNet weights can only be loaded with NASNetLarge or "
                                         r"NASNetMobile \(default_size 331 or 224\). Received: default_size=256"):
        applications.nasnet.NASNet(default_size=256)
    with pytest.raises(ValueError, match=r"NASNet: for NASNet-A models, the `penultimate_filters` must be a "
                                         r"multiple of 24 \* \(`filter_multiplier` \*\* 2\). Current value: 100"):
        applications.nasnet.NASNet(weights=None, penultimate_filters=100, include_top=False)
    with pytest.raises(ValueError, match="MobileNetV2: if imagenet weights are being loaded, alpha must be one of"):
        applications.MobileNetV2(weights="imagenet", alpha=0.6)
    with pytest.raises(ValueError, match=r"VGG16: when setting `include_top=True` and loading `imagenet` weights, "
                                         r"`input_shape` should be \(224, 224, 3\)"):
        applications.VGG16(weights="imagenet", input_shape=(64, 64, 3))


@pytest.mark.parametrize("fn", ["EfficientNetB0", "EfficientNetV2B0"])
def test_a_renamed_efficientnet_reads_the_imagenet_file_of_its_own_name(fn, no_local_files):
    build = getattr(applications, fn)
    rng = numpy.random.default_rng(5)
    source = build(weights=None, include_top=False, input_shape=(32, 32, 3), name="mine")
    source.set_weights([w + rng.uniform(-0.05, 0.05, w.shape).astype("float32") for w in source.get_weights()])
    folder = no_local_files / "data" / "models"
    folder.mkdir(parents=True)
    source.save_weights(folder / "saved.weights.h5")
    (folder / "saved.weights.h5").rename(folder / "mine_notop.h5")
    loaded = build(weights="imagenet", include_top=False, input_shape=(32, 32, 3), name="mine")
    # (with imagenet weights EfficientNet adds a Rescaling layer without weights, so the weights are compared)
    assert len(loaded.get_weights()) == len(source.get_weights())
    for a, b in zip(loaded.get_weights(), source.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    # the standard name's model does not take the renamed one's file
    with pytest.raises(ValueError, match="_notop.h5', which .*did not find"):
        build(weights="imagenet", include_top=False, input_shape=(32, 32, 3))


def test_mobilenet_family_arguments():
    for fn in ("MobileNet", "MobileNetV3Small"):
        with pytest.raises(ValueError, match=f"{fn}: `alpha` should be a positive number"):
            getattr(applications, fn)(weights=None, alpha=0)
    with pytest.raises(ValueError, match="MobileNet: if imagenet weights are being loaded, depth multiplier must be 1"):
        applications.MobileNet(weights="imagenet", depth_multiplier=2)
    with pytest.raises(ValueError, match="MobileNet: if imagenet weights are being loaded, alpha can be one of"):
        applications.MobileNet(weights="imagenet", alpha=0.35)
    with pytest.raises(ValueError, match="MobileNet: `depth_multiplier` should be a positive integer"):
        applications.MobileNet(weights=None, depth_multiplier=1.5)
    with pytest.raises(ValueError, match=r"MobileNet: `dropout` should be a rate in \[0, 1\]"):
        applications.MobileNet(weights=None, dropout=2)
    with pytest.raises(ValueError, match=r"MobileNetV3Small: `dropout_rate` should be a rate in \[0, 1\]"):
        applications.MobileNetV3Small(weights=None, dropout_rate=-0.1)
    with pytest.raises(ValueError, match="MobileNetV3Large: if imagenet weights are being loaded, alpha can be one "
                                         "of `0.75`, `1.0` for non minimalistic or `1.0` for minimalistic only"):
        applications.MobileNetV3Large(weights="imagenet", minimalistic=True, alpha=0.75)
    inputs = layers.Input(shape=(40, 48, 3))
    with pytest.raises(ValueError, match=r"MobileNetV3Small: input_shape\[1\] must equal input_tensor.shape\[2\]"):
        applications.MobileNetV3Small(weights=None, input_tensor=inputs, input_shape=(40, 40, 3))
    assert applications.MobileNet(weights=None, input_shape=(64, 64, 3), alpha=0.75).name == "mobilenet_0.75_64"
    assert applications.MobileNetV3Small(weights=None, input_tensor=inputs).input_shape == (None, 40, 48, 3)


def test_models_build_with_keras_names_and_shapes():
    model = applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=5)
    assert model.name == "mobilenetv2_1.00_32"
    assert model.output_shape == (None, 5)
    assert applications.MobileNetV2(weights=None, include_top=False, input_shape=(96, 96, 3), alpha=0.5,
                                    pooling="max").name == "mobilenetv2_0.50_96"
    resnet = applications.ResNet50(weights=None, include_top=False, input_shape=(64, 64, 3), pooling="avg")
    assert resnet.output_shape == (None, 2048)
    assert sum(w.size for w in resnet.get_weights()) == 23587712           # Keras's count, without the top
    vgg = applications.VGG16(weights=None, include_top=False)
    assert vgg.input_shape == (None, None, None, 3) and vgg.output_shape == (None, None, None, 512)
    x = numpy.random.default_rng(0).uniform(-1, 1, (2, 40, 48, 3)).astype("float32")
    assert vgg.predict(x, verbose=0).shape == (2, 1, 1, 512)


def test_input_tensor_keeps_the_layers_before_it():
    inputs = layers.Input(shape=(32, 32, 3), name="raw")
    scaled = layers.Rescaling(1 / 127.5, offset=-1, name="scale")(inputs)
    model = applications.MobileNetV2(weights=None, include_top=False, input_tensor=scaled, alpha=0.35,
                                     pooling="avg")
    assert model.layers[0].name == "raw" and model.layers[1].name == "scale"
    assert model.output_shape == (None, 1280)
    with pytest.raises(ValueError, match=r"MobileNetV2: input_tensor.shape\[2\] must equal input_shape\[1\]"):
        applications.MobileNetV2(weights=None, include_top=False, input_tensor=scaled, input_shape=(48, 48, 3))


def test_preprocess_input_modes():
    image = numpy.array([[[[10.0, 20.0, 30.0]]]], dtype="float32")
    numpy.testing.assert_allclose(applications.resnet.preprocess_input(image.copy()),
                                  [[[[30 - 103.939, 20 - 116.779, 10 - 123.68]]]], rtol=1e-6)
    numpy.testing.assert_allclose(applications.mobilenet_v2.preprocess_input(image.copy()),
                                  image / 127.5 - 1, rtol=1e-6)
    torch_mode = imagenet_utils.preprocess_input(image.copy(), mode="torch")
    numpy.testing.assert_allclose(torch_mode, (image / 255 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225],
                                  rtol=1e-6)
    as_ints = applications.vgg16.preprocess_input(numpy.full((2, 2, 3), 100, dtype="uint8"))
    assert as_ints.dtype == numpy.float32
    with pytest.raises(ValueError, match="preprocess_input: expected mode"):
        imagenet_utils.preprocess_input(image, mode="caffe2")
    with pytest.raises(ValueError, match="preprocess_input: expected data_format"):
        imagenet_utils.preprocess_input(image, data_format="nhwc")


def _class_index(path):
    path.write_text(json.dumps({str(i): [f"n{i:08d}", f"class_{i}"] for i in range(1000)}))
    return path


def test_decode_predictions_reads_a_class_index_given_or_found(no_local_files):
    preds = numpy.zeros((2, 1000), "float32")
    preds[0, [3, 7]] = [0.2, 0.7]
    preds[1, 999] = 1.0
    with pytest.raises(ValueError, match=r"(?s)decode_predictions: class names need the file "
                                         r"'imagenet_class_index.json'.*does not download"):
        applications.resnet50.decode_predictions(preds)
    given = _class_index(no_local_files / "index.json")
    decoded = applications.resnet50.decode_predictions(preds, top=2, class_index=given)
    assert decoded[0] == [("n00000007", "class_7", pytest.approx(0.7)), ("n00000003", "class_3", pytest.approx(0.2))]
    assert decoded[1][0][:2] == ("n00000999", "class_999")
    (no_local_files / "data" / "models").mkdir(parents=True)
    _class_index(no_local_files / "data" / "models" / "imagenet_class_index.json")
    assert applications.vgg16.decode_predictions(preds, top=1)[0][0][1] == "class_7"
    with pytest.raises(ValueError, match=r"expects a batch of predictions.*\(2, 10\)"):
        applications.mobilenet_v2.decode_predictions(numpy.zeros((2, 10)))
    bad = no_local_files / "bad.json"
    bad.write_text(json.dumps({"0": ["a", "b"]}))
    with pytest.raises(ValueError, match="is not ImageNet's class index"):
        applications.resnet.decode_predictions(preds, class_index=bad)


# ------------------------------------------------------------------ the legacy HDF5 reader
def _small_model():
    inputs = layers.Input(shape=(4,))
    x = layers.Dense(3, name="hidden")(inputs)
    x = layers.BatchNormalization(name="bn")(x)
    return models.Model(inputs, layers.Dense(2, name="out")(x))


def _write_legacy(model, path, rename=None, drop=None):
    """A legacy file as Keras's writer lays it out, from gpu_dl's weights."""
    names = {"Dense": ["kernel", "bias"], "BatchNormalization": ["gamma", "beta", "moving_mean", "moving_variance"]}
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        f.attrs["keras_version"] = b"2.15.0"
        f.attrs["backend"] = b"tensorflow"
        for layer in model.layers:
            group = f.create_group(layer.name)
            weights = layer.get_weights()
            if drop == layer.name:
                weights = weights[:1]
            keys = [f"{layer.name}/{n}:0" for n in names.get(type(layer).__name__, [])][:len(weights)]
            group.attrs["weight_names"] = [k.encode() for k in keys]
            for key, value in zip(keys, weights):
                group[key] = value
        f.create_group("top_level_model_weights").attrs["weight_names"] = []


def test_legacy_files_load_and_mismatches_are_refused_before_anything_changes(tmp_path):
    source, target = _small_model(), _small_model()
    for w in source.weights:
        w.assign(numpy.random.default_rng(1).standard_normal(w.shape).astype("float32"))
    _write_legacy(source, tmp_path / "w.h5")
    target.load_weights(tmp_path / "w.h5")
    for a, b in zip(target.get_weights(), source.get_weights()):
        numpy.testing.assert_array_equal(a, b)

    fresh = _small_model()
    before = fresh.get_weights()
    _write_legacy(source, tmp_path / "short.h5", drop="bn")
    with pytest.raises(ValueError, match=r"legacy Keras 2.*weight count mismatch for layer #1"):
        fresh.load_weights(tmp_path / "short.h5")
    for a, b in zip(fresh.get_weights(), before):
        numpy.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="`by_name` applies only to legacy"):
        fresh.save_weights(tmp_path / "k.weights.h5") or fresh.load_weights(tmp_path / "k.weights.h5", by_name=True)
    with pytest.warns(UserWarning, match="weight count mismatch"):
        fresh.load_weights(tmp_path / "short.h5", by_name=True, skip_mismatch=True)
    numpy.testing.assert_array_equal(fresh.get_layer("out").get_weights()[0], source.get_layer("out").get_weights()[0])


def test_legacy_links_and_foreign_files_are_refused(tmp_path):
    model = _small_model()
    _write_legacy(model, tmp_path / "linked.h5")
    with h5py.File(tmp_path / "linked.h5", "a") as f:
        del f["hidden/hidden/kernel:0"]
        f["hidden/hidden/kernel:0"] = h5py.ExternalLink("elsewhere.h5", "/data")
    with pytest.raises(ValueError, match="ExternalLink; only plain groups and datasets are read"):
        model.load_weights(tmp_path / "linked.h5")
    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f["data"] = numpy.zeros(3)
    with pytest.raises(ValueError, match="foreign.h5 is an HDF5 file, but not Keras 3 weights"):
        model.load_weights(tmp_path / "foreign.h5")
    with h5py.File(tmp_path / "texts.h5", "w") as f:
        f.attrs["layer_names"] = numpy.array([1, 2])
    with pytest.raises(ValueError, match="attribute 'layer_names' should list names"):
        model.load_weights(tmp_path / "texts.h5")
