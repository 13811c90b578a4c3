"""Rendering the charts with the real Helm engine (helm-python-sdk, Helm v4's Go SDK)."""

from __future__ import annotations

import logging
from typing import Any

from helm_python import Chart, disable_logging

from eevee.manifests import parse_manifests
from tests.conftest import ROOT

disable_logging()  # the SDK logs an INFO line for each symlink it follows (rules/, crds/)
logging.getLogger("helm_python").setLevel(logging.WARNING)

OPERATOR = ROOT / "charts" / "eevee-operator"
CRDS = ROOT / "charts" / "crds"


def render(values: dict[str, Any] | None = None, *, namespace: str = "eevee-bot", name: str = "eevee-operator") -> list[dict[str, Any]]:
    chart = Chart.load(str(OPERATOR))
    try:
        files = chart.render(values or {}, name=name, namespace=namespace, is_install=True)
    finally:
        chart.close()
    objects: list[dict[str, Any]] = []
    for path, text in sorted(files.items()):
        if path.endswith(".yaml") and text.strip():
            objects.extend(parse_manifests(text, source=path))
    return objects


def crds() -> list[dict[str, Any]]:
    chart = Chart.load(str(CRDS))
    try:
        return [doc for entry in chart.crds for doc in parse_manifests(entry["data"], source=entry["name"])]
    finally:
        chart.close()
