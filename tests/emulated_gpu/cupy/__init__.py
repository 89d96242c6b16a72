"""A stand-in for CuPy whose arrays are NumPy arrays and whose kernels run on the CPU.

Only for the emulated GPU tier (``tests/emulated_gpu/run.py`` puts this
folder first on ``sys.path``). ``ndarray`` is a NumPy array whose type lives
in a module named ``cupy``, so gpu_dl takes its GPU paths: the launchers
check and launch exactly as on a GPU, and ``RawModule`` builds the kernel
text it is given for the host (``build.py``). The device reports compute
capability 8.0, the sm_80 paths' inline PTX (cp.async, mma.sync) emulated.

Every launch runs to completion before it returns, so the device's work is
always done by the time the host goes on: a CUDA event records the host's
clock (``time.perf_counter``) when it is recorded, which is after all the
work queued before it, and ``get_elapsed_time`` gives the host time between
two events, emulated work included (what the benchmark scripts time, in
their smoke runs). Device memory is host memory, so ``memcpyAsync`` copies
bytes between the arrays' buffers.

Where real CuPy refuses, so does this: a ufunc (``a + b``, ``cupy.add``,
``numpy.matmul``, ``cupy.add.at``, a reduction) given a host NumPy array as an
operand (0-d ones included; Python and NumPy scalars are taken) is a
``TypeError("Unsupported type <class 'numpy.ndarray'>")``, and an ``out=``
that is not a device array is a ``TypeError``, for NumPy's other functions
called on device arrays too. Inside ``cupyx.allow_synchronize(False)``, what
makes CuPy wait for the device raises ``cupyx.DeviceSynchronized``: a copy to
the host (``get``, ``asnumpy``, ``item``, ``tolist``, ``bool``/``int``/
``float`` of an array, printing one), ``Device``/``Stream``/``Event``
``synchronize``, and the functions whose output size or checks CuPy reads
back (``bincount``, ``nonzero``, ``argwhere``, ``flatnonzero``, one-argument
``where``, ``unique`` and the set functions built on it, ``compress``,
``extract``, and indexing with a boolean mask).

Streams and CUDA graphs: ``with stream:`` and ``stream.use()`` make a stream
current (``cuda.get_current_stream``; the legacy default stream otherwise).
``begin_capture()`` on any stream but the legacy default one starts a
capture, ``is_capturing()`` says so, ``end_capture()`` returns a graph whose
``launch(stream=None)`` replays what was captured, in order (``upload`` does
nothing). While the current stream captures, a ``RawKernel`` launch and
``cupy.dot(a, b, out=...)`` are recorded, not run, and ``empty``/
``empty_like`` only allocate; any other device operation on it (a ufunc,
another function, an assignment or fill, a copy, a transfer, a synchronize,
an event record, a graph launch) raises ``CUDARuntimeError``
(cudaErrorStreamCaptureUnsupported) and invalidates the capture, whose
``end_capture`` then raises (cudaErrorStreamCaptureInvalidated): an eager
operation slipped into a captured region is what this is for. A real capture
would record those operations too; refusing them is the stand-in's own
strictness. ``cuda.using_allocator(allocator)`` sets a thread-local allocator
which this calls, its result unused, with the byte count of every new device
array a CuPy function makes (the memory is still NumPy's), so code can count
its allocations as it would on a GPU; ``set_allocator``'s is never called.

What this cannot show: anything about speed, the tensor cores' own rounding
(the emulation sums exact products in double), races the fibers' fixed
schedule does not expose, and CuPy's refusal of ``numpy.asarray(device_array)``
(NumPy takes a subclass of its array as it is, without asking the array), nor
of NumPy's non-ufunc functions given a mix of host and device arrays.
"""
from __future__ import annotations

import contextlib
import ctypes
import sys
import threading
import time
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import build  # noqa: E402

__version__ = "0.0-emulated"
COMPUTE_CAPABILITY = str(build.ARCH // 10)


class DeviceSynchronized(RuntimeError):
    """``cupyx.DeviceSynchronized``: the device was waited for inside ``cupyx.allow_synchronize(False)``."""

    def __init__(self, message=None):
        super().__init__(message or "Device synchronization was detected while disallowed.")


_sync = threading.local()


def _declare_synchronize():
    """What CuPy's ``syncdetect`` does where the host waits for the device: refuse while disallowed."""
    if not getattr(_sync, "allowed", True):
        raise DeviceSynchronized()


# ------------------------------------------------------------------------------- streams and captures
_streams = threading.local()    # .entered: the streams of ``with stream:`` blocks; .used: ``use()``'s stream
_CAPTURES = []                  # the streams capturing now (a fast "none" for every operation's check)
_allocators = threading.local()  # .current: ``using_allocator``'s allocator
_USING_ALLOCATOR = [0]          # how many ``using_allocator`` blocks are open, on any thread


def _current_stream():
    entered = getattr(_streams, "entered", None)
    if entered:
        return entered[-1]
    return getattr(_streams, "used", None) or _Stream.null


def _refuse_while_capturing(what, stream=None):
    """A device operation on ``stream`` (the current one when None): refused, and the capture invalidated, while
    that stream captures."""
    if _CAPTURES:
        capture = (_current_stream() if stream is None else stream)._capture
        if capture is not None:
            capture.invalidated = True
            raise CUDARuntimeError(_Runtime.errorStreamCaptureUnsupported,
                                   f"{what} on a capturing stream: the emulated capture records only RawKernel "
                                   "launches and cupy.dot(..., out=...)")


def _report_allocation(nbytes):
    """Tell ``using_allocator``'s allocator, if one is set on this thread, of a new device array of ``nbytes``."""
    if _USING_ALLOCATOR[0]:
        allocator = getattr(_allocators, "current", None)
        if allocator is not None:
            allocator(nbytes)


def _refuse_host_operands(ufunc, inputs, out):
    # CuPy's kernels take device arrays, Python scalars (bool, int, float, complex) and NumPy scalars
    # (numpy.generic); anything else, a host NumPy array of any shape or a list, is its "Unsupported type".
    for value in inputs:
        if not (isinstance(value, ndarray) or type(value) in (bool, int, float, complex)
                or isinstance(value, numpy.generic)):
            raise TypeError(f"Unsupported type {type(value)}")
    for value in out:
        if value is not None and not isinstance(value, ndarray):
            raise TypeError(f"`out` must be a tuple or `cupy.ndarray` ({ufunc.__name__} was given {type(value)})")


# CuPy's ufunc.at is its scatter (atomics on the target's dtype): add and subtract on these dtypes, maximum and
# minimum on these less float16; any other ufunc or dtype is refused.
_SCATTER_DTYPES = {"add": "int32 float16 float32 float64 uint32 uint64",
                   "subtract": "int32 float16 float32 float64 uint32 uint64",
                   "maximum": "int32 float32 float64 uint32 uint64", "minimum": "int32 float32 float64 uint32 uint64"}


def _check_scatter(ufunc, target):
    if ufunc.__name__ not in _SCATTER_DTYPES:
        raise NotImplementedError(f"`{ufunc.__name__}.at` is not supported yet")
    allowed = _SCATTER_DTYPES[ufunc.__name__].split()
    if target.dtype.name not in allowed:
        raise TypeError(f"scatter_{ufunc.__name__} only supports {', '.join(allowed)} as data type")


def _outs(out):
    return out if isinstance(out, tuple) else (out,)


class _Pointer:
    def __init__(self, array):
        self.ptr = array.__array_interface__["data"][0]


class ndarray(numpy.ndarray):
    """A NumPy array that gpu_dl takes for a device array."""

    @property
    def data(self):
        return _Pointer(self)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        _refuse_while_capturing(f"the ufunc {ufunc.__name__}")
        # ufunc.at's indices may be host arrays: CuPy moves an index to the device itself.
        operands = inputs[:1] + inputs[2:] if method == "at" else inputs
        if method == "at":
            _check_scatter(ufunc, inputs[0])
        out = _outs(kwargs.get("out", ()))
        _refuse_host_operands(ufunc, operands, out)
        # NumPy's own ufunc runs on plain views (its ndarray.__array_ufunc__ defers to an override such as this
        # one); results come back as device arrays, 0-d ones where NumPy's would be scalars, as CuPy's are.
        inputs = tuple(x.view(numpy.ndarray) if isinstance(x, ndarray) else x for x in inputs)
        if out:
            kwargs["out"] = tuple(None if o is None else o.view(numpy.ndarray) for o in out)
        result = getattr(ufunc, method)(*inputs, **kwargs)
        if method == "at":
            return None
        if isinstance(result, tuple):
            return tuple(o if o is not None else _device_0d(r) for r, o in zip(result, out or (None,) * len(result)))
        return out[0] if out and out[0] is not None else _device_0d(result)

    def __array_function__(self, func, types, args, kwargs):
        _refuse_while_capturing(f"numpy.{func.__name__}")
        out = kwargs.get("out")
        if out is not None:
            _refuse_host_operands(func, (), _outs(out))
        # NumPy's function runs on plain views, as CuPy's runs CuPy's own code: NumPy's internals may combine the
        # operands with host arrays of their own, which is no mixing of the caller's. Array results come back as
        # device arrays; an ``out`` given comes back as itself.
        result = func(*_plain(args), **_plain(kwargs))
        if out is not None and not isinstance(out, tuple) and isinstance(result, numpy.ndarray) \
                and result.base is not None and result.ctypes.data == out.ctypes.data and result.shape == out.shape:
            return out
        return _on_device(result)

    def get(self, stream=None):
        _refuse_while_capturing("a copy to the host")
        _declare_synchronize()
        return numpy.array(self, copy=True).view(numpy.ndarray)

    def __array_finalize__(self, obj):
        # A device array with memory of its own made by an ndarray method (copy, astype): a device copy.
        if obj is not None and self.base is None:
            _refuse_while_capturing("a device array's copy")
            _report_allocation(self.nbytes)

    def __setitem__(self, key, value):
        _refuse_while_capturing("an assignment to a device array")
        super().__setitem__(key, value)

    def fill(self, value):
        _refuse_while_capturing("a fill")
        super().fill(value)

    def __getitem__(self, key):
        # A boolean mask's output size is its count of True, which CuPy reads back.
        keys = key if isinstance(key, tuple) else (key,)
        if any(isinstance(k, numpy.ndarray) and k.dtype == bool and k.ndim > 0 for k in keys):
            _declare_synchronize()
        return _device_0d(super().__getitem__(key))

    def set(self, array, stream=None):
        self[...] = array


def _reading_back(name):
    """ndarray's method ``name``, which reads values back: a copy to the host, as ``get`` makes."""
    method = getattr(numpy.ndarray, name)

    def read(self, *args):
        _declare_synchronize()
        return method(self, *args)
    read.__name__ = name
    return read


for _name in ("item", "tolist", "__bool__", "__int__", "__float__", "__complex__", "__index__", "__repr__", "__str__"):
    setattr(ndarray, _name, _reading_back(_name))


def _device(a):
    if isinstance(a, numpy.ndarray) and not isinstance(a, ndarray):
        if a.base is None:          # memory of its own: a new device array
            _report_allocation(a.nbytes)
        return a.view(ndarray)
    return a


def _device_0d(a):
    # CuPy's element reads, ufuncs and reductions give 0-d device arrays where NumPy's give scalars.
    return _device(numpy.asarray(a)) if isinstance(a, numpy.generic) else _device(a)


def _plain(value):
    """``value`` with the device arrays in it (in lists, tuples and dicts too) seen as plain NumPy arrays."""
    if isinstance(value, ndarray):
        return value.view(numpy.ndarray)
    if type(value) in (list, tuple):
        return type(value)(_plain(v) for v in value)
    if type(value) is dict:
        return {k: _plain(v) for k, v in value.items()}
    return value


def _on_device(value):
    """A NumPy function's result with its arrays (in lists, tuples and named tuples too) made device arrays."""
    if isinstance(value, numpy.ndarray):
        return _device(value)
    if isinstance(value, (list, tuple)):
        items = [_on_device(v) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    return value


def asarray(a, dtype=None, order=None):
    # A host array crosses to the device as a copy; a device array is copied only
    # if the dtype or order asks for it (spelled so for NumPy 1.26 and 2.x alike),
    # and is otherwise the very same array, as CuPy returns it.
    if isinstance(a, ndarray):
        result = numpy.asanyarray(a, dtype=dtype, order=order or "K")
        if result is not a:
            _refuse_while_capturing("a device copy")
        return _device(result)
    _refuse_while_capturing("a copy to the device")
    return _device(numpy.array(a, dtype=dtype, order=order or "K", copy=True))


def array(a, dtype=None, copy=True, order="K"):
    # CuPy's copy=False means "copy only if needed", NumPy 1.26's meaning too.
    if copy:
        _refuse_while_capturing("a device copy")
        return _device(numpy.array(a, dtype=dtype, order=order, copy=True))
    return asarray(a, dtype=dtype, order=order)


def asnumpy(a, stream=None):
    if isinstance(a, ndarray):
        _refuse_while_capturing("a copy to the host")
        _declare_synchronize()
    return numpy.array(a, copy=True).view(numpy.ndarray)


# What a capture lets run: these only allocate (no device operation), so they run as they would outside one.
_ALLOCATING_ONLY = {"empty", "empty_like"}
# CuPy's functions that read a count or a check back from the device before they return.
_SYNCHRONIZING = {"bincount", "nonzero", "argwhere", "flatnonzero", "unique", "compress", "extract",
                  "intersect1d", "setdiff1d", "setxor1d", "union1d", "unique_values", "unique_counts",
                  "unique_inverse", "unique_all"}


def __getattr__(name):
    """Everything else: NumPy's function of that name, its array results made device arrays."""
    target = getattr(numpy, name)
    if not callable(target) or isinstance(target, type):
        return target

    def wrapped(*args, **kwargs):
        if _CAPTURES and _current_stream()._capture is not None:
            if name == "dot" and (kwargs.get("out") is not None or len(args) > 2):
                # replayed on plain views: the graph's work is the device's, not calls the host makes
                plain_args, plain_kwargs = _plain(args), _plain(kwargs)
                _current_stream()._capture.ops.append(lambda: target(*plain_args, **plain_kwargs))
                return kwargs.get("out", args[2] if len(args) > 2 else None)
            if name not in _ALLOCATING_ONLY:
                _refuse_while_capturing(f"cupy.{name}")
        if name in _SYNCHRONIZING or (name == "where" and len(args) + len(kwargs) == 1):
            _declare_synchronize()
        if isinstance(target, numpy.ufunc):     # CuPy's ufuncs refuse host arrays even where no operand is a device one
            _refuse_host_operands(target, args, _outs(kwargs.get("out", ())))
        result = target(*args, **kwargs)
        # CuPy's functions give 0-d device arrays where NumPy's give scalars (argmax with no axis, sum, ...).
        if isinstance(result, tuple):
            return tuple(_device_0d(r) for r in result)
        return _device_0d(result)
    wrapped.__name__ = name
    if isinstance(target, numpy.ufunc):
        wrapped.at = target.at        # in place, as cupy.ufunc.at: nothing to wrap
    return wrapped


class _RandomState:
    """``cupy.random.RandomState(seed=None, method=...)``: its samplers take a dtype, NumPy's do not. A seed is an
    integer of 64 bits or an array, as CuPy 13.3 takes it (a float is refused); any 64-bit seed gives a stream of
    its own."""

    def __init__(self, seed=None, method=100):
        self.method = method
        self.seed(seed)

    def seed(self, seed=None):
        if seed is not None and not isinstance(seed, numpy.ndarray):
            if numpy.asarray(seed).dtype.kind not in "iub":
                raise TypeError("Seed must be an integer.")
            seed = int(numpy.asarray(seed).astype(numpy.uint64))
        if isinstance(seed, int) and seed >= 2**32:
            self._state = numpy.random.RandomState(numpy.random.MT19937(seed))
        else:
            self._state = numpy.random.RandomState(seed)

    @staticmethod
    def _float(dtype):
        dtype = numpy.dtype(dtype)
        if dtype.char not in "fd":
            raise TypeError("cupy.random only supports float32 and float64")
        return dtype

    def random_sample(self, size=None, dtype=numpy.float64):
        return _device(numpy.asarray(self._state.random_sample(size)).astype(self._float(dtype), copy=False))

    def standard_normal(self, size=None, dtype=numpy.float64):
        return _device(numpy.asarray(self._state.standard_normal(size)).astype(self._float(dtype), copy=False))

    def normal(self, loc=0.0, scale=1.0, size=None, dtype=float):
        return _device(numpy.asarray(self._state.normal(loc, scale, size)).astype(self._float(dtype), copy=False))

    def uniform(self, low=0.0, high=1.0, size=None, dtype=float):
        return _device(numpy.asarray(self._state.uniform(low, high, size)).astype(self._float(dtype), copy=False))

    def randint(self, low, high=None, size=None, dtype=int):
        return _device(numpy.asarray(self._state.randint(low, high, size, dtype=numpy.int64)).astype(dtype))

    @staticmethod
    def _host(value):
        return numpy.asarray(value).view(numpy.ndarray)

    def gamma(self, shape, scale=1.0, size=None, dtype=float):
        return _device(numpy.asarray(self._state.gamma(self._host(shape), self._host(scale), size)).astype(dtype))

    def beta(self, a, b, size=None, dtype=float):
        return _device(numpy.asarray(self._state.beta(self._host(a), self._host(b), size)).astype(dtype))

    def binomial(self, n, p, size=None, dtype=int):
        return _device(numpy.asarray(self._state.binomial(self._host(n), self._host(p), size)).astype(dtype))


class random:
    """The parts of ``cupy.random`` gpu_dl calls."""

    RandomState = _RandomState
    _global = _RandomState()

    @classmethod
    def seed(cls, seed=None):
        cls._global = _RandomState(seed)

    @classmethod
    def random_sample(cls, size=None, dtype=numpy.float64):
        return cls._global.random_sample(size, dtype)

    random = random_sample

    @classmethod
    def standard_normal(cls, size=None, dtype=numpy.float64):
        return cls._global.standard_normal(size, dtype)


# ----------------------------------------------------------------------------------------------- kernels
class RawKernel:
    """``cupy.RawKernel(code, name, options)``: one kernel of its own source, built at the first launch.

    ``RawModule.get_function`` hands out kernels of an already built module.
    """

    def __init__(self, code, name, options=(), **kwargs):
        self.code, self.name, self.options = code, name, tuple(options)
        self.module = None
        self.max_dynamic_shared_size_bytes = 48 * 1024

    @classmethod
    def _of(cls, host_module, name):
        kernel = cls(None, name)
        kernel.module = host_module
        return kernel

    def __call__(self, grid, block, args, shared_mem=0, stream=None):
        if self.module is None:
            self.module = build.HostModule(self.code, self.options)
            if self.name not in self.module.signatures:
                raise AttributeError(f"no kernel named {self.name!r} in the source")
        if shared_mem > self.max_dynamic_shared_size_bytes:
            raise RuntimeError(f"{self.name}: {shared_mem} bytes of dynamic shared memory, above the kernel's "
                               f"limit of {self.max_dynamic_shared_size_bytes} (set max_dynamic_shared_size_bytes)")
        module, name, args = self.module, self.name, tuple(args)
        capture = (stream if stream is not None else _current_stream())._capture if _CAPTURES else None
        if capture is not None:     # recorded for the graph's launches, not run
            capture.ops.append(lambda: module.launch(name, grid, block, args, shared_mem))
            return
        module.launch(name, grid, block, args, shared_mem)


class RawModule:
    def __init__(self, code=None, options=(), **kwargs):
        self.code, self.options = code, tuple(options)
        self._host = None

    def compile(self, log_stream=None):
        if self._host is None:
            self._host = build.HostModule(self.code, self.options)

    def get_function(self, name):
        self.compile()
        if name not in self._host.signatures:
            raise AttributeError(f"no kernel named {name!r} in the module")
        return RawKernel._of(self._host, name)


# -------------------------------------------------------------------------------------------- cupy.cuda
class _CompileException(Exception):
    pass


class CUDARuntimeError(RuntimeError):
    """``cupy.cuda.runtime.CUDARuntimeError``: a CUDA call's error status."""

    def __init__(self, status, message="CUDA error"):
        self.status = status
        super().__init__(f"{message} (CUDA error {status})")


class _Runtime:
    CUDARuntimeError = CUDARuntimeError
    errorInvalidValue = 1
    errorMemoryAllocation = 2
    errorInvalidResourceHandle = 400
    errorIllegalState = 401
    errorStreamCaptureUnsupported = 900
    errorStreamCaptureInvalidated = 901
    cudaDevAttrMultiProcessorCount = 16
    cudaDevAttrL2CacheSize = 38
    cudaDevAttrMaxSharedMemoryPerBlockOptin = 97
    # An H100's figures: 132 SMs, 50 MiB of L2, 227 KiB of shared memory per block on opt-in.
    _ATTRIBUTES = {16: 132, 38: 50 << 20, 97: 227 * 1024}
    memcpyHostToHost, memcpyHostToDevice, memcpyDeviceToHost, memcpyDeviceToDevice, memcpyDefault = range(5)

    @classmethod
    def memcpy(cls, dst, src, size, kind):
        """Copy ``size`` bytes from address ``src`` to ``dst``: host and device memory are the same here."""
        _refuse_while_capturing("cudaMemcpy")
        if kind not in range(5):
            raise CUDARuntimeError(cls.errorInvalidValue, f"cudaMemcpy: no copy kind {kind}")
        if size < 0 or (size and not (dst and src)):
            raise CUDARuntimeError(cls.errorInvalidValue, f"cudaMemcpy of {size} bytes from {src:#x} to {dst:#x}")
        ctypes.memmove(dst, src, size)

    @classmethod
    def memcpyAsync(cls, dst, src, size, kind, stream):
        """As ``memcpy``: the one emulated stream has finished the copy when this returns."""
        cls.memcpy(dst, src, size, kind)

    @staticmethod
    def getDevice():
        return 0

    @staticmethod
    def getDeviceCount():
        return 1

    @staticmethod
    def deviceSynchronize():
        pass

    @staticmethod
    def runtimeGetVersion():
        return 13000

    @staticmethod
    def memGetInfo():
        return 16 << 30, 16 << 30

    @classmethod
    def deviceGetAttribute(cls, attribute, device):
        return cls._ATTRIBUTES[attribute]

    @classmethod
    def getDeviceProperties(cls, device):
        return {"name": b"emulated GPU (CPU threads)", "totalGlobalMem": 16 << 30,
                "major": int(COMPUTE_CAPABILITY[0]), "minor": int(COMPUTE_CAPABILITY[1]),
                "multiProcessorCount": cls._ATTRIBUTES[16], "l2CacheSize": cls._ATTRIBUTES[38],
                "sharedMemPerBlockOptin": cls._ATTRIBUTES[97]}


class _Device:
    def __init__(self, device=0):
        self.id = int(device)
        self.compute_capability = COMPUTE_CAPABILITY

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self):
        _declare_synchronize()

    def use(self):
        pass


class _Capture:
    def __init__(self):
        self.ops, self.invalidated = [], False


class _Graph:
    """``cupy.cuda.graph.Graph``: what a capture recorded, replayed in order by each launch."""

    def __init__(self, ops):
        self._ops = tuple(ops)

    def launch(self, stream=None):
        _refuse_while_capturing("a graph launch", stream)
        for op in self._ops:
            op()

    def upload(self, stream=None):
        pass


class _Stream:
    """A CUDA stream. Every emulated launch and copy has finished when its call returns, so any stream
    is idle whenever the host looks; ``ptr`` is 0, the legacy default stream, for all of them. It
    captures as the module docstring says."""

    ptr = 0
    null = None       # the legacy default stream, set below

    def __init__(self, null=False, non_blocking=False, ptds=False):
        self.is_null, self.non_blocking, self._capture = bool(null), bool(non_blocking), None

    def __enter__(self):
        if not hasattr(_streams, "entered"):
            _streams.entered = []
        _streams.entered.append(self)
        return self

    def __exit__(self, *exc):
        _streams.entered.pop()
        return False

    def use(self):
        _streams.used = self
        return self

    def synchronize(self):
        _refuse_while_capturing("a synchronize", self)
        _declare_synchronize()

    def record(self, event=None):
        event = _Event() if event is None else event
        event.record(self)
        return event

    def wait_event(self, event):
        pass

    @property
    def done(self):
        return True

    def begin_capture(self, mode=None):
        if self.is_null:
            raise CUDARuntimeError(_Runtime.errorStreamCaptureUnsupported,
                                   "cudaStreamBeginCapture: the legacy default stream cannot capture")
        if self._capture is not None:
            raise CUDARuntimeError(_Runtime.errorIllegalState, "cudaStreamBeginCapture: the stream is capturing")
        self._capture = _Capture()
        _CAPTURES.append(self)

    def is_capturing(self):
        return self._capture is not None

    def end_capture(self):
        capture = self._capture
        if capture is None:
            raise CUDARuntimeError(_Runtime.errorIllegalState, "cudaStreamEndCapture: the stream is not capturing")
        self._capture = None
        _CAPTURES.remove(self)
        if capture.invalidated:
            raise CUDARuntimeError(_Runtime.errorStreamCaptureInvalidated,
                                   "cudaStreamEndCapture: the capture was invalidated by an operation it refused")
        return _Graph(capture.ops)


_Stream.null = _Stream(null=True)


class _Event:
    """A CUDA event: the host's ``time.perf_counter`` when recorded, all earlier emulated work being done by then."""

    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.disable_timing = disable_timing
        self._time = None

    def record(self, stream=None):
        _refuse_while_capturing("an event record", stream)
        self._time = time.perf_counter()

    def synchronize(self):
        _declare_synchronize()

    @property
    def done(self):
        return True


def _get_elapsed_time(start_event, end_event):
    """Milliseconds from ``start_event`` to ``end_event``, as ``cudaEventElapsedTime`` (which refuses an event
    never recorded or made without timing)."""
    for event in (start_event, end_event):
        if event._time is None or event.disable_timing:
            raise CUDARuntimeError(_Runtime.errorInvalidResourceHandle,
                                   "cudaEventElapsedTime: an event was never recorded or has timing disabled")
    return (end_event._time - start_event._time) * 1e3


class _Pool:
    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_all_blocks(self):
        pass


_allocator = [None]


def _host_malloc(nbytes):
    """The allocator ``get_allocator`` gives where none was set (CuPy's would be its pool's): the stand-in's memory
    is NumPy's, so it has nothing to hand out."""
    return None


class _NotOnTheHost:
    """CuPy's raw memory types: imported by gpu_dl's pool glue, never used here (the stand-in allocates with NumPy)."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError("the emulated GPU has no raw device memory")


class _Curand:
    CURAND_RNG_PSEUDO_DEFAULT = 100
    CURAND_RNG_PSEUDO_XORWOW = 101
    CURAND_RNG_PSEUDO_PHILOX4_32_10 = 161


class cuda:
    runtime = _Runtime()
    curand = _Curand
    Device = _Device
    Stream = _Stream
    Event = _Event
    get_elapsed_time = staticmethod(_get_elapsed_time)
    MemoryPointer = _NotOnTheHost
    UnownedMemory = _NotOnTheHost

    class compiler:
        CompileException = _CompileException

    @staticmethod
    def get_current_stream():
        return _current_stream()

    @staticmethod
    def get_allocator():
        current = getattr(_allocators, "current", None)
        return (_allocator[0] or _host_malloc) if current is None else current

    @staticmethod
    @contextlib.contextmanager
    def using_allocator(allocator=None):
        previous = getattr(_allocators, "current", None)
        _allocators.current = allocator
        _USING_ALLOCATOR[0] += 1
        try:
            yield
        finally:
            _USING_ALLOCATOR[0] -= 1
            _allocators.current = previous

    @staticmethod
    def set_allocator(allocator=None):
        _allocator[0] = allocator


def get_default_memory_pool():
    return _Pool()


class _OnDevice:
    """A NumPy submodule (``linalg``, ``fft``) whose functions return device arrays, as CuPy's do."""

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name):
        target = getattr(self._module, name)
        if not callable(target) or isinstance(target, type):
            return target

        def wrapped(*args, **kwargs):
            result = target(*args, **kwargs)
            if isinstance(result, tuple):     # also NumPy's named tuples (eigh, svd, slogdet)
                return tuple(_device(r) for r in result)
            return _device(result)
        wrapped.__name__ = name
        return wrapped


linalg = _OnDevice(numpy.linalg)
fft = _OnDevice(numpy.fft)


class lib:
    """``cupy.lib.stride_tricks``: NumPy's ``as_strided`` gives a base-class view (``subok=False``), CuPy's a device
    array."""
    stride_tricks = _OnDevice(numpy.lib.stride_tricks)
