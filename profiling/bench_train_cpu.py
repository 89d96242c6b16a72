"""Training throughput on the CPU: gpu_dl's NumPy path against PyTorch eager, the main job's three models.

Each side trains the same network with Adam (Keras's defaults, epsilon 1e-7
on both sides) on sparse categorical cross-entropy, from the same host
arrays in the same batches, on the same number of threads (``--threads``,
default 2: the CPU-only CI machines have two cores):

- cnn: the seed notes' network (``gpu-dl train``'s default) on 28x28x1
  images, batch 128: Conv2D 32 3x3 same relu -> MaxPool 2 -> Conv2D 64 3x3
  same relu -> MaxPool 2 -> Dense 64 relu -> Dense 10. MNIST's shape; the
  pixels are random (the data set is not shipped), which costs the same.
- mlp: 64 -> Dense 64 relu -> Dropout 0.1 -> Dense 64 relu -> Dense 10 on
  the digits, batch 32.
- lstm: the digits read row by row (8 steps of 8 features) by LSTM(64) ->
  Dense 10, batch 32.

gpu_dl runs ``model.fit(..., verbose=0)`` over ``--steps`` batches; PyTorch
a plain loop (zero_grad, forward, loss, backward, step) over the same
batches, its model in NCHW (its fastest CPU layout) and in train mode. The
two alternate in blocks, each after one untimed step (``cpu_bench.py`` says
why). Reported: samples per second, the median over the blocks, and the
ratio gpu_dl / PyTorch (above 1: gpu_dl faster). Without PyTorch gpu_dl is
timed alone (its columns "-"). ``GPU_DL_BENCH_SMOKE=1``: batches of 4, at
most two steps in one block per library (``cpu_bench.py``).

Usage: taskset -c 0,1 python profiling/bench_train_cpu.py [--threads 2] [--steps 20] [--out FILE]
       GPU_DL_BENCH_SMOKE=1 python profiling/bench_train_cpu.py   (seconds: every model and column, tiny batches)
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cpu_bench  # noqa: E402


def _torch_models(torch):
    nn = torch.nn

    class RowLSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(8, 64, batch_first=True)
            self.head = nn.Linear(64, 10)

        def forward(self, x):
            _, (h, _) = self.lstm(x)
            return self.head(h[-1])

    return {
        "cnn": lambda: nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                     nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                                     nn.Linear(64 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10)),
        "mlp": lambda: nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 64), nn.ReLU(),
                                     nn.Linear(64, 10)),
        "lstm": RowLSTM,
    }


def _data(name, steps, batch, numpy):
    """(x in gpu_dl's layout, x in PyTorch's, integer labels) for ``steps`` batches."""
    rng = numpy.random.default_rng(0)
    if name == "cnn":
        x = rng.random((steps * batch, 28, 28, 1), dtype=numpy.float32)
        return x, numpy.ascontiguousarray(x.transpose(0, 3, 1, 2)), rng.integers(0, 10, len(x))
    from sklearn.datasets import load_digits
    digits = load_digits()
    take = rng.integers(0, len(digits.target), steps * batch)
    images = (digits.images[take] / 16.0).astype(numpy.float32)
    x = images.reshape(len(take), 64) if name == "mlp" else images   # lstm: (8 steps, 8 features)
    return x, x, digits.target[take]


def run(threads: int, steps: int) -> str:
    import statistics
    import time

    import numpy

    from gpu_dl import backend
    from gpu_dl.models.examples import build_cnn, build_lstm, build_mlp

    torch = cpu_bench.torch_or_none()
    if torch is not None:
        torch.set_num_threads(threads)
    backend.set_device("cpu")
    steps = cpu_bench.at_most_two(steps)
    ours = {"cnn": lambda: build_cnn((28, 28, 1), 10), "mlp": lambda: build_mlp((64,), 10),
            "lstm": lambda: build_lstm((8, 8), 10)}
    theirs = _torch_models(torch) if torch is not None else None
    batches = {"cnn": cpu_bench.smoke(128, 4), "mlp": cpu_bench.smoke(32, 4), "lstm": cpu_bench.smoke(32, 4)}

    rows = []
    for name in ("cnn", "mlp", "lstm"):
        batch = batches[name]
        x, x_torch, y = _data(name, steps, batch, numpy)
        backend.set_random_seed(0)
        model = ours[name]()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")

        def ours_block():
            model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)

        blocks = [ours_block]
        if torch is not None:
            torch.manual_seed(0)
            net = theirs[name]()
            net.train()
            optimizer = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-7)
            loss_fn = torch.nn.CrossEntropyLoss()
            tx = torch.from_numpy(x_torch)
            ty = torch.from_numpy(y.astype(numpy.int64))

            def torch_block():
                for i in range(0, len(tx), batch):
                    optimizer.zero_grad(set_to_none=True)
                    loss = loss_fn(net(tx[i:i + batch]), ty[i:i + batch])
                    loss.backward()
                    optimizer.step()

            blocks.append(torch_block)

        def untimed_step(fn):
            """One step of the library about to be timed: lets the other's spinning threads go idle."""
            if fn is ours_block:
                model.fit(x[:batch], y[:batch], batch_size=batch, epochs=1, verbose=0)
            else:
                optimizer.zero_grad(set_to_none=True)
                loss_fn(net(tx[:batch]), ty[:batch]).backward()
                optimizer.step()

        def samples_per_second(fn):
            t0 = time.perf_counter()
            fn()
            return [len(x) / (time.perf_counter() - t0)]

        rates = [statistics.median(r) for r in cpu_bench.alternate_in_blocks(blocks, samples_per_second,
                                                                             warm_up=untimed_step)]
        ours_rate, torch_rate = rates[0], (rates[1] if torch is not None else None)
        rows.append((name, str(batch), f"{ours_rate:,.0f}",
                     "-" if torch_rate is None else f"{torch_rate:,.0f}",
                     "-" if torch_rate is None else f"{ours_rate / torch_rate:.2f}x",
                     f"{1e3 * batch / ours_rate:.1f}",
                     "-" if torch_rate is None else f"{1e3 * batch / torch_rate:.1f}"))

    columns = ["model", "batch", "gpu_dl samples/s", "PyTorch samples/s", "gpu_dl / PyTorch",
               "gpu_dl ms/step", "PyTorch ms/step"]
    head = cpu_bench.header("Training on the CPU: gpu_dl (NumPy) vs PyTorch eager, float32", threads,
                            f"{steps} steps per block, median of {cpu_bench.BLOCKS} blocks.")
    return head + "\n" + cpu_bench.table(columns, rows) + "\n"


if __name__ == "__main__":
    cpu_bench.main(run, __doc__.splitlines()[0], "steps", 20, "training steps per block")
