"""Keras 3's image preprocessing layers: Rescaling, RandomFlip, RandomTranslation, RandomRotation, RandomZoom.

Rescaling always applies (``x * scale + offset``). The random layers change
their input only when called with ``training=True`` — or with ``training``
left out, as Keras does when such a layer is called directly — and pass it
through unchanged at inference (``training=False``, which is what a model's
``predict``/``evaluate`` use). Each draws its random numbers on the host, from
the seed pairs of its own ``SeedGenerator`` (Keras's ``generator``), so one
seed gives one sequence of augmentations on either backend; the images never
leave the device.

Translation, rotation and zoom are affine maps. All three go through one
resampler, ``affine_resample``: for each output pixel (x, y) of image n its
2x3 matrix gives the input position ``(x_in, y_in) = M_n @ (x, y, 1)``, read
by bilinear or nearest interpolation; neighbours outside the image follow
``fill_mode`` exactly as Keras 3 defines it:

- ``reflect``  (d c b a | a b c d | d c b a), mirrored about the edge of the last pixel;
- ``wrap``     (a b c d | a b c d | a b c d);
- ``nearest``  (a a a a | a b c d | d d d d);
- ``constant`` (k k k k | a b c d | k k k k) with k = ``fill_value``, per neighbour.

The matrices are made on the host in float32, each step rounded where Keras
3.15 rounds it (its draws in float32, RandomRotation's angle in radians and
the centre's offsets, RandomZoom's offsets), and the sampling positions are
float32 as Keras's are, for float64 images too; so with the same draws the
outputs are Keras's to the bit. The one
exception: RandomRotation's cos and sin are the correctly rounded float32
values, and PyTorch's float32 cos and sin, which Keras's torch backend uses,
are one unit in the last place off for a few angles in a hundred.

It is written with array operations only, so it runs unchanged on NumPy and
CuPy arrays. CuPy float32/float64 images go to the kernel of
``kernels/augment.cu`` instead (``gpu_dl.ops.augment_kernels``), which
repeats this path's arithmetic in one pass: the array path is its reference
and serves NumPy and every other dtype. The adjoint,
``affine_resample_backward``, stays on the array path on both backends: it
scatters the output gradient back with the same interpolation weights (these
layers sit first in a model, whose input gradient is not needed).

Called on data, the random image layers also take Keras's dict inputs, whose
bounding boxes and segmentation masks follow the images' draw
(``gpu_dl.layers.image_dicts``; boxes in the layer's ``bounding_box_format``).
"""
from __future__ import annotations

import math
import numbers

import numpy

from ..backend import array_module
from ..ops.scattering import scatter_pixel_taps
from .base import Layer
from .image_dicts import call_on_dict, clip_boxes, convert, per_image
from .seed_generator import SeedGenerator
from .spatial import SpatialLayer
from .symbolic import any_symbolic

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("bilinear", "nearest")
FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")


# --------------------------------------------------------------- the resampler
def _check_words(fill_mode, interpolation, where="affine_resample"):
    if fill_mode not in FILL_MODES:
        raise ValueError(f"{where}: fill_mode must be one of {', '.join(map(repr, FILL_MODES))}, got {fill_mode!r}.")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"{where}: interpolation must be one of {', '.join(map(repr, INTERPOLATIONS))}, "
                         f"got {interpolation!r}.")


def _fix_index(index, size, fill_mode, xp):
    """Integer positions along one axis mapped into [0, size) by ``fill_mode``, and (constant mode only)
    a mask of the positions that were inside."""
    if fill_mode == "constant":
        return xp.clip(index, 0, size - 1), (index >= 0) & (index < size)
    if fill_mode == "nearest":
        return xp.clip(index, 0, size - 1), None
    if fill_mode == "wrap":
        return xp.mod(index, size), None
    # reflect: period 2*size, the second half read backwards (the edge pixel repeats).
    k = xp.mod(index, 2 * size)
    return xp.where(k < size, k, 2 * size - 1 - k), None


def _axis_taps(coord, size, fill_mode, interpolation, xp):
    """For one axis: [(index, valid, weight)], one entry per interpolation node (weight None means 1)."""
    if interpolation == "nearest":
        nodes = [(xp.round(coord).astype(xp.int64), None)]
    else:
        lower = xp.floor(coord)
        upper_weight = coord - lower
        index = lower.astype(xp.int64)
        nodes = [(index, 1 - upper_weight), (index + 1, upper_weight)]
    return [_fix_index(index, size, fill_mode, xp) + (weight,) for index, weight in nodes]


def _as_matrices(matrices, n, xp, dtype):
    m = xp.asarray(matrices, dtype=dtype)
    if m.shape == (2, 3):
        m = xp.broadcast_to(m, (n, 2, 3))
    if m.shape != (n, 2, 3):
        raise ValueError(f"affine_resample: matrices must have shape ({n}, 2, 3) (one 2x3 matrix per image) "
                         f"or (2, 3), got {tuple(m.shape)}.")
    return m


def _taps(shape, matrices, fill_mode, interpolation, xp, dtype):
    """The sampling plan of a batch: [(flat pixel index (N, H, W), valid mask or None, weight or None)]."""
    n, h, w = shape[:3]
    m = _as_matrices(matrices, n, xp, dtype)
    xs = xp.arange(w, dtype=dtype).reshape(1, 1, w)
    ys = xp.arange(h, dtype=dtype).reshape(1, h, 1)

    def coef(i, j):
        return m[:, i, j].reshape(n, 1, 1)

    x_in = coef(0, 0) * xs + coef(0, 1) * ys + coef(0, 2)
    y_in = coef(1, 0) * xs + coef(1, 1) * ys + coef(1, 2)
    image_start = (xp.arange(n, dtype=xp.int64) * h).reshape(n, 1, 1)
    taps = []
    for iy, vy, wy in _axis_taps(y_in, h, fill_mode, interpolation, xp):
        row = (image_start + iy) * w
        for ix, vx, wx in _axis_taps(x_in, w, fill_mode, interpolation, xp):
            valid = None if vy is None else vy & vx
            weight = None if wy is None else wy * wx
            taps.append((row + ix, valid, weight))
    return taps


def _compute_dtype(dtype):
    dtype = numpy.dtype(dtype)
    return dtype if dtype.kind == "f" else numpy.dtype(numpy.float32)


def _position_dtype(matrices, dtype):
    """The dtype of the sampling positions and weights: float32 for float32 matrices, as Keras computes them in
    its transform's dtype (its layers' transforms are float32 whatever the images' dtype), else ``dtype``, the
    images' compute dtype."""
    return numpy.dtype(numpy.float32) if getattr(matrices, "dtype", None) == numpy.float32 else dtype


def affine_resample(images, matrices, fill_mode="reflect", interpolation="bilinear", fill_value=0.0):
    """Resample a batch of channels_last images (N, H, W, C) through one inverse affine map per image.

    ``matrices`` (N, 2, 3), or one (2, 3) for all: output pixel (x = column, y = row) of image n reads the
    input at ``x_in = M[n,0,0] x + M[n,0,1] y + M[n,0,2]``, ``y_in = M[n,1,0] x + M[n,1,1] y + M[n,1,2]``
    (Keras's transform ``[a0, a1, a2, b0, b1, b2, 0, 0]`` is ``M = [[a0, a1, a2], [b0, b1, b2]]``). The
    positions and weights are computed in float32 where ``matrices`` is a float32 array (as Keras computes them
    in its transform's dtype, also for float64 images), else in the images' dtype (float32 for integer images).
    Returns an array of the input's type, module and dtype (integer images are rounded).
    """
    _check_words(fill_mode, interpolation)
    xp = array_module(images)
    if images.ndim != 4:
        raise ValueError(f"affine_resample: images must have rank 4 (N, H, W, C), got shape {tuple(images.shape)}.")
    n, h, w, c = images.shape
    dtype = _compute_dtype(images.dtype)
    positions = _position_dtype(matrices, dtype)
    if (xp is not numpy and images.dtype in (numpy.float32, numpy.float64) and positions == images.dtype
            and _is_number(fill_value)):
        # CuPy float32/float64: kernels/augment.cu, the same arithmetic in one pass (its positions are in the
        # images' dtype; float64 images with float32 matrices take the array path).
        from ..ops.augment_kernels import affine_resample_cuda
        matrices = _as_matrices(matrices, n, xp, dtype)
        return affine_resample_cuda(xp.ascontiguousarray(images), matrices, fill_mode, interpolation, fill_value)
    source = images.astype(dtype, copy=False).reshape(n * h * w, c)
    fill = xp.asarray(fill_value, dtype=dtype)
    out = None
    for flat, valid, weight in _taps(images.shape, matrices, fill_mode, interpolation, xp, positions):
        value = xp.take(source, flat, axis=0)
        if valid is not None:
            value = xp.where(valid[..., None], value, fill)
        if weight is not None:
            value = value * weight[..., None]
        out = value if out is None else out + value
    if numpy.dtype(images.dtype).kind != "f":
        out = xp.round(out)
    return out.astype(images.dtype, copy=False)


def affine_resample_backward(dy, matrices, fill_mode="reflect", interpolation="bilinear"):
    """The gradient of ``affine_resample`` with respect to its images: the adjoint of the same sampling,
    each output gradient added back to the input pixels it was read from, with the same weights
    (``fill_value`` depends on no input, so it drops out)."""
    _check_words(fill_mode, interpolation, "affine_resample_backward")
    return scatter_pixel_taps(dy, _taps(dy.shape, matrices, fill_mode, interpolation, array_module(dy),
                                        _position_dtype(matrices, dy.dtype)))


# -------------------------------------------------------------------- helpers
def _where(layer):
    return f"{type(layer).__name__} layer '{layer.name}'"


def _is_number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def _factor_range(layer, factor, what, low, high, low_open=False):
    """Keras's reading of a factor: a number f means (-|f|, |f|), a pair means (min, max); every value must
    lie in [low, high] (or (low, high] with ``low_open``)."""
    interval = f"{'(' if low_open else '['}{low}, {high}]"
    message = (f"{_where(layer)}: {what} must be a number or a pair (lower, upper) of numbers in {interval}, "
               f"got {factor!r}.")
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or not all(_is_number(v) for v in factor):
            raise ValueError(message)
        values = [float(v) for v in factor]
    elif _is_number(factor):
        values = [float(factor)]
    else:
        raise ValueError(message)
    for v in values:
        if not math.isfinite(v) or v > high or v < low or (low_open and v == low):
            raise ValueError(message)
    if len(values) == 1:
        return -abs(values[0]), abs(values[0])
    return tuple(sorted(values))


def _fill_words(layer, fill_mode, interpolation, fill_value):
    if fill_mode not in FILL_MODES:
        raise ValueError(f"{_where(layer)}: fill_mode must be one of {', '.join(map(repr, FILL_MODES))}, "
                         f"got {fill_mode!r}.")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"{_where(layer)}: interpolation must be one of {', '.join(map(repr, INTERPOLATIONS))}, "
                         f"got {interpolation!r}.")
    if not _is_number(fill_value):
        raise ValueError(f"{_where(layer)}: fill_value must be a number, got {fill_value!r}.")
    return fill_mode, interpolation, float(fill_value)


# --------------------------------------------------------------------- layers
class Rescaling(Layer):
    """``x * scale + offset``, in training and at inference (scale/offset: numbers, or arrays that
    broadcast against the input, e.g. one value per channel)."""

    supports_masking = True       # elementwise: the mask of padded steps passes on, as in Keras

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        for what, v in (("scale", scale), ("offset", offset)):
            try:
                a = numpy.asarray(v, dtype=numpy.float64)
            except (TypeError, ValueError):
                raise ValueError(f"{_where(self)}: {what} must be a number or an array of numbers, "
                                 f"got {v!r}.") from None
            if not numpy.all(numpy.isfinite(a)):
                raise ValueError(f"{_where(self)}: {what} must be finite, got {v!r}.")
        self.scale = scale
        self.offset = offset

    def check_input_shape(self, shape):
        # As in Keras, a built Rescaling takes any input that its scale and offset broadcast against: one
        # image after a batch, other sizes, other ranks. Only the axes an array scale/offset spans must fit.
        shape = tuple(shape)
        for what, v in (("scale", self.scale), ("offset", self.offset)):
            held = numpy.shape(v)
            fits = len(held) <= len(shape) and all(
                d == 1 or s is None or s == d for d, s in zip(held[::-1], shape[::-1]))
            if not fits:
                raise ValueError(f"{_where(self)}: {what} of shape {held} does not broadcast against the input "
                                 f"shape {shape}.")

    def _value(self, v, x):
        return array_module(x).asarray(v, dtype=x.dtype)

    def call(self, x, training=False):
        self._saved = (x.dtype,) if training else None
        return x * self._value(self.scale, x) + self._value(self.offset, x)

    def backward(self, dy):
        if not self.input_gradient_wanted:
            return None
        return dy * self._value(self.scale, dy)

    def get_config(self):
        def plain(v):
            return v.tolist() if isinstance(v, numpy.ndarray) else v
        return {**super().get_config(), "scale": plain(self.scale), "offset": plain(self.offset)}


class _RandomImageLayer(SpatialLayer):
    """What the random image layers share: training switch, seed, rank-3 (one image) inputs, layouts.

    As Keras's, a layer that draws holds a ``SeedGenerator`` of its ``seed`` as ``generator`` (its state is
    among the layer's ``variables``, not its weights); ``host_rng()`` is a NumPy generator started from the
    generator's next seed pair, so each call draws afresh and one seed gives one sequence of draws. Where a
    layer follows Keras's draws, each of Keras's ``keras.random`` calls is one ``host_rng()`` asked what
    Keras's NumPy backend asks of its generator, so on either backend the values are the ones Keras's NumPy
    backend draws and the generator moves as Keras's.
    """

    # Whether the layer draws (Keras's counterpart holds a SeedGenerator); the deterministic ones clear it.
    draws = True
    call_first_argument = "data"        # Keras's image layers' call(data, training=True)
    # How many seed pairs Keras's layer takes in one training call (RandAugment and AugMix reserve that many
    # for each op they draw), and in one call outside training, where some of Keras's layers draw all the same.
    draws_per_call = 1
    pairs_outside_training = 0
    # Keras's dict inputs (gpu_dl.layers.image_dicts): None refuses them; "unchanged" passes the boxes and masks
    # through; "transformed" moves them with the images' draw through dict_boxes and dict_masks.
    dict_entries = None

    def __init__(self, seed=None, data_format=None, bounding_box_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.seed = seed
        self.bounding_box_format = bounding_box_format
        if self.draws:
            try:
                self.generator = SeedGenerator(seed)
            except ValueError as e:
                raise ValueError(f"{_where(self)}: {e}") from None
        self._unbatched = False

    def host_rng(self):
        """A NumPy generator for the draws of one call, on the host (the images stay on their device)."""
        return numpy.random.default_rng(numpy.array(self.generator.next(), dtype=numpy.uint32))

    def build(self, input_shape):
        self.check_rank(input_shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def __call__(self, x, training=None, mask=None):
        # As in Keras, a direct call without ``training`` augments; models pass training explicitly.
        # Images carry no mask of padded steps: ``mask`` is taken only to share the layers' call.
        if isinstance(x, dict):
            return call_on_dict(self, x, training)
        if any_symbolic(x):
            return self.symbolic_call(x, training=training, mask=mask)
        training = True if training is None else bool(training)
        if getattr(x, "ndim", None) == 3:
            y = super().__call__(x[None], training=training)
            self._unbatched = True
            return y[0]
        self._unbatched = False
        return super().__call__(x, training=training)

    def backward(self, dy):
        if self._unbatched and dy.ndim == 3:
            dx = self._backward(dy[None])
            return None if dx is None else dx[0]
        return self._backward(dy)

    def call(self, x, training=False):
        if not training:
            for _ in range(self.pairs_outside_training):    # taken, as Keras draws them, but not used
                self.generator.next()
            self._saved = None
            return x
        x = self.to_last(x)
        y, saved = self._augment(x)
        self._saved = saved
        return self.from_last(y)

    def dict_boxes(self, boxes, labels, height, width, saved):
        """(B, N, 4) boxes in ``bounding_box_format`` and their labels moved with the draw ``saved`` of images
        of height x width (gpu_dl.layers.image_dicts)."""
        raise NotImplementedError

    def dict_masks(self, masks, saved):
        """Channels_last (B, H, W, C) segmentation masks moved with the draw ``saved``."""
        raise NotImplementedError

    def dict_labels(self, labels, saved):
        """The batch's labels (B, ...) after the draw ``saved``: unchanged unless the layer mixes images."""
        return labels

    def get_config(self):
        config = {**super().get_config(), "seed": self.seed}
        if self.bounding_box_format is not None:        # as Keras writes it: only when set
            config["bounding_box_format"] = self.bounding_box_format
        return config


class RandomFlip(_RandomImageLayer):
    """Flips each image left-right and/or top-bottom with probability 1/2 (``horizontal_and_vertical``
    flips both ways or neither, as Keras does); its backward flips the gradient back."""

    def __init__(self, mode="horizontal_and_vertical", seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if mode not in FLIP_MODES:
            raise ValueError(f"{_where(self)}: mode must be one of {', '.join(map(repr, FLIP_MODES))}, got {mode!r}.")
        self.mode = mode

    dict_entries = "transformed"

    def _flip(self, x, flips):
        xp = array_module(x)
        mask = xp.asarray(flips).reshape(-1, 1, 1, 1)
        if self.mode in ("horizontal", "horizontal_and_vertical"):
            x = xp.where(mask, x[:, :, ::-1, :], x)
        if self.mode in ("vertical", "horizontal_and_vertical"):
            x = xp.where(mask, x[:, ::-1, :, :], x)
        return x

    def _augment(self, x):
        flips = self.host_rng().random(x.shape[0]) <= 0.5
        return self._flip(x, flips), (flips,)

    def _backward(self, dy):
        (flips,) = self.saved()
        if not self.input_gradient_wanted:
            return None
        return self.from_last(self._flip(self.to_last(dy), flips))

    def dict_masks(self, masks, saved):
        return self._flip(masks, saved[0])

    def dict_boxes(self, boxes, labels, height, width, saved):
        # Keras's steps: to rel_xyxy, mirror the flipped images' boxes, clip as xyxy boxes of the image's size
        # (which only marks the boxes left with no area), back to the layer's format.
        xp = array_module(boxes)
        flips = xp.asarray(saved[0]).reshape(-1, 1, 1)
        b = convert(boxes, self.bounding_box_format, "rel_xyxy", height, width)
        if self.mode in ("horizontal", "horizontal_and_vertical"):
            b = xp.where(flips, xp.stack([1 - b[..., 2], b[..., 1], 1 - b[..., 0], b[..., 3]], axis=-1), b)
        if self.mode in ("vertical", "horizontal_and_vertical"):
            b = xp.where(flips, xp.stack([b[..., 0], 1 - b[..., 3], b[..., 2], 1 - b[..., 1]], axis=-1), b)
        b, labels = clip_boxes(b, labels, height, width)
        return convert(b, "rel_xyxy", self.bounding_box_format, height, width), labels

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


class _AffineLayer(_RandomImageLayer):
    """A random affine resampling of each image (translation, rotation, zoom)."""

    supports_jit = False        # as Keras's layer (Layer.supports_jit)

    def __init__(self, fill_mode, interpolation, seed, fill_value, data_format, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.fill_mode, self.interpolation, self.fill_value = _fill_words(self, fill_mode, interpolation, fill_value)

    dict_entries = "transformed"

    def dict_masks(self, masks, saved):
        # Keras resamples the masks as the images, with nearest interpolation.
        return affine_resample(masks, saved[0], self.fill_mode, "nearest", self.fill_value)

    def dict_boxes(self, boxes, labels, height, width, saved):
        xyxy = convert(boxes, self.bounding_box_format, "xyxy", height, width)
        xyxy, labels = clip_boxes(self._move_xyxy(xyxy, height, width, saved[0]), labels, height, width)
        return convert(xyxy, "xyxy", self.bounding_box_format, height, width), labels

    def _move_xyxy(self, boxes, height, width, matrices):
        """(B, N, 4) xyxy boxes of the input images moved as the images were by ``matrices``."""
        raise NotImplementedError

    def _matrices(self, n, h, w):
        raise NotImplementedError

    def _augment(self, x):
        n, h, w, _ = x.shape
        matrices = self._matrices(n, h, w)
        y = affine_resample(x, matrices, self.fill_mode, self.interpolation, self.fill_value)
        return y, (matrices,)

    def _backward(self, dy):
        (matrices,) = self.saved()
        if not self.input_gradient_wanted:
            return None
        dy = self.to_last(dy)
        return self.from_last(affine_resample_backward(dy, matrices, self.fill_mode, self.interpolation))

    def get_config(self):
        return {**super().get_config(), "fill_mode": self.fill_mode, "interpolation": self.interpolation,
                "fill_value": self.fill_value}


class RandomTranslation(_AffineLayer):
    """Shifts each image by a random fraction of its height (``height_factor``; positive: down) and width
    (``width_factor``; positive: right), each a number f (range [-f, f]) or a pair in [-1, 1]."""

    def __init__(self, height_factor, width_factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor = height_factor
        self.width_factor = width_factor
        self.height_range = _factor_range(self, height_factor, "height_factor", -1.0, 1.0)
        self.width_range = _factor_range(self, width_factor, "width_factor", -1.0, 1.0)

    draws_per_call = 2

    def _matrices(self, n, h, w):
        # Keras's two draws, float32: the shifts down and right as fractions, times the height and width.
        dy = self.host_rng().uniform(size=(n, 1), low=self.height_range[0],
                                     high=self.height_range[1]).astype(numpy.float32)[:, 0] * h
        dx = self.host_rng().uniform(size=(n, 1), low=self.width_range[0],
                                     high=self.width_range[1]).astype(numpy.float32)[:, 0] * w
        m = numpy.zeros((n, 2, 3), dtype=numpy.float32)       # Keras's are float32 whatever the images' dtype
        m[:, 0, 0] = m[:, 1, 1] = 1.0
        m[:, 0, 2] = -dx
        m[:, 1, 2] = -dy
        return m

    def _move_xyxy(self, boxes, height, width, matrices):
        # Keras moves the boxes by minus the matrix's offsets (the shifts right and down), in float32.
        dx, dy = per_image(matrices[:, 0, 2], boxes), per_image(matrices[:, 1, 2], boxes)
        return boxes - array_module(boxes).concatenate([dx, dy, dx, dy], axis=-1)

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor, "width_factor": self.width_factor}


class RandomRotation(_AffineLayer):
    """Rotates each image about its centre by a random angle, ``factor`` a fraction of a full turn 2*pi:
    a number f (range [-f, f]) or a pair in [-1, 1]; positive angles turn counter-clockwise."""

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0,
                 data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.factor = _factor_range(self, factor, "factor", -1.0, 1.0)

    def _matrices(self, n, h, w):
        # Keras's float32 arithmetic, each step rounded where Keras rounds it: the angle drawn in degrees
        # (float32), times pi/180 (float32), and the centre's offsets (cx - cx cos) + cy sin and
        # (cy - cx sin) - cy cos. cos and sin are float64's rounded to float32, the correctly rounded values
        # (PyTorch's float32 cos and sin are within one unit in the last place of them).
        f32 = numpy.float32
        lower, upper = self.factor
        degrees = self.host_rng().uniform(lower * 360.0, upper * 360.0, size=n).astype(f32)
        self._degrees = degrees                 # the boxes' affine map takes the angle itself, as Keras's does
        angle = (degrees * f32(math.pi / 180.0)).astype(numpy.float64)
        cos, sin = numpy.cos(angle).astype(f32), numpy.sin(angle).astype(f32)
        cx, cy = f32(0.5) * (f32(w) - f32(1)), f32(0.5) * (f32(h) - f32(1))
        m = numpy.empty((n, 2, 3), dtype=f32)
        m[:, 0, 0], m[:, 0, 1] = cos, -sin
        m[:, 1, 0], m[:, 1, 1] = sin, cos
        m[:, 0, 2] = (cx - cx * cos) - cy * -sin
        m[:, 1, 2] = (cy - cx * sin) - cy * cos
        return m

    def _move_xyxy(self, boxes, height, width, matrices):
        # Keras's affine_transform of the drawn angle (the hull of the turned corners). Keras 3.15 reads the boxes
        # as xyxy whatever the layer's bounding_box_format; here they are in xyxy by then, the same for "xyxy".
        from ..utils.bounding_boxes import affine_transform
        xp = array_module(boxes)
        n = boxes.shape[0]
        zeros, ones = xp.zeros(n, dtype=numpy.float32), xp.ones(n, dtype=numpy.float32)
        angle = xp.asarray(self._degrees, dtype=numpy.float32)
        return affine_transform(boxes, angle, zeros, zeros, ones, zeros, zeros, height, width)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


class RandomZoom(_AffineLayer):
    """Zooms each image about its centre: the sampled region is (1 + f) times the image along each axis, f
    drawn from ``height_factor`` (and ``width_factor``; None keeps the aspect ratio), each a number or a
    pair in (-1, 1]. Negative values zoom in, positive values zoom out."""

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode, interpolation, seed, fill_value, data_format, **kwargs)
        self.height_factor = height_factor
        self.width_factor = width_factor
        self.height_range = _factor_range(self, height_factor, "height_factor", -1.0, 1.0, low_open=True)
        self.width_range = (None if width_factor is None
                            else _factor_range(self, width_factor, "width_factor", -1.0, 1.0, low_open=True))

    @property
    def draws_per_call(self):
        """Keras's layer draws the height zooms, then (with a width_factor) the width zooms from a second seed
        pair."""
        return 1 if self.width_range is None else 2

    def _matrices(self, n, h, w):
        # Keras's float32 zooms and offsets ((size - 1) / 2) (1 - z), rounded as Keras rounds them.
        f32 = numpy.float32
        zy = self.host_rng().uniform(1.0 + self.height_range[0], 1.0 + self.height_range[1], size=n).astype(f32)
        zx = zy if self.width_range is None else self.host_rng().uniform(
            1.0 + self.width_range[0], 1.0 + self.width_range[1], size=n).astype(f32)
        m = numpy.zeros((n, 2, 3), dtype=f32)
        m[:, 0, 0] = zx
        m[:, 1, 1] = zy
        m[:, 0, 2] = ((f32(w) - f32(1)) / f32(2)) * (f32(1) - zx)
        m[:, 1, 2] = ((f32(h) - f32(1)) / f32(2)) * (f32(1) - zy)
        return m

    def dict_boxes(self, boxes, labels, height, width, saved):
        # Keras's steps: the window of the input the output shows, from (0, 0) to (width, height) mapped by the
        # matrix; the boxes clipped to it and taken relative to it; clipped to [0, 1]; then scaled to the image.
        m = saved[0]
        start_x, start_y = per_image(m[:, 0, 2], boxes), per_image(m[:, 1, 2], boxes)
        end_x = per_image(m[:, 0, 0] * numpy.float32(width) + m[:, 0, 2], boxes)
        end_y = per_image(m[:, 1, 1] * numpy.float32(height) + m[:, 1, 2], boxes)
        xp = array_module(boxes)
        b = convert(boxes, self.bounding_box_format, "xyxy", height, width)
        x1, x2 = (xp.minimum(xp.maximum(b[..., i:i + 1], start_x), end_x) - start_x for i in (0, 2))
        y1, y2 = (xp.minimum(xp.maximum(b[..., i:i + 1], start_y), end_y) - start_y for i in (1, 3))
        b = convert(xp.concatenate([x1, y1, x2, y2], axis=-1), "xyxy", "rel_xyxy", end_y - start_y, end_x - start_x)
        b, labels = clip_boxes(b, labels, None, None, "rel_xyxy")
        return convert(b, "rel_xyxy", self.bounding_box_format, height, width), labels

    def get_config(self):
        return {**super().get_config(), "height_factor": self.height_factor, "width_factor": self.width_factor}
