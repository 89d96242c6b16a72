"""The callback base class, the loop's own callbacks (History, the progress bar) and the list that calls them.

Batch hooks receive ``logs`` only when some callback overrides them: building
the running averages reads scalars back from the GPU, so the loop skips it
when nobody listens.
"""
from __future__ import annotations

from ..utils.io_utils import print_msg
from ..utils.progbar import Progbar

_BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin",
                "on_test_batch_end", "on_predict_batch_begin", "on_predict_batch_end",
                "on_batch_begin", "on_batch_end")


class Callback:
    """Base class: override the hooks you need. ``self.model`` and ``self.params`` are set by the loop."""

    def __init__(self):
        self.model = None
        self.params = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch, logs=None): pass
    def on_epoch_end(self, epoch, logs=None): pass
    def on_batch_begin(self, batch, logs=None): pass
    def on_batch_end(self, batch, logs=None): pass

    # As in Keras, the training batch hooks call the older names on_batch_begin/on_batch_end.
    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs=logs)

    def on_test_begin(self, logs=None): pass
    def on_test_end(self, logs=None): pass
    def on_test_batch_begin(self, batch, logs=None): pass
    def on_test_batch_end(self, batch, logs=None): pass
    def on_predict_begin(self, logs=None): pass
    def on_predict_end(self, logs=None): pass
    def on_predict_batch_begin(self, batch, logs=None): pass
    def on_predict_batch_end(self, batch, logs=None): pass

    def wants_batch_logs(self, batch):
        """Whether this callback needs this batch's logs; by default, when it overrides a batch hook."""
        return any(getattr(type(self), hook) is not getattr(Callback, hook) for hook in _BATCH_HOOKS)


class History(Callback):
    """Records each epoch's logs: ``history.history["loss"]`` and friends. ``fit`` returns it."""

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


class LambdaCallback(Callback):
    """A callback made of plain functions: ``LambdaCallback(on_epoch_end=lambda epoch, logs: ...)``."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        functions = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                         on_train_begin=on_train_begin, on_train_end=on_train_end,
                         on_train_batch_begin=on_train_batch_begin, on_train_batch_end=on_train_batch_end, **kwargs)
        for hook, function in functions.items():
            if not hook.startswith("on_") or not hasattr(Callback, hook):
                raise TypeError(f"LambdaCallback got an unknown hook {hook!r}.")
            if function is not None:
                if not callable(function):
                    raise TypeError(f"LambdaCallback: {hook} must be callable, got {function!r}.")
                setattr(self, hook, function)
        self._batch_hooks = any(functions.get(h) for h in _BATCH_HOOKS)

    def wants_batch_logs(self, batch):
        return self._batch_hooks


class ProgbarLogger(Callback):
    """Draws the Keras-style progress bar for fit/evaluate/predict."""

    def __init__(self, verbose=1):
        super().__init__()
        self.verbose = verbose
        self.bar = None
        self._called_in_fit = False     # fit's validation draws nothing: its results join the epoch's line
        self._validating = False

    def on_train_begin(self, logs=None):
        self._called_in_fit = True

    def _new_bar(self, target):
        self.bar = Progbar(target, verbose=self.verbose)

    def _finish(self, logs):
        # A generator's epoch length is known only at its end: the loop puts it in params then, and the
        # bar ends at it (as Keras's ends "10/10" after counting "1/Unknown", "2/Unknown", ...).
        if self.bar.target is None:
            self.bar.target = self.params.get("steps")
        self.bar.update(self.params.get("steps") or 1, logs, finalize=True)

    def on_epoch_begin(self, epoch, logs=None):
        # As Keras 3: no "Epoch 1/1" line for a single epoch.
        if self.verbose and self.params["epochs"] > 1:
            print_msg(f"Epoch {epoch + 1}/{self.params['epochs']}")
        self._new_bar(self.params.get("steps"))

    def wants_batch_logs(self, batch):
        return (self.bar is not None and not self._validating and self.bar.wants_values(batch + 1)
                and self._before_end(batch))

    def _before_end(self, batch):
        # The last batch's line is the epoch's end (_finish); with steps_per_execution the index of the last
        # execution's end hook may pass the epoch's length, as Keras counts it.
        return self.bar.target is None or batch + 1 < self.bar.target

    def on_train_batch_end(self, batch, logs=None):
        if self._before_end(batch):
            self.bar.update(batch + 1, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._finish(logs)

    def on_test_begin(self, logs=None):
        if self._called_in_fit:
            self._validating = True
        else:
            self._new_bar(self.params.get("steps"))

    def on_test_batch_end(self, batch, logs=None):
        if not self._called_in_fit and self._before_end(batch):
            self.bar.update(batch + 1, logs)

    def on_test_end(self, logs=None):
        self._validating = False
        if not self._called_in_fit:
            self._finish(logs)

    def on_predict_begin(self, logs=None):
        self._new_bar(self.params.get("steps"))

    def on_predict_end(self, logs=None):
        self._finish({})


def pythonify_logs(logs):
    """Keras's ``pythonify_logs``, the one place logs are put in order: the entries sorted by key, a dict's entries
    spread in its key's place (recursively), each value a Python float where it is one number (a loss value, a
    0-d or one-element array). The callbacks' hooks (History and the progress bar among them) get their logs
    through it, and evaluate() and the ``*_on_batch`` methods return what it gives, as in Keras."""
    from ..metric_base import log_value
    result = {}
    for key, value in sorted((logs or {}).items()):
        if isinstance(value, dict):
            result.update(pythonify_logs(value))
        else:
            result[key] = log_value(value)
    return result


def pythonify_predict_logs(logs):
    """The logs of predict's batch hooks as Keras's ``pythonify_logs`` leaves them: sorted by key, a dict's entries
    (the outputs of a model of named outputs) spread in its key's place, each array a NumPy array (a Python float
    only where it is 0-d: an output has a batch axis), a list or tuple of outputs as it is."""
    from .. import backend
    result = {}
    for key, value in sorted((logs or {}).items()):
        if isinstance(value, dict):
            result.update(pythonify_predict_logs(value))
        elif hasattr(value, "shape") and hasattr(value, "dtype"):
            array = backend.to_numpy(value)
            result[key] = float(array) if array.ndim == 0 else array
        else:
            result[key] = value
    return result


# The older names the training batch hooks call (see Callback).
_HOOK_ALIASES = {"on_train_batch_begin": ("on_batch_begin",), "on_train_batch_end": ("on_batch_end",)}


def _pythonified(hook, logs):
    # predict's batch logs hold the outputs, as NumPy arrays (not floats), as Keras gives them
    return pythonify_predict_logs(logs) if hook.startswith("on_predict") else pythonify_logs(logs)


def _has_hook(cb, hook):
    """Whether calling ``hook`` on ``cb`` can do anything: its class overrides it (or the older name it calls),
    or the instance holds a function of that name (LambdaCallback)."""
    for name in (hook,) + _HOOK_ALIASES.get(hook, ()):
        if name in vars(cb) or getattr(type(cb), name) is not getattr(Callback, name):
            return True
    return False


class CallbackList:
    """Calls every callback's hook in order; builds batch logs only for those that want them."""

    def __init__(self, callbacks, model, params):
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            cb.set_model(model)
            cb.set_params(params)
        # As Keras's trainers, the batch hooks run once per execution of the model's steps_per_execution batches
        # (compile's argument): begin hooks with its first batch's index, end hooks with first + N - 1.
        self._per_execution = int(getattr(model, "steps_per_execution", 1) or 1)
        self._pending_end = None       # the end hook of an execution cut short, run before the next other hook

    def call(self, hook, *args):
        """Call ``hook`` on every callback; its logs (the last argument) go through ``pythonify_logs`` first."""
        self._end_execution()
        if args and (args[-1] is None or isinstance(args[-1], dict)):
            args = args[:-1] + (pythonify_logs(args[-1]),)
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def _end_execution(self):
        """Run the end hook of an execution whose batches ran out before its last one (the epoch's or the data's
        end), with the index Keras gives it: first + N - 1."""
        pending, self._pending_end = self._pending_end, None
        if pending is not None:
            self._run_batch_hook(*pending)

    def batch(self, hook, batch, logs_fn):
        """Call a batch hook (once per execution of ``steps_per_execution`` batches); ``logs_fn()`` is evaluated
        once, and only if a callback that has this hook wants the logs (fit's validation batches read nothing back
        for a callback that watches training batches)."""
        n = self._per_execution
        if n > 1:
            first = batch - batch % n
            if hook.endswith("_begin"):
                if batch != first:
                    return
            elif batch != first + n - 1:
                # The logs now, where a callback wants them: the loop may end before the execution's last batch,
                # and what runs after it (validation, the next epoch's reset) changes them.
                end = first + n - 1
                if any(_has_hook(cb, hook) and cb.wants_batch_logs(end) for cb in self.callbacks):
                    logs = _pythonified(hook, logs_fn())
                    logs_fn = lambda: logs
                self._pending_end = (hook, end, logs_fn)
                return
            else:
                self._pending_end = None
        self._run_batch_hook(hook, batch, logs_fn)

    def _run_batch_hook(self, hook, batch, logs_fn):
        logs = None
        for cb in self.callbacks:
            if _has_hook(cb, hook) and cb.wants_batch_logs(batch):
                if logs is None:
                    logs = _pythonified(hook, logs_fn())
                getattr(cb, hook)(batch, logs)
