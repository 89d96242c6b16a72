"""Keras's ``keras.ops.nn`` namespace as ``gpu_dl.ops.nn`` (``gpu_dl.ops.nn.max_pool``, ``from gpu_dl.ops import
nn``, ``import gpu_dl.ops.nn``, whose module file ``gpu_dl/ops/nn.py`` puts this one in its place): the functions of
``keras.ops.nn`` that ``gpu_dl.ops`` offers, the same objects. Names are looked up on use (PEP 562), so a function
``gpu_dl.ops`` gains is here too."""
from .sub_namespace import module_hooks

# The names of Keras 3.15's keras.ops.nn.
KERAS_NN = (
    "adaptive_average_pool", "adaptive_max_pool", "average_pool", "batch_normalization", "binary_crossentropy",
    "categorical_crossentropy", "celu", "conv", "conv_transpose", "ctc_decode", "ctc_loss", "depth_to_space",
    "depthwise_conv", "dot_product_attention", "elu", "fold", "gelu", "glu", "hard_shrink", "hard_sigmoid",
    "hard_silu", "hard_swish", "hard_tanh", "layer_normalization", "leaky_relu", "log_sigmoid", "log_softmax",
    "max_pool", "moments", "multi_hot", "normalize", "one_hot", "polar", "psnr", "relu", "relu6",
    "rms_normalization", "selu", "separable_conv", "sigmoid", "silu", "soft_shrink", "softmax", "softplus",
    "softsign", "space_to_depth", "sparse_categorical_crossentropy", "sparse_plus", "sparse_sigmoid", "sparsemax",
    "squareplus", "swish", "tanh_shrink", "threshold", "unfold",
)


__getattr__, __dir__ = module_hooks(__name__, "nn", KERAS_NN)
