"""Reading and writing Kubernetes manifests as YAML (ruamel.yaml, YAML 1.2).

Files may hold several documents; a directory means every ``*.yaml`` in it.
A document that is not a manifest (no kind, no name) is refused with the file
and the document number, never skipped silently.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import LiteralScalarString

if TYPE_CHECKING:
    from eevee.engine.kubeschema import KindSchemas


class ManifestError(ValueError):
    """A file that does not hold valid manifests."""


def _plain(node: Any) -> Any:
    """ruamel's mapping/sequence types as plain dicts and lists (JSON-shaped)."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def parse_manifests(text: str, *, source: str = "<input>") -> list[dict[str, Any]]:
    yaml = YAML(typ="safe", pure=True)
    try:
        documents = [d for d in yaml.load_all(text) if d is not None]
    except YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ManifestError(f"{source}:{where} YAML syntax error: {problem}") from None
    out = []
    for number, document in enumerate(documents, start=1):
        if isinstance(document, dict) and document.get("kind") == "List":
            items = document.get("items") or []
        else:
            items = [document]
        for item in items:
            item = _plain(item)
            if not isinstance(item, dict) or not item.get("kind") or not item.get("apiVersion"):
                raise ManifestError(f"{source}: document {number} is not a Kubernetes object (apiVersion, kind)")
            name = (item.get("metadata") or {}).get("name")
            if not isinstance(name, str) or not name:
                raise ManifestError(f"{source}: document {number} ({item['kind']}) has no metadata.name")
            out.append(item)
    return out


def read_manifests(paths: Iterable[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """Every manifest in the given files or directories, in order."""
    out: list[dict[str, Any]] = []
    for path in paths:
        target = Path(path)
        files = sorted(p for p in target.iterdir() if p.suffix in (".yaml", ".yml")) if target.is_dir() else [target]
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
            except OSError as error:
                raise ManifestError(f"{file}: cannot read: {error.strerror}") from None
            out.extend(parse_manifests(text, source=str(file)))
    return out


def dump_manifests(documents: Iterable[Any], *, comments: Iterable[str] = ()) -> str:
    """Documents as a multi-document YAML stream."""
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 4096
    stream = io.StringIO()
    for line in comments:
        stream.write(f"# {line}\n")
    yaml.dump_all([_literal_blocks(d) for d in documents], stream)
    return stream.getvalue()


def _literal_blocks(node: Any) -> Any:
    """Multi-line strings (module configurations) as ``|`` blocks, as a person writes them."""
    if isinstance(node, dict):
        return {k: _literal_blocks(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_literal_blocks(v) for v in node]
    if isinstance(node, str) and "\n" in node and not node.endswith((" ", "\t")):
        return LiteralScalarString(node)
    return node


def kind_schemas(extra: Sequence[str | Path] = ()) -> KindSchemas:
    """What rule tables are checked against: the built-in kinds, the bundled CRDs and ``extra``
    CRD files or directories (``check-rules --crds``)."""
    from eevee.engine.kubeschema import KindSchemas
    from eevee.locations import bundled

    return KindSchemas(read_manifests([bundled("crds"), *map(Path, extra)]))
