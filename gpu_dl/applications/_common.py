"""The start and end every application's builder shares: which weights file to read, and the model."""
from __future__ import annotations

from . import imagenet_utils

# Where Keras publishes the ImageNet weight files (named in the error that asks for a local copy).
KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"


def weights_file(fn_name, weights, imagenet_file, url_folder):
    """The file to load: None for no weights, the local copy of ``imagenet_file`` for "imagenet" (a ValueError
    saying where to put it when absent: checked before the model is built), else the path ``weights``."""
    if weights == "imagenet":
        return imagenet_utils.imagenet_weights_path(fn_name, imagenet_file,
                                                    f"{KERAS_WEIGHTS_URL}{url_folder}/{imagenet_file}")
    return weights


def finish(img_input, input_tensor, x, name, path):
    """``Model(inputs, x, name=name)`` with the weights of ``path`` loaded (Keras 3 ``.weights.h5``/``.keras``,
    or a Keras 2 ``.h5`` file such as Keras's ImageNet weights)."""
    from ..models import Functional
    # Keras starts the model at the Inputs the given tensor comes from, so layers before it are kept.
    inputs = imagenet_utils.source_inputs(input_tensor) if input_tensor is not None else img_input
    model = Functional(inputs, x, name=name)
    if path is not None:
        model.load_weights(path)
    return model
