"""The module hooks (PEP 562) of ``gpu_dl.ops.nn`` and ``gpu_dl.ops.numpy``: each offers the functions of one of
Keras's ``keras.ops`` sub-namespaces that ``gpu_dl.ops`` has, the same objects, looked up on use so that a
function ``gpu_dl.ops`` gains is there too."""
import importlib


def module_hooks(module_name, namespace, keras_names):
    """``(__getattr__, __dir__)`` of the module ``module_name``, which stands for ``gpu_dl.ops.<namespace>``:
    the names ``keras_names`` of Keras's ``keras.ops.<namespace>`` that ``gpu_dl.ops`` has are read from it;
    the others are refused, saying why."""

    def offered():
        keras_ops = importlib.import_module("gpu_dl.layers.keras_ops")
        return keras_ops, [name for name in keras_names if name in keras_ops.__all__]

    def __getattr__(name):
        if name.startswith("__"):
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        keras_ops, names = offered()
        if name in names:
            return getattr(keras_ops, name)
        if name in keras_names:
            raise AttributeError(f"gpu_dl.ops.{namespace} has no {name!r}: gpu_dl does not offer Keras's "
                                 f"keras.ops.{namespace}.{name}.")
        raise AttributeError(f"gpu_dl.ops.{namespace} has no {name!r} (it offers these of Keras's "
                             f"keras.ops.{namespace}: {', '.join(names)}).")

    def __dir__():
        return sorted(offered()[1])

    return __getattr__, __dir__
