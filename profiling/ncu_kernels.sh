#!/usr/bin/env bash
# Profile gpu_dl's own kernels with Nsight Compute.
#
# Runs a short training (by default one epoch of the digits CNN, which
# launches the convolution, pooling, activation, softmax cross-entropy and
# optimizer kernels) and collects Nsight Compute's full section set for the
# first launches of each kernel whose name matches KERNELS (cuBLAS's are
# left out). Each launch is tagged with the NVTX range it ran in
# (conv2d.forward, ...), when the nvtx package is installed.
#
# Usage: profiling/ncu_kernels.sh [OUTPUT_BASENAME] [-- gpu-dl train options]
#   default: profiling/results/ncu-kernels, `gpu-dl train --model cnn --epochs 1 --device gpu`
# Environment: KERNELS (a regular expression over kernel names), LAUNCHES (matching launches
# profiled, default 60), SET (ncu section set, default full), PYTHON (default python3).
# Profiling needs access to the GPU's performance counters: run as root, or with the driver's
# RmProfilingAdminOnly=0 setting (in containers: --cap-add=SYS_ADMIN).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
KERNELS=${KERNELS:-'^(conv2d_|maxpool2d_|avgpool2d_|global_(max|avg)pool2d_|softmax_xent_|bias_activation_|activation_bwd_|lstm_|gru_|[a-z_]+_update_)'}
LAUNCHES=${LAUNCHES:-60}
SET=${SET:-full}
out=profiling/results/ncu-kernels
if [ $# -gt 0 ] && [ "$1" != "--" ]; then out=$1; shift; fi
if [ $# -gt 0 ] && [ "$1" = "--" ]; then shift; fi
train_args=("$@")
if [ ${#train_args[@]} -eq 0 ]; then train_args=(--model cnn --epochs 1 --device gpu); fi

command -v ncu >/dev/null 2>&1 || {
    echo "ncu_kernels: Nsight Compute's ncu is not on PATH (it comes with the CUDA toolkit, or as the nsight-compute package)." >&2
    exit 2
}

mkdir -p "$(dirname "$out")"
ncu --set "$SET" --nvtx --kernel-name-base function --kernel-name "regex:$KERNELS" \
    --launch-count "$LAUNCHES" --force-overwrite --export "$out" \
    "$PYTHON" -m gpu_dl.cli train "${train_args[@]}"
ncu --import "$out.ncu-rep" --page details --print-summary per-kernel
echo "ncu_kernels: open $out.ncu-rep in the Nsight Compute GUI for the source and roofline views."
