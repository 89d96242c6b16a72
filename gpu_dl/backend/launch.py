"""What every kernel launcher shares: argument checks, output allocation, launch geometry.

CuPy's ``RawKernel`` checks nothing: a wrong dtype or a strided view is read
as raw bytes. Launchers therefore check each array here before launching and
raise an error that names the kernel and the argument.

Outputs come from ``empty_output``. Under ``poisoned_outputs()`` (the tests)
float and complex outputs start as NaN and every other output (signed and
unsigned integers, booleans) with all its bits set, so an element a kernel
forgets to write shows up instead of passing with whatever the memory held.
"""
from __future__ import annotations

import contextlib
import functools
import math

import numpy

# A null pointer argument. CuPy turns a None argument into the address 0xffffffff, not 0
# (cupy/cupy#9046): optional pointers must be passed as this 8-byte zero.
NULL = numpy.uint64(0)

_FLOAT_SUFFIX = {numpy.dtype("float32"): "f32", numpy.dtype("float64"): "f64"}
_state = {"poison": False}


@contextlib.contextmanager
def poisoned_outputs(enabled: bool = True):
    """Fill every kernel output with NaN (floats) or all bits set (other dtypes) before the launch that writes it."""
    previous = _state["poison"]
    _state["poison"] = bool(enabled)
    try:
        yield
    finally:
        _state["poison"] = previous


def poisoning() -> bool:
    return _state["poison"]


def _fill_poison(array):
    """NaN for float and complex dtypes. Any other dtype is filled through its unsigned view of the same width
    with all bits set: -1 for signed integers, the maximum for unsigned ones (NumPy 2 refuses to fill those with -1,
    NumPy 1.26 warns), and for booleans the byte 0xFF, which is neither False (0) nor True (1),
    so ``array.view(numpy.uint8) > 1`` finds an unwritten element."""
    if array.dtype.kind in "fc":
        array.fill(numpy.nan)
    else:
        bits = numpy.dtype(f"u{array.dtype.itemsize}")
        array.view(bits).fill(bits.type(numpy.iinfo(bits).max))
    return array


def empty_output(shape, dtype):
    """A CuPy array for a kernel to write; poisoned when ``poisoned_outputs()`` is active."""
    import cupy
    out = cupy.empty(shape, dtype=numpy.dtype(dtype))
    return _fill_poison(out) if _state["poison"] else out


def poison(array):
    """Overwrite an array a kernel will update or write in place (tests only; no-op unless poisoning)."""
    return _fill_poison(array) if _state["poison"] else array


def _as_dtype(value, source, target):
    """``value`` (an array, or a tuple or list of them) with its arrays of dtype ``source`` cast to ``target``."""
    if isinstance(value, (tuple, list)):
        return type(value)(_as_dtype(v, source, target) for v in value)
    if getattr(value, "dtype", None) == source and hasattr(value, "astype"):
        return value.astype(target)
    return value


def float16_through_float32(launcher, numpy_only=False):
    """A launcher of kernels that exist in float32 and float64 only (or a NumPy path with no float16 BLAS), taking
    float16 arrays too (a layer computing in float16 under the "mixed_float16" policy): its float16 array
    arguments are cast to float32 and its float32 results back to float16. Correct, not faster: each call copies
    its inputs and outputs once more. For functions that return their outputs (not those writing into arrays they
    are given). ``numpy_only``: CuPy arrays are left in float16 (cuBLAS has float16 products)."""
    half, single = numpy.dtype("float16"), numpy.dtype("float32")

    @functools.wraps(launcher)
    def launch(*args, **kwargs):
        if not any(getattr(a, "dtype", None) == half and (not numpy_only or isinstance(a, numpy.ndarray))
                   for a in args):
            return launcher(*args, **kwargs)
        return _as_dtype(launcher(*_as_dtype(args, half, single), **kwargs), single, half)
    return launch


def float_suffix(dtype, kernel: str, argument: str) -> str:
    """``"f32"`` or ``"f64"``, the dtype part of a kernel's name."""
    try:
        return _FLOAT_SUFFIX[numpy.dtype(dtype)]
    except KeyError:
        raise TypeError(f"{kernel}: `{argument}` must be float32 or float64, got {numpy.dtype(dtype).name}.") from None


def check_device_array(a, kernel: str, argument: str, *, dtype=None, shape=None, contiguous=True):
    """Check one array argument of a launch; returns it unchanged."""
    if not type(a).__module__.startswith("cupy"):
        raise TypeError(f"{kernel}: `{argument}` must be a CuPy array on the GPU, got {type(a).__name__}.")
    if dtype is not None and a.dtype != numpy.dtype(dtype):
        raise TypeError(f"{kernel}: `{argument}` must have dtype {numpy.dtype(dtype).name}, got {a.dtype.name}.")
    if shape is not None and tuple(a.shape) != tuple(shape):
        raise ValueError(f"{kernel}: `{argument}` must have shape {tuple(shape)}, got {tuple(a.shape)}.")
    if contiguous and not a.flags.c_contiguous:
        raise ValueError(f"{kernel}: `{argument}` must be C-contiguous (pass cupy.ascontiguousarray(...)).")
    if a.size >= 2**31:
        raise ValueError(f"{kernel}: `{argument}` has {a.size} elements; kernels index with 32-bit integers "
                         "(at most 2**31 - 1 elements).")
    return a


def optional(a):
    """``a`` as a kernel argument, or a null pointer when it is None (never pass None itself)."""
    return NULL if a is None else a


def check_optional_device_array(a, kernel: str, argument: str, *, dtype=None, shape=None):
    """``check_device_array`` for an argument that may be None (a null pointer to the kernel); returns it."""
    if a is not None:
        check_device_array(a, kernel, argument, dtype=dtype, shape=shape)
    return a


VECTOR_BYTES = 16   # the kernels' widest access: float4 / double2


def vector_width(dtype, width: int, *arrays) -> int:
    """Values per access of a kernel that reads rows of ``width`` values: 16 bytes' worth where ``width`` is a
    multiple of it and every given array (None: skipped) starts 16-byte aligned, else 1."""
    vec = VECTOR_BYTES // numpy.dtype(dtype).itemsize
    if width % vec or any(a is not None and a.data.ptr % VECTOR_BYTES for a in arrays):
        return 1
    return vec


def int32s(*values):
    """Kernel ``int`` arguments (CuPy passes NumPy scalars by their type)."""
    return tuple(numpy.int32(v) for v in values)


def kernel_name(op: str, x) -> str:
    """``op`` with the suffix of ``x``'s dtype (``_f32`` / ``_f64``)."""
    return f"{op}_{float_suffix(x.dtype, op, 'x')}"


@functools.lru_cache(maxsize=None)
def multiprocessors(device_id: int) -> int:
    """A CUDA device's SM count, read from the driver once per device (launchers size grids by it)."""
    import cupy
    runtime = cupy.cuda.runtime
    return int(runtime.deviceGetAttribute(getattr(runtime, "cudaDevAttrMultiProcessorCount", 16), device_id))


def grid_1d(n: int, threads: int, max_blocks: int = 65535 * 8):
    """``(blocks,), (threads,)`` covering ``n`` elements with a grid-stride loop."""
    return (max(1, min(math.ceil(n / threads), max_blocks)),), (threads,)


def scalar(value, dtype):
    """A kernel scalar argument of exactly ``dtype`` (CuPy passes NumPy scalars by their type)."""
    return numpy.dtype(dtype).type(value)
