"""The conv2d kernels (kernels/conv2d.cu via gpu_dl/ops/conv_kernels.py) against a plain NumPy reference.

The reference below works in float64 on the same (float32 or float64)
inputs: for each kernel tap (r, q) it slices the padded input at the pixels
that tap reads (start r*dh, step = the stride) and contracts the channels
with einsum; backward data adds each tap's contribution back into a padded
buffer (the adjoint of that slice) and crops the padding; backward filter
contracts each tap's slice with dy over (n, oh, ow).

Each result must lie within a bound of the reference computed per element
from S = the same convolution of |inputs| (sum of |a||b| over the terms):
  float64 / float32: (terms + 4) * 2u * S             (FMA accumulation in the dtype)
  tf32:              (2**-10 + (terms + 4) * 2**-21) * S (inputs rounded to 10-bit mantissas)
  bfloat16:          (2**-7  + (terms + 4) * 2**-21) * S (inputs rounded to 7-bit mantissas)
plus a few ulps of the value for the bias add and the activation. Outputs are
NaN-poisoned before every launch (conftest's autouse fixture), so an element
a kernel never writes fails. These tests need a GPU (``cupy_only``), except
the check that every kernel the launchers name is compiled.
"""
import numpy
import pytest

from gpu_dl.backend import to_numpy
from gpu_dl.ops import conv_kernels

# (N, H, W, Cin, Cout, (KH, KW), strides, dilation, ((pt, pb), (pl, pr)))
CASES = [
    (1, 1, 1, 1, 1, (1, 1), (1, 1), (1, 1), ((0, 0), (0, 0))),
    (3, 17, 33, 3, 32, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),      # the seed's first layer, "same"
    (2, 28, 28, 3, 32, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),      # ... at its image size
    (1, 17, 17, 17, 5, (3, 3), (2, 2), (1, 1), ((0, 1), (0, 1))),      # "same", stride 2: extra row bottom
    (3, 33, 17, 17, 33, (2, 5), (1, 3), (2, 1), ((2, 0), (1, 3))),     # asymmetric everything
    (1, 3, 3, 3, 33, (3, 3), (1, 1), (2, 2), ((2, 2), (2, 2))),        # dilated kernel larger than the image
    (3, 17, 17, 1, 32, (3, 3), (3, 2), (1, 2), ((1, 0), (2, 1))),
    (1, 33, 3, 17, 1, (2, 5), (2, 1), (1, 1), ((0, 1), (2, 2))),
    (3, 17, 17, 32, 64, (1, 1), (1, 1), (1, 1), ((0, 0), (0, 0))),     # 1x1, 16-byte loads
    (3, 17, 17, 32, 64, (1, 1), (2, 2), (1, 1), ((0, 0), (0, 0))),     # 1x1 stride 2
    (2, 12, 12, 64, 64, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1))),     # ResNet-like 3x3 64 -> 64
    (1, 9, 11, 8, 68, (3, 3), (2, 2), (1, 1), ((1, 1), (0, 2))),       # two column tiles, stride 2
    (3, 17, 17, 16, 36, (2, 5), (3, 1), (2, 1), ((1, 2), (3, 0))),     # vector loads, odd geometry
    # Conv1D's images of height 1: "causal" pads on the left only
    (2, 1, 17, 3, 5, (1, 3), (1, 1), (1, 2), ((0, 0), (4, 0))),        # dilated causal
    (3, 1, 33, 16, 36, (1, 2), (1, 3), (1, 1), ((0, 0), (1, 0))),      # strided causal, 16-byte loads
    (1, 1, 1, 4, 8, (1, 4), (1, 1), (1, 1), ((0, 0), (3, 0))),         # one step, a kernel of four
    (2, 1, 17, 8, 3, (1, 5), (1, 2), (1, 1), ((0, 0), (1, 2))),        # "same", stride 2
]
CASE_IDS = [f"n{c[0]}-{c[1]}x{c[2]}-c{c[3]}-o{c[4]}-k{c[5][0]}x{c[5][1]}-s{c[6][0]}{c[6][1]}-d{c[7][0]}{c[7][1]}"
            for c in CASES]
MODES = ["float64", "float32", "tf32", "bfloat16"]
_UNIT = {"float64": 2.0**-53, "float32": 2.0**-24, "tf32": 2.0**-24, "bfloat16": 2.0**-24}
_INPUT_ROUNDING = {"float64": 0.0, "float32": 0.0, "tf32": 2.0**-10, "bfloat16": 2.0**-7}
_ACCUMULATION = {"float64": 2.0**-52, "float32": 2.0**-23, "tf32": 2.0**-21, "bfloat16": 2.0**-21}


# ------------------------------------------------------------------------------- NumPy reference
def _out_size(size, k, s, d, before, after):
    return (size + before + after - d * (k - 1) - 1) // s + 1


def _tap_slices(KH, KW, OH, OW, strides, dilation):
    """For each tap (r, q): the slices of the padded input that it reads for every output pixel."""
    (sh, sw), (dh, dw) = strides, dilation
    for r in range(KH):
        for q in range(KW):
            yield r, q, (slice(None), slice(r * dh, r * dh + sh * (OH - 1) + 1, sh),
                         slice(q * dw, q * dw + sw * (OW - 1) + 1, sw), slice(None))


def ref_forward(x, w, strides, padding, dilation):
    x, w = numpy.asarray(x, numpy.float64), numpy.asarray(w, numpy.float64)
    N, H, W, _ = x.shape
    KH, KW, _, Cout = w.shape
    (pt, pb), (pl, pr) = padding
    OH = _out_size(H, KH, strides[0], dilation[0], pt, pb)
    OW = _out_size(W, KW, strides[1], dilation[1], pl, pr)
    xp = numpy.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    out = numpy.zeros((N, OH, OW, Cout))
    for r, q, window in _tap_slices(KH, KW, OH, OW, strides, dilation):
        out += numpy.einsum("nhwc,cd->nhwd", xp[window], w[r, q])
    return out


def ref_backward_input(dy, w, input_shape, strides, padding, dilation):
    dy, w = numpy.asarray(dy, numpy.float64), numpy.asarray(w, numpy.float64)
    N, H, W, Cin = input_shape
    _, OH, OW, _ = dy.shape
    KH, KW = w.shape[:2]
    (pt, pb), (pl, pr) = padding
    dxp = numpy.zeros((N, H + pt + pb, W + pl + pr, Cin))
    for r, q, window in _tap_slices(KH, KW, OH, OW, strides, dilation):
        dxp[window] += numpy.einsum("nhwd,cd->nhwc", dy, w[r, q])
    return dxp[:, pt:pt + H, pl:pl + W, :]


def ref_backward_kernel(x, dy, kernel_shape, strides, padding, dilation):
    x, dy = numpy.asarray(x, numpy.float64), numpy.asarray(dy, numpy.float64)
    KH, KW, Cin, Cout = kernel_shape
    _, OH, OW, _ = dy.shape
    (pt, pb), (pl, pr) = padding
    xp = numpy.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    dw = numpy.zeros(kernel_shape)
    for r, q, window in _tap_slices(KH, KW, OH, OW, strides, dilation):
        dw[r, q] = numpy.einsum("nhwc,nhwd->cd", xp[window], dy)
    return dw


def test_reference_matches_a_direct_loop():
    """The slicing reference against the definition, element by element, on one small odd case."""
    rng = numpy.random.default_rng(7)
    N, H, W, Cin, Cout, (KH, KW) = 2, 7, 6, 3, 2, (3, 2)
    strides, dilation, padding = (2, 1), (1, 2), ((2, 0), (1, 3))
    (sh, sw), (dh, dw), ((pt, pb), (pl, pr)) = strides, dilation, padding
    x, w = rng.standard_normal((N, H, W, Cin)), rng.standard_normal((KH, KW, Cin, Cout))
    OH, OW = _out_size(H, KH, sh, dh, pt, pb), _out_size(W, KW, sw, dw, pl, pr)
    dy = rng.standard_normal((N, OH, OW, Cout))
    y, dx, dk = numpy.zeros((N, OH, OW, Cout)), numpy.zeros(x.shape), numpy.zeros(w.shape)
    for n in range(N):
        for oh in range(OH):
            for ow in range(OW):
                for r in range(KH):
                    for q in range(KW):
                        h, v = oh * sh - pt + r * dh, ow * sw - pl + q * dw
                        if 0 <= h < H and 0 <= v < W:
                            y[n, oh, ow] += x[n, h, v] @ w[r, q]
                            dx[n, h, v] += w[r, q] @ dy[n, oh, ow]
                            dk[r, q] += numpy.outer(x[n, h, v], dy[n, oh, ow])
    numpy.testing.assert_allclose(ref_forward(x, w, strides, padding, dilation), y, rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(ref_backward_input(dy, w, x.shape, strides, padding, dilation), dx,
                                  rtol=1e-12, atol=1e-12)
    numpy.testing.assert_allclose(ref_backward_kernel(x, dy, w.shape, strides, padding, dilation), dk,
                                  rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------------------- helpers
def _inputs(rng, case, dtype):
    N, H, W, Cin, Cout, (KH, KW), strides, dilation, padding = case
    OH = _out_size(H, KH, strides[0], dilation[0], *padding[0])
    OW = _out_size(W, KW, strides[1], dilation[1], *padding[1])
    x = rng.standard_normal((N, H, W, Cin)).astype(dtype)
    w = rng.standard_normal((KH, KW, Cin, Cout)).astype(dtype)
    b = rng.standard_normal(Cout).astype(dtype)
    dy = rng.standard_normal((N, OH, OW, Cout)).astype(dtype)
    return x, w, b, dy


def _dtype(mode):
    return "float64" if mode == "float64" else "float32"


def _precision(mode):
    return None if mode == "float64" else mode


def _bound(mode, scale, terms, want):
    return ((_INPUT_ROUNDING[mode] + (terms + 4) * _ACCUMULATION[mode]) * scale
            + 8 * _UNIT[mode] * numpy.abs(want))


def _check(got, want, bound, dtype, what):
    got = to_numpy(got)
    assert got.dtype == numpy.dtype(dtype), f"{what}: dtype {got.dtype}, expected {dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    unwritten = numpy.isnan(got)
    assert not unwritten.any(), f"{what}: {unwritten.sum()} unwritten (NaN) elements, first at " \
                                f"{numpy.unravel_index(numpy.argmax(unwritten), got.shape)}"
    err = numpy.abs(got.astype(numpy.float64) - want)
    worst = numpy.unravel_index(numpy.argmax(err - bound), got.shape)
    assert (err <= bound).all(), (f"{what}: {(err > bound).sum()} elements out of bound; worst at {worst}: "
                                  f"got {got[worst]!r}, want {want[worst]!r}, bound {bound[worst]:.3g}")


def _geometry(case):
    return dict(strides=case[6], padding=case[8], dilation=case[7])


# ------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_forward_matches_numpy(cupy_only, rng, case, mode):
    cupy, dtype = cupy_only, _dtype(mode)
    x, w, b, _ = _inputs(rng, case, dtype)
    geometry = _geometry(case)
    want = ref_forward(x, w, **geometry)
    scale = ref_forward(numpy.abs(x), numpy.abs(w), **geometry)
    terms = case[5][0] * case[5][1] * case[3]
    z, y = conv_kernels.conv2d_forward_cuda(cupy.asarray(x), cupy.asarray(w), None, precision=_precision(mode),
                                            **geometry)
    assert y is z
    _check(z, want, _bound(mode, scale, terms, want), dtype, f"forward {mode}")
    z, y = conv_kernels.conv2d_forward_cuda(cupy.asarray(x), cupy.asarray(w), cupy.asarray(b),
                                            precision=_precision(mode), **geometry)
    assert y is z
    want = want + b
    _check(z, want, _bound(mode, scale, terms, want), dtype, f"forward + bias {mode}")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("activation,params,f", [
    ("relu", None, lambda z: numpy.maximum(z, 0.0)),
    ("tanh", None, numpy.tanh),
    ("leaky_relu", {"negative_slope": 0.3}, lambda z: numpy.maximum(z, 0.3 * z)),
], ids=["relu", "tanh", "leaky_relu"])
@pytest.mark.parametrize("case", [CASES[1], CASES[4], CASES[10], CASES[11]], ids=[CASE_IDS[i] for i in (1, 4, 10, 11)])
def test_fused_bias_activation_epilogue(cupy_only, rng, case, activation, params, f, mode):
    cupy, dtype = cupy_only, _dtype(mode)
    x, w, b, _ = _inputs(rng, case, dtype)
    geometry = _geometry(case)
    want_z = ref_forward(x, w, **geometry) + b
    scale = ref_forward(numpy.abs(x), numpy.abs(w), **geometry)
    terms = case[5][0] * case[5][1] * case[3]
    z, y = conv_kernels.conv2d_forward_cuda(cupy.asarray(x), cupy.asarray(w), cupy.asarray(b), activation=activation,
                                            activation_params=params, precision=_precision(mode), **geometry)
    assert y is not z
    bound_z = _bound(mode, scale, terms, want_z)
    _check(z, want_z, bound_z, dtype, f"z of {activation} {mode}")
    # Every activation here is 1-Lipschitz: y's error is z's plus the function's own rounding.
    want_y = f(want_z)
    _check(y, want_y, bound_z + 8 * _UNIT[mode] * (numpy.abs(want_y) + 1), dtype, f"{activation}(z) {mode}")
    # The activation applied to the kernel's own z, as the elementwise kernel would: equal up to libm ulps
    # of that value (not of want_y: with bfloat16 inputs the kernel's z may lie far from want_z).
    on_kernel_z = f(to_numpy(z).astype(numpy.float64))
    _check(y, on_kernel_z, 16 * _UNIT[mode] * (numpy.abs(on_kernel_z) + 1e-30), dtype,
           f"{activation}(kernel's z) {mode}")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("activation", ["relu", "sigmoid", "linear"])
@pytest.mark.parametrize("case", [CASES[0], CASES[1], CASES[4], CASES[11], CASES[13]],
                         ids=[CASE_IDS[i] for i in (0, 1, 4, 11, 13)])
def test_forward_without_z_writes_y_alone(cupy_only, rng, case, activation, mode):
    """want_z=False: no z (None) unless the activation is linear (then z is y), and y the same bits as with z
    (the same kernel and arithmetic); y is checked against NumPy and is NaN-poisoned before the launch."""
    cupy, dtype = cupy_only, _dtype(mode)
    x, w, b, _ = _inputs(rng, case, dtype)
    geometry = _geometry(case)
    args = (cupy.asarray(x), cupy.asarray(w), cupy.asarray(b))
    z, y = conv_kernels.conv2d_forward_cuda(*args, activation=activation, precision=_precision(mode), want_z=False,
                                            **geometry)
    if activation == "linear":
        assert z is y
    else:
        assert z is None
    _, y_with_z = conv_kernels.conv2d_forward_cuda(*args, activation=activation, precision=_precision(mode),
                                                   **geometry)
    assert numpy.array_equal(to_numpy(y), to_numpy(y_with_z))
    want_z = ref_forward(x, w, **geometry) + b
    want = {"relu": numpy.maximum(want_z, 0.0), "sigmoid": 1.0 / (1.0 + numpy.exp(-want_z)), "linear": want_z}
    bound_z = _bound(mode, ref_forward(numpy.abs(x), numpy.abs(w), **geometry), case[5][0] * case[5][1] * case[3],
                     want_z)
    _check(y, want[activation], bound_z + 8 * _UNIT[mode] * (numpy.abs(want[activation]) + 1), dtype,
           f"{activation} without z, {mode}")


@pytest.mark.parametrize("rows,tiles_n,sms,want", [
    (25088, 1, 132, 64),     # 196 blocks of 128 rows: the busiest SM 256 rows; 392 of 64: 192
    (32768, 1, 132, 128),    # 256 blocks: 2 (256 rows) against 4 of 64 (256 rows)
    (100352, 1, 132, 128),   # 784 blocks: 6 (768 rows) against 12 (768)
    (401408, 1, 132, 128),
    (1, 1, 132, 64),         # one block: 64 rows instead of 128
    (2000, 2, 16, 128),      # 32 blocks on 16 SMs: 2 each (256 rows) against 4 of 64 rows (256)
    (1000, 1, 16, 64),       # 8 blocks on 16 SMs: 128 rows against 64
    (1100, 1, 4, 128),       # 9 blocks: 3 (384 rows) against 18 of 64: 5 (320, over 0.8 x 384)
])
def test_row_tile_rule(rows, tiles_n, sms, want):
    """The forward / backward-data row tile: 64 where the busiest SM gets at most 0.8 of its 128-row work."""
    assert conv_kernels._row_tile_on(rows, tiles_n, sms) == want


@pytest.mark.parametrize("mode", ["tf32", "bfloat16", "float32"])
@pytest.mark.parametrize("rows", [64, 128])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_both_row_tiles_match_numpy(cupy_only, rng, case, rows, mode):
    """Forward (bias, relu, z and y) and backward data with each row tile forced: both right on every case."""
    cupy = cupy_only
    x, w, b, dy = _inputs(rng, case, "float32")
    geometry = _geometry(case)
    launched = []
    with _recording_launches(launched), conv_kernels.forced_row_tile(rows):
        z, y = conv_kernels.conv2d_forward_cuda(cupy.asarray(x), cupy.asarray(w), cupy.asarray(b),
                                                activation="relu", precision=mode, **geometry)
        dx = conv_kernels.conv2d_backward_input_cuda(cupy.asarray(dy), cupy.asarray(w), x.shape, precision=mode,
                                                     **geometry)
    assert len(launched) == 2 and all(("_m64_" in name) == (rows == 64) for name in launched), launched
    want_z = ref_forward(x, w, **geometry) + b
    bound_z = _bound(mode, ref_forward(numpy.abs(x), numpy.abs(w), **geometry), case[5][0] * case[5][1] * case[3],
                     want_z)
    _check(z, want_z, bound_z, "float32", f"z, {rows}-row tile, {mode}")
    _check(y, numpy.maximum(want_z, 0.0), bound_z, "float32", f"relu(z), {rows}-row tile, {mode}")
    want = ref_backward_input(dy, w, x.shape, **geometry)
    scale = ref_backward_input(numpy.abs(dy), numpy.abs(w), x.shape, **geometry)
    _check(dx, want, _bound(mode, scale, case[5][0] * case[5][1] * case[4], want), "float32",
           f"backward input, {rows}-row tile, {mode}")


def _recording_launches(names, prefixes=("conv2d_fwd", "conv2d_bwd_data")):
    """Within the block, the names of the conv2d kernels launched (those starting with one of ``prefixes``) are
    appended to ``names``."""
    import contextlib
    original = conv_kernels.get_kernel

    def get_kernel(filename, name, *options):
        if name.startswith(prefixes):
            names.append(name)
        return original(filename, name, *options)

    @contextlib.contextmanager
    def recording():
        conv_kernels.get_kernel = get_kernel
        try:
            yield
        finally:
            conv_kernels.get_kernel = original
    return recording()


def test_the_rule_picks_the_launched_tile(cupy_only, rng, monkeypatch):
    """Without a forced tile the launch is the rule's (on this device's SM count), and forced_row_tile refuses
    other sizes."""
    cupy = cupy_only
    case = CASES[10]   # 2 x 12 x 12 rows = 288, 64 columns: 3 blocks of 128 rows, 5 of 64 (fewer than the SMs)
    x, w, _, dy = _inputs(rng, case, "float32")
    sms = conv_kernels._multiprocessors(cupy.cuda.runtime.getDevice())
    for fake_sms, tile in ((sms, conv_kernels._row_tile_on(288, 1, sms)), (1, 128)):
        monkeypatch.setattr(conv_kernels, "_multiprocessors", lambda device, fake_sms=fake_sms: fake_sms)
        launched = []
        with _recording_launches(launched):
            conv_kernels.conv2d_forward_cuda(cupy.asarray(x), cupy.asarray(w), None, precision="tf32",
                                             **_geometry(case))
            conv_kernels.conv2d_backward_input_cuda(cupy.asarray(dy), cupy.asarray(w), x.shape, precision="tf32",
                                                    **_geometry(case))
        assert launched == [f"conv2d_fwd_tf32{'_m64' if tile == 64 else ''}_n64",
                            f"conv2d_bwd_data_tf32{'_m64' if tile == 64 else ''}_n64"]
    with pytest.raises(ValueError, match="`rows` must be 128 or 64, got 32"):
        with conv_kernels.forced_row_tile(32):
            pass


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_backward_input_matches_numpy(cupy_only, rng, case, mode):
    cupy, dtype = cupy_only, _dtype(mode)
    x, w, _, dy = _inputs(rng, case, dtype)
    geometry = _geometry(case)
    want = ref_backward_input(dy, w, x.shape, **geometry)
    scale = ref_backward_input(numpy.abs(dy), numpy.abs(w), x.shape, **geometry)
    terms = case[5][0] * case[5][1] * case[4]
    dx = conv_kernels.conv2d_backward_input_cuda(cupy.asarray(dy), cupy.asarray(w), x.shape,
                                                 precision=_precision(mode), **geometry)
    _check(dx, want, _bound(mode, scale, terms, want), dtype, f"backward input {mode}")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_backward_kernel_matches_numpy(cupy_only, rng, case, mode):
    cupy, dtype = cupy_only, _dtype(mode)
    x, w, _, dy = _inputs(rng, case, dtype)
    geometry = _geometry(case)
    want = ref_backward_kernel(x, dy, w.shape, **geometry)
    scale = ref_backward_kernel(numpy.abs(x), numpy.abs(dy), w.shape, **geometry)
    terms = dy.shape[0] * dy.shape[1] * dy.shape[2]
    dk = conv_kernels.conv2d_backward_kernel_cuda(cupy.asarray(x), cupy.asarray(dy), w.shape,
                                                  precision=_precision(mode), **geometry)
    _check(dk, want, _bound(mode, scale, terms, want), dtype, f"backward kernel {mode}")


@pytest.mark.parametrize("mode", MODES)
def test_backward_kernel_is_reproducible_bit_for_bit(cupy_only, rng, mode):
    """Many splits (a long reduction): two calls give the same bits."""
    cupy, dtype = cupy_only, _dtype(mode)
    case = (8, 28, 28, 3, 32, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)))
    x, w, _, dy = _inputs(rng, case, dtype)
    x, dy = cupy.asarray(x), cupy.asarray(dy)
    first = conv_kernels.conv2d_backward_kernel_cuda(x, dy, w.shape, precision=_precision(mode), **_geometry(case))
    second = conv_kernels.conv2d_backward_kernel_cuda(x, dy, w.shape, precision=_precision(mode), **_geometry(case))
    assert numpy.array_equal(to_numpy(first).view(numpy.uint8), to_numpy(second).view(numpy.uint8))
    want = ref_backward_kernel(to_numpy(x), to_numpy(dy), w.shape, **_geometry(case))
    scale = ref_backward_kernel(numpy.abs(to_numpy(x)), numpy.abs(to_numpy(dy)), w.shape, **_geometry(case))
    _check(first, want, _bound(mode, scale, 8 * 28 * 28, want), dtype, f"backward kernel, long reduction, {mode}")


# ------------------------------------------------------------------------ tiled float32 = exact float32
_LONG_CASE = (8, 28, 28, 3, 32, (3, 3), (1, 1), (1, 1), ((1, 1), (1, 1)))   # backward filter: many splits


def _float32_all_directions(cupy, kind, x, w, b, dy, case):
    """z, y (bias + relu), dx and dk at precision "float32" from the ``kind`` kernels, and the names launched."""
    geometry, launched = _geometry(case), []
    with conv_kernels.forced_float32_kernel(kind), _recording_launches(launched, ("conv2d_",)):
        z, y = conv_kernels.conv2d_forward_cuda(cupy.asarray(x), cupy.asarray(w), cupy.asarray(b),
                                                activation="relu", precision="float32", **geometry)
        dx = conv_kernels.conv2d_backward_input_cuda(cupy.asarray(dy), cupy.asarray(w), x.shape,
                                                     precision="float32", **geometry)
        dk = conv_kernels.conv2d_backward_kernel_cuda(cupy.asarray(x), cupy.asarray(dy), w.shape,
                                                      precision="float32", **geometry)
    return [to_numpy(a) for a in (z, y, dx, dk)], launched


def _assert_same_bits(tiled, exact, what):
    for name, got, want in zip(("z", "relu(z)", "dx", "dk"), tiled, exact):
        assert got.dtype == want.dtype == numpy.float32 and got.shape == want.shape, (what, name)
        differ = got.view(numpy.uint32) != want.view(numpy.uint32)
        assert not differ.any(), (f"{what}, {name}: {differ.sum()} elements differ in bits; first at "
                                  f"{numpy.unravel_index(numpy.argmax(differ), got.shape)}: tiled "
                                  f"{got[differ][0]!r}, exact {want[differ][0]!r}")


def _launch_kinds(launched):
    """The kernel families launched: "tiled" (f32tile), "exact" (_f32) and the split reduce."""
    kinds = {"f32tile" if "_f32tile_" in n else "reduce" if "_reduce_" in n else n.rsplit("_", 1)[1] for n in launched}
    return kinds - {"reduce"}


@pytest.mark.parametrize("case", CASES + [_LONG_CASE], ids=CASE_IDS + ["long-reduction"])
def test_tiled_float32_gives_the_exact_kernels_bits(cupy_only, rng, case):
    """Precision "float32": the tiled kernels (the ones launched by default on sm_80+) give the exact kernels'
    bits in every direction (bias + relu epilogue, backward data's skipped taps, backward filter's splits), and
    lie within the float32 bound of the NumPy reference."""
    cupy = cupy_only
    x, w, b, dy = _inputs(rng, case, "float32")
    tiled, launched_tiled = _float32_all_directions(cupy, "tiled", x, w, b, dy, case)
    exact, launched_exact = _float32_all_directions(cupy, "exact", x, w, b, dy, case)
    assert _launch_kinds(launched_tiled) == {"f32tile"} and len(launched_tiled) >= 3, launched_tiled
    assert _launch_kinds(launched_exact) == {"f32"} and len(launched_exact) >= 3, launched_exact
    # the same splits, so the same reduce launches
    assert [n for n in launched_tiled if "_reduce_" in n] == [n for n in launched_exact if "_reduce_" in n]
    _assert_same_bits(tiled, exact, "tiled against exact")
    geometry = _geometry(case)
    want_z = ref_forward(x, w, **geometry) + b
    scale = ref_forward(numpy.abs(x), numpy.abs(w), **geometry)
    _check(tiled[0], want_z, _bound("float32", scale, case[5][0] * case[5][1] * case[3], want_z), "float32",
           "tiled z")
    want = ref_backward_input(dy, w, x.shape, **geometry)
    scale = ref_backward_input(numpy.abs(dy), numpy.abs(w), x.shape, **geometry)
    _check(tiled[2], want, _bound("float32", scale, case[5][0] * case[5][1] * case[4], want), "float32", "tiled dx")
    want = ref_backward_kernel(x, dy, w.shape, **geometry)
    scale = ref_backward_kernel(numpy.abs(x), numpy.abs(dy), w.shape, **geometry)
    _check(tiled[3], want, _bound("float32", scale, dy.shape[0] * dy.shape[1] * dy.shape[2], want), "float32",
           "tiled dk")


@pytest.mark.parametrize("case", [CASES[3], CASES[4], CASES[11], CASES[12], CASES[13]],
                         ids=[CASE_IDS[i] for i in (3, 4, 11, 12, 13)])
def test_tiled_float32_skips_the_terms_the_exact_kernels_skip(cupy_only, rng, case):
    """Sums of -0 stay -0, and inf or NaN reached only through padding or off-pixel taps stays out, as in the
    exact kernels: the tiled kernels do not multiply padding by zero (+0 * w would turn a -0 sum into +0,
    0 * inf is NaN). Every product here underflows to -0 (-1e-30 * 1e-30), so every sum is -0, except where a
    real term is inf or NaN."""
    cupy = cupy_only
    x, w, b, dy = _inputs(rng, case, "float32")
    b = numpy.zeros_like(b)   # -0 + +0 is +0: the relu epilogue and the bias add see +0 alike in both kernels
    geometry = _geometry(case)
    ones = [numpy.ones(a.shape) for a in (x, w, dy)]
    # An output with no real term keeps the accumulator's initial +0; every other one is -0.
    reached = {"z": ref_forward(ones[0], ones[1], **geometry) > 0,
               "dx": ref_backward_input(ones[2], ones[1], x.shape, **geometry) > 0,
               "dk": ref_backward_kernel(ones[0], ones[2], w.shape, **geometry) > 0}
    tiny = numpy.float32(1e-30)
    # x*w and x*dy negative (z, dk), then dy*w negative (dx)
    for sx, sw, sdy, checked in ((-1, 1, 1, ("z", "dk")), (1, -1, 1, ("dx",))):
        x, w, dy = (numpy.full(a.shape, sign * tiny, numpy.float32) for a, sign in ((x, sx), (w, sw), (dy, sdy)))
        tiled, launched = _float32_all_directions(cupy, "tiled", x, w, b, dy, case)
        exact, _ = _float32_all_directions(cupy, "exact", x, w, b, dy, case)
        _assert_same_bits(tiled, exact, "-0 sums")
        # the split reduce's sums start from +0, and +0 + -0 is +0: dk keeps its -0s with one split only
        split = any("_reduce_" in name for name in launched)
        z, _ = conv_kernels.conv2d_forward_cuda(cupy.asarray(x), cupy.asarray(w), None, precision="float32",
                                                **geometry)
        results = {"z": to_numpy(z), "dx": tiled[2], "dk": tiled[3]}
        for what in checked:
            got = results[what]
            assert reached[what].any() and (got == 0).all(), what
            assert numpy.array_equal(numpy.signbit(got), reached[what] & (what != "dk" or not split)), what
    # inf, NaN, -0 and ordinary values mixed: the same bits, NaNs included.
    x, w, b, dy = _inputs(rng, case, "float32")
    for a in (x, w, dy):
        flat = a.reshape(-1)
        picks = rng.choice(flat.size, size=max(2, flat.size // 200), replace=False)
        flat[picks] = rng.choice(numpy.array([numpy.inf, -numpy.inf, numpy.nan, -0.0], numpy.float32), picks.size)
    tiled, _ = _float32_all_directions(cupy, "tiled", x, w, b, dy, case)
    exact, _ = _float32_all_directions(cupy, "exact", x, w, b, dy, case)
    _assert_same_bits(tiled, exact, "inf, NaN and -0 inputs")
    assert any(numpy.isfinite(a).any() for a in tiled) and not all(numpy.isfinite(a).all() for a in tiled)


def test_float32_runs_the_exact_kernels_without_sm80(cupy_only, rng, monkeypatch):
    """On a GPU older than sm_80 precision "float32" launches the exact kernels, even when "tiled" is forced;
    forced_float32_kernel refuses other kinds."""
    cupy = cupy_only
    case = CASES[4]
    x, w, b, dy = _inputs(rng, case, "float32")
    monkeypatch.setattr(conv_kernels, "_has_tensor_cores", lambda: False)
    _, launched = _float32_all_directions(cupy, "tiled", x, w, b, dy, case)
    assert _launch_kinds(launched) == {"f32"}, launched
    with pytest.raises(ValueError, match="`kind` must be 'exact' or 'tiled', got 'fast'"):
        with conv_kernels.forced_float32_kernel("fast"):
            pass


def _striped_sum(partial):
    """The split reduce's documented order in NumPy, in the partials' dtype: 8 stripes (s mod 8), 4 accumulators
    each (accumulator j of stripe t takes s = t + 8*(4i + j)), a stripe's total (a0 + a1) + (a2 + a3), and the 8
    totals added in stripe order, every sum starting from zero."""
    splits, count = partial.shape
    zero = numpy.zeros(count, partial.dtype)
    acc = [[zero.copy() for _ in range(4)] for _ in range(8)]
    for s in range(splits):
        t, j = s % 8, (s // 8) % 4
        acc[t][j] = acc[t][j] + partial[s]
    total = zero.copy()
    for t in range(8):
        total = total + ((acc[t][0] + acc[t][1]) + (acc[t][2] + acc[t][3]))
    return total


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("splits,count", [(2, 1), (3, 33), (8, 31), (9, 64), (31, 17), (33, 97), (40, 65),
                                          (392, 864)], ids=lambda v: str(v))
def test_split_reduce_sums_in_its_documented_order(cupy_only, rng, splits, count, dtype):
    """The reduce of the splits' partial sums: the same bits as its documented order replayed in NumPy (every
    tail of the 4-accumulator loop: splits below, at and past multiples of 8 and 32), within rounding of the
    float64 sum, and every output written (the output is NaN-poisoned)."""
    cupy = cupy_only
    # magnitudes over several decades, so that a different order of the additions gives different bits
    partial = (rng.standard_normal((splits, count)) * 10.0 ** rng.integers(-3, 4, (splits, count))).astype(dtype)
    out = cupy.full((count,), numpy.nan, dtype=dtype)
    conv_kernels._sum_splits(cupy.asarray(partial), out)
    got = to_numpy(out)
    assert numpy.array_equal(got.view(numpy.uint8), _striped_sum(partial).view(numpy.uint8))
    want = partial.astype(numpy.float64).sum(axis=0)
    bound = (splits + 4) * 2 * _UNIT[dtype] * numpy.abs(partial).sum(axis=0)
    _check(got, want, bound, dtype, f"split reduce {splits} x {count}")


def test_split_reduce_rejects_bad_arguments(cupy_only):
    cupy = cupy_only
    partial = cupy.zeros((3, 5), dtype=cupy.float32)
    with pytest.raises(ValueError, match="`partial` must be 2-D"):
        conv_kernels._sum_splits(partial.reshape(15), cupy.zeros(5, cupy.float32))
    with pytest.raises(TypeError, match="`out` must have dtype float32"):
        conv_kernels._sum_splits(partial, cupy.zeros(5, cupy.float64))
    with pytest.raises(ValueError, match="`out` has 4 elements"):
        conv_kernels._sum_splits(partial, cupy.zeros(4, cupy.float32))


@pytest.mark.parametrize("mode", ["tf32", "bfloat16", "float32"])
def test_misaligned_inputs_take_the_element_loads(cupy_only, rng, mode):
    """Channels a multiple of 4 but arrays starting 4 bytes past a 16-byte boundary: still right."""
    cupy = cupy_only
    case = CASES[10]
    x, w, b, dy = _inputs(rng, case, "float32")
    geometry = _geometry(case)

    def shifted(a):   # a C-contiguous view whose data starts one float past the allocation
        buffer = cupy.empty(a.size + 1, dtype=a.dtype)
        view = buffer[1:].reshape(a.shape)
        view[...] = cupy.asarray(a)
        assert view.flags.c_contiguous and view.data.ptr % 16 != 0
        return view

    terms = case[5][0] * case[5][1] * case[3]
    want = ref_forward(x, w, **geometry) + b
    z, _ = conv_kernels.conv2d_forward_cuda(shifted(x), shifted(w), shifted(b), precision=mode, **geometry)
    _check(z, want, _bound(mode, ref_forward(numpy.abs(x), numpy.abs(w), **geometry), terms, want), "float32",
           f"forward, misaligned, {mode}")
    want = ref_backward_input(dy, w, x.shape, **geometry)
    dx = conv_kernels.conv2d_backward_input_cuda(shifted(dy), shifted(w), x.shape, precision=mode, **geometry)
    scale = ref_backward_input(numpy.abs(dy), numpy.abs(w), x.shape, **geometry)
    _check(dx, want, _bound(mode, scale, case[5][0] * case[5][1] * case[4], want), "float32",
           f"backward input, misaligned, {mode}")
    want = ref_backward_kernel(x, dy, w.shape, **geometry)
    dk = conv_kernels.conv2d_backward_kernel_cuda(shifted(x), shifted(dy), w.shape, precision=mode, **geometry)
    scale = ref_backward_kernel(numpy.abs(x), numpy.abs(dy), w.shape, **geometry)
    _check(dk, want, _bound(mode, scale, dy.shape[0] * dy.shape[1] * dy.shape[2], want), "float32",
           f"backward kernel, misaligned, {mode}")


def test_default_precision_follows_the_backend_setting(cupy_only, rng, monkeypatch):
    """precision=None is backend.conv_precision(): "float32" there gives the exact kernel's result."""
    from gpu_dl import backend
    cupy = cupy_only
    case = CASES[4]
    x, w, _, _ = _inputs(rng, case, "float32")
    monkeypatch.setattr(backend, "conv_precision", lambda: "float32")
    z, _ = conv_kernels.conv2d_forward_cuda(cupy.asarray(x), cupy.asarray(w), None, **_geometry(case))
    exact, _ = conv_kernels.conv2d_forward_cuda(cupy.asarray(x), cupy.asarray(w), None, precision="float32",
                                                **_geometry(case))
    assert numpy.array_equal(to_numpy(z), to_numpy(exact))


def test_launchers_reject_bad_arguments(cupy_only):
    cupy = cupy_only
    geometry = dict(strides=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1))
    x = cupy.zeros((2, 5, 5, 3), dtype=cupy.float32)
    w = cupy.zeros((3, 3, 3, 4), dtype=cupy.float32)
    dy = cupy.zeros((2, 5, 5, 4), dtype=cupy.float32)
    fwd, bwd_in, bwd_k = (conv_kernels.conv2d_forward_cuda, conv_kernels.conv2d_backward_input_cuda,
                          conv_kernels.conv2d_backward_kernel_cuda)
    with pytest.raises(TypeError, match="`x` must be float32 or float64, got int32"):
        fwd(x.astype(cupy.int32), w, None, **geometry)
    # float16 (a layer under "mixed_float16") runs through the float32 kernels and comes back as float16.
    ramp = (cupy.arange(x.size, dtype=cupy.float32).reshape(x.shape) % 5).astype(cupy.float16)
    ones = cupy.ones(w.shape, dtype=cupy.float16)
    y16 = fwd(ramp, ones, None, precision="float32", **geometry)[0]
    y32 = fwd(ramp.astype(cupy.float32), ones.astype(cupy.float32), None, precision="float32", **geometry)[0]
    assert y16.dtype == cupy.float16
    numpy.testing.assert_array_equal(cupy.asnumpy(y16), cupy.asnumpy(y32).astype(numpy.float16))
    dx16 = bwd_in(cupy.ones(dy.shape, cupy.float16), ones, x.shape, precision="float32", **geometry)
    assert dx16.dtype == cupy.float16
    assert bwd_k(ramp, cupy.ones(dy.shape, cupy.float16), w.shape, precision="float32", **geometry).dtype == \
        cupy.float16
    with pytest.raises(TypeError, match="`x` must be a CuPy array"):
        fwd(numpy.zeros((2, 5, 5, 3), numpy.float32), w, None, **geometry)
    with pytest.raises(TypeError, match="`kernel` must have dtype float32"):
        fwd(x, w.astype(cupy.float64), None, **geometry)
    with pytest.raises(ValueError, match="`x` must be C-contiguous"):
        fwd(cupy.zeros((2, 5, 5, 6), dtype=cupy.float32)[..., ::2], w, None, **geometry)
    with pytest.raises(ValueError, match="`kernel` has 4 input channels"):
        fwd(x, cupy.zeros((3, 3, 4, 4), dtype=cupy.float32), None, **geometry)
    with pytest.raises(ValueError, match="`bias` must have shape"):
        fwd(x, w, cupy.zeros(3, dtype=cupy.float32), **geometry)
    with pytest.raises(ValueError, match="`x` must be 4-D"):
        fwd(x[0], w, None, **geometry)
    with pytest.raises(ValueError, match="`strides`"):
        fwd(x, w, None, strides=(0, 1), padding=((0, 0), (0, 0)), dilation=(1, 1))
    with pytest.raises(ValueError, match="`padding`"):
        fwd(x, w, None, strides=(1, 1), padding=((-1, 0), (0, 0)), dilation=(1, 1))
    with pytest.raises(ValueError, match="`precision`"):
        fwd(x, w, None, precision="half", **geometry)
    with pytest.raises(ValueError, match="output would be"):
        fwd(x, cupy.zeros((7, 7, 3, 4), dtype=cupy.float32), None, strides=(1, 1), padding=((0, 0), (0, 0)),
            dilation=(1, 1))
    with pytest.raises(ValueError, match="activation 'gelu'"):
        fwd(x, w, None, activation="gelu", **geometry)
    with pytest.raises(TypeError, match="`dy` must be a CuPy array"):
        bwd_in(numpy.zeros((2, 5, 5, 4), numpy.float32), w, x.shape, **geometry)
    with pytest.raises(TypeError, match="`kernel` must have dtype float32"):
        bwd_in(dy, w.astype(cupy.float64), x.shape, **geometry)
    with pytest.raises(ValueError, match="`kernel` has 5 output channels"):
        bwd_in(dy, cupy.zeros((3, 3, 3, 5), dtype=cupy.float32), x.shape, **geometry)
    with pytest.raises(ValueError, match="`input_shape`"):
        bwd_in(dy, w, (2, 5, 5, 7), **geometry)
    with pytest.raises(ValueError, match="`dy` is 5 x 5"):
        bwd_in(dy, w, (2, 6, 5, 3), **geometry)
    with pytest.raises(ValueError, match="`dy` must be C-contiguous"):
        bwd_in(cupy.zeros((2, 5, 5, 8), dtype=cupy.float32)[..., ::2], w, x.shape, **geometry)
    with pytest.raises(TypeError, match="`dy` must have dtype float32"):
        bwd_k(x, dy.astype(cupy.float64), w.shape, **geometry)
    with pytest.raises(ValueError, match="`kernel_shape`"):
        bwd_k(x, dy, (3, 3, 2, 4), **geometry)
    with pytest.raises(ValueError, match="`dy` has batch 1"):
        bwd_k(x, dy[:1], w.shape, **geometry)
    with pytest.raises(ValueError, match="`x` must be C-contiguous"):
        bwd_k(cupy.zeros((2, 5, 10, 3), dtype=cupy.float32)[:, :, ::2], dy, w.shape, **geometry)


def test_empty_batch(cupy_only):
    cupy = cupy_only
    geometry = dict(strides=(1, 1), padding=((1, 1), (1, 1)), dilation=(1, 1))
    x = cupy.zeros((0, 5, 5, 3), dtype=cupy.float32)
    w = cupy.ones((3, 3, 3, 4), dtype=cupy.float32)
    z, y = conv_kernels.conv2d_forward_cuda(x, w, None, activation="relu", **geometry)
    assert z.shape == y.shape == (0, 5, 5, 4)
    dk = conv_kernels.conv2d_backward_kernel_cuda(x, cupy.zeros((0, 5, 5, 4), dtype=cupy.float32), w.shape,
                                                  **geometry)
    assert numpy.array_equal(to_numpy(dk), numpy.zeros(w.shape, numpy.float32))
