"""The base class of gpu_dl's metrics (Keras 3's ``keras.metrics.Metric``)."""
from __future__ import annotations

from .backend import standardize_dtype
from .catalogue import snake_case


class Metric:
    """Base class: subclasses define ``update_state``, ``result`` and ``reset_state``."""

    def __init__(self, name=None, dtype=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: `name` must be a string, got {name!r}.")
        self.name = name or snake_case(type(self).__name__)
        self.dtype = self._checked_dtype(dtype)
        self.reset_state()

    def _checked_dtype(self, dtype):
        """The dtype's name; metrics whose state may be integer (the IoU family) widen what is accepted."""
        return standardize_dtype(dtype, f"{type(self).__name__}: dtype")

    def update_state(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define update_state.")

    def result(self):
        raise NotImplementedError(f"{type(self).__name__} must define result.")

    def reset_state(self):
        pass

    def __call__(self, *args, **kwargs):
        """Update with one batch and return the running result (as Keras's ``Metric.__call__``)."""
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"
