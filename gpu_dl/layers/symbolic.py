"""Symbolic tensors and the call records that make up a functional graph.

``KerasTensor`` is what ``Input(...)`` returns and what a layer returns when
it is called on symbolic tensors: a shape (batch axis None), a dtype and a
name, with no values. Each such call (of a layer, or of a whole model used as
a layer of another) adds a ``Node`` to the layer's ``_inbound_nodes``: the
layer, the arguments it was called with (symbolic tensors in place of arrays)
and the tensors it produced. Every tensor knows
the node that made it through ``_keras_history`` = (layer, node index,
tensor index), as in Keras 3, so a model can walk back from its outputs to
its inputs and run the same calls on real arrays.

As on Keras's ``KerasTensor``, ``_keras_mask`` is the symbolic mask of padded
steps that reaches a tensor (from ``Embedding(mask_zero=True)``, ``Masking``,
and the layers that pass a mask on or compute one), or None. A layer's call
on symbolic tensors sets it on its outputs from its ``compute_mask``
(``masks.py``); a mask a gpu_dl layer passes on is made a tensor of the graph
(a ``TensorMask``, which gives the mask that reaches the tensor when the graph
runs) only when something reads it.
"""
from __future__ import annotations

import weakref
from collections import namedtuple
from contextlib import contextmanager

KerasHistory = namedtuple("KerasHistory", ["operation", "node_index", "tensor_index"])


class KerasTensor:
    """A symbolic tensor: ``shape`` (batch axis first, None where unknown), ``dtype`` and ``name``."""

    def __init__(self, shape, dtype="float32", name=None):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = str(dtype)
        if name is None:
            from .base import unique_name   # base imports this module at its top
            name = unique_name("keras_tensor")
        self.name = name
        self._keras_history = None
        self._mask = None           # None, the mask's tensor, or a MaskSpec: a mask whose tensor is made when read
        # Set when a call being traced took the mask off this tensor (MultiHeadAttention does, as in Keras): the
        # calls recorded after it read no mask from it.
        self._mask_dropped = False

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def _keras_mask(self):
        """The symbolic mask of padded steps reaching this tensor (a boolean tensor), or None."""
        mask = self._mask
        if isinstance(mask, MaskSpec):
            from .masks import TensorMask     # it imports this module at its top
            mask = self._mask = TensorMask(mask.shape).apply(self)
        return mask

    @_keras_mask.setter
    def _keras_mask(self, mask):
        if mask is not None and not isinstance(mask, (KerasTensor, MaskSpec)):
            raise TypeError(f"KerasTensor '{self.name}': its _keras_mask must be a symbolic tensor or None, got "
                            f"{type(mask).__name__}.")
        self._mask = mask

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype={self.dtype}, name={self.name}>"

    def __array__(self, *args, **kwargs):
        raise TypeError(f"KerasTensor '{self.name}' is symbolic: it has a shape {self.shape} but no values. Build a "
                        "model with keras.Model(inputs, outputs) and call that (or its predict) on arrays.")

    # Arithmetic records an operation, as keras.ops do on KerasTensors (layers/operations.py).
    def _operation(name, reflected=False):
        def operator(self, other):
            from . import operations     # operations imports this module at its top
            return operations.OPERATIONS[name]().apply(*((other, self) if reflected else (self, other)))
        operator.__name__ = f"__{'r' if reflected else ''}{name.lower()}__"
        return operator

    __add__, __radd__ = _operation("Add"), _operation("Add", reflected=True)
    __sub__, __rsub__ = _operation("Subtract"), _operation("Subtract", reflected=True)
    __mul__, __rmul__ = _operation("Multiply"), _operation("Multiply", reflected=True)
    __truediv__, __rtruediv__ = _operation("TrueDivide"), _operation("TrueDivide", reflected=True)
    __pow__, __rpow__ = _operation("Power"), _operation("Power", reflected=True)
    del _operation

    def __neg__(self):
        from . import operations
        return operations.Negative().apply(self)

    def __abs__(self):
        from . import operations
        return operations.Absolute().apply(self)

    # Indexing and matrix products record Keras's GetItem and Matmul (layers/indexing_operations.py).
    def __getitem__(self, key):
        from . import indexing_operations
        return indexing_operations.GetItem().apply(self, key)

    def __matmul__(self, other):
        from . import indexing_operations
        return indexing_operations.Matmul().apply(self, other)

    def __rmatmul__(self, other):
        from . import indexing_operations
        return indexing_operations.Matmul().apply(other, self)

    # `array @ x` and `array * x` reach the tensor's reflected operator instead of NumPy's, which would try to
    # read the tensor's values.
    __array_ufunc__ = None

    def __iter__(self):
        # Without this, Python would iterate by x[0], x[1], ... without end along an axis of unknown size.
        raise TypeError(f"KerasTensor '{self.name}' is symbolic and cannot be iterated over; index it (x[:, 0]) "
                        "or split it with a layer.")

    # `x < y`, `x > 0.5`, ... record Keras's comparison operations (a bool tensor, no gradient), as Keras's do.
    def _comparison(name, short):
        def operator(self, other):
            from .keras_ops import operations     # it imports this module at its top
            return getattr(operations, name)().apply(self, other)
        operator.__name__ = f"__{short}__"
        return operator

    __lt__, __le__ = _comparison("Less", "lt"), _comparison("LessEqual", "le")
    __gt__, __ge__ = _comparison("Greater", "gt"), _comparison("GreaterEqual", "ge")
    del _comparison

    def __bool__(self):
        # As Keras's: a Python `if` on a symbolic tensor would take one branch for every value.
        raise TypeError(f"KerasTensor '{self.name}' is symbolic: it has no value to be True or False. Choose between "
                        "values with ops.where(condition, x1, x2) instead of a Python `if`.")

    def _unsupported(self, *args, **kwargs):
        raise TypeError(f"KerasTensor '{self.name}': the operators other than +, -, *, /, **, @, abs(), indexing and "
                        "< <= > >= (//, %, !=, &, |, ~) are not supported on symbolic tensors in gpu_dl; use a layer "
                        "or gpu_dl.ops (ops.not_equal, ops.logical_and, ...) instead.")

    # Keras records these too; without them `x != 0` would be a silent True (identity) and `x % 2` Python's
    # bare TypeError. `==` stays identity: tensors are dict keys.
    __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = _unsupported
    __ne__ = _unsupported
    __and__ = __rand__ = __or__ = __ror__ = __xor__ = __rxor__ = __invert__ = _unsupported
    # Tensors are graph edges keyed by identity (a model maps each to its value in a dict).
    __hash__ = object.__hash__


class MaskSpec:
    """A mask of padded steps known to reach a symbolic tensor, of ``shape`` (batch axis None): its tensor (a
    ``TensorMask`` of the tensor it reaches) is made only when ``_keras_mask`` is read."""

    __slots__ = ("shape",)

    def __init__(self, shape):
        self.shape = tuple(None if d is None else int(d) for d in shape)

    @property
    def ndim(self):
        return len(self.shape)

    def __repr__(self):
        return f"<MaskSpec shape={self.shape}>"


class Node:
    """One call of ``layer`` on symbolic tensors.

    ``args`` is the call's positional arguments (one tensor, or a list of them for a merge layer), ``kwargs``
    its keyword arguments (``initial_state``: a list of tensors, nested per cell for an RNN of several cells, as
    given; ``training``: a bool). ``input_tensors`` lists the symbolic tensors among them, positional first,
    then keyword arguments by sorted key (Keras's order); ``outputs`` the tensors the call produced, flat, as
    Keras's ``tree.flatten`` lists them (an RNN of several cells returns its states nested per cell; a tensor's
    ``_keras_history`` gives its position in that flat list, as in Keras).
    """

    def __init__(self, layer, args=(), kwargs=None, outputs=()):
        self.layer = layer
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.input_tensors = flatten_tensors(self.args) + flatten_tensors([self.kwargs[k] for k in sorted(self.kwargs)])
        self.outputs = list(outputs)
        self.is_input = not self.input_tensors
        # Its inputs whose mask a call traced before it took away: it reads none from them (``masks.edge_mask``).
        self.unmasked_inputs = frozenset(id(t) for t in self.input_tensors if t._mask_dropped)
        layer._inbound_nodes.append(self)
        self.index = len(layer._inbound_nodes) - 1
        for i, tensor in enumerate(self.outputs):
            tensor._keras_history = KerasHistory(layer, self.index, i)

    @property
    def parent_nodes(self):
        return [t._keras_history.operation._inbound_nodes[t._keras_history.node_index] for t in self.input_tensors]

    def __repr__(self):
        return f"<Node layer={self.layer.name!r} index={self.index}>"


def is_symbolic(value) -> bool:
    return isinstance(value, KerasTensor)


def flatten_tensors(structure) -> list:
    """The KerasTensors in a structure of lists, tuples and dicts, in order (dict values by sorted key)."""
    if isinstance(structure, KerasTensor):
        return [structure]
    if isinstance(structure, dict):
        return [t for k in sorted(structure) for t in flatten_tensors(structure[k])]
    if isinstance(structure, (list, tuple)):
        return [t for item in structure for t in flatten_tensors(item)]
    return []


def any_symbolic(*values) -> bool:
    """Whether any of ``values`` (arrays, tensors, or lists of them, nested: an RNN's initial states per cell)
    holds a symbolic tensor."""
    for value in values:
        if isinstance(value, KerasTensor):
            return True
        if isinstance(value, (list, tuple)) and any_symbolic(*value):
            return True
    return False


def flatten_structure(structure) -> list:
    """The leaves of a structure of lists and tuples (and dicts, by sorted key), in order, as Keras's
    ``tree.flatten`` gives them: what is not a list, tuple or dict (an array, a tensor, None) is a leaf."""
    if isinstance(structure, dict):
        return [leaf for k in sorted(structure) for leaf in flatten_structure(structure[k])]
    if isinstance(structure, (list, tuple)):
        return [leaf for item in structure for leaf in flatten_structure(item)]
    return [structure]


def pack_like(structure, flat):
    """The items of ``flat`` in the structure of ``structure`` (``flatten_structure``'s inverse): lists and tuples
    keep their type, a dict its keys (filled in sorted-key order, the order its leaves are flattened in)."""
    flat = list(flat)
    position = 0

    def pack(item):
        nonlocal position
        if isinstance(item, dict):
            filled = {k: pack(item[k]) for k in sorted(item)}
            return {k: filled[k] for k in item}
        if isinstance(item, (list, tuple)):
            return type(item)(pack(v) for v in item)
        position += 1
        return flat[position - 1]

    packed = pack(structure)
    if position != len(flat):
        raise ValueError(f"pack_like: the structure holds {position} leaves, got {len(flat)} values.")
    return packed


def map_structure(function, structure):
    """``structure`` with ``function`` applied to each leaf (lists, tuples and dicts kept)."""
    return pack_like(structure, [function(leaf) for leaf in flatten_structure(structure)])


# The traces of the composite layers' calls under way (models/composite.py), innermost last; None where a call
# runs on arrays inside a trace. A layer called on an array during a trace (``self.pos_emb(ops.arange(n))``)
# takes it as a constant of the traced graph (``keras_ops.operations.TracedConstant``), so it trains; a variable
# used in it (``ops.matmul(x, self.w)``) becomes a read of the variable in the graph (``traced_variable``).
_TRACES = []
# The ``(layer, tensor)`` of each ``add_loss`` of a symbolic tensor in the call being traced, one list per entry of
# ``_TRACES``: the traced graph computes those losses too.
_TRACED_LOSSES = []


class Trace:
    """The state of one traced call: its symbolic ``inputs``; per variable it uses (by id), the variable and its
    tensor in the graph (its read, or the result of the last update the call recorded); the read operations; the
    ``(layer, tensor)`` of each loss the call adds; the positions of the inputs that must be data, which the graph
    sends no gradient to (``data_tensors``); the outputs of the metric updates the call records
    (``metric_updates``), which its graph runs in every call."""

    def __init__(self, inputs):
        self.inputs = list(inputs)
        self.variables = {}
        self.reads = {}
        self.losses = []
        self.data_inputs = set()
        self.side_effects = []


@contextmanager
def tracing(inputs):
    """Mark the calls inside as the trace of a call on ``inputs`` (symbolic tensors), or, for None, as a call on
    arrays. Gives the ``Trace`` (None for a call on arrays); its ``losses`` list takes the trace's ``add_loss`` calls
    of symbolic tensors."""
    trace = Trace(inputs) if inputs else None
    _TRACES.append(trace)
    _TRACED_LOSSES.append(trace.losses if trace is not None else [])
    try:
        yield trace
    finally:
        _TRACES.pop()
        _TRACED_LOSSES.pop()


def tracing_symbolic() -> bool:
    """Whether a call on symbolic tensors is being traced (not a call on arrays inside one)."""
    return bool(_TRACES) and _TRACES[-1] is not None


def record_traced_loss(layer, tensor):
    """Record ``layer.add_loss(tensor)`` in the call being traced."""
    _TRACED_LOSSES[-1].append((layer, tensor))


def active_trace():
    """The innermost trace under way, or None (none, or a call on arrays inside one)."""
    return _TRACES[-1] if _TRACES else None


# The variables by the id of their value array, so that a call that uses ``variable.value`` (the array) inside a
# trace reads the variable in the graph too, as Keras's ``variable.value`` is its live tensor.
_VALUE_OWNERS = weakref.WeakValueDictionary()


def register_value(variable, old, new):
    """``variable``'s value array is now ``new`` (it was ``old``, or None)."""
    if old is not None and _VALUE_OWNERS.get(id(old)) is variable:
        del _VALUE_OWNERS[id(old)]
    _VALUE_OWNERS[id(new)] = variable


def owner_of(value):
    """The variable whose value array ``value`` is, or None."""
    variable = _VALUE_OWNERS.get(id(value))
    return variable if variable is not None and variable.value is value else None


def traced_variable(variable):
    """``variable`` as a symbolic tensor of the call being traced, or None outside a trace: its read (one operation
    per variable and trace, which reads its value each time the graph runs and sends it its gradient), or the
    result of the last update of it the traced call recorded (``assign``, ``assign_add``, ``assign_sub``)."""
    trace = active_trace()
    if trace is None:
        return None
    entry = trace.variables.get(id(variable))
    if entry is None:
        from .variable_operations import VariableRead     # it imports this module at its top
        read = VariableRead(variable)
        entry = trace.variables[id(variable)] = (variable, read.apply(trace.inputs[0]))
        trace.reads[id(variable)] = read
    return entry[1]


def trace_anchor():
    """The first input of the composite call being traced (a symbolic tensor), or None outside a trace: an
    operation that reads no tensor (a random draw of a shape) reads it to belong to the graph, and takes its
    batch size for the None of its shape."""
    trace = active_trace()
    return trace.inputs[0] if trace is not None else None


def traced_constant(value):
    """``value`` (an array) as a symbolic tensor of the graph being traced, or None outside a trace. A variable's
    value array is the variable's tensor (``traced_variable``)."""
    trace = active_trace()
    if trace is None or not (hasattr(value, "shape") and hasattr(value, "dtype")) or is_symbolic(value):
        return None
    owner = owner_of(value)
    if owner is not None:
        return traced_variable(owner)
    from .keras_ops.operations import TracedConstant     # it imports this module at its top
    return TracedConstant(value).apply(trace.inputs[0])
