"""The NumPy convolution against PyTorch's CPU convolution on the same cores, float32.

Forward, and forward + both gradients (input and kernel; the bias gradient
is one sum on both sides), of each shape in ``conv_shapes.py``. Both
libraries get the same number of threads (``--threads``, default 2: the
CPU-only CI machines have two cores); PyTorch runs on NCHW tensors, its
fastest CPU layout, gpu_dl on NHWC. The two alternate in blocks of calls
(``cpu_bench.py`` says why and how), and each gets the median of its
``--repeats`` wall-clock times. Target: gpu_dl >= 0.5x PyTorch.

The "products" columns time the BLAS matrix products of im2col alone on
columns copied beforehand: the forward's (N*OH*OW, KH*KW*Cin) x (.., Cout),
the input gradient's (N*OH*OW, KH*KW*Cout) x (.., Cin) and the kernel
gradient's transposed product. No im2col + BLAS convolution can beat them,
so "products vs torch" is the best ratio this NumPy's BLAS allows.

Before a shape is timed its forward is checked: two images against the
convolution written out (every window times the kernel, no im2col), the
whole batch against PyTorch. Without PyTorch gpu_dl is timed alone (its
columns "-"). ``GPU_DL_BENCH_SMOKE=1``: the smoke shapes of
``conv_shapes.py`` and one block of at most two timed calls (``cpu_bench.py``).

Usage: taskset -c 0,1 python profiling/bench_conv_cpu.py [--threads 2] [--repeats 9] [--out FILE]
       GPU_DL_BENCH_SMOKE=1 python profiling/bench_conv_cpu.py   (seconds: every check and column, tiny shapes)
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cpu_bench  # noqa: E402


def _ms(seconds):
    """Milliseconds as the table prints them; "-" for PyTorch's when it is not installed."""
    return "-" if seconds is None else f"{seconds * 1e3:.1f}"


def _ratio(torch_seconds, seconds):
    return "-" if torch_seconds is None else f"{torch_seconds / seconds:.2f}x"


def reference_forward(x, kernel, padding):
    """The convolution written out without im2col: every window of the padded input times the kernel."""
    import numpy
    padded = numpy.pad(x, ((0, 0), *padding, (0, 0)))
    windows = numpy.lib.stride_tricks.sliding_window_view(padded, kernel.shape[:2], axis=(1, 2))  # (N, H, W, C, kh, kw)
    return numpy.einsum("nhwcij,ijco->nhwo", windows, kernel, optimize=True)


def run(threads: int, repeats: int) -> str:
    import numpy

    from conv_shapes import ALL_SHAPES, SMOKE_RESNET_SHAPES, SMOKE_SEED_SHAPES
    from gpu_dl.ops import convolution as conv

    torch = cpu_bench.torch_or_none()
    if torch is not None:
        torch.set_num_threads(threads)
    repeats = cpu_bench.at_most_two(repeats)

    def median_seconds(*fns):
        return cpu_bench.median_seconds(repeats, *fns)

    rows = []
    for shape in cpu_bench.smoke(ALL_SHAPES, SMOKE_SEED_SHAPES + SMOKE_RESNET_SHAPES):
        rng = numpy.random.default_rng(0)
        x = rng.standard_normal((shape.batch, shape.size, shape.size, shape.cin), dtype=numpy.float32)
        kernel = rng.standard_normal((shape.window, shape.window, shape.cin, shape.cout), dtype=numpy.float32)
        args = {"padding": shape.padding}
        tolerance = {"rtol": 1e-3, "atol": 1e-3 * numpy.sqrt(shape.window ** 2 * shape.cin)}

        def ours_forward():
            return conv.conv2d_forward(x, kernel, **args)

        def ours_step():
            y = conv.conv2d_forward(x, kernel, **args)
            conv.conv2d_backward_input(y, kernel, x.shape, **args)
            conv.conv2d_backward_kernel(x, y, kernel.shape, **args)

        windows = conv._windows(conv._padded(x, shape.padding), kernel.shape[:2], (1, 1), (1, 1), x.shape[1:3])
        columns = numpy.ascontiguousarray(windows).reshape(-1, kernel[..., 0].size)
        dy_columns = rng.standard_normal((columns.shape[0], shape.window ** 2 * shape.cout), dtype=numpy.float32)
        dy_rows = numpy.ascontiguousarray(dy_columns[:, :shape.cout])
        matrix = kernel.reshape(-1, shape.cout)
        matrix_back = rng.standard_normal((dy_columns.shape[1], shape.cin), dtype=numpy.float32)

        def products_forward():
            return columns @ matrix

        def products_step():
            columns @ matrix
            dy_columns @ matrix_back
            columns.T @ dy_rows

        # Two images against the convolution written out; all of them against PyTorch where it is installed.
        numpy.testing.assert_allclose(conv.conv2d_forward(x[:2], kernel, **args),
                                      reference_forward(x[:2], kernel, shape.padding), **tolerance)
        if torch is None:
            t_fwd, t_products_fwd = median_seconds(ours_forward, products_forward)
            t_step, t_products_step = median_seconds(ours_step, products_step)
            t_torch_fwd = t_torch_step = None
        else:
            tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
            tk = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()).requires_grad_(True)
            pad = (shape.window - 1) // 2 if shape.window % 2 else "same"

            def torch_forward():
                with torch.no_grad():
                    return torch.nn.functional.conv2d(tx, tk, padding=pad)

            def torch_step():
                y = torch.nn.functional.conv2d(tx, tk, padding=pad)
                y.backward(y.detach())

            numpy.testing.assert_allclose(ours_forward(), torch_forward().numpy().transpose(0, 2, 3, 1), **tolerance)
            t_fwd, t_torch_fwd, t_products_fwd = median_seconds(ours_forward, torch_forward, products_forward)
            t_step, t_torch_step, t_products_step = median_seconds(ours_step, torch_step, products_step)
        columns = dy_columns = None   # freed before the next shape allocates its own
        gflop = shape.flops() / 1e9
        rows.append((shape.label(),
                     _ms(t_fwd), _ms(t_torch_fwd), _ratio(t_torch_fwd, t_fwd), f"{gflop / t_fwd:.0f}",
                     _ms(t_step), _ms(t_torch_step), _ratio(t_torch_step, t_step), f"{3 * gflop / t_step:.0f}",
                     _ms(t_products_fwd), _ms(t_products_step), _ratio(t_torch_step, t_products_step)))
    columns = ["shape (N x H x W x Cin -> Cout, window)", "fwd ms", "torch fwd ms", "fwd vs torch", "fwd GFLOP/s",
               "fwd+bwd ms", "torch fwd+bwd ms", "fwd+bwd vs torch", "fwd+bwd GFLOP/s",
               "fwd products ms", "fwd+bwd products ms", "fwd+bwd products vs torch"]
    head = cpu_bench.header("NumPy convolution vs PyTorch CPU, float32", threads,
                            "Ratios are PyTorch time / gpu_dl time (> 1: gpu_dl faster); fwd+bwd FLOPs counted as "
                            "3x forward.")
    return head + "\n" + cpu_bench.table(columns, rows) + "\n"


if __name__ == "__main__":
    cpu_bench.main(run, __doc__.splitlines()[0], "repeats", 9, "timed calls per library and case")
