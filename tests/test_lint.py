"""The code is ruff clean (the lint rules live in pyproject.toml)."""

import shutil
import subprocess
import sys

import pytest


def test_ruff_is_clean(root):
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(__import__("pathlib").Path(sys.executable).parent))
    if ruff is None:
        pytest.fail("ruff is not installed (it is part of the test extra)")
    result = subprocess.run([ruff, "check", "eevee", "kubestandin", "tests", "benchmarks"], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
