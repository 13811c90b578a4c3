"""What a module may import follows from its folder (STYLE.md).

- The stand-in shares no code with the operator it tests: a bug in, say, quantity
  parsing would otherwise be mirrored by the server and never show.
- The rules engine is pure: it imports nothing that talks to a network, and nothing
  of the operator, the API or the Kubernetes client.
"""

from __future__ import annotations

import ast

import pytest


def imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


@pytest.mark.parametrize(
    "folder, forbidden",
    [
        ("kubestandin", lambda m: m.split(".")[0] == "eevee"),
        # The operator never imports its test server; only the demo command starts one.
        ("eevee", lambda m: m.split(".")[0] == "kubestandin"),
        ("eevee/engine", lambda m: m.split(".")[0] in ("kubernetes", "urllib3", "socket", "http", "bottle", "waitress")
         or (m.startswith("eevee.") and not m.startswith("eevee.engine"))),
    ],
)
def test_a_folder_imports_only_what_it_may(root, folder, forbidden):
    wrong = [(str(path.relative_to(root)), module) for path in sorted((root / folder).rglob("*.py"))
             for module in imports(path) if forbidden(module) and path != root / "eevee/commands.py"]
    assert wrong == []
