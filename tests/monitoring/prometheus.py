"""The real Prometheus tools (Debian's `prometheus` package: prometheus and promtool), found or
skipped with a clear message. `.ci/run` installs the package, so CI runs every test that needs it."""

from __future__ import annotations

import shutil

import pytest


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed: `apt-get install prometheus` (Debian) provides prometheus and promtool")
    return path
