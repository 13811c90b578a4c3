"""Shared fixtures. Unexpected warnings are errors (pyproject's filterwarnings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eevee.engine.tables import RuleSet, load_rules

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def rules() -> RuleSet:
    return load_rules(ROOT / "rules")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
