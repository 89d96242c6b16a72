"""The pooling kernels (kernels/pooling.cu, launchers in gpu_dl/ops/pool_kernels.py) against plain NumPy.

The references below loop over the output window positions (and, inside a
window, over its in-bounds positions in row-major order) with the batch and
channel axes vectorised: slow but obviously right. Inputs have odd sizes
(N 1, 3; H, W 1, 3, 17, 33; C 1, 3, 17, 64, the last taking the kernels'
vectorised path), pools 1x1 to 3x3 and 2x3, strides 1 to 3 (gaps between
windows included), asymmetric pads and Keras's "same" padding, float32 and
float64. Max pooling must give the first max on ties (integer-valued inputs)
and propagate NaN with the first NaN's position, as NumPy's argmax does.
Kernel outputs start NaN (or -1 for argmax; the suite's autouse
``launch.poisoned_outputs()``), so an element left unwritten fails. These
tests need a CUDA device (the ``cupy_only`` fixture); the compile check of
pooling.cu runs everywhere in tests/test_kernel_compile.py.
"""
import numpy
import pytest

from gpu_dl.backend import launch
from gpu_dl.ops import pool_kernels

DTYPES = ["float32", "float64"]
# Averages: the kernel sums each window in row-major order as the reference does; the divisions and
# (for global pooling) the split of H*W into partial sums may round differently.
TOLERANCE = {"float32": dict(rtol=2e-6, atol=2e-6), "float64": dict(rtol=1e-13, atol=1e-13)}

# (3, 1, 33, 5): the 1-D layers' sequences, images of height 1
SHAPES = [(1, 1, 1, 1), (3, 3, 3, 3), (1, 17, 33, 64), (3, 33, 17, 17), (1, 3, 17, 1), (3, 17, 3, 64), (3, 1, 33, 5)]
# (pool, strides, padding): padding "valid", "same" (computed per input as Keras does) or explicit
# ((top, bottom), (left, right)).
GEOMETRIES = [
    ((1, 1), (1, 1), "valid"),
    ((2, 2), (2, 2), "valid"),
    ((2, 2), (2, 2), "same"),
    ((3, 3), (2, 2), "same"),
    ((3, 3), (1, 1), "same"),
    ((2, 3), (1, 2), "same"),
    ((3, 2), (2, 3), "valid"),
    ((2, 2), (1, 1), ((0, 1), (1, 0))),
    ((3, 3), (1, 1), ((2, 0), (0, 2))),
    ((3, 3), (3, 3), ((0, 2), (1, 1))),
    ((2, 3), (1, 2), ((1, 0), (0, 2))),
    ((2, 3), (3, 1), ((0, 1), (2, 1))),
    ((1, 1), (3, 2), "valid"),              # strides > pool: inputs no window holds get 0 gradient
    ((2, 2), (3, 3), ((1, 1), (0, 1))),
    ((1, 3), (1, 2), "same"),               # the 1-D layers' windows: height 1
    ((1, 2), (1, 3), "valid"),
    ((2, 2), (3, 3), "same"),               # gaps between windows and a "same" pad
    ((3, 3), (3, 3), "same"),
]


def _padding(shape, pool, strides, padding):
    """Explicit ((top, bottom), (left, right)) pads; "same" puts the extra row/column bottom/right."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        pads = []
        for size, p, s in zip(shape[1:3], pool, strides):
            total = max((-(-size // s) - 1) * s + p - size, 0)
            pads.append((total // 2, total - total // 2))
        return tuple(pads)
    return padding


def _output_size(shape, pool, strides, pads):
    return tuple((size + a + b - p) // s + 1 for size, p, s, (a, b) in zip(shape[1:3], pool, strides, pads))


def _cases():
    """(shape, pool, strides, pads) for every shape and geometry that has at least one output position."""
    cases, ids = [], []
    for shape in SHAPES:
        for pool, strides, padding in GEOMETRIES:
            pads = _padding(shape, pool, strides, padding)
            if min(_output_size(shape, pool, strides, pads)) >= 1:
                cases.append((shape, pool, strides, pads))
                ids.append(f"{'x'.join(map(str, shape))}-p{pool[0]}{pool[1]}-s{strides[0]}{strides[1]}-"
                           f"{padding if isinstance(padding, str) else 'pad'}")
    return cases, ids


CASES, CASE_IDS = _cases()


# ------------------------------------------------------------------------------------ NumPy references
def _windows(shape, pool, strides, pads):
    """For each output (oh, ow): its in-bounds input positions (h, w) and window-local positions r*pw + q,
    row-major."""
    _, H, W, _ = shape
    (ph, pw), (sh, sw), ((pt, _), (pl, _)) = pool, strides, pads
    OH, OW = _output_size(shape, pool, strides, pads)
    for oh in range(OH):
        for ow in range(OW):
            inside = [(oh * sh - pt + r, ow * sw - pl + q, r * pw + q) for r in range(ph) for q in range(pw)
                      if 0 <= oh * sh - pt + r < H and 0 <= ow * sw - pl + q < W]
            yield oh, ow, inside


def max_pool_reference(x, pool, strides, pads):
    N, _, _, C = x.shape
    OH, OW = _output_size(x.shape, pool, strides, pads)
    y = numpy.empty((N, OH, OW, C), x.dtype)
    argmax = numpy.empty((N, OH, OW, C), numpy.int32)
    for oh, ow, inside in _windows(x.shape, pool, strides, pads):
        vals = numpy.stack([x[:, h, w, :] for h, w, _ in inside], axis=1)   # (N, k, C)
        k = numpy.argmax(vals, axis=1)   # the first max; the first NaN if any
        y[:, oh, ow, :] = numpy.take_along_axis(vals, k[:, None, :], axis=1)[:, 0, :]
        argmax[:, oh, ow, :] = numpy.array([pos for _, _, pos in inside])[k]
    return y, argmax


def max_pool_backward_reference(dy, argmax, input_shape, pool, strides, pads):
    dx = numpy.zeros(input_shape, dy.dtype)
    for oh, ow, inside in _windows(input_shape, pool, strides, pads):
        for h, w, pos in inside:
            dx[:, h, w, :] += numpy.where(argmax[:, oh, ow, :] == pos, dy[:, oh, ow, :], 0)
    return dx


def avg_pool_reference(x, pool, strides, pads):
    N, _, _, C = x.shape
    OH, OW = _output_size(x.shape, pool, strides, pads)
    y = numpy.empty((N, OH, OW, C), x.dtype)
    for oh, ow, inside in _windows(x.shape, pool, strides, pads):
        total = numpy.zeros((N, C), x.dtype)
        for h, w, _ in inside:
            total += x[:, h, w, :]
        y[:, oh, ow, :] = total / x.dtype.type(len(inside))
    return y


def avg_pool_backward_reference(dy, input_shape, pool, strides, pads):
    dx = numpy.zeros(input_shape, dy.dtype)
    for oh, ow, inside in _windows(input_shape, pool, strides, pads):
        for h, w, _ in inside:
            dx[:, h, w, :] += dy[:, oh, ow, :] / dy.dtype.type(len(inside))
    return dx


def global_max_pool_reference(x):
    N, H, W, C = x.shape
    flat = x.reshape(N, H * W, C)
    k = numpy.argmax(flat, axis=1)
    return numpy.take_along_axis(flat, k[:, None, :], axis=1)[:, 0, :], k.astype(numpy.int32)


def global_max_pool_backward_reference(dy, argmax, input_shape):
    N, H, W, C = input_shape
    positions = numpy.arange(H * W).reshape(1, H, W, 1)
    return numpy.where(positions == argmax[:, None, None, :], dy[:, None, None, :], 0).astype(dy.dtype)


def global_avg_pool_reference(x):
    return (x.astype(numpy.float64).sum(axis=(1, 2)) / (x.shape[1] * x.shape[2])).astype(x.dtype)


def global_avg_pool_backward_reference(dy, input_shape):
    N, H, W, C = input_shape
    return numpy.broadcast_to(dy[:, None, None, :] / dy.dtype.type(H * W), input_shape).astype(dy.dtype)


# --------------------------------------------------------------------------------------------- helpers
def _host(a):
    return a.get() if hasattr(a, "get") else numpy.asarray(a)


def _equal(got, want, what):
    got = _host(got)
    assert got.dtype == want.dtype and got.shape == want.shape, \
        f"{what}: {got.dtype}{got.shape}, expected {want.dtype}{want.shape}"
    numpy.testing.assert_array_equal(got, want, err_msg=what)   # NaN matches NaN only


def _close(got, want, what):
    got = _host(got)
    assert got.dtype == want.dtype and got.shape == want.shape, \
        f"{what}: {got.dtype}{got.shape}, expected {want.dtype}{want.shape}"
    unwritten = numpy.isnan(got) & ~numpy.isnan(want)
    assert not unwritten.any(), f"{what}: {unwritten.sum()} unwritten (NaN) elements"
    numpy.testing.assert_allclose(got, want, **TOLERANCE[want.dtype.name], err_msg=what)


def _random_argmax(rng, shape, pool):
    """Window-local positions for a backward on its own: every r*pw + q, padded ones included."""
    return rng.integers(0, pool[0] * pool[1], size=shape).astype(numpy.int32)


# ---------------------------------------------------------------------------------- windowed pooling
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,pool,strides,pads", CASES, ids=CASE_IDS)
def test_max_pool_forward_and_backward(cupy_only, rng, dtype, shape, pool, strides, pads):
    cupy = cupy_only
    x = rng.standard_normal(shape).astype(dtype)
    want_y, want_arg = max_pool_reference(x, pool, strides, pads)
    y, argmax = pool_kernels.max_pool2d_forward_cuda(cupy.asarray(x), pool, strides, pads)
    _equal(y, want_y, "max pool y")
    _equal(argmax, want_arg, "max pool argmax")

    dy = rng.standard_normal(want_y.shape).astype(dtype)
    dx = pool_kernels.max_pool2d_backward_cuda(cupy.asarray(dy), argmax, shape, pool, strides, pads)
    _close(dx, max_pool_backward_reference(dy, want_arg, shape, pool, strides, pads), "max pool dx")
    # An argmax from elsewhere: overlapping windows then send several gradients to one element.
    other = _random_argmax(rng, want_y.shape, pool)
    dx = pool_kernels.max_pool2d_backward_cuda(cupy.asarray(dy), cupy.asarray(other), shape, pool, strides, pads)
    _close(dx, max_pool_backward_reference(dy, other, shape, pool, strides, pads), "max pool dx, random argmax")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,pool,strides,pads", CASES, ids=CASE_IDS)
def test_avg_pool_forward_and_backward(cupy_only, rng, dtype, shape, pool, strides, pads):
    cupy = cupy_only
    x = rng.standard_normal(shape).astype(dtype)
    want_y = avg_pool_reference(x, pool, strides, pads)
    y = pool_kernels.avg_pool2d_forward_cuda(cupy.asarray(x), pool, strides, pads)
    _close(y, want_y, "avg pool y")

    dy = rng.standard_normal(want_y.shape).astype(dtype)
    dx = pool_kernels.avg_pool2d_backward_cuda(cupy.asarray(dy), shape, pool, strides, pads)
    _close(dx, avg_pool_backward_reference(dy, shape, pool, strides, pads), "avg pool dx")


TIE_GEOMETRIES = [((2, 2), (2, 2), ((0, 0), (0, 0))), ((3, 3), (1, 1), ((1, 1), (1, 1))),
                  ((3, 3), (2, 2), ((0, 1), (0, 1))), ((2, 3), (1, 2), ((1, 0), (0, 2)))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels", [3, 64])
@pytest.mark.parametrize("pool,strides,pads", TIE_GEOMETRIES)
def test_max_pool_ties_take_the_first_max(cupy_only, rng, dtype, channels, pool, strides, pads):
    cupy = cupy_only
    shape = (3, 17, 17, channels)
    x = rng.integers(-2, 2, size=shape).astype(dtype)   # many equal values in every window
    x[0] = 1.0                                         # whole windows of one value
    x[1, :5] = -numpy.inf                              # windows of nothing but -inf
    want_y, want_arg = max_pool_reference(x, pool, strides, pads)
    y, argmax = pool_kernels.max_pool2d_forward_cuda(cupy.asarray(x), pool, strides, pads)
    _equal(y, want_y, "max pool y, ties")
    _equal(argmax, want_arg, "max pool argmax, ties")
    dy = rng.standard_normal(want_y.shape).astype(dtype)
    dx = pool_kernels.max_pool2d_backward_cuda(cupy.asarray(dy), argmax, shape, pool, strides, pads)
    _bitwise(dx, max_pool_backward_reference(dy, want_arg, shape, pool, strides, pads), "max pool dx, ties")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("channels", [3, 64])
@pytest.mark.parametrize("pool,strides,pads", TIE_GEOMETRIES)
def test_max_pool_propagates_nan_with_the_first_nan_position(cupy_only, rng, dtype, channels, pool, strides, pads):
    cupy = cupy_only
    shape = (3, 17, 17, channels)
    x = rng.integers(-2, 2, size=shape).astype(dtype)
    x[rng.random(shape) < 0.1] = numpy.nan
    x[2, :4] = numpy.nan                                # windows of NaN alone
    x[1, 5:9] = numpy.inf
    x[1, 6, :, ::2] = numpy.nan                         # NaN after an inf in the same window
    want_y, want_arg = max_pool_reference(x, pool, strides, pads)
    assert numpy.isnan(want_y).any()
    y, argmax = pool_kernels.max_pool2d_forward_cuda(cupy.asarray(x), pool, strides, pads)
    _equal(y, want_y, "max pool y, NaN")
    _equal(argmax, want_arg, "max pool argmax, NaN")
    dy = rng.standard_normal(want_y.shape).astype(dtype)
    dx = pool_kernels.max_pool2d_backward_cuda(cupy.asarray(dy), argmax, shape, pool, strides, pads)
    _bitwise(dx, max_pool_backward_reference(dy, want_arg, shape, pool, strides, pads), "max pool dx, NaN")


@pytest.mark.parametrize("dtype", DTYPES)
def test_misaligned_inputs_take_the_scalar_path(cupy_only, rng, dtype):
    cupy = cupy_only
    shape, pool, strides, pads = (3, 17, 17, 64), (3, 3), (2, 2), ((1, 1), (1, 1))
    size = int(numpy.prod(shape))
    x = rng.standard_normal(shape).astype(dtype)
    buffer = cupy.zeros(size + 1, dtype=dtype)
    buffer[1:] = cupy.asarray(x).ravel()
    shifted = buffer[1:].reshape(shape)                # C-contiguous, one element past a 16-byte boundary
    assert shifted.flags.c_contiguous and shifted.data.ptr % 16
    assert launch.vector_width(dtype, 64, shifted) == 1
    assert launch.vector_width(dtype, 64, cupy.asarray(x)) == 16 // numpy.dtype(dtype).itemsize
    want_y, want_arg = max_pool_reference(x, pool, strides, pads)
    y, argmax = pool_kernels.max_pool2d_forward_cuda(shifted, pool, strides, pads)
    _equal(y, want_y, "max pool y, misaligned x")
    _equal(argmax, want_arg, "max pool argmax, misaligned x")
    _close(pool_kernels.avg_pool2d_forward_cuda(shifted, pool, strides, pads),
           avg_pool_reference(x, pool, strides, pads), "avg pool y, misaligned x")
    _close(pool_kernels.global_avg_pool2d_forward_cuda(shifted), global_avg_pool_reference(x),
           "global avg pool y, misaligned x")
    dy = rng.standard_normal(want_y.shape).astype(dtype)
    dy_buffer = cupy.zeros(dy.size + 1, dtype=dtype)
    dy_buffer[1:] = cupy.asarray(dy).ravel()
    dx = pool_kernels.max_pool2d_backward_cuda(dy_buffer[1:].reshape(dy.shape), argmax, shape, pool, strides, pads)
    _close(dx, max_pool_backward_reference(dy, want_arg, shape, pool, strides, pads), "max pool dx, misaligned dy")


def test_empty_batch_launches_nothing(cupy_only):
    cupy = cupy_only
    x = cupy.zeros((0, 4, 4, 3), dtype=cupy.float32)
    y, argmax = pool_kernels.max_pool2d_forward_cuda(x, (2, 2), (2, 2), ((0, 0), (0, 0)))
    assert y.shape == argmax.shape == (0, 2, 2, 3)
    dx = pool_kernels.avg_pool2d_backward_cuda(cupy.zeros((0, 2, 2, 3), cupy.float32), (0, 4, 4, 3), (2, 2), (2, 2),
                                               ((0, 0), (0, 0)))
    assert dx.shape == (0, 4, 4, 3)
    assert pool_kernels.global_avg_pool2d_forward_cuda(x).shape == (0, 3)


# ------------------------------------------------------------------------------ windowed backward forms
# The launchers run *_bwd_disjoint where windows cannot overlap (strides >= pool in both axes) and
# *_bwd_rows elsewhere. Both take dx's sum over windows in ascending (oh, ow) order from 0, as the
# references above do, so the two must agree bit for bit (signed zeros included) wherever dx is not NaN.
FORM_CASES = [
    ((2, 2), (2, 2), "disjoint"), ((1, 1), (1, 1), "disjoint"), ((1, 1), (3, 2), "disjoint"),
    ((2, 3), (3, 3), "disjoint"), ((3, 3), (2, 2), "rows"), ((2, 3), (3, 1), "rows"), ((3, 2), (2, 3), "rows"),
    ((3, 3), (1, 1), "rows"),
]
FORM_IDS = [f"p{p[0]}{p[1]}-s{s[0]}{s[1]}-{form}" for p, s, form in FORM_CASES]


@pytest.mark.parametrize("pool,strides,form", FORM_CASES, ids=FORM_IDS)
def test_backward_form_rule(pool, strides, form):
    assert pool_kernels.backward_form(pool, strides) == form


def _spy_kernel_names(monkeypatch):
    """The kernel names the launchers look up from now on."""
    names = []
    real = pool_kernels.get_kernel

    def spy(filename, name, *args, **kwargs):
        names.append(name)
        return real(filename, name, *args, **kwargs)

    monkeypatch.setattr(pool_kernels, "get_kernel", spy)
    return names


def _bits(a):
    a = _host(a)
    return a.view({4: numpy.uint32, 8: numpy.uint64}[a.dtype.itemsize])


def _bitwise(got, want, what):
    """got == want bit for bit where want is not NaN (a GPU's NaN payload may differ), NaN where it is."""
    got = _host(got)
    assert got.dtype == want.dtype and got.shape == want.shape, what
    nan = numpy.isnan(want)
    numpy.testing.assert_array_equal(numpy.isnan(got), nan, err_msg=f"{what}: NaN positions")
    mismatch = (_bits(got) != _bits(want)) & ~nan
    assert not mismatch.any(), f"{what}: {mismatch.sum()} elements differ in their bits, first at " \
                               f"{numpy.argwhere(mismatch)[0]}: {got[mismatch][0]!r} vs {want[mismatch][0]!r}"


def _gradient(rng, shape, dtype):
    """dy with signed zeros (a lone -0 term must come out +0), NaN and infinities among normal values."""
    dy = rng.standard_normal(shape).astype(dtype)
    u = rng.random(shape)
    dy[u < 0.1] = -0.0
    dy[(u >= 0.1) & (u < 0.13)] = numpy.nan
    dy[(u >= 0.13) & (u < 0.15)] = -numpy.inf
    return dy


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pool,strides,form", FORM_CASES, ids=FORM_IDS)
@pytest.mark.parametrize("shape,padding", [((3, 17, 33, 64), "same"), ((1, 33, 17, 3), "same"),
                                           ((3, 17, 18, 5), "valid"), ((2, 5, 7, 260), "same")],
                         ids=["17x33x64-same", "33x17x3-same", "17x18x5-valid", "5x7x260-same"])
def test_backward_forms_are_bitwise_the_window_ordered_sum(cupy_only, monkeypatch, rng, dtype, pool, strides, form,
                                                           shape, padding):
    from gpu_dl.ops import pool as pool_ops
    cupy = cupy_only
    pads = _padding(shape, pool, strides, padding)
    out_shape = (shape[0],) + _output_size(shape, pool, strides, pads) + (shape[3],)
    dy = _gradient(rng, out_shape, dtype)
    argmax = _random_argmax(rng, out_shape, pool)
    names = _spy_kernel_names(monkeypatch)
    dx_max = pool_kernels.max_pool2d_backward_cuda(cupy.asarray(dy), cupy.asarray(argmax), shape, pool, strides, pads)
    dx_avg = pool_kernels.avg_pool2d_backward_cuda(cupy.asarray(dy), shape, pool, strides, pads)
    suffix = "f32" if dtype == "float32" else "f64"
    assert names == [f"maxpool2d_bwd_{form}_{suffix}", f"avgpool2d_bwd_{form}_{suffix}"]
    want_max = max_pool_backward_reference(dy, argmax, shape, pool, strides, pads)
    want_avg = avg_pool_backward_reference(dy, shape, pool, strides, pads)
    _bitwise(dx_max, want_max, f"max pool dx ({form})")
    _bitwise(dx_avg, want_avg, f"avg pool dx ({form})")
    # The NumPy path sums overlapping windows tap by tap, another order: equal where a single window holds
    # each position, close elsewhere.
    check = _equal if form == "disjoint" else (lambda got, want, what: numpy.testing.assert_allclose(
        _host(got), want, err_msg=what, **TOLERANCE[dtype]))
    check(dx_max, pool_ops.max_pool2d_backward(dy, argmax, shape, pool, strides, pads), "max pool dx vs NumPy path")
    check(dx_avg, pool_ops.avg_pool2d_backward(dy, shape, pool, strides, pads), "avg pool dx vs NumPy path")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pool,strides", [((2, 2), (2, 2)), ((3, 3), (2, 2))], ids=["disjoint", "rows"])
def test_backward_forms_on_misaligned_arrays(cupy_only, rng, dtype, pool, strides):
    cupy = cupy_only
    shape, pads = (2, 9, 11, 8), ((0, 1), (0, 1))
    out_shape = (shape[0],) + _output_size(shape, pool, strides, pads) + (shape[3],)
    dy = _gradient(rng, out_shape, dtype)
    argmax = _random_argmax(rng, out_shape, pool)
    buffer = cupy.zeros(dy.size + 1, dtype=dtype)
    buffer[1:] = cupy.asarray(dy).ravel()
    shifted = buffer[1:].reshape(out_shape)   # vec 1: the scalar instantiations
    assert launch.vector_width(dtype, shape[3], shifted) == 1
    _bitwise(pool_kernels.max_pool2d_backward_cuda(shifted, cupy.asarray(argmax), shape, pool, strides, pads),
             max_pool_backward_reference(dy, argmax, shape, pool, strides, pads), "max pool dx, misaligned dy")
    _bitwise(pool_kernels.avg_pool2d_backward_cuda(shifted, shape, pool, strides, pads),
             avg_pool_backward_reference(dy, shape, pool, strides, pads), "avg pool dx, misaligned dy")


@pytest.mark.parametrize("dtype", DTYPES)
def test_rows_backward_strides_over_columns_past_the_grid(cupy_only, monkeypatch, rng, dtype):
    cupy = cupy_only
    monkeypatch.setattr(pool_kernels, "_MAX_GRID_Y", 1)   # one column tile: each thread walks several columns
    # C = 8: TX = 2 (float) or 4 (double) threads share a column, so a thread that ran ahead into the next tile
    # would overwrite ranges its neighbours still read (the barrier after each tile keeps it out).
    shape, pool, strides, pads = (2, 3, 300, 8), (1, 3), (1, 2), ((0, 0), (1, 1))
    out_shape = (shape[0],) + _output_size(shape, pool, strides, pads) + (shape[3],)
    dy = _gradient(rng, out_shape, dtype)
    argmax = _random_argmax(rng, out_shape, pool)
    _bitwise(pool_kernels.max_pool2d_backward_cuda(cupy.asarray(dy), cupy.asarray(argmax), shape, pool, strides,
                                                   pads),
             max_pool_backward_reference(dy, argmax, shape, pool, strides, pads), "max pool dx, one column tile")
    _bitwise(pool_kernels.avg_pool2d_backward_cuda(cupy.asarray(dy), shape, pool, strides, pads),
             avg_pool_backward_reference(dy, shape, pool, strides, pads), "avg pool dx, one column tile")


# ------------------------------------------------------------------------------------ global pooling
GLOBAL_SHAPES = [(1, 1, 1, 1), (3, 3, 3, 3), (1, 17, 33, 64), (3, 33, 17, 17), (3, 1, 17, 1), (2, 56, 56, 64),
                 (3, 7, 7, 2048), (1, 3, 1, 33)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", GLOBAL_SHAPES, ids=["x".join(map(str, s)) for s in GLOBAL_SHAPES])
def test_global_max_pool_forward_and_backward(cupy_only, rng, dtype, shape):
    cupy = cupy_only
    x = rng.standard_normal(shape).astype(dtype)
    want_y, want_arg = global_max_pool_reference(x)
    y, argmax = pool_kernels.global_max_pool2d_forward_cuda(cupy.asarray(x))
    _equal(y, want_y, "global max pool y")
    _equal(argmax, want_arg, "global max pool argmax")
    dy = rng.standard_normal(want_y.shape).astype(dtype)
    dx = pool_kernels.global_max_pool2d_backward_cuda(cupy.asarray(dy), argmax, shape)
    _equal(dx, global_max_pool_backward_reference(dy, want_arg, shape), "global max pool dx")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(3, 17, 33, 3), (3, 56, 56, 64), (3, 7, 7, 64)])   # samples 0-2 set below
def test_global_max_pool_ties_and_nan(cupy_only, rng, dtype, shape):
    cupy = cupy_only
    x = rng.integers(-2, 2, size=shape).astype(dtype)
    x[0] = 1.0                                          # all equal: position 0
    x[1, -1, -1] = 5.0                                  # one max at the last position
    x[2, :, :, ::2] = -numpy.inf
    nan = rng.random(shape) < 0.002
    nan[1] = False
    x[nan] = numpy.nan
    x[2, -1, -1, 1::2] = numpy.nan                      # a NaN at the last position of a channel
    want_y, want_arg = global_max_pool_reference(x)
    y, argmax = pool_kernels.global_max_pool2d_forward_cuda(cupy.asarray(x))
    _equal(y, want_y, "global max pool y, ties and NaN")
    _equal(argmax, want_arg, "global max pool argmax, ties and NaN")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", GLOBAL_SHAPES, ids=["x".join(map(str, s)) for s in GLOBAL_SHAPES])
def test_global_avg_pool_forward_and_backward(cupy_only, rng, dtype, shape):
    cupy = cupy_only
    x = rng.standard_normal(shape).astype(dtype)
    y = pool_kernels.global_avg_pool2d_forward_cuda(cupy.asarray(x))
    _close(y, global_avg_pool_reference(x), "global avg pool y")
    again = pool_kernels.global_avg_pool2d_forward_cuda(cupy.asarray(x))
    _equal(again, _host(y), "global avg pool y, second run (the sum order is fixed)")
    dy = rng.standard_normal((shape[0], shape[3])).astype(dtype)
    dx = pool_kernels.global_avg_pool2d_backward_cuda(cupy.asarray(dy), shape)
    _close(dx, global_avg_pool_backward_reference(dy, shape), "global avg pool dx")


# ------------------------------------------------------------------------------------------ bad input
def test_windowed_launchers_reject_bad_arguments(cupy_only):
    cupy = cupy_only
    x = cupy.zeros((2, 5, 5, 3), dtype=cupy.float32)
    valid = ((0, 0), (0, 0))
    fwd = pool_kernels.max_pool2d_forward_cuda
    with pytest.raises(TypeError, match="maxpool2d_fwd: `x` must be float32 or float64, got int32"):
        fwd(x.astype(cupy.int32), (2, 2), (2, 2), valid)
    # float16 (a layer under "mixed_float16") runs through the float32 kernel and comes back as float16.
    ramp = cupy.arange(x.size, dtype=cupy.float32).reshape(x.shape) / 7
    y16, argmax = fwd(ramp.astype(cupy.float16), (2, 2), (2, 2), valid)
    y32, _ = fwd(ramp.astype(cupy.float16).astype(cupy.float32), (2, 2), (2, 2), valid)
    assert y16.dtype == cupy.float16 and argmax.dtype.kind == "i"
    numpy.testing.assert_array_equal(cupy.asnumpy(y16), cupy.asnumpy(y32).astype(numpy.float16))
    with pytest.raises(TypeError, match="avgpool2d_fwd_f32: `x` must be a CuPy array"):
        pool_kernels.avg_pool2d_forward_cuda(numpy.zeros((2, 5, 5, 3), numpy.float32), (2, 2), (2, 2), valid)
    with pytest.raises(ValueError, match="maxpool2d_fwd_f32: `x` must be C-contiguous"):
        fwd(x.transpose(0, 2, 1, 3), (2, 2), (2, 2), valid)
    with pytest.raises(ValueError, match=r"maxpool2d_fwd_f32: `x` must have shape \(N, H, W, C\)"):
        fwd(x[0], (2, 2), (2, 2), valid)
    with pytest.raises(ValueError, match="`pool_size` must be at least 1"):
        fwd(x, (0, 2), (2, 2), valid)
    with pytest.raises(ValueError, match="`strides` must be at least 1"):
        fwd(x, (2, 2), (2, 0), valid)
    with pytest.raises(TypeError, match="`strides` must be a pair of ints"):
        fwd(x, (2, 2), 2, valid)
    with pytest.raises(TypeError, match="`pool_size` must be a pair of ints"):
        fwd(x, (2.5, 2), (2, 2), valid)
    with pytest.raises(ValueError, match="`padding` .* must be smaller than `pool_size`"):
        fwd(x, (2, 2), (2, 2), ((0, 2), (0, 0)))
    with pytest.raises(ValueError, match="`padding` must be at least 0"):
        fwd(x, (2, 2), (2, 2), ((-1, 0), (0, 0)))
    with pytest.raises(TypeError, match="`padding` must be"):
        fwd(x, (2, 2), (2, 2), (1, 1))
    with pytest.raises(ValueError, match="no output position"):
        fwd(cupy.zeros((1, 2, 5, 1), cupy.float32), (3, 3), (1, 1), valid)
    with pytest.raises(ValueError, match="empty spatial size"):
        fwd(cupy.zeros((1, 0, 5, 1), cupy.float32), (1, 1), (1, 1), valid)

    y, argmax = fwd(x, (2, 2), (2, 2), valid)   # (2, 2, 2, 3)
    bwd = pool_kernels.max_pool2d_backward_cuda
    with pytest.raises(ValueError, match=r"maxpool2d_bwd_f32: `dy` must have shape \(2, 2, 2, 3\)"):
        bwd(cupy.zeros((2, 2, 2, 4), cupy.float32), argmax, x.shape, (2, 2), (2, 2), valid)
    with pytest.raises(TypeError, match="maxpool2d_bwd_f32: `argmax` must have dtype int32"):
        bwd(y, argmax.astype(cupy.int64), x.shape, (2, 2), (2, 2), valid)
    with pytest.raises(ValueError, match="maxpool2d_bwd_f32: `argmax` must have shape"):
        bwd(y, argmax[:1], x.shape, (2, 2), (2, 2), valid)
    with pytest.raises(TypeError, match="maxpool2d_bwd: `dy` must be float32 or float64"):
        bwd(argmax, argmax, x.shape, (2, 2), (2, 2), valid)
    with pytest.raises(ValueError, match="maxpool2d_bwd_f32: `input_shape` must be a shape"):
        bwd(y, argmax, x.shape[1:], (2, 2), (2, 2), valid)
    with pytest.raises(ValueError, match="avgpool2d_bwd_f64: `dy` must have shape"):
        pool_kernels.avg_pool2d_backward_cuda(cupy.zeros((2, 3, 3, 3)), x.shape, (2, 2), (2, 2), valid)
    with pytest.raises(ValueError, match="avgpool2d_bwd_f32: `dy` must be C-contiguous"):
        pool_kernels.avg_pool2d_backward_cuda(cupy.zeros((2, 2, 3, 2), cupy.float32).transpose(0, 1, 3, 2),
                                              (2, 5, 5, 3), (2, 2), (2, 2), valid)


def test_global_launchers_reject_bad_arguments(cupy_only):
    cupy = cupy_only
    x = cupy.zeros((2, 5, 5, 3), dtype=cupy.float64)
    with pytest.raises(TypeError, match="global_maxpool2d_fwd: `x` must be float32 or float64"):
        pool_kernels.global_max_pool2d_forward_cuda(x.astype(cupy.int32))
    with pytest.raises(ValueError, match=r"global_avgpool2d_fwd_f64: `x` must have shape \(N, H, W, C\)"):
        pool_kernels.global_avg_pool2d_forward_cuda(x[:, 0])
    with pytest.raises(ValueError, match="global_avgpool2d_fwd_f64: `x` .* empty spatial size"):
        pool_kernels.global_avg_pool2d_forward_cuda(x[:, :0])
    y, argmax = pool_kernels.global_max_pool2d_forward_cuda(x)
    with pytest.raises(ValueError, match=r"global_maxpool2d_bwd_f64: `dy` must have shape \(2, 3\)"):
        pool_kernels.global_max_pool2d_backward_cuda(y[:1], argmax, x.shape)
    with pytest.raises(TypeError, match="global_maxpool2d_bwd_f64: `argmax` must have dtype int32"):
        pool_kernels.global_max_pool2d_backward_cuda(y, y, x.shape)
    with pytest.raises(ValueError, match="global_avgpool2d_bwd_f64: `input_shape` must be a shape"):
        pool_kernels.global_avg_pool2d_backward_cuda(y, (2, 5, 3))
    with pytest.raises(ValueError, match="global_avgpool2d_bwd_f64: `dy` must have shape"):
        pool_kernels.global_avg_pool2d_backward_cuda(y, (2, 5, 5, 4))
