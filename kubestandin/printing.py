"""Server-side printing: the ``Table`` that ``kubectl get`` asks for.

Custom resources use their CRD's ``additionalPrinterColumns`` (a JSONPath subset:
``.a.b``, ``.a[0]``, ``.a[?(@.type=="Ready")].status``); the built-in kinds the demo
shows get the columns a real server prints (Deployments, Services, claims, ConfigMaps,
Secrets, Events), every other kind its name and age.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from kubestandin.registry import ResourceType

_STEP = re.compile(r'\.([A-Za-z0-9_-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_.-]+)\s*==\s*["\']([^"\']*)["\']\)\]')


def jsonpath(obj: Any, expression: str) -> Any:
    """The value at a simple JSONPath, or None."""
    node = obj
    pos = 0
    expression = expression.strip().removeprefix("{").removesuffix("}")
    while pos < len(expression):
        match = _STEP.match(expression, pos)
        if match is None:
            return None
        key, index, filter_key, filter_value = match.groups()
        if key is not None:
            node = node.get(key) if isinstance(node, dict) else None
        elif index is not None:
            node = node[int(index)] if isinstance(node, list) and int(index) < len(node) else None
        else:
            node = (
                next(
                    (
                        item
                        for item in node or []
                        if isinstance(item, dict) and str(_dig(item, filter_key)) == filter_value
                    ),
                    None,
                )
                if isinstance(node, list)
                else None
            )
        if node is None:
            return None
        pos = match.end()
    return node


def _dig(item: dict[str, Any], dotted: str) -> Any:
    node: Any = item
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def human_age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return "<invalid>"
    seconds = max(0, int((datetime.now(UTC) - then).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    return f"{hours // 24}d"


def _cell(column: dict[str, Any], obj: dict[str, Any]) -> Any:
    value = jsonpath(obj, column["jsonPath"])
    if value is None:
        return None
    kind = column.get("type", "string")
    if kind == "date":
        return human_age(value) if isinstance(value, str) else "<invalid>"
    if kind == "string":
        return value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
    return value


def _columns(rt: ResourceType) -> list[dict[str, Any]]:
    name = {
        "name": "Name",
        "type": "string",
        "format": "name",
        "description": "Name must be unique within a namespace.",
        "priority": 0,
    }
    if rt.printer_columns:
        return [name] + [
            {
                "name": c["name"],
                "type": c.get("type", "string"),
                "format": c.get("format", ""),
                "description": c.get("description", ""),
                "priority": c.get("priority", 0),
                "jsonPath": c["jsonPath"],
            }
            for c in rt.printer_columns
        ]
    age = {
        "name": "Age",
        "type": "string",
        "format": "",
        "description": "CreationTimestamp",
        "priority": 0,
        "jsonPath": ".metadata.creationTimestamp",
        "date": True,
    }
    computed = _BUILTIN_COLUMNS.get(rt.kind)
    if computed is not None:
        columns = [
            {"name": title, "type": "string", "format": "", "description": "", "priority": 0, "compute": compute}
            for title, compute in computed
        ]
        return columns if rt.kind == "Event" else [name, *columns, age]  # events: no name, no age
    if rt.kind == "Deployment":
        return [
            name,
            {
                "name": "Ready",
                "type": "string",
                "format": "",
                "description": "ready/desired",
                "priority": 0,
                "ready": True,
            },
            {
                "name": "Up-to-date",
                "type": "integer",
                "format": "",
                "description": "",
                "priority": 0,
                "jsonPath": ".status.updatedReplicas",
                "zero": True,
            },
            {
                "name": "Available",
                "type": "integer",
                "format": "",
                "description": "",
                "priority": 0,
                "jsonPath": ".status.availableReplicas",
                "zero": True,
            },
            age,
        ]
    return [name, age]


def _ports(obj: dict[str, Any]) -> str:
    ports = (obj.get("spec") or {}).get("ports") or []
    return ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in ports) or "<none>"


def _event_object(obj: dict[str, Any]) -> str:
    involved = obj.get("involvedObject") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


# The columns kubectl shows for these kinds on a real cluster (its server-side printers).
_BUILTIN_COLUMNS: dict[str, list[tuple[str, Any]]] = {
    "Service": [
        ("Type", lambda o: (o.get("spec") or {}).get("type", "ClusterIP")),
        ("Cluster-IP", lambda o: (o.get("spec") or {}).get("clusterIP", "<none>")),
        ("External-IP", lambda o: "<none>"),
        ("Port(s)", _ports),
    ],
    "PersistentVolumeClaim": [
        ("Status", lambda o: (o.get("status") or {}).get("phase", "")),
        ("Volume", lambda o: (o.get("spec") or {}).get("volumeName", "")),
        ("Capacity", lambda o: ((o.get("status") or {}).get("capacity") or {}).get("storage", "")),
        ("Access Modes", lambda o: ",".join(
            {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}.get(m, m)
            for m in (o.get("spec") or {}).get("accessModes") or [])),
        ("StorageClass", lambda o: (o.get("spec") or {}).get("storageClassName") or "<unset>"),
    ],
    "ConfigMap": [("Data", lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}))],
    "Secret": [("Type", lambda o: o.get("type", "Opaque")), ("Data", lambda o: len(o.get("data") or {}))],
    "Event": [
        ("Last Seen", lambda o: human_age(o.get("lastTimestamp") or o.get("eventTime") or o["metadata"].get("creationTimestamp"))),
        ("Type", lambda o: o.get("type", "")),
        ("Reason", lambda o: o.get("reason", "")),
        ("Object", _event_object),
        ("Message", lambda o: o.get("message", "")),
    ],
}


def table(rt: ResourceType, items: list[dict[str, Any]], resource_version: str) -> dict[str, Any]:
    columns = _columns(rt)
    rows = []
    for obj in items:
        cells: list[Any] = []
        for column in columns:
            if column.get("format") == "name":
                cells.append(obj["metadata"]["name"])
            elif column.get("ready"):
                status = obj.get("status") or {}
                cells.append(f"{status.get('readyReplicas', 0)}/{(obj.get('spec') or {}).get('replicas', 0)}")
            elif column.get("date"):
                cells.append(human_age(obj["metadata"].get("creationTimestamp")))
            elif "compute" in column:
                cells.append(column["compute"](obj))
            else:
                value = _cell(column, obj)
                cells.append(0 if value is None and column.get("zero") else value)
        metadata = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
        rows.append(
            {
                "cells": cells,
                "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": metadata},
            }
        )
    definitions = [
        {k: v for k, v in c.items() if k in ("name", "type", "format", "description", "priority")} for c in columns
    ]
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions,
        "rows": rows,
    }
