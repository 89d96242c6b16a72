"""Losses called on symbolic tensors: ``self.loss_fn(targets, logits, sample_weight)`` in a layer's call.

Keras's losses are made of ``keras.ops``, so a layer's call may compute one on its tensors and add it
(``self.add_loss(self.loss_fn(targets, logits))``, the endpoint layer of Keras's training guide), and a loss
function may be applied to symbolic tensors anywhere (``losses.mean_squared_error(x, reconstruction)``).
gpu_dl's losses compute on arrays with a hand-written gradient; on symbolic tensors (those of a call being
traced, ``models/composite.py``, or of a functional model) each such call records one ``LossCall``: an
operation of the graph whose forward runs the loss's own array code and whose backward is its gradient.

- A ``Loss`` object's call gives what Keras's ``Loss.__call__`` gives: the loss's dtype for both tensors (class
  ids kept as given), its per-sample values, weighted by ``sample_weight`` and by the masks Keras applies (the
  mask of padded steps that reaches ``y_pred``, and the loss's own, such as ``ignore_class``), reduced by its
  ``reduction`` (a scalar; the weighted values for "none"). The backward seeds the loss's gradient with the
  reduction's factors (``Loss.reduction_weights``), as a model's compiled loss is trained.
- A loss function (``mean_squared_error``, ``binary_crossentropy(t, p, from_logits=True)``, ...) gives its
  per-sample values, in ``y_pred``'s float dtype, through its class made with the same arguments and no
  reduction.
- A loss of the caller's own, without a gradient (``Loss.traced``), runs through the graph of its call.

The gradient reaches ``y_pred``, and ``y_true`` where the loss has a gradient with respect to its targets
(``Loss.target_grad``: BinaryCrossentropy's, as in the endpoint layer of Keras's training guide, which hands it
logits as targets); otherwise ``y_true`` and ``sample_weight`` must be data, which the graph refuses to compute
from trainable weights (``layers/data_tensors.py``). Arrays among the arguments (targets given as an
array) are constants of the graph. Such graphs are trained, not saved: Keras would write the loss's own
operations, which gpu_dl does not record, so a functional model holding one refuses to be serialised.
"""
from __future__ import annotations

import inspect

import numpy

from . import backend
from .layers.data_tensors import require_data
from .layers.operations import Operation, broadcast_shapes
from .layers.symbolic import is_symbolic
from .loss_base import Loss, aligned_shapes, reduce_weighted_values, squeeze_or_expand_to_same_rank
from .ops.arithmetic import reduce_to_shape

_ROLES = ("y_true", "y_pred", "sample_weight", "mask")


class LossCall(Operation):
    """``loss(y_true, y_pred[, sample_weight])`` in a graph (``function``: the per-sample values of a loss
    function, unreduced and unmasked). ``roles`` names its arguments in order: ``y_true``, ``y_pred``, then
    ``sample_weight`` and ``mask`` (the mask reaching ``y_pred``) where given."""

    arity = None
    casts_inputs = False
    keras_module = None

    def __init__(self, loss, roles, function=False, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.loss = loss
        self.roles = tuple(roles)
        self.function = function
        self._training = False
        self._state = None
        self.computed_targets = frozenset()     # roles (y_true) given tensors that get the loss's gradient

    def _where(self):
        return f"Loss '{self.loss.name}' ({type(self.loss).__name__}) on symbolic tensors"

    def result_dtype(self, tensors, arguments):
        return numpy.dtype(self.loss.dtype).name

    def constant_dtype(self, array):
        return array.dtype      # class ids and weights keep theirs; the forward converts as the loss does

    def output_shape_of(self, arguments, shapes):
        given = iter(shapes)
        by_role = {role: tuple(next(given)) if a is None else tuple(numpy.shape(a))
                   for role, a in zip(self.roles, arguments)}
        values = tuple(self.loss.values_shape(by_role["y_true"], by_role["y_pred"]))
        if self.function:
            return values
        if self.loss.reduction not in ("none", None):
            return ()
        weights = None      # Keras multiplies the mask into the sample weights, then those into the values
        for role in ("mask", "sample_weight"):
            if role in by_role:
                weights = by_role[role] if weights is None else _product_shape(weights, by_role[role], self._where())
        return values if weights is None else _product_shape(values, weights, self._where())

    def __call__(self, x, training=None, mask=None, initial_state=None):
        if is_symbolic(x) or (isinstance(x, (list, tuple)) and any(is_symbolic(t) for t in x)):
            return super().__call__(x, training=training, mask=mask, initial_state=initial_state)
        self._training = bool(training)
        try:
            return super().__call__(x, training=training, mask=mask, initial_state=initial_state)
        finally:
            if not training:
                self._state = None

    def forward_function(self, *operands):
        given = dict(zip(self.roles, operands))
        loss = self.loss
        xp = backend.array_module(given["y_pred"])
        y_true, y_pred = loss._converted(xp, given["y_true"], given["y_pred"])
        values = xp.asarray(loss.per_sample(y_true, y_pred, training=self._training))
        if self.function:
            out, masks, weight = values, None, None
        else:
            masks = loss._masks(y_true, y_pred, given.get("mask"))
            weight = given.get("sample_weight")
            out = reduce_weighted_values(values, weight, masks, loss.reduction)
        self._state = (y_true, y_pred, values, weight, given.get("mask"), masks, given["y_pred"]) \
            if self._training else None
        return out

    def backward(self, dy):
        if self._state is None:
            raise RuntimeError(f"{self._where()}: backward() needs a preceding call with training=True.")
        y_true, y_pred, values, weight, output_mask, masks, original = self._state
        self._state = None
        loss = self.loss
        xp = backend.array_module(dy)
        dy = xp.asarray(dy, dtype=values.dtype)
        if self.function:
            factors = dy.reshape(values.shape)
        elif loss.reduction in ("none", None):
            # d(values * weights)/d values: the weights, summed where they broadcast the values.
            effective = reduce_weighted_values(xp.ones(values.shape, values.dtype), weight, masks, "none")
            aligned, effective = squeeze_or_expand_to_same_rank(values, effective)
            factors = reduce_to_shape(dy * effective, aligned.shape).reshape(values.shape)
        else:
            factors = loss.reduction_weights(y_true, y_pred, values, weight, output_mask=output_mask) * dy
        grad = loss.training_grad(y_true, y_pred, factors)
        grad = grad.astype(original.dtype, copy=False).reshape(original.shape)
        grads = {"y_pred": grad}
        if "y_true" in self.computed_targets:
            # targets the graph computed (from trainable weights): the loss's gradient with respect to them
            target = loss.training_target_grad(y_true, y_pred, factors)
            grads["y_true"] = target.astype(y_true.dtype, copy=False).reshape(y_true.shape)
        found = [grads.get(role) for role, a in zip(self.roles, self.arguments) if a is None]
        return found if len(found) > 1 else found[0]

    def get_config(self):
        raise NotImplementedError(f"{self._where()} cannot be saved: Keras records a loss's own operations, which "
                                  "gpu_dl computes as one. Call the loss in the call of a layer of your own "
                                  "(which a saved model writes as that layer), or compute it with gpu_dl.ops.")


def _product_shape(first, second, where):
    """The shape of the product of arrays of these shapes after Keras aligns their ranks."""
    first, second = aligned_shapes(first, second)
    return broadcast_shapes(first, second, where)


def _record(loss, roles, values, function):
    where = f"Loss '{loss.name}' ({type(loss).__name__})"
    computed = set()
    for role, value in zip(roles, values):
        if role == "y_true" and is_symbolic(value) and loss.has_target_grad \
                and numpy.dtype(value.dtype).kind == "f":
            computed.add(role)      # trained through, as Keras does: it need not be data
        elif role in ("y_true", "sample_weight") and is_symbolic(value):
            require_data(value, role, where)
    call = LossCall(loss, roles, function=function)
    call.computed_targets = frozenset(computed)
    return call.apply(*values)


def loss_call(loss, y_true, y_pred, sample_weight=None):
    """``loss(y_true, y_pred, sample_weight)`` on symbolic tensors: the tensor of its reduced value."""
    if not isinstance(loss, Loss):
        raise TypeError(f"loss_call takes a gpu_dl Loss, got {type(loss).__name__}.")
    roles, values = ["y_true", "y_pred"], [y_true, y_pred]
    if sample_weight is not None:
        roles.append("sample_weight")
        values.append(sample_weight)
    if is_symbolic(y_pred) and y_pred._mask is not None:
        roles.append("mask")
        values.append(y_pred._keras_mask)
    return _record(loss, roles, values, function=False)


def function_call(fn, y_true, y_pred, args, kwargs):
    """``fn(y_true, y_pred, *args, **kwargs)`` on symbolic tensors, ``fn`` one of gpu_dl's loss functions: the
    tensor of its per-sample values."""
    from .losses import FUNCTIONS       # the catalogue gathers the loss modules: import late
    cls = next((c for c, f in FUNCTIONS.items() if f is fn), None)
    name = getattr(fn, "__name__", repr(fn))
    if cls is None:
        raise TypeError(f"Loss function '{name}' has no loss class to compute it on symbolic tensors.")
    try:
        bound = inspect.signature(fn).bind(y_true, y_pred, *args, **kwargs)
    except TypeError as e:
        raise TypeError(f"Loss function '{name}': {e}.") from None
    settings = dict(bound.arguments)
    settings.pop("y_true", None)
    settings.pop("y_pred", None)
    for key, value in settings.items():
        if is_symbolic(value):
            raise TypeError(f"Loss function '{name}' on symbolic tensors takes its argument {key!r} as a constant "
                            "(a number, or an array), not a symbolic tensor.")
    reference = y_pred if hasattr(y_pred, "dtype") else y_true
    dtype = numpy.dtype(getattr(reference, "dtype", backend.floatx()))
    dtype = dtype.name if dtype.kind == "f" else backend.floatx()
    try:
        loss = cls(reduction="none", dtype=dtype, **settings)
    except TypeError as e:
        raise TypeError(f"Loss function '{name}' on symbolic tensors takes the arguments of its class "
                        f"{cls.__name__} ({e}).") from None
    return _record(loss, ["y_true", "y_pred"], [y_true, y_pred], function=True)
