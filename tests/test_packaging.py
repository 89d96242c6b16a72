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


def test_every_module_imports_first_in_a_fresh_interpreter():
    # An import cycle shows only when its modules load in a particular order: try each one first.
    # Modules of the GPU path may need CuPy, which this machine may lack; nothing else may fail.
    import pkgutil
    import gpu_dl
    names = [m.name for m in pkgutil.walk_packages(gpu_dl.__path__, "gpu_dl.")]
    assert "gpu_dl.callbacks.base" in names and "gpu_dl.utils.progbar" in names
    script = ("import subprocess, sys\n"
              "for name in sys.argv[1:]:\n"
              "    run = subprocess.run([sys.executable, '-c', 'import ' + name], capture_output=True, text=True)\n"
              "    if run.returncode:\n"
              "        print(name, '|', (run.stderr.strip().splitlines() or ['?'])[-1])\n")
    result = subprocess.run([sys.executable, "-c", script, *names], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    failures = [line for line in result.stdout.splitlines()
                if not line.endswith(("No module named 'cupy'", "No module named 'cupyx'"))]
    assert not failures, "modules that fail to import first:\n" + "\n".join(failures)
