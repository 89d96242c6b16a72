"""Which gradients belong to the step being trained: a variable's ``grad`` and the gradient pass that set it.

Keras computes the gradients afresh in every training step (a ``GradientTape``, or ``zero_grad`` before
``loss.backward()`` on torch): a variable no call of the step reached has no gradient, so the optimizer leaves it,
and its slots, alone. gpu_dl's backward passes write each weight's gradient into ``variable.grad``; what keeps a
gradient from outliving its step is the *gradient pass*:

- the top-level ``backward`` of a model opens one (``fit`` and ``train_on_batch`` around the model's backward and
  its weight penalties; a loop of your own with ``model.backward(dy)``; the backward of a composite layer called by
  hand, which runs its traced graph). The backward of a model or layer inside it runs in the same pass;
- when a pass opens, the gradients of the model's trainable weights are cleared (torch's ``zero_grad``), so one the
  pass does not reach reads None (``Optimizer.apply`` then warns and leaves it alone, as Keras's does);
- inside a pass, a variable whose gradient several calls set (a layer repeated in a Sequential or called twice in
  a graph, one variable read by two layers: tied weights) gets the sum of what they set, whatever the model's
  structure; setting None there adds nothing. The first gradient a pass sets replaces what the variable held;
- outside a pass, ``variable.grad = g`` sets the gradient as given (a layer's backward called by hand, a gradient
  set by hand).

Nothing is cleared or copied on the device for this: clearing drops a reference, and each gradient keeps the
number of the pass that set it. A gradient set once in a pass is the array its backward made; only a second
contribution to the same variable adds arrays.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import itertools

_numbers = itertools.count(1)
# The number of the pass running in this context, or None.
_running: contextvars.ContextVar = contextvars.ContextVar("gpu_dl_gradient_pass", default=None)
# Whether the running pass adds to the gradients the variables held before it (``accumulating_pass``).
_accumulating: contextvars.ContextVar = contextvars.ContextVar("gpu_dl_gradient_accumulation", default=False)


def _in_variable_dtype(var, value):
    """A float gradient in the dtype of its float variable: the float16 gradient a layer computing in float16
    under a mixed policy makes reaches its float32 variable as float32 (the gradient of the autocast)."""
    if value is not None and getattr(value, "dtype", None) == "float16" and var._value is not None and \
            var._value.dtype != value.dtype and var._value.dtype.kind == "f":
        return value.astype(var._value.dtype)
    return value


# The factor the step's loss is multiplied by (a LossScaleOptimizer's scale): every gradient a training step
# seeds (the loss's, the penalties', the added losses') is multiplied by it (``seed_scale``).
_loss_scale: contextvars.ContextVar = contextvars.ContextVar("gpu_dl_loss_scale", default=None)


def seed_scale():
    """The loss scale of the running training step, or None for none."""
    return _loss_scale.get()


def scaled(value):
    """A seeded gradient (an array, or None) times the loss scale of the running step."""
    scale = _loss_scale.get()
    if scale is None or value is None:
        return value
    return value * value.dtype.type(scale) if hasattr(value, "dtype") else value * scale


@contextlib.contextmanager
def loss_scale(scale):
    """Within it, the step's loss counts ``scale`` times (None: once)."""
    token = _loss_scale.set(None if scale is None else float(scale))
    try:
        yield
    finally:
        _loss_scale.reset(token)


def write(var, value):
    """``var.grad = value``: inside a pass, a second gradient of the pass is added to the first (in an accumulating
    pass, any gradient the variable holds); else as given. A float gradient is kept in its variable's dtype."""
    value = _in_variable_dtype(var, value)
    running = _running.get()
    if running is not None and var._grad is not None and (var._grad_pass == running or _accumulating.get()):
        if value is not None:
            var._grad = var._grad + value
        return
    var._grad = value
    var._grad_pass = running or 0


def add(var, value):
    """Add ``value`` to ``var``'s gradient (it becomes the gradient where there is none)."""
    value = _in_variable_dtype(var, value)
    var._grad = value if var._grad is None else var._grad + value
    var._grad_pass = _running.get() or 0


def in_pass() -> bool:
    """Whether a gradient pass is running in this context."""
    return _running.get() is not None


@contextlib.contextmanager
def gradient_pass(variables):
    """Within it, one gradient pass runs: a new one, which first clears the gradients of ``variables`` (those the
    pass computes: a model's trainable weights), unless one is already running (a model's backward inside
    another's), whose gradients the calls within then add to."""
    if _running.get() is not None:
        yield
        return
    for var in variables:
        var._grad = None
    token = _running.set(next(_numbers))
    try:
        yield
    finally:
        _running.reset(token)


@contextlib.contextmanager
def accumulating_pass():
    """A gradient pass that clears nothing and adds every gradient set within it to what the variable holds, as
    torch's ``loss.backward()`` adds until ``zero_grad()`` (``gpu_dl/backprop.py``); the backward passes of the
    models it runs are part of it."""
    if _running.get() is not None:
        raise RuntimeError("backward() of a loss value cannot run inside another backward pass.")
    running, adding = _running.set(next(_numbers)), _accumulating.set(True)
    try:
        yield
    finally:
        _accumulating.reset(adding)
        _running.reset(running)


def opens_pass(backward):
    """Runs ``backward`` (a model's) within ``gradient_pass(self.trainable_weights)``."""
    @functools.wraps(backward)
    def run(self, *args, **kwargs):
        if _running.get() is not None:      # inside a running pass: the common case, kept cheap
            return backward(self, *args, **kwargs)
        with gradient_pass(self.trainable_weights):
            return backward(self, *args, **kwargs)
    run._opens_pass = True
    return run
