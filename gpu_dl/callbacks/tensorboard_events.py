"""The summaries the TensorBoard callback writes, as tensorboardX's protocol buffers.

tensorboardX (the ``tensorboard`` extra) is optional: it is imported when a
TensorBoard callback is made, never by ``import gpu_dl``. Each function here
returns a ``Summary`` for ``tensorboardX.FileWriter.add_summary``; where
TensorFlow's summary ops write a form tensorboardX has no helper for (the
model's config, weights as images), the proto is built as TensorFlow builds it.
"""
from __future__ import annotations

import io

import numpy

INSTALL = 'pip install "gpu_dl[tensorboard]"'

# tf.summary.histogram's bucket count, and tf.summary.image's max_outputs: what Keras writes with.
HISTOGRAM_BUCKETS = 30
MAX_IMAGES = 3


def require_tensorboardx():
    """The tensorboardX module, or an ImportError saying how to install it."""
    try:
        import tensorboardX
    except ImportError as exc:
        raise ImportError("gpu_dl.callbacks.TensorBoard writes TensorBoard's event files with the tensorboardX "
                          f"package, which is not installed: {INSTALL} (or pip install \"tensorboardX>=2.6\")."
                          ) from exc
    return tensorboardX


def scalar(tag, value):
    from tensorboardX import summary
    return summary.scalar(tag, value)


def histogram(tag, values):
    """A histogram of ``values`` over their finite entries (None when there are none: a weight gone NaN
    must not end the run from a logging callback)."""
    from tensorboardX import summary
    values = numpy.asarray(values, dtype=numpy.float64).reshape(-1)
    values = values[numpy.isfinite(values)]
    if values.size == 0:
        return None
    return summary.histogram(tag, values, bins=HISTOGRAM_BUCKETS)


def _plugin_metadata(plugin_name, content=b""):
    from tensorboardX.proto.summary_pb2 import SummaryMetadata
    return SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name=plugin_name, content=content))


def _strings(items, shape):
    from tensorboardX.proto.tensor_pb2 import TensorProto
    from tensorboardX.proto.tensor_shape_pb2 import TensorShapeProto
    dims = [TensorShapeProto.Dim(size=size) for size in shape]
    return TensorProto(dtype="DT_STRING", tensor_shape=TensorShapeProto(dim=dims), string_val=list(items))


def model_config(json_text, tag="keras"):
    """The model's JSON config under the ``graph_keras_model`` plugin, as keras.callbacks.TensorBoard writes it:
    TensorBoard's Graphs tab draws the model's layers from it."""
    from tensorboardX.proto.summary_pb2 import Summary
    value = Summary.Value(tag=tag, metadata=_plugin_metadata("graph_keras_model", b"1"),
                          tensor=_strings([json_text.encode("utf-8")], ()))
    return Summary(value=[value])


def weight_images(weight):
    """A weight laid out as Keras lays it out for images, ``(k, height, width, channels)``, or None when Keras
    writes no image of it: a bias is one column, a Dense kernel one image (transposed when taller than wide),
    a Conv1D/Conv2D kernel with one squeezed axis one image per output channel."""
    image = numpy.squeeze(numpy.asarray(weight))
    shape = image.shape
    if len(shape) == 1:
        image = image.reshape(1, shape[0], 1, 1)
    elif len(shape) == 2:
        if shape[0] > shape[1]:
            image = image.T
        image = image.reshape(1, image.shape[0], image.shape[1], 1)
    elif len(shape) == 3:
        # channels_last kernels: the last axis becomes the image index.
        image = numpy.transpose(image, (2, 0, 1))
        image = image.reshape(image.shape + (1,))
    if image.ndim == 4 and image.shape[-1] in (1, 3, 4):
        return image
    return None


def _to_uint8(images):
    """tf.image.convert_image_dtype(..., uint8, saturate=True) for float data: scale by 255.5, clip, truncate."""
    if images.dtype == numpy.uint8:
        return images
    scaled = numpy.asarray(images, dtype=numpy.float64) * 255.5
    return numpy.clip(numpy.nan_to_num(scaled, nan=0.0), 0, 255).astype(numpy.uint8)


def _png(image):
    from PIL import Image
    pixels = image[..., 0] if image.shape[-1] == 1 else image
    out = io.BytesIO()
    Image.fromarray(numpy.ascontiguousarray(pixels)).save(out, format="PNG")
    return out.getvalue()


def images(tag, batch):
    """Up to MAX_IMAGES images of ``batch`` ``(k, height, width, channels)`` in the form tf.summary.image writes:
    a string tensor ``[width, height, png, ...]`` under the ``images`` plugin."""
    from tensorboardX.proto.summary_pb2 import Summary
    pixels = _to_uint8(batch[:MAX_IMAGES])
    height, width = batch.shape[1], batch.shape[2]
    items = [str(width).encode(), str(height).encode()] + [_png(image) for image in pixels]
    value = Summary.Value(tag=tag, metadata=_plugin_metadata("images"), tensor=_strings(items, (len(items),)))
    return Summary(value=[value])
