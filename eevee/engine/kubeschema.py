"""The Kubernetes schema of every kind a rule table may make: do its fields exist?

A table edit must be as safe as ``kubectl apply --dry-run=server``: a child of a kind
the API server does not serve (``Deploymnet``), or a patch to a field its kind does not
have (``imagePullPolcy``, which a real server silently drops, so the operator would
write it again on every pass) is refused when the table loads, with a "did you mean".

Built-in kinds come from the Kubernetes OpenAPI schemas that ``kubernetes-validate``
ships offline (1.37, the strict variant that lists every field); custom kinds from
CRDs (the bundled ``crds/``, or more given with ``check-rules --crds``). Kinds of an API
group neither knows (a third-party CRD nobody gave) are not checked, and say so.

Pure: it reads package data files, nothing else.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
from collections.abc import Iterable, Mapping
from pathlib import Path as FilePath
from typing import Any, NamedTuple

import orjson

from eevee.engine.paths import ListKey, Path, format_path

KUBERNETES_VERSION = "v1.37.0"
JsonType = str  # "object", "array", "string", "integer", "number", "boolean"


class Unchecked(NamedTuple):
    """A kind whose schema is unknown: its paths are not checked (a note, not an error)."""

    why: str


@functools.cache
def _builtin_definitions() -> dict[str, Any]:
    # Found, not imported: importing kubernetes_validate would load jsonschema and more
    # (megabytes the operator never uses).
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("kubernetes-validate is not installed")
    folder = FilePath(next(iter(spec.submodule_search_locations))) / "kubernetes-json-schema"
    data = (folder / f"{KUBERNETES_VERSION}-local-strict" / "_definitions.json").read_bytes()
    return orjson.loads(data)["$defs"]


@functools.cache
def _builtin_kinds() -> dict[tuple[str, str], str]:
    """(apiVersion, kind) -> definition name, for every top-level built-in kind."""
    kinds: dict[tuple[str, str], str] = {}
    for name, definition in _builtin_definitions().items():
        for gvk in definition.get("x-kubernetes-group-version-kind") or []:
            api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
            if not gvk["kind"].endswith("List"):
                kinds.setdefault((api_version, gvk["kind"]), name)
    return kinds


def release_builtin_schemas() -> None:
    """Let go of the built-in schemas (~3.5 MB parsed) until the next check needs them: the
    operator checks tables at start and on a reload, and holds lists of objects between."""
    _builtin_definitions.cache_clear()
    _builtin_kinds.cache_clear()


class KindSchemas:
    """Schemas by (apiVersion, kind): the built-in ones and those of the CRDs given."""

    def __init__(self, crds: Iterable[Mapping[str, Any]] = ()) -> None:
        self._custom: dict[tuple[str, str], dict[str, Any]] = {}
        for crd in crds:
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd.get("spec") or {}
            for version in spec.get("versions") or []:
                schema = ((version.get("schema") or {}).get("openAPIV3Schema")) or {}
                self._custom[(f"{spec.get('group')}/{version.get('name')}", spec["names"]["kind"])] = schema

    @property
    def known(self) -> list[tuple[str, str]]:
        return [*_builtin_kinds(), *self._custom]

    def groups(self) -> set[str]:
        return {api_version.rpartition("/")[0] for api_version, _ in self.known}

    def root(self, api_version: str, kind: str) -> Any:
        """The kind's schema, an Unchecked when its group is unknown; KeyError (with a
        suggestion) when its group is known but it does not have that kind."""
        if (api_version, kind) in self._custom:
            return self._custom[(api_version, kind)]
        if (api_version, kind) in _builtin_kinds():
            return {"$ref": f"#/$defs/{_builtin_kinds()[(api_version, kind)]}"}
        group = api_version.rpartition("/")[0]
        if group in self.groups():
            served = sorted({k for v, k in self.known if v == api_version})
            close = difflib.get_close_matches(kind, served, n=1) or difflib.get_close_matches(
                kind, sorted({k for _, k in self.known}), n=1
            )
            hint = f"; did you mean {close[0]}?" if close else ""
            where = f"{api_version} serves no kind {kind}" if served else f"{group} has no version in {api_version}"
            raise KeyError(f"{where}{hint}")
        close = difflib.get_close_matches(group, sorted(self.groups()), n=1, cutoff=0.8)
        if close:
            raise KeyError(f"unknown API group {group!r}; did you mean {close[0]!r}?")
        return Unchecked(f"no schema is known for {api_version} {kind} (give its CRD with check-rules --crds)")

    def check(self, api_version: str, kind: str, path: Path, value_type: JsonType | None = None) -> str | None:
        """None when ``path`` is a field of the kind that can hold ``value_type`` (None: any);
        else why not, with a suggestion for a misspelt field."""
        root = self.root(api_version, kind)
        if isinstance(root, Unchecked):
            return None
        node: Any = root
        walked: list[Any] = []
        for segment in path:
            node = _resolve(node)
            if isinstance(segment, ListKey):
                if "array" not in _types(node) and not _open(node):
                    return f"{format_path(tuple(walked)) or kind} is not a list"
                node = node.get("items") or {}
            elif isinstance(node.get("properties"), dict):
                properties = node["properties"]
                if segment not in properties:
                    if isinstance(node.get("additionalProperties"), dict):
                        node = node["additionalProperties"]
                    elif _open(node):
                        return None
                    else:
                        return _unknown(segment, properties, walked, kind)
                else:
                    node = properties[segment]
            elif isinstance(node.get("additionalProperties"), dict):
                node = node["additionalProperties"]  # a map: any key
            elif _open(node) or not _types(node) or "object" in _types(node):
                return None  # free-form below here
            else:
                held = " or ".join(_a(t) for t in sorted(_types(node)))
                return f"{format_path(tuple(walked)) or kind} holds {held}, not fields"
            walked.append(segment)
        if value_type is None:
            return None
        node = _resolve(node)
        allowed = _types(node)
        if not allowed or value_type in allowed or (value_type == "integer" and "number" in allowed):
            return None
        return f"{format_path(path)} holds {' or '.join(_a(t) for t in sorted(allowed))}, not {_a(value_type)}"


def _resolve(node: Any) -> Any:
    while isinstance(node, Mapping) and "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = _builtin_definitions()[name]
    return node if isinstance(node, Mapping) else {}


def _types(node: Mapping[str, Any]) -> set[str]:
    """The JSON types a schema node accepts (empty: any)."""
    if node.get("x-kubernetes-int-or-string"):
        return {"integer", "string"}
    for key in ("oneOf", "anyOf"):
        if isinstance(node.get(key), list):
            found: set[str] = set()
            for branch in node[key]:
                found |= _types(_resolve(branch))
            return found
    declared = node.get("type")
    if declared is None:
        return set()
    return {t for t in (declared if isinstance(declared, list) else [declared]) if t != "null"}


def _open(node: Mapping[str, Any]) -> bool:
    return bool(node.get("x-kubernetes-preserve-unknown-fields")) or node.get("additionalProperties") is True


def _unknown(segment: Any, properties: Mapping[str, Any], walked: list[Any], kind: str) -> str:
    where = format_path(tuple(walked)) or kind
    close = difflib.get_close_matches(str(segment), list(properties), n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"{segment} is not a field of {where}{hint}"


def _a(json_type: str) -> str:
    return f"an {json_type}" if json_type[0] in "aeiou" else f"a {json_type}"


def json_type(value: Any) -> JsonType | None:
    """The JSON type of a YAML value in a table (None: unknown)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "array"
    return None
