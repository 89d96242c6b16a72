"""ResNet50, ResNet101 and ResNet152 (He et al., 2015), as Keras 3.15's ``keras.applications.resnet`` builds them:
the same layers, layer names, configs and weight shapes, so weights move between the two (Keras 3 files, and
Keras's ImageNet files in the Keras 2 HDF5 format).

Images are channels_last (gpu_dl's only layout); inputs are at least 32x32.
"""
from __future__ import annotations

from .. import layers
from . import imagenet_utils
from ._common import finish, weights_file

# ResNet (v1) epsilon: the value the original Caffe models were trained with.
_BN_EPSILON = 1.001e-5


def ResNet(stack_fn, preact, use_bias, include_top=True, weights="imagenet", input_tensor=None, input_shape=None,
           pooling=None, classes=1000, classifier_activation="softmax", name="resnet", weights_name=None,
           fn_name="ResNet"):
    """The ResNet graph around ``stack_fn`` (Keras's ``resnet.ResNet``); ``preact`` True for ResNetV2."""
    weights = imagenet_utils.check_weights(fn_name, weights)
    imagenet_utils.check_classes(fn_name, weights, include_top, classes)
    imagenet_utils.check_pooling(fn_name, pooling)
    if include_top:
        imagenet_utils.validate_activation(fn_name, classifier_activation, weights)
    input_shape = imagenet_utils.obtain_input_shape(fn_name, input_shape, default_size=224, min_size=32,
                                                    require_flatten=include_top, weights=weights)
    suffix = "" if include_top else "_notop"
    path = weights_file(fn_name, weights, f"{weights_name}_weights_tf_dim_ordering_tf_kernels{suffix}.h5", "resnet")
    img_input = imagenet_utils.image_input(fn_name, input_tensor, input_shape)
    bn_axis = 3

    x = layers.ZeroPadding2D(padding=((3, 3), (3, 3)), name="conv1_pad")(img_input)
    x = layers.Conv2D(64, 7, strides=2, use_bias=use_bias, name="conv1_conv")(x)
    if not preact:
        x = layers.BatchNormalization(axis=bn_axis, epsilon=_BN_EPSILON, name="conv1_bn")(x)
        x = layers.Activation("relu", name="conv1_relu")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    x = stack_fn(x)
    if preact:
        x = layers.BatchNormalization(axis=bn_axis, epsilon=_BN_EPSILON, name="post_bn")(x)
        x = layers.Activation("relu", name="post_relu")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    return finish(img_input, input_tensor, x, name, path)


def residual_block_v1(x, filters, kernel_size=3, stride=1, conv_shortcut=True, name=None):
    """The bottleneck block of ResNet v1: 1x1, kxk, 1x1 convolutions plus a shortcut."""
    bn_axis = 3
    if conv_shortcut:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(x)
        shortcut = layers.BatchNormalization(axis=bn_axis, epsilon=_BN_EPSILON, name=f"{name}_0_bn")(shortcut)
    else:
        shortcut = x
    x = layers.Conv2D(filters, 1, strides=stride, name=f"{name}_1_conv")(x)
    x = layers.BatchNormalization(axis=bn_axis, epsilon=_BN_EPSILON, name=f"{name}_1_bn")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    # "SAME" in capitals as Keras passes it: Keras lower-cases it, and so does gpu_dl's Conv2D.
    x = layers.Conv2D(filters, kernel_size, padding="SAME", name=f"{name}_2_conv")(x)
    x = layers.BatchNormalization(axis=bn_axis, epsilon=_BN_EPSILON, name=f"{name}_2_bn")(x)
    x = layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    x = layers.BatchNormalization(axis=bn_axis, epsilon=_BN_EPSILON, name=f"{name}_3_bn")(x)
    x = layers.Add(name=f"{name}_add")([shortcut, x])
    return layers.Activation("relu", name=f"{name}_out")(x)


def stack_residual_blocks_v1(x, filters, blocks, stride1=2, name=None):
    """``blocks`` v1 blocks, the first with a convolution shortcut and stride ``stride1``."""
    x = residual_block_v1(x, filters, stride=stride1, name=f"{name}_block1")
    for i in range(2, blocks + 1):
        x = residual_block_v1(x, filters, conv_shortcut=False, name=f"{name}_block{i}")
    return x


def residual_block_v2(x, filters, kernel_size=3, stride=1, conv_shortcut=False, name=None):
    """The bottleneck block of ResNet v2: batch normalization and ReLU first (shared with a convolution
    shortcut), then 1x1, padded kxk (with the block's stride) and 1x1 convolutions; the identity shortcut of a
    strided block is a 1x1 max pooling."""
    bn_axis = 3
    preact = layers.BatchNormalization(axis=bn_axis, epsilon=_BN_EPSILON, name=f"{name}_preact_bn")(x)
    preact = layers.Activation("relu", name=f"{name}_preact_relu")(preact)
    if conv_shortcut:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride, name=f"{name}_0_conv")(preact)
    else:
        shortcut = layers.MaxPooling2D(1, strides=stride)(x) if stride > 1 else x
    x = layers.Conv2D(filters, 1, strides=1, use_bias=False, name=f"{name}_1_conv")(preact)
    x = layers.BatchNormalization(axis=bn_axis, epsilon=_BN_EPSILON, name=f"{name}_1_bn")(x)
    x = layers.Activation("relu", name=f"{name}_1_relu")(x)
    x = layers.ZeroPadding2D(padding=((1, 1), (1, 1)), name=f"{name}_2_pad")(x)
    x = layers.Conv2D(filters, kernel_size, strides=stride, use_bias=False, name=f"{name}_2_conv")(x)
    x = layers.BatchNormalization(axis=bn_axis, epsilon=_BN_EPSILON, name=f"{name}_2_bn")(x)
    x = layers.Activation("relu", name=f"{name}_2_relu")(x)
    x = layers.Conv2D(4 * filters, 1, name=f"{name}_3_conv")(x)
    return layers.Add(name=f"{name}_out")([shortcut, x])


def stack_residual_blocks_v2(x, filters, blocks, stride1=2, name=None):
    """``blocks`` v2 blocks: the first with a convolution shortcut, the last with stride ``stride1``."""
    x = residual_block_v2(x, filters, conv_shortcut=True, name=f"{name}_block1")
    for i in range(2, blocks):
        x = residual_block_v2(x, filters, name=f"{name}_block{i}")
    return residual_block_v2(x, filters, stride=stride1, name=f"{name}_block{blocks}")


def _stacks(counts):
    def stack_fn(x):
        x = stack_residual_blocks_v1(x, 64, counts[0], stride1=1, name="conv2")
        x = stack_residual_blocks_v1(x, 128, counts[1], name="conv3")
        x = stack_residual_blocks_v1(x, 256, counts[2], name="conv4")
        return stack_residual_blocks_v1(x, 512, counts[3], name="conv5")
    return stack_fn


def _resnet_v1(fn_name, weights_name, counts, include_top, weights, input_tensor, input_shape, pooling, classes,
               classifier_activation, name):
    return ResNet(_stacks(counts), preact=False, use_bias=True, include_top=include_top, weights=weights,
                  input_tensor=input_tensor, input_shape=input_shape, pooling=pooling, classes=classes,
                  classifier_activation=classifier_activation, name=name, weights_name=weights_name,
                  fn_name=fn_name)


def ResNet50(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
             classifier_activation="softmax", name="resnet50"):
    """ResNet50 (Keras's ``keras.applications.ResNet50``): inputs preprocessed by ``resnet.preprocess_input``.

    ``weights``: None (random), "imagenet" (Keras's file ``resnet50_weights_tf_dim_ordering_tf_kernels.h5``, or
    ``..._notop.h5`` without the top, found on this machine: see ``imagenet_utils.default_dirs``) or a weights
    file's path. ``input_shape`` (height, width, 3) with sides of at least 32 when ``include_top`` is False (the
    top needs (224, 224, 3) with imagenet weights); ``pooling`` None, "avg" or "max" without the top.
    """
    return _resnet_v1("ResNet50", "resnet50", (3, 4, 6, 3), include_top, weights, input_tensor, input_shape,
                      pooling, classes, classifier_activation, name)


def ResNet101(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
              classifier_activation="softmax", name="resnet101"):
    """ResNet101 (Keras's ``keras.applications.ResNet101``); arguments as ``ResNet50``'s."""
    return _resnet_v1("ResNet101", "resnet101", (3, 4, 23, 3), include_top, weights, input_tensor, input_shape,
                      pooling, classes, classifier_activation, name)


def ResNet152(include_top=True, weights="imagenet", input_tensor=None, input_shape=None, pooling=None, classes=1000,
              classifier_activation="softmax", name="resnet152"):
    """ResNet152 (Keras's ``keras.applications.ResNet152``); arguments as ``ResNet50``'s."""
    return _resnet_v1("ResNet152", "resnet152", (3, 8, 36, 3), include_top, weights, input_tensor, input_shape,
                      pooling, classes, classifier_activation, name)


preprocess_input = imagenet_utils.preprocessing("caffe", "ResNets")
decode_predictions = imagenet_utils.decode_predictions
