"""Every example renders to exactly the children checked in under tests/golden/.

After an intended change of the rule tables, regenerate with
``EEVEE_UPDATE_GOLDEN=1 pytest tests/engine/test_golden.py`` and review the diff.
"""

from __future__ import annotations

import os

import pytest

from eevee.engine.render import render_resources
from eevee.manifests import dump_manifests, parse_manifests, read_manifests
from eevee.settings import Settings

UPDATE = os.environ.get("EEVEE_UPDATE_GOLDEN") == "1"


def example_resources(root):
    resources = read_manifests([root / "examples"])
    for resource in resources:
        resource["metadata"]["namespace"] = "eevee-bot"
        resource["metadata"]["uid"] = f"uid-{resource['metadata']['name']}"
    return resources


def rendered_examples(root, rules):
    operator = Settings(namespace="eevee-bot").operator_scope()
    return render_resources(rules, example_resources(root), operator=operator, generate=lambda n: "g" * n)


def example_ids(root):
    return [f"{r['kind'].lower()}-{r['metadata']['name']}" for r in example_resources(root)]


@pytest.mark.parametrize("index", range(5))
def test_example_renders_to_its_golden_children(index, root, rules):
    resource, rendering = rendered_examples(root, rules)[index]
    name = f"{resource['kind'].lower()}-{resource['metadata']['name']}.yaml"
    golden = root / "tests" / "golden" / name
    text = dump_manifests([child.body for child in rendering.children])
    if UPDATE:
        golden.write_text(text)
    assert golden.exists(), f"no golden file {golden}; run with EEVEE_UPDATE_GOLDEN=1"
    assert parse_manifests(text) == parse_manifests(golden.read_text())


def test_there_is_a_golden_file_per_example(root, rules):
    assert len(rendered_examples(root, rules)) == 5
    assert len(list((root / "tests" / "golden").glob("*.yaml"))) == 5
