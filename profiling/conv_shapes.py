"""The convolution shapes the benchmarks time: the seed architecture's layers and a ResNet layer.

Seed architecture, INPUT -> [CONV -> RELU -> POOL]*2 -> FC on 28x28 and
32x32 inputs, batch 128: a 3x3 3->32 convolution on the input, a 3x3 32->64
one after the 2x2 pool, and a 1x1 32->64 (the seeds' 1x1 convolutions).
ResNet: the 3x3 64->64 convolution at 56x56 of a ResNet's first stage.
All "same" padding, stride 1.

The smoke shapes (``GPU_DL_BENCH_SMOKE=1``, see ``bench_common.py``) keep
each shape's name, channels and window, so the same kernels and tiles run,
on a batch of 5 images of 5 to 9 pixels a side: more samples than the NumPy
reference check covers, and reductions of backward filter both split over
blocks and not.
"""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ConvShape:
    name: str
    batch: int
    size: int        # height = width
    cin: int
    cout: int
    window: int      # kernel height = width

    @property
    def padding(self):
        pad = (self.window - 1) // 2
        return (pad, self.window - 1 - pad), (pad, self.window - 1 - pad)

    def flops(self) -> int:
        """Multiply-adds x 2 of the forward pass ("same", stride 1: output size = input size)."""
        return 2 * self.batch * self.size * self.size * self.cout * self.window * self.window * self.cin

    def label(self) -> str:
        return (f"{self.name}: {self.batch}x{self.size}x{self.size}x{self.cin} -> {self.cout}, "
                f"{self.window}x{self.window}")


SEED_SHAPES = [
    ConvShape("seed28 conv1", 128, 28, 3, 32, 3),
    ConvShape("seed28 conv2", 128, 14, 32, 64, 3),
    ConvShape("seed28 1x1", 128, 28, 32, 64, 1),
    ConvShape("seed32 conv1", 128, 32, 3, 32, 3),
    ConvShape("seed32 conv2", 128, 16, 32, 64, 3),
    ConvShape("seed32 1x1", 128, 32, 32, 64, 1),
]
RESNET_SHAPES = [ConvShape("resnet 56", 128, 56, 64, 64, 3)]
ALL_SHAPES = SEED_SHAPES + RESNET_SHAPES

_SMOKE_SIZES = {"seed28 conv1": 8, "seed28 conv2": 7, "seed28 1x1": 8, "seed32 conv1": 9, "seed32 conv2": 6,
                "seed32 1x1": 5, "resnet 56": 8}
SMOKE_SEED_SHAPES = [replace(shape, batch=5, size=_SMOKE_SIZES[shape.name]) for shape in SEED_SHAPES]
SMOKE_RESNET_SHAPES = [replace(shape, batch=5, size=_SMOKE_SIZES[shape.name]) for shape in RESNET_SHAPES]
