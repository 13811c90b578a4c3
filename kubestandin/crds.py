"""CustomResourceDefinitions checked as kube-apiserver checks them (apiextensions.k8s.io/v1).

A real server refuses a CRD that is not a structural schema, whose defaults do not validate,
whose list types are incomplete, whose printer columns or scale paths are malformed, whose
names do not fit, or whose CEL rules do not compile, with ``422 Invalid`` and one cause per
problem, each naming the field. 0.2.0 shipped CRDs that every real cluster refused (a
``description`` on ``metadata``) because this stand-in took any CRD: that is why this module
exists. The rules and their field paths follow k8s.io/apiextensions-apiserver
``pkg/apis/apiextensions/validation`` and ``pkg/apiserver/schema`` (structural invariants,
defaulting), as of Kubernetes 1.28; `tests/standin/test_crd_validation.py` replays the answers
a real v1.28 server gave.

Field paths are the server's internal ones: a v1 CRD is converted to the internal version
before it is validated, and a schema (subresources, printer columns) that every version
shares is moved up to ``spec.validation.openAPIV3Schema`` (``spec.subresources``,
``spec.additionalPrinterColumns``), so a one-version CRD's schema errors name
``spec.validation.openAPIV3Schema...``, and ``spec.version`` (the first version's name)
is checked besides ``spec.versions[0].name``.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from kubestandin import cel, schema
from kubestandin.names import DNS_1035, DNS_SUBDOMAIN
from kubestandin.schema import Cause

_TYPES = ("array", "boolean", "integer", "number", "object", "string")
_COLUMN_TYPES = ("boolean", "date", "integer", "number", "string")
_COLUMN_FORMATS = ("byte", "date", "date-time", "double", "float", "int32", "int64", "password")
_FORBIDDEN_KEYS = {  # JSON-schema keywords a CRD schema may not use (specStandardValidatorV3)
    "$ref": "$ref is not supported",
    "$schema": "$schema is not supported",
    "id": "id is not supported",
    "definitions": "definitions is not supported",
    "dependencies": "dependencies is not supported",
    "additionalItems": "additionalItems is not supported",
    "patternProperties": "patternProperties is not supported",
}
_JUNCTORS = ("allOf", "anyOf", "oneOf", "not")
# What a schema under allOf/anyOf/oneOf/not may not say (it only restricts values).
_NOT_IN_JUNCTORS = {
    "type": "must be empty to be structural",
    "additionalProperties": "must be undefined to be structural",
    "default": "must be undefined to be structural",
    "title": "must be empty to be structural",
    "description": "must be empty to be structural",
    "nullable": "must be false to be structural",
    "x-kubernetes-preserve-unknown-fields": "must be false to be structural",
    "x-kubernetes-embedded-resource": "must be false to be structural",
    "x-kubernetes-int-or-string": "must be false to be structural",
    "x-kubernetes-list-map-keys": "must be empty to be structural",
    "x-kubernetes-list-type": "must be undefined to be structural",
}
# Only these may be said at the root when the status subresource is on (apiextensions' allowedAtRootSchema).
_ROOT_WITH_STATUS = {"description", "type", "properties", "required", "x-kubernetes-preserve-unknown-fields",
                     "x-kubernetes-validations"}


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else json.dumps(value, separators=(",", ":"), default=str)


def invalid(field: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueInvalid", field, f"{field}: Invalid value: {_text(value)}: {detail}")


def required(field: str, detail: str = "") -> Cause:
    return Cause("FieldValueRequired", field, f"{field}: Required value" + (f": {detail}" if detail else ""))


def forbidden(field: str, detail: str) -> Cause:
    return Cause("FieldValueForbidden", field, f"{field}: Forbidden: {detail}")


def unsupported(field: str, value: Any, allowed: tuple[str, ...]) -> Cause:
    supported = ", ".join(f'"{a}"' for a in allowed)
    return Cause("FieldValueNotSupported", field, f"{field}: Unsupported value: {_text(value)}: supported values: {supported}")


def _dns_1035(value: str) -> str | None:
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not DNS_1035.match(value):
        return ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
                "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
                "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
    return None


def _dns_subdomain(value: str) -> str | None:
    if len(value) > 253:
        return "must be no more than 253 characters"
    if not DNS_SUBDOMAIN.match(value):
        return ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
    return None


# --- defaults --------------------------------------------------------------------------


def default(crd: dict[str, Any]) -> None:
    """The v1 defaults (SetDefaults_CustomResourceDefinition): singular, listKind, conversion, status."""
    spec = crd.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    names = spec.get("names")
    if isinstance(names, dict) and isinstance(names.get("kind"), str) and names["kind"]:
        if not names.get("singular"):
            names["singular"] = names["kind"].lower()
        if not names.get("listKind"):
            names["listKind"] = names["kind"] + "List"
    conversion = spec.setdefault("conversion", {"strategy": "None"})
    if isinstance(conversion, dict):
        conversion.setdefault("strategy", "None")


def stored_versions(crd: dict[str, Any], old: dict[str, Any] | None) -> list[str]:
    """status.storedVersions: the storage version is added to those of the stored object."""
    before = list(((old or {}).get("status") or {}).get("storedVersions") or [])
    for version in (crd.get("spec") or {}).get("versions") or []:
        if isinstance(version, dict) and version.get("storage") and version.get("name") not in before:
            before.append(version.get("name"))
    return before


# --- the whole object ------------------------------------------------------------------


def validate(crd: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    """Every problem of a CRD (after defaulting), as ValidateCustomResourceDefinition[Update] finds them."""
    causes: list[Cause] = []
    spec = crd.get("spec") if isinstance(crd.get("spec"), dict) else {}
    names = spec.get("names") if isinstance(spec.get("names"), dict) else {}
    group = spec.get("group") or ""
    name = crd["metadata"].get("name", "")
    problems = [p for p in (_dns_subdomain(name),) if p]
    if name != f"{names.get('plural', '')}.{group}":
        problems.append('must be spec.names.plural+"."+spec.group')
    if problems:
        causes.append(invalid("metadata.name", name, ", ".join(problems)))
    if not group:
        causes.append(required("spec.group"))
    elif _dns_subdomain(group):
        causes.append(invalid("spec.group", group, _dns_subdomain(group) or ""))
    elif "." not in group:
        causes.append(invalid("spec.group", group, "should be a domain with at least one dot"))
    scope = spec.get("scope")
    if not scope:
        causes.append(required("spec.scope"))
    elif scope not in ("Cluster", "Namespaced"):
        causes.append(unsupported("spec.scope", scope, ("Cluster", "Namespaced")))
    if spec.get("preserveUnknownFields") is True:
        causes.append(invalid("spec.preserveUnknownFields", True,
                              "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead"))
    causes.extend(_names(names, "spec.names"))
    causes.extend(_versions(spec))
    stored = stored_versions(crd, old)
    if not stored:
        causes.append(invalid("status.storedVersions", stored, "must have at least one stored version"))
    if old is not None:
        old_spec = old.get("spec") or {}
        for field, new_value, old_value in (("spec.group", group, old_spec.get("group")),
                                            ("spec.names.plural", names.get("plural"), (old_spec.get("names") or {}).get("plural")),
                                            ("spec.scope", scope, old_spec.get("scope")),
                                            ("spec.names.kind", names.get("kind"), (old_spec.get("names") or {}).get("kind"))):
            if new_value != old_value:
                causes.append(invalid(field, new_value, "field is immutable"))
    return causes


def _names(names: dict[str, Any], path: str) -> list[Cause]:
    causes = []
    for field in ("plural", "singular", "kind", "listKind"):
        if not names.get(field):
            causes.append(required(f"{path}.{field}"))
    for field in ("plural", "singular"):
        value = names.get(field)
        if isinstance(value, str) and value and _dns_1035(value):
            causes.append(invalid(f"{path}.{field}", value, _dns_1035(value) or ""))
    for field in ("kind", "listKind"):
        value = names.get(field)
        if isinstance(value, str) and value and _dns_1035(value.lower()):
            causes.append(invalid(f"{path}.{field}", value, "may have mixed case, but should otherwise match: " + (_dns_1035(value.lower()) or "")))
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        causes.append(invalid(f"{path}.listKind", names["listKind"], "kind and listKind may not be the same"))
    for field in ("shortNames", "categories"):
        for index, value in enumerate(names.get(field) or []):
            if not isinstance(value, str) or _dns_1035(value):
                causes.append(invalid(f"{path}.{field}[{index}]", value, _dns_1035(str(value)) or ""))
    return causes


def _shared(versions: list[dict[str, Any]], key: str) -> bool:
    """Whether every version says the same (non-empty) thing: the internal version keeps it once, at spec.<key>."""
    values = [v.get(key) for v in versions]
    return bool(values) and all(v not in (None, [], {}) for v in values) and all(v == values[0] for v in values)


def _versions(spec: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    versions = [v for v in spec.get("versions") or [] if isinstance(v, dict)]
    if not versions:
        return [required("spec.versions", "must have exactly one version marked as storage version")]
    names = [v.get("name") or "" for v in versions]
    for index, name in enumerate(names):
        if _dns_1035(name):
            causes.append(invalid(f"spec.versions[{index}].name", name, _dns_1035(name) or ""))
    if _dns_1035(names[0]):
        causes.append(invalid("spec.version", names[0], _dns_1035(names[0]) or ""))
    if len(set(names)) != len(names):
        causes.append(invalid("spec.versions", names, "must contain unique version names"))
    if sum(1 for v in versions if v.get("storage")) != 1:
        causes.append(invalid("spec.versions", names, "must have exactly one version marked as storage version"))
    shared_schema, shared_subresources, shared_columns = (_shared(versions, k) for k in ("schema", "subresources", "additionalPrinterColumns"))
    for index, version in enumerate(versions):
        at = f"spec.versions[{index}]"
        warning = version.get("deprecationWarning")
        if warning is not None:
            if not version.get("deprecated"):
                causes.append(invalid(f"{at}.deprecationWarning", warning, "can only be set for deprecated versions"))
            elif len(warning) > 256:
                causes.append(invalid(f"{at}.deprecationWarning", warning, "must be <= 256 characters long"))
            elif not warning:
                causes.append(invalid(f"{at}.deprecationWarning", warning, "must not be an empty string"))
            elif any(not c.isprintable() for c in warning):
                causes.append(invalid(f"{at}.deprecationWarning", warning, "must only contain printable UTF-8 characters"))
        status_on = "status" in (version.get("subresources") or {})
        root = (version.get("schema") or {}).get("openAPIV3Schema")
        if root is None:
            causes.append(required(f"{at}.schema.openAPIV3Schema"))
        elif not (shared_schema and index > 0):
            where = "spec.validation.openAPIV3Schema" if shared_schema else f"{at}.schema.openAPIV3Schema"
            causes.extend(validate_schema(root, where, status_on=status_on))
        if version.get("subresources") and not (shared_subresources and index > 0):
            causes.extend(_subresources(version["subresources"], "spec.subresources" if shared_subresources else f"{at}.subresources"))
        if not (shared_columns and index > 0):
            base = "spec.additionalPrinterColumns" if shared_columns else f"{at}.additionalPrinterColumns"
            for number, column in enumerate(version.get("additionalPrinterColumns") or []):
                causes.extend(_column(column, f"{base}[{number}]"))
    return causes


def _simple_json_path(path: Any) -> str | None:
    """validateSimpleJSONPath: a dot path like .spec.replicas (brackets and filters allowed in columns)."""
    if not isinstance(path, str) or not path.startswith("."):
        return "must be a simple json path starting with ."
    return None


def _subresources(subresources: dict[str, Any], path: str) -> list[Cause]:
    scale = subresources.get("scale")
    if not isinstance(scale, dict):
        return []
    causes = []
    spec_path = scale.get("specReplicasPath")
    if not spec_path:
        causes.append(required(f"{path}.scale.specReplicasPath"))
    elif _simple_json_path(spec_path) or not spec_path.startswith(".spec."):
        causes.append(invalid(f"{path}.scale.specReplicasPath", spec_path, "should be a json path under .spec"))
    status_path = scale.get("statusReplicasPath")
    if not status_path:
        causes.append(required(f"{path}.scale.statusReplicasPath"))
    elif _simple_json_path(status_path) or not status_path.startswith(".status."):
        causes.append(invalid(f"{path}.scale.statusReplicasPath", status_path, "should be a json path under .status"))
    selector = scale.get("labelSelectorPath")
    if selector is not None and (_simple_json_path(selector) or not (selector.startswith(".spec.") or selector.startswith(".status."))):
        causes.append(invalid(f"{path}.scale.labelSelectorPath", selector, "should be a json path under either .spec or .status"))
    return causes


def _column(column: dict[str, Any], path: str) -> list[Cause]:
    causes = []
    if not column.get("name"):
        causes.append(required(f"{path}.name"))
    kind = column.get("type")
    allowed = ",".join(_COLUMN_TYPES)
    if not kind:
        causes.append(required(f"{path}.type", f"must be one of {allowed}"))
    elif kind not in _COLUMN_TYPES:
        causes.append(invalid(f"{path}.type", kind, f"must be one of {allowed}"))
    if column.get("format") and column["format"] not in _COLUMN_FORMATS:
        causes.append(invalid(f"{path}.format", column["format"], "must be one of " + ",".join(_COLUMN_FORMATS)))
    json_path = column.get("jsonPath")
    if not json_path:
        causes.append(required(f"{path}.jsonPath"))
    elif _simple_json_path(json_path):
        causes.append(invalid(f"{path}.jsonPath", json_path, _simple_json_path(json_path) or ""))
    elif not _parses_as_json_path(json_path):
        causes.append(invalid(f"{path}.jsonPath", json_path, "must be a valid JSONPath"))
    return causes


def _parses_as_json_path(path: str) -> bool:
    """Brackets and quotes balance (client-go's jsonpath parser refuses what does not)."""
    depth = 0
    quote = None
    for char in path:
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0 and quote is None and ".." not in path.replace("...", "")


# --- the schema ------------------------------------------------------------------------


def validate_schema(root: Any, path: str, *, status_on: bool) -> list[Cause]:
    """Structural-schema invariants, keyword rules, list and map types, defaults and CEL of one schema."""
    if not isinstance(root, dict):
        return [required(path)]
    causes: list[Cause] = []
    if status_on:
        extra = sorted(k for k in root if k not in _ROOT_WITH_STATUS)
        if extra:
            causes.append(invalid(path, "", 'must only have "properties", "required" or "description" at the root if the status subresource is enabled'))
        if root.get("type") not in (None, "object"):
            causes.append(invalid(f"{path}.type", root["type"], 'only "object" is allowed as the type at the root of the schema if the status subresource is enabled'))
    if root.get("nullable"):
        causes.append(forbidden(f"{path}.nullable", "nullable cannot be true at the root"))
    if "default" in root:
        causes.append(forbidden(f"{path}.default", "must not be set at the root"))
    _node(root, path, "root", causes)
    if not causes:
        _defaults(root, path, causes)
    if not causes:
        _rules, problems = cel.compile_schema(root, path)
        for problem in problems:
            if problem.reason == "FieldValueRequired":
                causes.append(required(problem.field))
            elif problem.reason == "FieldValueNotSupported":
                causes.append(unsupported(problem.field, json.loads(problem.detail),
                                          ("FieldValueRequired", "FieldValueForbidden", "FieldValueInvalid", "FieldValueDuplicate")))
            else:
                causes.append(invalid(problem.field, "", problem.detail))
    return causes


_LEVEL_MESSAGE = {"root": "must not be empty at the root", "item": "must not be empty for specified array items",
                  "field": "must not be empty for specified object fields"}


def _node(node: Any, path: str, level: str, causes: list[Cause]) -> None:
    if not isinstance(node, dict):
        causes.append(invalid(path, node, "must be a schema object"))
        return
    for key, detail in _FORBIDDEN_KEYS.items():
        if key in node:
            causes.append(forbidden(f"{path}.{key}", detail))
    if node.get("uniqueItems") is True:
        causes.append(forbidden(f"{path}.uniqueItems", "uniqueItems cannot be set to true since the runtime complexity becomes quadratic"))
    kind = node.get("type")
    int_or_string = node.get("x-kubernetes-int-or-string") is True
    preserve = node.get("x-kubernetes-preserve-unknown-fields")
    embedded = node.get("x-kubernetes-embedded-resource") is True
    if kind is not None and kind not in _TYPES:
        causes.append(unsupported(f"{path}.type", kind, _TYPES))
    if preserve is False:
        causes.append(invalid(f"{path}.x-kubernetes-preserve-unknown-fields", False, "must be true or undefined"))
    if int_or_string and preserve:
        causes.append(invalid(f"{path}.x-kubernetes-preserve-unknown-fields", True, "must be false if x-kubernetes-int-or-string is true"))
    if int_or_string and embedded:
        causes.append(invalid(f"{path}.x-kubernetes-embedded-resource", True, "must be false if x-kubernetes-int-or-string is true"))
    if embedded and kind != "object":
        causes.append(required(f"{path}.type", "must be object if x-kubernetes-embedded-resource is true") if not kind
                      else invalid(f"{path}.type", kind, "must be object if x-kubernetes-embedded-resource is true"))
    elif not kind and not int_or_string and not preserve:
        causes.append(required(f"{path}.type", _LEVEL_MESSAGE[level]))
    if level == "root" and kind and kind != "object":
        causes.append(invalid(f"{path}.type", kind, "must be object at the root"))
    if embedded and not preserve and not node.get("properties"):
        causes.append(required(f"{path}.properties", "must not be empty if x-kubernetes-embedded-resource is true without x-kubernetes-preserve-unknown-fields"))
    if kind == "array" and "items" not in node:
        causes.append(required(f"{path}.items", "must be specified"))
    if "pattern" in node:
        try:
            re.compile(node["pattern"])
        except (re.error, TypeError) as error:
            causes.append(invalid(f"{path}.pattern", node["pattern"], f"must be a valid regular expression, but isn't: {error}"))
    additional = node.get("additionalProperties")
    if additional is not None:
        if level == "root":
            causes.append(forbidden(f"{path}.additionalProperties", "must not be used at the root"))
        if node.get("properties") and (additional is False or isinstance(additional, dict)):
            causes.append(forbidden(f"{path}.additionalProperties", "additionalProperties and properties are mutual exclusive"))
        if embedded:
            causes.append(forbidden(f"{path}.additionalProperties", "must not be used if x-kubernetes-embedded-resource is set"))
        if isinstance(additional, dict):
            _node(additional, f"{path}.additionalProperties", "field", causes)
    items = node.get("items")
    if isinstance(items, list):
        causes.append(forbidden(f"{path}.items", "items must be a schema object and not an array"))
    elif items is not None:
        _node(items, f"{path}.items", "item", causes)
    properties = node.get("properties") or {}
    for name, sub in properties.items():
        _node(sub, f"{path}.properties[{name}]", "field", causes)
    if level == "root" or embedded:
        for field, wanted in (("kind", "string"), ("apiVersion", "string"), ("metadata", "object")):
            sub = properties.get(field)
            if isinstance(sub, dict) and sub.get("type") != wanted:
                causes.append(invalid(f"{path}.properties[{field}].type", sub.get("type", ""), f"must be {wanted}"))
    if level == "root" and isinstance(properties.get("metadata"), dict):
        _root_metadata(properties["metadata"], f"{path}.properties[metadata]", causes)
    for junctor in _JUNCTORS:
        if junctor in node:
            _junctor(node, junctor, path, causes)
    _list_and_map_types(node, path, causes)


def _root_metadata(metadata: dict[str, Any], path: str, causes: list[Cause]) -> None:
    """At the root, metadata may be ``type: object`` restricting name and generateName, nothing else."""
    rest = {k: v for k, v in metadata.items() if k not in ("type", "default")}
    props = rest.pop("properties", None) or {}
    if rest or set(props) - {"name", "generateName"}:
        causes.append(forbidden(path, "must not specify anything other than name and generateName, but metadata is implicitly specified"))


def _junctor(node: dict[str, Any], junctor: str, path: str, causes: list[Cause]) -> None:
    branches = node[junctor] if junctor != "not" else [node[junctor]]
    int_or_string = [{"type": "integer"}, {"type": "string"}]
    for index, branch in enumerate(branches):
        at = f"{path}.{junctor}[{index}]" if junctor != "not" else f"{path}.not"
        if not isinstance(branch, dict):
            continue
        if junctor == "anyOf" and node.get("x-kubernetes-int-or-string") and node[junctor] == int_or_string:
            continue
        if (junctor == "allOf" and index == 0 and node.get("x-kubernetes-int-or-string")
                and branch.get("anyOf") == int_or_string):
            continue
        _nested(branch, at, causes)


def _nested(branch: dict[str, Any], path: str, causes: list[Cause]) -> None:
    for key, detail in _NOT_IN_JUNCTORS.items():
        if key in branch and branch[key] not in (False, None, "", []):
            causes.append(forbidden(f"{path}.{key}", detail))
    if "metadata" in (branch.get("properties") or {}):
        causes.append(forbidden(f"{path}.properties[metadata]", "must not be specified in a nested context"))
    for name, sub in (branch.get("properties") or {}).items():
        if isinstance(sub, dict):
            _nested(sub, f"{path}.properties[{name}]", causes)
    if isinstance(branch.get("items"), dict):
        _nested(branch["items"], f"{path}.items", causes)


def _list_and_map_types(node: dict[str, Any], path: str, causes: list[Cause]) -> None:
    list_type = node.get("x-kubernetes-list-type")
    keys = node.get("x-kubernetes-list-map-keys")
    items = node.get("items") if isinstance(node.get("items"), dict) else {}
    if list_type is not None:
        if list_type not in ("atomic", "set", "map"):
            causes.append(unsupported(f"{path}.x-kubernetes-list-type", list_type, ("atomic", "set", "map")))
        if node.get("type") != "array":
            causes.append(invalid(f"{path}.type", node.get("type", ""), "must be array if x-kubernetes-list-type is specified"))
        elif list_type == "set" and items.get("type") == "object" and items.get("x-kubernetes-map-type") != "atomic":
            causes.append(invalid(f"{path}.items.x-kubernetes-map-type", items.get("x-kubernetes-map-type"),
                                  "must be atomic as item of a list with x-kubernetes-list-type=set"))
        elif list_type == "set" and items.get("type") == "array" and items.get("x-kubernetes-list-type") != "atomic":
            causes.append(invalid(f"{path}.items.x-kubernetes-list-type", items.get("x-kubernetes-list-type"),
                                  "must be atomic as item of a list with x-kubernetes-list-type=set"))
    if keys is not None and list_type != "map":
        causes.append(forbidden(f"{path}.x-kubernetes-list-map-keys", "must be empty if x-kubernetes-list-type is not map"))
    if list_type == "map":
        if not keys:
            causes.append(required(f"{path}.x-kubernetes-list-map-keys", "must not be empty if x-kubernetes-list-type is map"))
        if items.get("type") != "object" and node.get("type") == "array":
            causes.append(invalid(f"{path}.items.type", items.get("type", ""), "must be object if parent array's x-kubernetes-list-type is map"))
        elif items.get("x-kubernetes-map-type") == "atomic":
            causes.append(invalid(f"{path}.items.x-kubernetes-map-type", "atomic", "must be granular if parent array's x-kubernetes-list-type is map"))
        props = items.get("properties") or {}
        for index, key in enumerate(keys or []):
            sub = props.get(key)
            if sub is None:
                causes.append(invalid(f"{path}.x-kubernetes-list-map-keys[{index}]", key, "entries must all be names of item properties"))
            elif sub.get("type") not in ("string", "integer", "number", "boolean") and not sub.get("x-kubernetes-int-or-string"):
                causes.append(invalid(f"{path}.x-kubernetes-list-map-keys[{index}]", key, "must be scalar"))
            elif key not in (items.get("required") or []) and "default" not in sub:
                causes.append(required(f"{path}.items.properties[{key}]",
                                       "this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property"))
            elif sub.get("nullable"):
                causes.append(forbidden(f"{path}.items.properties[{key}].nullable",
                                        "this property is in x-kubernetes-list-map-keys, so it must not be nullable"))
    map_type = node.get("x-kubernetes-map-type")
    if map_type is not None:
        if map_type not in ("granular", "atomic"):
            causes.append(unsupported(f"{path}.x-kubernetes-map-type", map_type, ("granular", "atomic")))
        elif node.get("type") != "object":
            causes.append(invalid(f"{path}.type", node.get("type", ""), "must be object if x-kubernetes-map-type is specified"))


def _defaults(node: dict[str, Any], path: str, causes: list[Cause], level: str = "root") -> None:
    """Every default validates against its own schema, and pruning would not change it."""
    if "default" in node and level != "root":
        value = node["default"]
        found = schema.validate(node, value, f"{path}.default")
        causes.extend(found)
        if not found:
            pruned = schema.prune_and_default(node, copy.deepcopy(value))
            if _without_defaults_added(pruned, value) != value:
                causes.append(invalid(f"{path}.default", value, "must not have unknown fields"))
    for name, sub in (node.get("properties") or {}).items():
        if isinstance(sub, dict):
            _defaults(sub, f"{path}.properties[{name}]", causes, "field")
    if isinstance(node.get("additionalProperties"), dict):
        _defaults(node["additionalProperties"], f"{path}.additionalProperties", causes, "field")
    if isinstance(node.get("items"), dict):
        _defaults(node["items"], f"{path}.items", causes, "item")


def _without_defaults_added(pruned: Any, original: Any) -> Any:
    """Pruning also applies nested defaults; compare only what was there."""
    if isinstance(pruned, dict) and isinstance(original, dict):
        return {k: _without_defaults_added(v, original[k]) for k, v in pruned.items() if k in original}
    if isinstance(pruned, list) and isinstance(original, list) and len(pruned) == len(original):
        return [_without_defaults_added(p, o) for p, o in zip(pruned, original, strict=True)]
    return pruned
