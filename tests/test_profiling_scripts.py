"""The benchmark scripts need a GPU to run, but CI can still catch a syntax error in them.

(The GPU benchmarks also run in smoke mode on the emulated GPU: tests/test_bench_smoke.py.)
"""
import ast
import py_compile
import re
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
    benched = [next(word for word in line.split() if word.startswith("profiling/")) for line in bench]
    assert "profiling/profile_step.py" in benched   # the MLP step's cProfile, not a table: no smoke run
    # Every benchmark of the bench group but the two CPU ones, in the same order; and the emulated smoke
    # test covers each of them.
    gpu = [script for script in benched if script not in ("profiling/bench_conv_cpu.py", "profiling/bench_train_cpu.py",
                                                           "profiling/profile_step.py")]
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


def _gpu_machine(tmp_path, pytest_log="", pytest_exit=0, pytest_sleep=0, failing_sanitizer_run="no such run",
                 xdist=True):
    """PATH and PYTHON for a stand-in GPU machine: PYTHON names a device when asked through -c (and
    fails to import pytest-xdist unless XDIST), prints
    PYTEST_LOG for the suite's `pytest -v` (then sleeps PYTEST_SLEEP and exits PYTEST_EXIT), runs the
    profiling scripts with this interpreter and records any other run; compute-sanitizer records its
    arguments and fails where they contain FAILING_SANITIZER_RUN."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "pytest_v.log").write_text(pytest_log)
    scripts = {
        "python": f'#!/bin/bash\n{"" if xdist else "[[ $2 == *xdist* ]] && exit 1"}\n'
                  f'if [ "$1" = "-c" ]; then echo Test-GPU; exit 0; fi\n'
                  f'if [[ "$1" == *.py ]]; then exec {sys.executable} "$@"; fi\n'
                  f'if [[ " $* " == *" -m pytest -v "* ]]; then\n'
                  f'    cat {tmp_path / "pytest_v.log"}; sleep {pytest_sleep}; exit {pytest_exit}; fi\n'
                  f'echo "RAN: $*"\n',
        "compute-sanitizer": f'#!/bin/bash\necho "SANITIZER: $*"\n'
                             f'[[ "$*" == *"{failing_sanitizer_run}"* ]] && exit 1; exit 0\n'}
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "PYTHON": str(bin_dir / "python")}


def _gpu_check(env, out, *groups, **variables):
    return subprocess.run(["bash", str(PROFILING / "gpu_check.sh"), str(out), *groups],
                          capture_output=True, text=True, env={**env, **variables}, timeout=120)


@pytest.mark.parametrize("variable, value, expected", [
    ("GPU_CHECK_JOBS", "six", "GPU_CHECK_JOBS must be a positive integer, got 'six'"),
    ("GPU_CHECK_JOBS", "0", "GPU_CHECK_JOBS must be a positive integer, got '0'"),
    ("GPU_CHECK_SUITE_TIMEOUT", "9m", "GPU_CHECK_SUITE_TIMEOUT must be a positive integer, got '9m'"),
    ("GPU_CHECK_FILE_TIMEOUT", "-5", "GPU_CHECK_FILE_TIMEOUT must be a positive integer, got '-5'"),
    ("GPU_CHECK_KEEP_FULL_LOG", "yes", "GPU_CHECK_KEEP_FULL_LOG must be 0 or 1, got 'yes'"),
    ("GPU_CHECK_SUITE_ALL", "all", "GPU_CHECK_SUITE_ALL must be 0 or 1, got 'all'")])
def test_gpu_check_refuses_a_bad_option_value(tmp_path, variable, value, expected):
    result = _gpu_check(_gpu_machine(tmp_path), tmp_path / "r", "info", **{variable: value})
    assert result.returncode == 2 and expected in result.stderr, result.stdout + result.stderr
    assert not (tmp_path / "r").exists()


def test_gpu_check_says_so_where_no_cuda_device_answers(tmp_path):
    python = tmp_path / "python"
    python.write_text("#!/bin/bash\necho 'cupy.cuda.runtime.CUDARuntimeError: no CUDA-capable device' >&2\nexit 1\n")
    python.chmod(0o755)
    result = _gpu_check({"PATH": "/usr/bin:/bin", "PYTHON": str(python)}, tmp_path / "r", "tests")
    assert result.returncode == 2
    assert "gpu_check: no CUDA device answers through CuPy; run this on a GPU machine." in result.stderr


def test_gpu_check_tests_group_writes_the_suite_s_summary(tmp_path):
    out = tmp_path / "r"
    env = _gpu_machine(tmp_path, XDIST_LOG + XDIST_END, pytest_exit=1)
    result = _gpu_check(env, out, "tests", GPU_CHECK_JOBS="3")
    assert result.returncode == 1
    assert result.stdout.strip().endswith("gpu_check: FAILED: test suite, CuPy tier")
    lines = (out / "pytest.txt").read_text().splitlines()
    assert lines[0] == "== test suite, CuPy tier"
    assert lines[1] == (f"command: timeout 540 {env['PYTHON']} -m pytest -v -p no:cacheprovider -rfE --tb=short -n 3 "
                        "--gpu-bodies-only --ignore tests/test_emulated_gpu.py tests")
    assert lines[2:] == _summary(tmp_path, XDIST_LOG + XDIST_END).stdout.splitlines() + [
        "== test suite, CuPy tier: exit 1"]
    assert sorted(p.name for p in out.iterdir()) == ["pytest.txt"]   # the -v log is not kept by default
    kept = _gpu_check(env, out, "tests", GPU_CHECK_KEEP_FULL_LOG="1")
    assert kept.returncode == 1 and (out / "pytest_full.log").read_text() == XDIST_LOG + XDIST_END
    assert (out / "pytest.txt").read_text().count("== test suite, CuPy tier: exit 1") == 2   # appended


def test_gpu_check_tests_group_runs_in_one_process_without_xdist(tmp_path):
    out = tmp_path / "r"
    env = _gpu_machine(tmp_path, PLAIN_LOG, xdist=False)
    # GPU_CHECK_SUITE_ALL=1: every test body, NumPy's too
    assert _gpu_check(env, out, "tests", GPU_CHECK_JOBS="3", GPU_CHECK_SUITE_ALL="1").returncode == 0
    lines = (out / "pytest.txt").read_text().splitlines()
    assert lines[0:3] == ["== test suite, NumPy and CuPy tiers",
                          "(pytest-xdist is not importable: the suite runs in one process)",
                          f"command: timeout 540 {env['PYTHON']} -m pytest -v -p no:cacheprovider -rfE --tb=short "
                          "--ignore tests/test_emulated_gpu.py tests"]
    assert "tests/test_broken.py (collection error)" in lines


def test_gpu_check_tests_group_reports_how_far_a_suite_stopped_by_its_time_limit_got(tmp_path):
    out = tmp_path / "r"
    result = _gpu_check(_gpu_machine(tmp_path, XDIST_LOG, pytest_sleep=60), out, "tests", GPU_CHECK_SUITE_TIMEOUT="2")
    assert result.returncode == 1
    text = (out / "pytest.txt").read_text()
    assert "command: timeout 2 " in text
    assert ("items reported: 5 of 6 (83%)\n"
            "no pytest summary: the run was stopped by its time limit of 2 s before pytest's summary\n") in text
    assert "tests/test_a.py::test_td\ntests/test_b.py::test_p[x - y]\n" in text
    assert text.endswith("== test suite, CuPy tier: exit 124\n")


def test_gpu_check_sanitizer_group_keeps_a_fixed_order_and_every_failure(tmp_path):
    out = tmp_path / "r"
    env = _gpu_machine(tmp_path, failing_sanitizer_run="racecheck --error-exitcode")
    kernel_files = [line.split()[-1] for line in _ran(tmp_path, "kernels")[0]]
    result = _gpu_check(env, out, "sanitizer", GPU_CHECK_JOBS="4")
    assert result.returncode == 1
    pairs = [(tool, file) for tool in ("memcheck", "racecheck") for file in kernel_files]
    assert result.stdout.strip().splitlines()[-len(kernel_files):] == [
        f"gpu_check: FAILED: compute-sanitizer --tool racecheck: {file}" for file in kernel_files]
    lines = (out / "sanitizer.txt").read_text().splitlines()
    assert lines[0] == f"== compute-sanitizer: {len(kernel_files)} files x 2 tools, 4 at once"
    expected = []
    for tool, file in pairs:
        name = f"compute-sanitizer --tool {tool}: {file}"
        expected += [f"== {name}",
                     f"SANITIZER: --tool {tool} --error-exitcode 1 --print-limit 20 {env['PYTHON']} -m pytest -q "
                     f"-p no:cacheprovider -x {file}",
                     f"== {name}: exit {int(tool == 'racecheck')}"]
    assert lines[1:] == expected
    # Each run's status is printed as it ends, in whatever order the runs end.
    assert sorted(line for line in result.stdout.splitlines() if ": exit " in line) == sorted(expected[2::3])
    assert sorted(p.name for p in (out / "sanitizer").iterdir()) == sorted(
        f"{tool}-{Path(file).stem}.log" for tool, file in pairs)


# Test files that import a kernel's launcher module but are no test of the kernel on a GPU.
NOT_KERNEL_TESTS = {
    "tests/test_activations.py": "asks activation_kernels.has_kernel which activations have a kernel",
    "tests/test_clahe_elastic_transform.py": "takes counter_noise's NumPy stream as its reference",
    "tests/test_keras_oracle_clahe_elastic_transform.py": "takes counter_noise's NumPy stream as its reference",
    "tests/test_rnn_fused_path.py": "replaces the launchers with NumPy stand-ins and runs on the CPU",
}


def _imported_modules(path):
    """The dotted names of the modules a Python file imports, `from package import module` included."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_gpu_check_kernel_tests_name_every_test_file_of_every_kernel(tmp_path):
    root = PROFILING.parent
    kernel_tests = [line.split()[-1] for line in _ran(tmp_path, "kernels")[0]]
    assert len(kernel_tests) == len(set(kernel_tests)) and all((root / f).is_file() for f in kernel_tests)
    launchers = {}   # kernel file -> the gpu_dl modules whose _KERNEL_FILE names it
    for module in (root / "gpu_dl").rglob("*.py"):
        for name in re.findall(r'^_KERNEL_FILE = "(\w+\.cu)"', module.read_text(), re.M):
            launchers.setdefault(name, set()).add(".".join(module.relative_to(root).with_suffix("").parts))
    kernel_files = sorted(p.name for p in (root / "kernels").glob("*.cu"))
    assert sorted(launchers) == kernel_files and len(kernel_files) >= 9
    imports = {f"tests/{p.name}": _imported_modules(p) for p in sorted((root / "tests").glob("test_*.py"))}
    for kernel, modules in launchers.items():
        tests = sorted(name for name, imported in imports.items() if imported & modules)
        assert set(tests) & set(kernel_tests), f"no kernel test of {kernel} in gpu_check.sh: {tests}"
        missing = [name for name in tests if name not in kernel_tests and name not in NOT_KERNEL_TESTS]
        assert not missing, f"gpu_check.sh's KERNEL_TESTS lacks {missing}, which test {kernel} ({sorted(modules)})"
    # Each exception still imports a launcher, and is not in the list after all.
    launcher_modules = set().union(*launchers.values())
    for name in NOT_KERNEL_TESTS:
        assert imports[name] & launcher_modules and name not in kernel_tests, name
