"""The operation a function decorated with ``custom_gradient`` records on symbolic tensors
(``CustomGradient``), whose backward is the function's ``grad_fn``.
"""
from __future__ import annotations

from ..operations import Operation
from .nn_base import _is_symbolic

__all__ = ["CustomGradient"]


class CustomGradient(Operation):
    """The call of a function decorated with ``custom_gradient`` on symbolic tensors: its forward runs the function
    on arrays, which returns ``(value, grad_fn)``, and its backward is ``grad_fn``'s (called as Keras's torch
    backend calls it, ``grad_fn(*args, upstream=dy)``, where it takes ``upstream`` by keyword only; else
    ``grad_fn(dy)``, as on JAX and TensorFlow). gpu_dl's own: a function is not saved, so a model holding one is
    not either."""

    arity = None
    casts_inputs = False
    keras_module = "gpu_dl.ops"

    def __init__(self, function=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.function = function
        self._grad_fn = None

    def apply(self, *args):
        probe = self.function(*args)
        if not isinstance(probe, (tuple, list)) or len(probe) != 2 or not callable(probe[1]) or \
                not _is_symbolic(probe[0]):
            raise TypeError(f"{self._where()}: the function decorated with custom_gradient must return (value, "
                            "grad_fn), one tensor and a callable.")
        self._probe = probe[0]
        return super().apply(*args)

    def result_dtype(self, tensors, arguments):
        return self._probe.dtype

    def output_shape_of(self, arguments, shapes):
        return tuple(self._probe.shape)

    def operands(self, arrays):
        given = iter(arrays)
        return [next(given) if a is None else a for a in self.arguments]

    def forward_function(self, *operands):
        value, self._grad_fn = self.function(*operands)
        return value

    def backward_function(self, dy, operands, y):
        import inspect
        try:
            parameter = inspect.signature(self._grad_fn).parameters.get("upstream")
        except (TypeError, ValueError):
            parameter = None
        by_name = parameter is not None and parameter.kind == inspect.Parameter.KEYWORD_ONLY
        grads = self._grad_fn(*operands, upstream=dy) if by_name else self._grad_fn(dy)
        grads = list(grads) if isinstance(grads, (tuple, list)) else [grads]
        if len(grads) != len(operands):
            raise ValueError(f"{self._where()}: grad_fn gave {len(grads)} gradient(s) for {len(operands)} "
                             "argument(s).")
        return grads

    def get_config(self):
        raise ValueError(f"{self._where()}: a function decorated with custom_gradient cannot be saved (a Python "
                         "function is not part of a model's config); write it as a layer with its own backward, or "
                         "save the weights only.")
