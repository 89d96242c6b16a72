"""``map_coordinates`` of ``keras.ops.image``: its sampling plan (``coordinate_taps``) also serves the ``mirror``
fill mode of ``affine_transform`` and ``elastic_transform``.
"""
from __future__ import annotations

import functools
import itertools
import operator

import numpy

from ...ops.scattering import scatter_taps
from .base import KerasOperation, _xp
from .image_base import AFFINE_FILL_MODES, IMAGE, ImageOperation, _number, _word


def _fixed_index(index, size, fill_mode, xp):
    """Integer positions along one axis brought into [0, size) as Keras's ``map_coordinates`` brings them."""
    if fill_mode in ("constant", "nearest"):
        return xp.clip(index, 0, size - 1)
    if fill_mode == "wrap":
        return xp.mod(index, size)

    def mirrored(i, n):
        s = n - 1                   # the half-period of a triangle wave
        return xp.abs(xp.mod(i + s, 2 * s) - s) if s > 0 else xp.zeros_like(i)
    if fill_mode == "mirror":
        return mirrored(index, size)
    return xp.floor_divide(mirrored(2 * index + 1, 2 * size + 1) - 1, 2)      # reflect


def coordinate_taps(shape, coordinates, order, fill_mode, xp):
    """The sampling plan of ``map_coordinates``: [(flat index, valid mask or None, weight or None)] over all
    combinations of the interpolation nodes of each axis, in Keras's order. ``coordinates`` holds one array per
    axis of an input of ``shape`` (broadcastable to each other); integer arrays are read exactly."""
    strides = numpy.cumprod((1,) + tuple(shape[::-1]))[:-1][::-1]
    per_axis = []
    for coordinate, size in zip(coordinates, shape):
        coordinate = xp.asarray(coordinate)     # coordinates given as host arrays go where the inputs are
        if coordinate.dtype.kind in "iu":
            nodes = [(coordinate.astype(xp.int64), None)]
        elif order == 0:
            nodes = [(xp.round(coordinate).astype(xp.int64), None)]
        else:
            lower = xp.floor(coordinate)
            upper_weight = coordinate - lower
            index = lower.astype(xp.int64)
            nodes = [(index, 1 - upper_weight), (index + 1, upper_weight)]
        per_axis.append([(_fixed_index(i, size, fill_mode, xp),
                          ((i >= 0) & (i < size)) if fill_mode == "constant" else None, w) for i, w in nodes])
    taps = []
    for combination in itertools.product(*per_axis):
        flat = functools.reduce(operator.add, [int(s) * i for s, (i, _, _) in zip(strides, combination)])
        masks = [v for _, v, _ in combination if v is not None]
        weights = [w for _, _, w in combination if w is not None]
        taps.append((flat, functools.reduce(operator.and_, masks) if masks else None,
                     functools.reduce(operator.mul, weights) if weights else None))
    return taps


def sample_coordinates(inputs, coordinates, order, fill_mode, fill_value):
    """``inputs`` read at ``coordinates`` (``coordinate_taps``), of the inputs' dtype (integers rounded)."""
    xp = _xp(inputs)
    out_shape = numpy.broadcast_shapes(*[c.shape for c in coordinates])
    flat_input = inputs.reshape(-1)
    floats = [c.dtype for c in coordinates if c.dtype.kind == "f"]
    # PyTorch's promotion: integer inputs take the weights' float type, float inputs the wider of the two
    dtype = (numpy.result_type(*floats, inputs.dtype) if inputs.dtype.kind == "f" else numpy.result_type(*floats)) \
        if floats else inputs.dtype
    out = None
    for flat, valid, weight in coordinate_taps(inputs.shape, coordinates, order, fill_mode, xp):
        value = xp.take(flat_input, xp.broadcast_to(flat, out_shape))
        if valid is not None:
            value = xp.where(valid, value, xp.asarray(fill_value).astype(inputs.dtype))
        if weight is not None:
            value = weight * value.astype(dtype, copy=False)
        out = value if out is None else out + value
    if inputs.dtype.kind != "f" and out.dtype.kind == "f":
        out = xp.round(out)
    return out.astype(inputs.dtype, copy=False)


def sample_coordinates_backward(dy, shape, coordinates, order, fill_mode):
    """The adjoint of ``sample_coordinates`` in its inputs: each output gradient added back to what it read."""
    xp = _xp(dy)
    size = int(numpy.prod(shape))

    def weighted(weight, valid):
        g = dy if weight is None else dy * weight
        return g if valid is None else g * valid
    dx = scatter_taps(((xp.broadcast_to(flat, dy.shape).ravel(), weighted(weight, valid).ravel())
                       for flat, valid, weight in coordinate_taps(shape, coordinates, order, fill_mode, xp)), size, xp)
    return dx.reshape(shape).astype(dy.dtype, copy=False)


class MapCoordinates(KerasOperation):
    """``map_coordinates(inputs, coordinates, order, fill_mode, fill_value)``: order 0 (nearest) or 1 (linear)."""

    keras_module = IMAGE
    arity = 2
    casts_inputs = False
    config_keys = ("order", "fill_mode", "fill_value")

    def __init__(self, order, fill_mode="constant", fill_value=0, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if order not in (0, 1) or isinstance(order, bool):
            raise ValueError(f"map_coordinates: `order` must be 0 (nearest) or 1 (linear), got {order!r}.")
        self.order = int(order)
        self.fill_mode = _word(fill_mode, AFFINE_FILL_MODES, "fill_mode", "map_coordinates")
        self.fill_value = _number(fill_value, "fill_value", "map_coordinates")

    def output_shape_of(self, arguments, shapes):
        inputs = ImageOperation._shape_of(arguments, 0, shapes)
        coordinates = ImageOperation._shape_of(arguments, 1, shapes)
        if len(coordinates) < 2:
            raise ValueError(f"{self._where()}: coordinates must have rank >= 2 (one array per axis of the inputs), "
                             f"got shape {coordinates}.")
        if coordinates[0] != len(inputs):
            raise ValueError(f"{self._where()}: the first axis of coordinates must be the rank of the inputs, "
                             f"{len(inputs)}; got inputs of shape {inputs} and coordinates of shape {coordinates}.")
        return tuple(coordinates[1:])

    def result_dtype(self, tensors, arguments):
        return ImageOperation.result_dtype(self, tensors, arguments)

    constant_dtype = ImageOperation.constant_dtype

    def forward_function(self, inputs, coordinates):
        return self.forward_array(inputs, coordinates)

    def forward_array(self, inputs, coordinates):
        self.output_shape_of([None, None], [inputs.shape, coordinates.shape])
        return sample_coordinates(inputs, list(coordinates), self.order, self.fill_mode, self.fill_value)

    def backward(self, dy):
        return ImageOperation.backward(self, dy)

    def images_gradient(self, dy, operands, y):
        inputs, coordinates = operands
        return sample_coordinates_backward(dy, inputs.shape, list(coordinates), self.order, self.fill_mode)


OPERATIONS = {cls.__name__: cls for cls in (MapCoordinates,)}
