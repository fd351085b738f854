"""What must not import torch: torch's import is most of a cold start (issue 9's bar of 3 s)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import tunesmith

SRC = str(Path(tunesmith.__file__).resolve().parent.parent)


def torch_free(code: str) -> None:
    """Run ``code`` in a fresh interpreter, then assert it never imported torch."""
    check = f"{code}\nimport sys\nassert 'torch' not in sys.modules, 'torch was imported'"
    env = {**os.environ, "PYTHONPATH": SRC}
    run = subprocess.run([sys.executable, "-c", check], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]


def test_building_the_cli_parser_imports_no_torch() -> None:
    torch_free("import tunesmith.cli.main as m\nm.build_parser()")


def test_backend_names_and_the_decoded_record_import_no_torch() -> None:
    torch_free(
        "from tunesmith.model.backend_names import check_backend\ncheck_backend('auto')\n"
        "import tunesmith.generation.decoded, tunesmith.model.step_cache"
    )
