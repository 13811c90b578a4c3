"""Benchmarks run with pytest-benchmark: ``tox -e bench`` (or ``pytest benchmarks``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eevee.engine.tables import RuleSet, load_rules  # noqa: E402


@pytest.fixture(scope="session")
def rules() -> RuleSet:
    return load_rules(ROOT / "rules")
