"""Where the host time of a training step goes: the digits MLP under cProfile.

On a GPU, small models are bound by the host (Python, CuPy dispatch, kernel
launches), not by the device; this lists the functions that cost the most.

Usage: python profiling/profile_step.py [--device gpu|cpu] [--batch-size N] [--top N]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gpu_dl import backend, data  # noqa: E402
from gpu_dl.models.examples import build_mlp  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="gpu", choices=["gpu", "cpu"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    backend.set_device(args.device)
    backend.set_random_seed(0)
    (x, y), _ = data.load_digits()
    model = build_mlp((64,), 10)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=args.batch_size, epochs=1, verbose=0)   # warm-up: compile, allocate
    profiler = cProfile.Profile()
    profiler.enable()
    model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=0)
    profiler.disable()
    steps = args.epochs * -(-len(x) // args.batch_size)
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text).sort_stats("tottime")
    print(f"{steps} steps, {stats.total_tt / steps * 1e3:.2f} ms of host time per step")
    stats.print_stats(args.top)
    print(text.getvalue())


if __name__ == "__main__":
    main()
