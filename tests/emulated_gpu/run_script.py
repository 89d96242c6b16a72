"""Run a Python script on the emulated GPU: ``python tests/emulated_gpu/run_script.py [--torch] SCRIPT [ARGS]``.

As ``run.py`` does for the tests: this folder first on ``sys.path`` (``import
cupy`` finds the stand-in), this checkout's gpu_dl, CuPy's allocator. The
script runs as ``__main__`` with ``ARGS`` as its command line; its exit status
is this command's. The benchmark scripts run this way in their smoke mode
(``GPU_DL_BENCH_SMOKE=1``, ``tests/test_bench_smoke.py``).

``--torch``: PyTorch's CPU build stands in for its CUDA build (``torch_on_cpu``),
so a script's PyTorch side runs too, on the emulated device's memory. Without
it PyTorch cannot be imported, also where a CUDA build is installed: the
script runs gpu_dl alone, as on a machine without PyTorch, and never hands a
real CUDA tensor to the stand-in CuPy.
"""
import importlib.abc
import runpy
import sys

import run


class NoTorch(importlib.abc.MetaPathFinder):
    """Refuses ``torch`` and its submodules (a finder rather than None in sys.modules, which libraries probing
    for torch would trip over)."""

    def find_spec(self, name, path, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

if __name__ == "__main__":
    run.use_checkout()
    arguments = sys.argv[1:]
    if arguments[:1] == ["--torch"]:
        import torch_on_cpu
        torch_on_cpu.install()
        arguments = arguments[1:]
    else:
        sys.meta_path.insert(0, NoTorch())
    if not arguments:
        sys.exit(__doc__.splitlines()[0])
    sys.argv = arguments
    runpy.run_path(arguments[0], run_name="__main__")
