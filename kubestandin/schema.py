"""Structural OpenAPI v3 schemas of CRDs: pruning, defaulting and validation.

Done in the API server's order (prune unknown fields and non-nullable nulls, apply
defaults, validate) and with its messages, e.g.::

    spec.size: Invalid value: -1: spec.size in body should be greater than or equal to 0
    spec.pullPolicy: Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never"
    spec.image: Required value
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple


class Cause(NamedTuple):
    reason: str  # FieldValueInvalid, FieldValueRequired, FieldValueNotSupported, FieldValueTypeInvalid
    field: str
    message: str


def _quote(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(schema: dict[str, Any], value: Any) -> bool:
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, (int, str)) and not isinstance(value, bool)
    wanted = schema.get("type")
    if wanted is None:
        return True
    actual = _json_type(value)
    if wanted == "number":
        return actual in ("integer", "number")
    if wanted == "integer" and actual == "number":
        return float(value).is_integer()
    return actual == wanted


def prune_and_default(schema: dict[str, Any], value: Any, dropped: list[str] | None = None, path: str = "") -> Any:
    """Drop unknown fields and non-nullable nulls, then apply defaults (returns a new value).

    The paths of unknown fields are appended to ``dropped`` (for fieldValidation=Strict).
    """
    if isinstance(value, dict) and (schema.get("type") == "object" or "properties" in schema):
        props = schema.get("properties")
        additional = schema.get("additionalProperties")
        keep_unknown = schema.get("x-kubernetes-preserve-unknown-fields") or additional is True
        out: dict[str, Any] = {}
        for key, item in value.items():
            sub = None
            if props is not None and key in props:
                sub = props[key]
            elif isinstance(additional, dict):
                sub = additional
            elif props is None or keep_unknown:
                out[key] = item
                continue
            else:
                if dropped is not None:
                    dropped.append(f"{path}.{key}" if path else key)
                continue
            if item is None and not sub.get("nullable"):
                continue
            out[key] = prune_and_default(sub, item, dropped, f"{path}.{key}" if path else key)
        for key, sub in (props or {}).items():
            if key not in out and "default" in sub:
                out[key] = prune_and_default(sub, json.loads(json.dumps(sub["default"])))
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune_and_default(schema["items"], item, dropped, f"{path}[{i}]") for i, item in enumerate(value)]
    return value


def validate(schema: dict[str, Any], value: Any, path: str = "") -> list[Cause]:
    causes: list[Cause] = []
    _validate(schema, value, path, causes)
    return causes


def _validate(schema: dict[str, Any], value: Any, path: str, causes: list[Cause]) -> None:
    name = path or "<root>"
    if value is None:
        if not schema.get("nullable"):
            causes.append(
                Cause(
                    "FieldValueTypeInvalid",
                    path,
                    f'{name}: Invalid value: "null": {name} in body must be of type {schema.get("type", "object")}: "null"',
                )
            )
        return
    if not _type_ok(schema, value):
        wanted = "integer or string" if schema.get("x-kubernetes-int-or-string") else schema.get("type")
        actual = _json_type(value)
        causes.append(
            Cause(
                "FieldValueTypeInvalid",
                path,
                f'{name}: Invalid value: "{actual}": {name} in body must be of type {wanted}: "{actual}"',
            )
        )
        return
    if "enum" in schema and value not in schema["enum"]:
        supported = ", ".join(_quote(v) for v in schema["enum"])
        causes.append(
            Cause(
                "FieldValueNotSupported",
                path,
                f"{name}: Unsupported value: {_quote(value)}: supported values: {supported}",
            )
        )
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    path,
                    f"{name}: Invalid value: {value}: {name} in body should be greater than or equal to {schema['minimum']}",
                )
            )
        if "maximum" in schema and value > schema["maximum"]:
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    path,
                    f"{name}: Invalid value: {value}: {name} in body should be less than or equal to {schema['maximum']}",
                )
            )
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    path,
                    f"{name}: Invalid value: {_quote(value)}: {name} in body should be at least {schema['minLength']} chars long",
                )
            )
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            causes.append(
                Cause("FieldValueTooLong", path, f"{name}: Too long: may not be more than {schema['maxLength']} bytes")
            )
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    path,
                    f"{name}: Invalid value: {_quote(value)}: {name} in body should match '{schema['pattern']}'",
                )
            )
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                sub = f"{path}.{key}" if path else key
                causes.append(Cause("FieldValueRequired", sub, f"{sub}: Required value"))
        props = schema.get("properties") or {}
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            sub_schema = props.get(key) or (additional if isinstance(additional, dict) else None)
            if sub_schema is not None and not (path == "" and key == "metadata"):
                _validate(sub_schema, item, f"{path}.{key}" if path else key, causes)
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            causes.append(
                Cause(
                    "FieldValueInvalid",
                    path,
                    f"{name}: Invalid value: {len(value)}: {name} in body should have at least {schema['minItems']} items",
                )
            )
        items = schema.get("items")
        if isinstance(items, dict):
            for index, item in enumerate(value):
                _validate(items, item, f"{path}[{index}]", causes)
