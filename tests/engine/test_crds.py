"""The CRDs explain themselves: every field has a description (`kubectl explain`)."""

from __future__ import annotations

import pytest

from eevee.manifests import read_manifests


def undescribed(schema, path, root=True):
    for name, sub in (schema.get("properties") or {}).items():
        if root and name == "metadata":
            continue  # a real API server refuses a description there (tests/standin/test_crd_validation.py)
        where = f"{path}.{name}"
        if not sub.get("description"):
            yield where
        yield from undescribed(sub, where, False)
    if isinstance(schema.get("items"), dict):
        yield from undescribed(schema["items"], f"{path}[]", False)


@pytest.mark.parametrize("crd", ["botmodules.eevee.bot.yaml", "ipcconfigs.eevee.bot.yaml"])
def test_every_field_has_a_description(root, crd):
    (definition,) = read_manifests([root / "crds" / crd])
    for version in definition["spec"]["versions"]:
        assert list(undescribed(version["schema"]["openAPIV3Schema"], definition["spec"]["names"]["kind"])) == []
