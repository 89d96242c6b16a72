"""ResNet50V2, ResNet101V2 and ResNet152V2 (He et al., 2016: identity mappings, batch normalization and ReLU
before each convolution), as Keras 3.15's ``keras.applications.resnet_v2`` builds them: the same layers, layer
names, configs and weight shapes, so weights move between the two (Keras 3 files, and Keras's ImageNet files in
the Keras 2 HDF5 format).

Images are channels_last (gpu_dl's only layout); inputs are at least 32x32.
"""
from __future__ import annotations

from . import imagenet_utils
from .resnet import ResNet, stack_residual_blocks_v2


def _stacks(counts):
    def stack_fn(x):
        x = stack_residual_blocks_v2(x, 64, counts[0], name="conv2")
        x = stack_residual_blocks_v2(x, 128, counts[1], name="conv3")
        x = stack_residual_blocks_v2(x, 256, counts[2], name="conv4")
        return stack_residual_blocks_v2(x, 512, counts[3], stride1=1, name="conv5")
    return stack_fn


def _resnet_v2(fn_name, weights_name, counts, include_top, weights, input_tensor, input_shape, pooling, classes,
               classifier_activation, name):
    return ResNet(_stacks(counts), preact=True, use_bias=True, include_top=include_top, weights=weights,
                  input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                  classifier_activation=classifier_activation, name=name, weights_name=weights_name,
                  fn_name=fn_name)


def ResNet50V2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
               classes=1000, classifier_activation="softmax", name="resnet50v2"):
    """ResNet50V2 (Keras's ``keras.applications.ResNet50V2``): inputs preprocessed by
    ``resnet_v2.preprocess_input`` (scaled to -1..1).

    ``weights``: None (random), "imagenet" (Keras's ``resnet50v2_weights_tf_dim_ordering_tf_kernels[_notop].h5``
    found on this machine: see ``imagenet_utils.default_dirs``) or a weights file's path. ``input_shape``
    (height, width, 3) with sides of at least 32 (the top needs (224, 224, 3) with imagenet weights);
    ``pooling`` None, "avg" or "max" without the top.
    """
    return _resnet_v2("ResNet50V2", "resnet50v2", (3, 4, 6, 3), include_top, weights, input_tensor, input_shape,
                      pooling, classes, classifier_activation, name)


def ResNet101V2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="resnet101v2"):
    """ResNet101V2 (Keras's ``keras.applications.ResNet101V2``); arguments as ``ResNet50V2``'s."""
    return _resnet_v2("ResNet101V2", "resnet101v2", (3, 4, 23, 3), include_top, weights, input_tensor, input_shape,
                      pooling, classes, classifier_activation, name)


def ResNet152V2(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None,
                classes=1000, classifier_activation="softmax", name="resnet152v2"):
    """ResNet152V2 (Keras's ``keras.applications.ResNet152V2``); arguments as ``ResNet50V2``'s."""
    return _resnet_v2("ResNet152V2", "resnet152v2", (3, 8, 36, 3), include_top, weights, input_tensor, input_shape,
                      pooling, classes, classifier_activation, name)


preprocess_input = imagenet_utils.preprocessing("tf", "ResNet v2 models")
decode_predictions = imagenet_utils.decode_predictions
