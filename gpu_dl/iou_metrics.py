"""Keras 3's intersection-over-union metrics: IoU, BinaryIoU, MeanIoU, OneHotIoU, OneHotMeanIoU.

Each accumulates a confusion matrix (rows: target class, columns: predicted
class) over all batches seen and reports tp / (tp + fp + fn) for the target
classes, averaged over those that occurred. A batch is one weighted
scatter-add of ``true * num_classes + pred`` on the inputs' device; ids
outside [0, num_classes) and the ``ignore_class`` targets weigh nothing.

As in Keras, the default dtype is "int32": class ids and sample weights are
cast to it first, so fractional weights truncate (a warning says so; pass
``dtype="float32"`` to weight by fractions). The matrix itself is kept in
float64, exact for integer counts up to 2**53, where Keras's int32 matrix
would wrap after 2**31 pixels.
"""
from __future__ import annotations

import numbers

import numpy

from .backend import array_module, to_numpy
from .backend.user_warnings import warn
from .metric_base import Metric, StateVariable, in_metric_dtype, state_array
from .ops.scattering import bin_counts

_EPSILON = 1e-7                 # Keras's backend.epsilon() in the IoU quotient and the mean over classes
_DTYPES = ("int32", "int64", "float32", "float64")


def _integer(value, what, where, low=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (low is not None and value < low):
        bound = "" if low is None else f" >= {low}"
        raise ValueError(f"{where}: {what} must be an integer{bound}, got {value!r}.")
    return int(value)


def _class_ids(value, num_classes, where):
    ids = list(value) if isinstance(value, (list, tuple, range)) else None
    if not ids or any(isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < num_classes
                      for i in ids):
        raise ValueError(f"{where}: target_class_ids must be a non-empty list of class ids in [0, {num_classes}), "
                         f"got {value!r}.")
    return [int(i) for i in ids]


class _IoUBase(Metric):
    """The confusion matrix of class ids (``sparse_*``) or of the argmax along ``axis`` of scores."""

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_true=True,
                 sparse_y_pred=True, axis=-1):
        where = type(self).__name__
        self.num_classes = _integer(num_classes, "num_classes", where, low=2)
        self.ignore_class = None if ignore_class is None else _integer(ignore_class, "ignore_class", where)
        self.sparse_y_true, self.sparse_y_pred = bool(sparse_y_true), bool(sparse_y_pred)
        self.axis = _integer(axis, "axis", where)
        super().__init__(name=name, dtype=dtype)
        StateVariable(self, "total_confusion_matrix", shape=(self.num_classes,) * 2)

    def _checked_dtype(self, dtype):
        if dtype is None or dtype == "int":
            return "int32"
        if dtype == "float":
            return "float32"
        try:
            name = numpy.dtype(dtype).name
        except TypeError:
            name = None
        if name not in _DTYPES:
            raise ValueError(f"{type(self).__name__}: dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}.")
        return name

    def reset_state(self):
        self._matrix = None       # (num_classes, num_classes) float64 array of the inputs' module

    def _read_state(self, name):
        return state_array(self._matrix, (self.num_classes,) * 2, self.dtype)

    def _write_state(self, name, array):
        self._matrix = array_module(array).asarray(array, dtype=numpy.float64)     # summed in float64

    @property
    def total_cm(self):
        """The confusion matrix so far, on the host in the metric's dtype (Keras's ``total_cm``)."""
        k = self.num_classes
        matrix = numpy.zeros((k, k)) if self._matrix is None else to_numpy(self._matrix)
        return matrix.astype(self.dtype)

    def _ids(self, xp, y, sparse):
        y = xp.asarray(y)
        if not sparse:
            y = y.argmax(axis=self.axis)
        return y.astype(self.dtype)        # Keras's cast: an int dtype truncates fractional ids

    def _weights(self, xp, sample_weight, shape):
        """The sample weights in the metric's dtype, one per class id of ``shape``."""
        where = type(self).__name__
        weights = xp.asarray(sample_weight)
        if weights.dtype.kind == "f" and self.dtype.startswith("int"):
            warn(f"{where}: sample weights are cast to the metric's dtype {self.dtype!r} (Keras's default), "
                 "which truncates fractional weights; pass dtype='float32' to weight by fractions.")
        weights = weights.astype(self.dtype)
        size = int(numpy.prod(shape))
        if weights.size == size:
            return weights.reshape(shape)
        if weights.ndim <= len(shape):    # per sample (leading axes): spread over its trailing axes
            try:
                return xp.broadcast_to(weights.reshape(weights.shape + (1,) * (len(shape) - weights.ndim)), shape)
            except ValueError:
                pass
        raise ValueError(f"{where}: sample_weight of shape {tuple(weights.shape)} does not fit the class ids of "
                         f"shape {tuple(shape)}.")

    def update_state(self, y_true, y_pred, sample_weight=None):
        xp = array_module(y_true, y_pred)
        y_true = self._ids(xp, y_true, self.sparse_y_true)
        y_pred = self._ids(xp, y_pred, self.sparse_y_pred)
        if y_true.size != y_pred.size:
            raise ValueError(f"{type(self).__name__}: y_true and y_pred must give one class id each per prediction, "
                             f"got {y_true.size} (shape {tuple(y_true.shape)}) and {y_pred.size} "
                             f"(shape {tuple(y_pred.shape)}).")
        y_pred = y_pred.reshape(y_true.shape)
        k = self.num_classes
        valid = (y_true >= 0) & (y_true < k) & (y_pred >= 0) & (y_pred < k)
        if self.ignore_class is not None:
            valid = valid & (y_true != self.ignore_class)
        weights = valid.astype(xp.float64)
        if sample_weight is not None:
            weights = weights * self._weights(xp, sample_weight, y_true.shape).astype(xp.float64)
        cell = xp.where(valid, y_true.astype(xp.int64) * k + y_pred.astype(xp.int64), 0)
        batch = bin_counts(cell.reshape(-1), k * k, weights.reshape(-1)).reshape(k, k)
        # a matrix set through the state variable may be on the host while the batch's is on the device
        self._matrix = batch if self._matrix is None else xp.asarray(self._matrix) + batch

    def _ious(self, class_ids):
        """Keras's mean of tp / (tp + fp + fn + eps) over the given classes whose denominator is not 0."""
        if self._matrix is None:
            return 0.0
        matrix = to_numpy(self._matrix)
        tp = numpy.diag(matrix)
        denominator = (matrix.sum(axis=0) + matrix.sum(axis=1) - tp)[class_ids]
        tp = tp[class_ids]
        valid = denominator > 1e-9
        iou = numpy.where(valid, tp / (denominator + _EPSILON), 0.0)
        return float(iou.sum() / (valid.sum() + _EPSILON))


class IoU(_IoUBase):
    """Intersection over union, tp / (tp + fp + fn), averaged over ``target_class_ids``."""

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None, sparse_y_true=True,
                 sparse_y_pred=True, axis=-1):
        super().__init__(num_classes, name=name, dtype=dtype, ignore_class=ignore_class,
                         sparse_y_true=sparse_y_true, sparse_y_pred=sparse_y_pred, axis=axis)
        self.target_class_ids = _class_ids(target_class_ids, self.num_classes, type(self).__name__)

    @in_metric_dtype
    def result(self):
        return self._ious(self.target_class_ids)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "num_classes": self.num_classes,
                "target_class_ids": self.target_class_ids, "ignore_class": self.ignore_class,
                "sparse_y_true": self.sparse_y_true, "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


class BinaryIoU(IoU):
    """IoU of classes 0 and/or 1, a prediction being class 1 where it is >= ``threshold``."""

    def __init__(self, target_class_ids=(0, 1), threshold=0.5, name=None, dtype=None):
        if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
            raise ValueError(f"BinaryIoU: threshold must be a number, got {threshold!r}.")
        super().__init__(2, target_class_ids, name=name, dtype=dtype)
        self.threshold = threshold

    def update_state(self, y_true, y_pred, sample_weight=None):
        xp = array_module(y_true, y_pred)
        # Keras compares in float32, the threshold rounded to float32 too
        y_pred = xp.asarray(y_pred, dtype=xp.float32) >= numpy.float32(self.threshold)
        super().update_state(y_true, y_pred.astype(xp.int32), sample_weight)

    def get_config(self):
        return {"target_class_ids": self.target_class_ids, "threshold": self.threshold, "name": self.name,
                "dtype": self.dtype}


class MeanIoU(IoU):
    """IoU averaged over all ``num_classes`` classes (those never seen left out)."""

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_true=True, sparse_y_pred=True,
                 axis=-1):
        classes = _integer(num_classes, "num_classes", type(self).__name__, low=2)
        super().__init__(classes, list(range(classes)), name=name, dtype=dtype, ignore_class=ignore_class,
                         sparse_y_true=sparse_y_true, sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype,
                "ignore_class": self.ignore_class, "sparse_y_true": self.sparse_y_true,
                "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


class OneHotIoU(IoU):
    """IoU with one-hot targets (and score predictions unless ``sparse_y_pred``): argmax along ``axis`` first."""

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None, sparse_y_pred=False,
                 axis=-1):
        super().__init__(num_classes, target_class_ids, name=name, dtype=dtype, ignore_class=ignore_class,
                         sparse_y_true=False, sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self):
        return {"num_classes": self.num_classes, "target_class_ids": self.target_class_ids, "name": self.name,
                "dtype": self.dtype, "ignore_class": self.ignore_class, "sparse_y_pred": self.sparse_y_pred,
                "axis": self.axis}


class OneHotMeanIoU(MeanIoU):
    """MeanIoU with one-hot targets (and score predictions unless ``sparse_y_pred``)."""

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_pred=False, axis=-1):
        super().__init__(num_classes, name=name, dtype=dtype, ignore_class=ignore_class, sparse_y_true=False,
                         sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype,
                "ignore_class": self.ignore_class, "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}
