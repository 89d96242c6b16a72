"""The operations of ``keras.ops.nn`` beyond the activations: pooling (``MaxPool``, ``AveragePool``,
``AdaptiveMaxPool``, ``AdaptiveAveragePool``), convolutions (``DepthwiseConv``, ``SeparableConv``), normalizations
(``BatchNorm``, ``LayerNorm``, ``RMSNorm``), ``DotProductAttention``, the cross-entropies
(``BinaryCrossentropy``, ``CategoricalCrossentropy``, ``SparseCategoricalCrossentropy``), ``CTCLoss``,
``CTCDecode`` and ``PSNR``: Keras's classes, modules and configs, each with a forward and an exact backward.

Their calls take several tensors, some optional: an argument Keras's call takes as None is kept as ``ABSENT``
among the operation's arguments (written as null in a saved call, as Keras writes it). Keras records some
of them as keywords of the call (``scale`` of ``rms_normalization``; ``bias``, ``mask`` and ``scale`` of
``dot_product_attention``): gpu_dl writes them there too, symbolic tensors (``scale``, ``bias``, ``mask``) as
the node's inputs and numbers, arrays or None as constants; a tensor given in its positional place stays there.

Pooling and convolutions run the internal kernels (``ops/pool.py``, ``pool3d.py``, ``adaptive_pool.py``,
``depthwise.py``) on channels_last data: channels_first inputs are transposed in and out, 1-D inputs are
images of height 1. "same" padding is Keras's (the odd pad after); average pooling divides by the number of
positions inside the input (TensorFlow's rule, as gpu_dl's pooling layers; Keras on torch pads an uneven
"same" window by repeating the edge instead, which gives other averages at the right and bottom borders).
"""
from __future__ import annotations

import math
import numbers

import numpy

from ... import backend
from ...ops import adaptive_pool, ctc, depthwise, pool, pool3d
from ...ops.arithmetic import reduce_to_shape
from ...ops.convolution import conv_padding
from ..operations import Operation
from .base import NN, KerasOperation, _float, _xp

__all__ = ["ABSENT", "NNOperation", "MaxPool", "AveragePool", "AdaptiveMaxPool", "AdaptiveAveragePool",
           "DepthwiseConv", "SeparableConv", "BatchNorm", "LayerNorm", "RMSNorm", "DotProductAttention",
           "BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "CTCLoss",
           "CTCDecode", "PSNR", "CustomGradient", "OPERATIONS"]


class _Absent:
    """An argument the call took as None (an optional tensor not given)."""

    def __repr__(self):
        return "None"

    def __eq__(self, other):
        return isinstance(other, _Absent)

    def __hash__(self):
        return 0


ABSENT = _Absent()


def _is_symbolic(value):
    from ..symbolic import is_symbolic
    return is_symbolic(value)


def _promoted(*dtypes):
    """Keras's result dtype of float tensors (and integers: floatx)."""
    floats = [d for d in dtypes if d is not None and _float(d)]
    return numpy.result_type(*floats).name if floats else backend.floatx()


class NNOperation(KerasOperation):
    """An operation of several positional tensors (``positional``: Keras's names, in order), some of which may
    be absent (None), and keyword arguments of the call (``keyword_arguments``): tensors where
    ``tensor_keywords`` names them, else constants. A tensor given by keyword is an input of the node like the
    others, and is written among the call's keywords, as Keras records it."""

    keras_module = NN
    arity = None
    casts_inputs = False
    positional = ()
    required = 1            # how many leading positional arguments must be given
    keeps_integers = False
    dtype_from = None       # the positional argument whose dtype (promoted) is the result's; None: all of them

    def __init__(self, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.keywords = {}
        self.by_keyword = ()    # the positional names whose tensors the call gave by keyword

    # ---------------------------------------------------------- the symbolic call
    def apply(self, *args, **kwargs):
        args = list(args)
        if len(args) > len(self.positional):
            raise TypeError(f"{self._where()} takes at most {len(self.positional)} positional arguments "
                            f"({', '.join(self.positional)}), got {len(args)}.")
        unknown = sorted(set(kwargs) - set(self.keyword_arguments))
        if unknown:
            raise TypeError(f"{self._where()}: unknown keyword argument(s) {unknown}; it takes "
                            f"{', '.join(self.keyword_arguments) or 'none'}.")
        keywords, by_keyword = {}, []
        for key in self.keyword_arguments:
            value = kwargs.get(key)
            position = self.positional.index(key)
            if key in kwargs and position < len(args) and args[position] is not None:
                raise TypeError(f"{self._where()}: `{key}` is given both positionally and by keyword.")
            if _is_symbolic(value):
                if key not in self.tensor_keywords:
                    raise TypeError(f"{self._where()}: `{key}` must be a number or None, not a symbolic tensor.")
                # The node keeps it among its input tensors, in its positional place; it is written as a keyword.
                args += [None] * (position + 1 - len(args))
                args[position] = value
                by_keyword.append(key)
            elif key in kwargs or position >= len(args):
                keywords[key] = self.accept_keyword(key, value)
        if any(args[i] is None for i in range(min(self.required, len(args)))) or len(args) < self.required:
            raise TypeError(f"{self._where()} needs {', '.join(self.positional[:self.required])}.")
        self.keywords, self.by_keyword = keywords, tuple(by_keyword)
        return Operation.apply(self, *args)

    def accept_argument(self, position, value):
        if value is None or isinstance(value, _Absent):
            return ABSENT
        return super().accept_argument(position, value)

    def accept_keyword(self, key, value):
        """A keyword's value as kept: None, a number or a host array."""
        if value is None or isinstance(value, numbers.Real) and not isinstance(value, bool):
            return value.item() if isinstance(value, numpy.generic) else value
        if hasattr(value, "shape") and hasattr(value, "dtype"):
            return numpy.array(backend.to_numpy(value), copy=True)
        raise TypeError(f"{self._where()}: `{key}` must be a tensor, an array, a number or None, got {value!r:.80}.")

    @classmethod
    def decode_argument(cls, position, value, where):
        if value is None:
            return ABSENT
        return super().decode_argument(position, value, where)

    @classmethod
    def decode_keyword(cls, key, value, where):
        """A constant keyword argument read from a saved call: an array as Keras writes one, a number or None."""
        if isinstance(value, dict) and value.get("class_name") in ("__numpy__", "__tensor__"):
            return Operation.decode_argument(0, value, where)
        return super().decode_keyword(key, value, where)

    def keras_arguments(self, tensors):
        given = iter(tensors)
        return [next(given) if a is None else (None if isinstance(a, _Absent) else a) for a in self.arguments]

    def keras_keywords(self):
        return dict(self.keywords)

    def keras_call(self, tensors):
        args = self.keras_arguments(tensors)
        kwargs = {}
        for key in self.keyword_arguments:
            position = self.positional.index(key)
            if key in self.by_keyword:
                kwargs[key], args[position] = args[position], None
            elif key in self.keywords:
                kwargs[key] = self.keywords[key]
        # The places the keywords' tensors were kept in are not positional arguments of the recorded call.
        while len(args) > self.required and args[-1] is None and self.positional[len(args) - 1] in kwargs:
            args.pop()
        return args, kwargs

    def same_arguments(self, arguments):
        return len(self.arguments) == len(arguments) and all(
            (a is None) == (b is None) and type(a) is type(b) for a, b in zip(self.arguments, arguments))

    def _shapes(self, arguments, shapes):
        """Per positional name (absent ones included): the shape, or None where absent."""
        given = iter(shapes)
        out = {}
        for name, a in zip(self.positional, list(arguments) + [ABSENT] * (len(self.positional) - len(arguments))):
            out[name] = tuple(next(given)) if a is None else (None if isinstance(a, _Absent) else
                                                              tuple(getattr(a, "shape", ())))
        return out

    def _dtypes(self, tensors, arguments):
        given = iter(tensors)
        out = {}
        for name, a in zip(self.positional, list(arguments) + [ABSENT] * (len(self.positional) - len(arguments))):
            if a is None:
                out[name] = next(given).dtype
            elif isinstance(a, _Absent):
                out[name] = None
            else:
                out[name] = numpy.asarray(a).dtype.name if not isinstance(a, float) else backend.floatx()
        return out

    def result_dtype(self, tensors, arguments):
        dtypes = self._dtypes(tensors, arguments)
        return _promoted(dtypes[self.dtype_from]) if self.dtype_from else _promoted(*dtypes.values())

    # ---------------------------------------------------------- the call on arrays
    def operands(self, arrays):
        xp = backend.array_module(*arrays)
        given = iter(arrays)
        operands = []
        for a in list(self.arguments) + [ABSENT] * (len(self.positional) - len(self.arguments)):
            if a is None:
                operands.append(next(given))
            elif isinstance(a, _Absent):
                operands.append(None)
            else:
                operands.append(xp.asarray(a))
        return self.prepared(operands)

    def prepared(self, operands):
        """The operands the forward takes: those of the result's dtype, the integer ones (``integer_operand``)
        as they are."""
        return [o if o is None or self.integer_operand(i) else o.astype(self.dtype, copy=False)
                for i, o in enumerate(operands)]

    def integer_operand(self, position):
        """Whether the operand at ``position`` is taken as integers (class ids, lengths)."""
        return False

    def run(self, *args, **kwargs):
        """The call on arrays (numbers and lists as the current device's arrays; None where absent)."""
        from . import _array
        values = list(args) + [None] * (len(self.positional) - len(args))
        for key in self.keyword_arguments:
            if key in kwargs and kwargs[key] is not None and hasattr(kwargs[key], "shape"):
                values[self.positional.index(key)] = kwargs[key]
            elif key in kwargs:
                self.keywords[key] = self.accept_keyword(key, kwargs[key])
        arrays = [None if v is None else _array(v) for v in values]
        present = [a for a in arrays if a is not None]
        xp = backend.array_module(*present)
        arrays = [None if a is None else xp.asarray(a) for a in arrays]
        self.dtype = self.eager_dtype(arrays)
        self.arguments = [ABSENT if a is None else None for a in arrays]
        self.output_shape_of(self.arguments, [tuple(a.shape) for a in present])       # the same checks as a graph's
        return self.forward_function(*self.prepared(arrays))

    def eager_dtype(self, arrays):
        """The result's dtype for ``arrays`` (None where absent)."""
        if self.dtype_from:
            return _promoted(arrays[self.positional.index(self.dtype_from)].dtype.name)
        return _promoted(*[None if a is None else a.dtype.name for a in arrays])

    def backward(self, dy):
        operands, y = self.saved()
        if not any(o is not None and _float(o.dtype) for o, a in zip(operands, self.arguments) if a is None):
            count = sum(a is None for a in self.arguments)
            return None if count == 1 else [None] * count
        gradients = list(self.backward_function(dy, operands, y))
        gradients += [None] * (len(operands) - len(gradients))
        out = [None if g is None or not _float(o.dtype) else reduce_to_shape(g, o.shape).reshape(o.shape)
               for g, o, a in zip(gradients, operands, self.arguments) if a is None]
        return out if len(out) > 1 else out[0]


def _tuple(value, rank, name, where):
    if isinstance(value, (int, numpy.integer)) and not isinstance(value, bool):
        values = (int(value),) * rank
    else:
        try:
            values = tuple(int(v) for v in value)
        except TypeError:
            raise TypeError(f"{where}: `{name}` must be an int or {rank} ints, got {value!r:.80}.") from None
    if len(values) != rank or any(v < 1 for v in values):
        raise ValueError(f"{where}: `{name}` must be a positive int or {rank} positive ints for an input of "
                         f"{rank} spatial axes, got {value!r:.80}.")
    return values


def _data_format(value, where):
    if value is None:
        return backend.image_data_format()
    if value not in ("channels_last", "channels_first"):
        raise ValueError(f"{where}: `data_format` must be 'channels_last' or 'channels_first', got {value!r}.")
    return value


def _padding(value, where):
    word = value.lower() if isinstance(value, str) else value
    if word not in ("valid", "same"):
        raise ValueError(f"{where}: `padding` must be 'valid' or 'same', got {value!r}.")
    return word


def _spatial_rank(shape, where, ranks=(3, 4, 5)):
    if len(shape) not in ranks:
        raise ValueError(f"{where}: the input must have rank {' or '.join(str(r) for r in ranks)} (batch, spatial "
                         f"axes, channels), got shape {tuple(shape)}.")
    return len(shape) - 2


def _to_last(x, data_format):
    return x if data_format == "channels_last" else _xp(x).moveaxis(x, 1, -1)


def _from_last(y, data_format):
    return y if data_format == "channels_last" else _xp(y).moveaxis(y, -1, 1)


def _last_shape(shape, data_format):
    shape = tuple(shape)
    return shape if data_format == "channels_last" else (shape[0],) + shape[2:] + (shape[1],)


def _first_shape(shape, data_format):
    shape = tuple(shape)
    return shape if data_format == "channels_last" else (shape[0], shape[-1]) + shape[1:-1]


# ------------------------------------------------------------------ pooling
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


# ------------------------------------------------------------------ convolutions
class _Conv(NNOperation):
    config_keys = ("strides", "padding", "data_format", "dilation_rate")

    def __init__(self, strides=1, padding="valid", data_format=None, dilation_rate=1, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.strides = list(strides) if isinstance(strides, (list, tuple)) else strides
        self.padding = _padding(padding, self._where())
        self.data_format = _data_format(data_format, self._where())
        self.dilation_rate = list(dilation_rate) if isinstance(dilation_rate, (list, tuple)) else dilation_rate

    def _geometry(self, last_shape, kernel_shape):
        where = self._where()
        rank = _spatial_rank(last_shape, where, (3, 4))
        if len(kernel_shape) != rank + 2:
            raise ValueError(f"{where}: a depthwise kernel of an input of {rank} spatial axes has rank {rank + 2} "
                             f"(*window, in channels, multiplier), got shape {tuple(kernel_shape)}.")
        if last_shape[-1] is not None and kernel_shape[-2] != last_shape[-1]:
            raise ValueError(f"{where}: the kernel {tuple(kernel_shape)} takes {kernel_shape[-2]} input channels, "
                             f"the input {tuple(last_shape)} has {last_shape[-1]} ({self.data_format}).")
        strides = _tuple(self.strides, rank, "strides", where)
        dilation = _tuple(self.dilation_rate, rank, "dilation_rate", where)
        if max(strides) > 1 and max(dilation) > 1:
            raise ValueError(f"{where}: `strides` > 1 and `dilation_rate` > 1 cannot be combined, as in Keras.")
        window = tuple(kernel_shape[:rank])
        pads = conv_padding(self.padding, last_shape[1:-1], window, strides, dilation)
        out = []
        for n, k, s, d, p in zip(last_shape[1:-1], window, strides, dilation, pads):
            size = None if n is None else (n + p[0] + p[1] - d * (k - 1) - 1) // s + 1
            if size is not None and size < 1:
                raise ValueError(f"{where}: a window of {k} (dilation {d}) does not fit an axis of {n}.")
            out.append(size)
        if rank == 1:
            return (1,) + strides, ((0, 0),) + pads, (1,) + dilation, tuple(out)
        return strides, pads, dilation, tuple(out)

    def _inputs(self, x, kernel):
        """The 2-D image, the 2-D kernel and the geometry of the depthwise convolution of channels_last ``x``."""
        strides, pads, dilation, _ = self._geometry(x.shape, kernel.shape)
        return (x[:, None] if x.ndim == 3 else x, kernel[None] if kernel.ndim == 3 else kernel,
                dict(strides=strides, padding=pads, dilation=dilation))

    def _depthwise_backward(self, dy_image, image, kernel2, geometry, x_ndim):
        dx = depthwise.depthwise_conv2d_backward_input(dy_image, kernel2, image.shape, **geometry)
        dk = depthwise.depthwise_conv2d_backward_kernel(image, dy_image, kernel2.shape, **geometry)
        return (dx[:, 0] if x_ndim == 3 else dx), (dk[0] if x_ndim == 3 else dk)


class DepthwiseConv(_Conv):
    """``depthwise_conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1)``: 1-D or
    2-D, kernel (*window, channels, multiplier); output channel c * multiplier + m."""

    positional = ("inputs", "kernel")
    required = 2

    def output_shape_of(self, arguments, shapes):
        given = self._shapes(arguments, shapes)
        shape, kernel = _last_shape(given["inputs"], self.data_format), given["kernel"]
        out = self._geometry(shape, kernel)[3]
        return _first_shape((shape[0],) + out + (kernel[-2] * kernel[-1],), self.data_format)

    def forward_function(self, x, kernel):
        x = _to_last(x, self.data_format)
        image, kernel2, geometry = self._inputs(x, kernel)
        y = depthwise.depthwise_conv2d_forward(image, kernel2, **geometry)
        return _from_last(y[:, 0] if x.ndim == 3 else y, self.data_format)

    def backward_function(self, dy, operands, y):
        x, kernel = _to_last(operands[0], self.data_format), operands[1]
        image, kernel2, geometry = self._inputs(x, kernel)
        dy = _to_last(dy, self.data_format)
        dy = _xp(dy).ascontiguousarray(dy[:, None] if x.ndim == 3 else dy)
        dx, dk = self._depthwise_backward(dy, image, kernel2, geometry, x.ndim)
        return [_from_last(dx, self.data_format), dk]


class SeparableConv(DepthwiseConv):
    """``separable_conv(inputs, depthwise_kernel, pointwise_kernel, ...)``: the depthwise convolution, then the
    1 x 1 convolution of ``pointwise_kernel`` (1[, 1], channels * multiplier, filters)."""

    positional = ("inputs", "depthwise_kernel", "pointwise_kernel")
    required = 3

    def output_shape_of(self, arguments, shapes):
        given = self._shapes(arguments, shapes)
        shape, kernel, pointwise = _last_shape(given["inputs"], self.data_format), given["depthwise_kernel"], \
            given["pointwise_kernel"]
        if len(pointwise) != len(kernel) or any(n != 1 for n in pointwise[:-2]) or \
                pointwise[-2] != kernel[-2] * kernel[-1]:
            raise ValueError(f"{self._where()}: the pointwise kernel must have shape (1, ..., "
                             f"{kernel[-2] * kernel[-1]}, filters) for the depthwise kernel {tuple(kernel)}, "
                             f"got {tuple(pointwise)}.")
        out = self._geometry(shape, kernel)[3]
        return _first_shape((shape[0],) + out + (pointwise[-1],), self.data_format)

    def forward_function(self, x, kernel, pointwise):
        x = _to_last(x, self.data_format)
        image, kernel2, geometry = self._inputs(x, kernel)
        mid = depthwise.depthwise_conv2d_forward(image, kernel2, **geometry)
        y = _xp(mid).matmul(mid, pointwise.reshape(pointwise.shape[-2:]))
        return _from_last(y[:, 0] if x.ndim == 3 else y, self.data_format)

    def backward_function(self, dy, operands, y):
        xp = _xp(dy)
        x, kernel, pointwise = _to_last(operands[0], self.data_format), operands[1], operands[2]
        image, kernel2, geometry = self._inputs(x, kernel)
        mid = depthwise.depthwise_conv2d_forward(image, kernel2, **geometry)
        dy = _to_last(dy, self.data_format)
        dy = dy[:, None] if x.ndim == 3 else dy
        matrix = pointwise.reshape(pointwise.shape[-2:])
        dpoint = xp.tensordot(mid, dy, axes=([0, 1, 2], [0, 1, 2])).reshape(pointwise.shape)
        dmid = xp.ascontiguousarray(xp.matmul(dy, matrix.T))
        dx, dk = self._depthwise_backward(dmid, image, kernel2, geometry, x.ndim)
        return [_from_last(dx, self.data_format), dk, dpoint]


# ------------------------------------------------------------------ normalizations
def _param_shape(shape, axes, ndim):
    """The shape a per-feature parameter of ``shape`` takes to broadcast against a tensor of ``ndim`` axes
    normalised over (or indexed by) ``axes``: its own shape if it has ``ndim`` axes, else its sizes along ``axes``
    and 1 elsewhere; None where it has neither form."""
    if len(shape) == ndim:
        return tuple(shape)
    return None if len(shape) != len(axes) else tuple(
        shape[list(axes).index(i)] if i in axes else 1 for i in range(ndim))


def _axes_list(axis, ndim, where):
    axes = [axis] if isinstance(axis, (int, numpy.integer)) else list(axis)
    if any(isinstance(a, bool) or not isinstance(a, (int, numpy.integer)) or not -ndim <= a < ndim for a in axes):
        raise ValueError(f"{where}: `axis` {axis!r} is out of range for a tensor of {ndim} axes.")
    normalized = sorted(int(a) % ndim for a in axes)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"{where}: `axis` {axis!r} repeats an axis.")
    return normalized


class BatchNorm(NNOperation):
    """``batch_normalization(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3)``: the vectors
    ``mean``, ``variance``, ``offset``, ``scale`` along ``axis``; ``(x - mean) * rsqrt(variance + epsilon) *
    scale + offset``, every tensor among them differentiable."""

    positional = ("x", "mean", "variance", "offset", "scale")
    required = 3
    config_keys = ("axis", "epsilon")

    def __init__(self, axis, epsilon=1e-3, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, numpy.integer)):
            raise TypeError(f"{self._where()}: `axis` must be an int, got {axis!r:.80}.")
        self.axis, self.epsilon = int(axis), float(epsilon)

    def output_shape_of(self, arguments, shapes):
        given = self._shapes(arguments, shapes)
        x = given["x"]
        if not -len(x) <= self.axis < len(x):
            raise ValueError(f"{self._where()}: `axis` {self.axis} is out of range for a tensor of {len(x)} axes.")
        size = x[self.axis]
        for name in self.positional[1:]:
            shape = given[name]
            if shape is not None and (len(shape) != 1 or (size is not None and shape[0] != size)):
                raise ValueError(f"{self._where()}: `{name}` must be a vector of the {size} features of axis "
                                 f"{self.axis}, got shape {shape}.")
        return x

    def _shaped(self, x, v):
        shape = [1] * x.ndim
        shape[self.axis] = x.shape[self.axis]
        return None if v is None else v.reshape(shape)

    def forward_function(self, x, mean, variance, offset=None, scale=None):
        mean, variance, offset, scale = (self._shaped(x, v) for v in (mean, variance, offset, scale))
        factor = 1 / _xp(x).sqrt(variance + self.epsilon)
        if scale is not None:
            factor = factor * scale
        y = (x - mean) * factor
        return y if offset is None else y + offset

    def backward_function(self, dy, operands, y):
        x, mean, variance, offset, scale = operands
        m, v, s = (self._shaped(x, t) for t in (mean, variance, scale))
        inv = 1 / _xp(x).sqrt(v + self.epsilon)
        factor = inv if s is None else inv * s
        dx = dy * factor
        dfactor = dy * (x - m)
        axes = tuple(i for i in range(x.ndim) if i != self.axis % x.ndim)

        def vector(g):
            return g.sum(axis=axes)
        return [dx, -vector(dx), vector(-0.5 * dfactor * factor * inv * inv), None if offset is None else vector(dy),
                None if s is None else vector(dfactor * inv)]


class LayerNorm(NNOperation):
    """``layer_normalization(x, gamma=None, beta=None, axis=-1, epsilon=None)``: normalised over ``axis``
    (epsilon None: 1e-7, Keras's), then times ``gamma`` plus ``beta``; ``rms_scaling`` (deprecated in Keras)
    divides by the root of the variance plus epsilon without centring."""

    positional = ("x", "gamma", "beta")
    config_keys = ("axis", "epsilon", "rms_scaling")

    def __init__(self, axis=-1, epsilon=None, rms_scaling=False, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else int(axis)
        self.epsilon, self.rms_scaling = epsilon, bool(rms_scaling)

    def _eps(self):
        return 1e-7 if self.epsilon is None else float(self.epsilon)

    def output_shape_of(self, arguments, shapes):
        given = self._shapes(arguments, shapes)
        x = given["x"]
        axes = _axes_list(self.axis, len(x), self._where())
        for name in self.positional[1:]:
            shape = given[name]
            if shape is not None and _param_shape(shape, axes, len(x)) is None:
                raise ValueError(f"{self._where()}: `{name}` of shape {shape} does not match the normalised axes "
                                 f"{axes} of a tensor of shape {x}.")
        return x

    def result_dtype(self, tensors, arguments):
        return _promoted(tensors[0].dtype)

    def eager_dtype(self, arrays):
        return _promoted(arrays[0].dtype.name)

    def _param(self, v, axes, ndim):
        return None if v is None else v.reshape(_param_shape(v.shape, axes, ndim))

    def _stats(self, x, axes):
        mean = None if self.rms_scaling else x.mean(axis=tuple(axes), keepdims=True)
        var = x.var(axis=tuple(axes), keepdims=True)
        return mean, 1 / _xp(x).sqrt(var + self._eps())

    def forward_function(self, x, gamma=None, beta=None):
        axes = _axes_list(self.axis, x.ndim, self._where())
        mean, inv = self._stats(x, axes)
        y = (x if mean is None else x - mean) * inv
        if gamma is not None:
            y = y * self._param(gamma, axes, x.ndim)
        return y if beta is None else y + self._param(beta, axes, x.ndim)

    def backward_function(self, dy, operands, y):
        x, gamma, beta = operands
        axes = tuple(_axes_list(self.axis, x.ndim, self._where()))
        mean, inv = self._stats(x, axes)
        g = self._param(gamma, axes, x.ndim)
        dxhat = dy if g is None else dy * g
        if self.rms_scaling:
            # y = x * (var + eps)^-1/2: the variance's own gradient, x centred inside it.
            centred = x - x.mean(axis=axes, keepdims=True)
            dx = dxhat * inv - centred * (inv ** 3) * (dxhat * x).mean(axis=axes, keepdims=True)
            xhat = x * inv
        else:
            xhat = (x - mean) * inv
            dx = inv * (dxhat - dxhat.mean(axis=axes, keepdims=True) -
                        xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))
        dgamma = None if gamma is None else reduce_to_shape(dy * xhat, g.shape).reshape(gamma.shape)
        dbeta = None if beta is None else reduce_to_shape(dy, self._param(beta, axes, x.ndim).shape).reshape(
            beta.shape)
        return [dx, dgamma, dbeta]


class RMSNorm(NNOperation):
    """``rms_normalization(x, scale=None, axis=-1, epsilon=None)``: ``x * rsqrt(mean(x ** 2) + epsilon) * scale``
    over ``axis`` (epsilon None: 1e-7, Keras's). Keras records ``scale`` as a keyword of the call."""

    positional = ("x", "scale")
    keyword_arguments = tensor_keywords = ("scale",)
    config_keys = ("axis", "epsilon")

    def __init__(self, axis=-1, epsilon=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.axis = list(axis) if isinstance(axis, (list, tuple)) else int(axis)
        self.epsilon = epsilon

    _eps = LayerNorm._eps
    result_dtype = LayerNorm.result_dtype
    eager_dtype = LayerNorm.eager_dtype
    _param = LayerNorm._param

    def output_shape_of(self, arguments, shapes):
        given = self._shapes(arguments, shapes)
        x = given["x"]
        axes = _axes_list(self.axis, len(x), self._where())
        scale = given["scale"] if given["scale"] is not None else (
            numpy.shape(self.keywords.get("scale")) if self.keywords.get("scale") is not None else None)
        if scale is not None and scale != () and _param_shape(scale, axes, len(x)) is None:
            raise ValueError(f"{self._where()}: `scale` of shape {scale} does not match the normalised axes {axes} "
                             f"of a tensor of shape {x}.")
        return x

    def _scale(self, scale, x):
        if scale is None and self.keywords.get("scale") is not None:
            scale = _xp(x).asarray(numpy.asarray(self.keywords["scale"], dtype=x.dtype))
        return scale

    def forward_function(self, x, scale=None):
        axes = _axes_list(self.axis, x.ndim, self._where())
        inv = 1 / _xp(x).sqrt((x * x).mean(axis=tuple(axes), keepdims=True) + self._eps())
        scale = self._scale(scale, x)
        y = x * inv
        return y if scale is None else y * (scale if scale.ndim == 0 else self._param(scale, axes, x.ndim))

    def backward_function(self, dy, operands, y):
        x, scale = operands
        axes = tuple(_axes_list(self.axis, x.ndim, self._where()))
        inv = 1 / _xp(x).sqrt((x * x).mean(axis=axes, keepdims=True) + self._eps())
        s = self._scale(scale, x)
        shaped = None if s is None else (s if s.ndim == 0 else self._param(s, axes, x.ndim))
        g = dy if shaped is None else dy * shaped
        dx = g * inv - x * inv ** 3 * (g * x).mean(axis=axes, keepdims=True)
        dscale = None if scale is None else reduce_to_shape(dy * x * inv, shaped.shape).reshape(scale.shape)
        return [dx, dscale]


# ------------------------------------------------------------------ attention
_LARGE_NEGATIVE = -0.7 * 3.38953e38        # Keras torch's masked logit (float32 and wider)


class DotProductAttention(NNOperation):
    """``dot_product_attention(query, key, value, bias=None, mask=None, scale=None, is_causal=False, ...)``:
    query (B, T, N, H), key and value (B, S, K, H) with K dividing N (grouped heads); the softmax of
    ``query . key * scale`` (scale None: 1 / sqrt(H)) plus ``bias``, masked where ``mask`` is False (and above the
    diagonal for ``is_causal``), times value: (B, T, N, H). Gradients to query, key, value and bias."""

    positional = ("query", "key", "value", "bias", "mask", "scale")
    keyword_arguments = ("bias", "mask", "scale")
    tensor_keywords = ("bias", "mask")
    required = 3
    config_keys = ("is_causal", "flash_attention", "attn_logits_soft_cap")

    def __init__(self, is_causal=False, flash_attention=None, attn_logits_soft_cap=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if attn_logits_soft_cap is not None:
            raise ValueError(f"{self._where()}: attn_logits_soft_cap is only supported for JAX on TPU, as in Keras; "
                             "set attn_logits_soft_cap=None.")
        self.is_causal, self.flash_attention = bool(is_causal), flash_attention
        self.attn_logits_soft_cap = None

    def integer_operand(self, position):
        return position == 4

    def result_dtype(self, tensors, arguments):
        d = self._dtypes(tensors, arguments)
        return _promoted(d["query"], d["key"], d["value"])

    def eager_dtype(self, arrays):
        return _promoted(*[a.dtype.name for a in arrays[:3]])

    def output_shape_of(self, arguments, shapes):
        given = self._shapes(arguments, shapes)
        q, k, v = given["query"], given["key"], given["value"]
        if len(q) != 4 or len(k) != 4 or len(v) != 4:
            raise ValueError(f"{self._where()}: query, key and value must be 4-D (batch, steps, heads, features), "
                             f"got {q}, {k} and {v}.")
        if k != v and None not in k + v:
            raise ValueError(f"{self._where()}: key {k} and value {v} must have the same shape.")
        if q[2] is not None and k[2] is not None and q[2] % k[2]:
            raise ValueError(f"{self._where()}: the query's {q[2]} heads are not a multiple of the key's {k[2]}.")
        if q[3] is not None and k[3] is not None and q[3] != k[3]:
            raise ValueError(f"{self._where()}: query {q} and key {k} must have the same features.")
        bias, mask = given["bias"], given["mask"]
        if self.keywords.get("bias") is not None:
            bias = numpy.shape(self.keywords["bias"])
        if self.keywords.get("mask") is not None:
            mask = numpy.shape(self.keywords["mask"])
        if bias is not None and mask is not None:
            raise ValueError(f"{self._where()}: only one of `bias` and `mask` can be given, as in Keras.")
        return q[:3] + (v[3],)

    def _extras(self, xp, bias, mask, scale, dtype):
        bias = bias if bias is not None else (None if self.keywords.get("bias") is None else
                                              xp.asarray(numpy.asarray(self.keywords["bias"], dtype=dtype)))
        mask = mask if mask is not None else (None if self.keywords.get("mask") is None else
                                              xp.asarray(numpy.asarray(self.keywords["mask"])))
        if scale is None:
            scale = self.keywords.get("scale")
        return bias, mask, (None if scale is None else float(scale))

    def _probabilities(self, query, key, bias, mask, scale):
        xp = _xp(query)
        heads = query.shape[2] // key.shape[2]
        key = xp.repeat(key, heads, axis=2) if heads > 1 else key
        scale = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
        logits = xp.einsum("btnh,bsnh->bnts", query, key) * query.dtype.type(scale)
        keep = None
        if mask is not None:
            keep = mask.astype(bool)
            if self.is_causal:
                keep = keep & xp.tril(xp.ones((query.shape[1], key.shape[1]), dtype=bool))
        elif self.is_causal:
            keep = xp.tril(xp.ones((query.shape[1], key.shape[1]), dtype=bool))
        if keep is not None:
            logits = logits + xp.where(keep, query.dtype.type(0), query.dtype.type(_LARGE_NEGATIVE))
        if bias is not None:
            logits = logits + bias
        logits = logits - logits.max(axis=-1, keepdims=True)
        e = xp.exp(logits)
        return e / e.sum(axis=-1, keepdims=True), key, scale, heads

    def forward_function(self, query, key, value, bias=None, mask=None, scale=None):
        bias, mask, scale = self._extras(_xp(query), bias, mask, scale, query.dtype)
        p, _, _, heads = self._probabilities(query, key, bias, mask, scale)
        value = _xp(value).repeat(value, heads, axis=2) if heads > 1 else value
        return _xp(p).einsum("bnts,bsnh->btnh", p, value)

    def backward_function(self, dy, operands, y):
        query, key, value, bias, mask, scale = operands
        xp = _xp(dy)
        extra_bias, mask, scale = self._extras(xp, bias, mask, scale, query.dtype)
        p, key_rep, scale, heads = self._probabilities(query, key, extra_bias, mask, scale)
        value_rep = xp.repeat(value, heads, axis=2) if heads > 1 else value
        dvalue = xp.einsum("bnts,btnh->bsnh", p, dy)
        dp = xp.einsum("btnh,bsnh->bnts", dy, value_rep)
        dlogits = p * (dp - (p * dp).sum(axis=-1, keepdims=True))
        dquery = xp.einsum("bnts,bsnh->btnh", dlogits, key_rep) * scale
        dkey = xp.einsum("bnts,btnh->bsnh", dlogits, query) * scale

        def grouped(g):
            b, s, n, h = g.shape
            return g.reshape(b, s, n // heads, heads, h).sum(axis=3) if heads > 1 else g
        return [dquery, grouped(dkey), grouped(dvalue), None if bias is None else dlogits, None, None]


# ------------------------------------------------------------------ losses
_EPSILON = 1e-7       # Keras's backend.epsilon(), which its losses clip probabilities with


class BinaryCrossentropy(NNOperation):
    """``binary_crossentropy(target, output, from_logits=False)``: element-wise; probabilities clipped to
    [1e-7, 1 - 1e-7] as Keras clips them (no gradient outside). Gradients to both tensors."""

    positional = ("target", "output")
    required = 2
    config_keys = ("from_logits",)

    def __init__(self, from_logits=False, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.from_logits = bool(from_logits)

    def output_shape_of(self, arguments, shapes):
        given = self._shapes(arguments, shapes)
        t, o = given["target"], given["output"]
        if len(t) != len(o) or any(a is not None and b is not None and a != b for a, b in zip(t, o)):
            raise ValueError(f"{self._where()}: `target` and `output` must have the same shape, got {t} and {o}.")
        return tuple(b if a is None else a for a, b in zip(t, o))

    def forward_function(self, target, output):
        xp = _xp(output)
        if self.from_logits:
            return xp.maximum(output, 0) - output * target + xp.log1p(xp.exp(-xp.abs(output)))
        p = xp.clip(output, _EPSILON, 1 - _EPSILON)
        return -(target * xp.log(p) + (1 - target) * xp.log1p(-p))

    def backward_function(self, dy, operands, y):
        target, output = operands
        xp = _xp(output)
        if self.from_logits:
            sig = 1 / (1 + xp.exp(-output))
            return [-dy * output, dy * (sig - target)]
        p = xp.clip(output, _EPSILON, 1 - _EPSILON)
        inside = (output >= _EPSILON) & (output <= 1 - _EPSILON)
        return [-dy * (xp.log(p) - xp.log1p(-p)), dy * inside * ((1 - target) / (1 - p) - target / p)]


def _softmax(xp, x, axis):
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_probabilities(xp, output, axis, from_logits):
    """log q along ``axis``: the log_softmax of logits, or the log of the probabilities normalised to sum 1 and
    clipped to [1e-7, 1 - 1e-7]."""
    if from_logits:
        shifted = output - output.max(axis=axis, keepdims=True)
        logq = shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
        return logq
    total = output.sum(axis=axis, keepdims=True)
    return xp.log(xp.clip(output / total, _EPSILON, 1 - _EPSILON))


def _output_gradient(xp, output, axis, from_logits, dlogq):
    """d/d output from d/d log q."""
    if from_logits:
        return dlogq - _softmax(xp, output, axis) * dlogq.sum(axis=axis, keepdims=True)
    total = output.sum(axis=axis, keepdims=True)
    p = output / total
    inside = (p >= _EPSILON) & (p <= 1 - _EPSILON)
    dp = dlogq * inside / xp.clip(p, _EPSILON, 1 - _EPSILON)
    return (dp - (dp * p).sum(axis=axis, keepdims=True)) / total


class CategoricalCrossentropy(BinaryCrossentropy):
    """``categorical_crossentropy(target, output, from_logits=False, axis=-1)``: ``-sum(target * log q)`` over
    ``axis``, q the softmax of logits or the probabilities normalised to sum 1 and clipped to [1e-7, 1 - 1e-7].
    Gradients to both tensors."""

    config_keys = ("from_logits", "axis")

    def __init__(self, from_logits=False, axis=-1, name=None, **kwargs):
        super().__init__(from_logits=from_logits, name=name, **kwargs)
        self.axis = int(axis)

    def output_shape_of(self, arguments, shapes):
        shape = super().output_shape_of(arguments, shapes)
        if not shape or not -len(shape) <= self.axis < len(shape):
            raise ValueError(f"{self._where()}: `axis` {self.axis} is out of range for tensors of shape {shape}.")
        return shape[:self.axis % len(shape)] + shape[self.axis % len(shape) + 1:]

    def forward_function(self, target, output):
        xp = _xp(output)
        return -(target * _log_probabilities(xp, output, self.axis, self.from_logits)).sum(axis=self.axis)

    def backward_function(self, dy, operands, y):
        target, output = operands
        xp = _xp(output)
        dy = xp.expand_dims(dy, self.axis)
        logq = _log_probabilities(xp, output, self.axis, self.from_logits)
        return [-dy * logq, _output_gradient(xp, output, self.axis, self.from_logits, -dy * target)]


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """``sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1)``: integer class ids (of
    the output's shape without ``axis``, or with a size-1 ``axis``); ``-log q`` of each id's class. Ids outside
    [0, classes) are refused on arrays. The gradient goes to the output only."""

    dtype_from = "output"

    def integer_operand(self, position):
        return position == 0

    def output_shape_of(self, arguments, shapes):
        given = self._shapes(arguments, shapes)
        t, o = given["target"], given["output"]
        if not o or not -len(o) <= self.axis < len(o):
            raise ValueError(f"{self._where()}: `axis` {self.axis} is out of range for an output of shape {o}.")
        axis = self.axis % len(o)
        reduced = o[:axis] + o[axis + 1:]
        if len(t) == len(o) and t[axis] == 1:
            t = t[:axis] + t[axis + 1:]
        if len(t) != len(reduced) or any(a is not None and b is not None and a != b for a, b in zip(t, reduced)):
            raise ValueError(f"{self._where()}: `target` {given['target']} must have the shape of `output` {o} "
                             f"without axis {self.axis}.")
        return tuple(b if b is not None else a for a, b in zip(t, reduced))

    def _ids(self, target, output):
        xp = _xp(output)
        axis = self.axis % output.ndim
        if target.ndim == output.ndim:
            target = target.squeeze(axis)
        target = target.astype("int64")
        if bool(((target < 0) | (target >= output.shape[axis])).any()):
            raise ValueError(f"{self._where()}: class ids must lie in [0, {output.shape[axis]}).")
        return xp.expand_dims(target, axis), axis

    def forward_function(self, target, output):
        xp = _xp(output)
        ids, axis = self._ids(target, output)
        logq = _log_probabilities(xp, output, axis, self.from_logits)
        return -xp.take_along_axis(logq, ids, axis=axis).squeeze(axis)

    def backward_function(self, dy, operands, y):
        target, output = operands
        xp = _xp(output)
        ids, axis = self._ids(target, output)
        onehot = (ids == xp.arange(output.shape[axis]).reshape((-1,) + (1,) * (output.ndim - axis - 1)))
        dlogq = -xp.expand_dims(dy, axis) * onehot
        return [None, _output_gradient(xp, output, axis, self.from_logits, dlogq)]


class PSNR(NNOperation):
    """``psnr(x1, x2, max_val)``: ``20 log10(max_val) - 10 log10(mean((x1 - x2) ** 2))`` over every element,
    a scalar. Gradients to both tensors."""

    positional = ("x1", "x2")
    required = 2
    config_keys = ("max_val",)

    def __init__(self, max_val, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if isinstance(max_val, bool) or not isinstance(max_val, numbers.Real):
            raise TypeError(f"{self._where()}: `max_val` must be a number, got {max_val!r:.80}.")
        self.max_val = max_val.item() if hasattr(max_val, "item") else max_val

    def output_shape_of(self, arguments, shapes):
        given = self._shapes(arguments, shapes)
        if len(given["x1"]) != len(given["x2"]) or any(
                a is not None and b is not None and a != b for a, b in zip(given["x1"], given["x2"])):
            raise ValueError(f"{self._where()}: x1 {given['x1']} and x2 {given['x2']} must have the same shape.")
        return ()

    def forward_function(self, x1, x2):
        xp = _xp(x1)
        if x1.shape != x2.shape:
            raise ValueError(f"{self._where()}: x1 {x1.shape} and x2 {x2.shape} must have the same shape.")
        mse = ((x1 - x2) ** 2).mean()
        dtype = x1.dtype.type
        return xp.asarray(dtype(20) * xp.log10(dtype(self.max_val)) - dtype(10) * xp.log10(mse))

    def backward_function(self, dy, operands, y):
        x1, x2 = operands
        diff = x1 - x2
        mse = (diff ** 2).mean()
        g = dy * (-10 / math.log(10)) * 2 * diff / (mse * diff.size)
        return [g, -g]


# ------------------------------------------------------------------ CTC
def _lengths(xp, value, count, where, name):
    value = xp.asarray(value).astype("int64").reshape(-1)
    if value.shape[0] != count:
        raise ValueError(f"{where}: `{name}` must hold one length per sample ({count}), got {value.shape[0]}.")
    return value


class CTCLoss(NNOperation):
    """``ctc_loss(target, output, target_length, output_length, mask_index=0)``: the per-sample CTC loss (B,)
    of integer labels ``target`` (B, L) (the first ``target_length`` of each row count) under logits ``output``
    (B, T, C) (the first ``output_length`` steps count), blank class ``mask_index``; +inf where no path
    exists, as torch gives it. The gradient goes to ``output`` (zero past each row's length and on +inf rows).
    The recursion is ``ops/ctc.py``'s (its CUDA kernels on CuPy)."""

    positional = ("target", "output", "target_length", "output_length")
    required = 4
    config_keys = ("mask_index",)
    dtype_from = "output"

    def __init__(self, mask_index=0, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.mask_index = int(mask_index)

    def integer_operand(self, position):
        return position != 1

    def output_shape_of(self, arguments, shapes):
        given = self._shapes(arguments, shapes)
        t, o = given["target"], given["output"]
        if len(t) != 2 or len(o) != 3:
            raise ValueError(f"{self._where()}: `target` must be (batch, max label length) and `output` (batch, "
                             f"steps, classes), got {t} and {o}.")
        if t[0] is not None and o[0] is not None and t[0] != o[0]:
            raise ValueError(f"{self._where()}: `target` {t} and `output` {o} have different batch sizes.")
        return (o[0] if o[0] is not None else t[0],)

    def _prepared(self, target, output, target_length, output_length):
        """The labels and logits ``ops/ctc.py`` takes: the blank moved to class 0, labels past their lengths 0,
        steps past their lengths forced to the blank."""
        xp = _xp(output)
        b, t, c = output.shape
        if not 0 <= self.mask_index < c:
            raise ValueError(f"{self._where()}: `mask_index` {self.mask_index} is not one of the {c} classes.")
        target_length = _lengths(xp, target_length, b, self._where(), "target_length")
        output_length = _lengths(xp, output_length, b, self._where(), "output_length")
        order = [self.mask_index] + [i for i in range(c) if i != self.mask_index]
        labels = target.astype("int64")
        labels = xp.where(labels < self.mask_index, labels + 1, labels)
        labels = xp.where(xp.arange(labels.shape[1])[None] < target_length[:, None], labels, 0)
        logits = output[:, :, order]
        past = xp.arange(t)[None, :] >= output_length[:, None]
        forced = xp.full((c,), -1e30 if output.dtype.itemsize > 2 else -6e4, dtype=output.dtype)
        forced[0] = 0
        logits = xp.where(past[:, :, None], forced, logits)
        return xp.ascontiguousarray(labels), xp.ascontiguousarray(logits), order, past

    def forward_function(self, target, output, target_length, output_length):
        labels, logits, _, _ = self._prepared(target, output, target_length, output_length)
        loss, self._ctc_saved = ctc.ctc_forward(labels, logits)
        return loss

    def backward_function(self, dy, operands, y):
        target, output, target_length, output_length = operands
        xp = _xp(output)
        _, _, order, past = self._prepared(target, output, target_length, output_length)
        dlogits = ctc.ctc_backward(self._ctc_saved)
        dlogits = xp.where(past[:, :, None], output.dtype.type(0), dlogits) * dy[:, None, None]
        doutput = xp.empty_like(dlogits)
        doutput[:, :, order] = dlogits
        return [None, doutput, None, None]


class CTCDecode(NNOperation):
    """``ctc_decode(inputs, sequence_lengths, strategy="greedy", beam_width=100, top_paths=1,
    merge_repeated=True, mask_index=0)``: two outputs. Greedy: the decoded classes (1, B, T) int32 (-1 past the
    end of each row's sequence) and the scores (B, 1), the negative sum of each step's largest input. Beam search
    (Keras's algorithm, ``_beam_search``): the ``top_paths`` best paths (top_paths, B, T) and their
    log-probabilities (B, top_paths). No gradient."""

    positional = ("inputs", "sequence_lengths")
    required = 2
    config_keys = ("strategy", "beam_width", "top_paths", "merge_repeated", "mask_index")

    def __init__(self, strategy="greedy", beam_width=100, top_paths=1, merge_repeated=True, mask_index=0, name=None,
                 **kwargs):
        super().__init__(name=name, **kwargs)
        if strategy not in ("greedy", "beam_search"):
            raise ValueError(f"{self._where()}: `strategy` must be 'greedy' or 'beam_search', got {strategy!r}.")
        self.strategy, self.beam_width, self.top_paths = strategy, int(beam_width), int(top_paths)
        if self.beam_width < 1 or self.top_paths < 1:
            raise ValueError(f"{self._where()}: `beam_width` and `top_paths` must be positive, got {beam_width!r} "
                             f"and {top_paths!r}.")
        self.merge_repeated = bool(merge_repeated)
        self.mask_index = None if mask_index is None else int(mask_index)

    def integer_operand(self, position):
        return position == 1

    def apply(self, inputs, sequence_lengths):
        if not _is_symbolic(inputs):
            raise TypeError(f"{self._where()}: `inputs` must be a symbolic tensor here.")
        from ..symbolic import KerasTensor, Node
        if self.arguments is not None:
            raise ValueError(f"{self._where()} was called already; a later call needs an operation of its own.")
        tensors = [inputs] + ([sequence_lengths] if _is_symbolic(sequence_lengths) else [])
        self.arguments = [None, None if _is_symbolic(sequence_lengths) else
                          self.accept_argument(1, numpy.asarray(backend.to_numpy(sequence_lengths))
                                               if hasattr(sequence_lengths, "shape") else
                                               numpy.asarray(sequence_lengths))]
        shape = tuple(inputs.shape)
        if len(shape) != 3:
            raise ValueError(f"{self._where()}: `inputs` must be (batch, steps, classes), got {shape}.")
        self.dtype = _promoted(inputs.dtype)
        self.built = True
        paths = 1 if self.strategy == "greedy" else self.top_paths
        outputs = [KerasTensor((paths,) + shape[:2], dtype="int32"), KerasTensor((shape[0], paths), dtype=self.dtype)]
        Node(self, args=(tensors if len(tensors) > 1 else tensors[0],), outputs=outputs)
        return outputs

    def result_dtype(self, tensors, arguments):
        return _promoted(tensors[0].dtype)

    def eager_dtype(self, arrays):
        return _promoted(arrays[0].dtype.name)

    def forward_function(self, inputs, sequence_lengths):
        xp = _xp(inputs)
        b, t, c = inputs.shape
        mask_index = c - 1 if self.mask_index is None else self.mask_index
        lengths = _lengths(xp, sequence_lengths, b, self._where(), "sequence_lengths")
        if self.strategy == "beam_search":
            return _beam_search(inputs, backend.to_numpy(lengths).tolist(), self.beam_width, self.top_paths,
                                mask_index)
        indices = inputs.argmax(axis=-1).astype("int32")
        scores = inputs.max(axis=-1)
        past = xp.arange(t)[None, :] >= lengths[:, None]
        indices = xp.where(past, xp.int32(mask_index), indices)
        scores = xp.where(past, inputs.dtype.type(0), scores)
        if self.merge_repeated:
            repeat = xp.concatenate([xp.zeros((b, 1), dtype=bool), indices[:, 1:] == indices[:, :-1]], axis=1)
            indices = xp.where(repeat, xp.int32(mask_index), indices)
        invalid = indices == mask_index
        indices = xp.where(invalid, xp.int32(-1), indices)
        order = xp.where(invalid, t, xp.arange(t)[None, :])
        order = xp.argsort(order, axis=-1, kind="stable")
        indices = xp.take_along_axis(indices, order, axis=-1)
        return [indices[None].astype("int32"), -scores.sum(axis=1, keepdims=True)]

    def backward(self, dy):
        operands, _ = self.saved()
        return None if sum(a is None for a in self.arguments) == 1 else [None, None]


# Beam search, as Keras's JAX and torch backends run it: the same paths, merges, tie-breaks and scores.
_PAD = -1
_HASH_BASE = 2654435769         # Knuth's multiplicative constant: the base of Keras's path hashes


def _unique_rows(paths, size):
    """(the distinct rows of ``paths`` in Keras's order, padded with ``_PAD`` rows to ``size``; each row's index
    among them). Keras's torch backend orders them by a polynomial hash of the row (int64, wrapping), so the
    order (which breaks ties between equal scores) is that one."""
    xp = _xp(paths)
    n, t = paths.shape
    powers = xp.asarray(numpy.full(t, _HASH_BASE, dtype="int64") ** numpy.arange(t, dtype="int64"))
    hashes = ((paths.astype("int64") + 1) * powers).sum(axis=1)
    order = xp.argsort(hashes, kind="stable")
    rows, keys = paths[order], hashes[order]
    duplicate = (keys[1:] == keys[:-1]) & (rows[1:] == rows[:-1]).all(axis=1)
    first = xp.concatenate([xp.ones(1, dtype=bool), ~duplicate])
    inverse = xp.empty(n, dtype="int64")
    inverse[order] = xp.cumsum(first.astype("int64")) - 1
    unique = rows[first]
    if unique.shape[0] < size:
        unique = xp.concatenate([unique, xp.full((size - unique.shape[0], t), _PAD, dtype=unique.dtype)])
    return unique, inverse


def _merged(inverse, scores, count):
    """Log-space sums of ``scores`` per row index (as Keras merges them; all -inf gives NaN, as there)."""
    xp = _xp(scores)
    top = scores.max()
    summed = xp.bincount(inverse, weights=xp.exp(scores - top), minlength=count).astype(scores.dtype)
    return xp.log(summed) + top


def _beam_search(inputs, lengths, beam_width, top_paths, mask_index):
    """(paths (top_paths, B, T) int32, scores (B, top_paths)): Keras's CTC beam search, sample by sample and step
    by step, each step array operations over the beams."""
    xp = _xp(inputs)
    batch, steps, classes = inputs.shape
    shifted = inputs - inputs.max(axis=-1, keepdims=True)
    logp = (shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True)))[:, :, ::-1]
    # Keras flips the classes so that its ascending sorts break ties as it wants; the blank moves with them.
    blank = classes - mask_index - 1
    starts = min(classes, beam_width)
    letters = xp.arange(classes, dtype="int32")
    letters[blank] = _PAD
    all_paths, all_scores = [], []
    with numpy.errstate(invalid="ignore", divide="ignore"):
        for b in range(batch):
            x = logp[b]
            paths = xp.full((2 * beam_width, steps), _PAD, dtype="int32")
            best = xp.argsort(x[0], kind="stable")[-starts:]
            paths[:starts, 0] = xp.where(best == blank, _PAD, best.astype("int32"))
            scores = xp.full((2 * beam_width,), -numpy.inf, dtype=x.dtype)
            scores[:starts] = x[0, best]
            masked = paths[:, 0] == _PAD
            for t in range(1, int(lengths[b])):
                # every beam extended by every class
                paths = xp.repeat(paths, classes, axis=0)
                scores = xp.repeat(scores, classes) + xp.tile(x[t], paths.shape[0] // classes)
                previous = xp.repeat(masked, classes)
                rows = xp.arange(paths.shape[0])
                tail = (paths == _PAD).astype("int32").argmax(axis=1)
                last = xp.where(tail == 0, _PAD, paths[rows, tail - 1])
                extension = xp.tile(letters, paths.shape[0] // classes)
                masked = extension == _PAD
                extension = xp.where(~previous & (last == extension), _PAD, extension)
                paths[rows, tail] = extension
                # the same paths merged, the best beam_width kept, each as an emitting and a blank track
                unique, inverse = _unique_rows(paths, 2 * classes * beam_width)
                emit = _merged(inverse, xp.where(masked, -numpy.inf, scores), unique.shape[0])
                blanks = _merged(inverse, xp.where(masked, scores, -numpy.inf), unique.shape[0])
                top = xp.argsort(xp.logaddexp(emit, blanks), kind="stable")[-beam_width:]
                paths = xp.concatenate([unique[top], unique[top]])
                scores = xp.concatenate([emit[top], blanks[top]])
                masked = xp.concatenate([xp.zeros(beam_width, dtype=bool), xp.ones(beam_width, dtype=bool)])
            unique, inverse = _unique_rows(paths, 2 * classes * beam_width)
            scores = _merged(inverse, scores, unique.shape[0])
            top = xp.argsort(scores, kind="stable")[-top_paths:][::-1]
            all_paths.append(unique[top])
            all_scores.append(scores[top])
    paths = xp.stack(all_paths)
    paths = xp.where(paths == _PAD, _PAD, classes - paths - 1).astype("int32")
    return [xp.ascontiguousarray(paths.transpose(1, 0, 2)), xp.stack(all_scores)]


# ------------------------------------------------------------------ custom gradients
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


OPERATIONS = {cls.__name__: cls for cls in (
    MaxPool, AveragePool, AdaptiveMaxPool, AdaptiveAveragePool, DepthwiseConv, SeparableConv, BatchNorm, LayerNorm,
    RMSNorm, DotProductAttention, BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy,
    CTCLoss, CTCDecode, PSNR)}
