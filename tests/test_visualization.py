"""gpu_dl.visualization against plain NumPy expectations: boxes drawn where their corners say in every box format,
masks painted and blended per pixel, galleries laid out with the images, titles and legends asked for, and the
errors bad input gets. NumPy and CuPy inputs alike (the drawing happens on the host)."""
import importlib.util
import sys

import numpy
import pytest

from gpu_dl import visualization

# Boxes are drawn with OpenCV (the visualization extra); masks and plain galleries need only NumPy and matplotlib.
needs_opencv = pytest.mark.skipif(importlib.util.find_spec("cv2") is None, reason="OpenCV is not installed")


@pytest.fixture
def plt():
    pyplot = pytest.importorskip("matplotlib.pyplot")
    pyplot.switch_backend("Agg")
    pyplot.close("all")
    yield pyplot
    pyplot.close("all")


def outline(shape, x1, y1, x2, y2, color):
    """A zero uint8 image (height, width, 3) with the one-pixel outline of the box with these corners."""
    image = numpy.zeros(shape, dtype="uint8")
    image[y1, x1:x2 + 1] = image[y2, x1:x2 + 1] = color
    image[y1:y2 + 1, x1] = image[y1:y2 + 1, x2] = color
    return image


@needs_opencv
def test_boxes_are_one_pixel_outlines_at_their_corners(xp):
    images = xp.zeros((2, 16, 32, 3), dtype="uint8")
    boxes = {"boxes": xp.asarray([[[4, 2, 24, 12], [1, 1, 30, 14]], [[3.7, 5.2, 9.9, 13.0], [0, 0, 5, 5]]],
                                 dtype="float32"),
             "labels": xp.asarray([[0, -1], [2, 1]])}
    drawn = visualization.draw_bounding_boxes(images, boxes, "xyxy", color=(10, 20, 30), line_thickness=1)
    assert isinstance(drawn, numpy.ndarray) and drawn.dtype == numpy.uint8 and drawn.shape == (2, 16, 32, 3)
    numpy.testing.assert_array_equal(drawn[0], outline((16, 32, 3), 4, 2, 24, 12, (10, 20, 30)))   # -1: not drawn
    expected = numpy.maximum(outline((16, 32, 3), 3, 5, 9, 13, (10, 20, 30)),      # corners truncated to pixels
                             outline((16, 32, 3), 0, 0, 5, 5, (10, 20, 30)))
    numpy.testing.assert_array_equal(drawn[1], expected)
    assert not bool(images.any())                                                   # the input is left alone


BOX_FORMATS = {      # one box, x 4..24 and y 2..12 of a 16 x 32 image, in each format (exact in float32)
    "xyxy": [4, 2, 24, 12], "yxyx": [2, 4, 12, 24], "xywh": [4, 2, 20, 10], "center_xywh": [14, 7, 20, 10],
    "center_yxhw": [7, 14, 10, 20], "rel_xyxy": [0.125, 0.125, 0.75, 0.75], "rel_yxyx": [0.125, 0.125, 0.75, 0.75],
    "rel_xywh": [0.125, 0.125, 0.625, 0.625], "rel_center_xywh": [0.4375, 0.4375, 0.625, 0.625],
}


@needs_opencv
@pytest.mark.parametrize("box_format", list(BOX_FORMATS) + ["Center_XYWH"])
def test_every_box_format_draws_the_same_box(box_format):
    boxes = {"boxes": numpy.asarray([[BOX_FORMATS[box_format.lower()]]], dtype="float32"),
             "labels": numpy.zeros((1, 1))}
    drawn = visualization.draw_bounding_boxes(numpy.zeros((1, 16, 32, 3), "uint8"), boxes, box_format, color=(9, 9, 9),
                                              line_thickness=1)
    numpy.testing.assert_array_equal(drawn[0], outline((16, 32, 3), 4, 2, 24, 12, (9, 9, 9)))


@needs_opencv
def test_float_images_are_scaled_or_clipped_to_uint8(rng):
    boxes = {"boxes": numpy.zeros((2, 0, 4)), "labels": numpy.zeros((2, 0))}
    unit = rng.uniform(-0.2, 1.0, (2, 5, 6, 3)).astype("float32")
    numpy.testing.assert_array_equal(visualization.draw_bounding_boxes(unit, boxes, "xyxy"),
                                     (numpy.clip(unit, 0, 1) * 255).astype("uint8"))
    wide = rng.uniform(-20, 300, (2, 5, 6, 3))
    numpy.testing.assert_array_equal(visualization.draw_bounding_boxes(wide, boxes, "xyxy"),
                                     numpy.clip(wide, 0, 255).astype("uint8"))


@needs_opencv
def test_labels_are_written_from_the_class_mapping(rng):
    images = numpy.zeros((1, 60, 80, 3), "uint8")
    boxes = {"boxes": numpy.asarray([[[10, 40, 70, 55]]], "float32"), "labels": numpy.asarray([[3]])}
    plain = visualization.draw_bounding_boxes(images, boxes, "xyxy")
    named = visualization.draw_bounding_boxes(images, boxes, "xyxy", class_mapping={3: "cat"})
    written = numpy.argwhere((named != plain).any(axis=-1))
    assert len(written) > 20
    assert written[:, 0].max() < 40 - 8 + 2 and written[:, 1].min() >= 10          # above the box, from its left
    scored = visualization.draw_bounding_boxes(images, dict(boxes, confidences=numpy.asarray([[0.5]])), "xyxy",
                                               class_mapping={3: "cat"})
    assert numpy.argwhere((scored != plain).any(axis=-1))[:, 1].max() > written[:, 1].max()   # "cat | 0.50"
    other = visualization.draw_bounding_boxes(images, boxes, "xyxy", class_mapping={2: "dog"})
    numpy.testing.assert_array_equal(other, plain)


@needs_opencv
def test_channels_first_images_come_back_channels_first(xp, rng):
    images = rng.integers(0, 256, (2, 12, 20, 3)).astype("uint8")
    boxes = {"boxes": rng.uniform(0, 20, (2, 3, 4)).astype("float32"), "labels": rng.integers(-1, 2, (2, 3))}
    last = visualization.draw_bounding_boxes(images, boxes, "xywh", class_mapping={0: "a"})
    first = visualization.draw_bounding_boxes(xp.asarray(images.transpose(0, 3, 1, 2)),
                                              {k: xp.asarray(v) for k, v in boxes.items()}, "xywh",
                                              class_mapping={0: "a"}, data_format="channels_first")
    numpy.testing.assert_array_equal(first, last.transpose(0, 3, 1, 2))


@needs_opencv
def test_draw_bounding_boxes_refuses_bad_input():
    images = numpy.zeros((2, 8, 8, 3), "uint8")
    good = {"boxes": numpy.zeros((2, 1, 4)), "labels": numpy.zeros((2, 1))}
    with pytest.raises(ValueError, match="batched 4D"):
        visualization.draw_bounding_boxes(images[0], good, "xyxy")
    with pytest.raises(TypeError, match="should be a dict"):
        visualization.draw_bounding_boxes(images, [good["boxes"]], "xyxy")
    with pytest.raises(ValueError, match="'boxes' and 'labels'"):
        visualization.draw_bounding_boxes(images, {"boxes": good["boxes"]}, "xyxy")
    with pytest.raises(ValueError, match="Supported formats"):
        visualization.draw_bounding_boxes(images, good, "xxyy")
    with pytest.raises(ValueError, match="last dimension of 4"):
        visualization.draw_bounding_boxes(images, {"boxes": numpy.zeros((2, 1, 3)), "labels": good["labels"]}, "xyxy")
    with pytest.raises(ValueError, match=r"\(batch, num_boxes, 4\)"):
        visualization.draw_bounding_boxes(images, {"boxes": numpy.zeros((1, 1, 4)), "labels": numpy.zeros((1, 1))},
                                          "xyxy")
    with pytest.raises(ValueError, match="data_format"):
        visualization.draw_bounding_boxes(images, good, "xyxy", data_format="channels_middle")


def test_missing_opencv_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(ImportError, match=r"gpu_dl\[visualization\]"):
        visualization.draw_bounding_boxes(numpy.zeros((1, 4, 4, 3)), {"boxes": numpy.zeros((1, 0, 4)),
                                                                       "labels": numpy.zeros((1, 0))}, "xyxy")


def expected_masks(images, masks, colors, alpha, ignore_index=-1):
    """Per-pixel blend, written with boolean indexing: class c's pixels get colour c, blended in float32."""
    images = images.astype("float32")
    painted = images.copy()
    for c, color in enumerate(colors):
        painted[masks == c] = color
    blended = images * numpy.float32(1 - alpha) + painted * numpy.float32(alpha)
    blended[masks == ignore_index] = images[masks == ignore_index]
    return blended.astype("uint8")


def test_masks_are_painted_and_blended_per_pixel(xp, rng):
    images = rng.integers(0, 256, (2, 7, 9, 3)).astype("uint8")
    masks = rng.integers(-1, 6, (2, 7, 9, 1))
    palette = [[(c * p) % 255 for p in (2**25 - 1, 2**15 - 1, 2**21 - 1)] for c in range(4)]
    assert palette[0] == [0, 0, 0] and palette[1] == [(2**25 - 1) % 255, (2**15 - 1) % 255, (2**21 - 1) % 255]
    drawn = visualization.draw_segmentation_masks(xp.asarray(images), xp.asarray(masks), num_classes=4, alpha=0.6)
    assert isinstance(drawn, numpy.ndarray) and drawn.dtype == numpy.uint8
    numpy.testing.assert_array_equal(drawn, expected_masks(images, masks[..., 0], palette, 0.6))
    # ids 4 and 5 are beyond num_classes: not painted, the image blended with itself.
    unpainted = masks[..., 0] >= 4
    assert numpy.abs(drawn[unpainted].astype(int) - images[unpainted]).max() <= 1
    # Without blending: the colours themselves, float32; unpainted pixels keep the image.
    flat = visualization.draw_segmentation_masks(images, masks, num_classes=4, blend=False)
    assert flat.dtype == numpy.float32
    for c in range(4):
        of_class = masks[..., 0] == c
        numpy.testing.assert_array_equal(flat[of_class], numpy.broadcast_to(palette[c], (of_class.sum(), 3)))
    kept = unpainted | (masks[..., 0] == -1)
    numpy.testing.assert_array_equal(flat[kept], images[kept])


def test_masks_options_layouts_and_defaults(rng):
    images = rng.integers(0, 256, (3, 5, 6, 3)).astype("uint8")
    masks = rng.integers(0, 3, (3, 5, 6))
    colors = {0: (255, 0, 0), 1: (0, 255, 0), 2: (1, 2, 3)}
    drawn = visualization.draw_segmentation_masks(images, masks, num_classes=3, color_mapping=colors, alpha=0.25,
                                                  ignore_index=0)
    numpy.testing.assert_array_equal(drawn, expected_masks(images, masks, list(colors.values()), 0.25, 0))
    same = visualization.draw_segmentation_masks(images, masks[..., None], num_classes=3, color_mapping=colors,
                                                 alpha=0.25, ignore_index=0)
    numpy.testing.assert_array_equal(same, drawn)
    # channels_first in, channels_last out (as Keras); masks (batch, 1, h, w) or (batch, h, w).
    for layout in (masks[:, None], masks):
        first = visualization.draw_segmentation_masks(images.transpose(0, 3, 1, 2), layout, num_classes=3,
                                                      color_mapping=colors, alpha=0.25, ignore_index=0,
                                                      data_format="channels_first")
        numpy.testing.assert_array_equal(first, drawn)
    # num_classes=None takes the largest id, which is then itself left unpainted.
    inferred = visualization.draw_segmentation_masks(images, masks)
    palette = [[(c * p) % 255 for p in (2**25 - 1, 2**15 - 1, 2**21 - 1)] for c in range(2)]
    numpy.testing.assert_array_equal(inferred, expected_masks(images, masks, palette, 0.8))


def test_draw_segmentation_masks_refuses_bad_input():
    images = numpy.zeros((2, 4, 5, 3), "uint8")
    with pytest.raises(ValueError, match="batched 4D"):
        visualization.draw_segmentation_masks(images[0], numpy.zeros((4, 5, 1), "int32"))
    with pytest.raises(TypeError, match="integer dtype"):
        visualization.draw_segmentation_masks(images, numpy.zeros((2, 4, 5, 1), "float32"))
    with pytest.raises(ValueError, match="segmentation_masks.shape=.2, 4, 5, 2"):
        visualization.draw_segmentation_masks(images, numpy.zeros((2, 4, 5, 2), "int32"))
    with pytest.raises(ValueError, match="segmentation_masks.shape=.2, 5, 4"):
        visualization.draw_segmentation_masks(images, numpy.zeros((2, 5, 4), "int32"))
    with pytest.raises(KeyError, match="none for .2"):
        visualization.draw_segmentation_masks(images, numpy.zeros((2, 4, 5), "int32"), num_classes=3,
                                              color_mapping={0: (1, 1, 1), 1: (2, 2, 2)})
    with pytest.raises(ValueError, match="4 channels"):
        visualization.draw_segmentation_masks(numpy.zeros((2, 4, 5, 4)), numpy.zeros((2, 4, 5), "int32"),
                                              num_classes=2)


def shown(figure):
    return [axis.get_images()[0].get_array() for axis in figure.axes if axis.get_images()]


def test_image_gallery_layout_titles_and_value_range(xp, plt, rng):
    images = rng.random((5, 6, 7, 3)).astype("float32")
    visualization.plot_image_gallery(xp.asarray(images), y_true=xp.asarray([0, 1, 2, 0, 1]), y_pred=[1, 1, 9],
                                     label_map={0: "cat", 1: "dog", 2: "cow"}, value_range=(0, 1), show=False)
    figure = plt.gcf()
    assert len(figure.axes) == 3                                        # ceil(sqrt(5)) = 3 rows, 5 // 3 = 1 column
    numpy.testing.assert_allclose(figure.get_size_inches(), (2, 6))
    assert [axis.get_title() for axis in figure.axes] == ["Label: cat  Pred: dog", "Label: dog  Pred: dog",
                                                          "Label: cow  Pred: Unknown"]
    for got, image in zip(shown(figure), images):
        numpy.testing.assert_array_equal(got, (image * numpy.float32(255)).astype("uint8"))
    assert not any(axis.axison for axis in figure.axes)


def test_image_gallery_saves_and_closes(plt, tmp_path, rng):
    images = rng.integers(0, 256, (4, 3, 5, 8)).astype("uint8")               # channels first
    path = tmp_path / "gallery.png"
    visualization.plot_image_gallery(images[:, :3], rows=1, cols=4, path=str(path), data_format="channels_first")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plt.get_fignums() == []
    visualization.plot_image_gallery(images[:, :3], rows=2, cols=2, show=False, data_format="channels_first")
    for got, image in zip(shown(plt.gcf()), images[:, :3]):
        numpy.testing.assert_array_equal(got, image.transpose(1, 2, 0))


def test_image_gallery_refuses_bad_input(plt):
    images = numpy.zeros((4, 3, 3, 3), "uint8")
    with pytest.raises(ValueError, match="either `path`"):
        visualization.plot_image_gallery(images, path="x.png", show=True)
    with pytest.raises(ValueError, match="label_map"):
        visualization.plot_image_gallery(images, y_pred=[0, 1, 0, 1])
    with pytest.raises(ValueError, match="batch your"):
        visualization.plot_image_gallery(images[0], show=False)
    with pytest.raises(ValueError, match="rows=3 and cols=2 make 6 cells"):
        visualization.plot_image_gallery(images, rows=3, cols=2, show=False)


@needs_opencv
def test_bounding_box_gallery_shows_the_drawn_images(xp, plt, rng):
    images = rng.integers(0, 256, (4, 20, 24, 3)).astype("uint8")
    y_true = {"boxes": rng.uniform(0, 20, (4, 2, 4)).astype("float32"), "labels": rng.integers(0, 2, (4, 2))}
    y_pred = {"boxes": rng.uniform(0, 20, (4, 2, 4)).astype("float32"), "labels": rng.integers(0, 2, (4, 2))}
    mapping = {0: "a", 1: "b"}
    visualization.plot_bounding_box_gallery(xp.asarray(images.transpose(0, 3, 1, 2)), "xywh", y_true=y_true,
                                            y_pred=y_pred, class_mapping=mapping, legend=True, show=False,
                                            data_format="channels_first")
    figure = plt.gcf()
    # The gallery's text_thickness=None writes labels as thick as the lines.
    expected = visualization.draw_bounding_boxes(images, y_true, "xywh", class_mapping=mapping, color=(0, 188, 212),
                                                 text_thickness=2)
    expected = visualization.draw_bounding_boxes(expected, y_pred, "xywh", class_mapping=mapping,
                                                 color=(255, 235, 59), text_thickness=2)
    assert len(shown(figure)) == 4
    for got, image in zip(shown(figure), expected):
        numpy.testing.assert_array_equal(got, image)
    assert [text.get_text() for text in figure.legends[0].get_texts()] == ["Ground Truth", "Prediction"]
    with pytest.raises(ValueError, match="`legend` OR `legend_handles`"):
        visualization.plot_bounding_box_gallery(images, "xyxy", legend=True, legend_handles=[object()], show=False)


def test_segmentation_gallery_rows_hold_image_truth_and_prediction(plt, rng):
    images = rng.integers(0, 256, (2, 6, 5, 3)).astype("uint8")
    y_true = rng.integers(0, 3, (2, 6, 5, 1)).astype("float32")                # cast to int32 by the gallery
    y_pred = rng.integers(0, 3, (2, 6, 5, 1))
    visualization.plot_segmentation_mask_gallery(images, num_classes=3, y_true=y_true, y_pred=y_pred, show=False)
    got = shown(plt.gcf())
    assert len(got) == 6
    true_drawn = visualization.draw_segmentation_masks(images, y_true.astype("int32"), num_classes=3)
    pred_drawn = visualization.draw_segmentation_masks(images, y_pred, num_classes=3)
    for i in range(2):
        for got_image, expected in zip(got[3 * i:3 * i + 3], (images[i], true_drawn[i], pred_drawn[i])):
            numpy.testing.assert_array_equal(got_image, expected)
    plt.close("all")
    visualization.plot_segmentation_mask_gallery(images.transpose(0, 3, 1, 2), num_classes=3,
                                                 y_pred=y_pred.transpose(0, 3, 1, 2), show=False,
                                                 data_format="channels_first")
    got = shown(plt.gcf())
    assert len(got) == 4
    for got_image, expected in zip(got, (images[0], pred_drawn[0], images[1], pred_drawn[1])):
        numpy.testing.assert_array_equal(got_image, expected)
