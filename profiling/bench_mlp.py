"""Training throughput of the digits MLP (the main job's model): gpu_dl against PyTorch eager.

Both sides train the same network (64 -> Dense 64 relu -> Dropout 0.1 ->
Dense 64 relu -> Dense 10 softmax) with Adam (Keras defaults) and sparse
categorical cross-entropy, on the same host arrays, shuffled each epoch,
each batch copied from the host to the GPU as it is used, the loss of every
step kept on the device. Samples per second over 5 epochs after one warm-up
epoch (wall clock, device drained at the end). gpu_dl on NumPy is listed too,
for the CPU fallback's scale, and gpu_dl on the GPU with CuPy's own memory
pool instead of gpu_dl's (GPU_DL_ALLOCATOR=cupy), for the allocator's cost.

Usage: python profiling/bench_mlp.py [--out FILE]
       GPU_DL_BENCH_SMOKE=1 python profiling/bench_mlp.py   (1 epoch of 300 images: bench_common.py)
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_common as bc  # noqa: E402
from gpu_dl import backend, data  # noqa: E402
from gpu_dl.models.examples import build_mlp  # noqa: E402

EPOCHS = bc.smoke(5, 1)
BATCH_SIZES = [32, 256]
SAMPLES = bc.smoke(None, 300)   # training images used (None: all); smoke: a batch of 256 and a partial one


def gpu_dl_samples_per_second(device, x, y, batch_size, allocator="gpu_dl"):
    os.environ["GPU_DL_ALLOCATOR"] = allocator
    backend.set_device("cpu")
    backend.set_device(device)   # installs the allocator named above
    backend.set_random_seed(0)
    model = build_mlp((64,), 10)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
    if device == "gpu":
        import cupy
        cupy.cuda.runtime.deviceSynchronize()
    t0 = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=EPOCHS, verbose=0)
    if device == "gpu":
        cupy.cuda.runtime.deviceSynchronize()
    return EPOCHS * len(x) / (time.perf_counter() - t0)


def torch_samples_per_second(torch, x, y, batch_size):
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 64), nn.ReLU(),
                          nn.Linear(64, 10)).cuda()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    rng = numpy.random.default_rng(0)

    def epoch():
        order = rng.permutation(len(x))
        losses = []
        for start in range(0, len(x), batch_size):
            index = order[start:start + batch_size]
            xb = torch.from_numpy(x[index]).cuda()
            yb = torch.from_numpy(y[index]).cuda()
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        return losses

    epoch()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(EPOCHS):
        epoch()
    torch.cuda.synchronize()
    return EPOCHS * len(x) / (time.perf_counter() - t0)


def run():
    (x, y), _ = data.load_digits()
    x, y = x[:SAMPLES], y[:SAMPLES]
    torch = bc.torch_or_none()
    rows = []
    for batch_size in BATCH_SIZES:
        gpu = gpu_dl_samples_per_second("gpu", x, y, batch_size)
        cupy_pool = gpu_dl_samples_per_second("gpu", x, y, batch_size, allocator="cupy")
        cpu = gpu_dl_samples_per_second("cpu", x, y, batch_size)
        reference = torch_samples_per_second(torch, x, y, batch_size) if torch is not None else None
        rows.append([batch_size, f"{gpu:,.0f}", "-" if reference is None else f"{reference:,.0f}",
                     "-" if reference is None else f"{gpu / reference:.2f}x", f"{cupy_pool:,.0f}", f"{cpu:,.0f}"])
    return (bc.header("Digits MLP training throughput (samples/s)") +
            f"\n{len(x)} training images, {EPOCHS} epochs timed after one warm-up epoch.\n\n" +
            bc.table(["batch", "gpu_dl GPU", "PyTorch eager GPU", "gpu_dl / PyTorch", "gpu_dl GPU, CuPy's pool",
                      "gpu_dl CPU (NumPy)"], rows))


if __name__ == "__main__":
    bc.main(run, __doc__.splitlines()[0])
