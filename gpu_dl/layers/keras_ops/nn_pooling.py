"""Keras's ``keras.ops.nn`` pooling: ``MaxPool``, ``AveragePool``, ``AdaptiveMaxPool`` and
``AdaptiveAveragePool``, with Keras's classes, modules and configs, each with a forward and an exact backward.

They run the internal kernels (``ops/pool.py``, ``pool3d.py``, ``adaptive_pool.py``) on channels_last data:
channels_first inputs are transposed in and out, 1-D inputs are images of height 1. "same" padding is Keras's
(the odd pad after); average pooling divides by the number of positions inside the input (TensorFlow's rule, as
gpu_dl's pooling layers; Keras on torch pads an uneven "same" window by repeating the edge instead, which gives
other averages at the right and bottom borders).
"""
from __future__ import annotations

from ... import backend
from ...ops import adaptive_pool, pool, pool3d
from ...ops.convolution import conv_padding
from .base import _float, _xp
from .nn_base import NNOperation, _data_format, _first_shape, _from_last, _last_shape, _padding, _spatial_rank, \
    _to_last, _tuple

__all__ = ["MaxPool", "AveragePool", "AdaptiveMaxPool", "AdaptiveAveragePool", "OPERATIONS"]


class _Pool(NNOperation):
    positional = ("inputs",)
    config_keys = ("pool_size", "strides", "padding", "data_format")

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        where = self._where()
        self.pool_size = list(pool_size) if isinstance(pool_size, (list, tuple)) else pool_size
        self.strides = list(strides) if isinstance(strides, (list, tuple)) else strides
        self.padding = _padding(padding, where)
        self.data_format = _data_format(data_format, where)
        _tuple(self.pool_size, len(self.pool_size) if isinstance(self.pool_size, list) else 1, "pool_size", where)

    def _geometry(self, last_shape):
        rank = _spatial_rank(last_shape, self._where())
        window = _tuple(self.pool_size, rank, "pool_size", self._where())
        strides = window if self.strides is None else _tuple(self.strides, rank, "strides", self._where())
        pads = conv_padding(self.padding, last_shape[1:-1], window, strides, (1,) * rank)
        out = []
        for n, k, s, p in zip(last_shape[1:-1], window, strides, pads):
            size = None if n is None else (n + p[0] + p[1] - k) // s + 1
            if size is not None and size < 1:
                raise ValueError(f"{self._where()}: a window of {k} does not fit an axis of {n} "
                                 f"(padding '{self.padding}').")
            out.append(size)
        return window, strides, pads, (last_shape[0],) + tuple(out) + (last_shape[-1],)

    def output_shape_of(self, arguments, shapes):
        shape = self._shapes(arguments, shapes)["inputs"]
        return _first_shape(self._geometry(_last_shape(shape, self.data_format))[3], self.data_format)

    def result_dtype(self, tensors, arguments):
        dtype = tensors[0].dtype
        return dtype if _float(dtype) or self.keeps_integers else backend.floatx()

    def eager_dtype(self, arrays):
        return arrays[0].dtype.name if _float(arrays[0].dtype) or self.keeps_integers else backend.floatx()

    def forward_function(self, x, *_):
        x = _to_last(x, self.data_format)
        window, strides, pads, _ = self._geometry(x.shape)
        image = x[:, None] if x.ndim == 3 else x
        geometry = ((1,) + window, (1,) + strides, ((0, 0),) + pads) if x.ndim == 3 else (window, strides, pads)
        y = self.pooled(_xp(x).ascontiguousarray(image), *geometry)
        return _from_last(y[:, 0] if x.ndim == 3 else y, self.data_format)

    def backward_function(self, dy, operands, y):
        x = _to_last(operands[0], self.data_format)
        window, strides, pads, _ = self._geometry(x.shape)
        image_shape = (x.shape[0], 1) + x.shape[1:] if x.ndim == 3 else x.shape
        geometry = ((1,) + window, (1,) + strides, ((0, 0),) + pads) if x.ndim == 3 else (window, strides, pads)
        dy = _to_last(dy, self.data_format)
        dy = _xp(dy).ascontiguousarray(dy[:, None] if x.ndim == 3 else dy)
        dx = self.pooled_backward(dy, image_shape, *geometry)
        return [_from_last(dx[:, 0] if x.ndim == 3 else dx, self.data_format)]


class MaxPool(_Pool):
    """``max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None)``: 1-, 2- or 3-D; the
    gradient goes to each window's first maximum."""

    keeps_integers = True

    def pooled(self, x, window, strides, pads):
        forward = pool3d.max_pool3d_forward if len(window) == 3 else pool.max_pool2d_forward
        if x.dtype.kind != "f":
            # The kernels pool floats; float64 holds every int32 exactly, and integers take no gradient.
            return forward(x.astype("float64"), window, strides, pads)[0].astype(x.dtype)
        y, self._argmax = forward(x, window, strides, pads)
        return y

    def pooled_backward(self, dy, shape, window, strides, pads):
        backward = pool3d.max_pool3d_backward if len(window) == 3 else pool.max_pool2d_backward
        return backward(dy, self._argmax, shape, window, strides, pads)


class AveragePool(_Pool):
    """``average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None)``: 1-, 2- or 3-D;
    "same" windows average their positions inside the input."""

    def pooled(self, x, window, strides, pads):
        return (pool3d.avg_pool3d_forward if len(window) == 3 else pool.avg_pool2d_forward)(x, window, strides, pads)

    def pooled_backward(self, dy, shape, window, strides, pads):
        backward = pool3d.avg_pool3d_backward if len(window) == 3 else pool.avg_pool2d_backward
        return backward(dy, shape, window, strides, pads)


class _AdaptivePool(NNOperation):
    positional = ("inputs",)
    config_keys = ("output_size", "data_format")

    def __init__(self, output_size, data_format=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.output_size = list(output_size) if isinstance(output_size, (list, tuple)) else output_size
        self.data_format = _data_format(data_format, self._where())
        _tuple(self.output_size, len(self.output_size) if isinstance(self.output_size, list) else 1, "output_size",
               self._where())

    def _size(self, last_shape):
        return _tuple(self.output_size, _spatial_rank(last_shape, self._where()), "output_size", self._where())

    def output_shape_of(self, arguments, shapes):
        shape = _last_shape(self._shapes(arguments, shapes)["inputs"], self.data_format)
        return _first_shape((shape[0],) + self._size(shape) + (shape[-1],), self.data_format)

    result_dtype = _Pool.result_dtype
    eager_dtype = _Pool.eager_dtype

    def forward_function(self, x, *_):
        x = _to_last(x, self.data_format)
        return _from_last(self.pooled(x, self._size(x.shape)), self.data_format)

    def backward_function(self, dy, operands, y):
        x = operands[0]
        return [_from_last(self.pooled_backward(_to_last(dy, self.data_format), _last_shape(x.shape, self.data_format)),
                           self.data_format)]


class AdaptiveMaxPool(_AdaptivePool):
    """``adaptive_max_pool(inputs, output_size, data_format=None)``: PyTorch's windows; the gradient goes to each
    window's first maximum."""

    keeps_integers = True

    def pooled(self, x, size):
        y, self._argmax = adaptive_pool.adaptive_max_pool_forward(x, size)
        return y

    def pooled_backward(self, dy, shape):
        return adaptive_pool.adaptive_max_pool_backward(dy, self._argmax, shape)


class AdaptiveAveragePool(_AdaptivePool):
    """``adaptive_average_pool(inputs, output_size, data_format=None)``: PyTorch's windows."""

    def pooled(self, x, size):
        return adaptive_pool.adaptive_avg_pool_forward(x, size)

    def pooled_backward(self, dy, shape):
        return adaptive_pool.adaptive_avg_pool_backward(dy, shape)


OPERATIONS = {cls.__name__: cls for cls in (MaxPool, AveragePool, AdaptiveMaxPool, AdaptiveAveragePool)}
