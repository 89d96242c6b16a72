"""``gpu_dl.ops.image`` (Keras's ``keras.ops.image``): on arrays and in functional models against plain NumPy
expectations, gradients against float64 finite differences, saving and loading, dtypes, configs and bad input."""
import colorsys
import itertools

import numpy
import pytest
from numpy.lib.stride_tricks import sliding_window_view

import gpu_dl
from gpu_dl import backend, ops
from gpu_dl.backend import array_module, to_numpy
from gpu_dl.models import load_model
from gpu_dl.models.saving import model_config
from gradcheck import assert_gradient
from keras_ops_harness import assert_input_gradients, assert_trains, assert_weight_gradients, batch_or_fixed_shape, \
    model_of, op_case_tests

N, H, W, C = 2, 5, 7, 3
TRANSFORM = numpy.array([1.1, 0.2, -1.3, -0.1, 0.9, 0.7, 0.0, 0.0])
START = numpy.array([[0.0, 0.0], [6.0, 0.0], [0.0, 4.0], [6.0, 4.0]])
END = numpy.array([[0.5, 0.3], [5.6, 0.0], [0.2, 4.4], [6.3, 3.7]])
# map_coordinates over (N, H, W, C) inputs: the batch index exact, the rest anywhere around the images
COORDINATES = numpy.stack([numpy.broadcast_to(numpy.arange(N)[:, None, None], (N, 3, 4)).astype(float),
                           numpy.linspace(-1.3, 5.6, N * 12).reshape(N, 3, 4),
                           numpy.linspace(7.9, -1.2, N * 12).reshape(N, 3, 4),
                           numpy.broadcast_to(numpy.array([0.0, 2.0, 1.0, 2.0]), (N, 3, 4))])


# ------------------------------------------------------------------ plain NumPy expectations
def _gray(x):
    return (0.2989 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2])[..., None]


def _hsv(x):
    return numpy.stack(numpy.vectorize(colorsys.rgb_to_hsv)(x[..., 0], x[..., 1], x[..., 2]), axis=-1)


def _rgb(x):
    return numpy.stack(numpy.vectorize(colorsys.hsv_to_rgb)(x[..., 0], x[..., 1], x[..., 2]), axis=-1)


def _resize_matrix(n_in, n_out, nearest):
    """PyTorch's half-pixel (bilinear) or nearest-exact sampling of one axis as an (n_out, n_in) matrix."""
    m = numpy.zeros((n_out, n_in))
    o = numpy.arange(n_out)
    if nearest:
        m[o, numpy.minimum(numpy.floor((o + 0.5) * n_in / n_out).astype(int), n_in - 1)] = 1.0
        return m
    source = numpy.maximum((o + 0.5) * n_in / n_out - 0.5, 0.0)
    low = numpy.minimum(numpy.floor(source).astype(int), n_in - 1)
    t = source - low
    numpy.add.at(m, (o, low), 1 - t)
    numpy.add.at(m, (o, numpy.minimum(low + 1, n_in - 1)), t)
    return m


def _resize(x, size, nearest=False):
    return numpy.einsum("ah,bw,nhwc->nabc", _resize_matrix(x.shape[1], size[0], nearest),
                        _resize_matrix(x.shape[2], size[1], nearest), x)


def _keys(x, a):
    x = numpy.abs(x)
    return numpy.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                       numpy.where(x < 2, ((a * x - 5 * a) * x + 8 * a) * x - 4 * a, 0.0))


def _bicubic_matrix(n_in, n_out):
    """PyTorch's bicubic sampling (A = -0.75, half-pixel, edge clamped) as an (n_out, n_in) matrix."""
    m = numpy.zeros((n_out, n_in))
    for o in range(n_out):
        source = (o + 0.5) * n_in / n_out - 0.5
        low = numpy.floor(source)
        for k in range(-1, 3):
            m[o, int(numpy.clip(low + k, 0, n_in - 1))] += _keys(source - (low + k), -0.75)
    return m


def _antialias_matrix(n_in, n_out, cubic=False):
    """PyTorch's antialiased sampling: a triangle (or Keys's a = -0.5 cubic) stretched by the downscale."""
    scale = n_in / n_out
    stretch = max(scale, 1.0)
    support = (2.0 if cubic else 1.0) * stretch
    m = numpy.zeros((n_out, n_in))
    for o in range(n_out):
        centre = scale * (o + 0.5)
        for j in range(max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), n_in)):
            d = (j - centre + 0.5) / stretch
            m[o, j] = _keys(d, -0.5) if cubic else max(1 - abs(d), 0.0)
    return m / m.sum(axis=1, keepdims=True)


def _scale_translate_matrix(n_in, n_out, scale, translation, kernel):
    """JAX's scale_and_translate weights (antialiased), (n_out, n_in)."""
    sample = (numpy.arange(n_out) + 0.5 - translation) / scale - 0.5
    distance = numpy.abs(sample[:, None] - numpy.arange(n_in)[None]) / max(1 / scale, 1.0)
    w = kernel(distance)
    total = w.sum(axis=1, keepdims=True)
    w = w / numpy.where(total == 0, 1.0, total)           # an output outside the input reads nothing
    return numpy.where(((sample >= -0.5) & (sample <= n_in - 0.5))[:, None], w, 0.0)


def _two_axes(x, rows, columns):
    return numpy.einsum("ah,bw,nhwc->nabc", rows, columns, x)


def _linear(x, coordinates, fill=0.0):
    """``x`` read by linear interpolation at ``coordinates`` (one array per axis), constant fill per neighbour."""
    out = 0.0
    for corner in itertools.product((0, 1), repeat=x.ndim):
        weight, index, inside = 1.0, [], True
        for axis, (c, k) in enumerate(zip(coordinates, corner)):
            low = numpy.floor(c)
            i = (low + k).astype(int)
            weight = weight * (c - low if k else 1 - (c - low))
            inside = inside & (i >= 0) & (i < x.shape[axis])
            index.append(numpy.clip(i, 0, x.shape[axis] - 1))
        out = out + weight * numpy.where(inside, x[tuple(index)], fill)
    return out


def _affine(x, t, fill=0.0):
    n, h, w, c = x.shape
    ys, xs = numpy.meshgrid(numpy.arange(h), numpy.arange(w), indexing="ij")
    grid = [numpy.arange(n)[:, None, None, None] + 0.0 * xs[None, ..., None],
            (t[3] * xs + t[4] * ys + t[5])[None, ..., None] + numpy.zeros((n, 1, 1, c)),
            (t[0] * xs + t[1] * ys + t[2])[None, ..., None] + numpy.zeros((n, 1, 1, c)),
            numpy.arange(c) + numpy.zeros((n, h, w, 1))]
    return _linear(x, grid, fill)


def _perspective(x, start, end):
    a, b = [], []
    for (sx, sy), (ex, ey) in zip(start, end):       # end point (ex, ey) read from start point (sx, sy)
        a.append([ex, ey, 1, 0, 0, 0, -sx * ex, -sx * ey])
        a.append([0, 0, 0, ex, ey, 1, -sy * ex, -sy * ey])
        b += [sx, sy]
    t = numpy.linalg.solve(numpy.array(a), numpy.array(b))
    n, h, w, c = x.shape
    ys, xs = numpy.meshgrid(numpy.arange(h), numpy.arange(w), indexing="ij")
    k = t[6] * xs + t[7] * ys + 1
    grid = [numpy.arange(n)[:, None, None, None] + numpy.zeros((1, h, w, c)),
            ((t[3] * xs + t[4] * ys + t[5]) / k)[None, ..., None] + numpy.zeros((n, 1, 1, c)),
            ((t[0] * xs + t[1] * ys + t[2]) / k)[None, ..., None] + numpy.zeros((n, 1, 1, c)),
            numpy.arange(c) + numpy.zeros((n, h, w, 1))]
    return _linear(x, grid)


def _correlate(x, kernel):
    """Each channel of (N, H, W, C) correlated with ``kernel``, zero padding keeping the size."""
    kh, kw = kernel.shape
    p = numpy.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    windows = sliding_window_view(p, (kh, kw), axis=(1, 2))        # (N, H, W, C, kh, kw)
    return numpy.einsum("nhwcij,ij->nhwc", windows, kernel)


def _gaussian(size, sigma):
    t = numpy.arange(size) - (size - 1) / 2
    k = numpy.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _blur(x, size, sigma):
    return _correlate(x, numpy.outer(_gaussian(size, sigma[1]), _gaussian(size, sigma[0])))


SOBEL_X = numpy.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def _sobel(x):
    return numpy.stack([_correlate(x, SOBEL_X.T), _correlate(x, SOBEL_X)], axis=-1)


def _patches(x, size, strides, dilation=None, same=False):
    """(N, *out, prod(size) * C) patches of the spatial axes 1..len(size), (spatial..., channel) order."""
    k = len(size)
    dilation = dilation or (1,) * k
    if same:
        pads = []
        for n, kk, s, d in zip(x.shape[1:1 + k], size, strides, dilation):
            span = (kk - 1) * d + 1
            total = max((-(-n // s) - 1) * s + span - n, 0)
            pads.append((total // 2, total - total // 2))
        x = numpy.pad(x, [(0, 0)] + pads + [(0, 0)])
    spans = [(kk - 1) * d + 1 for kk, d in zip(size, dilation)]
    windows = sliding_window_view(x, spans, axis=tuple(range(1, 1 + k)))       # (N, *positions, C, *spans)
    windows = windows[(slice(None),) + tuple(slice(None, None, s) for s in strides) + (slice(None),) +
                      tuple(slice(None, None, d) for d in dilation)]
    order = (0,) + tuple(range(1, 1 + k)) + tuple(range(k + 2, 2 * k + 2)) + (k + 1,)
    return windows.transpose(order).reshape(windows.shape[:1 + k] + (-1,))


def _ssim(a, b, size, sigma=1.5, max_val=1.0):
    kernel = numpy.outer(_gaussian(size, sigma), _gaussian(size, sigma))

    def blur(v):
        return numpy.einsum("nhwcij,ij->nhwc", sliding_window_view(v, (size, size), axis=(1, 2)), kernel)
    c1, c2 = (0.01 * max_val) ** 2, (0.03 * max_val) ** 2
    m1, m2 = blur(a), blur(b)
    s11, s22, s12 = blur(a * a) - m1 ** 2, blur(b * b) - m2 ** 2, blur(a * b) - m1 * m2
    value = (2 * m1 * m2 + c1) * (2 * s12 + c2) / ((m1 ** 2 + m2 ** 2 + c1) * (s11 + s22 + c2))
    return value.mean(axis=(1, 2, 3))


def _first(x):
    return numpy.ascontiguousarray(numpy.moveaxis(x, -1, 1))


def _last(x):
    return numpy.moveaxis(x, 1, -1)


image = ops.image
# (id, the expression on a and b, (N, H, W, C) in (0, 1), written once for arrays and symbolic tensors; NumPy's)
CASES = [
    ("rgb_to_grayscale", lambda a, b: image.rgb_to_grayscale(a), lambda a, b: _gray(a)),
    ("rgb_to_hsv", lambda a, b: image.rgb_to_hsv(a), lambda a, b: _hsv(a)),
    ("hsv_to_rgb", lambda a, b: image.hsv_to_rgb(a), lambda a, b: _rgb(a)),
    ("resize", lambda a, b: image.resize(a, (3, 11)), lambda a, b: _resize(a, (3, 11))),
    ("resize_nearest", lambda a, b: image.resize(a, (8, 4), interpolation="nearest"),
     lambda a, b: _resize(a, (8, 4), nearest=True)),
    ("resize_crop", lambda a, b: image.resize(a, (3, 3), crop_to_aspect_ratio=True),
     lambda a, b: _resize(a[:, :, 1:6], (3, 3))),
    ("resize_pad", lambda a, b: image.resize(a, (3, 3), pad_to_aspect_ratio=True, fill_value=0.5),
     lambda a, b: _resize(numpy.pad(a, ((0, 0), (1, 1), (0, 0), (0, 0)), constant_values=0.5), (3, 3))),
    ("resize_bicubic", lambda a, b: image.resize(a, (3, 11), interpolation="bicubic"),
     lambda a, b: _two_axes(a, _bicubic_matrix(H, 3), _bicubic_matrix(W, 11))),
    ("resize_antialias", lambda a, b: image.resize(a, (3, 4), antialias=True),
     lambda a, b: _two_axes(a, _antialias_matrix(H, 3), _antialias_matrix(W, 4))),
    ("resize_bicubic_antialias", lambda a, b: image.resize(a, (2, 11), interpolation="bicubic", antialias=True),
     lambda a, b: _two_axes(a, _antialias_matrix(H, 2, cubic=True), _antialias_matrix(W, 11, cubic=True))),
    ("scale_and_translate", lambda a, b: image.scale_and_translate(
        a, (None, 8, 4, C), numpy.array([1.7, 0.6]), numpy.array([-0.3, 0.4]), (1, 2), "linear"),
     lambda a, b: _two_axes(a, _scale_translate_matrix(H, 8, 1.7, -0.3, lambda d: numpy.maximum(1 - d, 0)),
                            _scale_translate_matrix(W, 4, 0.6, 0.4, lambda d: numpy.maximum(1 - d, 0)))),
    ("scale_and_translate_cubic", lambda a, b: image.scale_and_translate(
        a, (N, H, 12, C), numpy.array([1.5]), numpy.array([0.25]), (-2,), "bicubic"),
     lambda a, b: numpy.einsum("bw,nhwc->nhbc", _scale_translate_matrix(W, 12, 1.5, 0.25,
                                                                         lambda d: _keys(d, -0.5)), a)),
    ("resize_channels_first", lambda a, b: image.resize(ops.transpose(a, (0, 3, 1, 2)), (4, 6),
                                                        data_format="channels_first"),
     lambda a, b: _first(_resize(a, (4, 6)))),
    ("affine_transform", lambda a, b: image.affine_transform(a, TRANSFORM, fill_value=0.25),
     lambda a, b: _affine(a, TRANSFORM, 0.25)),
    ("affine_transform_wrap", lambda a, b: image.affine_transform(a, [1, 0, 3, 0, 1, -2, 0, 0], fill_mode="wrap"),
     lambda a, b: numpy.roll(a, (2, -3), axis=(1, 2))),
    ("affine_transform_nearest", lambda a, b: image.affine_transform(a, [1, 0, 0.3, 0, 1, 1.2, 0, 0],
                                                                     interpolation="nearest", fill_mode="nearest"),
     lambda a, b: numpy.concatenate([a[:, 1:], a[:, -1:]], axis=1)),
    ("affine_transform_mirror", lambda a, b: image.affine_transform(a, [1, 0, 0, 0, 1, -2, 0, 0], fill_mode="mirror"),
     lambda a, b: numpy.concatenate([a[:, 2:0:-1], a[:, :3]], axis=1)),
    ("affine_transform_reflect", lambda a, b: image.affine_transform(a, [1, 0, -2, 0, 1, 0, 0, 0],
                                                                     fill_mode="reflect"),
     lambda a, b: numpy.concatenate([a[:, :, 1::-1], a[:, :, :5]], axis=2)),
    ("perspective_transform", lambda a, b: image.perspective_transform(a, START, END),
     lambda a, b: _perspective(a, START, END)),
    ("map_coordinates", lambda a, b: image.map_coordinates(a, COORDINATES, 1, fill_value=0.5),
     lambda a, b: _linear(a, list(COORDINATES), 0.5)),
    ("map_coordinates_nearest", lambda a, b: image.map_coordinates(a, COORDINATES, 0, fill_mode="nearest"),
     lambda a, b: a[tuple(numpy.clip(numpy.round(c).astype(int), 0, n - 1) for c, n in zip(COORDINATES, a.shape))]),
    ("crop_images", lambda a, b: image.crop_images(a, 1, 2, target_height=3, target_width=4),
     lambda a, b: a[:, 1:4, 2:6]),
    ("crop_images_sides", lambda a, b: image.crop_images(a, bottom_cropping=1, right_cropping=2, top_cropping=0,
                                                         left_cropping=3), lambda a, b: a[:, :4, 3:5]),
    ("pad_images", lambda a, b: image.pad_images(a, 1, 2, target_height=8, target_width=10),
     lambda a, b: numpy.pad(a, ((0, 0), (1, 2), (2, 1), (0, 0)))),
    ("pad_images_channels_first", lambda a, b: image.pad_images(ops.transpose(a, (0, 3, 1, 2)), 2, 0, 1, 3,
                                                                data_format="channels_first"),
     lambda a, b: _first(numpy.pad(a, ((0, 0), (2, 1), (0, 3), (0, 0))))),
    ("extract_patches", lambda a, b: image.extract_patches(a, 2), lambda a, b: _patches(a, (2, 2), (2, 2))),
    ("extract_patches_same", lambda a, b: image.extract_patches(a, (3, 2), strides=(2, 3), padding="same"),
     lambda a, b: _patches(a, (3, 2), (2, 3), same=True)),
    ("extract_patches_dilated", lambda a, b: image.extract_patches(a, (2, 3), strides=1, dilation_rate=2),
     lambda a, b: _patches(a, (2, 3), (1, 1), (2, 2))),
    ("extract_patches_3d", lambda a, b: image.extract_patches_3d(ops.expand_dims(a, -1), (2, 3, 2), strides=(1, 2, 1)),
     lambda a, b: _patches(a[..., None], (2, 3, 2), (1, 2, 1))),
    ("gaussian_blur", lambda a, b: image.gaussian_blur(a), lambda a, b: _blur(a, 3, (1.0, 1.0))),
    ("gaussian_blur_5", lambda a, b: image.gaussian_blur(a, (5, 5), (0.7, 1.9)),
     lambda a, b: _blur(a, 5, (numpy.float32(0.7), numpy.float32(1.9)))),       # Keras: sigma in float32
    ("sobel_edges", lambda a, b: image.sobel_edges(a), lambda a, b: _sobel(a)),
    ("sobel_edges_channels_first", lambda a, b: image.sobel_edges(ops.transpose(a, (0, 3, 1, 2)),
                                                                  data_format="channels_first"),
     lambda a, b: numpy.moveaxis(_sobel(a), 3, 1)),
    ("ssim", lambda a, b: image.ssim(a, b, filter_size=3), lambda a, b: _ssim(a, b, 3)),
    ("ssim_max_val", lambda a, b: image.ssim(a, 0.5 * a + b, max_val=2.0, filter_size=5, filter_sigma=0.8),
     lambda a, b: _ssim(a, 0.5 * a + b, 5, 0.8, 2.0)),
]


def _arrays(rng):
    return rng.uniform(0.05, 0.95, (N, H, W, C)), rng.uniform(0.05, 0.95, (N, H, W, C))


SHAPES = ((H, W, C), (H, W, C))
# every image case differentiates: a gradient of None fails
(test_each_image_op_on_arrays_computes_what_numpy_does,
 test_each_image_op_in_a_functional_model_computes_what_numpy_does,
 test_each_image_op_has_the_gradient_of_finite_differences, test_each_image_op_is_saved_and_loaded) = \
    op_case_tests(CASES, _arrays, SHAPES, rtol=1e-10, atol=1e-12, output_shape=batch_or_fixed_shape,
                  none_is_zero=False)


def test_single_images_and_channels_first_give_what_batches_give(xp, rng):
    a = rng.uniform(0.05, 0.95, (H, W, C))
    for function in (lambda x, **k: image.rgb_to_hsv(x, **k), lambda x, **k: image.resize(x, (4, 9), **k),
                     lambda x, **k: image.gaussian_blur(x, **k), lambda x, **k: image.crop_images(x, 1, 1, 2, 2, **k),
                     lambda x, **k: image.affine_transform(x, TRANSFORM, **k)):
        single = to_numpy(function(xp.asarray(a)))
        batch = to_numpy(function(xp.asarray(a[None])))[0]
        first = to_numpy(function(xp.asarray(numpy.moveaxis(a, -1, 0)), data_format="channels_first"))
        numpy.testing.assert_allclose(single, batch, rtol=1e-12)
        numpy.testing.assert_allclose(numpy.moveaxis(first, 0, -1), batch, rtol=1e-12)
    same = image.ssim(xp.asarray(a), xp.asarray(a), filter_size=3)
    assert same.shape == () and array_module(same) is xp
    numpy.testing.assert_allclose(to_numpy(same), 1.0, rtol=1e-12)


def test_fill_modes_extend_the_input_as_keras_documents(xp):
    row = numpy.array([10.0, 20.0, 30.0, 40.0])                   # a b c d
    where = numpy.arange(-4, 8)[None].astype(float)
    expected = {"reflect": [40, 30, 20, 10, 10, 20, 30, 40, 40, 30, 20, 10],
                "mirror": [30, 40, 30, 20, 10, 20, 30, 40, 30, 20, 10, 20],
                "wrap": [10, 20, 30, 40, 10, 20, 30, 40, 10, 20, 30, 40],
                "nearest": [10, 10, 10, 10, 10, 20, 30, 40, 40, 40, 40, 40],
                "constant": [-1, -1, -1, -1, 10, 20, 30, 40, -1, -1, -1, -1]}
    for mode, values in expected.items():
        y = image.map_coordinates(xp.asarray(row), xp.asarray(where), 0, fill_mode=mode, fill_value=-1)
        numpy.testing.assert_array_equal(to_numpy(y), values, err_msg=mode)


def test_dtypes_follow_keras(xp):
    pixels = xp.asarray(numpy.arange(2 * 5 * 6 * 3).reshape(2, 5, 6, 3) % 256, dtype=xp.uint8)
    gray = image.rgb_to_grayscale(pixels)
    assert gray.dtype == numpy.uint8
    want = (0.2989 * to_numpy(pixels)[..., 0].astype(numpy.float32) + numpy.float32(0.587) *
            to_numpy(pixels)[..., 1] + numpy.float32(0.114) * to_numpy(pixels)[..., 2])
    assert numpy.abs(to_numpy(gray)[..., 0].astype(int) - want.astype(int)).max() <= 1
    resized = image.resize(pixels, (3, 4))
    assert resized.dtype == numpy.uint8
    numpy.testing.assert_array_equal(to_numpy(resized), numpy.round(_resize(to_numpy(pixels).astype(float), (3, 4))))
    for function in (image.crop_images, image.pad_images):
        assert function(pixels, 1, 1, 1, 1).dtype == numpy.uint8
    assert image.extract_patches(pixels, 2).dtype == numpy.uint8
    assert image.affine_transform(pixels, TRANSFORM).dtype == numpy.uint8
    assert image.rgb_to_hsv(xp.asarray(numpy.full((2, 2, 3), 0.5, numpy.float32))).dtype == numpy.float32
    assert image.resize([[[1.0], [2.0]]], (2, 2)).dtype == numpy.float32        # lists: floatx
    x = gpu_dl.Input((5, 6, 3), dtype="uint8")
    assert image.rgb_to_grayscale(x).dtype == "uint8" and image.resize(x, (2, 2)).dtype == "uint8"
    f = gpu_dl.Input((5, 6, 3))
    assert image.sobel_edges(f).shape == (None, 5, 6, 3, 2) and image.ssim(f, f, filter_size=5).shape == (None,)
    assert image.extract_patches(f, (2, 3)).shape == (None, 2, 2, 18)
    assert image.crop_images(f, 1, 2, target_height=3, target_width=3).shape == (None, 3, 3, 3)


def test_integer_images_take_no_gradient(rng):
    x = gpu_dl.Input((5, 6, 3), dtype="int32")
    model = gpu_dl.Model(x, ops.cast(image.crop_images(x, 1, 1, 1, 1), "float32") * 2.0)
    y = model.forward(rng.integers(0, 9, (2, 5, 6, 3)), training=True)
    assert model.backward(numpy.ones_like(y)) is None


def test_configs_are_keras_s():
    x = gpu_dl.Input((8, 9, 3), name="x")
    outputs = [image.resize(x, (5, 4)), image.extract_patches(x, 2), image.gaussian_blur(x),
               image.extract_patches_3d(ops.expand_dims(x, -1), 2, strides=1, padding="same"),
               image.crop_images(x, 1, 2, target_height=5, target_width=4), image.affine_transform(x, TRANSFORM),
               image.map_coordinates(x, numpy.zeros((4, 2, 2), "float32"), 1)]
    entries = {e["class_name"]: e for e in model_config(gpu_dl.Model(x, outputs))["config"]["layers"]}
    for class_name, entry in entries.items():
        if class_name not in ("InputLayer", "ExtractPatches"):       # Keras's ExtractPatches writes no name
            assert entry["config"].pop("name") == entry["name"]
    assert "name" not in entries["ExtractPatches"]["config"]
    patches = [e["config"] for e in model_config(gpu_dl.Model(x, outputs))["config"]["layers"]
               if e["class_name"] == "ExtractPatches"]
    assert patches[0] == {"size": [2, 2], "strides": [2, 2], "dilation_rate": 1, "padding": "valid",
                          "data_format": "channels_last"}
    assert patches[1] == {"size": [2, 2, 2], "strides": 1, "dilation_rate": 1, "padding": "same",
                          "data_format": "channels_last"}
    assert entries["Resize"]["module"] == "keras.src.ops.image"
    assert entries["Resize"]["config"] == {
        "size": [5, 4], "interpolation": "bilinear", "antialias": False,
        "crop_to_aspect_ratio": False, "pad_to_aspect_ratio": False, "fill_mode": "constant", "fill_value": 0.0,
        "data_format": None}
    assert entries["GaussianBlur"]["config"] == {"kernel_size": [3, 3], "sigma": [1.0, 1.0],
                                                 "data_format": None}
    assert entries["CropImages"]["config"] == {
        "top_cropping": 1, "left_cropping": 2, "bottom_cropping": None,
        "right_cropping": None, "target_height": 5, "target_width": 4, "data_format": None}
    assert entries["AffineTransform"]["config"] == {"interpolation": "bilinear",
                                                    "fill_mode": "constant", "fill_value": 0, "data_format": None}
    assert entries["MapCoordinates"]["config"] == {"order": 1, "fill_mode": "constant",
                                                   "fill_value": 0}


def test_the_namespace_is_gpu_dl_ops_image():
    import gpu_dl as keras
    assert keras.ops.image is ops.image and "image" in dir(keras.ops)
    assert set(ops.image.__all__) >= {"resize", "affine_transform", "ssim", "extract_patches_3d"}


@pytest.mark.parametrize("call,error,words", [
    (lambda x: image.resize(x[0, 0], (2, 2)), ValueError, "rank 3 or 4"),
    (lambda x: image.resize(x, (2,)), ValueError, "size"),
    (lambda x: image.resize(x, (2, 2), interpolation="cubic"), ValueError, "interpolation"),
    (lambda x: image.resize(x, (2, 2), interpolation="lanczos3"), ValueError, "Lanczos"),
    (lambda x: image.scale_and_translate(x, (2, 3, 3, 3), [1.0, 1.0], [0.0, 0.0], (1, 2), "box"), ValueError,
     "method"),
    (lambda x: image.scale_and_translate(x, (2, 3, 3), [1.0, 1.0], [0.0, 0.0], (1, 2), "linear"), ValueError,
     "one size per axis"),
    (lambda x: image.scale_and_translate(x, (2, 3, 3, 3), [1.0], [0.0], (1, 2), "linear"), ValueError,
     "one number per spatial dim"),
    (lambda x: image.scale_and_translate(x, (2, 3, 3, 4), [1.0, 1.0], [0.0, 0.0], (1, 2), "linear"), ValueError,
     "not among"),
    (lambda x: image.resize(x, (2, 2), crop_to_aspect_ratio=True, pad_to_aspect_ratio=True), ValueError, "only one"),
    (lambda x: image.affine_transform(x, TRANSFORM, fill_mode="edge"), ValueError, "fill_mode"),
    (lambda x: image.affine_transform(x, TRANSFORM[:6]), ValueError, "transform"),
    (lambda x: image.map_coordinates(x, COORDINATES[:3], 1), ValueError, "rank of the inputs"),
    (lambda x: image.map_coordinates(x, COORDINATES, 3), ValueError, "order"),
    (lambda x: image.rgb_to_hsv(x[..., :2]), ValueError, "3 channels"),
    (lambda x: image.rgb_to_hsv(x.astype("int32")), ValueError, "float"),
    (lambda x: image.rgb_to_grayscale(x, data_format="nhwc"), ValueError, "data_format"),
    (lambda x: image.crop_images(x, 1, 1), ValueError, "exactly two"),
    (lambda x: image.crop_images(x, 3, 0, 3, 0), ValueError, "cannot crop"),
    (lambda x: image.pad_images(x, 1, 1, target_height=3, target_width=9), ValueError, "must be >= 0"),
    (lambda x: image.pad_images(x, -1, 1, 1, 1), ValueError, "top_padding"),
    (lambda x: image.extract_patches(x, (2, 2, 2, 2)), ValueError, "size"),
    (lambda x: image.extract_patches(x, "2"), TypeError, "size"),
    (lambda x: image.extract_patches(x, 9), ValueError, "do not fit"),
    (lambda x: image.gaussian_blur(x, (3, 5)), ValueError, "equal odd"),
    (lambda x: image.gaussian_blur(x, (3, 3), (1.0, -1.0)), ValueError, "positive"),
    (lambda x: image.sobel_edges(x[0]), ValueError, "rank 4"),
    (lambda x: image.ssim(x, x[:, :4]), ValueError, "same shape"),
    (lambda x: image.ssim(x, x, filter_size=11), ValueError, "smaller than the filter"),
    (lambda x: image.perspective_transform(x, START[:3], END[:3]), ValueError, "start_points"),
])
def test_bad_input_is_refused_clearly(call, error, words):
    with pytest.raises(error, match=words):
        call(numpy.full((2, 5, 7, 3), 0.5))


def test_elastic_transform_reads_at_blurred_normal_displacements(on_cpu, rng):
    a, _ = _arrays(rng)
    y = image.elastic_transform(a, alpha=3.0, sigma=0.8, fill_mode="constant", fill_value=0.5, seed=7)
    # gpu_dl.random's draw for the int seed 7 on NumPy: a generator of the pair (7, 0), the x field first
    noise = numpy.random.default_rng([7, 0]).normal(size=(2 * N, H, W, 1)) * 0.8
    field = _blur(noise, int(6 * 0.8) | 1, (0.8, 0.8))[..., 0]
    grid = [numpy.arange(N)[:, None, None, None] + numpy.zeros((1, H, W, C)),
            (numpy.arange(H)[:, None] + 3.0 * field[N:])[..., None] + numpy.zeros(C),
            (numpy.arange(W)[None, :] + 3.0 * field[:N])[..., None] + numpy.zeros(C),
            numpy.arange(C) + numpy.zeros((N, H, W, 1))]
    numpy.testing.assert_allclose(y, _linear(a, grid, 0.5), rtol=1e-10, atol=1e-12)


def test_elastic_transform_draws_by_its_seed_and_moves_nothing_without_alpha(xp, rng):
    a = xp.asarray(_arrays(rng)[0])
    for mode in ("reflect", "mirror", "wrap", "nearest", "constant"):
        numpy.testing.assert_allclose(to_numpy(image.elastic_transform(a, alpha=0.0, fill_mode=mode)), to_numpy(a),
                                      rtol=1e-12, err_msg=mode)
    first = image.elastic_transform(a, alpha=2.0, sigma=1.0, seed=3)
    assert array_module(first) is xp and first.dtype == numpy.float64
    numpy.testing.assert_array_equal(to_numpy(image.elastic_transform(a, alpha=2.0, sigma=1.0, seed=3)),
                                     to_numpy(first))
    assert not numpy.allclose(to_numpy(image.elastic_transform(a, alpha=2.0, sigma=1.0)), to_numpy(first))
    assert not numpy.allclose(to_numpy(first), to_numpy(a))
    single = image.elastic_transform(a[0], alpha=2.0, sigma=1.0)
    assert single.shape == (H, W, C)
    with pytest.raises(TypeError, match="float"):
        image.elastic_transform(xp.asarray(numpy.ones((2, 4, 4, 3), numpy.int32)))


def test_elastic_transform_in_a_model_trains_and_saves(xp, rng, tmp_path):
    model, used = model_of(lambda a, b: image.elastic_transform(a, alpha=1.5, sigma=0.7, seed=11, fill_mode="mirror"),
                           SHAPES)
    a = xp.asarray(_arrays(rng)[0])
    w = xp.asarray(rng.standard_normal((N, H, W, C)))
    y = model.forward([a], training=True)
    grad = model.backward(w)
    assert_gradient(lambda v: (model.forward([v], training=True) * w).sum(), a, grad, rng, what="elastic_transform")
    model.save(tmp_path / "m.keras")
    numpy.testing.assert_allclose(to_numpy(load_model(tmp_path / "m.keras").forward([a])), to_numpy(y), rtol=1e-12)
    entry = [e for e in model_config(model)["config"]["layers"] if e["class_name"] == "ElasticTransform"][0]
    assert entry["module"] == "keras.src.ops.image" and entry["config"]["seed"] == 11
    seeded, _ = model_of(lambda a, b: image.elastic_transform(a, seed=gpu_dl.random.SeedGenerator(1)), SHAPES)
    with pytest.raises(ValueError, match="SeedGenerator"):
        model_config(seeded)


# ------------------------------------------------------------------ a composite layer using image ops in call
class ImageFeatures(gpu_dl.layers.Layer):
    """A convolution, then resize, blur, patches, Sobel edges, an affine warp and colour maths of ops.image in call,
    pooled per image."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = gpu_dl.layers.Conv2D(3, 3, padding="same", dtype=kwargs.get("dtype"))

    def call(self, x):
        h = image.resize(self.conv(x), (6, 5), interpolation="bicubic")
        h = image.gaussian_blur(h, (3, 3), (0.8, 1.2))
        parts = [ops.mean(image.extract_patches(h, 2), axis=(1, 2)),
                 ops.mean(image.sobel_edges(h), axis=(1, 2, 3)),
                 ops.mean(image.affine_transform(h, TRANSFORM, fill_mode="reflect"), axis=(1, 2)),
                 ops.mean(image.rgb_to_hsv(ops.sigmoid(h)), axis=(1, 2))]
        return ops.concatenate(parts, axis=-1)


def _features_model(dtype=None):
    x = gpu_dl.Input((H, W, C), dtype=dtype)
    return gpu_dl.Model(x, gpu_dl.layers.Dense(1, dtype=dtype)(ImageFeatures(dtype=dtype)(x)))


def test_a_composite_layer_using_image_ops_has_exact_gradients(xp, rng):
    backend.set_random_seed(3)
    model = _features_model(dtype="float64")
    x = xp.asarray(_arrays(rng)[0])
    w = xp.asarray(rng.standard_normal((N, 1)))
    assert_weight_gradients(model, x, w, rng)
    assert_input_gradients(model, [x], w, rng, "images")


def test_a_composite_layer_using_image_ops_trains(rng):
    backend.set_random_seed(4)
    model = _features_model()
    x = rng.uniform(0, 1, (32, H, W, C)).astype("float32")
    y = (x.mean(axis=(1, 2, 3)) * 4.0 - 2.0)[:, None].astype("float32")
    assert_trains(model, x, y)
