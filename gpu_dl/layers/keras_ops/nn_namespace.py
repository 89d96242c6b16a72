"""Keras's ``keras.ops.nn`` namespace as ``gpu_dl.ops.nn`` (``gpu_dl.ops.nn.max_pool``, ``from gpu_dl.ops import
nn``, ``import gpu_dl.ops.nn``, whose module file ``gpu_dl/ops/nn.py`` puts this one in its place): the functions of
``keras.ops.nn`` that ``gpu_dl.ops`` offers, the same objects. Names are looked up on use (PEP 562), so a function
``gpu_dl.ops`` gains is here too."""
import importlib

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


def _offered():
    keras_ops = importlib.import_module("gpu_dl.layers.keras_ops")
    return keras_ops, [name for name in KERAS_NN if name in keras_ops.__all__ and name != "nn"]


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    keras_ops, offered = _offered()
    if name in offered:
        return getattr(keras_ops, name)
    if name in KERAS_NN:
        raise AttributeError(f"gpu_dl.ops.nn has no {name!r}: gpu_dl does not offer Keras's keras.ops.nn.{name}.")
    raise AttributeError(f"gpu_dl.ops.nn has no {name!r} (it offers these of Keras's keras.ops.nn: "
                         f"{', '.join(offered)}).")


def __dir__():
    return sorted(_offered()[1])
