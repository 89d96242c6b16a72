"""``import gpu_dl.ops.nn``: Keras's ``keras.ops.nn`` namespace, the one ``gpu_dl/layers/keras_ops`` builds;
this module puts it in its own place on import."""
from . import _keras_namespace

_keras_namespace(__name__)
