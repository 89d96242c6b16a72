"""gpu_dl.ops.image against keras.ops.image (where Keras is installed): the same calls on arrays give the same
values, dtypes and shapes; the same functional model written with either library's image ops holds the same
operations, predicts and trains the same, and its .keras files load in the other library and predict the same."""
import inspect
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import backend  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402
from keras_ops_oracle_harness import assert_same_operations_and_outputs, operations  # noqa: E402
from keras_steps import assert_training_steps_match, keras_loads_our_file, ours_loads_keras_file  # noqa: E402

TRANSFORMS = numpy.array([[1.1, 0.2, -1.3, -0.1, 0.9, 0.7, 0, 0], [0.8, -0.3, 2.0, 0.25, 1.2, -1.5, 0, 0]], "float32")
START = numpy.array([[0, 0], [8, 0], [0, 6], [8, 6]], "float32")
END = numpy.array([[1, 0.5], [7, 1], [0, 5], [8.5, 6]], "float32")


def _coordinates():
    rng = numpy.random.default_rng(5)
    c = rng.uniform(-2, 9, (4, 3, 5)).astype("float32")
    c[0] = numpy.floor(c[0] % 2)
    c[3] = 1.0
    return c


COORDINATES = _coordinates()
CONTEXT = "(called with data_format given: Keras's torch gaussian_blur reads None as channels_first)"
# (id, the call on an ops.image namespace, images (2, 7, 9, 3) channels_last and the same channels_first)
CALLS = [
    ("rgb_to_grayscale", lambda m, x, cf: m.rgb_to_grayscale(x)),
    ("rgb_to_grayscale_channels_first", lambda m, x, cf: m.rgb_to_grayscale(cf, data_format="channels_first")),
    ("rgb_to_hsv", lambda m, x, cf: m.rgb_to_hsv(x)),
    ("hsv_to_rgb", lambda m, x, cf: m.hsv_to_rgb(cf, data_format="channels_first")),
    ("resize", lambda m, x, cf: m.resize(x, (4, 13))),
    ("resize_nearest", lambda m, x, cf: m.resize(x, (11, 5), interpolation="nearest")),
    ("resize_crop", lambda m, x, cf: m.resize(x, (4, 4), crop_to_aspect_ratio=True)),
    ("resize_pad", lambda m, x, cf: m.resize(x, (4, 4), pad_to_aspect_ratio=True, fill_value=0.5)),
    ("resize_channels_first", lambda m, x, cf: m.resize(cf, (4, 5), data_format="channels_first")),
    ("resize_single", lambda m, x, cf: m.resize(x[0], (3, 8))),
    *[(f"resize_{interpolation}_{'antialias' if antialias else 'plain'}_{size[0]}x{size[1]}",
       (lambda interpolation, antialias, size: lambda m, x, cf: m.resize(
           x, size, interpolation=interpolation, antialias=antialias))(interpolation, antialias, size))
      for interpolation in ("bilinear", "bicubic") for antialias in (False, True)
      for size in ((4, 13), (11, 5), (3, 3), (16, 2))],
    ("resize_bicubic_channels_first", lambda m, x, cf: m.resize(cf, (4, 11), interpolation="bicubic",
                                                                antialias=True, data_format="channels_first")),
    *[(f"scale_and_translate_{method}_{antialias}", (lambda method, antialias: lambda m, x, cf: m.scale_and_translate(
        x, (2, 12, 5, 3), numpy.array([1.7, 0.6], "float32"), numpy.array([-0.3, 0.4], "float32"), (1, 2), method,
        antialias))(method, antialias))
      for method in ("linear", "bilinear", "cubic", "tricubic", "lanczos3", "lanczos5") for antialias in (True, False)],
    ("scale_and_translate_one_axis", lambda m, x, cf: m.scale_and_translate(
        cf, (2, 3, 7, 20), numpy.array([2.2], "float32"), numpy.array([-1.0], "float32"), (-1,), "cubic")),
    *[(f"affine_{mode}_{interpolation}", (lambda mode, interpolation: lambda m, x, cf: m.affine_transform(
        x, TRANSFORMS, interpolation=interpolation, fill_mode=mode, fill_value=0.25))(mode, interpolation))
      for mode in ("constant", "nearest", "wrap", "mirror", "reflect") for interpolation in ("bilinear", "nearest")],
    ("affine_channels_first", lambda m, x, cf: m.affine_transform(cf, TRANSFORMS, data_format="channels_first")),
    ("perspective", lambda m, x, cf: m.perspective_transform(x, START, END)),
    ("perspective_nearest", lambda m, x, cf: m.perspective_transform(x, START, END, interpolation="nearest",
                                                                     fill_value=0.3)),
    *[(f"map_coordinates_{mode}_{order}", (lambda mode, order: lambda m, x, cf: m.map_coordinates(
        x, COORDINATES, order, fill_mode=mode, fill_value=0.5))(mode, order))
      for mode in ("constant", "nearest", "wrap", "mirror", "reflect") for order in (0, 1)],
    ("crop_images", lambda m, x, cf: m.crop_images(x, 1, 2, target_height=4, target_width=5)),
    ("crop_images_sides", lambda m, x, cf: m.crop_images(x, bottom_cropping=1, right_cropping=2, target_height=4,
                                                         target_width=5)),
    ("pad_images", lambda m, x, cf: m.pad_images(x, 1, 2, target_height=12, target_width=14)),
    ("pad_images_channels_first", lambda m, x, cf: m.pad_images(cf, 1, 2, 2, 0, data_format="channels_first")),
    ("extract_patches", lambda m, x, cf: m.extract_patches(x, 2)),
    ("extract_patches_same", lambda m, x, cf: m.extract_patches(x, (3, 2), strides=(2, 3), padding="same")),
    ("extract_patches_dilated", lambda m, x, cf: m.extract_patches(x, (2, 3), strides=1, dilation_rate=2)),
    ("extract_patches_channels_first", lambda m, x, cf: m.extract_patches(cf, (2, 3), strides=(1, 2),
                                                                          data_format="channels_first")),
    ("extract_patches_3d", lambda m, x, cf: m.extract_patches_3d(x[..., None].repeat(2, -1), (2, 3, 2),
                                                                 strides=(1, 2, 3), padding="same")),
    ("gaussian_blur", lambda m, x, cf: m.gaussian_blur(x, data_format="channels_last")),
    ("gaussian_blur_5", lambda m, x, cf: m.gaussian_blur(x, (5, 5), (0.7, 1.9), data_format="channels_last")),
    ("gaussian_blur_channels_first", lambda m, x, cf: m.gaussian_blur(cf, data_format="channels_first")),
    ("sobel_edges", lambda m, x, cf: m.sobel_edges(x)),
    ("sobel_edges_channels_first", lambda m, x, cf: m.sobel_edges(cf, data_format="channels_first")),
    ("ssim", lambda m, x, cf: m.ssim(x, x[::-1] * 0.5 + x * 0.5, filter_size=5)),
    ("ssim_single", lambda m, x, cf: m.ssim(x[0], x[1], filter_size=3, max_val=2.0)),
    # the random fields are each library's own draws: with alpha 0 nothing moves
    *[(f"elastic_transform_still_{mode}", (lambda mode: lambda m, x, cf: m.elastic_transform(
        x, alpha=0.0, sigma=1.5, fill_mode=mode))(mode)) for mode in ("reflect", "constant", "mirror", "wrap")],
    ("elastic_transform_still_channels_first", lambda m, x, cf: m.elastic_transform(
        cf, alpha=0.0, interpolation="nearest", data_format="channels_first")),
]


def test_the_namespace_and_signatures_are_keras_s():
    theirs = {n for n in dir(keras.ops.image) if not n.startswith("_")}
    assert set(gpu_dl.ops.image.__all__) == theirs
    for name in sorted(theirs):
        want = inspect.signature(getattr(keras.ops.image, name)).parameters
        got = inspect.signature(getattr(gpu_dl.ops.image, name)).parameters
        assert [(p.name, p.default) for p in got.values()] == [(p.name, p.default) for p in want.values()], name


def _images(rng, dtype="float32"):
    x = rng.uniform(0, 1, (2, 7, 9, 3)).astype(dtype)
    return x, numpy.ascontiguousarray(x.transpose(0, 3, 1, 2))


@pytest.mark.parametrize("name,call", CALLS, ids=[c[0] for c in CALLS])
def test_each_call_gives_what_keras_gives(rng, name, call):
    x, cf = _images(rng)
    want = keras.ops.convert_to_numpy(call(keras.ops.image, x, cf))
    got = call(gpu_dl.ops.image, x, cf)
    assert got.shape == want.shape and got.dtype == want.dtype, name
    numpy.testing.assert_allclose(got, want, rtol=1e-5, atol=2e-6, err_msg=f"{name} {CONTEXT}")


@pytest.mark.parametrize("name,call", [
    ("rgb_to_grayscale", lambda m, x: m.rgb_to_grayscale(x)),
    ("resize", lambda m, x: m.resize(x, (4, 13))),
    ("resize_nearest", lambda m, x: m.resize(x, (11, 5), interpolation="nearest")),
    ("affine", lambda m, x: m.affine_transform(x, TRANSFORMS, fill_mode="reflect")),
    ("affine_mirror", lambda m, x: m.affine_transform(x, TRANSFORMS, fill_mode="mirror")),
    ("perspective", lambda m, x: m.perspective_transform(x, START, END)),
    ("map_coordinates", lambda m, x: m.map_coordinates(x, COORDINATES, 1, fill_value=7)),
    ("resize_bicubic", lambda m, x: m.resize(x, (13, 4), interpolation="bicubic")),
    ("resize_antialias", lambda m, x: m.resize(x, (3, 4), antialias=True)),
    ("scale_and_translate", lambda m, x: m.scale_and_translate(x, (2, 12, 5, 3), numpy.array([1.7, 0.6], "float32"),
                                                               numpy.array([-0.3, 0.4], "float32"), (1, 2), "cubic")),
    ("crop_images", lambda m, x: m.crop_images(x, 1, 2, 1, 2)),
    ("pad_images", lambda m, x: m.pad_images(x, 1, 2, 1, 2)),
])
@pytest.mark.parametrize("dtype", ["uint8", "int32"])
def test_integer_images_keep_keras_s_dtype_and_rounding(rng, name, call, dtype):
    x = rng.integers(0, 256, (2, 7, 9, 3)).astype(dtype)
    want = keras.ops.convert_to_numpy(call(keras.ops.image, x))
    got = call(gpu_dl.ops.image, x)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert numpy.abs(got.astype(int) - want.astype(int)).max() <= (0 if name in ("crop_images", "pad_images") else 1)


def image_model(lib):
    """A model mixing a convolution's features through each image op of Keras that a functional model can hold,
    pooled into class probabilities."""
    ops, L = lib.ops, lib.layers
    image = ops.image
    x = lib.Input(shape=(8, 9, 3), name="x")
    h = L.Conv2D(3, 3, padding="same", name="h")(x)
    unit = ops.sigmoid(h)
    # Keras's torch affine_transform takes one transform per image (a single one fails for a batch of several)
    per_image = ops.expand_dims(ops.mean(x, axis=(1, 2, 3)), -1) * 0.0
    maps = [image.resize(h, (5, 4)), image.resize(h, (11, 6), interpolation="nearest"),
            image.resize(h, (4, 4), crop_to_aspect_ratio=True), image.resize(h, (5, 13), interpolation="bicubic"),
            image.resize(h, (3, 4), antialias=True), image.resize(h, (4, 5), interpolation="bicubic", antialias=True),
            image.scale_and_translate(h, (None, 12, 5, 3), numpy.array([1.5, 0.6], "float32"),
                                      numpy.array([0.2, -0.4], "float32"), (1, 2), "lanczos3"),
            image.rgb_to_grayscale(h), image.elastic_transform(h, alpha=0.0, sigma=2.0),
            image.rgb_to_hsv(unit), image.hsv_to_rgb(unit),
            image.affine_transform(h, per_image + TRANSFORMS[0], fill_mode="reflect"),
            image.affine_transform(h, per_image + TRANSFORMS[1], interpolation="nearest", fill_mode="mirror"),
            image.perspective_transform(h, START, END), image.crop_images(h, 1, 2, target_height=5, target_width=4),
            image.pad_images(h, 1, 2, target_height=10, target_width=12), image.extract_patches(h, 2),
            image.extract_patches(h, (3, 2), strides=(2, 3), padding="same"),
            image.extract_patches(h, (2, 3), strides=1, dilation_rate=2),
            image.gaussian_blur(h, (5, 5), (0.8, 1.3)),
            ops.reshape(image.sobel_edges(h), (-1, 8, 9, 6))]
    pooled = [ops.mean(m, axis=(1, 2)) for m in maps] + [ops.expand_dims(image.ssim(unit, x, filter_size=3), -1)]
    return lib.Model(x, L.Dense(3, activation="softmax", name="probs")(ops.concatenate(pooled, axis=-1)),
                     name="image_model")


def test_elastic_transform_moves_pixels_as_far_as_keras_does(rng):
    """The fields are random draws (each library's): the mean change they make is alike."""
    x, _ = _images(rng)
    x = numpy.concatenate([x] * 64)
    keras.utils.set_random_seed(0)          # Keras's torch backend draws from torch's global generator
    theirs = numpy.abs(keras.ops.convert_to_numpy(keras.ops.image.elastic_transform(x, 2.0, 1.0)) - x).mean()
    ours = numpy.abs(gpu_dl.ops.image.elastic_transform(x, 2.0, 1.0, seed=5) - x).mean()
    assert ours == pytest.approx(theirs, rel=0.1)


def _data(rng, n):
    return rng.uniform(0, 1, (n, 8, 9, 3)).astype("float32"), rng.integers(0, 3, n)


def test_same_operations_and_outputs_as_keras(rng):
    backend.set_random_seed(0)
    assert_same_operations_and_outputs(keras, image_model(gpu_dl), image_model(keras), _data(rng, 5)[0])


def test_training_steps_match_keras(rng):
    backend.set_random_seed(1)
    assert_training_steps_match(keras, image_model(gpu_dl), image_model(keras), rng, (8, 9, 3), classes=3, batch=4,
                                inputs=lambda rng, batch: _data(rng, batch)[0])


def test_files_written_by_keras_load_and_predict_the_same(tmp_path, rng):
    keras.utils.set_random_seed(0)
    ours_loads_keras_file(keras, image_model(keras), *_data(rng, 9), tmp_path, load_model)


def test_keras_loads_files_written_by_gpu_dl(tmp_path, rng):
    backend.set_random_seed(2)
    theirs, written = keras_loads_our_file(keras, image_model(gpu_dl), *_data(rng, 8), tmp_path)
    assert operations(written) == operations(theirs.get_config())


def image_features(lib):
    """A composite layer whose call uses image ops (Keras runs it eagerly, gpu_dl traces it), in a model."""
    ops, L = lib.ops, lib.layers
    image = ops.image

    class ImageFeatures(L.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.conv = L.Conv2D(3, 3, padding="same")

        def call(self, x):
            h = image.resize(self.conv(x), (6, 5), interpolation="bicubic")
            # data_format given: Keras's torch gaussian_blur on tensors reads None as channels_first
            h = image.gaussian_blur(h, (3, 3), (0.8, 1.2), data_format="channels_last")
            per_image = ops.expand_dims(ops.mean(x, axis=(1, 2, 3)), -1) * 0.0 + ops.convert_to_tensor(TRANSFORMS[0])
            parts = [ops.mean(image.extract_patches(h, 2), axis=(1, 2)),
                     ops.mean(image.sobel_edges(h), axis=(1, 2, 3)),
                     ops.mean(image.affine_transform(h, per_image, fill_mode="reflect"), axis=(1, 2)),
                     ops.mean(image.rgb_to_hsv(ops.sigmoid(h)), axis=(1, 2)),
                     ops.mean(image.pad_images(image.crop_images(h, 1, 1, 1, 1), 2, 0, 0, 2), axis=(1, 2)),
                     ops.expand_dims(image.ssim(ops.sigmoid(h), image.hsv_to_rgb(ops.sigmoid(h)), filter_size=3),
                                     -1)]
            return ops.concatenate(parts, axis=-1)

    x = lib.Input(shape=(7, 9, 3), name="x")
    return lib.Model(x, L.Dense(3, activation="softmax", name="probs")(ImageFeatures(name="features")(x)))


def test_a_composite_layer_using_image_ops_trains_as_keras_s(rng):
    backend.set_random_seed(3)
    ours, theirs = image_features(gpu_dl), image_features(keras)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    assert_training_steps_match(keras, ours, theirs, rng, (7, 9, 3), classes=3, batch=5,
                                inputs=lambda rng, n: rng.uniform(0, 1, (n, 7, 9, 3)).astype("float32"))
