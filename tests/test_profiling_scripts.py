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


XDIST_LOG = """\
============================= test session starts ==============================
created: 2/2 workers
2 workers [6 items]

tests/test_a.py::test_skip
[gw1] [ 16%] SKIPPED tests/test_a.py::test_skip
[gw0] [ 33%] PASSED tests/test_a.py::test_p[gpu_dl alone]
[gw1] [ 50%] XFAIL tests/test_a.py::test_xf
[gw1] [ 66%] FAILED tests/test_a.py::test_td
[gw0] [ 83%] FAILED tests/test_b.py::test_p[x - y]
[gw1] [ 83%] ERROR tests/test_a.py::test_td
"""
XDIST_END = """\
[gw0] [100%] PASSED tests/test_b.py::test_q
=========================== short test summary info ============================
FAILED tests/test_a.py::test_td - assert 0
FAILED tests/test_b.py::test_p[x - y] - AssertionError: assert 'x - y' != 'x - y'
ERROR tests/test_a.py::test_td - RuntimeError: teardown
========== 2 failed, 2 passed, 1 skipped, 1 xfailed, 1 error in 1.05s ==========
"""
PLAIN_LOG = """\
collecting ... collected 4 items / 1 error
tests/test_a.py::test_p[gpu_dl alone] PASSED                                 [ 25%]
tests/test_a.py::test_skip SKIPPED (no GPU [here])                           [ 50%]
tests/test_a.py::test_td FAILED                                              [ 75%]
tests/test_a.py::test_td ERROR                                               [ 75%]
tests/test_a.py::test_xp XPASS                                               [100%]
==================================== ERRORS ====================================
_____________________ ERROR collecting tests/test_broken.py ____________________
=========================== short test summary info ============================
ERROR tests/test_broken.py - ModuleNotFoundError: No module named 'nope'
==================== 1 failed, 1 passed, 1 skipped, 1 xpassed, 2 errors in 0.03s =====================
"""


def _summary(tmp_path, log, *options):
    path = tmp_path / "pytest_full.log"
    path.write_text(log)
    return subprocess.run([sys.executable, str(PROFILING / "pytest_summary.py"), str(path), *options],
                          capture_output=True, text=True)


def test_pytest_summary_of_a_finished_xdist_run(tmp_path):
    result = _summary(tmp_path, XDIST_LOG + XDIST_END)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "items reported: 6 of 6 (100%)",
        "pytest's summary: 2 failed, 2 passed, 1 skipped, 1 xfailed, 1 error in 1.05s",
        "outcomes reported: PASSED 2, FAILED 2, ERROR 1, SKIPPED 1, XFAIL 1",
        "failed or errored tests (2):",   # test_td failed and errored: one test
        "tests/test_a.py::test_td",
        "tests/test_b.py::test_p[x - y]"]   # a parameter with spaces and " - " kept whole


def test_pytest_summary_of_a_run_cut_off_by_its_time_limit_keeps_the_failures_so_far(tmp_path):
    result = _summary(tmp_path, XDIST_LOG, "--exit-status", "124", "--time-limit", "540")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["items reported: 5 of 6 (83%)",
                         "no pytest summary: the run was stopped by its time limit of 540 s before pytest's summary"]
    assert lines[-3:] == ["failed or errored tests (2):", "tests/test_a.py::test_td", "tests/test_b.py::test_p[x - y]"]
    other = _summary(tmp_path, XDIST_LOG, "--exit-status", "137").stdout
    assert "no pytest summary: the run ended with exit status 137 before pytest's summary" in other


def test_pytest_summary_of_a_run_without_xdist_with_a_collection_error(tmp_path):
    result = _summary(tmp_path, PLAIN_LOG)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "items reported: 4 of 4 (100%)",
        "pytest's summary: 1 failed, 1 passed, 1 skipped, 1 xpassed, 2 errors in 0.03s",
        "outcomes reported: PASSED 1, FAILED 1, ERROR 1, SKIPPED 1, XPASS 1",
        "failed or errored tests (2):",
        "tests/test_a.py::test_td",
        "tests/test_broken.py (collection error)"]


def test_pytest_summary_refuses_a_file_that_is_no_pytest_log(tmp_path):
    result = _summary(tmp_path, "Traceback (most recent call last):\nModuleNotFoundError: No module named 'xdist'\n")
    assert result.returncode == 2
    assert "holds no pytest run" in result.stderr and "No module named 'xdist'" in result.stderr
    missing = subprocess.run([sys.executable, str(PROFILING / "pytest_summary.py"), str(tmp_path / "none.log")],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and "cannot read the log" in missing.stderr
