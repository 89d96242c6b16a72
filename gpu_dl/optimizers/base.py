"""The optimizer protocol shared by the Keras 3 catalogue.

One call of ``apply_gradients`` (or ``apply``) is one training step:

1. every gradient is checked against its variable (same array module, shape
   and dtype) and the learning rate is evaluated and checked, before anything
   changes, so a bad call leaves variables, slots and ``iterations`` as they
   were;
2. slots are created for variables seen for the first time; a variable marked
   ``overwrite_with_gradient`` (float8 training's scales) is assigned its
   gradient and takes no part in the steps below (it keeps no slots but a
   gradient accumulator, as in Keras);
3. gradients are divided by ``loss_scale_factor``, then clipped
   (``clipnorm`` per gradient, ``global_clipnorm`` jointly, or ``clipvalue``);
4. decoupled weight decay ``var -= var * weight_decay * lr`` (Keras 3 applies
   it before the update);
5. the subclass's update rule runs in place on each variable;
6. with ``use_ema``, the weight averages are updated (``averaging``);
7. ``variable.constraint`` (if any) projects the updated value;
8. ``iterations`` grows by one.

With ``gradient_accumulation_steps`` steps 3-5 run only on every n-th call,
with the mean gradient of the last n calls (``accumulation``).

Subclasses say which slots they keep (``_slot_groups``; ``_slot_applies``
where a slot is kept for some variables only), how each starts
(``_slot_initial_value``: a number, or ``FROM_VARIABLE`` for a copy of the
variable), what per-step scalars they need (``_step_coefficients``), how one
variable is updated (``_update_step``) and, where it is not
``weight_decay``, which decay rate a variable takes (``_weight_decay_rate``).
All array arithmetic stays in the variable's module and dtype: scalars are
passed as Python floats, which NumPy 2 and CuPy treat as weakly typed.

A subclass may instead be written as in Keras 3 (it overrides ``update_step``):
its ``build(var_list)`` calls this ``build`` and makes its slots with
``add_variable_from_reference``/``add_optimizer_variables``/``add_variable``
(Variables named and saved as Keras names and saves them), and step 5 calls
its ``update_step(gradient, variable, learning_rate)`` on each variable; steps
1-4 and 6-8 are the same. The built-in optimizers' fused updates never take
that path.
"""
from __future__ import annotations

import math
import numbers
import re

import numpy

from .. import backend
from ..backend.user_warnings import warn
from ..catalogue import snake_case
from ..layers import scopes
from ..layers.base import Variable, unique_name
from ..layers.view_variables import ViewVariable
from . import accumulation, averaging, schedules as schedules_module


class _DefaultRate(float):
    """A learning-rate default, told apart from a value the caller passed.

    Subclass signatures show Keras's default (``learning_rate=0.001``); the
    marker type lets the legacy ``lr=`` replace that default while
    ``learning_rate=...`` together with ``lr=...`` is still an error.
    """


def default_rate(value: float) -> float:
    return _DefaultRate(value)


# A slot's initial value that stands for a copy of its variable's value at build time.
FROM_VARIABLE = "from_variable"

# The dtype of an optimizer's ``iteration`` variable: Keras's ``dtype="int"``, int32 outside TensorFlow (its
# variables and its files hold it so).
ITERATION_DTYPE = numpy.dtype("int32")


def _unique_name(base: str) -> str:
    """'adam', then 'adam_1', 'adam_2', ... as Keras names optimizers: from the names the layers take theirs from,
    which ``clear_session`` starts again."""
    return unique_name(base)


def check_number(value, name: str, owner: str, *, low=None, high=None, low_open=False, high_open=False,
                 allow_none=False):
    """``value`` as a Python float, or a TypeError/ValueError naming ``owner`` and ``name``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: argument `{name}` must be a number, got {value!r} of type {type(value).__name__}.")
    value = float(value)
    bad = not math.isfinite(value)
    if low is not None:
        bad = bad or value < low or (low_open and value == low)
    if high is not None:
        bad = bad or value > high or (high_open and value == high)
    if bad:
        lo = "" if low is None else ("> " if low_open else ">= ") + repr(low)
        hi = "" if high is None else ("< " if high_open else "<= ") + repr(high)
        bounds = " and ".join(b for b in (lo, hi) if b)
        raise ValueError(f"{owner}: argument `{name}` must be a finite number{' ' + bounds if bounds else ''}, "
                         f"got {value!r}.")
    return value


def _l2_norm_squared(g):
    module = backend.array_module(g)
    return module.sum(g * g)


def clip_by_norm(g, clipnorm: float):
    """``g * clipnorm / max(||g||, clipnorm)``: Keras 3's per-gradient ``clipnorm``."""
    module = backend.array_module(g)
    norm = module.sqrt(_l2_norm_squared(g))
    return g * clipnorm / module.maximum(norm, clipnorm)


def clip_by_global_norm(grads: list, clipnorm: float) -> list:
    """Scale all gradients by ``clipnorm / max(global_norm, clipnorm)`` (Keras 3's ``global_clipnorm``).

    As in Keras, an infinite or NaN global norm turns every gradient into NaN,
    so a diverged step is visible instead of silently clipped.
    """
    total = None
    for g in grads:
        s = _l2_norm_squared(g)
        total = s if total is None else total + s
    module = backend.array_module(total)
    norm = module.sqrt(total)
    with numpy.errstate(invalid="ignore"):
        scale = clipnorm / module.maximum(norm, clipnorm) + (norm - norm)
    return [g * scale.astype(g.dtype) for g in grads]


def _update_variable(variable, what: str, value):
    """``variable.assign``/``assign_add``/``assign_sub(value)``, or for a plain array the same in place."""
    if isinstance(variable, Variable) or hasattr(variable, what):
        getattr(variable, what)(value)
        return
    if not (hasattr(variable, "shape") and hasattr(variable, "dtype")):
        raise TypeError(f"Optimizer.{what}() needs a Variable or an array, got {variable!r:.100}.")
    module = backend.array_module(variable)
    value = module.asarray(value.value if isinstance(value, Variable) else value)
    new = value if what == "assign" else variable + value if what == "assign_add" else variable - value
    variable[...] = module.broadcast_to(new, variable.shape)


def _reference_prefix(variable) -> str:
    """How Keras names a slot of ``variable``: its path (else its name) with '/' (and ':') as '_'."""
    if hasattr(variable, "path"):
        return variable.path.replace("/", "_")
    return str(variable.name).replace("/", "_").replace(":", "_")


class Optimizer:
    """Base class of the optimizers (Keras 3's ``keras.optimizers.Optimizer``).

    ``learning_rate`` is a float, a ``LearningRateSchedule`` (called with
    ``iterations``) or a callable taking no argument, as in Keras 3. The
    legacy ``lr=`` names ``learning_rate``; the legacy ``decay=`` applies
    Keras 2's time-based decay ``lr / (1 + decay * iterations)`` on top.

    ``use_ema=True`` keeps moving averages of the weights (``ema_momentum``,
    ``ema_overwrite_frequency``; see ``averaging``) and ``fit`` ends with the
    weights set to them; ``gradient_accumulation_steps=n`` updates on every
    n-th call with the mean gradient (see ``accumulation``).
    """

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        owner = type(self).__name__
        if "lr" in kwargs:
            if not isinstance(learning_rate, _DefaultRate):
                raise TypeError(f"{owner}: got both `learning_rate` and its legacy alias `lr`; "
                                "pass only `learning_rate`.")
            learning_rate = kwargs.pop("lr")
        decay = kwargs.pop("decay", None)
        if kwargs:
            raise TypeError(f"{owner} got unexpected keyword argument(s): {', '.join(sorted(kwargs))}.")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"{owner}: `name` must be a non-empty string, got {name!r}.")
        self.name = name or _unique_name(snake_case(owner))
        self._owner = f"{owner} '{self.name}'"

        self.decay = check_number(decay, "decay", owner, low=0.0, allow_none=True) or 0.0
        self.weight_decay = check_number(weight_decay, "weight_decay", owner, low=0.0, allow_none=True)
        self.clipnorm = check_number(clipnorm, "clipnorm", owner, low=0.0, low_open=True, allow_none=True)
        self.clipvalue = check_number(clipvalue, "clipvalue", owner, low=0.0, low_open=True, allow_none=True)
        self.global_clipnorm = check_number(global_clipnorm, "global_clipnorm", owner, low=0.0, low_open=True,
                                            allow_none=True)
        given = [n for n, v in (("clipnorm", clipnorm), ("clipvalue", clipvalue), ("global_clipnorm", global_clipnorm))
                 if v is not None]
        if len(given) > 1:
            raise ValueError(f"{owner}: only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set, "
                             f"got {', '.join(given)}.")
        self.loss_scale_factor = check_number(loss_scale_factor, "loss_scale_factor", owner, low=0.0, low_open=True,
                                              allow_none=True)
        self.use_ema = bool(use_ema)
        self.ema_momentum, self.ema_overwrite_frequency = averaging.check_arguments(
            owner, ema_momentum, ema_overwrite_frequency)
        self.gradient_accumulation_steps = accumulation.check_steps(owner, gradient_accumulation_steps)

        self._lr_value = None       # the learning rate when it is a plain number
        self._lr_function = None    # a LearningRateSchedule or a callable taking no argument
        self._set_learning_rate(learning_rate, initial=True)

        self._iterations = 0        # the count of apply calls, a host int (see IterationVariable)
        self._built: list = []      # variables with slots, in the order first seen (Keras's build order)
        self._slots: dict = {}      # Variable -> {slot name: array}
        self._exclude_ids: set = set()
        self._exclude_pattern = None
        self._added: list = []          # the Variables add_variable made, in the order made (Keras's order)
        self._built_flag = False        # `built` set by a build of Keras's way (it may be given no variable)
        self._pending_step = None       # (rate, per-step scalars) while a step calls update_step

    # ------------------------------------------------------------ learning rate
    def _current_rate(self) -> float:
        """The learning rate for the next step as a Python float (a schedule evaluated at ``iterations``): what the
        update takes, a scalar argument of the fused kernels."""
        if self._lr_function is None:
            return self._lr_value
        if isinstance(self._lr_function, schedules_module.LearningRateSchedule):
            value = self._lr_function(self._iterations)
        else:
            value = self._lr_function()   # Keras 3 calls a plain callable with no argument
        return float(backend.to_numpy(value))

    def _set_learning_rate(self, value, initial=False):
        owner = self._owner
        if isinstance(value, dict):
            value = schedules_module.deserialize(value)
        if isinstance(value, schedules_module.LearningRateSchedule) or callable(value):
            self._lr_function, self._lr_value = value, None
            return
        if not initial and self._lr_function is not None:
            raise TypeError(f"{owner}: the learning rate is given by {self._lr_function!r}, so it cannot be set to a "
                            "number; create the optimizer with a float `learning_rate` to make it settable.")
        if isinstance(value, Variable) or (hasattr(value, "shape") and hasattr(value, "dtype") and
                                           tuple(value.shape) == () and numpy.dtype(value.dtype).kind in "fiu"):
            # a variable (this optimizer's own rate, as a scheduling callback gives it back) or a 0-d array: its value
            value = float(numpy.asarray(backend.to_numpy(value.numpy() if isinstance(value, Variable) else value)))
        self._lr_value = check_number(value, "learning_rate", owner, low=0.0)

    @property
    def learning_rate(self):
        """The learning rate, as Keras 3 gives it: a float learning rate is a scalar ``Variable`` of floatx
        (``float(...)``, ``.numpy()``, ``.assign(x)``, arithmetic), the same object for the optimizer's life, whose
        value is the rate the next step takes (``RateVariable``); a schedule's (or a callable's) is its current
        value, a 0-d array. Setting it to a number assigns the variable."""
        if self._lr_function is None:
            rate = self.__dict__.get("_rate_variable")
            if rate is None:
                rate = self.__dict__["_rate_variable"] = RateVariable(self)
            return rate
        return numpy.asarray(self._current_rate(), dtype=backend.floatx())

    @learning_rate.setter
    def learning_rate(self, value):
        self._set_learning_rate(value)

    # Keras 2's attribute name.
    lr = learning_rate

    @property
    def effective_learning_rate(self) -> float:
        """The rate the next step uses: ``learning_rate``, with the legacy ``decay`` applied."""
        lr = self._current_rate()
        if self.decay:
            lr = lr / (1.0 + self.decay * self._iterations)
        return lr

    @property
    def iterations(self):
        """Keras's ``iterations``: the ``iteration`` Variable (``IterationVariable``; int32, path
        ``<name>/iteration``, the first of ``variables``, the same object for the optimizer's life), which
        counts the steps applied and sets the count by ``assign``; with ``gradient_accumulation_steps`` n, the
        count of updates (calls // n) as Keras computes it from that variable, a read-only int
        (``IterationCount``)."""
        if self.gradient_accumulation_steps:
            return IterationCount(self._update_count)
        return self._iteration_variable()

    @iterations.setter
    def iterations(self, value):
        if self.gradient_accumulation_steps:
            # Setting a count of updates would leave the position inside the accumulation group undefined.
            raise ValueError(f"{self._owner}: with `gradient_accumulation_steps` the `iterations` count is "
                             "read-only; restore a saved state (load_state_dict, load_weights) instead.")
        if hasattr(value, "shape") and hasattr(value, "dtype") and tuple(value.shape) == () and \
                numpy.dtype(value.dtype).kind in "iu":
            value = int(numpy.asarray(backend.to_numpy(value.numpy() if isinstance(value, Variable) else value)))
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ValueError(f"{self._owner}: `iterations` must be a non-negative integer, got {value!r}.")
        self._iterations = int(value)

    @property
    def _update_count(self) -> int:
        """What ``iterations`` reads, as a Python int: the steps applied (with ``gradient_accumulation_steps`` n,
        the updates, calls // n). The update rules' bias corrections and the averages compute with it on the
        host."""
        if self.gradient_accumulation_steps:
            return self._iterations // self.gradient_accumulation_steps
        return self._iterations

    # ------------------------------------------------------------------- slots
    def _slot_groups(self) -> tuple:
        """Slot names as Keras creates them: groups in order, and within a group per variable."""
        return ()

    def _keras_slot_groups(self) -> tuple:
        """All slot groups in Keras's order: EMA averages, gradient accumulators, then the rule's own."""
        groups = ((averaging.SLOT,),) if self.use_ema else ()
        groups += ((accumulation.SLOT,),) if self.gradient_accumulation_steps else ()
        return groups + tuple(self._slot_groups())

    def _slot_names(self) -> list:
        return [name for group in self._keras_slot_groups() for name in group]

    def _slot_applies(self, name: str, var) -> bool:
        """Whether ``var`` keeps slot ``name`` (Muon keeps ``velocity`` only for the variables AdamW updates)."""
        return True

    def _slot_names_of(self, var) -> list:
        """The slots ``var`` keeps, in ``_slot_names`` order: a variable the step overwrites with its gradient keeps
        its gradient accumulator only, as in Keras."""
        if getattr(var, "overwrite_with_gradient", False):
            return [n for n in self._slot_names() if n == accumulation.SLOT]
        names = (averaging.SLOT, accumulation.SLOT)
        return [n for n in self._slot_names() if n in names or self._slot_applies(n, var)]

    def _slot_spec(self, name: str, var) -> tuple:
        """``(shape, dtype, initial value)`` of a slot; averages and accumulators are zeros like the variable."""
        if name in (averaging.SLOT, accumulation.SLOT):
            return tuple(var.value.shape), var.value.dtype, 0.0
        return self._slot_template(name, var) + (self._slot_initial_value(name),)

    def _slot_initial_value(self, name: str):
        """A number, or ``FROM_VARIABLE`` for a copy of the variable's value when the slot is created."""
        return 0.0

    def _slot_template(self, name: str, var) -> tuple:
        """``(shape, dtype)`` of slot ``name`` of ``var``: the variable's own, unless a rule keeps
        smaller statistics (Adafactor's factored row and column averages)."""
        return tuple(var.value.shape), var.value.dtype

    def build(self, variables):
        """Create the slots of variables not seen before (in the given order).

        For a subclass written Keras's way (its own ``update_step``), this is Keras's ``build``, which the
        subclass's ``build(var_list)`` calls first: it records the variables (``_get_variable_index``) and adds the
        weight averages (``use_ema``) and gradient accumulators as Keras does, before the subclass adds its own
        with ``add_variable_from_reference``."""
        if self._writes_own_update():
            self._build_variables(list(variables))
            return
        for var in variables:
            if var in self._slots:
                continue
            self._slots[var] = {n: self._new_slot_array(var, n) for n in self._slot_names_of(var)}
            self._built.append(var)

    def _new_slot_array(self, var, name: str):
        shape, dtype, initial = self._slot_spec(name, var)
        if isinstance(initial, str) and initial == FROM_VARIABLE:
            return var.value.astype(dtype, copy=True)
        return backend.array_module(var.value).full(shape, initial, dtype=dtype)

    def _build_variables(self, variables):
        new = []
        for var in variables:
            if var not in self._slots:
                self._slots[var] = {}
                self._built.append(var)
                new.append(var)
        # Keras's order: group by group (every variable's average, then every variable's accumulator, then the
        # slots of a built-in rule whose subclass has its own update_step), each group variable by variable
        for group in self._keras_slot_groups():
            for var in new:
                for name in group:
                    if name in self._slot_names_of(var):
                        slot = self._track_variable(self._new_slot_array(var, name),
                                                    f"{_reference_prefix(var)}_{name}", own_array=True)
                        self._slots[var][name] = slot._value
        self._built_flag = True

    @property
    def built(self) -> bool:
        return bool(self._built) or self._built_flag

    @built.setter
    def built(self, value):
        self._built_flag = bool(value)

    def _writes_own_update(self) -> bool:
        """Whether the update rule is a subclass's ``update_step`` (Keras's way of writing an optimizer), which
        takes the generic step below instead of the fused update of the built-in optimizers."""
        return type(self).update_step is not Optimizer.update_step

    def _get_variable_index(self, variable) -> int:
        """Keras's index of ``variable`` among those the optimizer was built on (the index of its slots in the
        lists a ``build`` of Keras's way makes)."""
        for i, var in enumerate(self._built):
            if var is variable:
                return i
        raise ValueError(f"{self._owner} was not built on variable '{getattr(variable, 'path', variable)}'; it "
                         f"was built on {[v.path for v in self._built]}.")

    # ----------------------------------------------------- Keras's writing API
    def add_variable(self, shape, initializer="zeros", dtype=None, aggregation="none", layout=None, name=None):
        """Keras's ``add_variable``: a non-trainable ``Variable`` of ``shape`` drawn by ``initializer`` (a name
        or an initializer), of ``dtype`` (floatx by default), with the path ``<optimizer name>/<name>``; it is
        listed among ``variables`` (after those made before) and saved with them. ``layout`` is taken for
        Keras's signature (gpu_dl does not shard variables)."""
        if isinstance(initializer, Variable):
            initializer = initializer.numpy()
        elif hasattr(initializer, "shape") and hasattr(initializer, "dtype"):
            initializer = initializer.copy()     # an initial array: the optimizer's updates must not write into it
        return self._track_variable(initializer, name, shape=shape, dtype=dtype, aggregation=aggregation)

    def _track_variable(self, value, name, own_array=False, **arguments):
        """A variable of this optimizer made from ``value`` (an initializer or an initial value; with
        ``own_array``, an array of ours that becomes the variable's own, on its device), listed among
        ``variables``."""
        with scopes.name_scope(self.name, caller=self):
            variable = Variable(value, trainable=False, name=name, **arguments)
        if own_array:
            variable.value = value
        self._added.append(variable)
        return variable

    def add_variable_from_reference(self, reference_variable, name=None, initializer="zeros"):
        """Keras's ``add_variable_from_reference``: a variable of ``reference_variable``'s shape and dtype, on its
        device, named ``<its path with '/' as '_'>_<name>`` (``name`` defaults to ``"var"``): Adam's
        ``sequential_dense_kernel_momentum``."""
        if not (hasattr(reference_variable, "shape") and hasattr(reference_variable, "dtype")):
            raise TypeError(f"{self._owner}: add_variable_from_reference() needs a variable, got "
                            f"{reference_variable!r:.100}.")
        variable = self.add_variable(tuple(reference_variable.shape), initializer, reference_variable.dtype,
                                     name=f"{_reference_prefix(reference_variable)}_{name or 'var'}")
        reference = getattr(reference_variable, "value", reference_variable)
        module = backend.array_module(reference)
        if backend.array_module(variable._value) is not module:
            variable.value = module.asarray(backend.to_numpy(variable._value))
        return variable

    def add_optimizer_variables(self, trainable_variables, name, initializer="zeros"):
        """Keras's ``add_optimizer_variables``: for each of ``trainable_variables``, a variable from it per name
        of ``name`` (a string, or a list of them with one initializer or one each), made variable by variable;
        None for a variable with ``overwrite_with_gradient``. A list, or a tuple of lists for a list of names."""
        names = [name] if isinstance(name, str) else list(name)
        initializers = [initializer] * len(names) if isinstance(name, str) or not isinstance(
            initializer, (list, tuple)) else list(initializer)
        if len(names) != len(initializers) or any(not isinstance(n, str) for n in names):
            raise ValueError(f"{self._owner}: add_optimizer_variables() needs a name or a list of names with one "
                             f"initializer or one per name; got name={name!r}, initializer={initializer!r}.")
        made = tuple([] for _ in names)
        for var in trainable_variables:
            for i, (n, init) in enumerate(zip(names, initializers)):
                made[i].append(None if getattr(var, "overwrite_with_gradient", False) else
                               self.add_variable_from_reference(var, n, init))
        return made[0] if isinstance(name, str) else made

    def assign(self, variable, value):
        """Keras's ``assign``: write ``value`` into ``variable`` (a Variable, or a slot array of a built-in
        optimizer)."""
        _update_variable(variable, "assign", value)

    def assign_add(self, variable, value):
        """Keras's ``assign_add``: add ``value`` to ``variable``."""
        _update_variable(variable, "assign_add", value)

    def assign_sub(self, variable, value):
        """Keras's ``assign_sub``: subtract ``value`` from ``variable``."""
        _update_variable(variable, "assign_sub", value)

    def get_slot(self, variable, name: str):
        """The slot array ``name`` of ``variable`` (e.g. Adam's 'momentum' and 'velocity')."""
        try:
            return self._slots[variable][name]
        except KeyError:
            raise KeyError(f"{self._owner} has no slot {name!r} for variable "
                           f"'{getattr(variable, 'path', variable)}'; slots: {self._slot_names()}.") from None

    @property
    def variables(self) -> list:
        """Keras's ``variables``: the step count (``<name>/iteration``, int32; ``IterationVariable``), the learning
        rate where it is a number, not a schedule or a callable (``<name>/learning_rate``, the ``learning_rate``
        variable), then the slots in Keras's order, each a Variable named as Keras's ``add_variable_from_reference``
        names it (``adam/dense_kernel_momentum``) over the array the fused update writes in place
        (``slot_variable``), then the variables ``add_variable`` made; for a subclass written Keras's way, the
        count and the rate, then the Variables it and ``build`` made, in the order made."""
        own = [self._iteration_variable()] + ([self.learning_rate] if self._lr_function is None else [])
        if self._writes_own_update():
            return own + list(self._added)
        return own + [self.slot_variable(var, name) for var, name in self._slot_order()] + self._added + \
            self._extra_variables()

    def _extra_variables(self) -> list:
        """The scalars of ``_extra_state`` as the Variables Keras's ``build`` makes for them (Nadam's momentum
        product: ``backend.Variable(1.0)``, so named and pathed ``variable``, of the first variable's dtype), once
        built; the same objects each time."""
        if not self.built:
            return []
        views = self.__dict__.setdefault("_extra_views", {})
        for key in self._extra_state():
            if key not in views:
                views[key] = ExtraVariable(self, key)
        return [views[key] for key in self._extra_state()]

    def _slot_order(self) -> list:
        """``(variable, slot name)`` of each slot of a built-in rule, in Keras's order."""
        return [(var, name) for group in self._keras_slot_groups() for var in self._built
                for name in group if name in self._slots[var]]

    def _iteration_variable(self):
        variable = self.__dict__.get("_iteration_view")
        if variable is None:
            variable = self.__dict__["_iteration_view"] = IterationVariable(self)
        return variable

    def slot_variable(self, variable, name: str):
        """Slot ``name`` of ``variable`` as Keras's optimizer variable: a non-trainable Variable of path
        ``<optimizer name>/<variable's path with '_'>_<name>`` whose value is the slot's array (``get_slot``), which
        the updates write in place; the same object each time."""
        array = self.get_slot(variable, name)
        views = self.__dict__.setdefault("_slot_views", {})
        view = views.get((id(variable), name))
        if view is None:
            label = f"{_reference_prefix(variable)}_{name}"
            view = views[(id(variable), name)] = Variable(numpy.zeros((0,), numpy.float32), label, trainable=False,
                                                          path=f"{self.name}/{label}", host=True)
        if view._value is not array:
            view.value = array
        return view

    # --------------------------------------------------------------- the step
    def apply_gradients(self, grads_and_vars):
        """Apply one step from ``(gradient, variable)`` pairs; returns, as Keras does, the optimizer's ``iteration``
        Variable (the first of ``variables``: the count of calls, also with ``gradient_accumulation_steps``)."""
        pairs = []
        for item in grads_and_vars:
            try:
                grad, var = item
            except (TypeError, ValueError):
                raise TypeError(f"{self._owner}: apply_gradients() takes (gradient, variable) pairs, "
                                f"got {item!r}.") from None
            pairs.append((grad, var))
        self._step(pairs)
        return self._iteration_variable()

    def apply(self, variables, trainable_variables=None) -> None:
        """One step using each variable's ``.grad``; returns None, as Keras's ``apply``.

        Keras's form ``apply(grads, trainable_variables)`` also works, and
        ``apply(grads)`` pairs the gradients with the variables already built.
        """
        items = list(variables)
        if trainable_variables is not None:
            trainable_variables = list(trainable_variables)
            if len(trainable_variables) != len(items):
                raise ValueError(f"{self._owner}: apply(grads, trainable_variables) got {len(items)} gradient(s) "
                                 f"for {len(trainable_variables)} variable(s).")
            self._step(list(zip(items, trainable_variables)))
            return
        if items and not all(hasattr(v, "value") and hasattr(v, "grad") for v in items):
            built = self._built_variables()
            if len(items) != len(built):
                raise ValueError(f"{self._owner}: apply(grads) without variables needs one gradient per variable "
                                 f"the optimizer was built with ({len(built)}), got {len(items)}.")
            self._step(list(zip(items, built)))
            return
        self._step([(v.grad, v) for v in items])

    def _built_variables(self):
        """The variables the optimizer was built on, in build order (a wrapper: its inner optimizer's)."""
        return self._built

    def _check_pair(self, grad, var):
        if not (hasattr(var, "value") and hasattr(var, "path")):
            raise TypeError(f"{self._owner}: expected a Variable, got {var!r}.")
        if grad is None:
            return
        if not (hasattr(grad, "shape") and hasattr(grad, "dtype")):
            raise ValueError(f"{self._owner}: the gradient of variable '{var.path}' must be an array, "
                             f"got {type(grad).__name__}.")
        if backend.array_module(grad) is not backend.array_module(var.value):
            raise ValueError(f"{self._owner}: the gradient of variable '{var.path}' is a "
                             f"{type(grad).__module__}.{type(grad).__name__} but the variable lives in "
                             f"{backend.array_module(var.value).__name__}; they must be on the same device.")
        if tuple(grad.shape) != tuple(var.value.shape):
            raise ValueError(f"{self._owner}: the gradient of variable '{var.path}' has shape {tuple(grad.shape)}, "
                             f"expected the variable's shape {tuple(var.value.shape)}.")
        if grad.dtype != var.value.dtype:
            raise ValueError(f"{self._owner}: the gradient of variable '{var.path}' has dtype "
                             f"{numpy.dtype(grad.dtype).name}, expected the variable's dtype "
                             f"{numpy.dtype(var.value.dtype).name}.")

    def _step(self, pairs) -> int:
        own_update = self._writes_own_update()
        if not own_update and type(self)._update_step is Optimizer._update_step:
            raise NotImplementedError(f"{type(self).__name__} does not implement update_step(gradient, variable, "
                                      "learning_rate); write one, or use a subclass such as SGD or Adam.")
        if not pairs:
            return self._iterations
        for grad, var in pairs:
            self._check_pair(grad, var)
        if own_update and self.built:
            unknown = [v.path for _, v in pairs if v not in self._slots]
            if unknown:
                raise ValueError(f"{self._owner} was built on {[v.path for v in self._built]} and cannot update "
                                 f"other variables ({unknown}); create a new optimizer for a new set of variables.")
        active = [(g, v) for g, v in pairs if g is not None]
        if not active:
            raise ValueError(f"{self._owner}: no gradients provided for any variable "
                             f"({', '.join(v.path for _, v in pairs)}). Did the backward pass run?")
        missing = [v.path for g, v in pairs if g is None]
        lr = self.effective_learning_rate
        if not math.isfinite(lr):
            raise ValueError(f"{self._owner}: the learning rate at step {self._iterations} is {lr!r}; "
                             "it must be a finite number.")
        if missing:
            # Keras's words; attributed to the caller's line (fit, train_on_batch, or the apply call of a
            # train_step of the caller's), wherever in gpu_dl the step was reached from.
            warn(f"Gradients do not exist for variables {missing} when minimizing the loss. If using "
                 "`model.compile()`, did you forget to provide a `loss` argument?")

        # Everything is checked: from here on the step changes state.
        if not (own_update and self.built):
            self.build([v for _, v in pairs])
        # Keras assigns the variables marked overwrite_with_gradient their gradients first (not unscaled, clipped
        # or decayed); the update, the averages and the constraints are the other variables'.
        active = [(g, v) for g, v in active if not accumulation.overwrite_with_gradient(self, g, v)]
        grads = [g for g, _ in active]
        variables = [v for _, v in active]
        if self.loss_scale_factor is not None:
            grads = [g / self.loss_scale_factor for g in grads]
        if self.gradient_accumulation_steps:
            grads = accumulation.accumulate(self, grads, variables)
        if grads:
            grads = self._clip(grads)
            for var in variables:
                rate = self._weight_decay_rate(var)
                if rate:
                    var.value -= var.value * (rate * lr)
            if own_update:
                self._own_update_steps(grads, variables, lr)
            else:
                coefficients = self._step_coefficients(lr)
                for grad, var in zip(grads, variables):
                    self._update_step(var.value, grad, self._slots[var], lr, coefficients)
        if self.use_ema and variables:
            averaging.after_step(self)
        for var in variables:
            if var.constraint is not None:
                var.value[...] = var.constraint(var.value)
        self._iterations += 1
        return self._iterations

    def stateless_apply(self, optimizer_variables, grads, trainable_variables):
        """Keras's ``stateless_apply``: the step ``apply(grads)`` would take from the given values, without changing
        the optimizer or the variables. ``optimizer_variables`` are values in ``set_weights``'s order (Keras's
        order of its optimizer's variables), ``trainable_variables`` the values of the variables the optimizer is
        built on, in that order; returns ``(new trainable values, new optimizer values)`` in the same orders,
        the optimizer's step count among the latter advanced by one."""
        if not self.built:
            raise ValueError(f"To call `stateless_apply`, {type(self).__name__} must be built (i.e. its variables "
                             "must have been created). You can build it via `optimizer.build(trainable_variables)`.")
        optimizer_variables, trainable_variables = list(optimizer_variables), list(trainable_variables)
        held_state = self._keras_arrays()
        if len(optimizer_variables) != len(held_state):
            raise ValueError(f"Argument `optimizer_variables` must be a list of {len(held_state)} tensors in the "
                             f"order of {type(self).__name__}.set_weights() (iteration, learning rate, slots); "
                             f"received {len(optimizer_variables)}.")
        if len(trainable_variables) != len(self._built):
            raise ValueError(f"Argument `trainable_variables` must be a list of tensors corresponding 1:1 to the "
                             f"{len(self._built)} variables the optimizer was built with; received "
                             f"{len(trainable_variables)}.")
        held_values = [var.value.copy() for var in self._built]
        # the rate and the extra scalars exactly (the arrays hold them rounded to their dtypes)
        held_rate, held_extra = self._lr_value, dict(self._extra_state())
        try:
            self.set_weights(optimizer_variables)
            for var, value in zip(self._built, trainable_variables):
                var.assign(value)
            self.apply(list(grads))
            new_values = [var.value.copy() for var in self._built]
            new_state = self._keras_arrays()
            arrays = self._variable_arrays()
            first = len(new_state) - len(arrays) - len(self._extra_state())
            # the slots as the device holds them; the scalars as Keras's variables hold them, on the host
            new_state[first:first + len(arrays)] = [a.copy() for a in arrays]
        finally:
            self._assign_keras_arrays(held_state, "variable", held_state)
            self._lr_value = held_rate
            self._load_extra_state(held_extra)
            for var, value in zip(self._built, held_values):
                var.assign(value)
        return new_values, new_state

    def scale_loss(self, loss):
        """Keras's ``scale_loss``: ``loss`` times ``loss_scale_factor`` (as it is without one), for a training step
        of one's own whose gradients this optimizer's step divides by that factor."""
        return loss if self.loss_scale_factor is None else loss * self.loss_scale_factor

    def _clip(self, grads: list) -> list:
        if self.clipnorm is not None:
            return [clip_by_norm(g, self.clipnorm) for g in grads]
        if self.global_clipnorm is not None:
            return clip_by_global_norm(grads, self.global_clipnorm)
        if self.clipvalue is not None:
            return [backend.array_module(g).clip(g, -self.clipvalue, self.clipvalue) for g in grads]
        return grads

    def _own_update_steps(self, grads, variables, lr: float):
        """A subclass's ``update_step`` on each variable, given the learning rate as Keras gives it: a scalar of
        floatx (on the variables' device)."""
        rate = float(numpy.asarray(lr, dtype=backend.floatx()))
        # The per-step scalars of a built-in rule (a subclass of it may call its update_step), computed once per
        # step as the fused step does: Nadam's momentum product advances here, not once per variable.
        self._pending_step = (rate, self._step_coefficients(rate))
        rates = {}
        try:
            for grad, var in zip(grads, variables):
                module = backend.array_module(var.value)
                if module not in rates:
                    rates[module] = module.asarray(rate, dtype=backend.floatx())
                self.update_step(grad, var, rates[module])
        finally:
            self._pending_step = None

    def update_step(self, gradient, variable, learning_rate):
        """Keras's ``update_step``: update ``variable`` (and its slots) by this optimizer's rule from
        ``gradient`` (an array of the variable's module, shape and dtype) and ``learning_rate``.

        The built-in optimizers run their fused update here, with the per-step scalars of the coming step. A
        subclass written Keras's way overrides it, creates its slots in ``build(var_list)`` with
        ``add_variable_from_reference`` and updates them and the variable with ``assign``, ``assign_add`` and
        ``assign_sub``, computing with the ``gpu_dl.ops`` functions, which take the backend's arrays."""
        if type(self)._update_step is Optimizer._update_step:
            raise NotImplementedError(f"{type(self).__name__} does not implement update_step(gradient, variable, "
                                      "learning_rate).")
        self._check_pair(gradient, variable)
        if gradient is None or variable not in self._slots:
            raise ValueError(f"{self._owner}: update_step() needs a gradient and a variable the optimizer is built "
                             f"on; built on {[v.path for v in self._built]}.")
        lr = float(numpy.asarray(backend.to_numpy(getattr(learning_rate, "value", learning_rate))))
        pending = self._pending_step
        if pending is not None and pending[0] == lr:
            coefficients = pending[1]
        else:
            held = self._extra_state()
            coefficients = self._step_coefficients(lr)
            self._load_extra_state(held)    # Nadam's product advances once per step, in the step
        self._update_step(variable.value, gradient, self._slots[variable], lr, coefficients)

    def _step_coefficients(self, lr: float):
        """Per-step scalars shared by all variables (computed once per step, after validation)."""
        return None

    def _update_step(self, value, grad, slots: dict, lr: float, coefficients):
        raise NotImplementedError(f"{type(self).__name__} does not implement _update_step().")

    def finalize_variable_values(self, var_list):
        """End of training (``fit`` calls it once after its last epoch, when ``epochs > 0``): with
        ``use_ema``, each of ``var_list`` that has an average takes its average's value."""
        if self.use_ema:
            averaging.overwrite_variables(self, list(var_list))

    # ------------------------------------------------------------ weight decay
    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Leave the given variables, or those whose name contains one of ``var_names``, undecayed."""
        self._exclude_ids = {id(v) for v in (var_list or [])}
        names = list(var_names or [])
        if any(not isinstance(n, str) for n in names):
            raise TypeError(f"{self._owner}: `var_names` must be a list of strings, got {var_names!r}.")
        self._exclude_pattern = re.compile("|".join(map(re.escape, names))) if names else None

    def _weight_decay_rate(self, var):
        """The decoupled weight decay ``var`` takes before each update (None or 0: none)."""
        return self.weight_decay if self.weight_decay and self._use_weight_decay(var) else None

    def _use_weight_decay(self, var) -> bool:
        if id(var) in self._exclude_ids:
            return False
        return not (self._exclude_pattern is not None and self._exclude_pattern.search(var.name))

    # ------------------------------------------------------------------ state
    def _extra_state(self) -> dict:
        """Per-optimizer scalars beyond the slots (Nadam's momentum-cache product)."""
        return {}

    def _load_extra_state(self, extra: dict):
        pass

    def state_dict(self, variables) -> dict:
        """Host copies of ``iterations``, a settable learning rate and the slots of ``variables``.

        Slots are keyed by each variable's index in ``variables``; variables
        without slots (never stepped) are left out.
        """
        slots = {}
        for i, var in enumerate(variables):
            if var in self._slots:
                slots[i] = {n: backend.to_numpy(a).copy() for n, a in self._slots[var].items()}
        state = {
            "iterations": self._iterations,
            "learning_rate": self._lr_value,
            "slots": slots,
            "extra": dict(self._extra_state()),
        }
        if self._writes_own_update():
            # the variables a subclass written Keras's way made, which are not the slots of one variable each
            state["variables"] = [v.numpy() for v in self._added]
        return state

    def load_state_dict(self, state: dict, variables):
        """Restore what ``state_dict(variables)`` returned; checks everything before changing anything.

        Variables the state has no slots for keep the slots they have (or get
        fresh ones on their first step).
        """
        variables = list(variables)
        owner = self._owner
        if not isinstance(state, dict) or "iterations" not in state or "slots" not in state:
            raise ValueError(f"{owner}: expected a state dict with 'iterations' and 'slots', "
                             f"got {type(state).__name__}.")
        iterations = state["iterations"]
        if isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral) or iterations < 0:
            raise ValueError(f"{owner}: state 'iterations' must be a non-negative integer, got {iterations!r}.")
        lr = state.get("learning_rate")
        if lr is not None:
            lr = check_number(lr, "learning_rate", owner, low=0.0)
        staged = []
        for key, arrays in dict(state["slots"]).items():
            try:
                index = int(key)
            except (TypeError, ValueError):
                raise ValueError(f"{owner}: state slot keys must be variable indices, got {key!r}.") from None
            if not 0 <= index < len(variables):
                raise ValueError(f"{owner}: state has slots for variable index {index}, but only "
                                 f"{len(variables)} variable(s) were given.")
            var = variables[index]
            names = sorted(self._slot_names_of(var))
            if sorted(arrays) != names:
                raise ValueError(f"{owner}: state slots of variable {index} ('{var.path}') are {sorted(arrays)}, "
                                 f"expected {names}.")
            host = {}
            for n, a in arrays.items():
                a = numpy.asarray(backend.to_numpy(a))
                expected_shape = self._slot_spec(n, var)[0]
                if a.shape != expected_shape:
                    raise ValueError(f"{owner}: state slot {n!r} of variable {index} ('{var.path}') has shape "
                                     f"{a.shape}, expected {expected_shape}.")
                host[n] = a
            staged.append((var, host))
        extra = dict(state.get("extra") or {})
        self._check_extra_state(extra)

        own_update = self._writes_own_update()
        if not (own_update and self.built):
            self.build([var for var, _ in staged])
        own = [numpy.asarray(backend.to_numpy(a)) for a in state.get("variables") or ()] if own_update else []
        if own and [a.shape for a in own] != [v.shape for v in self._added]:
            raise ValueError(f"{owner}: state 'variables' have shapes {[a.shape for a in own]}, expected "
                             f"{[v.shape for v in self._added]} (the variables of {[v.path for v in self._added]}).")
        for variable, a in zip(self._added, own):
            variable.assign(a)
        for var, host in staged:
            module = backend.array_module(var.value)
            for n, a in host.items():
                self._slots[var][n][...] = module.asarray(a, dtype=self._slots[var][n].dtype)
        self._iterations = int(iterations)
        if lr is not None and self._lr_function is None:
            self._lr_value = lr
        self._load_extra_state(extra)

    def _check_extra_state(self, extra: dict):
        expected = sorted(self._extra_state())
        if sorted(extra) != expected:
            raise ValueError(f"{self._owner}: state 'extra' has keys {sorted(extra)}, expected {expected}.")
        for k, v in extra.items():
            check_number(v, k, self._owner)

    def save_own_variables(self, store):
        """Write the state in Keras 3's layout: ``store["0"]`` iterations, then the
        learning rate (when it is a number), the slots in ``variables`` order and
        any extra scalar, each a NumPy array."""
        for i, a in enumerate(self._keras_arrays()):
            store[str(i)] = a

    def load_own_variables(self, store):
        """Read what ``save_own_variables`` (or Keras 3) wrote; the optimizer must be built."""
        current = self._keras_arrays()
        if len(store.keys()) != len(current):
            raise ValueError(f"{self._owner} holds {len(current)} variables (built on {len(self._built)} weights), "
                             f"the store has {len(store.keys())}. Build the optimizer on the model's trainable "
                             "weights first.")
        self._assign_keras_arrays([store[str(i)] for i in range(len(current))], "stored variable", current)

    def set_weights(self, weights):
        """Keras's ``set_weights``: the optimizer's variables in Keras's order, as ``save_own_variables`` writes
        them (the ``iteration`` count, the learning rate where it is a number, the slots in ``variables`` order,
        then any extra scalar such as Nadam's momentum product); the optimizer must be built."""
        if not self.built:
            raise ValueError(f"{self._owner}: set_weights() was called before the optimizer was built; call "
                             "`optimizer.build(trainable_variables)` first.")
        current = self._keras_arrays()
        weights = list(weights)
        if len(weights) != len(current):
            raise ValueError(f"{self._owner}: set_weights() needs {len(current)} arrays (iteration, "
                             f"{'learning_rate, ' if self._lr_function is None else ''}the slots"
                             f"{', extra scalars' if self._extra_state() else ''}), got {len(weights)}.")
        self._assign_keras_arrays(weights, "weight", current)

    def _assign_keras_arrays(self, values, what: str, current: list):
        """Set the state from arrays in ``_keras_arrays`` order, each checked against ``current`` first."""
        arrays = [numpy.asarray(backend.to_numpy(getattr(a, "value", a))) for a in values]
        for i, (a, ref) in enumerate(zip(arrays, current)):
            if a.shape != ref.shape:
                raise ValueError(f"{self._owner}: {what} {i} has shape {a.shape}, expected {ref.shape}.")
        i = 0
        self._iterations = int(arrays[i]); i += 1
        if self._lr_function is None:
            self._lr_value = check_number(float(arrays[i]), "learning_rate", self._owner, low=0.0); i += 1
        for slot in self._variable_arrays():
            slot[...] = backend.array_module(slot).asarray(arrays[i], dtype=slot.dtype); i += 1
        extra_names = list(self._extra_state())
        self._load_extra_state({n: float(arrays[i + k]) for k, n in enumerate(extra_names)})

    def _variable_arrays(self) -> list:
        """The arrays of ``variables`` after the count and the rate (a Variable's own array), which updates write in
        place."""
        if self._writes_own_update():
            return [v._value for v in self._added]
        return [self._slots[var][name] for var, name in self._slot_order()] + [v._value for v in self._added]

    def _keras_arrays(self) -> list:
        out = [numpy.asarray(self._iterations, dtype=ITERATION_DTYPE)]
        if self._lr_function is None:
            out.append(numpy.asarray(self._lr_value, dtype=backend.floatx()))
        out.extend(backend.to_numpy(a).copy() for a in self._variable_arrays())
        dtype = self._built[0].value.dtype if self._built else backend.floatx()
        out.extend(numpy.asarray(v, dtype=dtype) for v in self._extra_state().values())
        return out

    # -------------------------------------------------------------- serialising
    def get_config(self) -> dict:
        if isinstance(self._lr_function, schedules_module.LearningRateSchedule):
            learning_rate = schedules_module.serialize(self._lr_function)
        elif self._lr_function is not None:
            # A plain callable cannot be written down: keep its current value.
            learning_rate = self._current_rate()
        else:
            learning_rate = self._lr_value
        config = {
            "name": self.name,
            "learning_rate": learning_rate,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
            "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
            "loss_scale_factor": self.loss_scale_factor,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
        }
        if self.decay:
            config["decay"] = self.decay
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = schedules_module.deserialize(config["learning_rate"])
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r} learning_rate={self.get_config()['learning_rate']!r}>"


class RateVariable(ViewVariable):
    """``optimizer.learning_rate`` where it is a number: Keras 3's scalar, non-trainable ``learning_rate`` variable
    of floatx (path ``<optimizer name>/learning_rate``), for the code written against it (``float(rate)``,
    ``rate.numpy()``, ``rate.assign(0.1)``, ``keras.ops.convert_to_numpy(rate)``, callbacks that read and set it).
    Its value is the optimizer's rate, kept on the host as a Python float, which the update reads each step
    without a copy from the device (the fused kernels take it as a scalar argument); reading it gives that rate
    in floatx, as Keras's variable holds it, and assigning it sets the rate."""

    _set_with = "with numbers (the learning rate)"

    def __init__(self, optimizer):
        self._optimizer = optimizer
        # the value Variable.__init__ sets is the rate's own, rounded: not an assignment
        super().__init__(numpy.asarray(optimizer._lr_value, dtype=backend.floatx()), "learning_rate",
                         f"{optimizer.name}/learning_rate")

    def _read(self):
        rate = self._optimizer._lr_value
        # (the rate of a schedule the optimizer was given since: its current value)
        return numpy.asarray(self._optimizer._current_rate() if rate is None else rate, dtype=backend.floatx())

    def _write(self, kind, value, what):
        amount = float(self._number(value, what, "fiu", "a scalar learning rate; ...: give a number"))
        current = self._optimizer._lr_value
        self._optimizer.learning_rate = amount if kind == "assign" else \
            current + amount if kind == "add" else current - amount
        return self._value


class ExtraVariable(ViewVariable):
    """One of the optimizer's per-step scalars (``_extra_state()[key]``, a Python float the step reads on the host)
    as the unnamed Variable Keras makes for it (name and path ``variable``), of the dtype its files hold it in;
    assigning it sets the scalar."""

    def __init__(self, optimizer, key):
        self._optimizer, self._key = optimizer, key
        self._kind = optimizer._built[0].value.dtype if optimizer._built else backend.floatx()
        super().__init__(numpy.asarray(0, dtype=self._kind), "variable", "variable")

    def _read(self):
        return numpy.asarray(self._optimizer._extra_state()[self._key], dtype=self._kind)

    def _write(self, kind, value, what):
        amount = float(self._number(value, what, "fiu", "a scalar of the optimizer's; ...: give a number"))
        current = float(self._optimizer._extra_state()[self._key])
        self._optimizer._load_extra_state({self._key: amount if kind == "assign" else
                                           current + amount if kind == "add" else current - amount})
        return self._value


class IterationVariable(ViewVariable):
    """``optimizer.iterations`` (and the first of its ``variables``): Keras 3's scalar, non-trainable int32
    ``iteration`` variable (path ``<optimizer name>/iteration``), which counts the calls of ``apply`` (also with
    ``gradient_accumulation_steps``, as Keras's variable does). ``int()``, ``numpy()``, ``bool()``, the
    comparisons and the arithmetic read it; ``assign``, ``assign_add`` and ``assign_sub`` set the count, which
    moves a learning-rate schedule and the bias corrections of the next step.

    The count itself is the optimizer's Python int ``_iterations``, which this variable reads and writes: each
    step needs it on the host (a schedule's rate and the bias corrections are scalar arguments of the fused
    kernels), so a count kept in a device array would cost a copy from the device, a synchronisation, per step;
    a host int costs nothing, and the variable's value, read from it, is a host array."""

    _set_with = "with numbers (the step count)"

    def __init__(self, optimizer):
        self._optimizer = optimizer
        super().__init__(numpy.asarray(0, dtype=ITERATION_DTYPE), "iteration", f"{optimizer.name}/iteration")

    def _read(self):
        return numpy.asarray(self._optimizer._iterations, dtype=ITERATION_DTYPE)

    def _write(self, kind, value, what):
        amount = int(self._number(value, what, "iu", "the optimizer's step count; ...: give an integer"))
        count = amount if kind == "assign" else self._optimizer._iterations + (amount if kind == "add" else -amount)
        if count < 0:
            raise ValueError(f"Variable '{self.path}': the step count cannot be negative, got {count}.")
        self._optimizer._iterations = count
        return self._value

    def __bool__(self):
        return self._optimizer._iterations != 0      # as Keras's variable: its value's truth, not the object's

    def __index__(self):
        return self._optimizer._iterations          # counts as an int where Python wants one (range, indexing)


class IterationCount(int):
    """``optimizer.iterations`` with ``gradient_accumulation_steps`` n: the count of updates, calls // n, which
    Keras computes from its ``iteration`` variable (the count of calls, ``optimizer.variables[0]``); an int that
    also reads as a scalar int32 value (``numpy()``, ``value``). It is read-only: ``assign`` raises, as setting
    ``iterations`` does. Arithmetic gives plain ints; a copy is a plain int."""

    def __reduce__(self):
        return int, (int(self),)

    shape = ()
    dtype = ITERATION_DTYPE

    def numpy(self):
        return numpy.asarray(int(self), dtype=self.dtype)

    @property
    def value(self):
        return self.numpy()

    def assign(self, value):
        raise ValueError("With `gradient_accumulation_steps`, `optimizer.iterations` is the count of updates "
                         "(calls // gradient_accumulation_steps) and read-only; the count of calls is "
                         "`optimizer.variables[0]`, which can be assigned.")

    assign_add = assign_sub = assign
