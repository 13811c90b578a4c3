"""CEL validation rules of CRD schemas (``x-kubernetes-validations``): compiled and enforced.

A real kube-apiserver compiles every rule against the schema it sits on when the CRD is
written, and refuses one that does not compile, or does not return a bool, with a 422 on
``...x-kubernetes-validations[i].rule`` (``messageExpression`` likewise, which must return a
string). It then evaluates the rules on every create and update of a custom resource, and
refuses the write with the rule's message (or ``failed rule: <rule>``) on the field the rule
sits on. Rules that name ``oldSelf`` (transition rules) are evaluated only on an update, where
the old value exists. See "Validation rules" in the Kubernetes documentation (Extend the
Kubernetes API with CustomResourceDefinitions) and k8s.io/apiextensions-apiserver
``pkg/apiserver/schema/cel``.

The runtime is Google's ``cel-expr-python`` (cel-cpp): it is the only one of the CEL packages
on PyPI with a type checker, and a rule like ``self.size == 'big'`` on an integer must be
refused at CRD creation, as kube-apiserver's cel-go refuses it. For type checking, the schema
is turned into protobuf message types (one per object with properties), as Kubernetes turns
it into CEL declared types. Evaluation runs on plain maps, so that a field that is absent is
absent (``has()`` is false, reading it is an error), as on the real server.

What it does not do (stricter than the real server, never more lenient): the Kubernetes CEL
libraries beyond the standard ones and the strings extension (lists, regex ``find``, URLs,
quantities, IP and CIDR) are not declared, so rules that use them are refused; strings with a
``format`` are plain strings (no timestamp or duration types); there is no cost estimation.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any, NamedTuple

from cel_expr_python import cel
from cel_expr_python.ext import ext_strings
from google.protobuf import descriptor_pb2, descriptor_pool

from kubestandin.schema import Cause

_KEYWORDS = {
    "true", "false", "null", "in", "as", "break", "const", "continue", "else", "for", "function",
    "if", "import", "let", "loop", "package", "namespace", "return", "var", "void", "while",
}  # fmt: skip
_IDENTIFIER = re.compile(r"^[_a-zA-Z][_a-zA-Z0-9]*$")
_ESCAPABLE = re.compile(r"^[_a-zA-Z][-_a-zA-Z0-9./]*$")
_FIELD = descriptor_pb2.FieldDescriptorProto
_SCALARS = {"string": _FIELD.TYPE_STRING, "integer": _FIELD.TYPE_INT64, "number": _FIELD.TYPE_DOUBLE, "boolean": _FIELD.TYPE_BOOL}
_CEL_SCALARS = {"string": cel.Type.STRING, "integer": cel.Type.INT, "number": cel.Type.DOUBLE, "boolean": cel.Type.BOOL}
_lock = threading.Lock()  # cel-cpp environments are built one at a time


def escape(name: str) -> str | None:
    """A property name as CEL sees it (``foo-bar`` is ``foo__dash__bar``); None: not reachable."""
    if name in _KEYWORDS:
        return f"__{name}__"
    if not _ESCAPABLE.match(name):
        return None
    return name.replace("__", "__underscores__").replace(".", "__dot__").replace("-", "__dash__").replace("/", "__slash__")


def _object_properties(schema: dict[str, Any], root: bool) -> dict[str, Any]:
    """The properties CEL sees on an object: the root and embedded resources carry apiVersion, kind, metadata."""
    props = dict(schema.get("properties") or {})
    if root or schema.get("x-kubernetes-embedded-resource"):
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props["metadata"] = {"type": "object", "properties": {"name": {"type": "string"}, "generateName": {"type": "string"}}}
    return props


def _is_struct(schema: dict[str, Any], root: bool = False) -> bool:
    return schema.get("type") == "object" and bool(_object_properties(schema, root))


class _Types:
    """Protobuf message types for the objects of one schema, for the type checker."""

    def __init__(self) -> None:
        self.file = descriptor_pb2.FileDescriptorProto(name="standin_schema.proto", package="standin", syntax="proto3")
        self.file.dependency.append("google/protobuf/struct.proto")
        self.names: dict[int, str] = {}

    def cel_type(self, schema: dict[str, Any], root: bool = False) -> Any:
        if schema.get("x-kubernetes-int-or-string") or not schema.get("type"):
            return cel.Type.DYN
        kind = schema["type"]
        if kind in _CEL_SCALARS:
            return _CEL_SCALARS[kind]
        if kind == "array":
            items = schema.get("items")
            return cel.Type.List(self.cel_type(items) if isinstance(items, dict) else cel.Type.DYN)
        if _is_struct(schema, root):
            return cel.Type(self.message(schema, root))
        additional = schema.get("additionalProperties")
        if isinstance(additional, dict):
            return cel.Type.Map(cel.Type.STRING, self.cel_type(additional))
        return cel.Type.DYN  # preserve-unknown-fields: anything

    def message(self, schema: dict[str, Any], root: bool = False) -> str:
        if id(schema) in self.names:
            return self.names[id(schema)]
        name = f"T{len(self.names)}"
        full = self.names[id(schema)] = f"standin.{name}"
        message = self.file.message_type.add(name=name)
        number = 0
        for prop, sub in sorted(_object_properties(schema, root).items()):
            field_name = escape(prop)
            if field_name is None or not _IDENTIFIER.match(field_name):
                continue
            number += 1
            self._field(message, field_name, number, sub)
        return full

    def _field(self, message: Any, name: str, number: int, schema: dict[str, Any]) -> None:
        field = message.field.add(name=name, number=number, label=_FIELD.LABEL_OPTIONAL)
        kind = schema.get("type")
        if schema.get("x-kubernetes-int-or-string") or not kind:
            field.type, field.type_name = _FIELD.TYPE_MESSAGE, ".google.protobuf.Value"
        elif kind in _SCALARS:
            field.type = _SCALARS[kind]
            field.proto3_optional = True  # has() tells a field that is set from its zero value
            field.oneof_index = len(message.oneof_decl)
            message.oneof_decl.add(name=f"_{name}")
        elif kind == "array":
            items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
            if items.get("type") in _SCALARS and not items.get("x-kubernetes-int-or-string"):
                field.label, field.type = _FIELD.LABEL_REPEATED, _SCALARS[items["type"]]
            elif _is_struct(items):
                field.label, field.type, field.type_name = _FIELD.LABEL_REPEATED, _FIELD.TYPE_MESSAGE, "." + self.message(items)
            else:
                field.type, field.type_name = _FIELD.TYPE_MESSAGE, ".google.protobuf.ListValue"
        elif _is_struct(schema):
            field.type, field.type_name = _FIELD.TYPE_MESSAGE, "." + self.message(schema)
        elif isinstance(schema.get("additionalProperties"), dict):
            value = schema["additionalProperties"]
            entry = message.nested_type.add(name=f"{name.title().replace('_', '')}Entry{number}")
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, type=_FIELD.TYPE_STRING, label=_FIELD.LABEL_OPTIONAL)
            value_field = entry.field.add(name="value", number=2, label=_FIELD.LABEL_OPTIONAL)
            if value.get("type") in _SCALARS and not value.get("x-kubernetes-int-or-string"):
                value_field.type = _SCALARS[value["type"]]
            elif _is_struct(value):
                value_field.type, value_field.type_name = _FIELD.TYPE_MESSAGE, "." + self.message(value)
            else:
                value_field.type, value_field.type_name = _FIELD.TYPE_MESSAGE, ".google.protobuf.Value"
            field.label, field.type = _FIELD.LABEL_REPEATED, _FIELD.TYPE_MESSAGE
            field.type_name = f".standin.{message.name}.{entry.name}"
        else:
            field.type, field.type_name = _FIELD.TYPE_MESSAGE, ".google.protobuf.Struct"

    def pool(self) -> Any:
        from google.protobuf import struct_pb2

        pool = descriptor_pool.DescriptorPool()
        struct_file = descriptor_pb2.FileDescriptorProto()
        struct_pb2.DESCRIPTOR.CopyToProto(struct_file)
        pool.Add(struct_file)
        pool.Add(self.file)
        return pool


class Rule(NamedTuple):
    path: tuple[str, ...]  # the data path of the node the rule sits on, e.g. ("spec", "limits")
    schema_path: str  # where the rule is in the CRD, e.g. "...properties[spec].x-kubernetes-validations[0]"
    rule: dict[str, Any]
    program: Any  # the rule, compiled for evaluation
    message: Any  # the messageExpression, compiled, or None
    transition: bool  # names oldSelf: only on updates


class CompileProblem(NamedTuple):
    field: str  # ...x-kubernetes-validations[i].rule / .messageExpression
    reason: str
    detail: str


def _nodes(schema: dict[str, Any], schema_path: str, correlatable: bool = True, root: bool = True) -> Iterator[tuple[dict[str, Any], str, bool, bool]]:
    """Every node of a schema with its CRD path; correlatable: an old value can be found for it."""
    yield schema, schema_path, correlatable, root
    for name, sub in (schema.get("properties") or {}).items():
        if isinstance(sub, dict):
            yield from _nodes(sub, f"{schema_path}.properties[{name}]", correlatable, False)
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict):
        yield from _nodes(additional, f"{schema_path}.additionalProperties", correlatable, False)
    items = schema.get("items")
    if isinstance(items, dict):
        keyed = schema.get("x-kubernetes-list-type") == "map"
        yield from _nodes(items, f"{schema_path}.items", correlatable and keyed, False)


def _env(variables: dict[str, Any], pool: Any = None) -> Any:
    return cel.NewEnv(pool, variables=variables, extensions=[ext_strings.ExtStrings()])


def compile_schema(schema: dict[str, Any], schema_path: str) -> tuple[list[Rule], list[CompileProblem]]:
    """Compile every rule of a structural schema; the problems are what a real server refuses."""
    located = [(node, path, correlatable, root) for node, path, correlatable, root in _nodes(schema, schema_path)
               if node.get("x-kubernetes-validations")]
    if not located:
        return [], []
    with _lock:
        types = _Types()
        typed = [(node, path, correlatable, root, types.cel_type(node, root)) for node, path, correlatable, root in located]
        pool = types.pool()
        untyped = _env({"self": cel.Type.DYN, "oldSelf": cel.Type.DYN})
        rules: list[Rule] = []
        problems: list[CompileProblem] = []
        for node, path, correlatable, _root, self_type in typed:
            checker = _env({"self": self_type, "oldSelf": self_type}, pool)
            for index, rule in enumerate(node["x-kubernetes-validations"]):
                where = f"{path}.x-kubernetes-validations[{index}]"
                problems.extend(_check_rule(checker, rule, where, correlatable))
        if problems:
            return [], problems
        for node, path, _correlatable, _root, _type in typed:
            data_path = _data_path(path, schema_path)
            for index, rule in enumerate(node["x-kubernetes-validations"]):
                message = untyped.compile(rule["messageExpression"]) if rule.get("messageExpression") else None
                rules.append(Rule(data_path, f"{path}.x-kubernetes-validations[{index}]", rule,
                                  untyped.compile(rule["rule"]), message, _names_old_self(rule["rule"])))
        return rules, []


def _names_old_self(source: str) -> bool:
    return re.search(r"\boldSelf\b", source) is not None


def _check_rule(checker: Any, rule: Any, where: str, correlatable: bool) -> list[CompileProblem]:
    if not isinstance(rule, dict) or not rule.get("rule"):
        return [CompileProblem(f"{where}.rule", "FieldValueRequired", "")]
    problems = []
    source = rule["rule"]
    try:
        compiled = checker.compile(source)
        if compiled.return_type() != cel.Type.BOOL:
            problems.append(CompileProblem(f"{where}.rule", "FieldValueInvalid", "must evaluate to a bool"))
    except RuntimeError as error:
        problems.append(CompileProblem(f"{where}.rule", "FieldValueInvalid", f"compilation failed: {_first_line(error)}"))
    if _names_old_self(source) and not correlatable:
        problems.append(CompileProblem(f"{where}.rule", "FieldValueInvalid",
                                       "oldSelf cannot be used on the uncorrelatable portion of the schema within x-kubernetes-validations"))
    if rule.get("messageExpression"):
        try:
            compiled = checker.compile(rule["messageExpression"])
            if compiled.return_type() not in (cel.Type.STRING, cel.Type.DYN):
                problems.append(CompileProblem(f"{where}.messageExpression", "FieldValueInvalid", "must evaluate to a string"))
        except RuntimeError as error:
            problems.append(CompileProblem(f"{where}.messageExpression", "FieldValueInvalid",
                                           f"messageExpression compilation failed: {_first_line(error)}"))
    reason = rule.get("reason")
    if reason is not None and reason not in ("FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"):
        problems.append(CompileProblem(f"{where}.reason", "FieldValueNotSupported", json.dumps(reason)))
    return problems


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0]


def _data_path(schema_path: str, root_path: str) -> tuple[str, ...]:
    """``<root>.properties[spec].properties[limits]`` -> ``("spec", "limits")``; ``[]``: every item, ``*``: every value."""
    parts = re.findall(r"\.properties\[([^\]]*)\]|\.(items|additionalProperties)", schema_path[len(root_path):])
    return tuple(name or ("[]" if other == "items" else "*") for name, other in parts)


# --- evaluation ------------------------------------------------------------------------


def _as_cel(schema: dict[str, Any], value: Any, root: bool = False) -> Any:
    """JSON data as the rules see it: property names escaped, numbers of type number as doubles."""
    if isinstance(value, dict):
        if schema.get("properties") or root or schema.get("x-kubernetes-embedded-resource"):
            props = _object_properties(schema, root)
            out = {}
            for key, item in value.items():
                name = escape(key)
                if name is not None:
                    out[name] = _as_cel(props.get(key) or {}, item)
            return out
        additional = schema.get("additionalProperties")
        sub = additional if isinstance(additional, dict) else {}
        return {key: _as_cel(sub, item) for key, item in value.items()}
    if isinstance(value, list):
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        return [_as_cel(items, item) for item in value]
    if schema.get("type") == "number" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _values(schema: dict[str, Any], tokens: tuple[str, ...], value: Any, old: Any, actual: str = "") -> Iterator[tuple[str, dict[str, Any], Any, Any]]:
    """The values at a rule's data path, with their field paths and old values (correlated by key, or None)."""
    if not tokens:
        yield actual, schema, value, old
        return
    head, rest = tokens[0], tokens[1:]
    if head == "[]":
        if not isinstance(value, list):
            return
        items = schema.get("items") or {}
        keys = schema.get("x-kubernetes-list-map-keys") if schema.get("x-kubernetes-list-type") == "map" else None
        olds = old if isinstance(old, list) else []
        for index, item in enumerate(value):
            previous = None
            if keys and isinstance(item, dict):
                previous = next((o for o in olds if isinstance(o, dict) and all(o.get(k) == item.get(k) for k in keys)), None)
            yield from _values(items, rest, item, previous, f"{actual}[{index}]")
        return
    if not isinstance(value, dict):
        return
    if head == "*":
        sub = schema.get("additionalProperties") or {}
        for key, item in value.items():
            previous = old.get(key) if isinstance(old, dict) else None
            yield from _values(sub, rest, item, previous, f"{actual}[{key}]")
        return
    if head not in value:
        return
    sub = (schema.get("properties") or {}).get(head) or {}
    previous = old.get(head) if isinstance(old, dict) else None
    yield from _values(sub, rest, value[head], previous, f"{actual}.{head}" if actual else head)


def enforce(rules: list[Rule], schema: dict[str, Any], obj: dict[str, Any], old: dict[str, Any] | None) -> list[Cause]:
    """Evaluate every rule where its node has a value; a rule that is false or fails is a cause."""
    causes: list[Cause] = []
    for rule in rules:
        for path, node_schema, value, old_value in _values(schema, rule.path, obj, old):
            if value is None:
                continue
            if rule.transition and old_value is None:
                continue
            root = path == ""
            data = {"self": _as_cel(node_schema, value, root)}
            if rule.transition:
                data["oldSelf"] = _as_cel(node_schema, old_value, root)
            result = rule.program.eval(data=data)
            if result.type() == cel.Type.BOOL and result.plain_value() is True:
                continue
            field = path + (rule.rule.get("fieldPath") or "")
            kind = node_schema.get("type") or "object"
            if result.type() == cel.Type.ERROR:
                message = f"{rule.rule['rule']}: {result.plain_value()}"
                causes.append(Cause("FieldValueInvalid", field, f'{field or "<nil>"}: Invalid value: "{kind}": {message}'))
                continue
            message = _message(rule, data)
            reason = rule.rule.get("reason") or "FieldValueInvalid"
            label = {"FieldValueInvalid": f'Invalid value: "{kind}"', "FieldValueForbidden": "Forbidden",
                     "FieldValueRequired": "Required value", "FieldValueDuplicate": f'Duplicate value: "{kind}"'}[reason]
            causes.append(Cause(reason, field, f"{field or '<nil>'}: {label}: {message}"))
    return causes


def _message(rule: Rule, data: dict[str, Any]) -> str:
    if rule.message is not None:
        value = rule.message.eval(data=data)
        if value.type() == cel.Type.STRING and value.plain_value().strip():
            return value.plain_value()
    if rule.rule.get("message"):
        return rule.rule["message"]
    return f"failed rule: {rule.rule['rule']}"
