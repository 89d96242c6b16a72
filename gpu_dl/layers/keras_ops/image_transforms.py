"""The transforms of ``keras.ops.image``: ``affine_transform`` (``preprocessing.affine_resample``, a CUDA kernel for
CuPy float images), ``perspective_transform`` (``geometric_augmentation.perspective_resample``),
``scale_and_translate`` (``ops/resample_matrices.py``) and ``elastic_transform``, which draws its displacement
fields with ``gpu_dl.random``'s generator.
"""
from __future__ import annotations

import numbers

import numpy

from ... import backend
from ...ops import color, random_draws, resample_matrices
from ..geometric_augmentation import homographies, perspective_resample, perspective_resample_backward
from ..preprocessing import affine_resample, affine_resample_backward
from ..seed_generator import SeedGenerator, check_seed, draw_seed
from .base import KerasOperation, _float, _xp
from .image_base import AFFINE_FILL_MODES, AFFINE_INTERPOLATIONS, IMAGE, ImageOperation, _from_last, _number, \
    _to_last, _word
from .image_coordinates import sample_coordinates, sample_coordinates_backward


def _affine_matrices(transform, n, xp):
    """Keras's transforms (N, 8) or (8,) as the resampler's (N, 2, 3) inverse maps (c0 and c1 are taken as 0, as
    Keras's backends other than TensorFlow take them)."""
    t = transform if transform.ndim == 2 else transform[None]
    if t.shape[0] == 1 and n != 1:
        t = xp.broadcast_to(t, (n, t.shape[1]))
    return t[:, :6].reshape(-1, 2, 3)


class AffineTransform(ImageOperation):
    """``affine_transform``: ``preprocessing.affine_resample`` (the CUDA kernel for CuPy float images); the
    ``mirror`` fill mode, which the resampler lacks, reads through ``map_coordinates``'s plan."""

    arity = 2
    config_keys = ("interpolation", "fill_mode", "fill_value", "data_format")

    def __init__(self, interpolation="bilinear", fill_mode="constant", fill_value=0, data_format=None, name=None,
                 **kwargs):
        super().__init__(data_format=data_format, name=name, **kwargs)
        self.interpolation = _word(interpolation, AFFINE_INTERPOLATIONS, "interpolation", "affine_transform")
        self.fill_mode = _word(fill_mode, AFFINE_FILL_MODES, "fill_mode", "affine_transform")
        self.fill_value = _number(fill_value, "fill_value", "affine_transform")

    def output_shape_of(self, arguments, shapes):
        transform = self._shape_of(arguments, 1, shapes)
        if len(transform) not in (1, 2) or transform[-1] not in (None, 8):
            raise ValueError(f"{self._where()}: transform must have shape (8,) or (N, 8), got {transform}.")
        return super().output_shape_of(arguments, shapes)

    def _mirror_coordinates(self, shape, matrices, xp):
        n, h, w, c = shape
        dtype = matrices.dtype if matrices.dtype.kind == "f" else numpy.dtype(numpy.float32)
        m = matrices.astype(dtype, copy=False).reshape(n, 2, 3, 1, 1, 1)
        xs = xp.arange(w, dtype=dtype).reshape(1, 1, w, 1)
        ys = xp.arange(h, dtype=dtype).reshape(1, h, 1, 1)
        return [xp.arange(n).reshape(n, 1, 1, 1), m[:, 1, 0] * xs + m[:, 1, 1] * ys + m[:, 1, 2],
                m[:, 0, 0] * xs + m[:, 0, 1] * ys + m[:, 0, 2], xp.arange(c).reshape(1, 1, 1, c)]

    def forward_array(self, images, transform):
        self.output_shape_of([None, None], [images.shape, transform.shape])
        last, batched = _to_last(images, self._format)
        xp = _xp(last)
        matrices = _affine_matrices(transform, last.shape[0], xp)
        if matrices.shape[0] != last.shape[0]:
            raise ValueError(f"{self._where()}: {matrices.shape[0]} transforms for {last.shape[0]} images.")
        if self.fill_mode == "mirror":
            y = sample_coordinates(last, self._mirror_coordinates(last.shape, matrices, xp),
                                   AFFINE_INTERPOLATIONS.index(self.interpolation), "mirror", self.fill_value)
        else:
            y = affine_resample(last, matrices, self.fill_mode, self.interpolation, self.fill_value)
        return _from_last(y, self._format, batched)

    def images_gradient(self, dy, operands, y):
        images, transform = operands
        g, batched = _to_last(dy, self._format)
        xp = _xp(g)
        matrices = _affine_matrices(transform, g.shape[0], xp)
        if self.fill_mode == "mirror":
            dx = sample_coordinates_backward(g, g.shape, self._mirror_coordinates(g.shape, matrices, xp),
                                             AFFINE_INTERPOLATIONS.index(self.interpolation), "mirror")
        else:
            dx = affine_resample_backward(g, matrices, self.fill_mode, self.interpolation)
        return _from_last(dx, self._format, batched)


class PerspectiveTransform(ImageOperation):
    """``perspective_transform``: the homography mapping ``end_points`` onto ``start_points`` (solved on the host)
    through ``geometric_augmentation.perspective_resample``, constant fill."""

    arity = 3
    config_keys = ("interpolation", "fill_value", "data_format")

    def __init__(self, interpolation="bilinear", fill_value=0, data_format=None, name=None, **kwargs):
        super().__init__(data_format=data_format, name=name, **kwargs)
        self.interpolation = _word(interpolation, AFFINE_INTERPOLATIONS, "interpolation", "perspective_transform")
        self.fill_value = _number(fill_value, "fill_value", "perspective_transform")

    def output_shape_of(self, arguments, shapes):
        start, end = self._shape_of(arguments, 1, shapes), self._shape_of(arguments, 2, shapes)
        for what, shape in (("start_points", start), ("end_points", end)):
            if len(shape) not in (2, 3) or tuple(shape[-2:]) != (4, 2):
                raise ValueError(f"{self._where()}: {what} must have shape (4, 2) or (N, 4, 2), got {shape}.")
        if start != end:
            raise ValueError(f"{self._where()}: start_points and end_points must have the same shape, got {start} "
                             f"and {end}.")
        return super().output_shape_of(arguments, shapes)

    def _transforms(self, start, end, n, images_dtype):
        start = backend.to_numpy(start).reshape(-1, 4, 2)
        end = backend.to_numpy(end).reshape(-1, 4, 2)
        if numpy.dtype(images_dtype).kind != "f":
            # Keras's torch backend takes the points in the images' dtype: integer images truncate them
            start, end = start.astype(images_dtype), end.astype(images_dtype)
        t = homographies(start, end)
        if t.shape[0] == 1 and n != 1:
            t = numpy.repeat(t, n, axis=0)
        if t.shape[0] != n:
            raise ValueError(f"{self._where()}: {t.shape[0]} sets of points for {n} images.")
        return t

    def forward_array(self, images, start_points, end_points):
        self.output_shape_of([None] * 3, [images.shape, start_points.shape, end_points.shape])
        last, batched = _to_last(images, self._format)
        t = self._transforms(start_points, end_points, last.shape[0], last.dtype)
        dtype = last.dtype if last.dtype.kind == "f" else numpy.dtype(numpy.float32)
        y = perspective_resample(last, t.astype(dtype), self.interpolation, self.fill_value)
        return _from_last(y, self._format, batched)

    def images_gradient(self, dy, operands, y):
        images, start_points, end_points = operands
        g, batched = _to_last(dy, self._format)
        t = self._transforms(start_points, end_points, g.shape[0], images.dtype)
        return _from_last(perspective_resample_backward(g, t.astype(g.dtype), self.interpolation), self._format,
                          batched)


SCALE_AND_TRANSLATE_METHODS = {"linear": "linear", "bilinear": "linear", "trilinear": "linear", "triangle": "linear",
                               "cubic": "cubic", "bicubic": "cubic", "tricubic": "cubic", "lanczos3": "lanczos3",
                               "lanczos5": "lanczos5"}


class ScaleAndTranslate(KerasOperation):
    """``scale_and_translate(images, output_shape, scale, translation, spatial_dims, method, antialias=True)``:
    JAX's resampling of each axis of ``spatial_dims`` through its weight matrix (``ops/resample_matrices.py``).
    ``output_shape`` is a tuple argument of the call, as in Keras (None, or -1, for an axis left as it is: the
    batch axis of a functional model's tensors); ``scale`` and ``translation`` are read on the host and take no
    gradient; integer images are rounded and kept within their values' range, as Keras's torch backend does."""

    keras_module = IMAGE
    arity = 4
    casts_inputs = False
    config_keys = ("spatial_dims", "method", "antialias")

    def __init__(self, spatial_dims, method, antialias=True, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        where = "scale_and_translate"
        if not isinstance(spatial_dims, (tuple, list)) or not all(
                isinstance(d, numbers.Integral) and not isinstance(d, bool) for d in spatial_dims):
            raise ValueError(f"{where}: `spatial_dims` must be a tuple of axes, got {spatial_dims!r}.")
        self.spatial_dims = tuple(int(d) for d in spatial_dims)
        self.method = _word(method, tuple(SCALE_AND_TRANSLATE_METHODS), "method", where)
        self.antialias = bool(antialias)

    def accept_argument(self, position, value):
        if position == 1:
            return self._output_shape(value)
        return super().accept_argument(position, value)

    def _output_shape(self, value):
        if hasattr(value, "shape") and not isinstance(value, numpy.ndarray):
            value = backend.to_numpy(value)
        if not isinstance(value, (tuple, list, numpy.ndarray)) or not all(
                v is None or (isinstance(v, numbers.Integral) and not isinstance(v, bool)) for v in value):
            raise TypeError(f"scale_and_translate: `output_shape` must be a tuple of sizes, got {value!r:.80}.")
        return tuple(None if v is None or v < 0 else int(v) for v in value)

    @classmethod
    def decode_argument(cls, position, value, where):
        if position == 1:
            if isinstance(value, dict) and value.get("class_name") == "__tuple__":
                value = value.get("config", {}).get("value")
            if isinstance(value, list) and all(v is None or isinstance(v, int) for v in value):
                return tuple(value)
            raise ValueError(f"{where}: scale_and_translate's output_shape must be a list of sizes, got "
                             f"{value!r:.100}.")
        return super().decode_argument(position, value, where)

    def operands(self, arrays):
        shape = self.arguments[1]
        arguments = self.arguments
        try:
            self.arguments = arguments[:1] + [0] + arguments[2:]
            operands = super().operands(arrays)
        finally:
            self.arguments = arguments
        operands[1] = shape
        return operands

    def result_dtype(self, tensors, arguments):
        return ImageOperation.result_dtype(self, tensors, arguments)

    constant_dtype = ImageOperation.constant_dtype

    def _checked(self, shape, output_shape, scale_shape, translation_shape):
        where = self._where()
        if len(output_shape) != len(shape):
            raise ValueError(f"{where}: output_shape {output_shape} must have one size per axis of the images "
                             f"{tuple(shape)}.")
        axes = []
        for d in self.spatial_dims:
            if not -len(shape) <= d < len(shape):
                raise ValueError(f"{where}: spatial_dims {self.spatial_dims} are not axes of images of rank "
                                 f"{len(shape)}.")
            axes.append(d % len(shape))
        for what, given in (("scale", scale_shape), ("translation", translation_shape)):
            if len(given) != 1 or given[0] not in (None, len(axes)):
                raise ValueError(f"{where}: {what} must hold one number per spatial dim ({len(axes)}), got shape "
                                 f"{tuple(given)}.")
        for d, (n, m) in enumerate(zip(shape, output_shape)):
            if d in axes and m is None:
                raise ValueError(f"{where}: output_shape {output_shape} must give the size of spatial axis {d}.")
            if d not in axes and None not in (n, m) and n != m:
                raise ValueError(f"{where}: output_shape {output_shape} changes axis {d}, which is not among "
                                 f"spatial_dims {self.spatial_dims}.")
        return axes

    def output_shape_of(self, arguments, shapes):
        images = ImageOperation._shape_of(arguments, 0, shapes)
        output_shape = arguments[1]
        if output_shape is None:
            raise TypeError(f"{self._where()}: output_shape must be a tuple of sizes, not a tensor.")
        self._checked(images, output_shape, ImageOperation._shape_of(arguments, 2, shapes),
                      ImageOperation._shape_of(arguments, 3, shapes))
        return tuple(n if m is None else m for n, m in zip(images, output_shape))

    def _matrices(self, shape, output_shape, scale, translation):
        scale, translation = backend.to_numpy(scale), backend.to_numpy(translation)
        dtype = numpy.result_type(scale.dtype, translation.dtype)
        dtype = dtype if dtype.kind == "f" else numpy.dtype(numpy.float32)
        axes = self._checked(shape, output_shape, scale.shape, translation.shape)
        kernel = SCALE_AND_TRANSLATE_METHODS[self.method]
        return [(axis, resample_matrices.scale_and_translate_matrix(
            shape[axis], output_shape[axis], scale[i], translation[i], kernel, self.antialias, dtype))
            for i, axis in enumerate(axes)]

    def forward_function(self, *operands):
        return self.forward_array(*operands)

    def forward_array(self, images, output_shape, scale, translation):
        output_shape = self._output_shape(output_shape)
        xp = _xp(images)
        y = images if images.dtype.kind == "f" else images.astype(numpy.float32)
        for axis, matrix in self._matrices(images.shape, output_shape, scale, translation):
            y = resample_matrices.apply_axis(y, axis, matrix)
        if images.dtype.kind != "f":
            y = xp.clip(xp.round(y), images.min(), images.max()).astype(images.dtype)
        return y

    def backward(self, dy):
        operands, y = self.saved()
        images, output_shape, scale, translation = operands
        count = sum(a is None for a in self.arguments)
        if images.dtype.kind != "f":
            return None if count == 1 else [None] * count
        g = dy
        for axis, matrix in reversed(self._matrices(images.shape, self._output_shape(output_shape), scale,
                                                    translation)):
            g = resample_matrices.apply_axis_backward(g, axis, matrix)
        gradients = [g, None, None, None]
        tensor_gradients = [grad for grad, a in zip(gradients, self.arguments) if a is None]
        return tensor_gradients if len(tensor_gradients) > 1 else tensor_gradients[0]


def elastic_coordinates(noise, alpha, sigma, shape):
    """The ``map_coordinates`` coordinates (image, row, column, channel) of an elastic transform of channels_last
    images of ``shape`` (N, H, W, C): ``noise`` (2N, H, W, 1) holds the standard normal draws of the column
    displacements (the first N) and then of the row displacements, each times ``sigma``, blurred by Keras's
    Gaussian of ``sigma`` (size ``int(6 sigma) | 1``, zero padding) and times ``alpha``, in ``noise``'s dtype."""
    xp = _xp(noise)
    n, h, w, c = shape
    dtype = noise.dtype
    sigma, alpha = dtype.type(sigma), dtype.type(alpha)
    # the Gaussian is the outer product of one normalised 1-D kernel with itself: blurred as two 1-D passes
    taps = color.gaussian_kernel(int(dtype.type(6) * sigma) | 1, sigma, sigma, dtype).sum(axis=1)
    field = color.correlate_same(color.correlate_same(noise * sigma, taps[:, None]), taps[None, :])[..., 0]
    return [xp.arange(n).reshape(n, 1, 1, 1),
            (xp.arange(h, dtype=dtype).reshape(1, h, 1) + alpha * field[n:])[..., None],
            (xp.arange(w, dtype=dtype).reshape(1, 1, w) + alpha * field[:n])[..., None],
            xp.arange(c).reshape(1, 1, 1, c)]


class ElasticTransform(ImageOperation):
    """``elastic_transform``: each image read at its pixel positions moved by ``alpha`` times a displacement field,
    a standard normal draw times ``sigma`` blurred by a Gaussian of ``sigma`` (size ``int(6 sigma) | 1``), one
    field per axis and image, as Keras's torch backend computes it; then ``map_coordinates``'s sampling in
    ``fill_mode``. The draw is ``gpu_dl.random.normal``'s for ``seed`` (an int: the same field at every call; a
    SeedGenerator or None: a new one), so its values are gpu_dl's (Keras's torch backend draws from torch's global
    generator whatever the seed). Float images only, as in Keras; the gradient goes to the images."""

    config_keys = ("alpha", "sigma", "interpolation", "fill_mode", "fill_value", "seed", "data_format")

    def __init__(self, alpha=20.0, sigma=5.0, interpolation="bilinear", fill_mode="reflect", fill_value=0.0,
                 seed=None, data_format=None, name=None, **kwargs):
        super().__init__(data_format=data_format, name=name, **kwargs)
        where = "elastic_transform"
        self.alpha = _number(alpha, "alpha", where)
        self.sigma = _number(sigma, "sigma", where)
        if self.sigma <= 0:
            raise ValueError(f"{where}: `sigma` must be positive, got {sigma!r}.")
        self.interpolation = _word(interpolation, AFFINE_INTERPOLATIONS, "interpolation", where)
        self.fill_mode = _word(fill_mode, AFFINE_FILL_MODES, "fill_mode", where)
        self.fill_value = _number(fill_value, "fill_value", where)
        self.seed = check_seed(seed, where)
        self._coordinates = None

    def get_config(self):
        if isinstance(self.seed, SeedGenerator):
            raise ValueError(f"{self._where()}: a SeedGenerator seed cannot be written in a model config; give an "
                             "int seed (the same field at every call) or None.")
        return super().get_config()

    def forward_array(self, images):
        self._check_rank(images.shape)
        if not _float(images.dtype):
            raise TypeError(f"{self._where()}: images must be of a float dtype, got {images.dtype}.")
        last, batched = _to_last(images, self._format)
        xp = _xp(last)
        n, h, w, c = last.shape
        noise = random_draws.normal(xp, draw_seed(self.seed), (2 * n, h, w, 1), 0.0, 1.0, last.dtype)
        self._coordinates = elastic_coordinates(noise, self.alpha, self.sigma, last.shape)
        y = sample_coordinates(last, self._coordinates, AFFINE_INTERPOLATIONS.index(self.interpolation),
                               self.fill_mode, self.fill_value)
        return _from_last(y, self._format, batched)

    def images_gradient(self, dy, operands, y):
        g, batched = _to_last(dy, self._format)
        dx = sample_coordinates_backward(g, g.shape, self._coordinates, AFFINE_INTERPOLATIONS.index(
            self.interpolation), self.fill_mode)
        return _from_last(dx, self._format, batched)


OPERATIONS = {cls.__name__: cls for cls in (AffineTransform, PerspectiveTransform, ScaleAndTranslate, ElasticTransform)}
