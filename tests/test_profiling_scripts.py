"""The benchmark scripts need a GPU to run, but CI can still catch a syntax error in them."""
import py_compile
import subprocess
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
