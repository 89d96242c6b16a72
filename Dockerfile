# gpu_dl on an NVIDIA CUDA base image.
#
# The package goes in with its cuda13 extra: CuPy together with the CUDA
# toolkit components from PyPI (cupy-cuda13x[ctk]), NVRTC and the CUDA
# headers it compiles gpu_dl's kernels against among them, so the image
# needs no toolkit of its own; the host needs only a driver for CUDA 13 and
# the NVIDIA Container Toolkit. The plot extra draws the training curves.
# CuPy keeps compiled kernels in /cache/cupy: mount a volume there and a new
# container starts without recompiling. `gpu-dl train` is the default
# command; its run folders go to /runs.
#
#   docker build -t gpu_dl .
#   docker run --rm --gpus all -v gpu_dl-kernels:/cache/cupy -v "$PWD/runs:/runs" gpu_dl
FROM nvidia/cuda:13.0.0-base-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/gpu_dl \
    PATH=/opt/gpu_dl/bin:$PATH \
    CUPY_CACHE_DIR=/cache/cupy

# Ubuntu's Python 3.12 with venv; Graphviz for gpu_dl.utils.plot_model.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv graphviz \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv "$VIRTUAL_ENV"

WORKDIR /src
COPY pyproject.toml README.md ./
COPY kernels ./kernels
COPY gpu_dl ./gpu_dl
# The project itself, from this source tree: its version is the tree's, nothing to pin.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[cuda13,plot]"

RUN useradd --create-home --uid 1000 gpu_dl \
    && mkdir -p /cache/cupy /runs \
    && chown gpu_dl /cache/cupy /runs
USER 1000
WORKDIR /runs
VOLUME ["/cache/cupy"]

ENTRYPOINT ["gpu-dl"]
CMD ["train"]
