"""The shared base of the ``keras.ops.nn`` operations beyond the activations (``NNOperation``) and the helpers
their families share: optional arguments, result dtypes, spatial settings and data formats.

Their calls take several tensors, some optional: an argument Keras's call takes as None is kept as ``ABSENT``
among the operation's arguments (written as null in a saved call, as Keras writes it). Keras records some
of them as keywords of the call (``scale`` of ``rms_normalization``; ``bias``, ``mask`` and ``scale`` of
``dot_product_attention``): gpu_dl writes them there too, symbolic tensors (``scale``, ``bias``, ``mask``) as
the node's inputs and numbers, arrays or None as constants; a tensor given in its positional place stays there.

The families: pooling (``nn_pooling``), depthwise and separable convolutions (``nn_depthwise_conv``; ``Conv``
and ``ConvTranspose`` in ``nn_conv``), normalizations (``nn_normalization``), attention (``nn_attention``), the
cross-entropies and ``PSNR`` (``nn_losses``) and CTC (``nn_ctc``).
"""
from __future__ import annotations

import numbers

import numpy

from ... import backend
from ...ops.arithmetic import reduce_to_shape
from ..operations import Operation
from .base import NN, KerasOperation, _float, _xp

__all__ = ["ABSENT", "NNOperation"]


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
