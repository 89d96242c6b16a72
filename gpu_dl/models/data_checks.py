"""Checks on what users hand to fit/evaluate/predict, before anything changes.

Each function turns user data into a NumPy array or a number, or raises a
ValueError/TypeError that names the argument and says what was expected.
"""
from __future__ import annotations

import numbers

import numpy

from ..data import foreign_datasets, torch_loader


def host_array(data, name, first_axis="a batch axis"):
    """``data`` as a NumPy array (CuPy arrays copied to the host, NumPy input not copied), at least 1-D.

    Rejects None, ragged nesting and Python objects; ``first_axis`` names axis 0 in the message for a scalar.
    """
    if data is None:
        raise ValueError(f"`{name}` is required, got None.")
    if torch_loader.is_torch_dataset(data):
        raise torch_loader.dataset_refusal(name)
    if foreign_datasets.kind(data) is not None:
        raise TypeError(f"`{name}` is a {foreign_datasets.kind(data)}, where arrays are expected: fit, evaluate and "
                        "predict take one as `x` (its batches holding the targets and sample weights) or as "
                        "`validation_data`.")
    if type(data).__module__.startswith("cupy"):
        data = data.get()
    try:
        array = numpy.asarray(data)
    except ValueError as exc:
        raise ValueError(f"`{name}` must be a rectangular array; it could not be made into one ({exc}).") from None
    if array.dtype == object:
        raise TypeError(f"`{name}` must hold numbers, but it holds Python objects (ragged lists or mixed types?).")
    if array.ndim == 0:
        raise ValueError(f"`{name}` must be an array with {first_axis} first, got a scalar.")
    return array


def as_array(data, name):
    """``data`` as a NumPy array of numbers; rejects None, ragged, non-numeric and empty data."""
    array = host_array(data, name)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"`{name}` must hold numbers, got dtype {array.dtype} (strings or dates must be encoded "
                        "first).")
    if array.shape[0] == 0:
        raise ValueError(f"`{name}` is empty (0 samples): there is nothing to train or evaluate on.")
    if array.size == 0:
        raise ValueError(f"`{name}` has shape {array.shape}: each sample is empty.")
    return array


def is_text(data):
    """Whether ``data`` is text: a NumPy array (or nested lists) of str or bytes."""
    if hasattr(data, "dtype"):
        return getattr(data.dtype, "kind", None) in ("O", "U", "S") and isinstance(data, numpy.ndarray)
    try:
        return numpy.asarray(data).dtype.kind in "US"
    except ValueError:
        return False


def text_array(data, name):
    """``data`` (strings or bytes, nested lists or an array) as a NumPy object array for an input of dtype
    "string"; rejects numbers, ragged and empty data."""
    if data is None:
        raise ValueError(f"`{name}` is required, got None.")
    try:
        array = numpy.asarray(data)
    except ValueError as exc:
        raise ValueError(f"`{name}` must be a rectangular array of strings ({exc}).") from None
    if array.dtype.kind == "O" and not all(isinstance(v, (str, bytes)) for v in array.reshape(-1)):
        raise TypeError(f"`{name}` is a string input (dtype='string') and must hold strings; it holds other Python "
                        "objects.")
    if array.dtype.kind not in "OUS":
        raise TypeError(f"`{name}` is a string input (dtype='string') and must hold strings, got dtype {array.dtype}.")
    if array.ndim == 0 or array.shape[0] == 0:
        raise ValueError(f"`{name}` must be a non-empty array of strings with samples first, got shape "
                         f"{array.shape}.")
    return array.astype(object)


def check_finite(array, name):
    if array.dtype.kind == "f" and not numpy.isfinite(array).all():
        bad = numpy.argwhere(~numpy.isfinite(array))[0]
        raise ValueError(
            f"`{name}` contains NaN or Inf (first at index {tuple(int(i) for i in bad)}); "
            "clean or impute the data before training."
        )


def features(data, name, float_dtype):
    """Inputs: numbers, finite, cast to the model's float type; for an input of dtype "string", text (an object
    array of str, as the layers that read text take it)."""
    if float_dtype == "string":
        return text_array(data, name)
    array = as_array(data, name)
    check_finite(array, name)
    return array.astype(float_dtype, copy=False)


def targets(data, name):
    """Targets: numbers and finite; integers stay integers (class labels)."""
    array = as_array(data, name)
    check_finite(array, name)
    if array.dtype.kind == "b":
        array = array.astype(numpy.float32)
    return array


def same_length(arrays_by_name):
    lengths = {name: len(a) for name, a in arrays_by_name.items() if a is not None}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise ValueError(f"Data cardinality is ambiguous: {listed} samples; they must be equal.")


def sample_weights(data, n, name="sample_weight", values_shape=None):
    """Sample weights as a float64 host array: one weight per sample (``(n,)``, or ``(n, 1)`` taken as it), or,
    as Keras weighs the loss of a sequence output, one weight per value the loss reduces (``(n, T)`` for per-step
    losses of an ``(n, T, C)`` or ``(n, T)`` output), which needs ``values_shape``: a callable giving the shape of
    the loss's per-sample values (batch axis first; None for a size not known), None where there is none, or
    "any" for weights of any shape with one entry per sample on the first axis (a step of the caller's own)."""
    if data is None:
        return None
    array = as_array(data, name)
    if array.ndim == 1 or (array.ndim == 2 and array.shape[1] == 1):
        array = array.reshape(-1)
        shape = None if values_shape in (None, "any") else tuple(values_shape())
        if shape is not None and len(shape) > 1 and not (len(shape) == 2 and shape[1] == 1):
            # Keras multiplies the loss's values by the weights as they are: (n,) weights do not fit (n, T) values
            expected = "(" + ", ".join(str(s) for s in (n,) + shape[1:]) + ")"
            raise ValueError(f"`{name}` has one weight per sample, shape {array.shape}, but the loss gives a value "
                             f"per step, shape {expected}: pass one weight per step, `{name}` of shape {expected} "
                             f"(the weights repeated over the steps: numpy.repeat(w[:, None], {shape[1]}, axis=1)).")
    elif values_shape != "any":         # (a step of the caller's own takes them as they are)
        shape = None if values_shape is None else tuple(values_shape())
        if shape is None or len(shape) < 2:
            raise ValueError(f"`{name}` must have shape ({n},), one weight per sample, got {array.shape}"
                             + ("" if shape is None else
                                f" (the loss gives one value per sample, shape {(n,) + shape[1:]})") + ".")
        # Keras's squeeze_or_expand_to_same_rank: a trailing axis of 1 beyond the values' rank is dropped
        if array.ndim == len(shape) + 1 and array.shape[-1] == 1:
            array = array.reshape(array.shape[:-1])
        if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape[1:], array.shape[1:])):
            expected = "(" + ", ".join(str(s) for s in (n,) + shape[1:]) + ")"
            raise ValueError(f"`{name}` must have shape ({n},), one weight per sample, or {expected}, one weight per "
                             f"value of the loss (per step of a sequence output, as Keras weighs it); got "
                             f"{array.shape}.")
    array = array.astype(numpy.float64)
    if len(array) != n:
        raise ValueError(f"`{name}` has {len(array)} entries but there are {n} samples.")
    if not numpy.isfinite(array).all() or (array < 0).any():
        raise ValueError(f"`{name}` must be finite and non-negative.")
    return array


def class_weights_to_sample_weights(class_weight, y, n_outputs, output_rank=None):
    """Keras's class_weight: a dict from class index to weight, turned into per-sample weights. ``output_rank``: the
    rank of the model's output (batch axis included), where known."""
    if class_weight is None:
        return None
    if not isinstance(class_weight, dict) or not class_weight:
        raise TypeError(f"`class_weight` must be a non-empty dict from class index to weight, got {class_weight!r}.")
    if y.ndim > 2 or (y.ndim == 2 and output_rank is not None and output_rank > 2):
        # Keras gives one class weight per sample, which a loss of one value per step cannot take (it fails there)
        raise ValueError(f"`class_weight` gives one weight per sample, but the targets of shape {y.shape} hold a "
                         "label per step of a sequence output, whose loss has a value per step: Keras does not "
                         "support `class_weight` for them either. Pass `sample_weight` with one weight per step "
                         "instead (the class weights looked up for each step's label).")
    if y.ndim >= 2 and y.shape[-1] > 1:
        labels = y.reshape(len(y), -1).argmax(axis=-1)
    else:
        labels = numpy.rint(y.reshape(len(y))).astype(numpy.int64)
    table = numpy.ones(max(int(labels.max()) + 1, n_outputs or 0, max(class_weight) + 1))
    for cls, weight in class_weight.items():
        if not isinstance(cls, (int, numpy.integer)) or cls < 0:
            raise ValueError(f"`class_weight` keys must be class indices >= 0, got {cls!r}.")
        if not isinstance(weight, numbers.Real) or not numpy.isfinite(weight) or weight < 0:
            raise ValueError(f"`class_weight[{cls}]` must be a finite number >= 0, got {weight!r}.")
        table[cls] = weight
    return table[labels]


def positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    return int(value)


def non_negative_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"`{name}` must be an integer >= 0, got {value!r}.")
    return int(value)


def verbosity(value, name="verbose"):
    if value == "auto":
        return 1
    if isinstance(value, bool) or value not in (0, 1, 2):
        raise ValueError(f"`{name}` must be 0 (silent), 1 (progress bar), 2 (one line per epoch) or 'auto', "
                         f"got {value!r}.")
    return int(value)


def validation_split(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"`validation_split` must be a number in [0, 1), got {value!r}.")
    return float(value)


def split_for_validation(n, fraction):
    """Keras's rule: the last ``fraction`` of the samples (before shuffling) validate."""
    split_at = int(numpy.floor(n * (1.0 - fraction)))
    if split_at == 0 or split_at == n:
        raise ValueError(
            f"validation_split={fraction} leaves {split_at} of {n} samples for training: "
            "provide more data or a different validation_split."
        )
    return split_at
