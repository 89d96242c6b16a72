"""The benchmark scripts need a GPU to run, but CI can still catch a syntax error in them.

(The GPU benchmarks also run in smoke mode on the emulated GPU: tests/test_bench_smoke.py.)
"""
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

PROFILING = Path(__file__).resolve().parent.parent / "profiling"


@pytest.mark.parametrize("script", sorted(p.name for p in PROFILING.glob("*.py")))
def test_python_script_compiles(script, tmp_path):
    py_compile.compile(str(PROFILING / script), cfile=str(tmp_path / "out.pyc"), doraise=True)


@pytest.mark.parametrize("script", sorted(p.name for p in PROFILING.glob("*.sh")))
def test_shell_script_parses(script):
    result = subprocess.run(["bash", "-n", str(PROFILING / script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _fake_python(tmp_path):
    """An interpreter stand-in: names a device when asked through -c, else records its arguments."""
    fake = tmp_path / "python"
    fake.write_text('#!/bin/bash\nif [ "$1" = "-c" ]; then echo Test-GPU; exit 0; fi\n'
                    'echo "RAN: $*${GPU_DL_BENCH_SMOKE:+ (smoke $GPU_DL_BENCH_SMOKE)}"\n')
    fake.chmod(0o755)
    return fake


def test_gpu_check_runs_only_the_groups_asked_for(tmp_path):
    out = tmp_path / "results"
    result = subprocess.run(["bash", str(PROFILING / "gpu_check.sh"), str(out), "info", "kernels"],
                            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin",
                                                                 "PYTHON": str(_fake_python(tmp_path))})
    assert result.returncode == 0, result.stdout + result.stderr
    ran = [line for line in result.stdout.splitlines() if line.startswith("RAN:")]
    assert ran[0] == "RAN: -m gpu_dl.cli info --device gpu"
    kernel_files = [line.split()[-1] for line in ran[1:]]   # one pytest per kernel test file
    assert all(line.startswith("RAN: -m pytest") for line in ran[1:])
    assert "tests/test_conv2d_kernel.py" in kernel_files and len(kernel_files) == len(set(kernel_files)) >= 7
    assert not any("tests" == line.split()[-1] for line in ran)   # no whole suite, sanitizer or benchmark
    assert sorted(p.name for p in out.iterdir()) == ["info.txt", "pytest_kernels.txt"]


def test_gpu_check_rejects_an_unknown_group(tmp_path):
    result = subprocess.run(["bash", str(PROFILING / "gpu_check.sh"), str(tmp_path / "r"), "benchmarks"],
                            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin",
                                                                 "PYTHON": str(_fake_python(tmp_path))})
    assert result.returncode == 2
    assert "unknown group 'benchmarks'" in result.stderr


def _ran(tmp_path, *groups):
    out = tmp_path / "results"
    result = subprocess.run(["bash", str(PROFILING / "gpu_check.sh"), str(out), *groups],
                            capture_output=True, text=True, env={"PATH": "/usr/bin:/bin",
                                                                 "PYTHON": str(_fake_python(tmp_path))})
    assert result.returncode == 0, result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if line.startswith("RAN:")], out


def test_gpu_check_smoke_group_runs_the_gpu_benchmarks_in_smoke_mode(tmp_path):
    smoke, out = _ran(tmp_path, "smoke")
    assert all(line.endswith(" (smoke 1)") for line in smoke), smoke
    smoked = [line.split()[1] for line in smoke]
    assert sorted(p.name for p in out.iterdir()) == ["bench_smoke.txt"]
    bench, _ = _ran(tmp_path, "bench")
    assert not any("(smoke" in line for line in bench)   # the real benchmarks stay full size
    benched = [line.split()[-1] for line in bench]
    # Every benchmark of the bench group but the two CPU ones, in the same order; and the emulated smoke
    # test covers each of them.
    gpu = [script for script in benched if script not in ("profiling/bench_conv_cpu.py",
                                                           "profiling/bench_train_cpu.py")]
    assert smoked == gpu and len(gpu) == 8, (smoked, benched)
    from test_bench_smoke import SCRIPTS
    assert sorted(Path(s).name for s in gpu) == sorted([*SCRIPTS, "bench_memory_pool.py"])


def test_profile_step_runs_on_the_cpu():
    result = subprocess.run([sys.executable, str(PROFILING / "profile_step.py"), "--device", "cpu", "--epochs", "1",
                             "--top", "5"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ms of host time per step" in result.stdout and "Ordered by: internal time" in result.stdout
