"""The resampling kernel (kernels/augment.cu via gpu_dl/ops/augment_kernels.py) against the array path.

The reference is ``affine_resample`` run on NumPy arrays: the kernel repeats
its arithmetic (positions, floor / round-half-to-even, fill modes, weights,
the order of the four-neighbour sum, each operation rounded once in the
dtype), so the two should agree to the last bit; the tolerances below
(float32 1e-5 relative, float64 1e-12) leave room only for rounding, while
a wrong neighbour, weight or fill is off by O(1). Images have odd sizes
(N 1, 3; H, W 1, 5, 17, 33; C 1, 3, 4, and 40 / 64 for several channels
per thread); matrices are rotations with zoom, zooms, translations,
half-pixel translations (rounding ties under nearest), maps that land
millions of pixels outside the image, and one (2, 3) matrix for the batch;
every fill mode and interpolation, float32 and float64. Kernel outputs start
NaN (the suite's autouse ``launch.poisoned_outputs()``), so an element left
unwritten fails. These tests need a CUDA device (the ``cupy_only``
fixture), except the checks that every kernel the launcher names is
compiled and of the channel grouping; the compile check of augment.cu runs
everywhere in tests/test_kernel_compile.py.
"""
import numpy
import pytest

from gpu_dl.backend import kernels, to_numpy
from gpu_dl.layers import preprocessing
from gpu_dl.layers.preprocessing import affine_resample
from gpu_dl.ops import augment_kernels
from gpu_dl.ops.augment_kernels import affine_resample_cuda

DTYPES = ["float32", "float64"]
FILL_MODES = ["reflect", "wrap", "constant", "nearest"]
INTERPOLATIONS = ["bilinear", "nearest"]
TOLERANCE = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-12, atol=1e-12)}
SHAPES = [(1, 1, 1, 1), (3, 5, 17, 3), (1, 17, 33, 4), (3, 33, 5, 1), (1, 33, 33, 3), (3, 1, 17, 4),
          (1, 5, 1, 3), (3, 17, 1, 1), (1, 1, 33, 1), (3, 17, 17, 40), (1, 5, 17, 64)]
MATRIX_KINDS = ["rotation", "zoom", "translation", "half_pixel", "far", "single"]
FILL_VALUE = 0.75


def matrices(rng, kind, n, h, w):
    """(N, 2, 3) float64 inverse maps of one kind (``single``: one (2, 3) matrix for the batch)."""
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    m = numpy.zeros((n, 2, 3))
    if kind == "rotation":   # about the centre, with a zoom per axis: RandomRotation's and RandomZoom's maps
        angle = rng.uniform(-numpy.pi, numpy.pi, n)
        zx, zy = rng.uniform(0.5, 2.0, n), rng.uniform(0.5, 2.0, n)
        cos, sin = numpy.cos(angle), numpy.sin(angle)
        m[:, 0, 0], m[:, 0, 1] = zx * cos, -zx * sin
        m[:, 1, 0], m[:, 1, 1] = zy * sin, zy * cos
        m[:, 0, 2] = cx - m[:, 0, 0] * cx - m[:, 0, 1] * cy
        m[:, 1, 2] = cy - m[:, 1, 0] * cx - m[:, 1, 1] * cy
    elif kind == "zoom":
        zx, zy = rng.uniform(0.2, 3.0, n), rng.uniform(0.2, 3.0, n)
        m[:, 0, 0], m[:, 1, 1] = zx, zy
        m[:, 0, 2], m[:, 1, 2] = cx * (1 - zx), cy * (1 - zy)
    elif kind == "translation":   # up to twice the image size: reflect and wrap go round more than once
        m[:, 0, 0] = m[:, 1, 1] = 1.0
        m[:, 0, 2] = rng.uniform(-2 * w - 1, 2 * w + 1, n)
        m[:, 1, 2] = rng.uniform(-2 * h - 1, 2 * h + 1, n)
    elif kind == "half_pixel":   # positions k + 0.5 exactly: nearest rounds half to even, bilinear 1/2 each
        m[:, 0, 0] = m[:, 1, 1] = 1.0
        m[:, 0, 2] = rng.integers(-2 * w - 2, 2 * w + 2, n) + 0.5
        m[:, 1, 2] = rng.integers(-2 * h - 2, 2 * h + 2, n) - 0.5
    elif kind == "far":   # shears and offsets up to 1e6 pixels: the fill modes' modular arithmetic at scale
        m[:, :, :2] = rng.uniform(-3.0, 3.0, (n, 2, 2))
        m[:, :, 2] = rng.uniform(-1e6, 1e6, (n, 2))
    elif kind == "single":
        return numpy.array([[0.8, -0.3, 1.7], [0.4, 1.1, -2.2]])
    else:
        raise ValueError(kind)
    return m


def _check(got, want, dtype, what):
    got = to_numpy(got)
    assert got.dtype == numpy.dtype(dtype) and got.shape == want.shape, (what, got.dtype, got.shape)
    unwritten = numpy.isnan(got) & ~numpy.isnan(want)
    assert not unwritten.any(), (f"{what}: {unwritten.sum()} elements left unwritten (NaN), first at "
                                 f"{numpy.unravel_index(numpy.argmax(unwritten), got.shape)}")
    numpy.testing.assert_allclose(got, want, err_msg=what, **TOLERANCE[dtype])


# ------------------------------------------------------------------------------ without a GPU
def test_fill_codes_match_the_layers_words():
    assert set(augment_kernels.FILL_CODES) == set(preprocessing.FILL_MODES)
    assert set(augment_kernels.INTERPOLATION_CODES) == set(preprocessing.INTERPOLATIONS)
    source = kernels.kernel_source("augment.cu")
    for word, code in augment_kernels.FILL_CODES.items():
        assert f"#define AUG_FILL_{word.upper()} {code}\n" in source
    for word, code in augment_kernels.INTERPOLATION_CODES.items():
        assert f"#define AUG_INTERP_{word.upper()} {code}\n" in source


def test_channel_groups_cover_the_channels():
    for c in list(range(1, 200)) + [255, 256, 257, 1000, 4096]:
        groups = augment_kernels.channel_groups(c)
        per_thread = -(-c // groups)
        assert 1 <= groups <= 32 and groups <= c, (c, groups)
        assert per_thread == -(-c // 32), (c, groups)   # as few channels per thread as 32 threads allow
        assert (per_thread - 1) * groups < c <= per_thread * groups, (c, groups)   # no idle thread


def test_host_images_are_refused_without_a_gpu():
    with pytest.raises(TypeError, match="affine_resample_f32: `images` must be a CuPy array"):
        affine_resample_cuda(numpy.zeros((1, 2, 2, 1), numpy.float32), numpy.eye(2, 3))


# --------------------------------------------------------------------------------- on a GPU
@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("fill_mode", FILL_MODES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_kernel_matches_the_array_path(cupy_only, rng, dtype, fill_mode, interpolation):
    cupy = cupy_only
    for shape in SHAPES:
        x = rng.standard_normal(shape).astype(dtype)
        n, h, w, _ = shape
        for kind in MATRIX_KINDS:
            m = matrices(rng, kind, n, h, w)
            want = affine_resample(x, m, fill_mode, interpolation, FILL_VALUE)
            what = f"{'x'.join(map(str, shape))} {dtype} {kind} {fill_mode} {interpolation}"
            got = affine_resample_cuda(cupy.asarray(x), m, fill_mode, interpolation, FILL_VALUE)
            _check(got, want, dtype, what)
            # matrices already on the device, in another dtype
            got = affine_resample_cuda(cupy.asarray(x), cupy.asarray(m, dtype=numpy.float64), fill_mode,
                                       interpolation, FILL_VALUE)
            _check(got, want, dtype, what + " (device matrices)")


@pytest.mark.parametrize("dtype", DTYPES)
def test_affine_resample_sends_cupy_floats_to_the_kernel(cupy_only, rng, dtype, monkeypatch):
    cupy = cupy_only
    calls = []
    launcher = augment_kernels.affine_resample_cuda

    def counting(*args, **kwargs):
        calls.append(args[0].dtype)
        return launcher(*args, **kwargs)

    monkeypatch.setattr(augment_kernels, "affine_resample_cuda", counting)
    x = rng.standard_normal((3, 17, 5, 4)).astype(dtype)
    m = matrices(rng, "rotation", 3, 17, 5)
    got = affine_resample(cupy.asarray(x), m, "reflect", "bilinear")
    _check(got, affine_resample(x, m, "reflect", "bilinear"), dtype, "through affine_resample")
    assert calls == [numpy.dtype(dtype)]
    # a strided view (what a channels_first layer hands over) is made contiguous first
    xt = numpy.ascontiguousarray(x.transpose(0, 3, 1, 2))
    view = cupy.asarray(xt).transpose(0, 2, 3, 1)
    assert not view.flags.c_contiguous
    got = affine_resample(view, m, "wrap", "nearest", fill_value=2)
    _check(got, affine_resample(x, m, "wrap", "nearest", fill_value=2), dtype, "strided view")
    assert len(calls) == 2
    # integer images stay on the array path
    ints = affine_resample(cupy.asarray(numpy.arange(12, dtype=numpy.uint8).reshape(1, 3, 4, 1)), m[:1], "nearest")
    assert ints.dtype == numpy.uint8 and len(calls) == 2


@pytest.mark.parametrize("make", [
    lambda **kw: preprocessing.RandomTranslation(0.4, 0.3, **kw),
    lambda **kw: preprocessing.RandomRotation(0.3, **kw),
    lambda **kw: preprocessing.RandomZoom((-0.5, 0.6), **kw),
])
@pytest.mark.parametrize("fill_mode", FILL_MODES)
def test_layers_on_the_gpu_match_the_cpu(cupy_only, rng, make, fill_mode):
    cupy = cupy_only
    x = rng.standard_normal((3, 17, 33, 3)).astype(numpy.float32)
    for interpolation in INTERPOLATIONS:
        kw = dict(seed=5, fill_mode=fill_mode, interpolation=interpolation, fill_value=-1.5)
        m = make(**kw)._matrices(3, 17, 33)   # the matrices a layer of the same seed draws first
        want = affine_resample(x, m, fill_mode, interpolation, -1.5)
        got = make(**kw)(cupy.asarray(x), training=True)
        _check(got, want, "float32", f"layer {fill_mode} {interpolation}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_and_inf_pixels_spread_as_in_the_array_path(cupy_only, rng, dtype):
    cupy = cupy_only
    x = rng.standard_normal((3, 5, 17, 3)).astype(dtype)
    x[0, 2, 3, 1] = numpy.nan
    x[1, 0, 16, :] = numpy.inf
    x[2, 4, 0, 0] = -numpy.inf
    for fill_mode in FILL_MODES:
        for interpolation in INTERPOLATIONS:
            m = matrices(rng, "rotation", 3, 5, 17)
            want = affine_resample(x, m, fill_mode, interpolation, FILL_VALUE)
            got = to_numpy(affine_resample_cuda(cupy.asarray(x), m, fill_mode, interpolation, FILL_VALUE))
            # NaN exactly where the reference has NaN (a zero weight times Inf included); no poison left
            numpy.testing.assert_array_equal(numpy.isnan(got), numpy.isnan(want),
                                             err_msg=f"{fill_mode} {interpolation}")
            numpy.testing.assert_allclose(got, want, err_msg=f"{fill_mode} {interpolation}", **TOLERANCE[dtype])


def test_empty_batch_launches_nothing(cupy_only):
    cupy = cupy_only
    for shape in [(0, 5, 5, 3), (2, 5, 5, 0)]:
        y = affine_resample_cuda(cupy.zeros(shape, numpy.float32), numpy.zeros((shape[0], 2, 3)))
        assert y.shape == shape and y.dtype == numpy.float32


def test_bad_inputs_name_the_argument(cupy_only):
    cupy = cupy_only
    x = cupy.zeros((2, 5, 4, 3), numpy.float32)
    m = numpy.zeros((2, 2, 3))
    cases = [
        (TypeError, "`images` must be a CuPy array", lambda: affine_resample_cuda(x.get(), m)),
        (TypeError, "`images` must be a CuPy array", lambda: affine_resample_cuda([[1.0]], m)),
        (TypeError, "`images` must be float32 or float64, got int32",
         lambda: affine_resample_cuda(x.astype(numpy.int32), m)),
        (TypeError, "`images` must be float32 or float64, got float16",
         lambda: affine_resample_cuda(x.astype(numpy.float16), m)),
        (ValueError, r"affine_resample_f32: `images` must have shape \(N, H, W, C\)",
         lambda: affine_resample_cuda(x[0], m)),
        (ValueError, "affine_resample_f64: `images` must be C-contiguous",
         lambda: affine_resample_cuda(x.astype(numpy.float64)[:, :, ::2], m)),
        (ValueError, r"`matrices` must have shape \(2, 2, 3\)", lambda: affine_resample_cuda(x, m[:1])),
        (ValueError, r"`matrices` must have shape \(2, 2, 3\)",
         lambda: affine_resample_cuda(x, numpy.zeros((2, 3, 3)))),
        (ValueError, r"`matrices` must have shape \(2, 2, 3\)", lambda: affine_resample_cuda(x, numpy.zeros(6))),
        (TypeError, "`matrices` must hold real numbers", lambda: affine_resample_cuda(x, m.astype(complex))),
        (TypeError, "`matrices` must hold real numbers", lambda: affine_resample_cuda(x, [["a"] * 3] * 2)),
        (ValueError, "`fill_mode` must be one of 'reflect', 'wrap', 'constant', 'nearest', got 'mirror'",
         lambda: affine_resample_cuda(x, m, fill_mode="mirror")),
        (ValueError, "`fill_mode` must be one of", lambda: affine_resample_cuda(x, m, fill_mode=None)),
        (ValueError, "`interpolation` must be one of 'bilinear', 'nearest', got 'bicubic'",
         lambda: affine_resample_cuda(x, m, interpolation="bicubic")),
        (TypeError, "`fill_value` must be a real number", lambda: affine_resample_cuda(x, m, fill_value="0")),
        (TypeError, "`fill_value` must be a real number", lambda: affine_resample_cuda(x, m, fill_value=None)),
        (TypeError, "`fill_value` must be a real number", lambda: affine_resample_cuda(x, m, fill_value=True)),
    ]
    for error, pattern, call in cases:
        with pytest.raises(error, match=pattern):
            call()
    # A (2, 3) matrix serves the whole batch, as on the array path.
    single = matrices(None, "single", 2, 5, 4)
    _check(affine_resample_cuda(x + 1, single), affine_resample(x.get() + 1, single), "float32", "one (2, 3) matrix")
