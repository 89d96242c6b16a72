"""VGG16 and VGG19 (Simonyan and Zisserman, 2014), as Keras 3.15's ``keras.applications.vgg16``/``vgg19`` build
them: the same layers, layer names, configs and weight shapes, so weights move between the two.

Images are channels_last (gpu_dl's only layout); inputs are at least 32x32.
"""
from __future__ import annotations

from .. import layers
from . import imagenet_utils
from ._common import finish, weights_file

# Convolutions per block (64, 128, 256, 512, 512 filters).
_DEPTHS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
_FILTERS = (64, 128, 256, 512, 512)


def _vgg(fn_name, kind, include_top, weights, input_tensor, input_shape, pooling, classes, classifier_activation,
         name):
    weights = imagenet_utils.check_weights(fn_name, weights)
    imagenet_utils.check_classes(fn_name, weights, include_top, classes)
    imagenet_utils.check_pooling(fn_name, pooling)
    if include_top:
        imagenet_utils.validate_activation(fn_name, classifier_activation, weights)
    input_shape = imagenet_utils.obtain_input_shape(fn_name, input_shape, default_size=224, min_size=32,
                                                    require_flatten=include_top, weights=weights)
    suffix = "" if include_top else "_notop"
    path = weights_file(fn_name, weights, f"{kind}_weights_tf_dim_ordering_tf_kernels{suffix}.h5", kind)
    img_input = imagenet_utils.image_input(fn_name, input_tensor, input_shape)
    x = img_input
    for block, (depth, filters) in enumerate(zip(_DEPTHS[kind], _FILTERS), start=1):
        for conv in range(1, depth + 1):
            x = layers.Conv2D(filters, (3, 3), activation="relu", padding="same", name=f"block{block}_conv{conv}")(x)
        x = layers.MaxPooling2D((2, 2), strides=(2, 2), name=f"block{block}_pool")(x)
    if include_top:
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(4096, activation="relu", name="fc1")(x)
        x = layers.Dense(4096, activation="relu", name="fc2")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D()(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D()(x)
    return finish(img_input, input_tensor, x, name, path)


def VGG16(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
          classifier_activation="softmax", name="vgg16"):
    """VGG16 (Keras's ``keras.applications.VGG16``): inputs preprocessed by ``vgg16.preprocess_input``.

    ``weights``: None, "imagenet" (Keras's ``vgg16_weights_tf_dim_ordering_tf_kernels[_notop].h5`` found on this
    machine, see ``imagenet_utils.default_dirs``) or a weights file's path. The top (Flatten, two Dense(4096),
    the classifier) needs a fixed ``input_shape``.
    """
    return _vgg("VGG16", "vgg16", include_top, weights, input_tensor, input_shape, pooling, classes,
                classifier_activation, name)


def VGG19(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
          classifier_activation="softmax", name="vgg19"):
    """VGG19 (Keras's ``keras.applications.VGG19``); arguments as ``VGG16``'s."""
    return _vgg("VGG19", "vgg19", include_top, weights, input_tensor, input_shape, pooling, classes,
                classifier_activation, name)


preprocess_input = imagenet_utils.preprocessing("caffe", "VGG")
decode_predictions = imagenet_utils.decode_predictions
