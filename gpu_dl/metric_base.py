"""The base class of gpu_dl's metrics (Keras 3's ``keras.metrics.Metric``).

A metric written as Keras's guides write one makes its state in ``__init__``
with ``self.add_variable(shape, initializer, dtype=None, aggregation="sum",
name=None)`` (``add_weight`` is the older name), updates it in
``update_state`` with the variables' ``assign``, ``assign_add`` and
``assign_sub``, and reports it from ``result()``: a variable, an array, a
number, or a dict of them (each entry a log of its own). Its variables are
gpu_dl ``Variable`` objects, not trainable, on the current device; the
``gpu_dl.ops`` functions and the operators take them. ``reset_state()`` sets
each variable to zeros, as Keras's does, and resets the metrics it holds
as attributes; ``variables`` lists its own variables, then theirs.

gpu_dl's built-in metrics keep their running sums as plain arrays of the
inputs' module (see ``metrics.py``) and set them up in their own
``reset_state``, which the constructor runs; a subclass's own
``reset_state`` is not run there (its variables are made by then only where
Keras would have them, after ``super().__init__()``). Where Keras's metric
has state variables (``Mean``'s ``total`` and ``count``), those sums read
and assign as such variables (``StateVariable``).

A metric held by a layer (an attribute of it) is among the layer's ``metrics``
and its model's, whose logs report it. Updated in the layer's call
(``self.accuracy.update_state(targets, predictions)``), it is updated each
time the layer runs on data; in a call traced into a graph, ``update_state``
and calling the metric record an update the graph runs in every call
(``layers/metric_updates.py``).
"""
from __future__ import annotations

import functools
import numbers
import sys

import numpy

from . import backend
from .backend import standardize_dtype
from .catalogue import snake_case
from .layers.view_variables import ViewVariable

_PACKAGE = __name__.split(".")[0]


class Metric:
    """Base class: subclasses define ``update_state`` and ``result`` (and may define ``reset_state``)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # gpu_dl's own metrics keep their state in attributes that their reset_state makes: the constructor runs
        # the nearest such reset_state, never one a user's subclass defines (it may read variables that the
        # subclass makes after super().__init__()).
        own = cls.__dict__.get("reset_state")
        if own is not None and cls.__module__.split(".")[0] == _PACKAGE:
            cls._initial_state = own
        for method in ("update_state", "reset_state", "result"):
            own = cls.__dict__.get(method)
            if own is not None and not getattr(own, "_traceable", False):
                setattr(cls, method, _traceable(own, method))

    def __init__(self, dtype=None, name=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: `name` must be a string, got {name!r}.")
        self.name = name or snake_case(type(self).__name__)
        self.dtype = self._checked_dtype(dtype)
        self._variables = []
        self._initial_state()

    def _initial_state(self):
        pass

    def _checked_dtype(self, dtype):
        """The dtype's name; metrics whose state may be integer (the IoU family) widen what is accepted."""
        return standardize_dtype(dtype, f"{type(self).__name__}: dtype")

    # ------------------------------------------------------------ state variables
    def _check_super_called(self):
        if "_variables" not in self.__dict__:
            # Keras's message.
            raise RuntimeError("You forgot to call `super().__init__()` in the `__init__()` method. Go add it!")

    def add_variable(self, shape, initializer, dtype=None, aggregation="sum", name=None):
        """A new state variable of the metric, as Keras's ``Metric.add_variable``: of ``shape`` (``()`` for a
        scalar), filled by ``initializer`` (an Initializer or its name, such as "zeros"), of ``dtype`` (by
        default floatx, as Keras's: not the metric's dtype), not trainable, named ``<metric>/<name>``."""
        self._check_super_called()
        from .layers.base import Variable, _weight_dtype, _weight_shape, unique_name    # layers sit below
        from . import initializers
        if name is None:
            name = unique_name("variable")
        elif not isinstance(name, str) or not name:
            raise ValueError(f"Metric '{self.name}': add_variable `name` must be a non-empty string, got {name!r}.")
        where = f"Metric '{self.name}' ({type(self).__name__}): add_variable(name={name!r})"
        shape = _weight_shape(shape, where)
        dtype = _weight_dtype(backend.floatx() if dtype is None else dtype, where)
        if aggregation not in (None, "none", "mean", "sum", "only_first_replica"):
            raise ValueError(f"{where}: `aggregation` must be one of None, 'none', 'mean', 'sum', "
                             f"'only_first_replica', got {aggregation!r}.")
        if initializer is None:
            raise ValueError(f"{where}: `initializer` is required (an initializer or its name, such as 'zeros').")
        try:
            init = initializers.get(initializer)
        except (TypeError, ValueError) as e:
            raise type(e)(f"{where}: {e}") from None
        # An initializer draws floats: an integer or boolean variable takes them converted.
        drawn = init(shape, dtype=dtype if numpy.dtype(dtype).kind == "f" else backend.floatx())
        host = numpy.asarray(backend.to_numpy(drawn), dtype=dtype, order="C")
        variable = Variable(backend.to_device(host), name, trainable=False, path=f"{self.name}/{name}",
                            aggregation=aggregation)
        self._variables.append(variable)
        return variable

    def add_weight(self, shape=(), initializer=None, dtype=None, name=None):
        """Keras's older name of ``add_variable``."""
        return self.add_variable(shape=shape, initializer=initializer, dtype=dtype, name=name)

    def _held_metrics(self):
        """The metrics this one holds as attributes (or in lists, tuples and dicts of them), in the order set."""
        found = []
        for value in self.__dict__.values():
            items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) \
                else (value,)
            found.extend(item for item in items if isinstance(item, Metric) and item is not self)
        return found

    def _own_variables(self):
        """The variables made with add_variable, then any other Variable set as an attribute."""
        from .layers.base import Variable
        own = list(self.__dict__.get("_variables", ()))
        listed = {id(v) for v in own}
        for value in self.__dict__.values():
            if isinstance(value, Variable) and id(value) not in listed:
                own.append(value)
                listed.add(id(value))
        return own

    @property
    def variables(self):
        """The metric's state variables, then those of the metrics it holds (as Keras lists them)."""
        found = self._own_variables()
        for metric in self._held_metrics():
            found.extend(metric.variables)
        return found

    # ------------------------------------------------------------------- protocol
    def update_state(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define update_state.")

    def result(self):
        raise NotImplementedError(f"{type(self).__name__} must define result.")

    def reset_state(self):
        """Keras's default: every state variable to zeros (whatever its initializer); the metrics held as
        attributes are reset too."""
        for variable in self._own_variables():
            xp = backend.array_module(variable.value)
            variable.assign(xp.zeros(variable.shape, dtype=variable.dtype))
        for metric in self._held_metrics():
            metric.reset_state()

    def __call__(self, *args, **kwargs):
        """Update with one batch and return the running result (as Keras's ``Metric.__call__``); in a traced call,
        the tensor of that result (``layers/metric_updates.py``)."""
        self._check_super_called()
        updates = _metric_updates()
        if updates is not None and updates.intercepts(args, kwargs):
            return updates.record(self, "update_state", args, kwargs, with_result=True)
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


def _metric_updates():
    """The module recording metric updates in traced calls, where symbolic tensors exist (else None: with no
    symbolic tensor made there is nothing to trace, and the check costs nothing)."""
    if sys.modules.get(f"{_PACKAGE}.layers.symbolic") is None:
        return None
    from .layers import metric_updates      # the layers sit a level below; import late
    return metric_updates


def _traceable(function, method):
    """The metric's ``method`` ("update_state", "reset_state" or "result"), ``function``, which in a traced call
    (or given symbolic tensors) is recorded in the graph instead of run (``result``: the tensor of the result when
    the graph runs); the updates are skipped in a call run only to learn a shape."""
    @functools.wraps(function)
    def run(self, *args, **kwargs):
        updates = _metric_updates()
        if updates is not None:
            if updates.intercepts(args, kwargs):
                self._check_super_called()
                if method == "result":
                    return updates.record(self, None, args, kwargs, with_result=True)
                return updates.record(self, method, args, kwargs)
            if method != "result" and updates.suppressed():
                return None
        return function(self, *args, **kwargs)
    run._traceable = True
    return run


# The base's own reset_state, which subclasses inherit, is recorded in traced calls too.
Metric.reset_state = _traceable(Metric.reset_state, "reset_state")


def add_weighted(total, value, weight, dtype):
    """``total + value * weight`` (``value * weight`` where ``total`` is None) in ``dtype``, as Keras's ``Mean``
    casts what it sums to its own: a running sum of a tracker, kept on ``value``'s device (``value`` a 0-d array;
    NumPy 1 would widen a float32 0-d array times a Python number to float64)."""
    kind = numpy.dtype(dtype).type
    if value.dtype != dtype:
        value = value.astype(dtype)
    part = value * kind(weight)
    return part if total is None else total + part


def mean_result(total, count, dtype):
    """``total / count`` as Keras's ``Mean`` computes it: both in the metric's ``dtype`` (float32 by default), 0
    where ``count`` is 0 (``divide_no_nan``), given as a Python float of that value. ``total`` and ``count`` are
    numbers or 0-d arrays (read from the device here, once per result)."""
    kind = numpy.dtype(dtype).type
    total, count = kind(backend.to_numpy(total)), kind(backend.to_numpy(count))
    return float(total / count) if count else 0.0


def in_metric_dtype(result):
    """Decorates a metric's ``result``: its number (or list of numbers, one per class or threshold) rounded to the
    metric's dtype (float32 for an integer dtype), as Keras's results are tensors of it; the sums behind it may be
    kept wider (float64 counts), the value reported is Keras's to its rounding."""
    @functools.wraps(result)
    def rounded(self):
        value = result(self)
        kind = numpy.dtype(self.dtype)
        kind = kind.type if kind.kind == "f" else numpy.float32
        if isinstance(value, list):
            return [float(kind(v)) for v in value]
        return float(kind(value)) if isinstance(value, numbers.Real) else value
    return rounded


class StateVariable(ViewVariable):
    """A state variable of a metric over state the metric keeps in its own form for the training loop (sums on
    the device, a count known on the host), as Keras makes it: the ``total`` and ``count`` of a ``Mean``, a
    ``Precision``'s ``true_positives``, an ``IoU``'s ``total_confusion_matrix``: path ``<metric name when
    made>/<name>``, of ``shape`` (a scalar by default) and ``dtype`` (the metric's by default). Reading it gives
    that state as an array of that shape and dtype (``owner._read_state(name)``); assigning it sets the state
    (``owner._write_state(name, array)``), which the metric's own ``reset_state`` clears. The loop updates the
    state as before and pays nothing for the variable."""

    _set_with = "by its metric's update_state, or with arrays"

    def __init__(self, owner, name, path=None, shape=(), dtype=None):
        self._owner, self._state = owner, name
        self._state_shape = tuple(int(n) for n in shape)
        super().__init__(numpy.zeros(self._state_shape, dtype or owner.dtype), name, path or f"{owner.name}/{name}",
                         aggregation="sum")
        owner._variables.append(self)   # listed as Keras lists the variables a metric makes: in the order made

    def _read(self):
        return self._owner._read_state(self._state)

    def _write(self, kind, value, what):
        current = self._value
        module = backend.array_module(current)
        operand = module.asarray(backend.to_numpy(value) if module is numpy else value)
        new = operand if kind == "assign" else current + operand if kind == "add" else current - operand
        new = module.asarray(new, dtype=current.dtype)
        if tuple(new.shape) != self._state_shape:
            held = "a scalar" if not self._state_shape else f"of shape {self._state_shape}"
            raise ValueError(f"Variable '{self.path}' is {held}; cannot {what} a value of shape "
                             f"{tuple(operand.shape)}.")
        self._owner._write_state(self._state, new)
        return new


def state_array(value, shape, dtype, like=None):
    """``value`` (an array of the metric's own state, or None before any update) as a state variable reads it:
    an array of ``shape`` and ``dtype`` in the module of ``value`` (zeros in that of ``like``, else NumPy, where
    it is None)."""
    if value is None:
        module = numpy if like is None else backend.array_module(like)
        return module.zeros(shape, dtype)
    return backend.array_module(value).asarray(value).astype(dtype, copy=False).reshape(shape)


def replace_part(parts, index, array, shapes):
    """The tuple of sums ``parts`` (None before any update) with entry ``index`` set to ``array``, kept in the
    sums' own dtype (float64 where the metric sums in it); entries of ``shapes`` start as zeros where the metric
    had none, in ``array``'s module."""
    module = backend.array_module(array)
    parts = [module.zeros(shape) for shape in shapes] if parts is None else list(parts)
    kind = getattr(parts[index], "dtype", numpy.float64)
    parts[index] = module.asarray(array, dtype=kind).reshape(tuple(shapes[index]))
    return tuple(parts)


def add_parts(parts, batch):
    """The tuple of running sums ``parts`` (None before any update) plus a batch's sums ``batch``, in the batch's
    module: sums set through the state variables may be on the host while the batch's are on the device."""
    if parts is None:
        return batch
    module = backend.array_module(*batch)
    return tuple(module.asarray(a) + b for a, b in zip(parts, batch))


def log_value(value):
    """A metric's result as a log holds it, as Keras's logs do: a Python float where it is one number (a variable,
    a 0-d or one-element array, a number), a NumPy array for a variable or array of several; anything else (the
    list of scores R2Score gives per column) as it is."""
    if type(value) is float:        # not numpy.float64, a float subclass: Keras's logs hold Python floats
        return value
    from .layers.base import Variable
    if isinstance(value, Variable):
        value = value.value
    if isinstance(value, numbers.Real):
        return float(value)
    if not hasattr(value, "shape"):
        return value
    array = numpy.asarray(backend.to_numpy(value))
    return float(array.reshape(())) if array.size == 1 else array


def log_entries(name, result):
    """``(key, value)`` pairs a metric named ``name`` adds to the logs: one under its name, or, for a dict result,
    one per entry under the entry's key (as Keras flattens them), in sorted order."""
    if isinstance(result, dict):
        return [(str(key), log_value(result[key])) for key in sorted(result, key=str)]
    return [(name, log_value(result))]
