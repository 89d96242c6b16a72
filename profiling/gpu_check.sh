#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: the GPU test tier, compute-sanitizer over
# the kernel tests, and the benchmarks against PyTorch. Everything printed
# goes to files in one folder (default profiling/results/<date>-<device>/):
#   info.txt        gpu-dl info: versions, device, each kernel file compiled for this GPU
#   pytest.txt      the whole suite, every test body on NumPy and on CuPy
#   pytest_kernels.txt  the kernel tests alone (group "kernels")
#   sanitizer.txt   compute-sanitizer memcheck and racecheck over the kernel tests
#   *.md            benchmark tables (softmax cross-entropy, optimizers, digits MLP, conv2d vs cuDNN,
#                   pooling, LSTM vs cuDNN, the newer layers and optimizers; conv2d and training on CPU)
#   memory_pool.txt host cost of the memory pool per allocation
#   bench_smoke.txt the bench group's GPU scripts in smoke mode (group "smoke", GPU_DL_BENCH_SMOKE=1:
#                   tiny shapes, every table and result check; no figure in it is a measurement)
# Usage: profiling/gpu_check.sh [OUTPUT_DIR] [GROUP...]     (PYTHON=... picks the interpreter)
#   GROUPs: info, kernels (the kernel tests alone: quick), tests (the whole suite), sanitizer,
#   smoke (each GPU benchmark on tiny shapes: a script that fails, fails in seconds), bench;
#   none given: info tests sanitizer bench. One group per call keeps each call short where a
#   machine is lent for a limited time (there, "smoke" before "bench" costs a minute or two, most
#   of it the kernels' first compile, which "bench" then finds cached); the files are appended to,
#   so calls can share a folder.
# Runs from a source checkout without installing it. Exits non-zero if any step failed.
# GPU_CHECK_FILE_TIMEOUT (seconds, default 300) limits each kernel test file in the kernels and
# sanitizer groups; a file stopped by it shows "exit 124".
# CuPy's compiled kernels are cached in .cache/cupy under the checkout (CUPY_CACHE_DIR overrides),
# so later calls on the same machine skip NVRTC (conv2d.cu alone takes about 20 s per variant).
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export CUPY_CACHE_DIR="${CUPY_CACHE_DIR:-$ROOT/.cache/cupy}"

device=$("$PYTHON" -c "import cupy; p = cupy.cuda.runtime.getDeviceProperties(0); n = p['name']; print((n.decode() if isinstance(n, bytes) else n).replace(' ', '-'))") || {
    echo "gpu_check: no CUDA device answers through CuPy; run this on a GPU machine." >&2; exit 2; }
OUT_DIR="${1:-profiling/results/$(date +%F)-$device}"
shift || true
GROUPS_WANTED=" ${*:-info tests sanitizer bench} "
for group in $GROUPS_WANTED; do
    case $group in info|kernels|tests|sanitizer|smoke|bench) ;;
        *) echo "gpu_check: unknown group '$group' (info, kernels, tests, sanitizer, smoke, bench)" >&2; exit 2;; esac
done
wanted() { [[ $GROUPS_WANTED == *" $1 "* ]]; }
mkdir -p "$OUT_DIR"
# The bench group's GPU scripts (profiling/bench_NAME.py), which the smoke group also runs.
GPU_BENCHES=(softmax_xent optimizers mlp memory_pool conv2d pooling lstm layers)
KERNEL_TESTS=(tests/test_softmax_xent_kernel.py tests/test_optimizer_update.py tests/test_activation_kernels.py tests/test_pooling_kernel.py
              tests/test_conv2d_kernel.py tests/test_rnn_kernels.py tests/test_augment_kernel.py
              tests/test_ctc_kernel.py tests/test_counter_noise.py)
failed=()

step() {   # step NAME FILE COMMAND...: run, tee into FILE, remember a failure
    local name=$1 file=$2; shift 2
    echo "== $name" | tee -a "$OUT_DIR/$file"
    "$@" 2>&1 | tee -a "$OUT_DIR/$file"
    local rc=${PIPESTATUS[0]}
    echo "== $name: exit $rc" | tee -a "$OUT_DIR/$file"
    [ "$rc" -eq 0 ] || failed+=("$name")
}

if wanted info; then
    step "gpu-dl info" info.txt "$PYTHON" -m gpu_dl.cli info --device gpu
fi
# One kernel test file per step, each under a time limit: a hung or slow file (compute-sanitizer slows
# kernels 10-100x) costs its own limit, not the whole call, and every other file still reports.
FILE_LIMIT="${GPU_CHECK_FILE_TIMEOUT:-300}"
if wanted kernels; then
    for file in "${KERNEL_TESTS[@]}"; do
        step "kernel tests, NumPy and CuPy tiers: $file" pytest_kernels.txt \
            timeout "$FILE_LIMIT" "$PYTHON" -m pytest -q -p no:cacheprovider -rs "$file"
    done
fi
if wanted tests; then
    step "test suite, NumPy and CuPy tiers" pytest.txt "$PYTHON" -m pytest -q -p no:cacheprovider -rs tests
fi
if wanted sanitizer; then
    for tool in memcheck racecheck; do
        for file in "${KERNEL_TESTS[@]}"; do
            # GPU_DL_ALLOCATOR=raw: one cudaMalloc per array, so memcheck sees the edge of every buffer.
            step "compute-sanitizer --tool $tool: $file" sanitizer.txt env GPU_DL_ALLOCATOR=raw \
                timeout "$FILE_LIMIT" compute-sanitizer --tool "$tool" --error-exitcode 1 --print-limit 20 \
                "$PYTHON" -m pytest -q -p no:cacheprovider -x "$file"
        done
    done
fi
if wanted smoke; then
    for name in "${GPU_BENCHES[@]}"; do
        step "benchmark smoke run: $name" bench_smoke.txt env GPU_DL_BENCH_SMOKE=1 "$PYTHON" "profiling/bench_$name.py"
    done
fi
if wanted bench; then
    step "benchmark: softmax cross-entropy" softmax_xent.md "$PYTHON" profiling/bench_softmax_xent.py
    step "benchmark: optimizer updates" optimizers.md "$PYTHON" profiling/bench_optimizers.py
    step "benchmark: digits MLP" mlp.md "$PYTHON" profiling/bench_mlp.py
    step "benchmark: memory pool" memory_pool.txt "$PYTHON" profiling/bench_memory_pool.py
    step "benchmark: conv2d vs cuDNN" conv2d.md "$PYTHON" profiling/bench_conv2d.py
    step "benchmark: pooling" pooling.md "$PYTHON" profiling/bench_pooling.py
    step "benchmark: LSTM vs cuDNN" lstm.md "$PYTHON" profiling/bench_lstm.py
    step "benchmark: newer layers and optimizers vs PyTorch" layers.md "$PYTHON" profiling/bench_layers.py
    # The NumPy path on two cores (both CPU benchmarks also limit both libraries to 2 threads).
    pin=(); command -v taskset >/dev/null 2>&1 && pin=(taskset -c 0,1)
    step "benchmark: conv2d on CPU${pin[*]:+ (pinned to cores 0,1)}" conv_cpu.md \
        "${pin[@]}" "$PYTHON" profiling/bench_conv_cpu.py
    step "benchmark: training on CPU${pin[*]:+ (pinned to cores 0,1)}" train_cpu.md \
        "${pin[@]}" "$PYTHON" profiling/bench_train_cpu.py
fi
echo
if [ ${#failed[@]} -eq 0 ]; then
    echo "gpu_check: every step passed; output in $OUT_DIR"
else
    printf 'gpu_check: FAILED: %s\n' "${failed[@]}"
    exit 1
fi
