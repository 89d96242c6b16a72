"""Run tests on the emulated GPU: ``python tests/emulated_gpu/run.py [pytest arguments]``.

Run as a script, this folder comes first on ``sys.path``, so ``import cupy``
finds the stand-in (``cupy/__init__.py``) and the suite's CuPy test bodies
run their kernels on CPU fibers (``cuda_host.h``). Only those bodies run
(the ``xp`` fixture's cupy case and tests that take ``cupy_only``): the
NumPy ones are the ordinary suite's. gpu_dl's own device pool is left out
(``GPU_DL_ALLOCATOR=cupy``): the stand-in allocates with NumPy.
``run_script.py`` beside this runs a Python script (a benchmark) the same way.
"""
import os
import sys


class OnlyCupyBodies:
    """Deselects every collected test that does not run on the (emulated) GPU."""

    @staticmethod
    def on_gpu(item):
        callspec = getattr(item, "callspec", None)
        return "cupy_only" in item.fixturenames or (callspec is not None and callspec.params.get("xp") == "cupy")

    def pytest_collection_modifyitems(self, config, items):
        kept = [item for item in items if self.on_gpu(item)]
        config.hook.pytest_deselected(items=[item for item in items if not self.on_gpu(item)])
        items[:] = kept


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
    import pytest
    sys.exit(pytest.main(sys.argv[1:], plugins=[OnlyCupyBodies()]))
