"""Keras's ImageNet models, by module (with the other names Keras gives the module):

- ``resnet`` (``resnet50``): ``ResNet50``, ``ResNet101``, ``ResNet152``
- ``resnet_v2``: ``ResNet50V2``, ``ResNet101V2``, ``ResNet152V2``
- ``vgg`` (``vgg16``, ``vgg19``): ``VGG16``, ``VGG19``
- ``mobilenet``: ``MobileNet``
- ``mobilenet_v2``: ``MobileNetV2``
- ``mobilenet_v3``: ``MobileNetV3Small``, ``MobileNetV3Large``
- ``xception``: ``Xception``
- ``inception_v3``: ``InceptionV3``
- ``inception_resnet_v2``: ``InceptionResNetV2``
- ``densenet``: ``DenseNet121``, ``DenseNet169``, ``DenseNet201``
- ``efficientnet``: ``EfficientNetB0`` to ``EfficientNetB7``
- ``efficientnet_v2``: ``EfficientNetV2B0`` to ``EfficientNetV2B3``, ``EfficientNetV2S``, ``EfficientNetV2M``,
  ``EfficientNetV2L``
- ``nasnet``: ``NASNetMobile``, ``NASNetLarge``
- ``convnext``: ``ConvNeXtTiny``, ``ConvNeXtSmall``, ``ConvNeXtBase``, ``ConvNeXtLarge``, ``ConvNeXtXLarge``

Built as Keras 3.15 builds them (same arguments, layer names, configs and weight shapes), so weights move
between the two. Nothing is downloaded: ``weights`` is None, a path (Keras 3 ``.weights.h5``/``.keras``, or a
Keras 2 ``.h5`` file such as Keras's published ImageNet weights), or "imagenet" for Keras's file of that name
already on this machine (``imagenet_utils.default_dirs``). Each module has its family's ``preprocess_input``
and ``decode_predictions``.
"""
from . import (convnext, densenet, efficientnet, efficientnet_v2, imagenet_utils, inception_resnet_v2, inception_v3,
               mobilenet, mobilenet_v2, mobilenet_v3, nasnet, resnet, resnet_v2, vgg, xception)
from .convnext import ConvNeXtBase, ConvNeXtLarge, ConvNeXtSmall, ConvNeXtTiny, ConvNeXtXLarge
from .densenet import DenseNet121, DenseNet169, DenseNet201
from .efficientnet import (EfficientNetB0, EfficientNetB1, EfficientNetB2, EfficientNetB3, EfficientNetB4,
                           EfficientNetB5, EfficientNetB6, EfficientNetB7)
from .efficientnet_v2 import (EfficientNetV2B0, EfficientNetV2B1, EfficientNetV2B2, EfficientNetV2B3,
                              EfficientNetV2L, EfficientNetV2M, EfficientNetV2S)
from .inception_resnet_v2 import InceptionResNetV2
from .inception_v3 import InceptionV3
from .mobilenet import MobileNet
from .mobilenet_v2 import MobileNetV2
from .mobilenet_v3 import MobileNetV3Large, MobileNetV3Small
from .nasnet import NASNetLarge, NASNetMobile
from .resnet import ResNet50, ResNet101, ResNet152
from .resnet_v2 import ResNet50V2, ResNet101V2, ResNet152V2
from .vgg import VGG16, VGG19
from .xception import Xception

# Keras's module names: keras.applications.resnet50.preprocess_input, .vgg16.preprocess_input, ...
resnet50 = resnet
vgg16 = vgg
vgg19 = vgg

__all__ = [
    # builders
    "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtSmall", "ConvNeXtTiny", "ConvNeXtXLarge", "DenseNet121",
    "DenseNet169", "DenseNet201", "EfficientNetB0", "EfficientNetB1", "EfficientNetB2", "EfficientNetB3",
    "EfficientNetB4", "EfficientNetB5", "EfficientNetB6", "EfficientNetB7", "EfficientNetV2B0", "EfficientNetV2B1",
    "EfficientNetV2B2", "EfficientNetV2B3", "EfficientNetV2L", "EfficientNetV2M", "EfficientNetV2S",
    "InceptionResNetV2", "InceptionV3", "MobileNet", "MobileNetV2", "MobileNetV3Large", "MobileNetV3Small",
    "NASNetLarge", "NASNetMobile", "ResNet50", "ResNet50V2", "ResNet101", "ResNet101V2", "ResNet152", "ResNet152V2",
    "VGG16", "VGG19", "Xception",
    # modules
    "convnext", "densenet", "efficientnet", "efficientnet_v2", "imagenet_utils", "inception_resnet_v2",
    "inception_v3", "mobilenet", "mobilenet_v2", "mobilenet_v3", "nasnet", "resnet", "resnet50", "resnet_v2", "vgg",
    "vgg16", "vgg19", "xception",
]
