"""The release path a maintainer follows: one version everywhere, a license as declared, a
changelog entry, and a CI workflow (checked against GitHub's workflow schema) that builds the
image the chart names."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from eevee import __version__

CHARTS = ["crds", "eevee-operator", "bot", "eevee"]


def yaml(path):
    return YAML(typ="safe").load(Path(path).read_text())


def test_one_version_from_the_package_metadata(root):
    assert __version__ == version("eevee-operator")
    for chart in CHARTS:
        meta = yaml(root / "charts" / chart / "Chart.yaml")
        assert (meta["version"], meta["appVersion"]) == (__version__, __version__), chart
    for dependency in yaml(root / "charts" / "eevee" / "Chart.yaml")["dependencies"]:
        assert dependency["version"] == __version__
    assert f"## {__version__}" in (root / "CHANGELOG.md").read_text()
    cli = subprocess.run([sys.executable, "-m", "eevee", "--version"], capture_output=True, text=True, check=True)
    assert cli.stdout.strip() == f"eevee-operator {__version__}"


def test_the_license_is_the_declared_one(root):
    assert "license = MIT" in (root / "setup.cfg").read_text()
    assert (root / "LICENSE").read_text().startswith("MIT License")


def test_the_release_workflow_is_valid_and_builds_the_image_the_chart_names(root):
    workflow = root / ".github" / "workflows" / "release.yml"
    checker = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    if checker is None:
        pytest.fail("check-jsonschema is not installed (it is part of the test extra)")
    result = subprocess.run([checker, "--builtin-schema", "vendor.github-workflows", str(workflow)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    repository = yaml(root / "charts" / "eevee-operator" / "values.yaml")["image"]["repository"]
    pushed = yaml(workflow)["jobs"]["image"]["steps"][-1]["with"]["tags"]
    assert pushed.endswith("/eevee-operator:${{ steps.version.outputs.version }}")
    assert repository.rsplit("/", 1)[1] == "eevee-operator"
    dockerfile = (root / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["eevee-operator"]' in dockerfile and 'CMD ["run"]' in dockerfile
