"""The layer protocol: Keras's ``Layer`` with an explicit backward pass.

A layer owns its weights (``Variable``), is built lazily from the first input
shape it sees, and runs in two directions:

- ``y = layer(x, training)`` checks ``x`` against the shape the layer was
  built for, casts it to the layer's ``compute_dtype`` and calls ``call``;
  with ``training=True`` the layer keeps what its backward needs. Under a
  mixed policy (``"mixed_float16"``, see ``gpu_dl.dtype_policies``) the call
  and the backward run in an autocast scope that reads the float32 weights as
  float16, and the backward gives float32 gradients to the weights;
- ``dx = layer.backward(dy)`` uses what the last training call kept, writes
  each trainable weight's gradient into ``variable.grad`` and returns the
  gradient with respect to the input. A model clears
  ``input_gradient_wanted`` for the call on its first layer: a layer may
  then skip that product and return None.

Subclasses implement ``build``, ``call``, ``backward``,
``compute_output_shape`` and ``get_config``.
"""
from __future__ import annotations

import contextlib
import contextvars
import fractions
import functools
import inspect
import itertools
import math
import operator
import warnings
from collections import defaultdict

import numpy

from .. import backend, backprop, dtype_policies
from ..catalogue import keras_class_key
from . import build_shapes, gradients, layer_losses, layer_metrics, remat
from .input_spec import built_input_shape, check_input_spec, spec_after_build
from .scopes import get_stateless_scope
from .symbolic import (
    KerasTensor, Node, active_trace, any_symbolic, flatten_structure, is_symbolic, owner_of, register_value,
    traced_constant, traced_variable)

_name_counters: dict = defaultdict(itertools.count)
# How many times a layer has been renamed after it was made: what keeps its layers by name (Sequential.add's
# check for a name already taken) reads their names again when this has moved.
_rename_count = 0


def rename_count() -> int:
    return _rename_count

# The bytes of weights layers may still create here, or None for no limit (see ``weight_budget``).
_weight_budget: contextvars.ContextVar = contextvars.ContextVar("gpu_dl_weight_budget", default=None)


@contextlib.contextmanager
def weight_budget(nbytes, where, why):
    """Within it, ``add_weight`` refuses (a ValueError naming ``where`` and ``why``) to create weights beyond
    ``nbytes`` in all, before it allocates them: a model rebuilt from a file cannot take more memory than the
    file can fill, however large the shapes its config declares."""
    token = _weight_budget.set({"left": int(nbytes), "total": int(nbytes), "where": where, "why": why})
    try:
        yield
    finally:
        _weight_budget.reset(token)


def _spend_weight_budget(layer, name, shape, dtype):
    budget = _weight_budget.get()
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    if budget is None or not all(isinstance(d, (int, numpy.integer)) and d >= 0 for d in shape):
        return                  # no budget, or a shape the initializer will refuse itself
    size = math.prod(int(d) for d in shape) * numpy.dtype(dtype).itemsize
    if size > budget["left"]:
        raise ValueError(f"{budget['where']}: layer '{layer.name}' would create the weight '{name}' of shape "
                         f"{tuple(int(d) for d in shape)} ({size} bytes), beyond the {budget['total']} bytes "
                         f"{budget['why']}; the config does not describe the model the file holds (corrupt or "
                         "crafted). Nothing was allocated for it.")
    budget["left"] -= size


# The classes of Keras's dtype policies that name one dtype, as ``Layer(dtype=...)`` takes them serialized.
DTYPE_POLICY_CLASSES = ("DTypePolicy", "FloatDTypePolicy")


def policy_dtype(dtype):
    """The dtype a layer's ``dtype`` argument names: Keras's serialized ``DTypePolicy`` (``{"class_name":
    "DTypePolicy", "config": {"name": "float32"}, ...}``, as Keras's ``get_config`` writes it) or a policy
    object as its ``name``; anything else as it is, for ``standardize_dtype`` to check."""
    if isinstance(dtype, dict):
        if dtype.get("class_name") in dtype_policies.QUANTIZED_POLICY_CLASSES:
            return dtype_policies.deserialize(dtype)
        inner = dtype.get("config")
        name = inner.get("name") if isinstance(inner, dict) else None
        if dtype.get("class_name") not in DTYPE_POLICY_CLASSES or not isinstance(name, str):
            raise ValueError(f"A layer's `dtype` given as a dict must be a serialized DTypePolicy such as "
                             f"{{'class_name': 'DTypePolicy', 'config': {{'name': 'float32'}}}}, got {dtype!r}.")
        return name
    if type(dtype).__name__ in DTYPE_POLICY_CLASSES and isinstance(getattr(dtype, "name", None), str):
        return dtype.name
    return dtype


def _layer_policy(dtype, where):
    """The ``DTypePolicy`` a layer's ``dtype`` argument names (None: the global policy)."""
    if not isinstance(dtype, dtype_policies.DTypePolicy):
        dtype = policy_dtype(dtype)
    return dtype_policies.get(dtype, where)


def unique_name(base: str) -> str:
    """'dense', then 'dense_1', 'dense_2', ... as Keras names layers."""
    n = next(_name_counters[base])
    return base if n == 0 else f"{base}_{n}"


def shape_tuple(shape, where: str) -> tuple:
    """A shape given as an int or a sequence of ints/None, checked, as a tuple."""
    if isinstance(shape, (int, numpy.integer)) and not isinstance(shape, bool):
        shape = (int(shape),)
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"{where} must be a tuple of positive integers, got {shape!r}.") from None
    for d in dims:
        if d is None:
            continue
        if isinstance(d, bool) or not isinstance(d, (int, numpy.integer)) or d <= 0:
            raise ValueError(f"{where} must be a tuple of positive integers (or None), got {shape!r}.")
    return tuple(None if d is None else int(d) for d in dims)


def _weight_shape(shape, where):
    """A weight's shape as a tuple of sizes (``()`` for None), or a ValueError naming ``where``."""
    if shape is None:
        return ()
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
        raise ValueError(f"{where}: `shape` must be a tuple of sizes such as (3,) or (), got {shape!r}.")
    dims = tuple(shape)
    for d in dims:
        if d is None:
            raise ValueError(f"{where}: the shape {dims} holds None; a weight's shape must be fully known (build "
                             "the weight in build(), where input_shape gives the sizes).")
        if isinstance(d, (bool, numpy.bool_)) or not isinstance(d, (int, numpy.integer)) or d < 0:
            raise ValueError(f"{where}: the shape {dims} must hold sizes (integers >= 0), got {d!r}.")
    return tuple(int(d) for d in dims)


def _weight_dtype(dtype, where):
    """A weight's dtype name: float32 or float64 (Python's float: floatx), an integer type (Python's int: int32)
    or bool; else a TypeError or ValueError naming ``where``."""
    if dtype is int:
        return "int32"
    if dtype is float:
        return backend.floatx()
    try:
        kind = numpy.dtype(getattr(dtype, "name", dtype))
    except TypeError:
        raise TypeError(f"{where}: `dtype` must be a dtype such as 'float32', got {dtype!r}.") from None
    if kind.kind == "f":
        return backend.standardize_dtype(kind.name, f"{where}: dtype")
    if kind.kind not in "iub":
        raise ValueError(f"{where}: `dtype` must be a float, integer or bool dtype, got {kind.name!r}.")
    return kind.name


def _weight_catalogue(argument):
    """The catalogue module of a ``..._initializer`` / ``..._regularizer`` / ``..._constraint`` argument."""
    from .. import constraints, initializers, regularizers   # catalogues sit above layers; import late
    return {"initializer": initializers, "regularizer": regularizers,
            "constraint": constraints}[argument.rsplit("_", 1)[1]]


# Attributes whose lists are never searched for sublayers, even when empty when set (they hold other things).
_UNTRACKED = frozenset({"_weights", "_inbound_nodes", "_tracked_layers", "_saved", "_activity_output",
                        "_preactivation", "_traces", "_active_graph"})


def _holds_layers(value) -> bool:
    """Whether a list, tuple or dict holds a layer, however deep."""
    items = value.values() if isinstance(value, dict) else value
    for item in items:
        if isinstance(item, Layer) or (isinstance(item, (list, tuple, dict)) and _holds_layers(item)):
            return True
    return False


def _flatten_layers(value, found, seen):
    if isinstance(value, Layer):
        if id(value) not in seen:
            seen.add(id(value))
            found.append(value)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _flatten_layers(item, found, seen)
    elif isinstance(value, dict):
        for item in value.values():
            _flatten_layers(item, found, seen)


def _unique_variables(variables):
    """The variables in order, each once (a layer held twice gives its weights once, as in Keras)."""
    seen, found = set(), []
    for var in variables:
        if id(var) not in seen:
            seen.add(id(var))
            found.append(var)
    return found


@functools.lru_cache(maxsize=None)
def call_arguments(function):
    """``(training, mask, var_keyword)``: whether a ``call`` names ``training`` and ``mask`` and takes
    ``**kwargs``, which Keras reads to decide what it passes."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return True, False, False
    names = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    var_keyword = any(p.kind == p.VAR_KEYWORD for p in parameters)
    return "training" in names or var_keyword, "mask" in names or var_keyword, var_keyword


def _first_argument_by_keyword(function):
    """A layer's ``__call__`` that also takes its first argument by keyword, as Keras's calls bind it: by the name
    of the first parameter of the layer's ``call`` (``layer(inputs=x)``, ``mha(query=q, value=v)``); see
    ``Layer.first_argument_name``."""
    if getattr(function, "_first_by_keyword", False):
        return function

    @functools.wraps(function)
    def __call__(self, *args, **kwargs):
        if not args:
            name = self.first_argument_name()
            if name is None or name not in kwargs:
                given = f"keyword argument(s) {', '.join(sorted(kwargs))}" if kwargs else "no arguments"
                raise TypeError(f"Layer '{self.name}' ({type(self).__name__}) was called without its first argument "
                                f"(the input tensors{f', `{name}`' if name else ''}); got {given}.")
            args = (kwargs.pop(name),)
        return function(self, *args, **kwargs)
    __call__._first_by_keyword = True
    return __call__


def check_symbolic_mask(mask, where):
    """A ``mask`` given to a call on symbolic tensors: None, a symbolic tensor, or a list of them and None (it
    becomes an input of the call's node); else a TypeError naming ``where``."""
    if mask is None or is_symbolic(mask) or (isinstance(mask, (list, tuple)) and
                                              all(m is None or is_symbolic(m) for m in mask)):
        return
    raise TypeError(f"{where}: in a call on symbolic tensors, `mask` must be a symbolic tensor (or a list of them and "
                    f"None), got {type(mask).__name__}; masks from Masking or Embedding(mask_zero=True) pass along "
                    "the graph by themselves.")


def _marks_composite(function):
    """Marks the ``backward`` of ``Layer`` (and ``Model``): a class that keeps it and defines ``call`` is a
    composite layer, trained through a graph traced from its ``call``."""
    function._composite_backward = True
    return function


# Keras's ways of aggregating a variable across replicas (an annotation gpu_dl keeps).
_AGGREGATIONS = (None, "none", "mean", "sum", "only_first_replica")


def as_operand(value):
    """What computes with ``value``: a variable as its tensor in the call being traced (``symbolic.traced_variable``)
    or, outside a trace, as its array; inside a trace a variable's own value array is the variable too; anything
    else as it is."""
    if isinstance(value, Variable):
        return value.current()
    if active_trace() is not None and hasattr(value, "shape") and not is_symbolic(value):
        owner = owner_of(value)
        if owner is not None:
            return traced_variable(owner)
    return value


def _comparison(name):
    def compare(self, other):
        from .. import ops       # the Keras ops sit above this module; import late
        return getattr(ops, name)(self.current(), as_operand(other))
    compare.__name__ = f"__{name}__"
    return compare


def _binary(function, name, reflected=False):
    def compute(self, other):
        mine, theirs = self.current(), as_operand(other)
        return function(theirs, mine) if reflected else function(mine, theirs)
    compute.__name__ = f"__{'r' if reflected else ''}{name}__"
    return compute


def _inherited_backward_owner(cls):
    """The gpu_dl layer class whose own ``backward`` a class of the caller's inherits while overriding its ``call``
    (the backward is then not the gradient of that call), or None."""
    if cls.__module__.startswith("gpu_dl."):
        return None
    call_owner = next((k for k in cls.__mro__ if "call" in k.__dict__), None)
    backward_owner = next((k for k in cls.__mro__ if "backward" in k.__dict__), None)
    if call_owner is None or backward_owner is None or call_owner is backward_owner \
            or getattr(backward_owner.__dict__["backward"], "_composite_backward", False) \
            or not backward_owner.__module__.startswith("gpu_dl.") or call_owner.__module__.startswith("gpu_dl."):
        return None     # a composite class (Layer's or Model's backward traces its call), or not a library one
    return backward_owner


def _initial_value(value, shape, dtype):
    """A Variable's first array on the current device: ``value`` as it is where it is one of the backend's arrays
    and no dtype is asked; else converted (or drawn by an initializer for ``shape``) as Keras converts it."""
    if isinstance(value, str) or (callable(value) and not hasattr(value, "shape")):
        from .. import initializers     # catalogues sit above layers; import late
        if shape is None:
            raise ValueError(f"When creating a Variable from an initializer, the `shape` argument should be "
                             f"specified. Received: initializer={value} and shape={shape}")
        shape = shape_tuple(shape, "Variable: shape")
        dtype = numpy.dtype(backend.floatx() if dtype is None else backend.standardize_dtype(dtype))
        drawn = initializers.get(value)(shape, dtype=dtype if dtype.kind == "f" else backend.floatx())
        return backend.to_device(numpy.asarray(backend.to_numpy(drawn), dtype=dtype, order="C"))
    if dtype is None and isinstance(value, backend.xp().ndarray):
        array = value
    else:
        host = numpy.asarray(backend.to_numpy(value) if hasattr(value, "dtype") else value)
        if dtype is not None:
            host = host.astype(backend.standardize_dtype(dtype))
        elif not hasattr(value, "dtype") and host.dtype.kind == "f":
            host = host.astype(backend.floatx())      # Python floats: floatx, as Keras converts them
        elif not hasattr(value, "dtype") and host.dtype.kind in "iu":
            host = host.astype("int32")
        array = backend.to_device(numpy.ascontiguousarray(host))
    if shape is not None and tuple(array.shape) != shape_tuple(shape, "Variable: shape"):
        raise ValueError(f"Variable: the initial value has shape {tuple(array.shape)}, not the given shape "
                         f"{tuple(shape)}.")
    return array


class Variable:
    """A weight: an array on the current device, its gradient, and how it is regularised.

    ``Variable(initializer, shape=None, dtype=None, trainable=True, ..., name=None)`` as Keras 3's: an initial
    array, or an initializer (a name or a callable) and the shape it draws; named "variable", "variable_1", ...
    where no name is given. A Layer lists the variables its attributes hold among its weights.

    As Keras's ``Variable``, it computes as its value: ``var + x``, ``x @ var``,
    ``-var``, ``abs(var)``, ``var[0]``, the comparisons, ``numpy.asarray(var)``
    and the ``gpu_dl.ops`` functions take it. Inside the traced call of a
    composite layer or subclassed model (``models/composite.py``) they take its
    tensor in the graph instead, which reads the value each time the graph runs
    and sends the variable its gradient (``variable_operations.py``).
    ``assign``, ``assign_add`` and ``assign_sub`` write the value at once and
    return the new value, as Keras's do; inside a traced call they record an
    update that runs each time the graph runs forward.
    """

    # `array + var` and `array @ var` reach the reflected operators below instead of NumPy's, which would
    # compute with the variable as an array of objects.
    __array_ufunc__ = None

    def __init__(self, value=None, name=None, *, trainable=True, regularizer=None, constraint=None, path=None,
                 autocast=True, aggregation="none", initializer=None, shape=None, dtype=None,
                 synchronization="auto", host=False):
        """As Keras's ``Variable(initializer, shape=None, dtype=None, trainable=True, autocast=True,
        aggregation="none", synchronization="auto", name=None)``: ``value`` (or ``initializer=``) is an array,
        a number or nested list, or an initializer (or its name) drawn with ``shape``; ``dtype`` defaults to an
        array's own, floatx for Python floats. The name defaults to ``variable``, ``variable_1``, ... The value
        lives on the current device; ``host=True`` keeps a NumPy array given as it is (state read on the host)."""
        if name is not None and not isinstance(name, str):
            # Keras's positional order is (initializer, shape, dtype, ...): a second positional that is not
            # a name is the shape.
            if shape is not None:
                raise TypeError("Variable: got the shape both as the second argument and as `shape`.")
            name, shape = None, name
        if initializer is not None:
            if value is not None:
                raise TypeError("Variable: give the initial value either as the first argument or as "
                                "`initializer`, not both.")
            value = initializer
        if value is None:
            raise TypeError("Variable needs an initial value: an array, a number, or an initializer with `shape`.")
        if name is None:
            name = unique_name("variable")
        if "/" in name:
            raise ValueError(f"Argument `name` must be a string and cannot contain character `/`. Received: "
                             f"name={name}")
        if synchronization not in (None, "none", "on_read", "on_write", "auto"):
            raise ValueError("Invalid value for argument `synchronization`. Expected one of `None`, `'none'`, "
                             f"`'on_read'`, `'on_write'`, `'auto'`. Received: synchronization={synchronization}")
        self._value = None
        self.value = value if host and isinstance(value, numpy.ndarray) and dtype is None and shape is None \
            else _initial_value(value, shape, dtype)
        self._grad, self._grad_pass = None, 0
        self.name = name
        # As Keras's: a variable made inside open name scopes (a layer's build, gpu_dl.name_scope) is under them.
        self.path = path or "/".join(scope_names() + [name])
        self.trainable = trainable
        # As in Keras, a layer lists its weights made trainable first (whatever their flag is later), and their
        # flag follows the layer's.
        self._listed_trainable = bool(trainable)
        self.regularizer = regularizer
        self.constraint = constraint
        self.autocast = bool(autocast)
        self.aggregation = "none" if aggregation is None else aggregation
        # Keras's distribution hint, kept as given (None as "none"); gpu_dl runs on one device, which reads it
        # nowhere.
        self.synchronization = "none" if synchronization is None else synchronization
        self.overwrite_with_gradient = False

    def __setstate__(self, state):
        # A copy (copy.deepcopy, pickle) registers its own array, as __init__ does.
        self.__dict__.update(state)
        register_value(self, None, self._value)

    @property
    def overwrite_with_gradient(self):
        """Whether an optimizer's step assigns the variable's "gradient" to it instead of updating it (float8
        training's scales and amax histories, whose backward computes their next values), as in Keras."""
        return self.__dict__.get("_overwrite_with_gradient", False)     # False for variables pickled without it

    @overwrite_with_gradient.setter
    def overwrite_with_gradient(self, value):
        if not isinstance(value, bool):
            raise TypeError(f"`overwrite_with_gradient` must be a boolean. Received: {value}")
        self._overwrite_with_gradient = value

    @property
    def value(self):
        """The array (NumPy or CuPy) holding the variable's value; updates write into it in place. Inside the call
        of a layer that computes in another float dtype than it keeps its weights in (``"mixed_float16"``), a float
        variable made with ``autocast=True`` reads as a copy in that dtype, as Keras's ``AutocastScope`` casts it;
        ``assign`` and the optimizers write the variable itself."""
        value = self._stored()
        cast = dtype_policies.autocast_dtype()
        if cast is not None and self.autocast and value.dtype.kind == "f" and value.dtype != cast:
            return value.astype(cast)
        return value

    @value.setter
    def value(self, array):
        register_value(self, self._value, array)
        self._value = array

    @property
    def grad(self):
        """The gradient the last backward pass reaching the variable set (None where the last pass of a model
        holding it did not reach it). Setting it inside a pass adds to what the pass set before
        (``layers/gradients.py``)."""
        return self._grad

    @grad.setter
    def grad(self, value):
        gradients.write(self, value)

    @property
    def shape(self):
        return tuple(self._value.shape)

    @property
    def dtype(self):
        return self._value.dtype

    @property
    def ndim(self):
        return len(self._value.shape)

    def numpy(self):
        return backend.to_numpy(self._stored()).copy()

    def _stored(self):
        """The variable's array, or its value in the ``StatelessScope`` open, where it has one there."""
        scope = get_stateless_scope()
        return self._value if scope is None else scope.state_mapping.get(id(self), self._value)

    def current(self):
        """The variable as computations take it: its tensor in the call being traced, else its array."""
        tensor = traced_variable(self)
        return self.value if tensor is None else tensor

    # ------------------------------------------------------------------ updates
    def assign(self, value):
        """Write ``value`` (of the variable's shape) into the variable; returns the new value."""
        return self._update("assign", value)

    def assign_add(self, value):
        """Add ``value`` (broadcast to the variable's shape) to the variable; returns the new value."""
        return self._update("add", value)

    def assign_sub(self, value):
        """Subtract ``value`` (broadcast to the variable's shape) from the variable; returns the new value."""
        return self._update("sub", value)

    def _update(self, kind, value):
        value = as_operand(value)
        if active_trace() is not None:
            from .variable_operations import record_update    # it imports this module at its top
            return record_update(self, kind, value)
        what = {"assign": "assign", "add": "assign_add", "sub": "assign_sub"}[kind]
        if is_symbolic(value):
            raise TypeError(f"Variable '{self.path}': {what} was given a symbolic tensor outside the call of a "
                            "layer or model being traced; a variable is updated by such a call (its call method), "
                            "or with arrays.")
        target = writable_value(self)
        module = backend.array_module(target)
        if kind == "assign":
            new = module.asarray(value, dtype=target.dtype)
            if new is target:
                new = new.copy()
        else:
            operand = module.asarray(value)
            new = (target + operand if kind == "add" else target - operand).astype(target.dtype)
        if tuple(new.shape) != self.shape:
            raise ValueError(f"Variable '{self.path}' has shape {self.shape}; cannot {what} a value of shape "
                             f"{tuple(module.asarray(value).shape)}.")
        target[...] = new
        return new

    # ---------------------------------------------------------- as a value
    def __array__(self, dtype=None, copy=None):
        array = numpy.asarray(backend.to_numpy(self._stored()), dtype=dtype)
        return array.copy() if copy else array

    def __float__(self):
        return float(self._scalar("float"))

    def __int__(self):
        return int(self._scalar("int"))

    def _scalar(self, what):
        if self.ndim:
            raise TypeError(f"Variable '{self.path}' of shape {self.shape} cannot be converted to a Python {what}: "
                            "only a variable of shape () can.")
        return backend.to_numpy(self._value)[()]

    def __iter__(self):
        return iter(self.current())

    def __getitem__(self, key):
        return self.current()[key]

    def __neg__(self):
        return -self.current()

    def __pos__(self):
        return self.current()

    def __abs__(self):
        return abs(self.current())

    def __invert__(self):
        return ~self.current()

    __add__, __radd__ = _binary(operator.add, "add"), _binary(operator.add, "add", reflected=True)
    __sub__, __rsub__ = _binary(operator.sub, "sub"), _binary(operator.sub, "sub", reflected=True)
    __mul__, __rmul__ = _binary(operator.mul, "mul"), _binary(operator.mul, "mul", reflected=True)
    __truediv__ = _binary(operator.truediv, "truediv")
    __rtruediv__ = _binary(operator.truediv, "truediv", reflected=True)
    __floordiv__ = _binary(operator.floordiv, "floordiv")
    __rfloordiv__ = _binary(operator.floordiv, "floordiv", reflected=True)
    __mod__, __rmod__ = _binary(operator.mod, "mod"), _binary(operator.mod, "mod", reflected=True)
    __pow__, __rpow__ = _binary(operator.pow, "pow"), _binary(operator.pow, "pow", reflected=True)
    __matmul__ = _binary(operator.matmul, "matmul")
    __rmatmul__ = _binary(operator.matmul, "matmul", reflected=True)
    __eq__, __ne__ = _comparison("equal"), _comparison("not_equal")
    __lt__, __le__ = _comparison("less"), _comparison("less_equal")
    __gt__, __ge__ = _comparison("greater"), _comparison("greater_equal")
    # Variables are keys by identity (an optimizer's slots), whatever `==` computes.
    __hash__ = object.__hash__

    def __repr__(self):
        return f"<Variable path={self.path!r} shape={self.shape} dtype={numpy.dtype(self.dtype).name}>"


def writable_value(variable):
    """The array an update of ``variable`` writes into in place: its own, or inside a ``StatelessScope``
    (``scopes.py``) its value there, a copy of its own made on the first update, so that the variable keeps its
    value."""
    scope = get_stateless_scope()
    if scope is None:
        return variable._value
    value = scope.state_mapping.get(id(variable))
    if value is None:
        value = scope.state_mapping[id(variable)] = variable._value.copy()
    return value


# The name scopes open: (name, the layer that opened it), outermost first. As in Keras, a layer's scope is open
# while it is built and while a composite layer's call runs (so the layers built inside it take it), and a
# variable's path is the scopes open when it is made, its layer's own scope, and its name ("my_model/dense/kernel").
_NAME_SCOPES = contextvars.ContextVar("gpu_dl_name_scopes", default=())


@contextlib.contextmanager
def name_scope(layer):
    """``layer``'s name scope, open inside (unless it is the innermost open already)."""
    scopes = _NAME_SCOPES.get()
    if scopes and scopes[-1][1] is layer:
        yield
        return
    # A layer rebuilt from a saved config keeps the parent path it was given there (``_parent_path``, as Keras's
    # own, which its deserialization fixes by building each layer on its own, outside the model's scope).
    token = _NAME_SCOPES.set(scopes + ((layer.name, layer, layer.__dict__.get("_parent_path")),))
    try:
        yield
    finally:
        _NAME_SCOPES.reset(token)


@contextlib.contextmanager
def scope_of_root(layer):
    """Run as if ``layer``'s name scope were open at the root without a name of its own: the layers whose scopes
    open inside have their paths from the root, as Keras's ``build_from_config`` of a subclassed model gives them
    (it runs the model's ``call`` without opening the model's scope)."""
    token = _NAME_SCOPES.set(_NAME_SCOPES.get() + ((None, layer, ""),))
    try:
        yield
    finally:
        _NAME_SCOPES.reset(token)


def scope_names():
    """The names of the open name scopes, outermost first, as Keras's ``current_path`` joins them: a scope opened
    by ``gpu_dl.name_scope(..., override_parent=path)`` starts again from ``path`` (a third entry)."""
    names = []
    for entry in _NAME_SCOPES.get():
        if len(entry) > 2 and entry[2] is not None:
            names = [part for part in entry[2].split("/") if part]
        if entry[0] is not None:        # None: scope_of_root's entry, which adds no name
            names.append(entry[0])
    return names


def layer_path(layer):
    """The path of ``layer``'s name scope now (Keras's ``current_path`` inside it): the open name scopes, then
    ``layer``'s own (unless it is the innermost)."""
    scopes = _NAME_SCOPES.get()
    if scopes and scopes[-1][1] is layer:
        return "/".join(scope_names())
    parent = layer.__dict__.get("_parent_path")
    parents = scope_names() if parent is None else [part for part in parent.split("/") if part]
    return "/".join(parents + [layer.name])


def scoped_path(layer, name):
    """The path of ``layer``'s variable ``name`` made now: ``layer``'s path (``layer_path``), then ``name``."""
    return f"{layer_path(layer)}/{name}"


# Whether the build under way is one a first call (or fit, evaluate, predict, loading) makes, which runs the call to
# build the sublayers (Keras's build by running the call); a script's own ``model.build(shape)`` is not.
_BUILDING_BY_RUN = contextvars.ContextVar("gpu_dl_building_by_run", default=False)


def building_by_run():
    return _BUILDING_BY_RUN.get()


@contextlib.contextmanager
def build_by_run():
    """The builds inside run the call of a subclassed model, building its sublayers (see ``building_by_run``)."""
    token = _BUILDING_BY_RUN.set(True)
    try:
        yield
    finally:
        _BUILDING_BY_RUN.reset(token)


def _build_then_trace(build):
    """A subclassed model's own ``build`` (which makes its weights, as Keras allows): run once, whoever calls it,
    by the build of the model's call (``models/composite.py``), which then traces the call where the build is a
    first call's (``building_by_run``); called by a script, it runs alone, as in Keras."""
    @functools.wraps(build)
    def build_then_trace(self, *args, **kwargs):
        if self.built:
            return
        taken = build_shapes.taken(self, build, args, kwargs) if args or kwargs else {}
        input_shape = next(iter(taken.values()), None)
        if input_shape is None:
            raise ValueError(f"build() of model '{self.name}' needs an input_shape: a subclassed model is built "
                             "for the shape of its inputs (or by calling it on data).")
        from ..models import composite     # the tracing runs functional graphs, a level above; import late
        composite.build(self, input_shape, own_build=build, shapes=build_shapes.call_shapes(self, build, taken),
                        trace=building_by_run())
    build_then_trace._traced_build = True
    return build_then_trace


def _shape_structure(value, where):
    """The shape of a tensor or array (a tuple), or the shapes of a list, tuple or dict of them."""
    if isinstance(value, (list, tuple)) and not (value and isinstance(value[0], (int, type(None)))):
        return type(value)(_shape_structure(v, where) for v in value)
    if isinstance(value, dict):
        return {k: _shape_structure(v, where) for k, v in value.items()}
    shape = getattr(value, "shape", None)
    if shape is None:
        raise TypeError(f"{where}: expected symbolic tensors or arrays (or lists of them), got "
                        f"{type(value).__name__}.")
    return tuple(shape)


def _spec_structure(shape, dtype):
    """A KerasTensor of ``shape``, or a list, tuple or dict of them for a structure of shapes."""
    if isinstance(shape, dict):
        return {k: _spec_structure(v, dtype) for k, v in shape.items()}
    shape = tuple(shape) if isinstance(shape, list) and all(isinstance(d, (int, type(None))) for d in shape) \
        else shape
    if isinstance(shape, tuple) and all(isinstance(d, (int, type(None))) for d in shape):
        return KerasTensor(shape, dtype=dtype)
    return type(shape)(_spec_structure(s, dtype) for s in shape)


def _as_lists(structure):
    """A structure of lists and tuples with its tuples as lists (how Keras writes a call's nested arguments)."""
    return [_as_lists(item) for item in structure] if isinstance(structure, (list, tuple)) else structure


def _cast_floats(value, dtype):
    """``value`` (an array, or a list or tuple of them) with its float arrays cast to ``dtype``."""
    if isinstance(value, (list, tuple)):
        return type(value)(_cast_floats(v, dtype) for v in value)
    if hasattr(value, "dtype") and hasattr(value, "astype") and not is_symbolic(value) and \
            value.dtype.kind == "f" and value.dtype != dtype:
        return value.astype(dtype)
    return value


def _backward_with_casts(backward):
    """A layer's ``backward`` after a call under a float16 policy (or on float16 inputs): it runs under the
    autocast scope of that call (the weights read as they were), takes ``dy`` in the dtype the call computed in
    and gives ``dx`` in the dtype its input had before the call cast it (the casts' gradients)."""
    @functools.wraps(backward)
    def run(self, dy, *args, **kwargs):
        io = self.__dict__.get("_cast_io")
        if io is None:
            return backward(self, dy, *args, **kwargs)
        given, computed, scope = io
        dy = _cast_floats(dy, computed)
        if scope is ...:
            dx = backward(self, dy, *args, **kwargs)
        else:
            with dtype_policies.autocast_scope(scope):
                dx = backward(self, dy, *args, **kwargs)
        return _cast_floats(dx, given) if given.kind == "f" else dx
    run._casts_mixed = True
    return run


class Layer:
    """Base class of all layers. See the module docstring for the protocol."""

    _composite = False
    _remat_mode = None      # the RematMode of the RematScope the layer was made in (remat.py), or None
    # Keras's ``autocast`` (see __init__); objects made without Layer.__init__ (models, eager operations) cast.
    autocast = True
    # The name of the first parameter of Keras's ``call`` of the layer: its first argument may be given by it.
    call_first_argument = "inputs"

    def __init_subclass__(cls, **kwargs):
        # As in Keras, a layer is built once build() has run, whoever called it: a script that calls
        # layer.build(shape) itself must not get a second set of weights from the first call.
        super().__init_subclass__(**kwargs)
        if "__call__" in cls.__dict__:
            cls.__call__ = _first_argument_by_keyword(cls.__dict__["__call__"])
        # A class that keeps the base backward and defines call composes other layers: its call is traced
        # into a graph of their calls, which trains (models/composite.py).
        own_backward = cls.__dict__.get("backward")
        if own_backward is not None and not getattr(own_backward, "_composite_backward", False) and \
                not getattr(own_backward, "_casts_mixed", False):
            cls.backward = _backward_with_casts(own_backward)
        cls._composite = bool(getattr(cls.backward, "_composite_backward", False)) and cls.call is not Layer.call
        owner = _inherited_backward_owner(cls) if "call" in cls.__dict__ else None
        if owner is not None:
            warnings.warn(f"{cls.__name__} overrides call() of gpu_dl's {owner.__name__} but not backward(): training "
                          f"it runs {owner.__name__}'s backward, the gradient of {owner.__name__}'s own call, not of "
                          f"this one (gpu_dl has no automatic differentiation). Give it a backward(dy), or make it a "
                          f"Layer that holds a {owner.__name__} and composes it in call (traced for the gradient).",
                          UserWarning, stacklevel=2)
        if cls._composite and "takes_mask" not in cls.__dict__:
            cls.takes_mask = True       # the mask reaching it goes into its graph
        build = cls.__dict__.get("build")
        if build is not None and cls._composite and not cls.build_marks_built and \
                not getattr(build, "_library_build", False) and not getattr(build, "_traced_build", False):
            cls.build = _build_then_trace(build)       # a subclassed model's own build()
            return
        if build is None or getattr(build, "_marks_built", False) or not cls.build_marks_built:
            return

        @functools.wraps(build)
        def build_once(self, *args, **kwargs):
            # As Keras's, a build may take the shapes of several call arguments (build(self, query_shape,
            # value_shape)): they are kept for the layer's build config (build_shapes.py).
            if self.built:
                return
            # As Keras's build wrapper: inside the layer's name scope, whoever calls it, so that the sublayers it
            # builds have their variables under the layer's path.
            with name_scope(self):
                build(self, *args, **kwargs)
                self.built = True
            first = build_shapes.record(self, build, args, kwargs)
            if first is not None:
                self.input_spec = spec_after_build(self, first)
        build_once._marks_built = True
        cls.build = build_once

    def __init__(self, *, name=None, trainable=True, dtype=None, autocast=True, input_shape=None,
                 batch_input_shape=None, input_dim=None, activity_regularizer=None, **kwargs):
        if kwargs:
            raise ValueError(f"Unrecognized keyword arguments passed to {type(self).__name__}: {kwargs}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"{type(self).__name__}: name must be a non-empty string, got {name!r}.")
        self.name = name or unique_name(keras_class_key(type(self)))
        self._remat_mode = remat.get_current_remat_mode()
        self._dtype_policy = _layer_policy(dtype, f"layer '{self.name}': dtype")
        if isinstance(self._dtype_policy, dtype_policies.DTypePolicyMap):
            self._dtype_policy = self._dtype_policy[self.name]
        # As in Keras: False leaves floating inputs of another dtype uncast in a call of the layer on arrays, and
        # the layer's variables uncast inside its call under a mixed policy.
        self.autocast = bool(autocast)
        self._trainable = bool(trainable)
        self._weights: list[Variable] = []
        self.built = False
        self.input_spec = None          # (None, d1, d2, ...) once built
        self._saved = None              # what the last training call kept for backward
        self._activity_output = None
        self.keep_preactivation = False  # set by a model that fuses the last softmax into its loss
        # Set by such a model around the one call whose output its loss replaces (layers that can: see
        # ``leaves_activation_to_loss``): the call returns the pre-activation and skips the activation.
        self.activation_left_to_loss = False
        self._preactivation = None
        self.input_gradient_wanted = True   # cleared by a model around the backward of its first layer
        self._inbound_nodes = []        # one Node per call on symbolic tensors (see symbolic.py)
        from .. import regularizers     # catalogues sit above layers; import late
        self.activity_regularizer = regularizers.get(activity_regularizer)
        declared = None
        if input_shape is not None or input_dim is not None:
            from ..backend.user_warnings import warn
            warn("Do not pass an `input_shape`/`input_dim` argument to a layer. When using Sequential models, "
                 "prefer using an `Input(shape)` object as the first layer in the model instead.")
        if batch_input_shape is not None:
            declared = shape_tuple(batch_input_shape, f"layer '{self.name}': batch_input_shape")
        elif input_shape is not None:
            declared = (None,) + shape_tuple(input_shape, f"layer '{self.name}': input_shape")
        elif input_dim is not None:
            declared = (None,) + shape_tuple(input_dim, f"layer '{self.name}': input_dim")
        self.declared_input_shape = declared
        if build_shapes.built_at_init(self):
            # Keras builds these weightless layers when they are made; their first call still runs gpu_dl's
            # build, which checks the input shape (and keeps what its kernels need) and records the input spec.
            self._path = None
            self.built = True
            self._shape_pending = True

    # ----------------------------------------------------------------- weights
    def add_weight(self, *args, shape=None, initializer=None, dtype=None, trainable=True, autocast=True,
                   regularizer=None, constraint=None, aggregation="none", overwrite_with_gradient=False, name=None):
        """Keras 3's ``add_weight``: a new variable of the layer, made with ``initializer`` (an Initializer or its
        name; by default "glorot_uniform" for a float dtype, "zeros" otherwise), of ``shape`` (default ``()``)
        and ``dtype`` (default the layer's), named ``name`` (by default "variable", "variable_1", ... as Keras
        names a variable without one). ``shape``, ``initializer`` and ``dtype`` may also come positionally, in
        that order. Keras orders a layer's own weights trainable first, then the others: so does ``weights``. With
        ``overwrite_with_gradient``, an optimizer's step assigns the variable its gradient instead of updating it."""
        where = f"Layer '{self.__dict__.get('_name', '?')}' ({type(self).__name__}): add_weight"
        if "_weights" not in self.__dict__:
            raise RuntimeError(f"{where} was called before the layer's __init__ ran: call super().__init__() at "
                               "the start of __init__.")
        shape, initializer, dtype = self._positional_weight_arguments(args, shape, initializer, dtype, where)
        if name is None:
            name = unique_name("variable")
        elif not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"{where}: `name` must be a non-empty string without '/', got {name!r}.")
        where = f"{where}(name={name!r})"
        shape = _weight_shape(shape, where)
        dtype = _weight_dtype(self.dtype if dtype is None else dtype, where)
        if aggregation not in _AGGREGATIONS:
            raise ValueError(f"{where}: `aggregation` must be one of None, 'none', 'mean', 'sum', "
                             f"'only_first_replica', got {aggregation!r}.")
        if not isinstance(overwrite_with_gradient, bool):
            raise TypeError(f"{where}: `overwrite_with_gradient` must be a bool, got {overwrite_with_gradient!r}.")
        from .. import constraints, initializers, regularizers      # catalogues sit above layers; import late
        try:
            if initializer is None:
                initializer = "glorot_uniform" if numpy.dtype(dtype).kind == "f" else "zeros"
            init = initializers.get(initializer)
            regularizer = regularizers.get(regularizer)
            constraint = constraints.get(constraint)
        except (TypeError, ValueError) as e:
            raise type(e)(f"{where}: {e}") from None
        _spend_weight_budget(self, name, shape, dtype)
        # An initializer draws floats: an integer or boolean variable takes them converted (zeros, ones, a
        # constant). C order whatever the initializer returns (Orthogonal's q.T is Fortran-ordered): the GPU
        # kernels that update weights in place take contiguous arrays only.
        drawn = init(shape, dtype=dtype if numpy.dtype(dtype).kind == "f" else backend.floatx())
        host = numpy.asarray(drawn, dtype=dtype, order="C")     # () stays 0-d
        var = Variable(backend.to_device(host), name, trainable=bool(trainable), regularizer=regularizer,
                       constraint=constraint, path=scoped_path(self, name), autocast=autocast,
                       aggregation=aggregation)
        var.overwrite_with_gradient = overwrite_with_gradient
        if not self._trainable:
            var.trainable = False
        if trainable:           # after the other trainable ones, before the others
            position = next((i for i, v in enumerate(self._weights) if not v._listed_trainable), len(self._weights))
            self._weights.insert(position, var)
        else:
            self._weights.append(var)
        return var

    def add_variable(self, shape, initializer, dtype=None, trainable=True, autocast=True, regularizer=None,
                     constraint=None, name=None):
        """Keras's ``add_variable``: ``add_weight`` with ``shape`` and ``initializer`` required, in that order."""
        return self.add_weight(shape=shape, initializer=initializer, dtype=dtype, trainable=trainable,
                               autocast=autocast, regularizer=regularizer, constraint=constraint, name=name)

    @staticmethod
    def _positional_weight_arguments(args, shape, initializer, dtype, where):
        """``(shape, initializer, dtype)`` from Keras's positional form ``add_weight(shape, initializer, dtype)``
        and the keywords."""
        if len(args) > 3:
            raise TypeError(f"{where} takes at most 3 positional arguments (shape, initializer, dtype), got "
                            f"{len(args)}.")
        if args and isinstance(args[0], str):
            raise ValueError(f"{where}: `name` must be passed as a keyword argument, got add_weight({args[0]!r}, "
                             f"...). Use add_weight(shape=..., name={args[0]!r}).")
        given = list(zip(("shape", "initializer", "dtype"), args))
        keywords = {"shape": shape, "initializer": initializer, "dtype": dtype}
        for key, value in given:
            if keywords[key] is not None:
                raise ValueError(f"{where}: `{key}` was passed both positionally and as a keyword argument.")
            keywords[key] = value
        return keywords["shape"], keywords["initializer"], keywords["dtype"]

    def _set_own_weights_trainable(self, value):
        for var in self._weights:
            if var._listed_trainable:
                var.trainable = value

    # ------------------------------------------------------------------ graph
    @property
    def input(self):
        """The input tensor(s) of the layer's first call on symbolic tensors, as Keras 3's ``Layer.input``: one
        tensor, or a list of them (an InputLayer's: an empty list). Later calls do not change it."""
        return self._first_call_attribute("input_tensors", "input")

    @property
    def output(self):
        """The output tensor(s) of the layer's first call on symbolic tensors, as Keras 3's ``Layer.output``:
        what ``keras.Model(inputs, [layer.output for layer in model.layers])`` reads. Later calls do not change
        it."""
        return self._first_call_attribute("outputs", "output")

    def _first_call_attribute(self, attribute, what):
        nodes = self.__dict__.get("_inbound_nodes")
        if not nodes:
            # Keras's message, then what records a call.
            raise AttributeError(f"The layer {self.name} has never been called and thus has no defined {what}. "
                                 f"A layer has an {what} once it is called on symbolic tensors (keras.Input(...) or "
                                 "another layer's output, or inside a Sequential model whose input shape is known); "
                                 "calls on arrays record none.")
        values = getattr(nodes[0], attribute)
        return values[0] if len(values) == 1 else list(values)

    @property
    def name(self):
        return self._name

    @name.setter
    def name(self, value):
        global _rename_count
        if "_name" in self.__dict__:
            _rename_count += 1
        self._name = value

    @property
    def built(self):
        """Whether the layer has been built (its weights made for the shape of its inputs)."""
        return self.__dict__.get("_built", False)

    @built.setter
    def built(self, value):
        # As Keras records it when the layer is built: its path then (the name scopes open around the build).
        # Keras builds some layers when they are made, without a path, which they keep (None) after.
        if value and self._path_at_build and "_path" not in self.__dict__:
            self._path = layer_path(self) or None     # None: built under scope_of_root, as Keras leaves it
        self._built = value

    _path_at_build = True      # False: the layer keeps no path (InputLayer, as Keras's)

    @property
    def path(self):
        """Keras's ``path``: the layer's name scope when it was built, as its variables' paths begin
        (``"sequential/dense"`` for a Dense layer of a Sequential model named "sequential"); None before."""
        return self.__dict__.get("_path")

    # Keras's flag for layers whose call cannot be compiled by XLA (those computing on the host, as gpu_dl's do
    # too): a model holding one resolves ``jit_compile`` to False.
    supports_jit = True

    @property
    def call_signature_parameters(self):
        """Keras's ``call_signature_parameters``: the names of the parameters of the layer's ``call``. The first
        of a gpu_dl layer's is named as Keras names it (``call_first_argument``)."""
        names = list(inspect.signature(self.call).parameters)
        if names and type(self).call.__module__.startswith("gpu_dl."):
            names[0] = self.call_first_argument
        return names

    def compute_output_spec(self, *args, **kwargs):
        """Keras's ``compute_output_spec``: the symbolic tensor(s) ``compute_output_shape`` gives for the shapes of
        the call's arguments (symbolic tensors or arrays; lists of them for a layer taking several), in the
        layer's compute dtype. As Keras binds them: the positional arguments' shapes as far as
        ``compute_output_shape`` takes them, a keyword argument ``key=`` as its ``key_shape``; a gpu_dl layer
        whose ``compute_output_shape`` takes the shapes of its several tensors as one list (MultiHeadAttention's
        query, value and key) gets them so. Nothing is recorded: the layer is not called."""
        where = f"Layer '{self.name}': compute_output_spec"
        if not args:
            raise TypeError(f"{where}() needs the call's inputs (symbolic tensors or arrays, or their lists).")
        parameters = inspect.signature(self.compute_output_shape).parameters.values()
        names = {p.name for p in parameters}
        tensors = {k: v for k, v in kwargs.items() if v is not None and hasattr(v, "shape")}
        keywords = {f"{k}_shape": _shape_structure(v, where) for k, v in tensors.items() if f"{k}_shape" in names}
        positional = [_shape_structure(a, where) for a in args]
        if not any(p.kind is p.VAR_POSITIONAL for p in parameters):
            taken = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters)
            if taken <= 1 and not keywords and len(positional) + len(tensors) > 1:
                positional = [positional + [_shape_structure(v, where) for v in tensors.values()]]
            positional = positional[:max(taken, 1)]
        shape = self.compute_output_shape(*positional, **keywords)
        return _spec_structure(shape, self.compute_dtype)

    # ------------------------------------------------------------------ dtypes
    @property
    def dtype_policy(self):
        """Keras's ``dtype_policy``: the ``DTypePolicy`` giving the layer's ``variable_dtype`` and
        ``compute_dtype`` (``gpu_dl.dtype_policies``)."""
        policy = self.__dict__.get("_dtype_policy")
        return dtype_policies.DTypePolicy._of_dtype(backend.floatx()) if policy is None else policy

    @dtype_policy.setter
    def dtype_policy(self, value):
        self._dtype_policy = _layer_policy(value, f"layer '{self.name}': dtype_policy")

    @property
    def dtype(self):
        """As Keras's ``Layer.dtype``: the dtype of the layer's weights (``variable_dtype``)."""
        return self.dtype_policy.variable_dtype

    @dtype.setter
    def dtype(self, value):
        # The dtype of an operation's or an input's tensors, of any kind: a policy of that one dtype.
        try:
            self._dtype_policy = dtype_policies.DTypePolicy._of_dtype(value)
        except TypeError:
            self._dtype_policy = _layer_policy(value, f"layer '{self.name}': dtype")

    @property
    def variable_dtype(self):
        """The dtype the layer makes its weights in."""
        return self.dtype_policy.variable_dtype

    @property
    def compute_dtype(self):
        """The dtype of the layer's computations and outputs: its floating inputs are cast to it."""
        return self.dtype_policy.compute_dtype

    @property
    def input_dtype(self):
        """The dtype the layer's inputs are converted to (Keras's ``input_dtype``)."""
        return self.compute_dtype

    # ------------------------------------------------------------- sublayers
    def __setattr__(self, name, value):
        # As Keras 3 tracks them: a layer assigned to an attribute (or a list, tuple or dict of layers; an empty
        # list or dict under a public name, which may be filled later) is a sublayer, in the order of assignment.
        object.__setattr__(self, name, value)
        if name in _UNTRACKED:
            return
        if isinstance(value, Variable):
            self._track_variable(value, name)
        tracked = self.__dict__.get("_tracked_layers")
        if isinstance(value, Layer) or (isinstance(value, (list, tuple, dict)) and (
                _holds_layers(value) or (not value and not name.startswith("_") and not isinstance(value, tuple)))):
            if value is self:
                return
            if tracked is None:
                tracked = self.__dict__["_tracked_layers"] = {}
            tracked[name] = value
        elif tracked and name in tracked:
            del tracked[name]

    # Attributes holding a Variable the layer keeps apart from its weights (written to files under their own
    # keys).
    _untracked_variables = frozenset()

    def _track_variable(self, variable, name):
        """As Keras 3 tracks them: a Variable assigned to an attribute (``self.v = keras.Variable(...)``) is one
        of the layer's weights, trainable ones after the trainable weights made so far, others last."""
        own = self.__dict__.get("_weights")
        if own is None or name in self._untracked_variables or any(v is variable for v in own):
            return
        if variable._listed_trainable:
            position = next((i for i, v in enumerate(own) if not v._listed_trainable), len(own))
            own.insert(position, variable)
        else:
            own.append(variable)

    def __delattr__(self, name):
        object.__delattr__(self, name)
        self.__dict__.get("_tracked_layers", {}).pop(name, None)

    def _sublayers(self):
        """The layers held in this layer's attributes, each once, in the order they were assigned (Keras's
        ``_layers``)."""
        tracked = self.__dict__.get("_tracked_layers")
        if not tracked:
            return []
        found = []
        _flatten_layers(list(tracked.values()), found, {id(self)})
        return found

    def _tracked_items(self):
        """``[(attribute name, value)]`` of the attributes holding sublayers, in the order they were assigned."""
        return list(self.__dict__.get("_tracked_layers", {}).items())

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        # As in Keras, setting it sets the sublayers' too, and the flag of the layer's trainable weights.
        self._trainable = bool(value)
        self._set_own_weights_trainable(self._trainable)
        for layer in self._sublayers():
            layer.trainable = value

    @property
    def weights(self):
        """The layer's own weights, then its sublayers' (each once), as Keras 3 orders them."""
        sublayers = self._sublayers()
        if not sublayers:
            return list(self._weights)
        return _unique_variables(list(self._weights) + [v for layer in sublayers for v in layer.weights])

    @property
    def trainable_weights(self):
        if not self._trainable:
            return []
        sublayers = self._sublayers()
        own = [v for v in self._weights if v.trainable]
        if not sublayers:
            return own
        return _unique_variables(own + [v for layer in sublayers for v in layer.trainable_weights])

    @property
    def non_trainable_weights(self):
        if not self._trainable:
            return self.weights
        trainable = {id(v) for v in self.trainable_weights}
        return [v for v in self.weights if id(v) not in trainable]

    @property
    def _seed_generators(self):
        """The ``keras.random.SeedGenerator`` objects held in this layer's attributes, in the order they were set."""
        from .seed_generator import seed_generators_of     # it imports this module at its top
        return [g for value in self.__dict__.values() for g in seed_generators_of(value)]

    @property
    def variables(self):
        """Keras's ``variables``: the layer's own weights, the states of its SeedGenerators, then each sublayer's
        variables (each once). The seed states are not weights: ``weights`` and weight files leave them out."""
        sublayers = getattr(self, "layers", None)       # a model's layers; a layer's are its tracked attributes
        found = list(self._weights) + [g.state for g in self._seed_generators]
        for layer in (self._sublayers() if sublayers is None else sublayers):
            found.extend(layer.variables)
        return _unique_variables(found)

    @property
    def trainable_variables(self):
        """Keras's ``trainable_variables``: the trainable ones of ``variables`` (the trainable weights); none
        where the layer is frozen."""
        if not self.trainable:
            return []
        return [v for v in self.variables if v.trainable]

    @property
    def non_trainable_variables(self):
        """Keras's ``non_trainable_variables``: the other ``variables`` (the non-trainable weights, then the
        states of SeedGenerators); all of them where the layer is frozen."""
        if not self.trainable:
            return self.variables
        return [v for v in self.variables if not v.trainable]

    @property
    def metrics_variables(self):
        """Keras's ``metrics_variables``: the state variables of each of ``metrics``, in their order (those of
        gpu_dl's built-in metrics whose Keras counterparts have variables, such as the ``total`` and ``count`` of
        a ``Mean``, read over the sums they keep; ``metric_base.StateVariable``)."""
        return [v for metric in self.metrics for v in metric.variables]

    def get_weights(self):
        return [v.numpy() for v in self.weights]

    def set_weights(self, weights):
        """Replace all weights at once; on any mismatch, raise and change nothing."""
        weights = list(weights)
        variables = self.weights
        if len(weights) != len(variables):
            raise ValueError(self._weight_count_message(variables, len(weights)))
        arrays = []
        for i, (var, w) in enumerate(zip(variables, weights)):
            a = numpy.asarray(backend.to_numpy(w))
            if a.dtype.kind not in "fiub":
                raise TypeError(f"{self._weight_label(i, var)} must be numeric, got dtype {a.dtype}.")
            if tuple(a.shape) != var.shape:
                raise ValueError(f"{self._weight_label(i, var)} has shape {var.shape}, "
                                 f"got an array of shape {tuple(a.shape)}.")
            arrays.append(a)
        for var, a in zip(variables, arrays):
            var.assign(a)

    def _weight_count_message(self, variables, given):
        return (f"Layer '{self.name}' expects {len(variables)} weight array(s) "
                f"({', '.join(str(v.shape) for v in variables) or 'none'}), got {given}.")

    def _weight_label(self, i, var):
        return f"Layer '{self.name}': weight {i} ('{var.name}')"

    def count_params(self):
        return int(sum(int(numpy.prod(v.shape)) for v in self.weights))

    # ------------------------------------------------------------ forward path
    def build(self, input_shape):
        self.built = True
    build._library_build = True

    def compute_output_shape(self, input_shape):
        if self._composite:
            from ..models import composite     # the tracing runs functional graphs, a level above; import late
            return composite.output_shape(self, input_shape)
        return tuple(input_shape)

    def _flat_output_shape(self, input_shape):
        """The output shape as the models holding this layer read it: one shape, or a list of one per output.
        A layer's ``compute_output_shape`` gives that already; a model's gives its outputs' structure (a dict,
        a tuple, ...), as Keras does, and a model overrides this to give the flat form."""
        return self.compute_output_shape(input_shape)

    def call(self, x, training=False):
        raise NotImplementedError

    @_marks_composite
    def backward(self, dy, **kwargs):
        if self._composite:
            from ..models import composite
            return composite.backward(self, dy)
        raise NotImplementedError(f"{type(self).__name__} has no backward pass.")

    def get_build_config(self):
        """Keras 3's build config: ``{"input_shape": shape}`` of the shape the layer was built for, or
        ``{"shapes_dict": {"query_shape": ..., ...}}`` for a build of several shapes; None before it is built.
        Saving writes it; ``build_from_config`` builds a layer from it (a layer that makes its weights otherwise
        may override both, as in Keras)."""
        return build_shapes.build_config(self)

    def build_from_config(self, config):
        """Build the layer from a ``get_build_config`` dict (its ``input_shape``, or its ``shapes_dict`` for a
        build of several shapes), as Keras 3's does; nothing for an empty one."""
        if not config:
            return
        if not isinstance(config, dict):
            raise TypeError(f"Layer '{self.name}' ({type(self).__name__}): build_from_config() takes the dict "
                            f"get_build_config() gives, got {type(config).__name__}.")
        from .layer_serialization import build_from_config
        build_from_config(self, config)

    def ensure_built(self, input_shape):
        """Build for ``input_shape`` (batch dimension first, may be None) unless already built."""
        if self._composite:
            if not self.built:
                from ..models import composite
                composite.build(self, input_shape)
            return
        pending = self.__dict__.pop("_shape_pending", False)
        if not self.built or pending:
            input_shape = tuple(input_shape)
            given = input_shape
            if build_shapes.active_stand_in() is not None:
                # Built inside a traced call (or a Sequential built from data): the shape Keras's build gets; the
                # layer takes the sizes it was given as unknown all the same
                given = tuple(build_shapes.with_stand_ins(input_shape))
                self.__dict__.setdefault("_build_batch", build_shapes.active_stand_in())
            self.built = False      # so that a build wrapped to run once runs for a layer built when made
            try:
                with name_scope(self):
                    self.build(given)
            except BaseException:
                if pending:
                    self.built, self._shape_pending = True, True
                raise
            self.built = True
            self.input_spec = spec_after_build(self, input_shape)
            # The shape the build was given, for the build config, where its build did not keep it
            self.__dict__.setdefault("_build_shapes", {"input_shape": given})

    # Whether a subclass's build() is wrapped to run once and then record ``built`` and ``input_spec``. Models
    # keep both themselves: their build builds their layers, their input_spec is their inputs'.
    build_marks_built = True

    # The input axes a built layer holds fixed, counted from the end (-1: the last); None: the rank and every
    # axis after the batch. As in Keras, a layer whose weights fix only some axes (Dense: the last) or
    # none (activations, dropout) takes inputs of any rank and any size along the other axes once built.
    fixed_input_axes = None
    keeps_input_dtype = False   # True for a layer that takes ids, not numbers of its dtype
    # Masks of padded sequence steps, (batch, timesteps) booleans, as in Keras: a layer that supports
    # masking passes its input's mask on; one that takes a mask (the recurrent layers) reads it in call().
    supports_masking = False
    takes_mask = False
    drops_mask = False            # True: a mask reaching it ends there without a warning (operations)
    takes_initial_state = False   # the recurrent layers' call(x, initial_state=[...])
    takes_input_list = False      # the merge layers' call([x1, x2, ...])

    def compute_mask(self, x, mask=None):
        """Keras's ``compute_mask``: the mask of this layer's output for its input ``x`` reached by ``mask`` (None:
        none). By default the input's, which a layer that supports masking passes on; a model holding the layer
        asks it only then (``masks.output_mask``), and a layer that computes a mask of its own overrides it."""
        return mask

    def _carried_masks(self, node, mask_of):
        """For a composite layer, the masks that reach the outputs of its traced graph in the symbolic call of
        ``node``, whose tensors have the masks ``mask_of(tensor)``."""
        from ..models import composite
        return composite.carried_masks(self, node, mask_of)

    def add_metric(self, *args, **kwargs):
        """Refused, as in Keras 3."""
        raise NotImplementedError("Layer `add_metric()` method is deprecated (in Keras 3 as in gpu_dl). Add your "
                                  "metric in `Model.compile(metrics=[...])`, or create a metric in the layer's "
                                  "__init__() or build() (self.accuracy = keras.metrics.BinaryAccuracy()) and call "
                                  "its update_state() in call(): the model's logs report it.")

    @property
    def metrics(self):
        """As Keras's ``metrics``: the metrics this layer holds in its attributes, then its sublayers'
        (``layer_metrics``)."""
        return layer_metrics.layer_metrics(self)

    def check_input_shape(self, shape):
        """Raise a ValueError naming the layer when ``shape`` does not fit what it was built for."""
        spec = built_input_shape(self)
        if spec is None or self._composite:      # a composite layer's sublayers check what reaches them
            return
        shape = tuple(shape)
        if self.fixed_input_axes is None:
            wrong = len(shape) != len(spec) or any(s is not None and d is not None and s != d
                                                   for s, d in zip(spec[1:], shape[1:]))
            held = ""
        else:
            wrong = any(len(shape) <= -a or (spec[a] is not None and shape[a] is not None and spec[a] != shape[a])
                        for a in self.fixed_input_axes)
            held = f" (only axis {', '.join(map(str, self.fixed_input_axes))} must match)"
        if wrong:
            raise ValueError(
                f"Input of layer '{self.name}' ({type(self).__name__}) is incompatible: "
                f"expected shape {spec}, got {shape}{held}."
            )

    def _as_input(self, x):
        """``x`` as an array of real numbers: nested lists become arrays on the current device, as Keras
        converts them; complex, text or object data is refused rather than silently cast."""
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            try:
                x = backend.to_device(numpy.asarray(x))
            except (TypeError, ValueError) as e:
                raise TypeError(f"Layer '{self.name}' ({type(self).__name__}) takes an array or nested lists of "
                                f"numbers, got {type(x).__name__} ({e}).") from None
        if numpy.dtype(x.dtype).kind not in "biuf":
            raise TypeError(f"Layer '{self.name}' ({type(self).__name__}) takes real numbers, got an array of "
                            f"{numpy.dtype(x.dtype).name}.")
        return x

    def _on_weights_device(self, x):
        """A host NumPy input of a layer whose weights are on the GPU, moved there (as Keras converts inputs to
        tensors on the device): CuPy refuses host operands. A layer without weights computes where its input
        is."""
        if not isinstance(x, numpy.ndarray) or type(x).__module__.startswith("cupy"):
            return x
        for weight in self.weights:
            module = backend.array_module(weight.value)
            if module is not numpy:
                return module.asarray(x)
        return x

    @layer_losses.top_level
    def first_argument_name(self):
        """The keyword a call may give its first argument (the input tensors) by, as Keras's ``CallSpec`` binds
        it: the first parameter of the layer's ``call`` where the class defining that ``call`` is the user's; for
        gpu_dl's layers, Keras's name for it (``call_first_argument``: ``inputs``, or ``sequences``, ``query``,
        ``data``, ...); None where that ``call`` takes its inputs as ``*args``."""
        for klass in type(self).__mro__:
            call = klass.__dict__.get("call")
            if call is None:
                continue
            if klass.__module__.split(".")[0] == "gpu_dl":
                break
            try:
                parameters = list(inspect.signature(call).parameters.values())[1:]
            except (TypeError, ValueError):
                break
            first = parameters[0] if parameters else None
            return first.name if first is not None and first.kind == first.POSITIONAL_OR_KEYWORD else None
        return self.call_first_argument

    @_first_argument_by_keyword
    def __call__(self, x, *args, training=None, mask=None, initial_state=None, **kwargs):
        if isinstance(x, Variable):     # its tensor in a call being traced, else its value
            x = x.current()
        constant = traced_constant(x)
        if constant is not None:        # an array in the call of a composite layer being traced
            x = constant
        if self._composite:
            # As Keras binds them: the call's arguments (tensors, or constants of the traced graph) and keywords.
            from ..models import composite
            if initial_state is not None:
                raise TypeError(f"Layer '{self.name}' ({type(self).__name__}) takes no initial_state.")
            self.assert_input_spec(x)       # a spec set in __init__, or by a build that has run
            return composite.dispatch(self, x, args, kwargs, training, mask)
        if kwargs:
            raise TypeError(f"Layer '{self.name}' ({type(self).__name__}) got unexpected keyword argument(s): "
                            f"{', '.join(sorted(kwargs))}.")
        if args:        # layer(x, training, mask, initial_state), positionally
            if len(args) > 3:
                raise TypeError(f"Layer '{self.name}' ({type(self).__name__}) takes at most 4 positional arguments "
                                f"(x, training, mask, initial_state), got {len(args) + 1}.")
            given = dict(zip(("training", "mask", "initial_state"), args))
            training = given.get("training", training)
            mask = given.get("mask", mask)
            initial_state = given.get("initial_state", initial_state)
        if any_symbolic(x, initial_state, mask):
            return self.symbolic_call(x, training=training, mask=mask, initial_state=initial_state)
        training = bool(training)      # None (a model called without it): this layer's default, inference
        if initial_state is not None and not self.takes_initial_state:
            raise TypeError(f"Layer '{self.name}' ({type(self).__name__}) takes no initial_state.")
        x = self._as_input(x)
        unbuilt = self.assert_input_spec(x)
        self.ensure_built(x.shape)
        self.assert_input_spec(x, unbuilt)      # again, as Keras: build may have set the spec
        self.check_input_shape(x.shape)
        x = self._on_weights_device(x)
        given_dtype, call_dtype = x.dtype, self._call_dtype()
        if x.dtype != call_dtype and not self.keeps_input_dtype and (self.autocast or x.dtype.kind != "f"):
            x = x.astype(call_dtype)
        arguments = {}
        takes_training, takes_mask, _ = call_arguments(type(self).call)
        if self.takes_mask:
            arguments["mask"] = self._checked_mask(x, mask)
        elif takes_mask and mask is not None:
            arguments["mask"] = mask
        if initial_state is not None:
            arguments["initial_state"] = initial_state
        if takes_training:       # as in Keras, a call that does not name `training` is not given it
            arguments["training"] = training
        if training and remat.applies(self, self._remat_mode):
            # Rematerialised (gpu_dl.RematScope, gpu_dl.remat): the state for the backward is recomputed there.
            y = remat.call(self, functools.partial(self._policy_call, given_dtype, self.call), x, arguments)
        else:
            y = self._policy_call(given_dtype, self.call, x, **arguments)
        self._activity_output = y if self.activity_regularizer is not None else None
        if self.activity_regularizer is not None:
            layer_losses.record_activity(self, y)
        return y

    # Whether the layer computes in float32 when its policy computes in float16 (its inputs cast to float32, its
    # weights read as they are, its outputs cast to float16), as Keras's BatchNormalization keeps its statistics.
    computes_in_float32 = False

    def _call_dtype(self):
        compute = self.compute_dtype
        return "float32" if compute == "float16" and self.computes_in_float32 else compute

    def _symbolic_dtype(self):
        """The dtype of the layer's outputs in a call on symbolic tensors."""
        return self.compute_dtype

    def _policy_call(self, given_dtype, function, *args, **kwargs):
        """``function(*args, **kwargs)`` (the layer's ``call``, on inputs already in ``_call_dtype()``, which were
        of ``given_dtype`` before) under the autocast scope of the layer's policy, its outputs as
        ``_mixed_output`` gives them."""
        call_dtype = self._call_dtype()
        scope = dtype_policies.layer_scope_dtype(self)
        if call_dtype != self.compute_dtype:        # a layer computing in float32 inside a mixed model
            scope = None
        if scope is ...:
            y = function(*args, **kwargs)
        else:
            with dtype_policies.autocast_scope(scope):
                y = function(*args, **kwargs)
        return self._mixed_output(y, given_dtype, call_dtype, scope)

    def _mixed_output(self, y, given_dtype, call_dtype, scope):
        """The output of a call under a float16 policy, or of a float16 input cast to another dtype: a float output
        of another dtype cast to the compute dtype (for a layer whose computations mix its float16 inputs with
        float32 constants); what the layer's backward needs for the casts' gradients is kept."""
        compute = self.compute_dtype
        if compute != "float16" and given_dtype != numpy.float16:
            self.__dict__["_cast_io"] = None
            return y
        self.__dict__["_cast_io"] = (numpy.dtype(given_dtype), numpy.dtype(call_dtype), scope)
        if compute == "float16":
            y = _cast_floats(y, compute)
        return y

    def symbolic_call(self, x, training=None, mask=None, initial_state=None):
        """The call on symbolic tensors (``Input(...)`` and what layers made of it): builds the layer for their
        shapes and returns symbolic outputs, recording the call as a ``Node`` of this layer."""
        where = f"Layer '{self.name}' ({type(self).__name__})"
        check_symbolic_mask(mask, where)
        if isinstance(x, (list, tuple)):
            if not all(is_symbolic(t) for t in x):
                raise TypeError(f"{where} was called on a list that mixes symbolic tensors (from keras.Input) and "
                                f"other values ({', '.join(type(t).__name__ for t in x)}); give symbolic tensors only.")
            if not self.takes_input_list:
                raise ValueError(f"{where} takes one tensor, got a list of {len(x)}: combine several tensors first "
                                 "with a merge layer (layers.Concatenate, layers.Add, ...).")
            x = list(x)
            shape = [t.shape for t in x]
        elif is_symbolic(x):
            shape = x.shape
        else:
            raise TypeError(f"{where}: initial_state is symbolic but the input is {type(x).__name__}; call the layer "
                            "on symbolic tensors (from keras.Input) throughout.")
        kwargs = {}
        if training is not None:
            kwargs["training"] = bool(training)
        if initial_state is not None:
            if not self.takes_initial_state:
                raise TypeError(f"{where} takes no initial_state.")
            # kept as given (a list, nested per cell for an RNN of several cells), tuples as lists: Keras records it so
            states = _as_lists(initial_state if isinstance(initial_state, (list, tuple)) else [initial_state])
            flat = flatten_structure(states)
            if not all(is_symbolic(s) for s in flat):
                raise TypeError(f"{where}: initial_state mixes symbolic tensors and arrays; in a call on symbolic "
                                "tensors every state must be symbolic too.")
            self.check_initial_state_shapes([s.shape for s in flat])
            kwargs["initial_state"] = states
        unbuilt = self.assert_input_spec(x)
        self.ensure_built(shape)
        self.assert_input_spec(x, unbuilt)
        self.check_input_shape(shape)
        out_shape = self._flat_output_shape(shape)
        several = isinstance(out_shape, list)
        outputs = [KerasTensor(s, dtype=self._symbolic_dtype()) for s in (out_shape if several else [out_shape])]
        if mask is not None:
            kwargs["mask"] = mask
        from . import masks     # it imports this module at its top
        masks.set_node_masks(Node(self, args=(x,), kwargs=kwargs, outputs=outputs))
        return self.symbolic_structure(outputs) if several else outputs[0]

    def symbolic_structure(self, outputs):
        """The symbolic outputs of a call, given flat (one per shape of ``_flat_output_shape``), in the structure
        the call returns them in: a list; an RNN of several cells nests its states per cell, as Keras does."""
        return list(outputs)

    def assert_input_spec(self, x, unbuilt=None):
        """Keras's check of the input ``x`` against the ``InputSpec`` (or structure of them) a layer written for
        Keras set as its ``input_spec`` (layers/input_spec.py); nothing for the shape gpu_dl keeps there. Called
        before building (it returns what undoes the build) and after, with that: a call refused then leaves the
        layer unbuilt, as it found it."""
        check_input_spec(self, x, unbuilt)
        if self.built and not self.__dict__.get("_shape_pending"):
            return None
        return list(self._weights), self.input_spec, self.built

    def check_initial_state_shapes(self, shapes):
        """Raise a ValueError naming the layer when symbolic initial states of ``shapes`` do not fit it."""

    def _checked_mask(self, x, mask):
        """``mask`` as (batch, timesteps) booleans on ``x``'s device, or None; a clear error if it does not fit."""
        if mask is None:
            return None
        mask = backend.array_module(x).asarray(mask)
        if mask.shape != tuple(x.shape[:2]):
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}): the mask must have shape (batch, "
                             f"timesteps) = {tuple(x.shape[:2])}, got {tuple(mask.shape)}.")
        return mask.astype(bool, copy=False)

    def saved(self):
        """What the last training call kept; a clear error when backward comes without one."""
        if self._saved is None:
            owner = _inherited_backward_owner(type(self))
            hint = "" if owner is None else (
                f" Its class {type(self).__name__} overrides call() of {owner.__name__} but not backward(), which is "
                f"the gradient of {owner.__name__}'s own call: gpu_dl has no automatic differentiation. Give the class "
                f"a backward(dy) for its call, or make it a Layer that holds a {owner.__name__} "
                f"(self.inner = {owner.__name__}(...)) and composes it in call, which gpu_dl traces for the gradient.")
            raise RuntimeError(f"Layer '{self.name}': backward() needs a preceding call with training=True.{hint}")
        return self._saved

    # Whether the layer's call honours ``activation_left_to_loss`` (a model sets that only on such layers).
    leaves_activation_to_loss = False

    def _wants_preactivation(self, training):
        """For a layer with an ``activation``: whether a call must keep z, the activation's input: a model reads
        it (``keep_preactivation``), or the backward of a training call does (not for an activation whose
        gradient comes from its output)."""
        return self.keep_preactivation or (bool(training) and self.activation.gradient_reads_input)

    def _activation_gradient(self, z, y, dy):
        """The gradient of the activation's input from what a training call kept: z, or y alone where
        ``_wants_preactivation`` let it keep no z (its kernel then wrote none)."""
        return self.activation.grad(y if z is None else z, y, dy)

    def saved_preactivation(self):
        """The input of this layer's activation in its last call, kept when ``keep_preactivation`` is set
        (the logits, when the activation is a softmax fused into the loss)."""
        if self._preactivation is None:
            raise RuntimeError(f"Layer '{self.name}' kept no pre-activation: set keep_preactivation before calling it.")
        return self._preactivation

    # ------------------------------------------------------------------ losses
    # A layer with its own backward whose call adds losses of arrays sets this True when that backward adds those
    # losses' gradients to the gradients it returns and writes (each loss counts once in the model's total loss);
    # otherwise a training step refuses such losses, naming the layer (layer_losses.py).
    backward_includes_added_losses = False

    def stateless_call(self, trainable_variables, non_trainable_variables, *args, return_losses=False, **kwargs):
        """Keras's ``stateless_call``: the call on ``args`` with the weights read as the values given, none of them
        changed; returns ``(outputs, non_trainable_values)`` (and the losses with ``return_losses``). See
        ``scopes.stateless_call``."""
        from .scopes import stateless_call
        return stateless_call(self, trainable_variables, non_trainable_variables, args, kwargs, return_losses)

    def add_loss(self, loss):
        """Add ``loss`` (a scalar, or a list of them; a non-scalar counts by its sum) to this layer's ``losses``,
        as Keras's ``add_loss``: from ``call`` (or ``build``). In the call of a layer without its own backward it
        is a symbolic tensor of the traced graph, which computes it in each call and trains through it; in a call
        on arrays it is an array, recorded as computed (see ``layer_losses``)."""
        layer_losses.add_loss(self, loss)

    @property
    def losses(self):
        """As Keras's ``losses``: the losses this layer and the layers within it added in its last top-level call
        (``add_loss``, and the activity regularizers' penalties), then the penalties of the regularizers of its
        trainable weights.

        After a top-level call with ``training=True`` in which it added losses, they are loss values
        (``gpu_dl.backprop.LossValue``), as are the penalties: a loss of that call plus them (``loss +
        sum(layer.losses)``, as Keras's guides write a training loop) backpropagates into them too."""
        parts = layer_losses.losses(self)
        # A composite layer's call is recorded as its graph's.
        graph = self.__dict__.get("_active_graph")
        record = backprop.latest_call(self) or (backprop.latest_call(graph) if graph is not None else None)
        if record is None or not getattr(record, "adds_losses", False) or record.state is None:
            return parts
        regularized = [var for var in self.trainable_weights if var.regularizer is not None]
        added = len(parts) - len(regularized)
        # The call's backward sends the gradients of all its added losses at once: each carries its share of
        # that call, so their sum includes it exactly once.
        share = {record: fractions.Fraction(1, added)} if added else {}
        values = [backprop.LossValue(part, (), share) for part in parts[:added]]
        for part, var in zip(parts[added:], regularized):
            seed = backprop.variable_seed(var, lambda var=var: var.regularizer.gradient(var.value))
            values.append(backprop.LossValue(part, [seed]))
        return values

    def _loss_sublayers(self):
        """The layers whose losses count among this layer's (its sublayers; a model's layers)."""
        return self._sublayers()

    # --------------------------------------------------- weight arguments
    def set_weight_arguments(self, **arguments):
        """Keep Keras's ``<weight>_initializer``, ``_regularizer`` and ``_constraint`` arguments as the
        catalogue objects they name; ``weight_arguments_config`` serialises them back."""
        for name, value in arguments.items():
            setattr(self, name, _weight_catalogue(name).get(value))
        self._weight_argument_names = getattr(self, "_weight_argument_names", ()) + tuple(arguments)

    def weight_arguments_config(self):
        return {name: _weight_catalogue(name).serialize(getattr(self, name))
                for name in getattr(self, "_weight_argument_names", ())}

    # ------------------------------------------------------ saving its state
    def save_own_variables(self, store):
        """Keras's hook: put the layer's own variables in ``store`` (a dict: its ``vars`` group of the weights
        file) under ``"0"``, ``"1"``, ... A class may override it (calling this) to save more, with
        ``load_own_variables`` reading it back; the built-in layers' files are written by the weights layout
        (``models/weights_h5.py``), whose arrays these are."""
        for i, variable in enumerate(self._weights):
            store[str(i)] = variable.numpy()

    def load_own_variables(self, store):
        """Keras's hook: assign the layer's own variables from ``store`` (``"0"``, ``"1"``, ... as
        ``save_own_variables`` wrote them)."""
        if len(store) != len(self._weights):
            raise ValueError(f"Layer '{self.name}' expected {len(self._weights)} variables, but received "
                             f"{len(store)} variables during loading. Expected: {[v.name for v in self._weights]}")
        for i, variable in enumerate(self._weights):
            variable.assign(store[str(i)])

    def _overrides_state_hooks(self):
        """Whether the class has a ``save_own_variables`` or ``load_own_variables`` of its own (a class of the
        caller's): its files are written and read through them."""
        cls = type(self)
        return cls.save_own_variables is not Layer.save_own_variables or \
            cls.load_own_variables is not Layer.load_own_variables

    # -------------------------------------------------------------- serialising
    def get_config(self):
        policy = self.dtype_policy
        # Keras writes a quantized policy serialized, a float one by its name
        config = {"name": self.name, "trainable": self.trainable,
                  "dtype": policy.name if policy.quantization_mode is None else dtype_policies.serialize(policy)}
        if self.activity_regularizer is not None:
            from .. import regularizers
            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} built={self.built}>"
