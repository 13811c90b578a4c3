"""Build small rule tables in tests, from YAML text."""

from __future__ import annotations

import textwrap
from typing import Any

from ruamel.yaml import YAML

from eevee.engine.render import Renderer
from eevee.engine.tables import RuleSet, compile_rules

WIDGET = """
resource: {apiVersion: example.org/v1, kind: Widget, plural: widgets}
schema:
  size: {type: integer, min: 0}
  color: {type: string}
  enabled: {type: boolean}
  text: {type: string}
  target: {type: string}
  extra: {type: dict}
children:
"""


def load(*texts: str) -> RuleSet:
    yaml = YAML(typ="safe", pure=True)
    return compile_rules([(f"table{i}.yaml", yaml.load(textwrap.dedent(t))) for i, t in enumerate(texts)])


def widget(children: str, extra: str = "") -> RuleSet:
    return load(WIDGET + textwrap.indent(textwrap.dedent(children), "  ") + "\n" + textwrap.dedent(extra))


def resource(spec: dict[str, Any], *, kind: str = "Widget", name: str = "w1", uid: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": "ns"}
    if uid:
        metadata["uid"] = uid
    return {"apiVersion": "example.org/v1", "kind": kind, "metadata": metadata, "spec": spec}


def render(rules: RuleSet, res: dict[str, Any], *others: dict[str, Any]):
    index = {(r["kind"], r["metadata"]["namespace"], r["metadata"]["name"]): r for r in (res, *others)}
    renderer = Renderer(rules, lookup=lambda k, ns, n: index.get((k, ns, n)), generate=lambda n: "t" * n)
    return renderer.render(res)


def bodies(rendering) -> dict[str, dict[str, Any]]:
    return {child.id: child.body for child in rendering.children}
