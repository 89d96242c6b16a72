"""gpu_dl.visualization against Keras 3's keras.visualization (where Keras and OpenCV are installed): the same
drawn arrays bit for bit, and galleries with the same layout, titles, legends, images and saved PNG pixels."""
import inspect
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
pytest.importorskip("cv2")
plt = pytest.importorskip("matplotlib.pyplot")
image_io = pytest.importorskip("matplotlib.image")

from gpu_dl import visualization  # noqa: E402

FORMATS = ["xyxy", "yxyx", "xywh", "center_xywh", "center_yxhw", "rel_xyxy", "rel_yxyx", "rel_xywh",
           "rel_center_xywh"]


@pytest.fixture(autouse=True)
def agg():
    plt.switch_backend("Agg")
    plt.close("all")
    yield
    plt.close("all")


def random_images(rng, kind, shape):
    if kind == "uint8":
        return rng.integers(0, 256, shape).astype("uint8")
    if kind == "unit":
        return rng.uniform(-0.1, 1.0, shape).astype("float32")
    return rng.uniform(-20, 300, shape).astype("float32")


def random_boxes(rng, box_format, batch, height, width, count=6):
    scale = 1.0 if box_format.startswith("rel_") else float(max(height, width))
    return {"boxes": (rng.uniform(-0.1, 1.1, (batch, count, 4)) * scale).astype("float32"),
            "labels": rng.integers(-1, 4, (batch, count)),
            "confidences": rng.random((batch, count)).astype("float32")}


@pytest.mark.parametrize("box_format", FORMATS)
@pytest.mark.parametrize("kind", ["uint8", "unit", "wide"])
def test_draw_bounding_boxes_same_pixels(box_format, kind):
    rng = numpy.random.default_rng(FORMATS.index(box_format) * 3 + len(kind))
    images = random_images(rng, kind, (3, 45, 61, 3))
    boxes = random_boxes(rng, box_format, 3, 45, 61)
    mapping = {0: "cat", 1: "dog", 3: "zebra"}
    for options in ({}, {"class_mapping": mapping}, {"class_mapping": mapping, "color": (255, 0, 10),
                                                     "line_thickness": 1, "text_thickness": 3, "font_scale": 0.4}):
        theirs = keras.visualization.draw_bounding_boxes(images, dict(boxes), box_format, **options)
        ours = visualization.draw_bounding_boxes(images, dict(boxes), box_format, **options)
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
        numpy.testing.assert_array_equal(ours, theirs)
    no_scores = {"boxes": boxes["boxes"], "labels": boxes["labels"]}
    numpy.testing.assert_array_equal(
        visualization.draw_bounding_boxes(images, no_scores, box_format, class_mapping=mapping, text_thickness=0),
        keras.visualization.draw_bounding_boxes(images, dict(no_scores), box_format, class_mapping=mapping,
                                                text_thickness=0))


@pytest.mark.parametrize("options", [{}, {"alpha": 0.3}, {"alpha": 0.55, "ignore_index": 2}, {"blend": False},
                                     {"blend": False, "ignore_index": 0},
                                     {"color_mapping": {0: (9, 8, 7), 1: (255, 0, 0), 2: (0, 0, 255), 3: (1, 2, 3),
                                                        4: (200, 100, 50)}, "alpha": 0.9}])
@pytest.mark.parametrize("kind", ["uint8", "float"])
def test_draw_segmentation_masks_same_pixels(options, kind):
    rng = numpy.random.default_rng(len(options) * 7 + len(kind))
    images = rng.integers(0, 256, (3, 17, 33, 3)).astype("uint8")
    if kind == "float":
        images = (images * rng.uniform(0.5, 1.0, images.shape)).astype("float32")
    masks = rng.integers(-1, 5, (3, 17, 33, 1))                # Keras on torch refuses ids >= num_classes
    theirs = numpy.asarray(keras.visualization.draw_segmentation_masks(images, masks, num_classes=5, **options))
    ours = visualization.draw_segmentation_masks(images, masks, num_classes=5, **options)
    assert ours.dtype == theirs.dtype
    numpy.testing.assert_array_equal(ours, theirs)
    theirs = numpy.asarray(keras.visualization.draw_segmentation_masks(
        images.transpose(0, 3, 1, 2), masks.transpose(0, 3, 1, 2), num_classes=5, data_format="channels_first",
        **options))
    ours = visualization.draw_segmentation_masks(images.transpose(0, 3, 1, 2), masks.transpose(0, 3, 1, 2),
                                                 num_classes=5, data_format="channels_first", **options)
    numpy.testing.assert_array_equal(ours, theirs)           # channels last out, as Keras


def figure_summary():
    """What a gallery figure shows: its size, its axes' places, titles and images, and its legend's labels."""
    figure = plt.gcf()
    figure.canvas.draw()
    return {"size": tuple(figure.get_size_inches()), "count": len(figure.axes),
            "places": [tuple(numpy.round(axis.get_position().bounds, 6)) for axis in figure.axes],
            "titles": [axis.get_title() for axis in figure.axes], "on": [axis.axison for axis in figure.axes],
            "images": [axis.get_images()[0].get_array() for axis in figure.axes],
            "legend": [[text.get_text() for text in legend.get_texts()] for legend in figure.legends]}


def assert_same_figures(call, tmp_path, *args, **kwargs):
    """Draw a gallery with Keras and with gpu_dl (left open, then saved as PNG) and compare what they show."""
    summaries, pngs = [], []
    for library, name in ((keras.visualization, "keras"), (visualization, "gpu_dl")):
        plt.close("all")
        getattr(library, call)(*args, show=False, **kwargs)
        summaries.append(figure_summary())
        plt.close("all")
        path = tmp_path / f"{name}.png"
        getattr(library, call)(*args, path=str(path), **kwargs)
        assert plt.get_fignums() == []
        pngs.append(image_io.imread(str(path)))
    theirs, ours = summaries
    for key in ("size", "count", "places", "titles", "on", "legend"):
        assert ours[key] == theirs[key], key
    assert len(ours["images"]) == len(theirs["images"])
    for mine, other in zip(ours["images"], theirs["images"]):
        assert mine.dtype == other.dtype
        numpy.testing.assert_array_equal(mine, other)
    assert pngs[0].shape == pngs[1].shape
    numpy.testing.assert_array_equal(pngs[1], pngs[0])
    return ours


@pytest.mark.parametrize("batch, options", [(5, {}), (4, {"rows": 1, "cols": 4}), (1, {}), (6, {"rows": 2}),
                                            (3, {"value_range": (0, 1), "scale": 1.5, "dpi": 40})])
def test_plot_image_gallery_same_figure(batch, options, tmp_path):
    rng = numpy.random.default_rng(batch)
    if "value_range" in options:
        images = rng.random((batch, 9, 11, 3)).astype("float32")
    else:
        images = rng.integers(0, 256, (batch, 9, 11, 3)).astype("uint8")
    labels = {0: "cat", 1: "dog"}
    shown = assert_same_figures("plot_image_gallery", tmp_path, images, y_true=rng.integers(0, 3, batch),
                                y_pred=rng.integers(0, 2, max(batch - 1, 1)), label_map=labels, **options)
    assert any("Label:" in title for title in shown["titles"])


def test_plot_bounding_box_gallery_same_figure(tmp_path):
    rng = numpy.random.default_rng(3)
    images = rng.integers(0, 256, (4, 40, 48, 3)).astype("uint8")
    y_true, y_pred = random_boxes(rng, "xywh", 4, 40, 48, 3), random_boxes(rng, "xywh", 4, 40, 48, 3)
    shown = assert_same_figures("plot_bounding_box_gallery", tmp_path, images, "xywh", y_true=y_true, y_pred=y_pred,
                                class_mapping={0: "a", 1: "b", 2: "c"}, prediction_mapping={3: "p"}, legend=True,
                                font_scale=0.5)
    assert shown["legend"] == [["Ground Truth", "Prediction"]]
    assert_same_figures("plot_bounding_box_gallery", tmp_path, images, "rel_xyxy",
                        y_pred=random_boxes(rng, "rel_xyxy", 4, 40, 48), rows=1, cols=2, line_thickness=1)


@pytest.mark.parametrize("options", [{}, {"alpha": 0.4, "ignore_index": 0}, {"blend": False}])
def test_plot_segmentation_mask_gallery_same_figure(options, tmp_path):
    rng = numpy.random.default_rng(len(options))
    images = rng.integers(0, 256, (3, 10, 12, 3)).astype("uint8")
    y_true = rng.integers(-1, 4, (3, 10, 12, 1))
    y_pred = rng.integers(0, 4, (3, 10, 12, 1)).astype("float32")
    shown = assert_same_figures("plot_segmentation_mask_gallery", tmp_path, images, 4, y_true=y_true, y_pred=y_pred,
                                **options)
    assert shown["count"] == 9
    assert_same_figures("plot_segmentation_mask_gallery", tmp_path, images, 4, y_pred=y_pred, **options)


@pytest.mark.parametrize("name", ["draw_bounding_boxes", "draw_segmentation_masks", "plot_image_gallery",
                                  "plot_bounding_box_gallery", "plot_segmentation_mask_gallery"])
def test_same_signatures(name):
    ours = inspect.signature(getattr(visualization, name)).parameters
    theirs = inspect.signature(getattr(keras.visualization, name)).parameters
    assert [(p.name, p.default, p.kind) for p in ours.values()] == [(p.name, p.default, p.kind)
                                                                   for p in theirs.values()]
