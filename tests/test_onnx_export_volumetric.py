"""``model.export(path, format="onnx")`` of the volumetric layers, Dot, ReflectionPadding2D and the image-size
layers (Resizing, CenterCrop, RandomCrop), run in ONNX Runtime at batch sizes other than the one the model ran
with, against the model's own predict (the helpers are test_onnx_export.py's)."""
import os

import numpy
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import gpu_dl  # noqa: E402
from gpu_dl import layers  # noqa: E402
import test_onnx_export  # noqa: E402
from test_onnx_export import _feeds, _session, assert_runs_as_predict, exported, normal, sequential  # noqa: E402

exact_convolutions = test_onnx_export.exact_convolutions    # the autouse fixture: float32 GPU convolutions here too


def _shape(kwargs, sizes, channels):
    return (channels,) + sizes if kwargs.get("data_format") == "channels_first" else sizes + (channels,)


@pytest.mark.parametrize("kwargs", [
    dict(), dict(strides=2, padding="same"), dict(strides=(1, 2, 3), padding="same", activation="relu"),
    dict(dilation_rate=(2, 1, 2), padding="same"), dict(kernel_size=(2, 3, 1), strides=(2, 1, 1), use_bias=False),
    dict(groups=2, padding="same"), dict(dilation_rate=2),
    dict(data_format="channels_first", strides=2, padding="same"),
    dict(data_format="channels_first", groups=2, dilation_rate=(1, 2, 1)),
], ids=repr)
def test_conv3d(xp, kwargs, tmp_path):
    kwargs = {"filters": 4, "kernel_size": 3, **kwargs}
    shape = _shape(kwargs, (7, 6, 9), 4)
    assert_runs_as_predict(sequential(shape, layers.Conv3D(**kwargs)), normal(shape), tmp_path)


@pytest.mark.parametrize("kwargs", [
    dict(), dict(strides=2, padding="same"), dict(strides=(2, 1, 3), activation="tanh"),
    dict(strides=2, padding="same", output_padding=1), dict(strides=(3, 2, 2), output_padding=(2, 0, 1)),
    dict(kernel_size=(2, 3, 1), strides=2, use_bias=False), dict(dilation_rate=2, padding="same"),
    dict(data_format="channels_first", strides=2, padding="same"),
], ids=repr)
def test_conv3d_transpose(xp, kwargs, tmp_path):
    kwargs = {"filters": 3, "kernel_size": 3, **kwargs}
    shape = _shape(kwargs, (4, 3, 5), 2)
    assert_runs_as_predict(sequential(shape, layers.Conv3DTranspose(**kwargs)), normal(shape), tmp_path)


@pytest.mark.parametrize("pool", [layers.MaxPooling3D, layers.AveragePooling3D])
@pytest.mark.parametrize("kwargs", [
    dict(), dict(pool_size=3, strides=2, padding="same"), dict(pool_size=(2, 3, 1), strides=1, padding="same"),
    dict(pool_size=3, strides=(2, 1, 2)), dict(data_format="channels_first", padding="same"),
], ids=repr)
def test_pooling3d(xp, pool, kwargs, tmp_path):
    shape = _shape(kwargs, (5, 7, 6), 3)
    assert_runs_as_predict(sequential(shape, pool(**{"pool_size": 2, **kwargs})), normal(shape), tmp_path)


@pytest.mark.parametrize("pool", [layers.GlobalMaxPooling3D, layers.GlobalAveragePooling3D])
@pytest.mark.parametrize("kwargs", [dict(), dict(keepdims=True), dict(data_format="channels_first")], ids=repr)
def test_global_pooling3d(xp, pool, kwargs, tmp_path):
    assert_runs_as_predict(sequential((3, 5, 4, 2), pool(**kwargs)), normal((3, 5, 4, 2)), tmp_path)


@pytest.mark.parametrize("layer", [
    lambda: layers.ZeroPadding3D(), lambda: layers.ZeroPadding3D(((1, 0), (0, 2), (3, 1))),
    lambda: layers.ZeroPadding3D((2, 0, 1), data_format="channels_first"),
    lambda: layers.Cropping3D(), lambda: layers.Cropping3D(((0, 1), (2, 0), (1, 2))),
    lambda: layers.Cropping3D((2, 1, 0), data_format="channels_first"),
    lambda: layers.UpSampling3D(), lambda: layers.UpSampling3D((1, 3, 2)),
    lambda: layers.UpSampling3D(2, data_format="channels_first"),
], ids=lambda v: "")
def test_volume_padding_cropping_and_upsampling(xp, layer, tmp_path):
    assert_runs_as_predict(sequential((3, 5, 6, 2), layer()), normal((3, 5, 6, 2)), tmp_path)


def test_a_volumetric_network(xp, tmp_path):
    model = sequential((6, 7, 5, 2), layers.ZeroPadding3D(1), layers.Conv3D(4, 3, strides=2, activation="relu"),
                       layers.UpSampling3D(2), layers.Conv3DTranspose(3, 2, padding="same"),
                       layers.Cropping3D(((1, 0), (0, 1), (1, 1))), layers.MaxPooling3D(2, padding="same"),
                       layers.GlobalAveragePooling3D(), layers.Dense(2))
    assert_runs_as_predict(model, normal((6, 7, 5, 2)), tmp_path)


@pytest.mark.parametrize("kwargs", [dict(), dict(data_format="channels_first"), dict(padding=((2, 0), (1, 3)))],
                         ids=repr)
def test_reflection_padding2d(xp, kwargs, tmp_path):
    model = sequential((5, 6, 3), layers.ReflectionPadding2D(**{"padding": (2, 1), **kwargs}))
    assert_runs_as_predict(model, normal((5, 6, 3)), tmp_path)


@pytest.mark.parametrize("axes, shapes", [
    (1, [(5,), (5,)]), (-1, [(4, 3), (2, 3)]), (1, [(4, 3), (4, 2)]), ((2, 1), [(4, 3), (3, 5)]),
    ((1, 3), [(2, 3, 4), (5, 6, 2)]), ((3, 2), [(2, 3, 4), (5, 4)]), (-2, [(3, 4, 2), (4, 5)]),
], ids=repr)
@pytest.mark.parametrize("normalize", [False, True])
def test_dot(xp, axes, shapes, normalize, tmp_path):
    a, c = gpu_dl.Input(shapes[0]), gpu_dl.Input(shapes[1])
    model = gpu_dl.Model([a, c], layers.Dot(axes, normalize=normalize)([a, c]))
    make = lambda n: normal(shapes[0])(n) + normal(shapes[1], seed=9)(n)  # noqa: E731
    assert_runs_as_predict(model, make, tmp_path)


def test_dot_of_zero_vectors_when_normalized(xp, tmp_path):
    """A zero vector stays zero (its norm floored), so its cosine is 0, not NaN."""
    a, c = gpu_dl.Input((4,)), gpu_dl.Input((4,))
    model = gpu_dl.Model([a, c], layers.Dot(1, normalize=True)([a, c]))

    def make(n):
        x, y = normal((4,))(n)[0], normal((4,), seed=3)(n)[0]
        x[0] = 0.0
        return [x, y]
    session = assert_runs_as_predict(model, make, tmp_path)
    assert session.run(None, _feeds(session, make(3)))[0][0, 0] == 0.0


# ---------------------------------------------------------------------------------------------- image sizes
@pytest.mark.parametrize("kwargs", [
    dict(), dict(interpolation="nearest"), dict(height=3, width=13), dict(height=3, width=13, interpolation="nearest"),
    dict(height=1, width=1), dict(height=1, width=4, interpolation="nearest"), dict(height=7, width=9),
    dict(crop_to_aspect_ratio=True), dict(crop_to_aspect_ratio=True, height=4, width=12),
    dict(crop_to_aspect_ratio=True, height=7, width=3, interpolation="nearest"),
    dict(pad_to_aspect_ratio=True, fill_value=2.5), dict(pad_to_aspect_ratio=True, height=4, width=15),
    dict(pad_to_aspect_ratio=True, height=9, width=2, interpolation="nearest"),
    dict(data_format="channels_first"), dict(data_format="channels_first", crop_to_aspect_ratio=True),
    dict(data_format="channels_first", pad_to_aspect_ratio=True, height=3, width=11),
], ids=repr)
def test_resizing(xp, kwargs, tmp_path):
    kwargs = {"height": 5, "width": 4, **kwargs}
    shape = (3, 7, 9) if kwargs.get("data_format") == "channels_first" else (7, 9, 3)
    assert_runs_as_predict(sequential(shape, layers.Resizing(**kwargs)), normal(shape), tmp_path)


@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
@pytest.mark.parametrize("height, width", [(6, 5), (41, 3)], ids=repr)
def test_resizing_of_images_of_any_size(xp, interpolation, height, width, tmp_path):
    """Without an aspect-ratio mode, the file resizes images of the sizes it is run on, larger, smaller or the
    same as the target along each axis, to the bit as gpu_dl (its sampling plan made in the same float steps):
    2 rows to 41 has positions at exact halves that ONNX's Resize would round the other way."""
    model = sequential((None, None, 2), layers.Resizing(height, width, interpolation=interpolation))
    model.predict(normal((4, 4, 2))(2)[0], verbose=0)
    session = _session(exported(model, tmp_path))
    for sizes in ((6, 5), (1, 1), (2, 3), (13, 2), (3, 17), (12, 10), (7, 15), (18, 25), (41, 3)):
        x = 100 * normal(sizes + (2,))(3)[0]
        numpy.testing.assert_array_equal(session.run(None, _feeds(session, [x]))[0], model.predict(x, verbose=0))


@pytest.mark.parametrize("shape, height, width", [
    ((9, 8, 3), 5, 4), ((9, 8, 3), 9, 8), ((6, 7, 2), 6, 3), ((4, 9, 2), 6, 5), ((9, 3, 2), 4, 6), ((5, 5, 1), 7, 7),
], ids=repr)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_center_crop(xp, shape, height, width, data_format, tmp_path):
    """A centred slice of inputs at least the target's size, else the aspect-ratio window resized."""
    if data_format == "channels_first":
        shape = shape[-1:] + shape[:-1]
    layer = layers.CenterCrop(height, width, data_format=data_format)
    assert_runs_as_predict(sequential(shape, layer), normal(shape), tmp_path)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_random_crop_is_the_identity_at_inference(xp, data_format, tmp_path):
    """As gpu_dl's predict (and Keras 3.15), the input unchanged, its shape too; a layer after it sees that."""
    shape = (9, 8, 3) if data_format == "channels_last" else (3, 9, 8)
    crop = layers.RandomCrop(4, 5, data_format=data_format)
    model = sequential(shape, crop, layers.Conv2D(2, 3, strides=2, padding="same", data_format=data_format))
    session = assert_runs_as_predict(model, normal(shape), tmp_path)
    x = gpu_dl.Input(shape)
    alone = gpu_dl.Model(x, layers.RandomCrop(4, 5, data_format=data_format)(x))
    session = assert_runs_as_predict(alone, normal(shape), tmp_path)
    assert session.get_outputs()[0].shape == ["batch"] + list(shape)


@pytest.mark.parametrize("make", [
    lambda: layers.CenterCrop(5, 4), lambda: layers.CenterCrop(3, 7, data_format="channels_first"),
    lambda: layers.Resizing(5, 4, crop_to_aspect_ratio=True),
    lambda: layers.Resizing(3, 7, crop_to_aspect_ratio=True, interpolation="nearest"),
    lambda: layers.Resizing(5, 4, pad_to_aspect_ratio=True, fill_value=-1.0),
    lambda: layers.Resizing(3, 7, pad_to_aspect_ratio=True, data_format="channels_first"),
], ids=["CenterCrop", "CenterCrop-channels_first", "crop_to_aspect_ratio", "crop_to_aspect_ratio-nearest",
        "pad_to_aspect_ratio", "pad_to_aspect_ratio-channels_first"])
def test_windows_of_images_of_any_size(xp, make, tmp_path):
    """The window each layer takes, computed by the file from the sizes it is run on: images larger and smaller
    than the target, of its size, wider and taller than its aspect ratio."""
    layer = make()
    first = layer.data_format == "channels_first"
    shape = (2, None, None) if first else (None, None, 2)
    model = sequential(shape, layer)
    model.predict(normal((6, 6, 2))(2)[0], verbose=0)
    session = _session(exported(model, tmp_path))
    for sizes in ((5, 4), (3, 7), (6, 5), (9, 4), (4, 11), (2, 2), (1, 6), (17, 13), (12, 28)):
        x = normal(sizes + (2,))(3)[0]
        x = x.transpose(0, 3, 1, 2).copy() if first else x
        got, want = session.run(None, _feeds(session, [x]))[0], model.predict(x, verbose=0)
        assert got.shape == want.shape
        numpy.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------- adaptive pooling
@pytest.mark.parametrize("kind", ["Max", "Average"])
@pytest.mark.parametrize("rank, output_size, sizes", [
    (1, 3, (7,)), (1, 9, (4,)), (1, 1, (5,)), (2, (3, 4), (7, 9)), (2, (5, 2), (3, 6)), (2, 1, (4, 3)),
    (3, (2, 3, 2), (5, 7, 4)), (3, (4, 1, 3), (3, 2, 5)),
], ids=repr)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_adaptive_pooling(xp, kind, rank, output_size, sizes, data_format, tmp_path):
    """PyTorch's windows: of unequal widths, overlapping, and repeating positions where the output is the
    larger; exact for the max (the same entries)."""
    layer = getattr(layers, f"Adaptive{kind}Pooling{rank}D")(output_size, data_format=data_format)
    shape = (3,) + sizes if data_format == "channels_first" else sizes + (3,)
    model = sequential(shape, layer)
    session = assert_runs_as_predict(model, normal(shape), tmp_path)
    if kind == "Max":
        x = normal(shape)(4)[0]
        numpy.testing.assert_array_equal(session.run(None, _feeds(session, [x]))[0], model.predict(x, verbose=0))


def test_adaptive_pooling_of_unknown_sizes_is_refused(xp, tmp_path):
    model = sequential((None, 3), layers.AdaptiveAveragePooling1D(2))
    model.predict(normal((5, 3))(2)[0], verbose=0)
    with pytest.raises(ValueError, match=r"Layer 'adaptive_average_pooling1d\w*' cannot be exported to ONNX: "
                                         r"adaptive pooling of inputs of unknown spatial sizes"):
        model.export(tmp_path / "no.onnx", format="onnx")
    assert not os.listdir(tmp_path)


# ---------------------------------------------------------------------------------------------- Keras as the oracle
def _volumes(lib):
    x = lib.Input((6, 7, 5, 2))
    h = lib.layers.ZeroPadding3D(((1, 0), (0, 2), (1, 1)))(x)
    h = lib.layers.Conv3D(4, 3, strides=(2, 1, 2), padding="same", groups=2, activation="relu")(h)
    h = lib.layers.Conv3DTranspose(3, 2, strides=2, dilation_rate=1)(h)
    h = lib.layers.Cropping3D(((1, 2), (0, 1), (2, 0)))(h)
    h = lib.layers.AveragePooling3D(2, padding="same")(h)
    h = lib.layers.UpSampling3D((1, 2, 1))(h)
    a = lib.layers.GlobalMaxPooling3D()(lib.layers.MaxPooling3D(2, strides=1)(h))
    c = lib.layers.GlobalAveragePooling3D()(lib.layers.AdaptiveMaxPooling3D((2, 3, 1))(h))
    return lib.Model(x, [lib.layers.Dot(1, normalize=True)([a, c]), lib.layers.Dense(2)(a)])


def _images(lib):
    x = lib.Input((9, 11, 3))
    out = [lib.layers.Resizing(5, 7)(x), lib.layers.Resizing(13, 4, interpolation="nearest")(x),
           lib.layers.Resizing(4, 6, crop_to_aspect_ratio=True)(x),
           lib.layers.Resizing(6, 5, pad_to_aspect_ratio=True, fill_value=1.5)(x),
           lib.layers.CenterCrop(6, 4)(x), lib.layers.CenterCrop(10, 10)(x),
           lib.layers.AdaptiveAveragePooling2D((4, 5))(x)]
    flat = lib.layers.Reshape((35, 3))(out[0])
    out.append(lib.layers.Dot((1, 1))([flat, lib.layers.Reshape((35, 3))(lib.layers.Resizing(5, 7)(out[4]))]))
    return lib.Model(x, out)


@pytest.mark.parametrize("make, shape", [(_volumes, (6, 7, 5, 2)), (_images, (9, 11, 3))], ids=["volumes", "images"])
def test_the_file_computes_what_keras_predicts(on_cpu, make, shape, tmp_path):
    """Keras 3.15 (torch backend) as the oracle: the same model with the same weights predicts in Keras what the
    file gpu_dl writes gives in ONNX Runtime."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    ours, theirs = make(gpu_dl), make(keras)
    rng = numpy.random.default_rng(5)
    weights = [rng.normal(size=w.shape).astype("float32") for w in ours.get_weights()]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    x = rng.normal(size=(3,) + shape).astype("float32")
    ours.predict(x, verbose=0)
    session = _session(exported(ours, tmp_path))
    got = session.run(None, _feeds(session, [x]))
    want = theirs.predict(x, verbose=0)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        numpy.testing.assert_allclose(g, numpy.asarray(w), rtol=1e-4, atol=1e-5)


def test_pipeline(xp, tmp_path):
    """An augmentation pipeline in a model: its layers at inference, in order (RandomCrop's input unchanged)."""
    augment = layers.Pipeline([layers.RandomFlip(), layers.RandomCrop(5, 5), layers.Resizing(6, 4),
                               layers.CenterCrop(5, 3), layers.Rescaling(0.5, offset=1.0)])
    model = sequential((9, 8, 3), augment, layers.Conv2D(2, 3))
    assert_runs_as_predict(model, normal((9, 8, 3)), tmp_path)
    assert model.predict(normal((9, 8, 3))(2)[0], verbose=0).shape == (2, 3, 1, 2)
    cropped = sequential((9, 8, 3), layers.Pipeline([layers.RandomCrop(4, 4), layers.RandomFlip()]))
    session = assert_runs_as_predict(cropped, normal((9, 8, 3)), tmp_path)
    assert session.get_outputs()[0].shape == ["batch", 9, 8, 3]
    binned = sequential((9, 8, 3), layers.Pipeline([layers.RandomCrop(4, 4), layers.Discretization([0.0, 0.5])]))
    session = assert_runs_as_predict(binned, normal((9, 8, 3)), tmp_path)
    assert (session.get_outputs()[0].shape, session.get_outputs()[0].type) == (["batch", 9, 8, 3], "tensor(int32)")


@pytest.mark.parametrize("value_range", [(0, 255), (0, 1), (-1, 1)], ids=repr)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_auto_contrast(xp, value_range, data_format, tmp_path):
    """Each channel stretched over the value range; a constant channel (the second) left as it is."""
    shape = (5, 6, 3) if data_format == "channels_last" else (3, 5, 6)
    low, high = value_range

    def make(n):
        x = numpy.random.default_rng(n).uniform(low, high, size=(n,) + shape).astype("float32") * 0.6 + 0.1 * high
        x[(slice(None), 1) if data_format == "channels_first" else (Ellipsis, 1)] = 0.3 * high
        return [x]
    model = sequential(shape, layers.AutoContrast(value_range=value_range, data_format=data_format))
    session = assert_runs_as_predict(model, make, tmp_path)
    y = session.run(None, _feeds(session, make(2)))[0]
    axes = (2, 3) if data_format == "channels_first" else (1, 2)
    numpy.testing.assert_allclose(y.min(axis=axes)[:, [0, 2]], low, atol=1e-5)
    numpy.testing.assert_allclose(y.max(axis=axes)[:, [0, 2]], high, rtol=1e-5)


@pytest.mark.parametrize("make", [lambda: layers.Resizing(4, 3), lambda: layers.CenterCrop(3, 3),
                                  lambda: layers.AutoContrast()], ids=["Resizing", "CenterCrop", "AutoContrast"])
def test_image_layers_on_bytes(xp, make, tmp_path):
    """uint8 images are cast to float32, as gpu_dl casts them."""
    x = gpu_dl.Input((6, 5, 3), dtype="uint8")
    model = gpu_dl.Model(x, make()(x))
    make_bytes = lambda n: [numpy.random.default_rng(n).integers(0, 256, (n, 6, 5, 3)).astype("uint8")]  # noqa: E731
    session = assert_runs_as_predict(model, make_bytes, tmp_path, rtol=1e-4)
    assert session.get_inputs()[0].type == "tensor(uint8)"


@pytest.mark.parametrize("opset", [13, 17, 18, 21])
def test_opsets(xp, opset, tmp_path):
    """The reductions (axes an attribute before opset 18, an input from it), Pad, Einsum, Gather and Cast."""
    x = gpu_dl.Input((None, None, 3))
    h = layers.AutoContrast(value_range=(0, 1))(layers.CenterCrop(6, 5)(x))
    h = layers.Resizing(7, 4, pad_to_aspect_ratio=True)(h)
    a = layers.AdaptiveAveragePooling2D((3, 2))(layers.ReflectionPadding2D(1)(h))
    c = layers.AdaptiveMaxPooling2D((3, 2))(layers.Resizing(5, 5, interpolation="nearest")(h))
    out = layers.Dot(axes=(1, 1), normalize=True)([layers.Reshape((6, 3))(a), layers.Reshape((6, 3))(c)])
    model = gpu_dl.Model(x, out)
    assert_runs_as_predict(model, lambda n: [numpy.abs(normal((8, 9, 3))(n)[0])], tmp_path, opset_version=opset)
    assert onnx.load(str(tmp_path / "model.onnx")).opset_import[0].version == opset


# ---------------------------------------------------------------------------------------------- categories
@pytest.mark.parametrize("output_mode, shape", [
    ("int", (5,)), ("int", (4, 1)), ("int", (2, 3)), ("one_hot", (5,)), ("one_hot", (4, 1)), ("multi_hot", (5,)),
    ("count", (5,)),
], ids=repr)
def test_discretization(xp, output_mode, shape, tmp_path):
    """Values on the boundaries go to the bin above, as searchsorted(side="right"); int ids keep int32, in a
    Sequential as in a functional model."""
    model = sequential(shape, layers.Discretization(bin_boundaries=[-1.0, 0.0, 0.5, 2.0], output_mode=output_mode))

    def make(n):
        x = normal(shape)(n)[0] * 2
        x.reshape(-1)[:3] = [0.0, -1.0, 2.0][:x.size]
        return [x]
    session = assert_runs_as_predict(model, make, tmp_path, rtol=0, atol=0)
    if output_mode == "int":
        assert session.get_outputs()[0].type == "tensor(int32)"
    x = gpu_dl.Input(shape)
    functional = gpu_dl.Model(x, layers.Discretization(bin_boundaries=[0.0, 1.0], output_mode=output_mode)(x))
    assert_runs_as_predict(functional, make, tmp_path, rtol=0, atol=0)


def test_adapted_discretization(xp, tmp_path):
    layer = layers.Discretization(num_bins=5, epsilon=0.01)
    layer.adapt(normal((3,))(200)[0])
    assert_runs_as_predict(sequential((3,), layer), normal((3,)), tmp_path, rtol=0, atol=0)


@pytest.mark.parametrize("output_mode, shape", [
    ("one_hot", (5,)), ("one_hot", (3, 1)), ("one_hot", (2, 3)), ("multi_hot", (6,)), ("count", (6,)),
    ("multi_hot", (1,)),
], ids=repr)
def test_category_encoding(xp, output_mode, shape, tmp_path):
    """Integer ids, and float ids truncated as gpu_dl truncates them."""
    layer = layers.CategoryEncoding(num_tokens=7, output_mode=output_mode)
    ids = gpu_dl.Input(shape, dtype="int32")
    model = gpu_dl.Model(ids, layer(ids))
    make = lambda n: [numpy.random.default_rng(n).integers(0, 7, (n,) + shape).astype("int32")]  # noqa: E731
    assert_runs_as_predict(model, make, tmp_path, rtol=0, atol=0)
    floats = sequential(shape, layers.CategoryEncoding(num_tokens=7, output_mode=output_mode))
    make = lambda n: [numpy.random.default_rng(n).uniform(0, 6.99, (n,) + shape).astype("float32")]  # noqa: E731
    assert_runs_as_predict(floats, make, tmp_path, rtol=0, atol=0)


def test_discretization_without_boundaries_is_refused(xp, tmp_path):
    model = sequential((3,), layers.Discretization(num_bins=3))
    with pytest.raises(ValueError, match=r"cannot be exported to ONNX: a Discretization with neither bin_boundaries"):
        model.export(tmp_path / "no.onnx", format="onnx")
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("make, shape", [
    (lambda: layers.Dense(3, activation="tanh"), (5,)), (lambda: layers.Conv2D(2, 3, padding="same"), (6, 5, 2)),
], ids=["Dense", "Conv2D"])
def test_spectral_normalization(xp, make, shape, tmp_path):
    """Its layer with the kernel the training steps normalized (inference normalizes nothing)."""
    wrapped = layers.SpectralNormalization(make(), power_iterations=2)
    model = sequential(shape, wrapped, layers.Flatten(), layers.Dense(1))
    model.compile(optimizer="sgd", loss="mse")
    model.fit(normal(shape)(8)[0], numpy.ones((8, 1), "float32"), epochs=2, batch_size=4, verbose=0)
    assert_runs_as_predict(model, normal(shape), tmp_path)
