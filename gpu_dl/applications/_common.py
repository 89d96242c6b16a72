"""The start and end every application's builder shares: argument checks, which weights file to read, the
classifier or pooling on top, and the model."""
from __future__ import annotations

from . import imagenet_utils

# Where Keras publishes the ImageNet weight files (named in the error that asks for a local copy).
KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"


def check_arguments(fn_name, weights, include_top, classes, pooling, classifier_activation, input_shape,
                    default_size, min_size):
    """Keras's checks of the arguments every application takes (``weights``, ``classes``, ``pooling``,
    ``classifier_activation``, ``input_shape``), its errors naming ``fn_name``; returns (weights, input_shape)."""
    weights = imagenet_utils.check_weights(fn_name, weights)
    imagenet_utils.check_classes(fn_name, weights, include_top, classes)
    imagenet_utils.check_pooling(fn_name, pooling)
    if include_top:
        imagenet_utils.validate_activation(fn_name, classifier_activation, weights)
    input_shape = imagenet_utils.obtain_input_shape(fn_name, input_shape, default_size=default_size,
                                                    min_size=min_size, require_flatten=include_top, weights=weights)
    return weights, input_shape


def weights_file(fn_name, weights, imagenet_file, url_folder, url=None):
    """The file to load: None for no weights, the local copy of ``imagenet_file`` for "imagenet" (a ValueError
    saying where to put it when absent: checked before the model is built), else the path ``weights``.
    ``url`` is where Keras downloads it from, ``KERAS_WEIGHTS_URL/url_folder/imagenet_file`` unless given."""
    if weights == "imagenet":
        return imagenet_utils.imagenet_weights_path(fn_name, imagenet_file,
                                                    url or f"{KERAS_WEIGHTS_URL}{url_folder}/{imagenet_file}")
    return weights


def head(x, include_top, pooling, classes, classifier_activation, pool_names=(None, None), dropout=None):
    """What Keras puts on the features: with ``include_top`` a GlobalAveragePooling2D named "avg_pool" (a Dropout
    of rate ``dropout`` named "top_dropout" where given) and the Dense classifier "predictions"; without it the
    global pooling ``pooling`` asks for, named as ``pool_names`` (avg, max) give (None: Keras's numbered name)."""
    from .. import layers
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout:
            x = layers.Dropout(dropout, name="top_dropout")(x)
        return layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name=pool_names[0])(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name=pool_names[1])(x)
    return x


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
