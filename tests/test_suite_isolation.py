"""The suite's tests pass whichever tests ran before them in the same process: global state one test sets up
(here, the backend Keras imports on) does not reach the next."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

# Tests that import Keras without choosing its backend themselves, each followed in the run below by an oracle
# test whose Keras fixture asks for torch: had the first import of Keras taken the default backend (TensorFlow,
# not installed with the dev extra), the oracle test's Keras would fail in clear_session.
FIRST_IMPORTS = ["tests/test_subclassed_models.py::test_subclassed_summary_matches_keras",
                 "tests/test_config.py::test_flash_attention_traceback_and_nnx_settings_read_back_as_keras"]
ORACLE = ("tests/test_keras_oracle_functional_parity.py::"
          "test_the_summary_lists_the_logical_or_a_merge_of_masks_makes_as_keras_does[Add]")


def test_keras_imports_on_torch_whichever_test_imports_it_first(tmp_path):
    if importlib.util.find_spec("keras") is None:   # found, not imported: this process's Keras stays as it is
        pytest.skip("Keras is not installed")
    env = {name: value for name, value in os.environ.items() if name != "KERAS_BACKEND"}
    env["KERAS_HOME"] = str(tmp_path)   # no keras.json: Keras's own default backend, whatever this machine's says
    for first in FIRST_IMPORTS:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", first, ORACLE],
                              capture_output=True, text=True, cwd=HERE.parent, env=env)
        assert done.returncode == 0 and "2 passed" in done.stdout, done.stdout[-4000:] + done.stderr[-2000:]
