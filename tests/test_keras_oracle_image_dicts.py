"""Keras's dict inputs of the image layers against Keras 3 itself (where Keras is installed, torch backend): the
deterministic layers (Resizing, CenterCrop, MaxNumBoundingBoxes, the pass-through colour layers) called on the
same dict give the same boxes, labels and masks; for the random layers, Keras's own transform_bounding_boxes and
transform_segmentation_masks are given the draw gpu_dl's layer made, and agree with gpu_dl's boxes and masks."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

from gpu_dl import layers  # noqa: E402
from gpu_dl.utils.bounding_boxes import convert_format  # noqa: E402
from keras_steps import keras_numpy  # noqa: E402

H, W = 21, 29
T = keras.ops.convert_to_tensor


def theirs(x):
    return keras_numpy(keras, x)


def sample(rng, fmt, batch=3, boxes=7, height=H, width=W):
    """Images, masks, boxes in ``fmt`` (some reaching outside the image) and labels."""
    corners = rng.uniform(-4, max(height, width) + 4, (batch, boxes, 2, 2))
    xyxy = numpy.concatenate([corners.min(axis=-2), corners.max(axis=-2)], axis=-1).astype("float32")
    return {"images": rng.uniform(0, 255, (batch, height, width, 3)).astype("float32"),
            "segmentation_masks": rng.integers(0, 5, (batch, height, width, 1)).astype("float32"),
            "bounding_boxes": {"boxes": convert_format(xyxy, "xyxy", fmt, height=height, width=width),
                               "labels": rng.integers(0, 9, (batch, boxes)).astype("int32")},
            "labels": numpy.arange(batch, dtype="float32")}


def keras_copy(data):
    out = {k: T(v.copy()) for k, v in data.items() if k != "bounding_boxes"}
    out["bounding_boxes"] = {k: T(v.copy()) for k, v in data["bounding_boxes"].items()}
    return out


def assert_boxes_match(ours, want, atol=1e-4):
    numpy.testing.assert_allclose(ours["boxes"], want["boxes"], rtol=1e-5, atol=atol)
    numpy.testing.assert_array_equal(ours["labels"], want["labels"])


DETERMINISTIC = [
    ("Resizing", (13, 17), {}), ("Resizing", (40, 12), {"interpolation": "nearest"}),
    ("Resizing", (16, 16), {"crop_to_aspect_ratio": True}), ("Resizing", (15, 31), {"pad_to_aspect_ratio": True}),
    ("Resizing", (30, 10), {"pad_to_aspect_ratio": True}), ("CenterCrop", (11, 19), {}),
    ("CenterCrop", (25, 12), {}), ("MaxNumBoundingBoxes", (4,), {}), ("MaxNumBoundingBoxes", (9,), {}),
    ("RandomContrast", (0.0,), {}), ("Solarization", (), {}),
]


@pytest.mark.parametrize("fmt", ["xyxy", "rel_yxyx", "center_xywh"])
@pytest.mark.parametrize("name, args, kwargs", DETERMINISTIC)
def test_deterministic_layers_on_dicts_match_keras(rng, name, args, kwargs, fmt):
    data = sample(rng, fmt)
    ours = getattr(layers, name)(*args, bounding_box_format=fmt, **kwargs)(data)
    want = theirs(getattr(keras.layers, name)(*args, bounding_box_format=fmt, **kwargs)(keras_copy(data)))
    assert_boxes_match(ours["bounding_boxes"], want["bounding_boxes"])
    numpy.testing.assert_allclose(ours["segmentation_masks"], want["segmentation_masks"], rtol=1e-5, atol=1e-3)
    numpy.testing.assert_array_equal(ours["labels"], want["labels"])
    if name in ("Resizing", "CenterCrop", "MaxNumBoundingBoxes"):
        numpy.testing.assert_allclose(ours["images"], want["images"], rtol=1e-5, atol=1e-3)


def keras_from_our_draw(name, layer, shape):
    """The transformation dict Keras's layer would have drawn, built from what gpu_dl's layer drew."""
    if name == "RandomFlip":
        return {"flips": T(layer._saved[0].reshape(-1, 1, 1, 1)), "input_shape": shape}
    if name == "RandomPerspective":        # a twin of the same seed repeats the layer's first draw
        twin = layers.RandomPerspective(layer.factor, layer.scale, seed=layer.seed)
        apply, start, end = twin.draw(*shape[:3])
        return {"apply_perspective": T(apply), "start_points": T(start.astype("float32")),
                "end_points": T(end.astype("float32")), "input_shape": shape}
    m = layer._saved[0]
    if name == "RandomShear":
        return {"shear_factor": T(numpy.stack([m[:, 0, 1], m[:, 1, 0]], axis=1).astype("float32")),
                "input_shape": shape}
    if name == "RandomTranslation":
        return {"translations": T(-m[:, :, 2].astype("float32")), "input_shape": shape}
    if name == "RandomZoom":
        return {"width_zoom": T(m[:, 0, :1].copy()), "height_zoom": T(m[:, 1, 1:2].copy()), "input_shape": shape}
    # RandomRotation
    n = shape[0]
    angle = T(layer._degrees)
    zeros, ones = T(numpy.zeros(n, "float32")), T(numpy.ones(n, "float32"))
    k = keras.layers.RandomRotation(0.1)
    matrix = k._compute_affine_matrix(0.5, 0.5, angle, zeros, zeros, ones, zeros, zeros, shape[1], shape[2])
    return {"angle": angle, "rotation_matrix": matrix, "image_height": shape[1], "image_width": shape[2],
            "batch_size": n}


RANDOM = [
    ("RandomFlip", ("horizontal",), {}), ("RandomFlip", ("vertical",), {}), ("RandomFlip", (), {}),
    ("RandomTranslation", (0.3, 0.4), {"interpolation": "nearest"}),
    ("RandomTranslation", ((-0.2, 0.5), 0.1), {"fill_mode": "constant"}),
    ("RandomRotation", (0.2,), {"fill_mode": "constant"}), ("RandomRotation", ((0.25, 0.25),), {}),
    ("RandomZoom", (0.4,), {}), ("RandomZoom", ((-0.5, 0.3), (0.2, 0.6)), {"fill_mode": "nearest"}),
    ("RandomPerspective", (1.0, 0.4), {}), ("RandomPerspective", (0.5, 0.6), {"interpolation": "nearest"}),
    ("RandomShear", (0.4, 0.3), {}), ("RandomShear", ((0.1, 0.5), 0.0), {"fill_mode": "constant"}),
]


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("fmt", ["xyxy", "center_yxhw", "rel_xywh"])
@pytest.mark.parametrize("name, args, kwargs", RANDOM)
def test_random_layers_move_boxes_and_masks_as_keras_for_the_same_draw(rng, name, args, kwargs, fmt, seed):
    if name in ("RandomRotation", "RandomPerspective") and fmt != "xyxy":
        pytest.skip(f"Keras 3.15's {name} reads or returns the boxes as xyxy whatever its bounding_box_format")
    data = sample(rng, fmt, batch=5)
    layer = getattr(layers, name)(*args, seed=seed, bounding_box_format=fmt, **kwargs)
    ours = layer(data)
    k = getattr(keras.layers, name)(*args, bounding_box_format=fmt, **kwargs)
    given = keras_copy(data)

    def draw():         # afresh for each call: Keras's torch affine_transform changes its matrix in place
        return keras_from_our_draw(name, layer, data["images"].shape)

    want = theirs(k.transform_bounding_boxes(given["bounding_boxes"], draw(), training=True))
    assert_boxes_match(ours["bounding_boxes"], want, atol=2e-3)
    masks = theirs(k.transform_segmentation_masks(given["segmentation_masks"], draw(), training=True))
    numpy.testing.assert_allclose(ours["segmentation_masks"], masks, atol=1e-4)
    images = theirs(k.transform_images(given["images"], draw(), training=True))
    numpy.testing.assert_allclose(ours["images"], images, rtol=1e-4, atol=2e-2)


def test_random_crop_and_configs():
    # Keras 3.15's RandomCrop moves x by the crop's top and y by its left and does not clip; gpu_dl's boxes follow
    # the window (tests/test_image_dicts.py). Where the window is the whole image and the boxes lie inside it,
    # the two agree.
    data = sample(numpy.random.default_rng(0), "xyxy", boxes=3, height=10, width=10)
    data["bounding_boxes"]["boxes"] = numpy.array([[[1, 2, 5, 6], [0, 0, 3, 9], [4, 4, 8, 8]]] * 3, "float32")
    ours = layers.RandomCrop(10, 10, bounding_box_format="xyxy")(data, training=True)
    want = theirs(keras.layers.RandomCrop(10, 10, bounding_box_format="xyxy")(keras_copy(data), training=True))
    assert_boxes_match(ours["bounding_boxes"], want["bounding_boxes"])
    for key in ("images", "segmentation_masks"):
        numpy.testing.assert_array_equal(ours[key], want[key])
    for name, args in (("RandomFlip", ()), ("RandomZoom", (0.2,)), ("CenterCrop", (3, 4)),
                       ("MaxNumBoundingBoxes", (5,))):
        for fmt in (None, "yxyx"):
            ours = getattr(layers, name)(*args, bounding_box_format=fmt, name="n").get_config()
            want = getattr(keras.layers, name)(*args, bounding_box_format=fmt, name="n").get_config()
            assert set(ours) == set(want)
            assert ours.get("bounding_box_format") == want.get("bounding_box_format") == fmt
            again = getattr(layers, name).from_config(want)
            assert again.bounding_box_format == fmt and again.name == "n"


def test_a_pipeline_passes_the_dict_through_its_layers():
    data = sample(numpy.random.default_rng(4), "xywh")
    made = []
    for lib in (layers, keras.layers):
        made.append(lib.Pipeline([lib.Resizing(30, 24, bounding_box_format="xywh"),
                                  lib.RandomContrast(0.0, bounding_box_format="xywh"),
                                  lib.MaxNumBoundingBoxes(9, bounding_box_format="xywh")]))
    ours = made[0](data)
    want = theirs(made[1](keras_copy(data)))
    assert ours["bounding_boxes"]["boxes"].shape == (3, 9, 4)
    assert_boxes_match(ours["bounding_boxes"], want["bounding_boxes"])
    numpy.testing.assert_allclose(ours["images"], want["images"], rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("name", ["MixUp", "CutMix"])
def test_mixing_layers_mix_labels_as_keras_for_the_same_draw(rng, name):
    data = sample(rng, "xyxy", batch=6)
    data.pop("bounding_boxes")
    data["labels"] = numpy.eye(6, 4, dtype="float32")[rng.integers(0, 4, 6)]
    layer = getattr(layers, name)(seed=3)
    ours = layer(data)
    transformation = {"mix_weight": T(numpy.asarray(layer.last_mix["mix_weight"], "float32")),
                      "permutation_order": T(layer.last_mix["permutation_order"])}
    k = getattr(keras.layers, name)()
    numpy.testing.assert_allclose(ours["labels"], theirs(k.transform_labels(T(data["labels"]), transformation)),
                                  rtol=1e-6, atol=1e-7)
    if name == "CutMix":
        transformation["batch_masks"] = T(layer._saved[0])
        want = theirs(k.transform_segmentation_masks(T(data["segmentation_masks"]), transformation))
        numpy.testing.assert_array_equal(ours["segmentation_masks"], want)


@pytest.mark.parametrize("name, args, kwargs", [("Resizing", (13, 40), {"crop_to_aspect_ratio": True}),
                                                ("CenterCrop", (30, 12), {}), ("MaxNumBoundingBoxes", (3,), {})])
def test_one_image_dicts_match_keras(name, args, kwargs):
    data = sample(numpy.random.default_rng(6), "center_xywh", batch=1)
    one = {"images": data["images"][0], "segmentation_masks": data["segmentation_masks"][0],
           "bounding_boxes": {k: v[0] for k, v in data["bounding_boxes"].items()}}
    ours = getattr(layers, name)(*args, bounding_box_format="center_xywh", **kwargs)(one)
    want = theirs(getattr(keras.layers, name)(*args, bounding_box_format="center_xywh", **kwargs)(keras_copy(one)))
    assert ours["bounding_boxes"]["boxes"].ndim == 2 and ours["images"].shape == want["images"].shape
    assert_boxes_match(ours["bounding_boxes"], want["bounding_boxes"])
    numpy.testing.assert_allclose(ours["segmentation_masks"], want["segmentation_masks"], atol=1e-5)


def test_keras_files_with_box_formats_load_both_ways(tmp_path):
    from gpu_dl.models import load_model
    L = keras.layers
    model = keras.Sequential([keras.Input((8, 8, 3)), L.RandomFlip(bounding_box_format="xyxy"),
                              L.MaxNumBoundingBoxes(3, bounding_box_format="yxyx"), L.Flatten(), L.Dense(2)])
    model.save(tmp_path / "k.keras")
    ours = load_model(tmp_path / "k.keras")
    assert [layer.bounding_box_format for layer in ours.layers[:2]] == ["xyxy", "yxyx"]
    assert ours.layers[1].max_number == 3
    x = numpy.random.default_rng(0).uniform(0, 1, (2, 8, 8, 3)).astype("float32")
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs(model.predict(x, verbose=0)), rtol=1e-5,
                                  atol=1e-6)
    ours.save(tmp_path / "again.keras")
    again = keras.models.load_model(tmp_path / "again.keras")
    assert [layer.bounding_box_format for layer in again.layers[:2]] == ["xyxy", "yxyx"]
