"""Built-in kinds checked against the real Kubernetes OpenAPI schemas.

The schemas are the ones ``kubernetes-validate`` ships offline (Kubernetes 1.37,
the strict variant that lists every field of every type). They answer three of
the real server's questions about a body of a built-in kind, each the way the
server answers it:

- a value of the wrong JSON type, or an integer outside its ``int32``/``int64``
  range, cannot be decoded into the Go struct: ``400 BadRequest``
  ("json: cannot unmarshal ...");
- a field the type does not have is dropped (``fieldValidation`` decides whether
  that is silent, a warning, or a ``400``);
- a field the schema requires is missing: a ``422`` cause, "Required value".

Everything the schemas cannot say (ranges, enums, cross-field rules) is
:mod:`kubestandin.builtins`' business.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
import threading
from typing import Any, NamedTuple

import jsonschema
from referencing import Registry, Resource

from kubestandin.schema import Cause

KUBERNETES_VERSION = "v1.37.0"
_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_GO_TYPES = {"object": "map[string]interface {}", "array": "[]interface {}", "string": "string"}
_JSON_NAMES = {dict: "object", list: "array", str: "string", bool: "bool", int: "number", float: "number"}


class Findings(NamedTuple):
    decode_error: str | None  # a 400: the body cannot be decoded
    unknown: list[tuple[tuple[Any, ...], str]]  # (path of the parent object, field name): dropped
    causes: list[Cause]  # 422s


def _formats() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker()
    for name, (low, high) in _INT_RANGES.items():

        def within(value: Any, low: int = low, high: int = high) -> bool:
            return not isinstance(value, int) or isinstance(value, bool) or low <= value <= high

        checker.checks(name)(within)
    return checker


class OpenApiSchemas:
    """Validators per (apiVersion, kind), loaded on first use and kept."""

    def __init__(self, version: str = KUBERNETES_VERSION) -> None:
        self._folder = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"{version}-local-strict"
        self._lock = threading.Lock()
        self._validators: dict[tuple[str, str], jsonschema.protocols.Validator | None] = {}
        self._formats = _formats()

    @functools.cached_property
    def _registry(self) -> Registry:
        definitions = json.loads((self._folder / "_definitions.json").read_text())
        return Resource.from_contents(definitions) @ Registry()

    def validator(self, api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
        key = (api_version, kind)
        with self._lock:
            if key not in self._validators:
                group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
                file = self._folder / f"{kind.lower()}-{group_version}.json"
                try:
                    schema = json.loads(file.read_text())
                except FileNotFoundError:
                    self._validators[key] = None
                else:
                    registry = Resource.from_contents(schema) @ self._registry
                    self._validators[key] = jsonschema.Draft202012Validator(
                        schema, registry=registry, format_checker=self._formats
                    )
            return self._validators[key]

    def check(self, api_version: str, kind: str, obj: dict[str, Any]) -> Findings:
        validator = self.validator(api_version, kind)
        if validator is None:
            return Findings(None, [], [])
        unknown: list[tuple[tuple[Any, ...], str]] = []
        causes: list[Cause] = []
        for error in _leaves(validator.iter_errors(obj)):
            path = tuple(error.absolute_path)
            if error.validator == "additionalProperties":
                known = set(error.schema.get("properties") or {})  # type: ignore[union-attr]
                unknown.extend((path, field) for field in error.instance if field not in known)
            elif error.validator == "required":
                missing = re.match(r"'([^']+)' is a required property", error.message)
                field = _field((*path, missing.group(1) if missing else "?"))
                causes.append(Cause("FieldValueRequired", field, f"{field}: Required value"))
            elif error.validator in ("type", "format") and error.instance is not None:
                return Findings(_decode_message(kind, api_version, path, error), [], [])
        return Findings(None, unknown, causes)


def _leaves(errors: Any) -> Any:
    """Errors of ``oneOf`` branches (int-or-string, quantities) are read through their context."""
    for error in errors:
        if error.validator in ("oneOf", "anyOf"):
            if error.instance is None:
                continue  # null satisfies every branch; Go decodes it as the zero value
            yield _TypeError(error)
        else:
            yield error


class _TypeError:
    """A value that matched none of a ``oneOf``'s types, as a plain type error."""

    validator = "type"

    def __init__(self, error: Any) -> None:
        self.absolute_path = error.absolute_path
        self.instance = error.instance
        self.schema = error.schema
        self.message = error.message
        types = [branch.get("type") for branch in error.schema.get("oneOf") or error.schema.get("anyOf") or []]
        self.validator_value = [t[0] if isinstance(t, list) else t for t in types if t]


def _field(path: tuple[Any, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _decode_message(kind: str, api_version: str, path: tuple[Any, ...], error: Any) -> str:
    value = error.instance
    go_path = ".".join(str(p) for p in path if not isinstance(p, int))
    if error.validator == "format":
        wanted = str(error.validator_value)
        got = f"number {json.dumps(value)}"
    else:
        expected = error.validator_value
        expected = [t for t in (expected if isinstance(expected, list) else [expected]) if t != "null"]
        wanted = " or ".join(_GO_TYPES.get(t, "int32" if t == "integer" else t) for t in expected)
        got = _JSON_NAMES.get(type(value), "value")
    version = api_version.split("/")[-1]
    return (
        f'{kind} in version "{version}" cannot be handled as a {kind}: json: cannot unmarshal {got} '
        f"into Go struct field {go_path} of type {wanted}"
    )
