"""The GPU benchmark scripts in smoke mode on the emulated GPU.

``GPU_DL_BENCH_SMOKE=1`` makes each script of ``profiling/gpu_check.sh``'s
bench group run every code path it has (result checks, every table, every
precision) on tiny shapes with one call per timing. Run here through ``tests/emulated_gpu/run_script.py``, the scripts'
own code, the launchers and the kernels run as they would on a GPU (the
figures measure nothing): a script that would crash, print an empty table
or report a MISMATCH fails here, not minutes into a GPU session.

Each script runs twice where PyTorch is installed: alone (PyTorch with CUDA
is missing, so gpu_dl is checked against its own NumPy path), and with
PyTorch's CPU build standing in for its CUDA build (``--torch``), so the
PyTorch side of every table and check runs too. A third kind of run makes
every result check fail on purpose, so the scripts' MISMATCH reporting (rows
not timed, a list of problems, exit status 1) is exercised as well.

The CPU benchmarks (``bench_conv_cpu.py``, ``bench_train_cpu.py``, ``bench_int8_matmul.py``) have the
same smoke mode and run here on plain NumPy, with no emulator: with PyTorch's
CPU build where it is installed, and with PyTorch hidden from them, when they
time gpu_dl alone.
"""
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from emulated_gpu import build

ROOT = Path(__file__).resolve().parent.parent
RUN_SCRIPT = ROOT / "tests" / "emulated_gpu" / "run_script.py"
PROFILING = ROOT / "profiling"
TIMEOUT = 600   # seconds per script run; each takes well under a minute

# The GPU scripts run on the emulated GPU, whose kernels the host's C++ compiler builds.
needs_compiler = pytest.mark.skipif(build.compiler() is None,
                                    reason="no C++ compiler to build the kernels for the host")


class Table:
    """What one printed table must look like: its first columns, its number of rows, and the columns whose every
    cell must read as a number (``torch_numbers``: only where PyTorch ran)."""

    def __init__(self, columns, rows, numbers=(), torch_numbers=(), equal=None, pattern=None):
        self.columns, self.rows, self.numbers, self.torch_numbers = tuple(columns), rows, numbers, torch_numbers
        self.equal = equal or {}   # column -> the text every cell must hold
        # (key column, checked column, {key cell: regular expression the checked cell must match from its start})
        self.pattern = pattern


# The kernels bench_conv2d.py's backward pieces table must list (the launches it recorded), per piece.
CONV_PIECE_KERNELS = {
    "relu gradient": r"activation_bwd_f32 \(\d+\) x 256$",
    "dx (backward data)": r"conv2d_bwd_data_((tf32|f32tile)(_m64)?_n(32|64)|f32) \(\d+\) x (64|128|256)$",
    "dkernel (backward filter)": r"conv2d_bwd_filter_((tf32|f32tile)_n(32|64) \(\d+, 1, \d+\) x 128|"
                                 r"f32 \(\d+, \d+\) x 256)( \+ conv2d_bwd_filter_reduce_f32 \(\d+\) x 256)?$",
    "dbias": r"CuPy sum\(axis=0\) of \(\d+, (32|64)\)$",   # smoke shapes: fewer rows than bias_row_split splits
}


def conv_tables(rows, pieces=False):
    """A precision's tables: forward, forward + backward, (with ``pieces``) the 4 backward pieces per shape,
    the result check."""
    timing = Table(["shape (N x H x W x Cin -> Cout, window)", "gpu_dl us"], rows,
                   numbers=["gpu_dl us", "gpu_dl TFLOP/s"], torch_numbers=["cuDNN us", "cuDNN / gpu_dl"])
    check = Table(["shape", "gpu_dl error", "gpu_dl"], rows, equal={"gpu_dl": "ok"}, torch_numbers=["PyTorch error"])
    backward = Table(["shape", "piece", "gpu_dl us", "share of gpu_dl fwd+bwd"], 4 * rows,
                     numbers=["gpu_dl us", "share of gpu_dl fwd+bwd"], torch_numbers=["cuDNN us", "cuDNN / gpu_dl"],
                     pattern=("piece", "gpu_dl kernels (grid x threads)", CONV_PIECE_KERNELS))
    return [timing, timing] + ([backward] if pieces else []) + [check]


LAYER_COLUMNS = ["layer", "shape", "pass", "error", "gpu_dl us", "unit", "gpu_dl rate"]
LAYER_NUMBERS = ["error", "gpu_dl us", "gpu_dl rate"]
LAYER_TORCH_NUMBERS = ["PyTorch us", "PyTorch rate", "PyTorch / gpu_dl"]

# script -> the tables it prints, in order
SCRIPTS = {
    "bench_softmax_xent.py": [
        Table(["shape", "MiB moved", "gpu_dl us"], 3, numbers=["gpu_dl us"], torch_numbers=["PyTorch us"]),
        Table(["shape", "MiB moved", "gpu_dl us"], 3, numbers=["gpu_dl us"], torch_numbers=["PyTorch us"]),   # clipped
        Table(["setting", "gpu_dl us"], 3, numbers=["gpu_dl us"]),
        Table(["shape", "gpu_dl us/call"], 2, numbers=["gpu_dl us/call"], torch_numbers=["PyTorch us/call"]),
    ],
    "bench_optimizers.py": [
        Table(["rule", "MiB moved", "gpu_dl us"], 4, numbers=["gpu_dl us"], torch_numbers=["PyTorch us"]),
    ],
    "bench_mlp.py": [
        Table(["batch", "gpu_dl GPU"], 2, numbers=["gpu_dl GPU", "gpu_dl GPU, CuPy's pool", "gpu_dl CPU (NumPy)"],
              torch_numbers=["PyTorch eager GPU"]),
    ],
    # TF32 and float32 with the backward pieces, bfloat16 (seed shapes) without, then the TF32 row tiles:
    # forward and backward data per shape, each tile's launch named; then the exact and tiled float32 kernels:
    # forward, backward data and backward filter per shape
    "bench_conv2d.py": conv_tables(7, pieces=True) + conv_tables(7, pieces=True) + conv_tables(6) + [
        Table(["shape", "pass", "rule", "128-row us", "64-row us", "128 / 64"], 14,
              numbers=["128-row us", "64-row us", "128 / 64"],
              pattern=("pass", "gpu_dl kernels, 128 / 64 rows (grid x threads)", {
                  "forward": r"conv2d_fwd_tf32_n(32|64) \(\d+\) x (128|256) / conv2d_fwd_tf32_m64_n(32|64) "
                             r"\(\d+\) x (64|128)$",
                  "backward data": r"conv2d_bwd_data_tf32_n(32|64) \(\d+\) x (128|256) / "
                                   r"conv2d_bwd_data_tf32_m64_n(32|64) \(\d+\) x (64|128)$"})),
        Table(["shape", "pass", "launched", "exact us", "tiled us", "exact / tiled"], 21,
              numbers=["exact us", "tiled us", "exact / tiled"], equal={"launched": "tiled"},
              pattern=("pass", "gpu_dl kernels, exact / tiled (grid x threads)", {
                  "forward": r"conv2d_fwd_f32 \(\d+\) x 256 / conv2d_fwd_f32tile(_m64)?_n(32|64) \(\d+\) x "
                             r"(64|128|256)$",
                  "backward data": r"conv2d_bwd_data_f32 \(\d+\) x 256 / conv2d_bwd_data_f32tile(_m64)?_n(32|64) "
                                   r"\(\d+\) x (64|128|256)$",
                  "backward filter": r"conv2d_bwd_filter_f32 \(\d+, \d+\) x 256( \+ conv2d_bwd_filter_reduce_f32 "
                                     r"\(\d+\) x 256)? / conv2d_bwd_filter_f32tile_n(32|64) \(\d+, 1, \d+\) x 128"
                                     r"( \+ conv2d_bwd_filter_reduce_f32 \(\d+\) x 256)?$"}))],
    "bench_pooling.py": [
        Table(["operation", "input (N, H, W, C)", "pass", "MiB moved", "gpu_dl us", "gpu_dl GB/s"], 20,
              numbers=["gpu_dl us"], torch_numbers=["PyTorch us"]),
        Table(["operation", "input (N, H, W, C)", "pass", "MiB moved", "gpu_dl us", "PyTorch us"], 46,
              numbers=["gpu_dl us", "gpu_dl us/call (host)"], torch_numbers=["PyTorch us", "PyTorch us/call (host)"]),
    ],
    "bench_lstm.py": [
        Table(["(batch, seq, input, hidden)", "pass", "gpu_dl GPU us"], 4,
              numbers=["gpu_dl GPU us", "gpu_dl wall us/call"],
              torch_numbers=["cuDNN GPU us", "cuDNN wall us/call"]),
        Table(["(batch, seq, input, hidden)", "pass", "eager GPU us"], 2,
              numbers=["eager GPU us", "graph GPU us"], equal={"max abs. difference (h; h and dx)": "0.0e+00"},
              # the graph side captured forward and backward once and replayed them on every later call
              pattern=("pass", "captures / replays", {"forward": r"2 / [1-9]\d*$",
                                                      "forward + backward": r"2 / [1-9]\d*$"})),
        Table(["(batch, seq, input, hidden)", "pass", "step loop GPU us"], 2,
              numbers=["step loop GPU us", "persistent GPU us", "max abs. difference (h; h and dx)"]),
        Table(["(batch, seq, input, hidden)", "kernel", "GPU us (T steps)"], 2,
              numbers=["GPU us (T steps)", "GPU us (8 T steps)", "GPU us per step"]),
    ],
    "bench_layers.py": [   # one table per family: attention, 3-D conv and pooling, ConvLSTM2D, normalization,
        # EinsumDense, Resizing (two rows, forward and forward + backward, per case), then the optimizers and CTC
        Table(LAYER_COLUMNS, rows, numbers=LAYER_NUMBERS, torch_numbers=LAYER_TORCH_NUMBERS)
        for rows in (6, 8, 2, 14, 2, 2, 2, 4)
    ],
}
NUMBER = re.compile(r"[-+]?[\d,]*\.?\d+(?:e[-+]?\d+)?x?%?")


def run_smoke(script, *, torch=False, driver=None, out=None):
    """``script`` (or a ``driver`` file that runs it) in smoke mode on the emulated GPU: the finished process."""
    command = [sys.executable, str(RUN_SCRIPT)] + (["--torch"] if torch else []) + [str(driver or PROFILING / script)]
    if out is not None:
        command += ["--out", str(out)]
    env = dict(os.environ, GPU_DL_BENCH_SMOKE="1")
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=TIMEOUT)


def parse_tables(text):
    """Every markdown table in ``text``: (columns, rows of cells)."""
    tables, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            cells = lambda line: [c.strip() for c in line.strip().strip("|").split("|")]  # noqa: E731
            columns, rows = cells(lines[i]), []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(cells(lines[i]))
                i += 1
            tables.append((columns, rows))
        else:
            i += 1
    return tables


def is_number(cell):
    """A figure as the scripts print it: ``1,234``, ``12.5``, ``3.0e-03``, ``0.25x``, ``85%``, ``307 (fused)``;
    ``3.4e-04 (dx)`` (an error and the output it is in)."""
    return NUMBER.fullmatch(cell.split(" (")[0]) is not None


def check_tables(text, expected, torch):
    tables = parse_tables(text)
    assert len(tables) == len(expected), f"{len(tables)} tables printed, {len(expected)} expected:\n{text}"
    for (columns, rows), want in zip(tables, expected):
        assert tuple(columns[:len(want.columns)]) == want.columns, columns
        assert len(rows) == want.rows, f"{columns}: {len(rows)} rows, {want.rows} expected"
        numbers = list(want.numbers) + (list(want.torch_numbers) if torch else [])
        for row in rows:
            assert len(row) == len(columns), row
            cell = dict(zip(columns, row))
            for column in numbers:
                assert is_number(cell[column]), f"{column} = {cell[column]!r} in {row}"
            for column, text_wanted in want.equal.items():
                assert cell[column] == text_wanted, f"{column} = {cell[column]!r} in {row}"
            if want.pattern is not None:
                key, column, patterns = want.pattern
                assert re.match(patterns[cell[key]], cell[column]), f"{column} = {cell[column]!r} in {row}"
            if not torch:   # gpu_dl alone: nothing is filled in for PyTorch
                for column in want.torch_numbers:
                    assert cell[column] == "-", f"{column} = {cell[column]!r} without PyTorch"


def check_clean(done):
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    for word in ("MISMATCH", "ERROR", "Traceback"):
        assert word not in output, output[-6000:]
    assert "**Smoke run**" in done.stdout   # the tables say they measure nothing


def torch_modes():
    if importlib.util.find_spec("torch") is None:
        return [False, pytest.param(True, marks=pytest.mark.skip(reason="PyTorch is not installed"))]
    return [False, True]


@needs_compiler
@pytest.mark.parametrize("torch", torch_modes(), ids=["gpu_dl alone", "with PyTorch on the CPU"])
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_bench_script_runs_every_table_in_smoke_mode(script, torch, tmp_path):
    out = tmp_path / "table.md"
    done = run_smoke(script, torch=torch, out=out)
    check_clean(done)
    check_tables(done.stdout, SCRIPTS[script], torch)
    assert out.read_text() in done.stdout    # --out writes what was printed
    if torch:
        assert "PyTorch with CUDA" not in done.stdout


@needs_compiler
def test_memory_pool_bench_runs_in_smoke_mode():
    done = run_smoke("bench_memory_pool.py")
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    assert "Smoke run" in done.stdout and "20 steps of 60 arrays" in done.stdout
    for kind in ("harness (no pool)", "repeated", "short batch", "random"):
        assert re.search(rf"{re.escape(kind)}\s+\d+\.\d+ us per malloc \+ free pair", done.stdout), done.stdout
    for pool in ("gpu_dl pool", "CuPy pool"):   # the CuPy half runs: the emulated device answers
        assert re.search(rf"cupy\.empty\(256\) \+ release, {pool}: \d+\.\d+ us", done.stdout), done.stdout


# Each script's own result check made to fail (a tolerance no result meets): the MISMATCH rows, the list of
# problems and the exit status are what a GPU session would see of a wrong kernel.
FAILING = {
    "bench_conv2d.py": "bench.TOLERANCE = {key: -1.0 for key in bench.TOLERANCE}",
    "bench_pooling.py": "bench.TOLERANCE = -1.0",
    "bench_lstm.py": "bench.TOLERANCE = -1.0",
    "bench_softmax_xent.py": "bench.TOLERANCE = -1.0",
    "bench_layers.py": "bench.TOLERANCE = -1.0",
}
DRIVER = """import sys
sys.path.insert(0, {profiling!r})
import {module} as bench
{patch}
bench.bc.main(bench.run, "failing checks")
sys.exit(1 if getattr(bench, "problems", None) else 0)
"""


def test_gpu_dl_alone_cannot_import_torch_even_where_it_is_installed(tmp_path):
    # Where PyTorch is installed with CUDA, a script that could import it would hand real CUDA tensors to the
    # stand-in CuPy; without --torch the emulated run must be a machine without PyTorch.
    probe = tmp_path / "probe.py"
    probe.write_text("try:\n    import torch.cuda\nexcept ModuleNotFoundError as exc:\n    print('refused', exc.name)\n"
                     "else:\n    print('imported')\n")
    done = subprocess.run([sys.executable, str(RUN_SCRIPT), str(probe)], capture_output=True, text=True, cwd=ROOT,
                          timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["refused", "torch"]


@needs_compiler
@pytest.mark.parametrize("script", sorted(FAILING))
def test_a_failed_result_check_is_reported_and_not_timed(script, tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(profiling=str(PROFILING), module=script[:-3], patch=FAILING[script]))
    done = run_smoke(script, driver=driver)
    output = done.stdout + done.stderr
    assert done.returncode == 1, output[-6000:]
    assert "MISMATCH" in output, output[-6000:]
    if script == "bench_softmax_xent.py":   # it stops at the first wrong gradient
        assert "AssertionError: MISMATCH at (5, 1000)" in done.stderr, done.stderr[-3000:]
        return
    tables = parse_tables(done.stdout)
    assert tables, done.stdout
    if script == "bench_conv2d.py":
        assert "**Problems** (these rows were not timed)" in done.stdout
        assert done.stdout.count("- MISMATCH: gpu_dl") == 7 + 7 + 6
        timing = [rows for columns, rows in tables if columns[1] == "gpu_dl us"]
        assert len(timing) == 6 and all(row[1] == "not timed" for rows in timing for row in rows)
        checks = [rows for columns, rows in tables if columns[1] == "gpu_dl error"]
        assert all(row[2] == "MISMATCH" for rows in checks for row in rows)
        pieces = [rows for columns, rows in tables if columns[1] == "piece"]
        assert len(pieces) == 2 and all(row[2] == "not timed" and row[6] == "-" for rows in pieces for row in rows)
        tiles = [rows for columns, rows in tables if columns[1] == "pass"]
        # the row tiles and the exact / tiled float32 kernels
        assert len(tiles) == 2 and all(row[3:] == ["not timed", "not timed", "-", "- / -"]
                                       for rows in tiles for row in rows)
    elif script == "bench_pooling.py":
        assert "**Problems** (these rows were not timed)" in done.stdout
        assert all(row[4] == "not timed" for columns, rows in tables for row in rows)
    elif script == "bench_layers.py":   # every case: one row, not timed; the optimizers too
        assert "**Problems** (these rows were not timed)" in done.stdout
        assert done.stdout.count("- MISMATCH: ") == 3 + 4 + 1 + 7 + 1 + 1 + 2 + 2
        assert [len(rows) for _, rows in tables] == [3, 4, 1, 7, 1, 1, 2, 2]
        assert all(row[4] == "not timed" for _, rows in tables for row in rows)
    else:   # bench_lstm.py
        assert [row[1] for row in tables[0][1]] == ["MISMATCH", "MISMATCH"]
        assert len(tables) == 1   # nothing timed, so no step-loop table either


# PyTorch 2.11's CUDA avg_pool2d backward on channels_last tensors with padding > 0 puts dx `padding` pixels
# off (pytorch/pytorch#188344); this PyTorch does the same to the CPU build's right dx, so bench_pooling.py's
# second opinion (gpu_dl's NumPy path) must name PyTorch, not gpu_dl, and still time the rows.
SHIFTED_AVG_POOL_DRIVER = """import sys
sys.path.insert(0, {profiling!r})
import torch
F = torch.nn.functional
avg_pool2d = F.avg_pool2d


class ShiftedGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, pad):
        ctx.pad = pad
        return x.clone()

    @staticmethod
    def backward(ctx, dx):
        (ph, pw), (h, w) = ctx.pad, dx.shape[2:]
        shifted = torch.zeros_like(dx)
        shifted[:, :, ph:, pw:] = dx[:, :, :h - ph, :w - pw]
        return shifted, None


def avg_pool2d_shifted(x, *args, padding=0, **kwargs):
    pad = tuple(padding) if isinstance(padding, (tuple, list)) else (padding, padding)
    if pad != (0, 0) and x.is_contiguous(memory_format=torch.channels_last):
        x = ShiftedGradient.apply(x, pad)
    return avg_pool2d(x, *args, padding=padding, **kwargs)


F.avg_pool2d = avg_pool2d_shifted
import bench_pooling as bench
bench.bc.main(bench.run, "PyTorch with a wrong avg_pool2d backward")
sys.exit(1 if bench.problems else 0)
"""


@needs_compiler
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed")
def test_bench_pooling_names_pytorch_when_only_its_result_is_wrong(tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(SHIFTED_AVG_POOL_DRIVER.format(profiling=str(PROFILING)))
    done = run_smoke("bench_pooling.py", torch=True, driver=driver)
    output = done.stdout + done.stderr
    assert done.returncode == 0 and "MISMATCH" not in output, output[-6000:]
    assert "**PyTorch's results differ**" in done.stdout, done.stdout[-6000:]
    notes = [line for line in done.stdout.splitlines() if line.startswith("- PyTorch differs: ")]
    label = "avg 3x3/2 same, pad ((1, 1), (1, 1)), bwd rows"   # PyTorch's only average pooling with padding > 0
    assert [line.split(" at ")[1].split(":")[0] for line in notes] == ["(2, 7, 7, 8)", "(2, 9, 9, 8)"], notes
    assert all(line.startswith(f"- PyTorch differs: {label} at ") and "dx: max |diff|" in line and
               "gpu_dl matches its NumPy path" in line for line in notes), notes
    rows = [row for _, rows in parse_tables(done.stdout) for row in rows if row[0] == label]
    assert len(rows) == 6 and not any("not timed" in row for row in rows), rows


# ------------------------------------------------------------------ the CPU benchmarks
CPU_SCRIPTS = {
    "bench_conv_cpu.py": [
        Table(["shape (N x H x W x Cin -> Cout, window)", "fwd ms"], 7,
              numbers=["fwd ms", "fwd GFLOP/s", "fwd+bwd ms", "fwd+bwd GFLOP/s", "fwd products ms",
                       "fwd+bwd products ms"],
              torch_numbers=["torch fwd ms", "fwd vs torch", "torch fwd+bwd ms", "fwd+bwd vs torch",
                             "fwd+bwd products vs torch"]),
    ],
    "bench_train_cpu.py": [
        Table(["model", "batch", "gpu_dl samples/s"], 3, numbers=["gpu_dl samples/s", "gpu_dl ms/step"],
              torch_numbers=["PyTorch samples/s", "gpu_dl / PyTorch", "PyTorch ms/step"]),
    ],
    "bench_int8_matmul.py": [
        Table(["shape (M x K @ K x N)", "float64 ms", "float32 blocks ms"], 2,
              numbers=["float64 ms", "float32 blocks ms", "blocks"], torch_numbers=["torch float32 ms"]),
    ],
}
CPU_TIMEOUT = 120   # seconds per script run; each takes a few
# Runs a script as __main__ with PyTorch made impossible to import (a finder that refuses it, rather than None in
# sys.modules, which libraries probing for torch would trip over).
WITHOUT_TORCH = """import importlib.abc, runpy, sys


class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoTorch())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def run_cpu_smoke(script, tmp_path, *, torch, out=None, driver=None):
    """``script`` (or a ``driver`` file that runs it) in smoke mode on NumPy, PyTorch hidden unless ``torch``."""
    command = [sys.executable, str(driver or PROFILING / script)] + (["--out", str(out)] if out is not None else [])
    if not torch:
        hider = tmp_path / "without_torch.py"
        hider.write_text(WITHOUT_TORCH)
        command.insert(1, str(hider))
    env = dict(os.environ, GPU_DL_BENCH_SMOKE="1")
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=CPU_TIMEOUT)


@pytest.mark.parametrize("torch", torch_modes(), ids=["gpu_dl alone", "with PyTorch"])
@pytest.mark.parametrize("script", sorted(CPU_SCRIPTS))
def test_cpu_bench_script_runs_every_table_in_smoke_mode(script, torch, tmp_path):
    out = tmp_path / "table.md"
    done = run_cpu_smoke(script, tmp_path, torch=torch, out=out)
    check_clean(done)
    check_tables(done.stdout, CPU_SCRIPTS[script], torch)
    assert out.read_text() in done.stdout
    assert ("PyTorch is not installed: gpu_dl alone." in done.stdout) is not torch


CONV_CPU_WRONG = """import sys
sys.path.insert(0, {profiling!r})
import bench_conv_cpu as bench
right = bench.reference_forward
bench.reference_forward = lambda x, kernel, padding: right(x, kernel, padding) + 1.0
bench.cpu_bench.main(bench.run, "a wrong reference", "repeats", 9, "timed calls")
"""


def test_the_cpu_convolution_check_fails_a_wrong_result(tmp_path):
    driver = tmp_path / "driver.py"
    driver.write_text(CONV_CPU_WRONG.format(profiling=str(PROFILING)))
    done = run_cpu_smoke("bench_conv_cpu.py", tmp_path, torch=False, driver=driver)
    assert done.returncode != 0, done.stdout[-3000:]
    assert "AssertionError" in done.stderr and "Not equal to tolerance" in done.stderr, done.stderr[-3000:]
    assert not parse_tables(done.stdout)    # stopped before any shape was timed


def test_the_table_checks_catch_what_they_look_for():
    good = "| a | gpu_dl us |\n|---|---|\n| x | 1.5 |\n| y | 2,000 |\n"
    check_tables(good, [Table(["a", "gpu_dl us"], 2, numbers=["gpu_dl us"])], torch=False)
    for bad, table in [(good.replace("2,000", "not timed"), Table(["a"], 2, numbers=["gpu_dl us"])),
                       (good, Table(["a"], 3)),
                       (good, Table(["b"], 2)),
                       (good + "\n" + good, Table(["a"], 2)),
                       (good, Table(["a"], 2, equal={"gpu_dl us": "ok"}))]:
        with pytest.raises(AssertionError):
            check_tables(bad, [table], torch=False)
