#!/usr/bin/env bash
# Profile a short training run with Nsight Systems.
#
# The timeline shows CUDA API calls, every kernel (gpu_dl's own by their
# extern "C" names: conv2d_fwd_tf32_n32, maxpool2d_fwd_f32, softmax_xent_...,
# adam_update_f32, ...; cuBLAS's for the matrix products), memory copies
# and, with the nvtx package installed, gpu_dl's NVTX ranges in the gpu_dl
# domain: epoch, train_step, <layer>.forward, <layer>.backward, loss,
# optimizer_step. Then it prints the kernel and NVTX summaries.
#
# Usage: profiling/nsys_train.sh [OUTPUT_BASENAME] [-- gpu-dl train options]
#   default: profiling/results/nsys-train, `gpu-dl train --model cnn --epochs 2 --device gpu`
#   e.g.     profiling/nsys_train.sh /tmp/lstm -- --model lstm --epochs 1 --device gpu
# PYTHON=... picks the interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
out=profiling/results/nsys-train
if [ $# -gt 0 ] && [ "$1" != "--" ]; then out=$1; shift; fi
if [ $# -gt 0 ] && [ "$1" = "--" ]; then shift; fi
train_args=("$@")
if [ ${#train_args[@]} -eq 0 ]; then train_args=(--model cnn --epochs 2 --device gpu); fi

command -v nsys >/dev/null 2>&1 || {
    echo "nsys_train: Nsight Systems' nsys is not on PATH (it comes with the CUDA toolkit, or as the nsight-systems package)." >&2
    exit 2
}
"$PYTHON" -c "import nvtx" 2>/dev/null ||
    echo "nsys_train: the nvtx package is missing: kernels show, gpu_dl's ranges do not (pip install nvtx)." >&2

mkdir -p "$(dirname "$out")"
nsys profile --trace=cuda,nvtx,osrt --cuda-memory-usage=true --force-overwrite=true --output="$out" \
    "$PYTHON" -m gpu_dl.cli train "${train_args[@]}"
nsys stats --force-export=true --report cuda_gpu_kern_sum --report nvtx_sum "$out.nsys-rep"
echo "nsys_train: open $out.nsys-rep in the Nsight Systems GUI for the timeline."
