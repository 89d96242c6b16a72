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
