"""Keras's dict inputs of the image preprocessing layers (gpu_dl.layers.image_dicts), on NumPy and CuPy: a box
follows the transformed image (a filled rectangle is transformed with its box, and the box is compared with the
extent of the transformed rectangle), masks move with the images' draw, seeded draws repeat, the colour layers
pass boxes and masks through, MaxNumBoundingBoxes pads and cuts, and bad input gets clear errors. Keras's own
transforms are the oracle in tests/test_keras_oracle_image_dicts.py."""
import numpy
import pytest

from gpu_dl import layers
from gpu_dl.backend import to_numpy

H, W = 24, 30


def rectangle(top, left, bottom, right, height=H, width=W, batch=1):
    """Images (batch, height, width, 1) of zeros with ones on rows top..bottom-1, columns left..right-1, and the
    rectangle's xyxy box (pixel edges)."""
    images = numpy.zeros((batch, height, width, 1), dtype="float32")
    images[:, top:bottom, left:right] = 1
    boxes = numpy.tile(numpy.array([[[left, top, right, bottom]]], dtype="float32"), (batch, 1, 1))
    return images, boxes


def extent(image):
    """The xyxy box (pixel edges) of the nonzero pixels of one (h, w, 1) image."""
    rows, cols = numpy.nonzero(to_numpy(image)[..., 0] > 0.5)
    return numpy.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype="float64")


def as_dict(xp, images, boxes, labels=None):
    labels = numpy.arange(1, boxes.shape[0] * boxes.shape[1] + 1).reshape(boxes.shape[:2]) if labels is None else labels
    return {"images": xp.asarray(images), "labels": xp.asarray(numpy.arange(images.shape[0])),
            "bounding_boxes": {"boxes": xp.asarray(boxes), "labels": xp.asarray(labels)},
            "segmentation_masks": xp.asarray(images.astype("int32"))}


FOLLOWERS = [
    ("flip-h", lambda s: layers.RandomFlip("horizontal", seed=s, bounding_box_format="xyxy"), 0),
    ("flip-v", lambda s: layers.RandomFlip("vertical", seed=s, bounding_box_format="xyxy"), 0),
    ("flip-hv", lambda s: layers.RandomFlip(seed=s, bounding_box_format="xyxy"), 0),
    ("translate", lambda s: layers.RandomTranslation((0.125, 0.125), (-0.2, -0.2), fill_mode="constant",
                                                     interpolation="nearest", seed=s, bounding_box_format="xyxy"), 0),
    ("translate-random", lambda s: layers.RandomTranslation(0.2, 0.2, fill_mode="constant", interpolation="nearest",
                                                            seed=s, bounding_box_format="xyxy"), 1),
    ("rotate", lambda s: layers.RandomRotation((0.25, 0.25), fill_mode="constant", interpolation="nearest", seed=s,
                                               bounding_box_format="xyxy"), 1),
    ("zoom-in", lambda s: layers.RandomZoom((-0.5, -0.5), fill_mode="constant", interpolation="nearest", seed=s,
                                            bounding_box_format="xyxy"), 1),
    ("zoom-out", lambda s: layers.RandomZoom((0.5, 0.5), (1.0, 1.0), fill_mode="constant", interpolation="nearest",
                                             seed=s, bounding_box_format="xyxy"), 1.5),
    ("shear", lambda s: layers.RandomShear(0.3, 0.2, fill_mode="constant", interpolation="nearest", seed=s,
                                           bounding_box_format="xyxy"), 1.5),
    ("perspective", lambda s: layers.RandomPerspective(1.0, 0.3, interpolation="nearest", seed=s,
                                                       bounding_box_format="xyxy"), 1.5),
    ("resize", lambda s: layers.Resizing(12, 45, interpolation="nearest", bounding_box_format="xyxy"), 1.5),
    ("resize-crop", lambda s: layers.Resizing(12, 12, interpolation="nearest", crop_to_aspect_ratio=True,
                                              bounding_box_format="xyxy"), 1),
    ("resize-pad", lambda s: layers.Resizing(20, 10, interpolation="nearest", pad_to_aspect_ratio=True,
                                             bounding_box_format="xyxy"), 1),
    ("center-crop", lambda s: layers.CenterCrop(16, 20, bounding_box_format="xyxy"), 0),
    ("random-crop", lambda s: layers.RandomCrop(17, 21, seed=s, bounding_box_format="xyxy"), 0),
]


@pytest.mark.parametrize("name, make, tolerance", FOLLOWERS, ids=[f[0] for f in FOLLOWERS])
def test_a_box_follows_its_rectangle(xp, name, make, tolerance):
    images, boxes = rectangle(7, 9, 15, 21, H, H if name in ("rotate", "shear") else W, batch=5)
    layer = make(3)
    out = layer(as_dict(xp, images, boxes))
    got = to_numpy(out["bounding_boxes"]["boxes"])
    assert got.shape == (5, 1, 4) and got.dtype == numpy.float32
    for i in range(5):
        numpy.testing.assert_allclose(got[i, 0], extent(out["images"][i]), atol=tolerance + 1e-4)
    assert (to_numpy(out["bounding_boxes"]["labels"]) == numpy.arange(1, 6)[:, None]).all()
    numpy.testing.assert_array_equal(to_numpy(out["labels"]), numpy.arange(5))
    # nearest images (or plain slices) and their masks sample the same pixels
    numpy.testing.assert_array_equal(to_numpy(out["segmentation_masks"]), to_numpy(out["images"]))


@pytest.mark.parametrize("name, make, tolerance", FOLLOWERS, ids=[f[0] for f in FOLLOWERS])
def test_one_draw_for_images_boxes_and_masks_and_seeds_repeat(xp, name, make, tolerance):
    images, boxes = rectangle(5, 6, 12, 20, batch=4)
    first, second, plain = make(7), make(7), make(7)
    a, b = first(as_dict(xp, images, boxes)), second(as_dict(xp, images, boxes))
    for key in ("images", "segmentation_masks"):
        numpy.testing.assert_array_equal(to_numpy(a[key]), to_numpy(b[key]))
    numpy.testing.assert_array_equal(to_numpy(a["bounding_boxes"]["boxes"]), to_numpy(b["bounding_boxes"]["boxes"]))
    # the dict call draws what the array call draws, once
    numpy.testing.assert_array_equal(to_numpy(a["images"]), to_numpy(plain(xp.asarray(images))))
    if getattr(first, "draws", False):
        assert first.generator.state.numpy().tolist() == plain.generator.state.numpy().tolist()


def test_unbatched_dicts_and_channels_first(xp):
    images, boxes = rectangle(3, 4, 10, 12, batch=1)
    layer = layers.RandomFlip("horizontal", seed=1, bounding_box_format="xyxy")
    seen = set()
    for _ in range(8):
        out = layer({"images": xp.asarray(images[0]), "bounding_boxes": {"boxes": xp.asarray(boxes[0]),
                                                                         "labels": xp.asarray([4])},
                     "segmentation_masks": xp.asarray(images[0])})
        assert out["images"].shape == (H, W, 1) and out["bounding_boxes"]["boxes"].shape == (1, 4)
        assert out["bounding_boxes"]["labels"].shape == (1,)
        numpy.testing.assert_array_equal(to_numpy(out["segmentation_masks"]), to_numpy(out["images"]))
        numpy.testing.assert_allclose(to_numpy(out["bounding_boxes"]["boxes"])[0], extent(out["images"]))
        seen.add(float(to_numpy(out["bounding_boxes"]["boxes"])[0, 0]))
    assert seen == {4.0, W - 12.0}                 # both outcomes of the draw
    first = numpy.ascontiguousarray(images.transpose(0, 3, 1, 2))
    layer = layers.RandomTranslation(0.0, (0.2, 0.2), fill_mode="constant", interpolation="nearest",
                                     data_format="channels_first", bounding_box_format="xyxy")
    out = layer({"images": xp.asarray(first), "bounding_boxes": {"boxes": xp.asarray(boxes),
                                                                "labels": xp.asarray([[1]])},
                 "segmentation_masks": xp.asarray(first)})
    assert out["images"].shape == first.shape
    numpy.testing.assert_array_equal(to_numpy(out["segmentation_masks"]), to_numpy(out["images"]))
    numpy.testing.assert_allclose(to_numpy(out["bounding_boxes"]["boxes"])[0, 0],
                                  extent(to_numpy(out["images"])[0].transpose(1, 2, 0)))


def test_other_formats_and_boxes_pushed_out(xp):
    images, boxes = rectangle(2, 2, 8, 8, batch=2)
    boxes = numpy.concatenate([boxes, numpy.array([[[25, 3, 29, 9]]] * 2, dtype="float32")], axis=1)
    layer = layers.RandomTranslation(0.0, (0.5, 0.5), fill_mode="constant", interpolation="nearest",
                                     bounding_box_format="rel_center_xywh")
    from gpu_dl.utils.bounding_boxes import convert_format
    given = convert_format(boxes, "xyxy", "rel_center_xywh", height=H, width=W)
    out = layer({"images": xp.asarray(images), "bounding_boxes": {"boxes": xp.asarray(given),
                                                                   "labels": xp.asarray([[1, 2], [3, 4]])}})
    got = convert_format(to_numpy(out["bounding_boxes"]["boxes"]), "rel_center_xywh", "xyxy", height=H, width=W)
    numpy.testing.assert_allclose(got[:, 0], [[17, 2, 23, 8]] * 2, atol=1e-4)
    # the second box leaves the image: clipped to nothing, label -1
    numpy.testing.assert_array_equal(to_numpy(out["bounding_boxes"]["labels"]), [[1, -1], [3, -1]])


def test_inference_leaves_boxes_and_masks_of_random_layers_alone(xp):
    images, boxes = rectangle(2, 3, 9, 11, batch=2)
    for layer in (layers.RandomFlip(bounding_box_format="xyxy"), layers.RandomRotation(0.3, bounding_box_format="xywh"),
                  layers.RandomCrop(10, 10, bounding_box_format="xyxy")):
        given = as_dict(xp, images, boxes)
        out = layer(given, training=False)
        numpy.testing.assert_array_equal(to_numpy(out["images"]), images)
        numpy.testing.assert_array_equal(to_numpy(out["bounding_boxes"]["boxes"]), boxes)
        numpy.testing.assert_array_equal(to_numpy(out["segmentation_masks"]), images.astype("int32"))
        assert out is not given and given["images"] is not out["bounding_boxes"]     # a new dict



def test_elastic_transform_deforms_masks_with_the_images_fields_and_refuses_boxes(xp):
    # With nearest interpolation a mask equal to the images must come out equal to them: one draw of the fields
    # for both, and Keras's clip to value_range and compute dtype on the masks too.
    rng = numpy.random.default_rng(5)
    images = rng.integers(0, 4, (3, 13, 17, 1)).astype("float32") * 60
    layer = layers.RandomElasticTransform(scale=1.0, interpolation="nearest", value_range=(0, 150), seed=2)
    out = layer({"images": xp.asarray(images), "segmentation_masks": xp.asarray(images.astype("int32"))},
                training=True)
    assert not numpy.array_equal(to_numpy(out["images"]), numpy.clip(images, 0, 150))     # it did deform
    numpy.testing.assert_array_equal(to_numpy(out["segmentation_masks"]), to_numpy(out["images"]))
    assert out["segmentation_masks"].dtype == numpy.float32
    same = layer({"images": xp.asarray(images), "segmentation_masks": xp.asarray(images)}, training=False)
    numpy.testing.assert_array_equal(to_numpy(same["segmentation_masks"]), images)
    with pytest.raises(ValueError, match="does not transform bounding boxes"):
        layers.RandomElasticTransform(bounding_box_format="xyxy")(as_dict(xp, *rectangle(2, 3, 9, 11)))

COLOUR = [lambda: layers.RandomContrast(0.5, seed=1), lambda: layers.RandomBrightness(0.3, seed=1),
          lambda: layers.RandomHue(0.3, seed=1), lambda: layers.RandomSaturation(0.4, seed=1),
          lambda: layers.RandomGrayscale(0.5, seed=1), lambda: layers.RandomInvert(seed=1),
          lambda: layers.RandomPosterization(3, seed=1), lambda: layers.Solarization(0.5, seed=1),
          lambda: layers.AutoContrast(), lambda: layers.Equalization(), lambda: layers.RandomSharpness(0.4, seed=1),
          lambda: layers.RandomGaussianBlur(seed=1), lambda: layers.RandomColorDegeneration(0.4, seed=1),
          lambda: layers.RandomColorJitter(brightness_factor=0.2, seed=1), lambda: layers.RandomErasing(seed=1),
          lambda: layers.RandAugment(seed=1), lambda: layers.AugMix(seed=1)]


@pytest.mark.parametrize("make", COLOUR, ids=lambda m: type(m()).__name__)
def test_colour_and_tone_layers_pass_boxes_and_masks_through(xp, make):
    rng = numpy.random.default_rng(3)
    images = rng.uniform(0, 255, (3, 9, 11, 3)).astype("float32")
    boxes = rng.uniform(0, 9, (3, 5, 4)).astype("float64")
    masks = rng.integers(0, 4, (3, 9, 11, 1)).astype("int32")
    first, second = make(), make()
    second.bounding_box_format = first.bounding_box_format = "center_yxhw"
    out = first({"images": xp.asarray(images), "bounding_boxes": {"boxes": xp.asarray(boxes),
                                                                   "labels": xp.asarray(numpy.ones((3, 5), "int32"))},
                 "segmentation_masks": xp.asarray(masks), "labels": xp.asarray([0, 1, 2])})
    if not isinstance(first, layers.AugMix):     # two AugMix layers of one seed draw apart (its parts' seeds)
        numpy.testing.assert_array_equal(to_numpy(out["images"]), to_numpy(second(xp.asarray(images))))
    assert out["images"].shape == images.shape
    got = out["bounding_boxes"]["boxes"]
    assert got.dtype == numpy.float32            # Keras's densified boxes
    numpy.testing.assert_array_equal(to_numpy(got), boxes.astype("float32"))
    numpy.testing.assert_array_equal(to_numpy(out["segmentation_masks"]), masks)
    numpy.testing.assert_array_equal(to_numpy(out["labels"]), [0, 1, 2])


def test_max_num_bounding_boxes_pads_and_cuts(xp):
    images = numpy.zeros((2, 6, 7, 3), dtype="float32")
    boxes = numpy.arange(2 * 3 * 4, dtype="float32").reshape(2, 3, 4)
    labels = numpy.array([[1, 2, 3], [4, 5, 6]], dtype="int32")
    data = {"images": xp.asarray(images), "bounding_boxes": {"boxes": xp.asarray(boxes), "labels": xp.asarray(labels)}}
    out = layers.MaxNumBoundingBoxes(5, bounding_box_format="xyxy")(data)
    want = numpy.concatenate([boxes, -numpy.ones((2, 2, 4), "float32")], axis=1)
    numpy.testing.assert_array_equal(to_numpy(out["bounding_boxes"]["boxes"]), want)
    numpy.testing.assert_array_equal(to_numpy(out["bounding_boxes"]["labels"]), [[1, 2, 3, -1, -1], [4, 5, 6, -1, -1]])
    assert out["bounding_boxes"]["labels"].dtype == numpy.int32
    out = layers.MaxNumBoundingBoxes(2, fill_value=0, bounding_box_format="xyxy")(data)
    numpy.testing.assert_array_equal(to_numpy(out["bounding_boxes"]["boxes"]), boxes[:, :2])
    numpy.testing.assert_array_equal(to_numpy(out["images"]), images)
    one = layers.MaxNumBoundingBoxes(4, bounding_box_format="xyxy")(
        {"images": xp.asarray(images[0]), "bounding_boxes": {"boxes": xp.asarray(boxes[0]),
                                                             "labels": xp.asarray(labels[0])}})
    assert one["bounding_boxes"]["boxes"].shape == (4, 4) and one["bounding_boxes"]["labels"].shape == (4,)
    layer = layers.MaxNumBoundingBoxes(3, fill_value=-2, bounding_box_format="xywh", name="m")
    assert layer.get_config() == {"name": "m", "trainable": True, "dtype": "float32", "data_format": "channels_last",
                                  "bounding_box_format": "xywh", "max_number": 3}
    numpy.testing.assert_array_equal(to_numpy(layer(xp.asarray(images))), images)
    with pytest.raises(ValueError, match="max_number must be a positive integer"):
        layers.MaxNumBoundingBoxes(0)


def test_clear_errors(xp):
    images, boxes = rectangle(2, 2, 5, 5, batch=2)
    with pytest.raises(ValueError, match="didn't specify a bounding box format"):
        layers.RandomFlip()(as_dict(xp, images, boxes))
    with pytest.raises(ValueError, match="needs an 'images' entry"):
        layers.RandomFlip()({"bounding_boxes": {}})
    with pytest.raises(ValueError, match="keys 'boxes' and 'labels'"):
        layers.RandomFlip(bounding_box_format="xyxy")({"images": images, "bounding_boxes": {"boxes": boxes}})
    with pytest.raises(ValueError, match=r"\(batch_size, num_boxes, 4\)"):
        layers.RandomFlip(bounding_box_format="xyxy")({"images": images, "bounding_boxes": {
            "boxes": boxes[0], "labels": numpy.ones(1)}})
    with pytest.raises(ValueError, match="one label per box"):
        layers.RandomFlip(bounding_box_format="xyxy")({"images": images, "bounding_boxes": {
            "boxes": boxes, "labels": numpy.ones((2, 3))}})
    with pytest.raises(ValueError, match="'segmentation_masks' must have the images' batch and spatial sizes"):
        layers.RandomFlip()({"images": images, "segmentation_masks": images[:, :3]})
    with pytest.raises(ValueError, match="rank 3 .* or 4"):
        layers.RandomFlip()({"images": images[0, 0]})
    with pytest.raises(ValueError, match="ragged"):
        layers.RandomFlip(bounding_box_format="xyxy")({"images": images, "bounding_boxes": {
            "boxes": [[[1, 2, 3, 4]], []], "labels": [[1], []]}})


def test_host_masks_and_boxes_with_device_images(xp):
    rng = numpy.random.default_rng(5)
    images = rng.uniform(0, 1, (4, 6, 7, 3)).astype("float32")
    masks = rng.integers(0, 3, (4, 6, 7, 1)).astype("int32")
    for layer in (layers.CutMix(seed=2), layers.RandomFlip(seed=2, bounding_box_format="xyxy")):
        data = {"images": xp.asarray(images), "segmentation_masks": masks}
        if isinstance(layer, layers.RandomFlip):
            data["bounding_boxes"] = {"boxes": numpy.array([[[1, 1, 3, 3]]] * 4, "float32"),
                                      "labels": numpy.ones((4, 1), "int32")}
        out = layer(data)
        assert type(out["segmentation_masks"]) is type(out["images"])       # on the images' device
        got = to_numpy(out["segmentation_masks"])
        moved = to_numpy(out["images"]) != images
        # each mask pixel comes from the same image as the image's pixel did
        numpy.testing.assert_array_equal(got[~moved[..., :1]], masks[~moved[..., :1]])
        assert moved.any()
