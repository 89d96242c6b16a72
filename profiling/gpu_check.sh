#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: the GPU test tier, compute-sanitizer over
# the kernel tests, and the benchmarks against PyTorch. Everything printed
# goes to files in one folder (default profiling/results/<date>-<device>/):
#   info.txt        gpu-dl info: versions, device, each kernel file compiled for this GPU
#   pytest.txt      the suite's CuPy test bodies (every body, NumPy's too, with GPU_CHECK_SUITE_ALL=1):
#                   outcome counts, failed tests
#   pytest_full.log the suite's pytest -v output (only with GPU_CHECK_KEEP_FULL_LOG=1, or from a cut-off call)
#   pytest_kernels.txt  the kernel tests alone (group "kernels")
#   sanitizer.txt   compute-sanitizer memcheck and racecheck over the kernel tests (sanitizer/*.log: each run)
#   *.md            benchmark tables (softmax cross-entropy, optimizers, digits MLP, conv2d vs cuDNN,
#                   pooling, LSTM vs cuDNN, the newer layers and optimizers; conv2d and training on CPU)
#   memory_pool.txt host cost of the memory pool per allocation
#   profile_step.txt cProfile of the digits MLP's training steps on the GPU (where the host time goes)
#   bench_smoke.txt the bench group's GPU scripts in smoke mode (group "smoke", GPU_DL_BENCH_SMOKE=1:
#                   tiny shapes, every table and result check; no figure in it is a measurement)
# Usage: profiling/gpu_check.sh [OUTPUT_DIR] [GROUP...]     (PYTHON=... picks the interpreter)
#   GROUPs: info, kernels (the kernel tests alone: quick), tests (the suite's CuPy bodies), sanitizer,
#   smoke (each GPU benchmark on tiny shapes: a script that fails, fails in seconds), bench;
#   none given: info tests sanitizer bench. One group per call keeps each call short where a
#   machine is lent for a limited time (there, "smoke" before "bench" costs a minute or two, most
#   of it the kernels' first compile, which "bench" then finds cached); the files are appended to,
#   so calls can share a folder.
# Runs from a source checkout without installing it. Exits non-zero if any step failed.
# GPU_CHECK_FILE_TIMEOUT (seconds, default 300) limits each kernel test file in the kernels and
# sanitizer groups; a file stopped by it shows "exit 124".
# CuPy's compiled kernels are cached in .cache/cupy under the checkout (CUPY_CACHE_DIR overrides),
# so later calls on the same machine skip NVRTC (conv2d.cu alone takes about 20 s per variant); where
# each call gets a fresh copy of the checkout, carry .cache/cupy from one call to the next.
# The Keras-oracle tests (tests/test_keras_oracle_*.py and others) skip unless Keras 3 and what it
# imports (namex, optree, and torch for its torch backend) are importable by PYTHON.
#
# The "tests" group runs the suite's CuPy test bodies (tests/conftest.py's --gpu-bodies-only: the xp
# fixture's cupy case and the tests that take cupy_only; all of it with GPU_CHECK_SUITE_ALL=1), less
# tests/test_emulated_gpu.py (the emulator for machines without a GPU), with pytest-xdist on GPU_CHECK_JOBS workers (default: the cores less 2, at most
# 12; without pytest-xdist, in one process) and pytest -v, whose line per test goes to
# pytest_full.log as each test ends; after GPU_CHECK_SUITE_TIMEOUT seconds (default 540) the run
# is stopped. pytest.txt then gets the command, how far the run got, the outcome counts and the
# distinct failed or errored tests (profiling/pytest_summary.py). pytest_full.log (about 5 MB for
# the whole suite) is deleted after that unless GPU_CHECK_KEEP_FULL_LOG=1; a call cut off before
# then leaves it behind: `python profiling/pytest_summary.py OUT/pytest_full.log` summarises it.
# The "sanitizer" group runs each (tool, kernel test file) pair as its own process, GPU_CHECK_JOBS
# of them at once (default 6), each into OUT/sanitizer/TOOL-FILE.log, and prints each run's exit
# status as it ends; sanitizer.txt gets the logs in a fixed order (memcheck over each file, then
# racecheck) once all have ended. A call cut off before then leaves the logs of the runs that ended.
#
# On a machine lent for 30 minutes in calls of at most 10 minutes (an H100 with 16 cores, 2026-11-24):
#   call 1: gpu_check.sh OUT info smoke kernels   (4.5 minutes on a fresh machine, most of it the
#           kernels' first compile), then in the same call GPU_CHECK_SUITE_TIMEOUT=<seconds left>
#           gpu_check.sh OUT tests: its pytest.txt says how far the suite got (it did not finish in
#           the 5 minutes left that day; with the default of 540 s it fills a call of its own)
#   call 2: gpu_check.sh OUT sanitizer            (4.5 minutes with 6 at once over that day's 9
#           files; the slowest run, tests/test_rnn_kernels.py under racecheck, took 3)
#   call 3: gpu_check.sh OUT bench
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export CUPY_CACHE_DIR="${CUPY_CACHE_DIR:-$ROOT/.cache/cupy}"

positive_int() {   # positive_int VARIABLE DEFAULT: the variable's value, DEFAULT where unset or empty
    local value=${!1:-$2}
    [[ $value =~ ^[1-9][0-9]*$ ]] || {
        echo "gpu_check: $1 must be a positive integer, got '$value'" >&2; return 2; }
    echo "$value"
}
cores=$(nproc 2>/dev/null || echo 1)
# The suite's workers leave two cores to pytest's controlling process and the system, 12 at most.
# Six compute-sanitizer runs at once took the sanitizer group on the 16-core H100 machine of
# 2026-11-24 from about 10 minutes one after the other to about 4.5.
suite_default=$((cores - 2 > 12 ? 12 : (cores > 3 ? cores - 2 : 1)))
SUITE_JOBS=$(positive_int GPU_CHECK_JOBS "$suite_default") || exit 2
SANITIZER_JOBS=$(positive_int GPU_CHECK_JOBS 6) || exit 2
SUITE_LIMIT=$(positive_int GPU_CHECK_SUITE_TIMEOUT 540) || exit 2
FILE_LIMIT=$(positive_int GPU_CHECK_FILE_TIMEOUT 300) || exit 2
KEEP_FULL_LOG="${GPU_CHECK_KEEP_FULL_LOG:-0}"
[[ $KEEP_FULL_LOG == [01] ]] || {
    echo "gpu_check: GPU_CHECK_KEEP_FULL_LOG must be 0 or 1, got '$KEEP_FULL_LOG'" >&2; exit 2; }
SUITE_ALL="${GPU_CHECK_SUITE_ALL:-0}"
[[ $SUITE_ALL == [01] ]] || { echo "gpu_check: GPU_CHECK_SUITE_ALL must be 0 or 1, got '$SUITE_ALL'" >&2; exit 2; }

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
# The kernel tests: each test file that imports a kernel's launcher module (the gpu_dl module whose
# _KERNEL_FILE names a kernels/*.cu file) and runs the kernel on CuPy; tests/test_profiling_scripts.py
# holds the list to that, and names the files left out and why.
KERNEL_TESTS=(tests/test_softmax_xent_kernel.py tests/test_optimizer_update.py tests/test_activation_kernels.py
              tests/test_pooling_kernel.py tests/test_conv2d_kernel.py tests/test_rnn_kernels.py
              tests/test_augment_kernel.py tests/test_ctc_kernel.py tests/test_counter_noise.py
              tests/test_softmax_xent.py tests/test_keras_oracle_softmax_clip.py tests/test_loss_ctc.py
              tests/test_rnn_step_loops.py tests/test_rnn_layer_host_work.py tests/test_rnn_graph_capture.py
              tests/test_norm_kernels.py tests/test_batchnorm_kernels.py
              tests/test_groupnorm_kernels.py)
failed=()

record() {   # record NAME COMMAND...: "== NAME", the command's output, "== NAME: exit STATUS"
    local name=$1; shift
    echo "== $name"
    "$@" 2>&1
    local rc=$?
    echo "== $name: exit $rc"
    return "$rc"
}

step() {   # step NAME FILE COMMAND...: run, tee into FILE, remember a failure
    local name=$1 file=$2; shift 2
    record "$name" "$@" | tee -a "$OUT_DIR/$file"
    [ "${PIPESTATUS[0]}" -eq 0 ] || failed+=("$name")
}

if wanted info; then
    step "gpu-dl info" info.txt "$PYTHON" -m gpu_dl.cli info --device gpu
fi
# One kernel test file per step, each under a time limit (FILE_LIMIT): a hung or slow file
# (compute-sanitizer slows kernels 10-100x) costs its own limit, not the whole call, and every other
# file still reports.
if wanted kernels; then
    for file in "${KERNEL_TESTS[@]}"; do
        step "kernel tests, NumPy and CuPy tiers: $file" pytest_kernels.txt \
            timeout "$FILE_LIMIT" "$PYTHON" -m pytest -q -p no:cacheprovider -rs "$file"
    done
fi
suite() {   # the suite under its time limit into pytest_full.log, then its summary; returns pytest's status
    local run=("$PYTHON" -m pytest -v -p no:cacheprovider -rfE --tb=short)
    if "$PYTHON" -c "import xdist" >/dev/null 2>&1; then run+=(-n "$SUITE_JOBS")
    else echo "(pytest-xdist is not importable: the suite runs in one process)"; fi
    # The CuPy test bodies alone unless GPU_CHECK_SUITE_ALL=1: CI runs the NumPy ones on every commit, and the
    # whole suite did not fit the time a lent machine gives it (2026-11-24: 92% after 9 minutes).
    [ "$SUITE_ALL" = 1 ] || run+=(--gpu-bodies-only)
    run+=(--ignore tests/test_emulated_gpu.py tests)
    echo "command: timeout $SUITE_LIMIT ${run[*]}"
    # pytest -v writes a line as each test ends, into the file as it goes: if the call is cut off
    # before the summary below, pytest_full.log still holds every outcome reported until then.
    timeout -k 30 "$SUITE_LIMIT" "${run[@]}" > "$OUT_DIR/pytest_full.log" 2>&1
    local rc=$?
    if "$PYTHON" profiling/pytest_summary.py "$OUT_DIR/pytest_full.log" --exit-status "$rc" \
            --time-limit "$SUITE_LIMIT"; then
        [ "$KEEP_FULL_LOG" = 1 ] || rm -f "$OUT_DIR/pytest_full.log"
    elif [ "$rc" -eq 0 ]; then
        rc=2   # pytest's status says all passed, but its log holds no run: keep the log, fail the step
    fi
    return "$rc"
}
if wanted tests; then
    if [ "$SUITE_ALL" = 1 ]; then tiers="NumPy and CuPy tiers"; else tiers="CuPy tier"; fi
    step "test suite, $tiers" pytest.txt suite
fi
sanitizer_log() { echo "$OUT_DIR/sanitizer/$1-$(basename "$2" .py).log"; }
sanitize() {   # sanitize TOOL FILE: one compute-sanitizer run over one test file, into its own log
    # GPU_DL_ALLOCATOR=raw: one cudaMalloc per array, so memcheck sees the edge of every buffer.
    record "compute-sanitizer --tool $1: $2" env GPU_DL_ALLOCATOR=raw \
        timeout "$FILE_LIMIT" compute-sanitizer --tool "$1" --error-exitcode 1 --print-limit 20 \
        "$PYTHON" -m pytest -q -p no:cacheprovider -x "$2" > "$(sanitizer_log "$1" "$2")"
    tail -n 1 "$(sanitizer_log "$1" "$2")"
    return 0   # the status is in the log's last line; xargs would stop everything at a status of 255
}
if wanted sanitizer; then
    rm -rf "$OUT_DIR/sanitizer" && mkdir -p "$OUT_DIR/sanitizer"
    export -f record sanitize sanitizer_log
    export PYTHON OUT_DIR FILE_LIMIT
    echo "== compute-sanitizer: ${#KERNEL_TESTS[@]} files x 2 tools, $SANITIZER_JOBS at once" |
        tee -a "$OUT_DIR/sanitizer.txt"
    # Racecheck's runs start first: they are the long ones (up to 3 minutes against 1 on the H100),
    # and the group ends sooner when the short ones fill in behind them.
    for tool in racecheck memcheck; do
        for file in "${KERNEL_TESTS[@]}"; do printf '%s\0%s\0' "$tool" "$file"; done
    done | xargs -0 -n 2 -P "$SANITIZER_JOBS" bash -c 'sanitize "$1" "$2"' sanitize
    for tool in memcheck racecheck; do
        for file in "${KERNEL_TESTS[@]}"; do
            name="compute-sanitizer --tool $tool: $file"
            log=$(sanitizer_log "$tool" "$file")
            [ -f "$log" ] || echo "== $name: no log (the run did not start)" > "$log"
            cat "$log" >> "$OUT_DIR/sanitizer.txt"
            [[ $(tail -n 1 "$log") == "== $name: exit 0" ]] || failed+=("$name")
        done
    done
    echo "== compute-sanitizer: every run's output in $OUT_DIR/sanitizer.txt"
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
    # Where the MLP's host-bound step spends its time (cProfile; its step time includes the profiler's cost).
    step "host time of a digits MLP training step" profile_step.txt "$PYTHON" profiling/profile_step.py --device gpu
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
