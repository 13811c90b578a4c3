"""Label and field selectors, with the API server's syntax and errors."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Predicate = Callable[[Mapping[str, Any]], bool]

_SET = re.compile(r"^\s*([A-Za-z0-9./_-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")
_EQ = re.compile(r"^\s*([A-Za-z0-9./_-]+)\s*(==|=|!=)\s*([A-Za-z0-9._-]*)\s*$")
_EXISTS = re.compile(r"^\s*(!?)\s*([A-Za-z0-9./_-]+)\s*$")


class SelectorError(ValueError):
    """A selector the API server would refuse with 400 BadRequest."""


def _split(text: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def label_selector(text: str | None) -> Predicate:
    if not text:
        return lambda obj: True
    tests: list[Callable[[Mapping[str, str]], bool]] = []
    for part in _split(text):
        if m := _SET.match(part):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",") if v.strip()}
            if op == "in":
                tests.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                tests.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
        elif m := _EQ.match(part):
            key, op, value = m.groups()
            if op == "!=":
                tests.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                tests.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif m := _EXISTS.match(part):
            negate, key = m.groups()
            if negate:
                tests.append(lambda labels, k=key: k not in labels)
            else:
                tests.append(lambda labels, k=key: k in labels)
        else:
            raise SelectorError(f"unable to parse requirement: {part.strip()!r}")

    def matches(obj: Mapping[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(test(labels) for test in tests)

    return matches


def _field(obj: Mapping[str, Any], path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return ""
        node = node.get(part)
    if node is None:
        return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


# The fields each kind can be selected by, beside metadata.name and metadata.namespace (the
# field label conversions of k8s.io/kubernetes pkg/apis/core/v1/conversion.go, apps/v1 and
# batch/v1); any other label is a 400, "field label not supported". Custom resources: only the two.
FIELD_LABELS: dict[str, frozenset[str]] = {
    "Secret": frozenset({"type"}),
    "Event": frozenset({"involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid",
                        "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath",
                        "reason", "reportingComponent", "source", "type"}),
    "Pod": frozenset({"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                      "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs", "status.nominatedNodeName"}),
    "Namespace": frozenset({"status.phase"}),
    "Node": frozenset({"spec.unschedulable"}),
    "ReplicaSet": frozenset({"status.replicas"}),
    "Job": frozenset({"status.successful"}),
}


def field_selector(text: str | None, kind: str | None = None) -> Predicate:
    """``metadata.name=x``, ``metadata.namespace!=y``, ``involvedObject.uid=...``: with ``kind``,
    only the field labels a real server supports for it (else SelectorError)."""
    if not text:
        return lambda obj: True
    tests: list[Predicate] = []
    for part in _split(text):
        m = re.match(r"^\s*([A-Za-z0-9._]+)\s*(==|=|!=)\s*(.*?)\s*$", part)
        if not m:
            raise SelectorError(f"invalid field selector: {part.strip()!r}")
        path, op, value = m.groups()
        if kind is not None and path not in ("metadata.name", "metadata.namespace") and path not in FIELD_LABELS.get(kind, ()):
            raise SelectorError(f'"{path}" is not a known field selector: only "metadata.name", "metadata.namespace"'
                                if kind not in FIELD_LABELS else f"field label not supported: {path}")
        if op == "!=":
            tests.append(lambda obj, p=path, v=value: _field(obj, p) != v)
        else:
            tests.append(lambda obj, p=path, v=value: _field(obj, p) == v)
    return lambda obj: all(test(obj) for test in tests)


def exact_name(text: str | None) -> str | None:
    """The name a field selector pins (``metadata.name=x``), for a direct lookup."""
    if not text:
        return None
    for part in _split(text):
        m = re.match(r"^\s*metadata\.name\s*==?\s*(.*?)\s*$", part)
        if m:
            return m.group(1)
    return None
