"""Keras 3's ``CTC`` loss (connectionist temporal classification) and its function ``ctc``.

``y_true`` holds integer labels, shape (batch, max_label_length); ``y_pred``
the model's per-step logits, shape (batch, time_steps, num_classes), which the
loss turns into log-probabilities itself (no softmax in the model). As in
Keras, class 0 is the blank and pads the label rows: a row's labels are its
first ``n`` entries, ``n`` the number of its nonzero entries, so a 0 before a
nonzero label is read as a blank label, not skipped. Every output step counts
(Keras passes ``time_steps`` as every sample's length).

A row whose labels cannot fit in ``time_steps`` (``n`` plus the number of
adjacent repeated labels, which need a blank between them) has loss +inf,
as in Keras 3.15 with the torch backend (``torch.nn.functional.ctc_loss``
without ``zero_infinity``); its gradient is 0, where torch gives NaN. The
arithmetic is ``gpu_dl.ops.ctc`` (on CuPy float32/float64 arrays the kernels
of ``kernels/ctc.cu``).

Keras computes CTC in float32 even for float64 inputs; here float64 inputs
stay float64 (what the gradient checks need), so the two agree to float32
rounding. Other dtypes compute in float32, as Keras's do.
"""
from __future__ import annotations

import numpy

from .backend import array_module
from .backend.user_warnings import warn
from .loss_base import Loss, LossFunctionWrapper, _batch_shape, _is_whole, symbolic_form
from .ops.ctc import ctc_backward, ctc_forward, ctc_loss

_SHAPES = ("`y_true` of integer labels, shape (batch_size, max_label_length), and `y_pred` of logits, shape "
           "(batch_size, time_steps, num_classes)")


def _label_range_error(owner, low, high, classes):
    return ValueError(
        f"{owner}: labels must be class ids in [0, {classes}) for {classes} classes (0 is the blank and pads the "
        f"rows); got values from {low:g} to {high:g}. Give the last layer one unit per class plus one for the "
        "blank, with the classes numbered from 1.")


def _inputs(y_true, y_pred, owner="ctc"):
    """(labels as int64, logits as float32/float64), both checked for shape; host labels for range too."""
    xp = array_module(y_true, y_pred)
    y_pred = xp.asarray(y_pred)
    y_true = xp.asarray(y_true)
    if y_true.ndim != 2 or y_pred.ndim != 3:
        raise ValueError(f"{owner}: needs {_SHAPES}; got y_true.shape={y_true.shape} and "
                         f"y_pred.shape={y_pred.shape}.")
    if y_true.shape[0] != y_pred.shape[0] or y_pred.shape[1] < 1 or y_pred.shape[2] < 1:
        raise ValueError(f"{owner}: `y_true` and `y_pred` need the same batch size, and `y_pred` at least one "
                         f"time step and one class; got y_true.shape={y_true.shape} and y_pred.shape={y_pred.shape}.")
    if y_true.dtype.kind not in "iubf":
        raise TypeError(f"{owner}: `y_true` must hold integer class ids, got dtype {y_true.dtype}.")
    if y_pred.dtype.kind not in "iubf":
        raise TypeError(f"{owner}: `y_pred` must hold float logits, got dtype {y_pred.dtype}.")
    if y_pred.dtype not in (numpy.float32, numpy.float64):
        y_pred = y_pred.astype(numpy.float32)
    if xp is numpy and y_true.size:
        # Host labels are checked here; device labels before training (validate_targets), so that no step
        # waits for a read back from the device.
        if not _is_whole(y_true):
            raise ValueError(f"{owner}: `y_true` must hold integer class ids, got non-integer values.")
        if y_true.min() < 0 or y_true.max() >= y_pred.shape[2]:
            raise _label_range_error(owner, float(y_true.min()), float(y_true.max()), y_pred.shape[2])
    return y_true.astype(xp.int64, copy=False), y_pred


@symbolic_form
def ctc(y_true, y_pred):
    """The CTC loss of each sample, shape (batch_size,): labels ``y_true`` (0 the blank/padding) under logits
    ``y_pred``."""
    labels, logits = _inputs(y_true, y_pred)
    return ctc_loss(labels, logits, want_grad=False)[0]


def _ctc_grad(y_true, y_pred):
    """d(sum of the per-sample losses)/d(y_pred)."""
    labels, logits = _inputs(y_true, y_pred)
    return ctc_loss(labels, logits)[1]


class CTC(LossFunctionWrapper):
    """CTC loss of integer label rows (0 the blank, padding at the end) under per-step logits."""

    def __init__(self, reduction="sum_over_batch_size", name="ctc", dtype=None):
        super().__init__(ctc, reduction=reduction, name=name, dtype=dtype, grad_fn=_ctc_grad)
        self._forward = None   # (y_true, y_pred, saved) of the last call, for grad on the same arrays

    def call(self, y_true, y_pred):
        # A training step asks for call's values, then grad's gradient, of the same two arrays: the alpha
        # pass the gradient needs is kept from the call instead of being run again.
        labels, logits = _inputs(y_true, y_pred)
        values, saved = ctc_forward(labels, logits)
        self._forward = (y_true, y_pred, saved)
        return values

    def grad(self, y_true, y_pred):
        forward, self._forward = self._forward, None
        if forward is not None and forward[0] is y_true and forward[1] is y_pred:
            return ctc_backward(forward[2])
        return _ctc_grad(y_true, y_pred)

    def _converted(self, xp, y_true, y_pred):
        # Class ids stay as given (the base would make them floats of the loss's dtype).
        return xp.asarray(y_true), xp.asarray(y_pred, dtype=self.dtype)

    def values_shape(self, true_shape, pred_shape):
        return tuple(pred_shape[:1])

    def get_config(self):
        return Loss.get_config(self)

    def reduction_weights(self, y_true, y_pred, values, sample_weight=None, output_mask=None):
        if output_mask is not None:
            # One value per sample cannot take a mask of steps; Keras fails here with a shape mismatch.
            raise ValueError(f"Loss '{self.name}' counts every output step and cannot take the model output's mask "
                             "of padded steps (from Masking or mask_zero=True), nor does Keras's: remove the mask, "
                             "or pad the inputs with steps the model may label as blanks.")
        return super().reduction_weights(y_true, y_pred, values, sample_weight)

    def validate_targets(self, y_true, output_shape):
        y_true = numpy.asarray(y_true)
        out = _batch_shape(y_true, output_shape)
        if len(out) != 3:
            raise ValueError(f"Loss '{self.name}' needs a model output of per-step logits, shape (batch, "
                             f"time_steps, num_classes), such as an LSTM with return_sequences=True followed by "
                             f"Dense(num_classes); got {tuple(output_shape)}.")
        if y_true.ndim != 2:
            raise ValueError(f"Loss '{self.name}' expects `y` of integer labels, shape (batch, max_label_length), "
                             f"padded at the end with 0 (the blank); got shape {y_true.shape}.")
        if y_true.dtype.kind not in "iubf" or not _is_whole(y_true):
            raise ValueError(f"Loss '{self.name}' needs integer class ids in `y`.")
        classes, steps = out[2], out[1]
        if y_true.size and classes is not None and (y_true.min() < 0 or y_true.max() >= classes):
            raise _label_range_error(f"Loss '{self.name}'", float(y_true.min()), float(y_true.max()), classes)
        _warn_about_rows(self.name, y_true, steps)


def _warn_about_rows(name, y_true, steps):
    """Warn about label rows Keras reads other than their writer likely meant, or that cannot fit."""
    nonzero = y_true != 0
    count = nonzero.sum(axis=1)
    used = numpy.arange(y_true.shape[1]) < count[:, None]
    if (nonzero & ~used).any():
        warn(f"Loss '{name}': some rows of `y` have a 0 before a nonzero label. As in Keras, a row's "
             "labels are its first (number of nonzero entries) entries, so such a 0 is read as a blank "
             "label and the row's last label is dropped: pad the rows with 0 only at their end, and "
             "number the classes from 1.", RuntimeWarning)
    if steps is None:
        return
    repeats = ((y_true[:, 1:] == y_true[:, :-1]) & used[:, 1:]).sum(axis=1)
    needed = count + repeats
    if (needed > steps).any():
        warn(f"Loss '{name}': {int((needed > steps).sum())} rows of `y` need more than the model's "
             f"{steps} output steps (up to {int(needed.max())}: one step per label and a blank between "
             "repeated labels); their loss is inf, as in Keras.", RuntimeWarning)
