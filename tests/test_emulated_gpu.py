"""The emulated GPU tier: the suite's CuPy test bodies run with their kernels on the CPU.

``tests/emulated_gpu`` builds each kernel file with the host's C++ compiler
(``cuda_host.h`` defines the CUDA C the kernels use) behind a NumPy-backed
stand-in for CuPy, so the launchers and kernels run exactly the code they
run on a GPU, without one. This is not a GPU run (no speed, no tensor-core
paths, no hardware memory model), but it checks every launch's arguments
against the kernel's C signature, catches writes past an argument's end, and
exposes a missing ``__syncthreads`` by running blocks' threads in both
orders. The first tests here show that the emulator catches each of those;
the last one runs every CuPy test body of the suite on it (the long training
runs aside), in groups of test files that pytest-xdist's workers share.
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy
import pytest

from conftest import runs_on_gpu
from emulated_gpu import build, run

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.skipif(build.compiler() is None, reason="no C++ compiler to build the kernels for the host")

SOURCE = r"""
extern "C" __global__ void copy_f32(const float* x, float* y, int n, int count) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < count) y[i] = x[i % n];                  // past the end of y when count > n
}

extern "C" __global__ void shift_f32(const float* x, float* y, int n) {
    const int i = threadIdx.x;
    if (i < n) y[i] = x[i + 1];                      // reads one past the end of x at i = n - 1
}

extern "C" __global__ void rotate_shared_f32(const float* x, float* y, int synchronised) {
    __shared__ float s[64];
    const int t = threadIdx.x, base = blockIdx.x * 64;
    s[t] = x[base + t];
    if (synchronised) __syncthreads();
    y[base + t] = s[(t + 1) % 64] + s[(t + 63) % 64];   // both neighbours: a race in either order
}

extern "C" __global__ void warp_sum_f64(const double* x, double* y) {
    double v = x[threadIdx.x];
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
    y[threadIdx.x] = v;
}

extern "C" __global__ void divergent_f32(float* y) {
    if (threadIdx.x < 16) __syncthreads();
    else y[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

extern "C" __global__ void trap_after_barrier_f32(float* y, int trapping_block) {
    y[blockIdx.x * blockDim.x + threadIdx.x] = 1.0f;
    __syncthreads();
    if (blockIdx.x == trapping_block && threadIdx.x == 5) __trap();
    __syncthreads();
    y[blockIdx.x * blockDim.x + threadIdx.x] = 2.0f;
}

extern "C" __global__ void dynamic_shared_f32(float* y) {
    extern __shared__ __align__(16) unsigned char raw[];
    y[threadIdx.x] = reinterpret_cast<float*>(raw)[threadIdx.x];
}
"""


class DeviceArray(numpy.ndarray):
    """What the emulator accepts as a device array: an array whose type lives in a module named cupy."""


DeviceArray.__module__ = "cupy"


def device(a):
    return numpy.ascontiguousarray(a).view(DeviceArray)


@pytest.fixture(scope="module")
def module():
    return build.HostModule(SOURCE)


def test_lists_each_kernel_with_its_c_signature(module):
    assert module.signatures["copy_f32"] == ["float32*", "float32*", "int32", "int32"]
    assert module.signatures["warp_sum_f64"] == ["float64*", "float64*"]
    assert set(module.signatures) == {"copy_f32", "shift_f32", "rotate_shared_f32", "warp_sum_f64",
                                      "divergent_f32", "trap_after_barrier_f32", "dynamic_shared_f32"}


def test_runs_a_kernel_and_catches_a_write_past_the_end(module):
    x = device(numpy.arange(64, dtype=numpy.float32))
    y = device(numpy.full(64, numpy.nan, dtype=numpy.float32))
    module.launch("copy_f32", (1,), (64,), (x, y, numpy.int32(64), numpy.int32(64)))
    numpy.testing.assert_array_equal(y, x)
    with pytest.raises(build.EmulationError, match=r"copy_f32: wrote outside argument 1 \(float32, 64 elements\)"):
        module.launch("copy_f32", (2,), (64,), (x, y, numpy.int32(64), numpy.int32(65)))


def test_a_read_past_the_end_gives_nan(module):
    x = device(numpy.arange(8, dtype=numpy.float32))
    y = device(numpy.zeros(8, numpy.float32))
    module.launch("shift_f32", (1,), (8,), (x, y, numpy.int32(8)))
    numpy.testing.assert_array_equal(y[:7], x[1:])
    assert numpy.isnan(y[7])


@pytest.mark.parametrize("bad, message", [
    (lambda x, y, n: (x.astype(numpy.float64).view(DeviceArray), y, n, n), r"argument 0 \(C type float32\*\) got an "
                                                                            r"array of float64"),
    (lambda x, y, n: (x, y, n, 8), r"argument 3 \(C type int32\) got int 8: pass NumPy scalars"),
    (lambda x, y, n: (x, y, n, numpy.int64(8)), r"argument 3 \(C type int32\) got a int64 scalar"),
    (lambda x, y, n: (x, y, n), r"3 arguments for a kernel that takes 4"),
    (lambda x, y, n: (numpy.asarray(x), y, n, n), r"argument 0 \(C type float32\*\) must be a device array"),
    (lambda x, y, n: (x[::2], y, n, n), r"non-contiguous"),
])
def test_checks_arguments_against_the_c_signature(module, bad, message):
    x, y = device(numpy.zeros(8, numpy.float32)), device(numpy.zeros(8, numpy.float32))
    with pytest.raises(build.EmulationError, match=message):
        module.launch("copy_f32", (1,), (8,), bad(x, y, numpy.int32(8)))


def test_a_missing_barrier_shows_in_one_of_the_two_thread_orders(module):
    x = device(numpy.arange(128, dtype=numpy.float32))
    want = numpy.concatenate([numpy.roll(b, -1) + numpy.roll(b, 1) for b in x.reshape(2, 64)])
    y = device(numpy.zeros(128, numpy.float32))
    module.launch("rotate_shared_f32", (2,), (64,), (x, y, numpy.int32(1)))
    numpy.testing.assert_array_equal(y, want)
    module.launch("rotate_shared_f32", (2,), (64,), (x, y, numpy.int32(0)))
    assert not numpy.array_equal(y, want)


def test_warp_shuffles_exchange_between_lanes(module):
    x = device(numpy.arange(64, dtype=numpy.float64))
    y = device(numpy.zeros(64))
    module.launch("warp_sum_f64", (1,), (64,), (x, y))
    numpy.testing.assert_array_equal(y, numpy.repeat([numpy.arange(32).sum(), numpy.arange(32, 64).sum()], 32))


def test_a_barrier_some_live_threads_never_reach_is_a_deadlock(module):
    y = device(numpy.zeros(32, numpy.float32))
    with pytest.raises(build.EmulationError, match="deadlock in block 0: thread 0 waits at __syncthreads"):
        module.launch("divergent_f32", (1,), (32,), (y,))


def test_a_trap_fails_the_launch_naming_block_and_thread_and_the_next_launch_runs(module):
    # The trapping thread's fiber unwinds its own stack to the launch's handler; the others, parked at the
    # barrier, are abandoned with their stacks, which the next launch starts afresh.
    y = device(numpy.zeros(64, numpy.float32))
    with pytest.raises(build.EmulationError, match=r"__trap\(\) reached .* in block \(1, 0, 0\), thread 5"):
        module.launch("trap_after_barrier_f32", (2,), (32,), (y, numpy.int32(1)))
    assert (y[:32] == 2).all() and (y[32:] == 1).all()   # block 0 finished; block 1 stopped at the trap
    module.launch("trap_after_barrier_f32", (2,), (32,), (y, numpy.int32(-1)))
    assert (y == 2).all()
    x = device(numpy.arange(32, dtype=numpy.float64))
    sums = device(numpy.zeros(32, numpy.float64))
    module.launch("warp_sum_f64", (1,), (32,), (x, sums))
    assert (sums == 496).all()


def test_dynamic_shared_memory_starts_as_nan(module):
    y = device(numpy.zeros(32, numpy.float32))
    module.launch("dynamic_shared_f32", (1,), (32,), (y,), shared_mem=128)
    assert numpy.isnan(y).all()


# What the benchmark scripts ask of CuPy beyond the kernels (profiling/bench_common.py), on the stand-in: run in
# a subprocess, where ``import cupy`` finds it (this process must keep seeing no GPU).
STAND_IN_CHECKS = r'''
import time
import numpy
import cupy
from build import EmulationError

runtime = cupy.cuda.runtime

# Events read the host's clock when recorded; the time between two is what ran in between.
start, end = cupy.cuda.Event(), cupy.cuda.Event()
start.record()
time.sleep(0.05)
end.record(cupy.cuda.get_current_stream())
end.synchronize()
ms = cupy.cuda.get_elapsed_time(start, end)
assert 45 <= ms < 5000, ms
for unrecorded in (cupy.cuda.Event(), cupy.cuda.Event(disable_timing=True)):
    unrecorded.synchronize()   # as in CUDA: nothing to wait for
    try:
        cupy.cuda.get_elapsed_time(unrecorded, end)
    except runtime.CUDARuntimeError as exc:
        assert exc.status == runtime.errorInvalidResourceHandle
    else:
        raise AssertionError("an event never recorded was timed")

# memcpyAsync copies the bytes between two device arrays, and only those.
src = cupy.arange(10, dtype=cupy.float32)
dst = cupy.zeros(12, dtype=cupy.float32)
runtime.memcpyAsync(dst.data.ptr, src.data.ptr, 10 * 4, runtime.memcpyDeviceToDevice,
                    cupy.cuda.get_current_stream().ptr)
assert dst.tolist() == list(range(10)) + [0, 0], dst
for bad in ((dst.data.ptr, src.data.ptr, 4, 9), (0, src.data.ptr, 4, runtime.memcpyDeviceToDevice)):
    try:
        runtime.memcpyAsync(*bad, 0)
    except runtime.CUDARuntimeError as exc:
        assert exc.status == runtime.errorInvalidValue
    else:
        raise AssertionError(f"memcpyAsync{bad} was accepted")

# RawKernel from its own source, on CUDA's uint4 (any array passes for it, as on the GPU).
copy = cupy.RawKernel("""
extern "C" __global__ void copy_16(const uint4* __restrict__ src, uint4* __restrict__ dst, long long n) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        dst[i] = src[i];
}""", "copy_16")
a = cupy.asarray(numpy.arange(80, dtype=numpy.uint8))
b = cupy.zeros_like(a)
copy((2,), (2,), (a, b, numpy.int64(4)))   # 4 of the 5 vectors
assert b.tolist() == list(range(64)) + [0] * 16, b

# -D options reach the kernel text; an option the host build cannot honour is refused.
source = 'extern "C" __global__ void fill(int* y) { y[threadIdx.x] = VALUE; }'
y = cupy.zeros(4, dtype=cupy.int32)
cupy.RawModule(code=source, options=("-std=c++17", "-DVALUE=7")).get_function("fill")((1,), (4,), (y,))
assert y.tolist() == [7] * 4, y
try:
    cupy.RawModule(code=source, options=("-DVALUE=1", "--use_fast_math")).compile()
except EmulationError as exc:
    assert "--use_fast_math" in str(exc)
else:
    raise AssertionError("an unknown NVRTC option was ignored")

assert runtime.deviceGetAttribute(runtime.cudaDevAttrL2CacheSize, 0) == 50 << 20
assert runtime.getDeviceProperties(0)["multiProcessorCount"] == 132
r = cupy.random.RandomState(0).standard_normal(1000, dtype=cupy.float32)
assert isinstance(r, cupy.ndarray) and r.dtype == numpy.float32 and abs(float(r.mean())) < 0.1
print("stand-in checks passed")
'''


def test_the_stand_in_has_what_the_benchmarks_use(tmp_path):
    script = tmp_path / "checks.py"
    script.write_text(STAND_IN_CHECKS)
    done = subprocess.run([sys.executable, str(HERE / "emulated_gpu" / "run_script.py"), str(script)],
                          capture_output=True, text=True, cwd=HERE.parent)
    assert done.returncode == 0 and "stand-in checks passed" in done.stdout, done.stdout + done.stderr


# The CuPy bodies run in this many groups of test files, each its own test, so that pytest-xdist spreads them
# over its workers (they are half of the suite's time); more groups than workers keeps the workers evenly busy.
SHARDS = 8


def _file_seconds(paths, table):
    """Each file's seconds on the emulator: from ``table`` (what ``python tests/emulated_gpu/run.py
    --file-seconds`` recorded), else, for a file the table does not know yet, estimated from its size at the
    table's seconds per byte."""
    known = [p for p in paths if p.name in table]
    known_bytes = sum(p.stat().st_size for p in known)
    per_byte = sum(table[p.name] for p in known) / known_bytes if known_bytes else 1.0
    return {p: table[p.name] if p.name in table else p.stat().st_size * per_byte for p in paths}


def _shards(count, table=None):
    """The suite's test files in ``count`` groups of about equal time on the emulator (``_file_seconds``):
    the longest file first into the quickest group so far, ties by name; every file in exactly one group,
    the same groups in every xdist worker."""
    if table is None:
        table = json.loads(run.FILE_SECONDS.read_text())
    seconds = _file_seconds(sorted(HERE.glob("test_*.py")), table)
    groups = [[0.0, []] for _ in range(count)]
    for path in sorted(seconds, key=lambda p: (-seconds[p], p.name)):
        quickest = min(groups, key=lambda g: g[0])
        quickest[0] += seconds[path]
        quickest[1].append(str(path))
    return [files for _, files in groups]


def test_the_shards_hold_every_test_file_once():
    shards = _shards(SHARDS)
    files = [f for shard in shards for f in shard]
    assert sorted(files) == sorted(str(p) for p in HERE.glob("test_*.py"))
    assert all(shards), "a shard without files"   # 8 groups of a suite of hundreds of files


def test_a_file_the_table_lacks_still_runs_in_one_shard_timed_by_its_size():
    table = json.loads(run.FILE_SECONDS.read_text())
    new = HERE / "test_emulated_gpu.py"   # as if this file were new: gone from the table
    del table[new.name]
    shards = _shards(SHARDS, table)
    assert [str(new) in shard for shard in shards].count(True) == 1
    assert sorted(f for shard in shards for f in shard) == sorted(str(p) for p in HERE.glob("test_*.py"))
    seconds = _file_seconds(sorted(HERE.glob("test_*.py")), table)
    known = [p for p in seconds if p != new]
    rate = sum(seconds[p] for p in known) / sum(p.stat().st_size for p in known)
    assert seconds[new] == pytest.approx(new.stat().st_size * rate) and seconds[new] > 0


def test_the_shards_are_balanced_by_recorded_seconds():
    # Each file into the quickest group so far keeps the groups within the longest file of each other (grouping
    # by bytes does not: the suite's byte-balanced groups took 186 to 1039 recorded seconds), and so no group
    # further than that above the mean.
    table = json.loads(run.FILE_SECONDS.read_text())
    seconds = {str(p): s for p, s in _file_seconds(sorted(HERE.glob("test_*.py")), table).items()}
    totals = [sum(seconds[f] for f in shard) for shard in _shards(SHARDS, table)]
    longest = max(seconds.values())
    assert max(totals) - min(totals) <= longest + 1e-9, totals
    assert max(totals) <= sum(totals) / SHARDS + longest, totals


def _runs_on_the_emulator(item):
    """Whether the emulated run of ``item``'s file runs it: a CuPy body, not one of the long training runs."""
    return runs_on_gpu(item) and not any(name in keyword for keyword in item.keywords
                                                       for name in run.LONG_TRAINING)


def _counts(output):
    """The outcomes of pytest's last line (``833 passed, 2 skipped, 1838 deselected in 202.22s``)."""
    last = output.strip().splitlines()[-1] if output.strip() else ""
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|skipped|xfailed|xpassed|failed|error)", last)}


@pytest.mark.slow
@pytest.mark.parametrize("shard", range(SHARDS))
def test_the_gpu_test_bodies_pass_on_the_emulated_gpu(shard, request):
    files = _shards(SHARDS)[shard]
    command = [sys.executable, str(HERE / "emulated_gpu" / "run.py"), "-q", "-p", "no:cacheprovider", "-rs",
               *run.without_long_training()]
    # BLAS threads as this process has them (one per xdist worker: tests/conftest.py).
    done = subprocess.run(command + files, capture_output=True, text=True, cwd=HERE.parent)
    tail = done.stdout[-6000:] + done.stderr[-2000:]
    assert done.returncode == 0, tail
    counts = _counts(done.stdout)
    assert counts.get("passed", 0) > 0, tail
    # Bodies may skip for a missing optional package (Keras, cupyx) as on a GPU machine, never for want of
    # a device: that would mean the stand-in was not taken for CuPy.
    skips = [line for line in tail.splitlines() if line.startswith("SKIPPED")]
    assert not any("no CUDA device" in line for line in skips), skips
    # Where this session collected the shard's files (the whole suite, in each xdist worker too), every CuPy
    # body it kept of them ran on the emulator: none lost to the emulated run's own collection (more where
    # this session deselected some).
    collected = [item for item in request.session.items if str(item.path) in files]
    if {str(item.path) for item in collected} == set(files):
        want = sum(map(_runs_on_the_emulator, collected))
        ran = sum(counts.get(word, 0) for word in ("passed", "skipped", "xfailed", "xpassed"))
        assert ran >= want > 0, (ran, want, tail)
