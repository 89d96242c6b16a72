"""Pooling layers over volumes (N, D, H, W, C): MaxPooling3D, AveragePooling3D, GlobalMaxPooling3D,
GlobalAveragePooling3D and Keras's short names for them. The layer logic is ``pooling.py``'s; these name
the 3-D ops (``ops/pool3d.py``)."""
from __future__ import annotations

from ..ops import pool3d
from .pooling import _AveragePooling, _GlobalAveragePooling, _GlobalMaxPooling, _MaxPooling


class MaxPooling3D(_MaxPooling):
    """The largest value of each pool_size window (default (2, 2, 2)) every strides (default pool_size)."""

    rank = 3
    forward_op = staticmethod(pool3d.max_pool3d_forward)
    backward_op = staticmethod(pool3d.max_pool3d_backward)

    def __init__(self, pool_size=(2, 2, 2), strides=None, padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, name, **kwargs)


class AveragePooling3D(_AveragePooling):
    """The mean of each window's in-bounds values (with "same", padding is not counted, as in Keras)."""

    rank = 3
    forward_op = staticmethod(pool3d.avg_pool3d_forward)
    backward_op = staticmethod(pool3d.avg_pool3d_backward)


class GlobalMaxPooling3D(_GlobalMaxPooling):
    """The largest value over depth, height and width: (N, C), or (N, 1, 1, 1, C) with ``keepdims``."""

    rank = 3
    forward_op = staticmethod(pool3d.global_max_pool3d_forward)
    backward_op = staticmethod(pool3d.global_max_pool3d_backward)


class GlobalAveragePooling3D(_GlobalAveragePooling):
    """The mean over depth, height and width: (N, C), or (N, 1, 1, 1, C) with ``keepdims``."""

    rank = 3
    forward_op = staticmethod(pool3d.global_avg_pool3d_forward)
    backward_op = staticmethod(pool3d.global_avg_pool3d_backward)


# Keras's short aliases.
MaxPool3D = MaxPooling3D
AvgPool3D = AveragePooling3D
GlobalMaxPool3D = GlobalMaxPooling3D
GlobalAvgPool3D = GlobalAveragePooling3D
