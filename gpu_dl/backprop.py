"""Gradients of eager calls: ``loss.backward()``, as Keras 3's PyTorch guides write a training step.

gpu_dl has no automatic differentiation: every layer and model has a
hand-written ``backward`` that uses what its last call with ``training=True``
kept. This module follows a loss back through such calls made by user code
(a custom ``train_step``, a training loop written from scratch) without a
tape of operations, from three pieces:

- **Call records.** Each top-level call of a layer or model on arrays (one no
  other call runs inside: ``model(x, training=True)`` in user code, not the
  layers a model calls in its forward) is recorded when it returns
  (``record_call``, from ``layer_losses.top_level``): its outputs are
  registered by identity (a weak reference to each array, so a record lives
  as long as an output it made), with the records that made its input arrays
  (its *parents*: ``d(g(z))`` links d's call to g's), the references its
  backward state is made of (``models.nested.call_state``) and whether it
  added losses. A call without ``training=True`` keeps nothing for backward,
  like a call under ``torch.no_grad()``: its outputs are registered as
  constants, which end a backward pass there.
- **Loss values.** A gpu_dl ``Loss`` called on an output of a recorded
  training call, and ``Model.compute_loss``, return a ``LossValue``: the
  scalar, and *seeds*, each the loss's gradient with respect to one output
  array of a record (computed when ``backward`` runs, from the loss's own
  hand-written gradient) or to a variable (a weight regularizer's penalty).
  ``+ - * /`` between loss values and numbers keep the seeds (scaled as the
  derivative says); any other arithmetic gives a plain array.
- **backward()** adds the seeds per record and runs the records' ``backward``
  from the last call to the first (a parent always precedes its children),
  passing each the gradient of its outputs and handing the input gradient it
  returns to its parents. Each variable's ``grad`` ends up holding the sum of
  what it held before and every contribution of this pass (a weight used by
  two calls, or a loss backpropagated twice), as torch accumulates into
  ``.grad``; ``zero_grad`` clears them.

What it refuses, with an error that says what to do, rather than give a
wrong gradient:

- a record whose layer (or a layer within it) was called again since, which
  replaced what its backward needs: the references of its call state are
  compared with those recorded (call it once on the concatenation of the
  batches, or run backward before the next call);
- a model call whose layers added losses (``add_loss``, activity
  regularizers), whose backward sends those losses' gradients, reached by a
  loss that does not include them with weight 1 (``compute_loss`` does);
- an array made from a recorded output by a ``gpu_dl.ops`` function other
  than ``concatenate`` and ``stack`` (which are followed: their backward splits the
  gradient) when backward reaches it; arrays made by NumPy/CuPy arithmetic are
  not seen at all and are constants to backward, like a detached tensor;
- a loss value reaching ``gpu_dl.ops``, which would drop its gradient.
"""
from __future__ import annotations

import collections
import fractions
import functools
import heapq
import itertools
import numbers
import weakref

import numpy

from . import backend

_serial = itertools.count()
# id(array) -> (reference to the array, record, output index). The reference is weak where the array takes
# one (NumPy's and CuPy's arrays do): the entry goes when the array does, so an id is never taken for another.
_entries: dict = {}
_trainable_entries = [0]        # how many entries were made by calls that keep a backward (a cheap flag for ops)
# Keys of entries held by strong references (arrays without weak references), oldest first, at most _HELD.
_held = collections.deque()
_HELD = 256
_latest = weakref.WeakKeyDictionary()       # layer -> the record of its latest top-level training call


def _where(layer):
    return f"{'Model' if _is_model(layer) else 'Layer'} '{layer.name}' ({type(layer).__name__})"


_model_class = []


def _is_model(layer):
    if not _model_class:
        from .models.model import Model     # the models sit above; import late (once)
        _model_class.append(Model)
    return isinstance(layer, _model_class[0])


class _Strong:
    """A strong reference with a weak reference's call."""

    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array

    def __call__(self):
        return self.array


def _register(array, record, index):
    key = id(array)
    _forget(key)
    try:
        ref = weakref.ref(array, functools.partial(_dropped, _entries, _trainable_entries, key))
    except TypeError:
        ref = _Strong(array)
        _held.append(key)
        if len(_held) > _HELD:
            _forget(_held.popleft())
    _entries[key] = (ref, record, index)
    if record.trainable:
        _trainable_entries[0] += 1


def _forget(key, entries=_entries, counter=_trainable_entries):
    entry = entries.pop(key, None)
    if entry is not None and entry[1].trainable:
        counter[0] -= 1


def _dropped(entries, counter, key, ref):
    # The registry comes as arguments: at interpreter exit this module's globals may be gone before the arrays.
    entry = entries.get(key)
    if entry is not None and entry[0] is ref:
        _forget(key, entries, counter)


def producer(array):
    """``(record, output index)`` of the recorded call (or followed op) that made ``array``, or None."""
    entry = _entries.get(id(array))
    if entry is None or entry[0]() is not array:
        return None
    return entry[1], entry[2]


def _trainable_producer(array):
    found = producer(array) if hasattr(array, "shape") else None
    return found if found is not None and found[0].trainable else None


def _flat(value):
    """The arrays of a call's output (or input): one, a list or tuple of them, or a dict by sorted key (the order
    of the graph's outputs a dict comes from); None for anything else."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return [value]
    if isinstance(value, (list, tuple)) and all(hasattr(v, "shape") for v in value):
        return list(value)
    if isinstance(value, dict) and all(hasattr(v, "shape") for v in value.values()):
        return [value[k] for k in sorted(value)]
    return None


# ------------------------------------------------------------------ records
class _Record:
    """Something that made arrays backward can follow: ``parents`` has, per input array, the ``(record, index)``
    that made it (None for a constant)."""

    trainable = True
    parents = ()

    def __init__(self):
        self.serial = next(_serial)

    def run(self, grads, want_input, included):
        """The gradients of the inputs (a list, None where there is none) for ``grads`` of the outputs."""
        raise NotImplementedError


class _ConstantCall(_Record):
    """A call without training=True: its outputs are constants to backward."""

    trainable = False

    def __init__(self, layer):
        super().__init__()
        self.layer = layer
        self.mask = layer.__dict__.get("output_mask")      # a model's (layers have none)

    @property
    def where(self):
        return _where(self.layer)


def _same_state(recorded, current):
    """Whether two ``call_state`` trees hold the same references."""
    (own_a, inner_a), (own_b, inner_b) = recorded, current
    if own_a.keys() != own_b.keys() or inner_a.keys() != inner_b.keys():
        return False
    if any(own_a[k] is not own_b[k] for k in own_a):
        return False
    return all(_same_state(inner_a[k], inner_b[k]) for k in inner_a)


class _Call(_Record):
    """A top-level call with training=True of a layer or model."""

    def __init__(self, layer, inputs, outputs, listed, call):
        super().__init__()
        from .models.nested import call_state     # the models sit above; import late
        self.layer = weakref.ref(layer)
        self.where = _where(layer)
        self.model = _is_model(layer)
        leaves = _flat(inputs)
        found = [] if leaves is None else [_trainable_producer(a) for a in leaves]
        # A dict of inputs is not in the order a backward gives their gradients: such a call is not linked to
        # the calls that made its inputs (refused when backward needs to pass through it).
        self.unlinked = isinstance(inputs, dict) and any(p is not None for p in found)
        self.parents = [] if isinstance(inputs, dict) else found
        self.outputs = [(tuple(o.shape), o.dtype) for o in outputs]
        self.listed = listed
        self.state = call_state(layer)
        self.mask = getattr(layer, "output_mask", None) if self.model else None
        entries = [] if call is None else list(call.entries)
        self.refused = next((owner for owner, _, kind in entries
                             if kind == "array" and not owner.backward_includes_added_losses), None)
        # The losses the call added: the model's backward sends their gradients (a layer's own activity
        # penalty is added here, below).
        self.adds_losses = bool(entries)

    def describe(self):
        return f"the call of {self.where}"

    def run(self, grads, want_input, included):
        from .models.nested import call_state     # the models sit above; import late
        layer = self.layer()
        if layer is None:
            raise RuntimeError(f"backward(): {self.where} no longer exists.")
        if self.state is None or not _same_state(self.state, call_state(layer)):
            raise RuntimeError(
                f"backward(): {self.where} (or a layer within it) was called again after the call this loss reads "
                "(that call's output went into the loss), which replaced what its backward needs; gpu_dl keeps one "
                "call's backward state per layer. Call it once on the concatenation of the batches "
                "(gpu_dl.ops.concatenate), or compute the loss and call backward() before calling it again.")
        if self.unlinked:
            raise NotImplementedError(f"backward(): {self.where} was called on a dict of arrays, some made by calls "
                                      "that need gradients; pass its inputs as a list (in the order of its inputs) "
                                      "for backward to reach those calls.")
        if self.refused is not None:
            from .layers.layer_losses import untrainable_message
            raise NotImplementedError(untrainable_message(self.refused))
        if self.adds_losses:
            weight = included.get(self)
            if weight is None or not isinstance(weight, numbers.Number) or weight != 1:
                raise ValueError(
                    f"backward(): the layers within {self.where} added losses in this call (add_loss, activity "
                    "regularizers), whose gradients its backward sends; the loss must include them once, as "
                    f"{'it does not' if weight is None else f'it weighs them by {_shown(weight)}'}. Use "
                    "model.compute_loss(x, y, y_pred) (its value adds model.losses, weight regularizers included), "
                    "and scale the whole loss, if at all, before adding those losses.")
        given = [g for g in grads if g is not None]
        xp = backend.array_module(*given) if given else backend.xp()
        dy = [g if g is not None else xp.zeros(shape, dtype=dtype) for g, (shape, dtype) in zip(grads, self.outputs)]
        if not self.model and layer.activity_regularizer is not None and layer._activity_output is not None:
            out = layer._activity_output     # a layer's own activity penalty, which only a model's backward adds
            dy[0] = dy[0] + layer.activity_regularizer.gradient(out) / out.dtype.type(out.shape[0])
        dy = dy if self.listed else dy[0]
        # Within LossValue.backward's accumulating pass: each gradient this backward sets adds to the variable's.
        if self.model:
            dx = layer.backward(dy, input_gradient=want_input)
        else:
            layer.input_gradient_wanted = want_input
            try:
                dx = layer.backward(dy)
            finally:
                layer.input_gradient_wanted = True
        if not want_input:
            return [None] * len(self.parents)
        found = list(dx) if isinstance(dx, (list, tuple)) else [dx]
        return found[:len(self.parents)]


class _Join(_Record):
    """``ops.concatenate`` (or ``ops.stack``) of arrays some of which need gradients."""

    def __init__(self, arrays, axis, stacked):
        super().__init__()
        self.parents = [_trainable_producer(a) for a in arrays]
        ndim = len(numpy.shape(arrays[0])) + (1 if stacked else 0)
        self.axis = axis % ndim
        self.stacked = stacked
        self.sizes = [1 if stacked else numpy.shape(a)[self.axis] for a in arrays]
        self.where = f"gpu_dl.ops.{'stack' if stacked else 'concatenate'}"

    def run(self, grads, want_input, included):
        dy, found, start = grads[0], [], 0
        for size, parent in zip(self.sizes, self.parents):
            if parent is not None:
                index = (slice(None),) * self.axis + (start if self.stacked else slice(start, start + size),)
                found.append(dy[index])
            else:
                found.append(None)
            start += size
        return found


class _Untraced(_Record):
    """An array a ``gpu_dl.ops`` function made from an output that needs a gradient: backward cannot follow it."""

    def __init__(self, name, arrays):
        super().__init__()
        self.name = name
        self.source = next(p[0] for p in map(_trainable_producer, arrays) if p is not None)

    def run(self, grads, want_input, included):
        source = getattr(self.source, "where", "a recorded call")
        raise NotImplementedError(
            f"backward() reached an array made by gpu_dl.ops.{self.name} from the output of the call of {source}: "
            "gpu_dl follows eager arrays back only through calls of layers and models and through ops.concatenate and "
            f"ops.stack. Compute {self.name} inside the call of a layer or model (its call is traced, and trains), "
            "or make the array from values that need no gradient (a call without training=True).")


def _shown(weight):
    """A loss's weight for a message: a fraction (the shares of a layer's added losses) as a plain number."""
    if isinstance(weight, fractions.Fraction):
        return int(weight) if weight.denominator == 1 else float(weight)
    return repr(weight)


def record_call(layer, inputs, outputs, call, training):
    """After a top-level call of ``layer`` on ``inputs`` that gave ``outputs`` (``call``: its
    ``layer_losses.Call``), record it: see the module docstring. Symbolic calls are not recorded."""
    flat = _flat(outputs)
    if flat is None or not all(hasattr(o, "dtype") and not hasattr(o, "_keras_history") for o in flat):
        return
    if not training:
        record = _ConstantCall(layer)
    else:
        previous = _latest.get(layer)
        if previous is not None:
            previous.state = None       # superseded: its backward state is gone, and its references go too
        record = _Call(layer, inputs, flat, not hasattr(outputs, "shape"), call)
        _latest[layer] = record
    for index, array in enumerate(flat):
        _register(array, record, index)


def output_mask(array):
    """The mask of padded steps that reached ``array``, an output of a recorded model call (None where none did)."""
    found = producer(array)
    if found is None:
        return None
    record, index = found
    mask = getattr(record, "mask", None)
    if isinstance(mask, (list, tuple)):
        return mask[index] if index < len(mask) else None
    return mask if index == 0 else None


def latest_call(layer):
    """The record of the latest top-level call of ``layer`` with training=True, or None."""
    return _latest.get(layer)


# ------------------------------------------------------------------ ops on arrays
def _loss_values_in(args, kwargs):
    for value in itertools.chain(args, kwargs.values()):
        if isinstance(value, LossValue):
            return True
        if isinstance(value, (list, tuple)) and any(isinstance(v, LossValue) for v in value):
            return True
    return False


def followed(function, name):
    """``function``, a ``gpu_dl.ops`` function, as backward follows it: ``concatenate`` and ``stack`` of arrays
    that need gradients give arrays it splits the gradient back to; any other function on such arrays gives
    arrays backward refuses with a clear error; a loss value reaching one is refused at once."""
    joins = name in ("concatenate", "stack")
    reads_values = name in ("shape", "convert_to_numpy")

    @functools.wraps(function)
    def run(*args, **kwargs):
        if not reads_values and _loss_values_in(args, kwargs):
            raise TypeError(f"gpu_dl.ops.{name} got a loss value (it has a backward()); ops would drop its "
                            "gradient. Combine loss values with + - * / and numbers, or use loss.detach() for "
                            "the value alone.")
        result = function(*args, **kwargs)
        if not _trainable_entries[0]:
            return result
        arrays = [a for value in itertools.chain(args, kwargs.values())
                  for a in (value if isinstance(value, (list, tuple)) else [value]) if hasattr(a, "shape")]
        if not any(_trainable_producer(a) is not None for a in arrays):
            return result
        outputs = _flat(result)
        if outputs is None:
            return result
        if joins:
            given = args[0] if args else kwargs.get("xs", kwargs.get("x"))
            axis = args[1] if len(args) > 1 else kwargs.get("axis", 0)
            record = _Join(list(given), axis, stacked=name == "stack")
        else:
            record = _Untraced(name, arrays)
        for index, array in enumerate(outputs):
            _register(array, record, index)
        return result
    return run


# ------------------------------------------------------------------ loss values
class _Seed:
    """One term of a loss's gradient: ``factor * gradient()`` with respect to output ``index`` of ``target`` (a
    record) or to ``target`` itself (a variable, ``index`` None). ``gradient`` runs once, when backward needs
    it."""

    __slots__ = ("target", "index", "factor", "source")

    def __init__(self, target, index, factor, source):
        self.target, self.index, self.factor, self.source = target, index, factor, source

    def scaled(self, factor):
        return _Seed(self.target, self.index, _product(self.factor, factor), self.source)

    def value(self):
        g = self.source()
        return g if isinstance(self.factor, numbers.Number) and self.factor == 1 else g * self.factor


def _once(function):
    """``function`` called at most once; later calls give its first result."""
    result = []

    def run():
        if not result:
            result.append(function())
        return result[0]
    return run


def _product(a, b):
    return a * b


def _scalar(value):
    """A number as it is; a loss value's or an array's value as a 0-d array of its module."""
    if isinstance(value, numbers.Number):
        return value
    module = backend.array_module(value)
    return module.asarray(value)


class LossValue:
    """A scalar loss that knows where its gradient goes: ``backward()`` fills the ``grad`` of each variable it
    reaches (see the module docstring). It reads as its value: ``float(loss)``, ``loss.item()``,
    ``loss.numpy()``, ``numpy.asarray(loss)``, f-strings, comparisons, metrics' ``update_state(loss)``, and
    ``+ - * /`` with numbers, arrays of one value and other loss values (which keep the gradient);
    ``detach()`` gives the value without it."""

    __array_ufunc__ = None      # NumPy's and CuPy's operators defer to the reflected operators below

    def __init__(self, value, seeds=(), included=None, why=None):
        module = backend.array_module(value)
        self._value = module.asarray(value)
        self._seeds = list(seeds)
        self._included = dict(included or {})
        self._why = why

    # -------------------------------------------------------------- as a value
    @property
    def value(self):
        """The loss as a 0-d array (NumPy or CuPy)."""
        return self._value

    @property
    def shape(self):
        return tuple(self._value.shape)

    @property
    def dtype(self):
        return self._value.dtype

    @property
    def ndim(self):
        return self._value.ndim

    @property
    def size(self):
        return int(self._value.size)

    def numpy(self):
        return numpy.asarray(backend.to_numpy(self._value))

    def item(self):
        return self.numpy().item()

    def detach(self):
        """The value without a gradient (a loss value whose backward() refuses)."""
        return LossValue(self._value, why="backward(): this value was detached from its gradient.")

    def get(self):
        return self.numpy()

    def __array__(self, dtype=None, copy=None):
        array = self.numpy()
        return array if dtype is None else array.astype(dtype)

    @property
    def __cuda_array_interface__(self):
        if not hasattr(self._value, "__cuda_array_interface__"):
            raise AttributeError("__cuda_array_interface__")
        return self._value.__cuda_array_interface__

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        return bool(self.item())

    def __format__(self, spec):
        return format(self.item(), spec)

    def __repr__(self):
        return f"<LossValue {self.item()!r}{'' if self._seeds else ' (no gradient)'}>"

    def __lt__(self, other):
        return self._value < _scalar(other)

    def __le__(self, other):
        return self._value <= _scalar(other)

    def __gt__(self, other):
        return self._value > _scalar(other)

    def __ge__(self, other):
        return self._value >= _scalar(other)

    # ------------------------------------------------------------ arithmetic
    @staticmethod
    def _parts(other):
        if isinstance(other, LossValue):
            return other._value, other._seeds, other._included
        if hasattr(other, "shape") and hasattr(other, "dtype") and not hasattr(other, "_keras_history") and \
                getattr(other, "size", 1) == 1:     # NumPy's scalars too: ops reducing an array give them
            if needs_gradient(other):
                raise TypeError("A loss value was combined with an array made by gpu_dl.ops from an output that "
                                "needs a gradient, which backward() cannot follow. Compute that term with a gpu_dl "
                                "Loss (a subclass whose call uses gpu_dl.ops trains through its traced call), or "
                                "inside the model's call (model.add_loss).")
            return _scalar(other), (), {}
        if isinstance(other, numbers.Number):
            return other, (), {}
        return None

    @staticmethod
    def _scaled(seeds, included, factor):
        weights = {record: (w * factor if isinstance(w, numbers.Number) and isinstance(factor, numbers.Number)
                            else None) for record, w in included.items()}
        return [s.scaled(factor) for s in seeds], weights

    @staticmethod
    def _merged(a, b):
        merged = dict(a)
        for record, w in b.items():
            if record in merged:
                both = merged[record]
                merged[record] = both + w if isinstance(both, numbers.Number) and isinstance(w, numbers.Number) \
                    else None
            else:
                merged[record] = w
        return merged

    def _combine(self, other, value, mine, theirs):
        """A loss value of ``value`` whose seeds are this one's times ``mine`` and the other's times ``theirs``."""
        parts = self._parts(other)
        seeds, included = self._scaled(self._seeds, self._included, mine)
        if parts is not None and parts[1]:
            more, also = self._scaled(parts[1], parts[2], theirs)
            seeds, included = seeds + more, self._merged(included, also)
        elif parts is not None and parts[2]:
            included = self._merged(included, self._scaled((), parts[2], theirs)[1])
        why = self._why if not seeds else None
        return LossValue(value, seeds, included, why)

    def __add__(self, other):
        parts = self._parts(other)
        if parts is None:
            return NotImplemented
        return self._combine(other, self._value + parts[0], 1, 1)

    __radd__ = __add__

    def __sub__(self, other):
        parts = self._parts(other)
        if parts is None:
            return NotImplemented
        return self._combine(other, self._value - parts[0], 1, -1)

    def __rsub__(self, other):
        parts = self._parts(other)
        if parts is None:
            return NotImplemented
        return self._combine(other, parts[0] - self._value, -1, 1)

    def __mul__(self, other):
        parts = self._parts(other)
        if parts is None:
            return NotImplemented
        return self._combine(other, self._value * parts[0], parts[0], self._value)

    __rmul__ = __mul__

    def __truediv__(self, other):
        parts = self._parts(other)
        if parts is None:
            return NotImplemented
        return self._combine(other, self._value / parts[0], 1 / parts[0], -self._value / (parts[0] * parts[0]))

    def __rtruediv__(self, other):
        parts = self._parts(other)
        if parts is None:
            return NotImplemented
        return self._combine(other, parts[0] / self._value, -parts[0] / (self._value * self._value),
                             1 / self._value)

    def __neg__(self):
        return self._combine(0, -self._value, -1, 0)

    def __pos__(self):
        return self

    def __pow__(self, exponent):
        if not isinstance(exponent, numbers.Number):
            return NotImplemented
        return self._combine(0, self._value ** exponent, exponent * self._value ** (exponent - 1), 0)

    # ------------------------------------------------------------ backward
    def backward(self):
        """Add this loss's gradient to the ``grad`` of every variable it reaches, through the recorded calls it
        was computed from (see the module docstring)."""
        if not self._seeds:
            raise RuntimeError(self._why or "backward(): this loss reads no output of a call with training=True.")
        if self._value.shape != ():
            raise RuntimeError(f"backward() needs a scalar loss, got one of shape {tuple(self._value.shape)}.")
        from .layers import gradients     # the layers sit above; import late
        with gradients.accumulating_pass():
            self._run_backward()

    def _run_backward(self):
        pending, queue = {}, []
        for seed in self._seeds:
            gradient = seed.value()
            if seed.index is None:          # a variable's own term (a weight regularizer's)
                var = seed.target
                var.grad = gradient.astype(var.dtype, copy=False)
                continue
            _add_pending(pending, queue, seed.target, seed.index, gradient)
        for record in self._included:
            if record not in pending and isinstance(record, _Call):
                # its backward sends the gradients of the losses its layers added, even where no loss reads its output
                _add_pending(pending, queue, record, None, None)
        while queue:
            _, _, record = heapq.heappop(queue)
            grads = pending.pop(record)
            want = any(p is not None for p in record.parents)
            inputs = record.run(grads, want, self._included)
            for parent, gradient in zip(record.parents, inputs):
                if parent is not None and gradient is not None:
                    _add_pending(pending, queue, parent[0], parent[1], gradient)


def _add_pending(pending, queue, record, index, gradient):
    grads = pending.get(record)
    if grads is None:
        count = len(record.outputs) if isinstance(record, _Call) else 1
        grads = pending[record] = [None] * count
        heapq.heappush(queue, (-record.serial, id(record), record))
    if index is None:
        return
    if isinstance(record, _Call):
        gradient = gradient.astype(record.outputs[index][1], copy=False)
    grads[index] = gradient if grads[index] is None else grads[index] + gradient


def needs_gradient(array):
    """Whether ``array`` is an output of a recorded call with training=True (or of an op backward follows)."""
    return _trainable_producer(array) is not None


def seed(array, gradient, factor=1):
    """The seed of a loss's gradient ``gradient()`` with respect to ``array`` (an output of a recorded call with
    training=True), or None where no such call made it."""
    found = _trainable_producer(array)
    if found is None:
        return None
    return _Seed(found[0], found[1], factor, _once(gradient))


def variable_seed(variable, gradient):
    """The seed of a loss's gradient ``gradient()`` with respect to ``variable`` itself."""
    return _Seed(variable, None, 1, _once(gradient))


def why_no_gradient(y_pred):
    """Why a loss of ``y_pred`` has no gradient to follow, for the error ``backward()`` raises."""
    arrays = _flat(y_pred) or []
    found = [producer(a) for a in arrays]
    made = next((record for record, _ in filter(None, found) if not record.trainable), None)
    if made is not None:
        return (f"backward(): the loss reads the output of a call of {made.where} without training=True, which "
                "keeps nothing for backward (as a call under torch.no_grad() would). Call it as "
                "model(x, training=True) to train through it.")
    return ("backward(): the loss reads no output of a call with training=True. Compute it from y_pred = "
            "model(x, training=True) (arrays made from it by NumPy or CuPy arithmetic are constants to backward; "
            "compute such steps in the model's call).")


def tracked(value, y_pred, gradient):
    """A gpu_dl loss's value: a ``LossValue`` when ``y_pred`` is an output of a recorded call (``gradient()``
    gives the loss's gradient with respect to it), else ``value`` as it is."""
    if not _entries or not hasattr(value, "shape") or value.shape != () or not hasattr(y_pred, "shape"):
        return value
    if producer(y_pred) is None:
        return value
    found = seed(y_pred, gradient)
    return LossValue(value, [found] if found is not None else (), why=None if found else why_no_gradient(y_pred))


def zero_grad(variables):
    """Clear the gradients of ``variables`` (as torch's ``zero_grad`` sets them to None)."""
    for var in variables:
        var.grad = None
