"""Run tests on the emulated GPU: ``python tests/emulated_gpu/run.py [pytest arguments]``.

Run as a script, this folder comes first on ``sys.path``, so ``import cupy``
finds the stand-in (``cupy/__init__.py``) and the suite's CuPy test bodies
run their kernels on CPU fibers (``cuda_host.h``). Only those bodies run
(the ``xp`` fixture's cupy case and tests that take ``cupy_only``): the
NumPy ones are the ordinary suite's. gpu_dl's own device pool is left out
(``GPU_DL_ALLOCATOR=cupy``): the stand-in allocates with NumPy.
``run_script.py`` beside this runs a Python script (a benchmark) the same way.

``python tests/emulated_gpu/run.py --file-seconds [FILE ...]`` runs the
CuPy bodies of the test files named (all of them when none are) as
``tests/test_emulated_gpu.py`` does (the long training runs left out), with
an empty kernel cache as on a fresh machine, and writes how many seconds each
file took (its import and its tests) into ``file_seconds.json`` beside this,
the table that test groups the files by (about ten minutes of CPU for the
whole suite; runs over different files can share the cores).
"""
import collections
import fcntl
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FILE_SECONDS = HERE / "file_seconds.json"
# End-to-end training runs: their GPU bodies train for many epochs (minutes on the emulator) through the
# same kernels the other tests cover. They run on a real GPU.
LONG_TRAINING = ["test_digits_cnn_reaches_97_percent", "test_lstm_reads_digits_row_by_row_to_95_percent",
                 "test_windowed_series_forecast_beats_naive_by_far", "test_digits_mlp_reaches_95_percent",
                 "test_mixed_precision_cnn_reaches_float32_accuracy_on_digits",
                 # the keras.io examples' training runs (tests/test_keras_io_examples.py), up to a minute each
                 "test_the_image_classifier_learns_the_folder_and_scores_new_files",
                 "test_the_series_classifier_keeps_its_best_epoch_and_generalizes",
                 "test_the_character_model_learns_the_text_s_words"]


def without_long_training():
    """pytest's arguments that leave the long training runs out."""
    return ["-k", " and ".join(f"not {name}" for name in LONG_TRAINING)]


# Only the CuPy test bodies: tests/conftest.py's option deselects every other collected test.
ONLY_CUPY_BODIES = "--gpu-bodies-only"


class FileSeconds:
    """Seconds per test file (by name): the import and collection of its module, and its tests' setup, call and
    teardown."""

    def __init__(self):
        self.seconds = collections.Counter()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_make_collect_report(self, collector):
        start = time.perf_counter()
        yield
        if isinstance(collector, pytest.Module):
            self.seconds[collector.path.name] += time.perf_counter() - start

    def pytest_runtest_logreport(self, report):
        self.seconds[Path(report.nodeid.split("::")[0]).name] += report.duration


def record_file_seconds(files=()):
    """Runs the CuPy bodies of test ``files`` (every test file when none are named) and writes the seconds each
    file took into ``FILE_SECONDS``, keeping the other files' entries; pytest's exit status (nothing is written
    unless every test passed). Runs over different files may record at the same time."""
    recorder = FileSeconds()
    files = [str(Path(f).resolve()) for f in files] or sorted(str(path) for path in HERE.parent.glob("test_*.py"))
    with tempfile.TemporaryDirectory() as cache:
        # The kernels' host builds count where they happen on a fresh machine: in the first test that needs one.
        os.environ["GPU_DL_EMULATION_CACHE"] = cache
        status = pytest.main(["-q", "-p", "no:cacheprovider", ONLY_CUPY_BODIES, *without_long_training(), *files],
                             plugins=[recorder])
    if status == 0:
        with open(FILE_SECONDS.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            table = json.loads(FILE_SECONDS.read_text()) if FILE_SECONDS.is_file() else {}
            table.update({os.path.basename(f): round(recorder.seconds[os.path.basename(f)], 1) for f in files})
            FILE_SECONDS.write_text(json.dumps(dict(sorted(table.items())), indent=0) + "\n")
    return status


def use_checkout():
    """This checkout's gpu_dl on the emulated GPU, for this process and its subprocesses."""
    # The gpu_dl under test is this checkout's, not whichever one the interpreter has installed
    # (an editable install may point at another worktree); subprocesses of the tests inherit it.
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.path.insert(1, checkout)
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [checkout, os.environ.get("PYTHONPATH")]))
    os.environ["GPU_DL_ALLOCATOR"] = "cupy"
    os.environ.setdefault("GPU_DL_DEVICE", "cpu")   # tests that do not ask for the GPU keep NumPy


if __name__ == "__main__":
    use_checkout()
    if sys.argv[1:2] == ["--file-seconds"]:
        sys.exit(record_file_seconds(sys.argv[2:]))
    sys.exit(pytest.main([ONLY_CUPY_BODIES, *sys.argv[1:]]))
