"""The filters of ``keras.ops.image``: ``gaussian_blur`` (the correlation of ``ops/color.py``),
``sobel_edges`` and ``ssim``.
"""
from __future__ import annotations

import numpy

from ...ops import color
from .base import _float, _xp
from .image_base import ImageOperation, _count, _from_last, _number, _to_last, _tuple


SOBEL_X = numpy.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
SOBEL_Y = SOBEL_X.T.copy()


class GaussianBlur(ImageOperation):
    """``gaussian_blur``: each channel correlated with Keras's Gaussian (rows weighted by ``sigma[1]``, columns by
    ``sigma[0]``), zero padding keeping the size (``ops/color.py``); square odd kernels, the ones for which Keras's
    torch backend keeps the images' size."""

    config_keys = ("kernel_size", "sigma", "data_format")

    def __init__(self, kernel_size=(3, 3), sigma=(1.0, 1.0), data_format=None, name=None, **kwargs):
        super().__init__(data_format=data_format, name=name, **kwargs)
        where = "gaussian_blur"
        sizes = _tuple(kernel_size, 2, "kernel_size", where)
        if sizes[0] != sizes[1] or sizes[0] % 2 == 0:
            raise ValueError(f"{where}: `kernel_size` must be two equal odd integers, got {kernel_size!r}.")
        if not isinstance(sigma, (tuple, list)) or len(sigma) != 2:
            raise ValueError(f"{where}: `sigma` must be two numbers (height, width), got {sigma!r}.")
        for s in sigma:
            if _number(s, "sigma", where) <= 0:
                raise ValueError(f"{where}: `sigma` must be positive, got {sigma!r}.")
        self.kernel_size = tuple(kernel_size) if isinstance(kernel_size, (tuple, list)) else kernel_size
        self.sigma = tuple(_number(s, "sigma", where) for s in sigma)

    def _kernel(self, dtype):
        size = _tuple(self.kernel_size, 2, "kernel_size", "gaussian_blur")[0]
        dtype = dtype if numpy.dtype(dtype).kind == "f" else numpy.float32
        # Keras's sigma is a float32 tensor, promoted with the images' dtype
        return color.gaussian_kernel(size, numpy.float32(self.sigma[0]), numpy.float32(self.sigma[1]), dtype)

    def forward_array(self, images):
        self._check_rank(images.shape)
        if not _float(images.dtype):
            raise TypeError(f"{self._where()}: images must be of a float dtype, got {images.dtype}.")
        last, batched = _to_last(images, self._format)
        return _from_last(color.correlate_same(last, self._kernel(last.dtype)), self._format, batched)

    def images_gradient(self, dy, operands, y):
        g, batched = _to_last(dy, self._format)
        return _from_last(color.correlate_same_backward(g, self._kernel(g.dtype)), self._format, batched)


class SobelEdges(ImageOperation):
    """``sobel_edges``: (N, H, W, C, 2), the vertical then the horizontal Sobel response of each channel (zero
    padding); channels_first gives (N, C, H, W, 2)."""

    ranks = (4,)

    def image_shape(self, shape):
        return tuple(shape) + (2,)

    def forward_array(self, images):
        self._check_rank(images.shape)
        if not _float(images.dtype):
            raise TypeError(f"{self._where()}: images must be of a float dtype, got {images.dtype}.")
        last, _ = _to_last(images, self._format)
        xp = _xp(last)
        edges = xp.stack([color.correlate_same(last, SOBEL_Y), color.correlate_same(last, SOBEL_X)], axis=-1)
        return xp.ascontiguousarray(edges if self._format == "channels_last" else xp.moveaxis(edges, 3, 1))

    def images_gradient(self, dy, operands, y):
        xp = _xp(dy)
        g = dy if self._format == "channels_last" else xp.moveaxis(dy, 1, 3)
        dx = color.correlate_same_backward(xp.ascontiguousarray(g[..., 0]), SOBEL_Y) + \
            color.correlate_same_backward(xp.ascontiguousarray(g[..., 1]), SOBEL_X)
        return xp.ascontiguousarray(dx if self._format == "channels_last" else xp.moveaxis(dx, -1, 1))


def _valid_blur(x, taps):
    """(M, H, W) planes correlated with the separable kernel ``outer(taps, taps)``, valid positions only."""
    k = len(taps)
    h, w = x.shape[1] - k + 1, x.shape[2] - k + 1
    rows = sum(x.dtype.type(t) * x[:, i:i + h, :] for i, t in enumerate(taps))
    return sum(x.dtype.type(t) * rows[:, :, j:j + w] for j, t in enumerate(taps))


def _valid_blur_backward(g, taps, height, width):
    """The adjoint of ``_valid_blur`` for planes of ``height`` x ``width``."""
    xp = _xp(g)
    h, w = g.shape[1], g.shape[2]
    rows = xp.zeros((g.shape[0], h, width), dtype=g.dtype)
    for j, t in enumerate(taps):
        rows[:, :, j:j + w] += g.dtype.type(t) * g
    out = xp.zeros((g.shape[0], height, width), dtype=g.dtype)
    for i, t in enumerate(taps):
        out[:, i:i + h, :] += g.dtype.type(t) * rows
    return out


class SSIM(ImageOperation):
    """``ssim(image1, image2)``: the mean structural similarity per image (over the valid positions of the
    Gaussian window and over the channels), as Keras's backend-agnostic ``_ssim`` computes it; the Gaussian
    window is applied as its two 1-D factors."""

    arity = 2
    config_keys = ("max_val", "filter_size", "filter_sigma", "k1", "k2", "data_format")

    def __init__(self, max_val=1.0, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03, data_format=None, name=None,
                 **kwargs):
        super().__init__(data_format=data_format, name=name, **kwargs)
        where = "ssim"
        self.max_val = _number(max_val, "max_val", where)
        self.filter_size = _count(filter_size, "filter_size", where, positive=True)
        self.filter_sigma = _number(filter_sigma, "filter_sigma", where)
        self.k1 = _number(k1, "k1", where)
        self.k2 = _number(k2, "k2", where)

    def output_shape_of(self, arguments, shapes):
        first, second = self._shape_of(arguments, 0, shapes), self._shape_of(arguments, 1, shapes)
        self._check_rank(first, "image1")
        self._check_rank(second, "image2")
        if len(first) != len(second) or any(a is not None and b is not None and a != b
                                             for a, b in zip(first, second)):
            raise ValueError(f"{self._where()}: image1 and image2 must have the same shape, got {first} and "
                             f"{second}.")
        h, w = self._spatial_axes(len(first))
        if any(n is not None and n < self.filter_size for n in (first[h], first[w])):
            raise ValueError(f"{self._where()}: images of shape {first} are smaller than the filter "
                             f"({self.filter_size}).")
        return () if len(first) == 3 else (first[0],)

    def _taps(self, dtype):
        x = numpy.arange(self.filter_size, dtype=dtype) - dtype.type((self.filter_size - 1) / 2.0)
        g = numpy.exp(-(x ** 2) / dtype.type(2.0 * self.filter_sigma ** 2))
        return g / g.sum()

    def _planes(self, x, dtype):
        last, batched = _to_last(x.astype(dtype, copy=False), self._format)
        n, h, w, c = last.shape
        return _xp(last).ascontiguousarray(last.transpose(0, 3, 1, 2)).reshape(n * c, h, w), batched, c

    def _terms(self, a, b, taps):
        c1 = (self.k1 * self.max_val) ** 2
        c2 = (self.k2 * self.max_val) ** 2
        mu1, mu2 = _valid_blur(a, taps), _valid_blur(b, taps)
        e11, e22, e12 = _valid_blur(a * a, taps), _valid_blur(b * b, taps), _valid_blur(a * b, taps)
        a1 = 2.0 * mu1 * mu2 + c1
        a2 = 2.0 * (e12 - mu1 * mu2) + c2
        b1 = mu1 * mu1 + mu2 * mu2 + c1
        b2 = (e11 - mu1 * mu1) + (e22 - mu2 * mu2) + c2
        return mu1, mu2, a1, a2, b1, b2

    def _compute_dtype(self, dtype):
        return numpy.dtype(dtype) if numpy.dtype(dtype) == numpy.float64 else numpy.dtype(numpy.float32)

    def forward_array(self, image1, image2):
        self.output_shape_of([None, None], [image1.shape, image2.shape])
        dtype = self._compute_dtype(image1.dtype)
        a, batched, c = self._planes(image1, dtype)
        b, _, _ = self._planes(image2, dtype)
        _, _, a1, a2, b1, b2 = self._terms(a, b, self._taps(dtype))
        per_plane = ((a1 * a2) / (b1 * b2)).mean(axis=(1, 2))
        result = per_plane.reshape(-1, c).mean(axis=-1)
        result = result if batched else result.reshape(())
        return result.astype(image1.dtype)

    def backward(self, dy):
        operands, y = self.saved()
        image1, image2 = operands
        floats = [_float(o.dtype) for o in operands]
        if not any(floats):
            return None if sum(a is None for a in self.arguments) == 1 else [None, None]
        dtype = self._compute_dtype(image1.dtype)
        a, batched, c = self._planes(image1, dtype)
        b, _, _ = self._planes(image2, dtype)
        taps = self._taps(dtype)
        mu1, mu2, a1, a2, b1, b2 = self._terms(a, b, taps)
        xp = _xp(a)
        h, w = a1.shape[1], a1.shape[2]
        dy = xp.asarray(dy, dtype=dtype).reshape(-1)
        g = xp.repeat(dy, c) / (c * h * w)              # one gradient per plane, spread over its positions
        g = g.reshape(-1, 1, 1)
        den = b1 * b2
        s = a1 * a2 / den
        d_a1, d_a2 = g * a2 / den, g * a1 / den
        d_b1, d_b2 = -g * s / b1, -g * s / b2
        d_mu1 = 2.0 * mu2 * (d_a1 - d_a2) + 2.0 * mu1 * (d_b1 - d_b2)
        d_mu2 = 2.0 * mu1 * (d_a1 - d_a2) + 2.0 * mu2 * (d_b1 - d_b2)
        height, width = a.shape[1], a.shape[2]

        def back(t):
            return _valid_blur_backward(t, taps, height, width)
        shared_12, shared_sq = back(2.0 * d_a2), back(d_b2)
        da = back(d_mu1) + 2.0 * a * shared_sq + b * shared_12
        db = back(d_mu2) + 2.0 * b * shared_sq + a * shared_12

        def image(planes, like):
            n = planes.shape[0] // c
            last = planes.reshape(n, c, height, width).transpose(0, 2, 3, 1)
            return _from_last(last, self._format, batched).astype(like.dtype, copy=False)
        gradients = [image(da, image1) if floats[0] else None, image(db, image2) if floats[1] else None]
        tensor_gradients = [g for g, arg in zip(gradients, self.arguments) if arg is None]
        return tensor_gradients if len(tensor_gradients) > 1 else tensor_gradients[0]


OPERATIONS = {cls.__name__: cls for cls in (GaussianBlur, SobelEdges, SSIM)}
