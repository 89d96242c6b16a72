"""The wheel carries the CUDA sources, and the loader finds them in an installed copy."""
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_listed_packages_are_every_package_directory():
    tomllib = pytest.importorskip("tomllib")
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "gpu_dl").rglob("__init__.py")}
    assert listed == on_disk | {"gpu_dl.kernels"}


@pytest.mark.slow
def test_installed_wheel_ships_and_finds_the_kernels(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                            "-w", str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True)
    if built.returncode != 0 and "No module named" in built.stderr:
        pytest.skip(f"cannot build a wheel here: {built.stderr.strip().splitlines()[-1]}")
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("gpu_dl-*.whl")
    sources = sorted(p.name for p in (ROOT / "kernels").iterdir() if p.suffix in (".cu", ".cuh"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(tmp_path / "site")
        shipped = sorted(Path(n).name for n in archive.namelist() if n.startswith("gpu_dl/kernels/"))
    assert shipped == sources
    found = subprocess.run([sys.executable, "-c", "from gpu_dl.backend import kernels; "
                            "print(kernels.kernel_dir()); print(' '.join(kernels.kernel_files()))"],
                           cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "site")}, capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    folder, files = found.stdout.splitlines()
    assert Path(folder) == tmp_path / "site" / "gpu_dl" / "kernels"
    assert files.split() == [s for s in sources if s.endswith(".cu")]


# Each module is imported first in a process of its own, forked from one that has imported the package
# ``gpu_dl`` alone and then forgotten every gpu_dl module: each import of a gpu_dl module starts with that
# package (and the third-party modules it loads, NumPy mostly), so every gpu_dl module still loads in the
# order a fresh interpreter loads them, without an interpreter start and a NumPy import per module. Any
# other third-party module loads in the child, as in a fresh interpreter.
# A module that its package's own import loads needs no process of its own: importing it first imports the
# package first, which loads it, so the order is the package's, already tried (packages come before their
# modules in the list). Each child reports the gpu_dl modules it loaded through a pipe; the script prints
# one line per import that failed and, last, "tried N covered M".
FIRST_IMPORTS = """
import importlib, json, os, sys, traceback
import gpu_dl
for loaded in [m for m in sys.modules if m == "gpu_dl" or m.startswith("gpu_dl.")]:
    del sys.modules[loaded]
covered, tried = set(), 0
for name in sys.argv[1:]:
    if name in covered:
        continue
    tried += 1
    sys.stdout.flush()
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(reading)
        try:
            importlib.import_module(name)
        except BaseException as exc:
            print(name, "|", traceback.format_exception_only(type(exc), exc)[-1].strip(), flush=True)
        with os.fdopen(writing, "w") as pipe:
            json.dump([m for m in sys.modules if m.startswith("gpu_dl.")], pipe)
        os._exit(0)
    os.close(writing)
    with os.fdopen(reading) as pipe:
        loaded = pipe.read()
    status = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    if status:   # a crash rather than an exception
        print(name, "| exit status", status, flush=True)
        continue
    covered.update(m for m in json.loads(loaded) if m.rpartition(".")[0] == name)
print("tried", tried, "covered", len(covered & set(sys.argv[1:])))
"""


def _module_names():
    import pkgutil
    import gpu_dl
    return [m.name for m in pkgutil.walk_packages(gpu_dl.__path__, "gpu_dl.")]


def test_every_module_imports():
    # In this process, one after the other: seconds where the test below takes minutes. CI's NumPy 1.26
    # pass runs this one alone (an import that fails on one NumPy shows here; an import cycle needs the other).
    import importlib
    failures = []
    for name in _module_names():
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name not in ("cupy", "cupyx"):
                failures.append(f"{name} | {exc!r}")
        except Exception as exc:
            failures.append(f"{name} | {exc!r}")
    assert not failures, "modules that fail to import:\n" + "\n".join(failures)


def test_every_module_imports_first_in_a_fresh_interpreter():
    # An import cycle shows only when its modules load in a particular order: try each one first.
    # Modules of the GPU path may need CuPy, which this machine may lack; nothing else may fail.
    names = ["gpu_dl"] + _module_names()
    assert "gpu_dl.callbacks.base" in names and "gpu_dl.utils.progbar" in names
    result = subprocess.run([sys.executable, "-c", FIRST_IMPORTS, *names], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    *lines, counts = result.stdout.splitlines()
    _, tried, _, covered = counts.split()
    assert int(tried) + int(covered) == len(names), counts   # each module tried, or loaded by its package
    failures = [line for line in lines if not line.endswith(("No module named 'cupy'", "No module named 'cupyx'"))]
    assert not failures, "modules that fail to import first:\n" + "\n".join(failures)
