"""What the ImageNet models share: input checks, preprocessing, decoding of predictions, and finding the
weight files Keras publishes on this machine (gpu_dl never downloads).

``preprocess_input`` and ``decode_predictions`` follow Keras 3.15's ``keras.applications.imagenet_utils``.
Keras downloads ``imagenet_class_index.json`` and the weight files on first use; gpu_dl looks for them where
Keras keeps its downloads (``~/.keras/models``) and in ``$GPU_DL_DATA/models`` and ``~/.gpu_dl/models``, or
takes a path, and otherwise says which file to put where.
"""
from __future__ import annotations

import json
import os

import numpy

from .. import activations, backend
from ..backend.config import floatx
from ..backend.user_warnings import warn

# Keras's cache sub-folder for these files (``keras.utils.get_file(..., cache_subdir="models")``).
_SUBDIR = "models"
CLASS_INDEX_FILENAME = "imagenet_class_index.json"
# The class index is about 35 kB; a file far larger is not one.
_MAX_CLASS_INDEX_BYTES = 1 << 22
_MEANS = {"caffe": [103.939, 116.779, 123.68], "torch": [0.485, 0.456, 0.406]}
_TORCH_STD = [0.229, 0.224, 0.225]


# ------------------------------------------------------------------ where files are looked for
def default_dirs():
    """``$GPU_DL_DATA/models``, ``~/.gpu_dl/models``, then Keras's download folder ``~/.keras/models``."""
    dirs = []
    root = os.environ.get("GPU_DL_DATA")
    if root:
        dirs.append(os.path.join(os.path.expanduser(root), _SUBDIR))
    home = os.path.expanduser("~")
    dirs.append(os.path.join(home, ".gpu_dl", _SUBDIR))
    dirs.append(os.path.join(home, ".keras", _SUBDIR))
    return dirs


def find_file(filename):
    """The first ``<dir>/<filename>`` of ``default_dirs()`` that exists, or None."""
    for directory in default_dirs():
        candidate = os.path.join(directory, filename)
        if os.path.isfile(candidate):
            return candidate
    return None


def _missing(fn_name, what, filename, url):
    dirs = "\n".join(f"  - {d}" for d in default_dirs())
    return ValueError(f"{fn_name}: {what} need the file '{filename}', which gpu_dl does not download and did not "
                      f"find. Download it (Keras publishes it at {url}) and put it in one of:\n{dirs}\n"
                      "(or set GPU_DL_DATA to a folder holding a 'models' sub-folder), or pass its path instead.")


def imagenet_weights_path(fn_name, filename, url):
    """The local copy of the ImageNet weights file ``filename``, or a ValueError saying where to put it."""
    path = find_file(filename)
    if path is None:
        raise _missing(fn_name, "weights='imagenet'", filename, url)
    return path


# ------------------------------------------------------------------ argument checks
def check_weights(fn_name, weights):
    """Keras's check of ``weights``: None, "imagenet" or the path of an existing file."""
    if weights is None or (isinstance(weights, str) and weights == "imagenet"):
        return weights
    if isinstance(weights, (str, os.PathLike)) and os.path.isfile(weights):
        return os.fspath(weights)
    problem = "no such file" if isinstance(weights, (str, os.PathLike)) else f"a {type(weights).__name__}"
    raise ValueError(f"{fn_name}: the `weights` argument should be either `None` (random initialization), "
                     f"'imagenet' (pre-training on ImageNet), or the path to the weights file to be loaded. "
                     f"Received: weights={weights!r} ({problem}).")


def check_classes(fn_name, weights, include_top, classes):
    if weights == "imagenet" and include_top and classes != 1000:
        raise ValueError(f"{fn_name}: if using `weights='imagenet'` with `include_top=True`, `classes` should be "
                         f"1000. Received classes={classes}")
    if include_top and (isinstance(classes, bool) or not isinstance(classes, (int, numpy.integer)) or classes < 1):
        raise ValueError(f"{fn_name}: `classes` should be a positive integer. Received classes={classes!r}")


def check_pooling(fn_name, pooling):
    # Keras ignores any other value silently (and keeps the 4D output); a typo then goes unnoticed.
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"{fn_name}: `pooling` should be None, 'avg' or 'max'. Received pooling={pooling!r}")


def validate_activation(fn_name, classifier_activation, weights):
    """With pretrained weights the top layer's activation may only be softmax or none, as in Keras."""
    if weights is None:
        return
    activation = activations.get(classifier_activation)
    if activation.name not in ("softmax", "linear"):
        raise ValueError(f"{fn_name}: only `None` and `softmax` activations are allowed for the "
                         "`classifier_activation` argument when using pretrained weights, with "
                         f"`include_top=True`; Received: classifier_activation={classifier_activation!r}")


def obtain_input_shape(fn_name, input_shape, default_size, min_size, require_flatten, weights=None):
    """Keras's ``obtain_input_shape`` for channels_last images (gpu_dl's only image layout), its errors
    naming ``fn_name`` and ``input_shape``."""
    if input_shape is not None:
        try:
            input_shape = tuple(input_shape)
        except TypeError:
            raise ValueError(f"{fn_name}: `input_shape` must be a tuple of three integers. "
                             f"Received: input_shape={input_shape!r}") from None
    if weights != "imagenet" and input_shape and len(input_shape) == 3:
        if input_shape[-1] not in {1, 3}:
            warn(f"{fn_name}: this model usually expects 1 or 3 input channels. However, it was passed an "
                 f"input_shape with {input_shape[-1]} input channels.")
        default_shape = (default_size, default_size, input_shape[-1])
    else:
        default_shape = (default_size, default_size, 3)
    if weights == "imagenet" and require_flatten:
        if input_shape is not None and input_shape != default_shape:
            raise ValueError(f"{fn_name}: when setting `include_top=True` and loading `imagenet` weights, "
                             f"`input_shape` should be {default_shape}. Received: input_shape={input_shape}")
        return default_shape
    if input_shape:
        if len(input_shape) != 3 or not all(d is None or (isinstance(d, (int, numpy.integer))
                                                          and not isinstance(d, bool) and d > 0)
                                            for d in input_shape):
            raise ValueError(f"{fn_name}: `input_shape` must be a tuple of three positive integers (height, width, "
                             f"channels; None for a free height or width). Received: input_shape={input_shape}")
        if input_shape[-1] != 3 and weights == "imagenet":
            raise ValueError(f"{fn_name}: the input must have 3 channels with imagenet weights; Received "
                             f"`input_shape={input_shape}`")
        if (input_shape[0] is not None and input_shape[0] < min_size) or \
                (input_shape[1] is not None and input_shape[1] < min_size):
            raise ValueError(f"{fn_name}: `input_shape`: input size must be at least {min_size}x{min_size}; "
                             f"Received: input_shape={input_shape}")
    else:
        input_shape = default_shape if require_flatten else (None, None, 3)
    if require_flatten and None in input_shape:
        raise ValueError(f"{fn_name}: if `include_top` is True, you should specify a static `input_shape`. "
                         f"Received: input_shape={input_shape}")
    return tuple(input_shape)


def correct_pad(inputs, kernel_size):
    """The zero padding before a strided 'valid' convolution that centres it as Keras's does."""
    input_size = inputs.shape[1:3]
    if isinstance(kernel_size, int):
        kernel_size = (kernel_size, kernel_size)
    if input_size[0] is None:
        adjust = (1, 1)
    else:
        adjust = (1 - input_size[0] % 2, 1 - input_size[1] % 2)
    correct = (kernel_size[0] // 2, kernel_size[1] // 2)
    return ((correct[0] - adjust[0], correct[0]), (correct[1] - adjust[1], correct[1]))


# ------------------------------------------------------------------ inputs of the functional graph
def image_input(fn_name, input_tensor, input_shape):
    """The tensor the model starts from: a new Input, or ``input_tensor`` (a symbolic tensor)."""
    from ..layers import Input
    from ..layers.symbolic import KerasTensor
    if input_tensor is None:
        return Input(shape=input_shape)
    if not isinstance(input_tensor, KerasTensor) or input_tensor._keras_history is None:
        # Keras wraps a backend tensor in Input(tensor=...); gpu_dl's Input has no such form.
        raise ValueError(f"{fn_name}: `input_tensor` must be a symbolic tensor (from gpu_dl.layers.Input, or the "
                         f"output of layers called on one). Received: input_tensor={input_tensor!r:.200}")
    return input_tensor


def source_inputs(tensor):
    """The Input tensors ``tensor`` is computed from (Keras's ``get_source_inputs``), in the order first met."""
    found, seen, stack = [], set(), [tensor]
    while stack:
        t = stack.pop()
        if id(t) in seen:
            continue
        seen.add(id(t))
        layer, index, _ = t._keras_history
        node = layer._inbound_nodes[index]
        if node.is_input:
            found.append(t)
        else:
            stack.extend(reversed(node.input_tensors))
    return found[0] if len(found) == 1 else found


# ------------------------------------------------------------------ preprocess_input
def _array_module(x):
    if type(x).__module__.startswith("cupy"):
        import cupy
        return cupy
    return numpy


def preprocess_input(x, data_format=None, mode="caffe"):
    """Preprocess a batch of images (values 0..255), as Keras's ``imagenet_utils.preprocess_input``.

    ``mode``: "caffe" (RGB to BGR, minus the ImageNet mean of each channel, no scaling), "tf" (scaled to
    -1..1) or "torch" (scaled to 0..1, then each channel normalised by ImageNet's mean and deviation).
    ``x`` is a NumPy or CuPy array (or a nested list), 3D or 4D with 3 channels; a float array is
    overwritten, as Keras overwrites a NumPy input (``numpy.copy(x)`` first to keep it). Returns the
    preprocessed array.
    """
    if mode not in {"caffe", "tf", "torch"}:
        raise ValueError(f"preprocess_input: expected mode to be one of `caffe`, `tf` or `torch`. Received: "
                         f"mode={mode!r}")
    if data_format is None:
        data_format = backend.image_data_format()
    elif data_format not in {"channels_first", "channels_last"}:
        raise ValueError("preprocess_input: expected data_format to be one of `channels_first` or "
                         f"`channels_last`. Received: data_format={data_format!r}")
    xp = _array_module(x)
    if not hasattr(x, "dtype"):
        x = xp.asarray(x)
    if not xp.issubdtype(x.dtype, xp.floating):
        x = x.astype(floatx())
    if x.ndim not in (3, 4):
        raise ValueError(f"preprocess_input: expected a 3D image or a 4D batch of images, got shape {x.shape}.")
    channel_axis = -1 if data_format == "channels_last" else x.ndim - 3
    if x.shape[channel_axis] != 3 and mode != "tf":
        raise ValueError(f"preprocess_input: mode={mode!r} needs 3 colour channels on the {data_format} axis, got "
                         f"shape {x.shape}.")
    if mode == "tf":
        x /= 127.5
        x -= 1.0
        return x
    if mode == "torch":
        x /= 255.0
        std = _TORCH_STD
    else:
        # RGB -> BGR: a reversed view, so the subtraction below writes into the caller's array as in Keras.
        index = [slice(None)] * x.ndim
        index[channel_axis] = slice(None, None, -1)
        x = x[tuple(index)]
        std = None
    shape = [1] * x.ndim
    shape[channel_axis] = 3
    x -= xp.asarray(_MEANS[mode], dtype=x.dtype).reshape(shape)
    if std is not None:
        x /= xp.asarray(std, dtype=x.dtype).reshape(shape)
    return x


# ------------------------------------------------------------------ decode_predictions
_CLASS_INDEX_URL = "https://storage.googleapis.com/download.tensorflow.org/data/imagenet_class_index.json"
_class_index_cache = {}


def _load_class_index(path):
    path = os.fspath(path)
    if path in _class_index_cache:
        return _class_index_cache[path]
    if not os.path.isfile(path):
        raise ValueError(f"decode_predictions: `class_index` {path!r} is not a file.")
    if os.path.getsize(path) > _MAX_CLASS_INDEX_BYTES:
        raise ValueError(f"decode_predictions: {path} is {os.path.getsize(path)} bytes, too large for ImageNet's "
                         "class index (about 35 kB).")
    try:
        with open(path, encoding="utf-8") as f:
            index = json.load(f)
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"decode_predictions: {path} is not valid JSON ({e}).") from e
    expected = {str(i) for i in range(1000)}
    if not isinstance(index, dict) or set(index) != expected or not all(
            isinstance(v, list) and len(v) == 2 and all(isinstance(s, str) for s in v) for v in index.values()):
        raise ValueError(f"decode_predictions: {path} is not ImageNet's class index: expected an object mapping "
                         "'0'..'999' to [wordnet id, description].")
    _class_index_cache[path] = index
    return index


_MODES = {"caffe": "BGR, each channel minus its ImageNet mean",
          "tf": "scaled to -1..1",
          "torch": "scaled to 0..1, then each channel normalised by ImageNet's mean and standard deviation"}


def preprocessing(mode, models):
    """A family module's ``preprocess_input(x, data_format=None)``: ``preprocess_input`` in ``mode``, the one
    Keras's module for ``models`` uses."""
    def family_preprocess_input(x, data_format=None):
        return preprocess_input(x, data_format=data_format, mode=mode)
    family_preprocess_input.__name__ = family_preprocess_input.__qualname__ = "preprocess_input"
    family_preprocess_input.__doc__ = f"Images (0..255, RGB) for {models}: {_MODES[mode]} ({mode!r} mode)."
    return family_preprocess_input


def decode_predictions(preds, top=5, class_index=None):
    """The ``top`` classes of each prediction as ``(class_name, class_description, score)``, best first.

    ``preds``: an array of shape ``(samples, 1000)``. ``class_index``: the path of Keras's
    ``imagenet_class_index.json``; without it the file is looked for in ``default_dirs()`` (Keras keeps its
    download in ``~/.keras/models``), and a ValueError says where to put it when it is not there.
    """
    from ..backend import to_numpy
    preds = to_numpy(preds)
    if preds.ndim != 2 or preds.shape[1] != 1000:
        raise ValueError("decode_predictions expects a batch of predictions (i.e. a 2D array of shape "
                         f"(samples, 1000)). Received array with shape: {preds.shape}")
    if class_index is None:
        class_index = find_file(CLASS_INDEX_FILENAME)
        if class_index is None:
            raise _missing("decode_predictions", "class names", CLASS_INDEX_FILENAME, _CLASS_INDEX_URL)
    index = _load_class_index(class_index)
    results = []
    for pred in preds:
        top_indices = pred.argsort()[-top:][::-1]
        result = [tuple(index[str(i)]) + (pred[i],) for i in top_indices]
        result.sort(key=lambda r: r[2], reverse=True)
        results.append(result)
    return results
