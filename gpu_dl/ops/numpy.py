"""``import gpu_dl.ops.numpy``: Keras's ``keras.ops.numpy`` namespace, the one ``gpu_dl/layers/keras_ops`` builds;
this module puts it in its own place on import."""
from . import _keras_namespace

_keras_namespace(__name__)
