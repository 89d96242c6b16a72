"""Keras's ``keras.visualization``: boxes and segmentation masks drawn onto images, and image galleries.

``draw_bounding_boxes`` and ``draw_segmentation_masks`` return NumPy arrays that are, pixel for pixel, what
Keras 3 draws: rectangles and labels are drawn with OpenCV (the optional extra ``gpu_dl[visualization]``), masks
are blended in float32 in Keras's order of operations. The ``plot_*`` galleries lay images out on a pyplot figure
the way Keras does, and save it (``path``), show it (``show``) or leave it open as pyplot's current figure.

Images may be NumPy or CuPy arrays (CuPy ones are copied to the host for drawing), batched, in
``"channels_last"`` or ``"channels_first"`` layout. Where Keras 3.15 breaks on ``"channels_first"`` (boxes are
drawn on the wrong axes, the gallery transposes twice), these functions take the layout they are told;
``draw_segmentation_masks`` returns channels-last images for either layout, as Keras does.
"""
from __future__ import annotations

import functools
import importlib
import math

import numpy

from .backend import is_int_dtype, standardize_data_format, to_numpy
from .utils.bounding_boxes import convert_format

_INSTALL_HINTS = {   # module -> (package named in the error, how to install it)
    "cv2": ("`cv2` package (OpenCV)",
            "`pip install 'gpu_dl[visualization]'` (or `pip install opencv-python-headless`)"),
    "matplotlib.pyplot": ("`matplotlib` package", "`pip install matplotlib`"),
}


def _require(module, where):
    """Import an optional drawing library, or raise an ImportError that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        package, hint = _INSTALL_HINTS[module]
        raise ImportError(f"The `{where}` function requires the {package}. Please install it with {hint}.") from error


def _batched_images(images):
    """``images`` as a host NumPy array, refused unless it is a batch (4-D)."""
    images = to_numpy(images)
    if images.ndim != 4:
        raise ValueError(f"`images` must be batched 4D tensor. Received: images.shape={images.shape}")
    return images


def _channels_last(images, data_format):
    return images.transpose(0, 2, 3, 1) if data_format == "channels_first" else images


def _masks_channels_last(masks, data_format):
    """Masks with a channel axis moved last; masks without one, ``(batch, height, width)``, as they are."""
    return _channels_last(masks, data_format) if masks.ndim == 4 else masks


def _text_origin(x, y, font_scale, thickness):
    """Where a box's label starts: above its top-left corner, or inside the box when that has no room."""
    font_height = int(font_scale * 12)
    if y - 8 - 2 * font_height > 0:
        return x, y - 8
    return x + 3, y + 2 * font_height + thickness + 3


def draw_bounding_boxes(images, bounding_boxes, bounding_box_format, class_mapping=None, color=(128, 128, 128),
                        line_thickness=2, text_thickness=1, font_scale=1.0, data_format=None):
    """Draws bounding boxes, and class names where ``class_mapping`` names them, on a batch of images.

    Args:
        images: a batch of images, ``(batch, height, width, channels)`` (or channels first).
        bounding_boxes: a dict with ``"boxes"`` ``(batch, num_boxes, 4)`` in ``bounding_box_format``,
            ``"labels"`` ``(batch, num_boxes)`` (boxes labelled -1 are not drawn) and optionally
            ``"confidences"`` ``(batch, num_boxes)``, written after the class name.
        bounding_box_format: ``"xyxy"``, ``"yxyx"``, ``"xywh"``, ``"center_xywh"``, ``"center_yxhw"``, or a
            ``"rel_"`` form of the first four (relative to the image's size).
        class_mapping: class id -> name; boxes of other classes are drawn without a label.
        color: RGB colour of lines and text.
        line_thickness: thickness of the rectangles in pixels.
        text_thickness: thickness of the label strokes (a false value takes ``line_thickness``).
        font_scale: OpenCV's scale of the Hershey simplex font.
        data_format: ``"channels_last"`` or ``"channels_first"``; ``None`` takes ``image_data_format()``.

    Returns:
        A uint8 NumPy array of the input's shape. Float images whose maximum is at most 1 are scaled by 255 first;
        others are clipped to [0, 255].
    """
    cv2 = _require("cv2", "draw_bounding_boxes")
    class_mapping = class_mapping or {}
    text_thickness = text_thickness or line_thickness
    data_format = standardize_data_format(data_format, "draw_bounding_boxes: `data_format`")
    images = _batched_images(images)
    if not isinstance(bounding_boxes, dict):
        raise TypeError(f"`bounding_boxes` should be a dict. Received: bounding_boxes={bounding_boxes} of type "
                        f"{type(bounding_boxes)}")
    if "boxes" not in bounding_boxes or "labels" not in bounding_boxes:
        raise ValueError("`bounding_boxes` should be a dict containing 'boxes' and 'labels' keys. Received: "
                         f"bounding_boxes={bounding_boxes}")
    images = _channels_last(images, data_format)
    batch, height, width = images.shape[:3]
    boxes = to_numpy(convert_format(to_numpy(bounding_boxes["boxes"]), bounding_box_format, "xyxy", height=height,
                                    width=width))
    labels = to_numpy(bounding_boxes["labels"])
    confidences = to_numpy(bounding_boxes["confidences"]) if "confidences" in bounding_boxes else None
    if boxes.ndim != 3 or boxes.shape[0] != batch or labels.shape != boxes.shape[:2]:
        raise ValueError(f"draw_bounding_boxes: `bounding_boxes` must hold 'boxes' of shape (batch, num_boxes, 4) "
                         f"and 'labels' of shape (batch, num_boxes) for the {batch} images; received "
                         f"boxes.shape={boxes.shape}, labels.shape={labels.shape}.")

    if images.dtype.kind == "f" and images.size > 0:
        images = numpy.clip(images, 0, 1) * 255 if images.max() <= 1.0 else numpy.clip(images, 0, 255)
    # OpenCV draws in place, on C-contiguous rows only: a fresh uint8 copy in that order.
    images = numpy.ascontiguousarray(images.astype("uint8"))
    corners = boxes.astype("int32")
    classes = labels.astype("int32")
    for i, k in zip(*numpy.nonzero(classes != -1)):
        x1, y1, x2, y2 = (int(v) for v in corners[i, k])
        cv2.rectangle(images[i], (x1, y1), (x2, y2), color, line_thickness)
        c = int(classes[i, k])
        if c in class_mapping:
            label = class_mapping[c]
            if confidences is not None:
                label = f"{label} | {confidences[i][k]:.2f}"
            cv2.putText(img=images[i], text=label, org=_text_origin(x1, y1, font_scale, text_thickness),
                        fontFace=cv2.FONT_HERSHEY_SIMPLEX, fontScale=font_scale, color=color,
                        thickness=text_thickness)
    if data_format == "channels_first":
        return numpy.ascontiguousarray(images.transpose(0, 3, 1, 2))
    return images


def _palette(num_classes):
    """Keras's default class colours: class ``i`` gets ``i * (2**25 - 1, 2**15 - 1, 2**21 - 1) % 255``."""
    return [((i * numpy.array([2**25 - 1, 2**15 - 1, 2**21 - 1])) % 255).tolist() for i in range(num_classes)]


def draw_segmentation_masks(images, segmentation_masks, num_classes=None, color_mapping=None, alpha=0.8, blend=True,
                            ignore_index=-1, data_format=None):
    """Paints each pixel's class colour over a batch of images, blended with the image or not.

    Args:
        images: a batch of images, ``(batch, height, width, channels)`` (or channels first).
        segmentation_masks: integer class ids, ``(batch, height, width, 1)`` or ``(batch, height, width)``
            (``(batch, 1, height, width)`` channels first).
        num_classes: classes ``0 .. num_classes - 1`` are painted; ``None`` takes the masks' maximum (as Keras
            does, so the largest id itself is then left unpainted, like any id outside that range).
        color_mapping: class id -> RGB colour for every class ``0 .. num_classes - 1``; ``None`` uses Keras's
            palette, in which class 0 is black.
        alpha: the opacity of the colours when blending.
        blend: blend ``image * (1 - alpha) + colour * alpha`` and return uint8; with ``False``, return the
            painted images as float32, unblended.
        ignore_index: pixels of this class keep the image's value when blending.
        data_format: ``"channels_last"`` or ``"channels_first"``; ``None`` takes ``image_data_format()``.

    Returns:
        A NumPy array ``(batch, height, width, channels)``, channels last whatever the input's layout, as in Keras.
    """
    data_format = standardize_data_format(data_format, "draw_segmentation_masks: `data_format`")
    images = _channels_last(_batched_images(images), data_format)
    given = to_numpy(segmentation_masks)
    masks = _masks_channels_last(given, data_format)
    if masks.ndim == 4 and masks.shape[-1] == 1:
        masks = masks[..., 0]
    if masks.shape != images.shape[:3]:
        raise ValueError(f"draw_segmentation_masks: `segmentation_masks` must be (batch, height, width, 1) or "
                         f"(batch, height, width) ({data_format}) for the channels-last images of shape "
                         f"{images.shape}; received segmentation_masks.shape={given.shape}.")
    if not is_int_dtype(masks.dtype):
        raise TypeError(f"`segmentation_masks` must be in integer dtype. Received: "
                        f"segmentation_masks.dtype={masks.dtype}")
    images = images.astype("float32")
    if num_classes is None:
        num_classes = int(masks.max())
    if color_mapping is None:
        colors = _palette(num_classes)
    else:
        missing = [i for i in range(num_classes) if i not in color_mapping]
        if missing:
            raise KeyError(f"draw_segmentation_masks: `color_mapping` must give a colour to every class 0 .. "
                           f"{num_classes - 1}; it has none for {missing}.")
        colors = [color_mapping[i] for i in range(num_classes)]
    painted_classes = (masks >= 0) & (masks < num_classes)
    if num_classes > 0:
        table = numpy.array(colors, dtype="float32").reshape(num_classes, -1)
        if table.shape[1] != images.shape[-1]:
            raise ValueError(f"draw_segmentation_masks: the class colours have {table.shape[1]} values each, but the "
                             f"images have {images.shape[-1]} channels.")
        colored = numpy.where(painted_classes[..., None], table[numpy.where(painted_classes, masks, 0)], images)
    else:
        colored = images.copy()
    if not blend:
        return colored
    # Keras multiplies float32 images by Python floats, which its backends apply as float32 scalars.
    outputs = images * numpy.float32(1 - alpha) + colored * numpy.float32(alpha)
    outputs = numpy.where((masks != ignore_index)[..., None], outputs, images)
    return outputs.astype("uint8")


def plot_image_gallery(images, y_true=None, y_pred=None, label_map=None, rows=None, cols=None, value_range=(0, 255),
                       scale=2, path=None, show=None, transparent=True, dpi=60, legend_handles=None,
                       data_format=None):
    """Lays a batch of images out on a ``rows`` x ``cols`` pyplot grid, titled with labels and predictions.

    Args:
        images: a batch of images, ``(batch, height, width, channels)`` (or channels first).
        y_true: class ids, one per image, shown as ``"Label: <name>"`` through ``label_map``.
        y_pred: class ids, one per image, shown as ``"Pred: <name>"``.
        label_map: class id -> name; required with ``y_true`` or ``y_pred`` (unknown ids show ``"Unknown"``).
        rows, cols: the grid; ``None`` takes ``ceil(sqrt(batch))`` rows and ``batch // rows`` columns. The first
            ``rows * cols`` images are shown.
        value_range: the images' range, mapped to [0, 255] before they are shown as uint8.
        scale: inches per grid cell.
        path: save the figure there (and close it) instead of showing it.
        show: ``plt.show()`` the figure (then close it); ``None`` means "when there is no ``path``". With neither,
            the figure stays open as pyplot's current figure.
        transparent: save with a transparent background.
        dpi: the saved file's dots per inch.
        legend_handles: matplotlib artists for a legend at the figure's bottom centre.
        data_format: ``"channels_last"`` or ``"channels_first"``; ``None`` takes ``image_data_format()``.
    """
    plt = _require("matplotlib.pyplot", "plot_image_gallery")
    if path is not None and show:
        raise ValueError("plot_gallery() expects either `path` to be set, or `show` to be true.")
    if (y_true is not None or y_pred is not None) and label_map is None:
        raise ValueError("If `y_true` or `y_pred` are provided, a `label_map` must also be provided.")
    show = show if show is not None else (path is None)
    data_format = standardize_data_format(data_format, "plot_image_gallery: `data_format`")
    images = to_numpy(images)
    if images.ndim != 4:
        raise ValueError("`plot_images_gallery()` requires you to batch your `np.array` samples together.")
    batch_size = images.shape[0]
    if batch_size == 0:
        raise ValueError("plot_image_gallery: `images` holds no image.")
    rows = rows or int(math.ceil(math.sqrt(batch_size)))
    cols = cols or int(math.ceil(batch_size // rows))
    if rows < 1 or cols < 1 or rows * cols > batch_size:
        raise ValueError(f"plot_image_gallery: rows={rows} and cols={cols} make {rows * cols} cells for the "
                         f"{batch_size} images; give rows and cols whose product is between 1 and {batch_size}.")
    images = _channels_last(images[:rows * cols], data_format)

    fig, axes = plt.subplots(nrows=rows, ncols=cols, figsize=(cols * scale, rows * scale), frameon=False,
                             layout="tight", squeeze=False, sharex="row", sharey="col")
    fig.subplots_adjust(wspace=0, hspace=0)
    if legend_handles is not None:
        fig.legend(handles=legend_handles, loc="lower center")

    low, high = value_range
    if low != 0 or high != 255:
        # Keras's value-range transform, in float32 throughout.
        low, high = numpy.float32(low), numpy.float32(high)
        images = (images.astype("float32") - low) / (high - low) * numpy.float32(255)
    y_true = None if y_true is None else to_numpy(y_true)
    y_pred = None if y_pred is None else to_numpy(y_pred)
    for index in range(rows * cols):
        axis = axes[index // cols, index % cols]
        axis.imshow(images[index].astype("uint8"))
        axis.margins(x=0, y=0)
        axis.axis("off")
        title = []
        if y_true is not None and index < len(y_true):
            title.append(f"Label: {label_map.get(y_true[index], 'Unknown')}")
        if y_pred is not None and index < len(y_pred):
            title.append(f"Pred: {label_map.get(y_pred[index], 'Unknown')}")
        if title:
            axis.set_title("  ".join(title), fontsize=8)

    if path is not None:
        plt.savefig(fname=path, pad_inches=0, bbox_inches="tight", transparent=transparent, dpi=dpi)
        plt.close()
    elif show:
        plt.show()
        plt.close()


def plot_bounding_box_gallery(images, bounding_box_format, y_true=None, y_pred=None, value_range=(0, 255),
                              true_color=(0, 188, 212), pred_color=(255, 235, 59), line_thickness=2, font_scale=1.0,
                              text_thickness=None, class_mapping=None, ground_truth_mapping=None,
                              prediction_mapping=None, legend=False, legend_handles=None, rows=None, cols=None,
                              data_format=None, **kwargs):
    """A gallery (``plot_image_gallery``) of images with their true and predicted boxes drawn on them.

    ``y_true`` and ``y_pred`` are ``bounding_boxes`` dicts as ``draw_bounding_boxes`` takes, drawn in
    ``true_color`` and ``pred_color`` with the names of ``ground_truth_mapping`` and ``prediction_mapping``
    (each defaulting to ``class_mapping``). ``legend=True`` adds a "Ground Truth" / "Prediction" legend;
    ``legend_handles`` gives one's own instead (not both). Other keyword arguments (``path``, ``show``,
    ``scale``, ...) go to ``plot_image_gallery``.
    """
    _require("matplotlib.pyplot", "plot_bounding_box_gallery")
    from matplotlib import patches

    prediction_mapping = prediction_mapping or class_mapping
    ground_truth_mapping = ground_truth_mapping or class_mapping
    data_format = standardize_data_format(data_format, "plot_bounding_box_gallery: `data_format`")
    plotted = _channels_last(_batched_images(images), data_format)
    draw = functools.partial(draw_bounding_boxes, bounding_box_format=bounding_box_format,
                             line_thickness=line_thickness, text_thickness=text_thickness, font_scale=font_scale,
                             data_format="channels_last")
    if y_true is not None:
        plotted = draw(plotted, y_true, color=true_color, class_mapping=ground_truth_mapping)
    if y_pred is not None:
        plotted = draw(plotted, y_pred, color=pred_color, class_mapping=prediction_mapping)
    if legend:
        if legend_handles:
            raise ValueError("Only pass `legend` OR `legend_handles` to "
                             "`keras.visualization.plot_bounding_box_gallery()`.")
        legend_handles = [patches.Patch(color=numpy.array(true_color) / 255.0, label="Ground Truth"),
                          patches.Patch(color=numpy.array(pred_color) / 255.0, label="Prediction")]
    return plot_image_gallery(plotted, value_range=value_range, legend_handles=legend_handles, rows=rows, cols=cols,
                              data_format="channels_last", **kwargs)


def plot_segmentation_mask_gallery(images, num_classes, value_range=(0, 255), y_true=None, y_pred=None,
                                   color_mapping=None, blend=True, alpha=0.8, ignore_index=-1, data_format=None,
                                   **kwargs):
    """A gallery (``plot_image_gallery``) with one row per image: the image, then its true mask and its predicted
    mask drawn on it by ``draw_segmentation_masks`` (each where given). Masks may be of any numeric dtype (they
    are cast to int32). Other keyword arguments (``path``, ``show``, ``scale``, ...) go to
    ``plot_image_gallery``.
    """
    data_format = standardize_data_format(data_format, "plot_segmentation_mask_gallery: `data_format`")
    images = _channels_last(_batched_images(images), data_format)
    draw = functools.partial(draw_segmentation_masks, num_classes=num_classes, color_mapping=color_mapping,
                             alpha=alpha, ignore_index=ignore_index, blend=blend, data_format="channels_last")
    columns = [images]
    for masks in (y_true, y_pred):
        if masks is not None:
            columns.append(draw(images, _masks_channels_last(to_numpy(masks).astype("int32"), data_format)))
    gallery = numpy.stack(columns, axis=1).reshape((-1,) + images.shape[1:])
    return plot_image_gallery(gallery, value_range=value_range, rows=images.shape[0], cols=len(columns),
                              data_format="channels_last", **kwargs)
