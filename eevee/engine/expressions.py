"""The small expression language of rule tables: templates, conditions, sources, transforms.

Everything here is compiled once when a table is loaded into plain callables, so
rendering a resource is a walk over pre-parsed paths with no parsing at all.
Expressions read from a *scope*: the custom resource itself (``metadata``,
``spec``) plus the named roots ``values``, ``refs``, ``labels``, ``children``,
``operator`` and ``live`` (see ``docs/rule-tables.md``).

Deliberately absent: arithmetic, loops and user-defined functions. Tables
describe manifests; anything cleverer belongs in a new, documented construct.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import json
import re
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from eevee.engine.paths import Path, format_path, get, parse_path
from eevee.engine.quantity import QuantityError, canonical_quantities, quantity_value

Scope = Mapping[str, Any]


class _Unset:
    """Marks an expression that produced no value (a missing field, a false condition)."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET: Any = _Unset()


class ExpressionError(ValueError):
    """A construct in a table that cannot be compiled; the message says why."""


class EvaluationError(ValueError):
    """A value in a resource that a transform cannot handle (reported as an invalid spec)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def lookup(scope: Scope, path: Path) -> Any:
    value = get(scope, path, UNSET)
    return UNSET if value is None else value


# --- templates -------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


class Template:
    """``"eevee-{metadata.name}-nats"``: literal text with ``{path}`` placeholders.

    ``{{`` and ``}}`` stand for literal braces. A placeholder whose path is unset
    makes the whole template unset, so a name is never rendered half-filled, unless
    it names a fallback: ``{status.readyReplicas|0}``.
    """

    __slots__ = ("fallbacks", "parts", "paths", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        parts: list[str | Path] = []
        fallbacks: dict[Path, str] = {}
        pos = 0
        literal: list[str] = []
        for match in _PLACEHOLDER.finditer(text):
            literal.append(text[pos : match.start()])
            token = match.group()
            if token in ("{{", "}}"):
                literal.append(token[0])
            else:
                placeholder, bar, fallback = match.group(1).partition("|")
                if not placeholder.strip():
                    raise ExpressionError(f"empty placeholder in template {text!r}")
                parts.append("".join(literal))
                literal = []
                path = parse_path(placeholder.strip())
                parts.append(path)
                if bar:
                    fallbacks[path] = fallback
            pos = match.end()
        rest = text[pos:]
        if "{" in rest or "}" in rest:
            raise ExpressionError(f"unbalanced brace in template {text!r} (write {{{{ or }}}} for a literal brace)")
        literal.append(rest)
        parts.append("".join(literal))
        self.parts = tuple(parts)
        self.paths = tuple(p for p in parts if isinstance(p, tuple))
        self.fallbacks = fallbacks

    def render(self, scope: Scope) -> Any:
        if not self.paths:
            return self.parts[0]
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = lookup(scope, part)
            if value is UNSET:
                if part not in self.fallbacks:
                    return UNSET
                value = self.fallbacks[part]
            out.append(_text(value))
        return "".join(out)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


def compile_structure(value: Any) -> Callable[[Scope], Any]:
    """A YAML structure whose strings are templates; unset placeholders drop their key."""
    if isinstance(value, str):
        template = Template(value)
        return template.render
    if isinstance(value, list):
        items = [compile_structure(v) for v in value]
        return lambda scope: [r for r in (f(scope) for f in items) if r is not UNSET]
    if isinstance(value, dict):
        fields = [(str(k), compile_structure(v)) for k, v in value.items()]

        def render(scope: Scope) -> dict[str, Any]:
            out = {}
            for key, f in fields:
                result = f(scope)
                if result is not UNSET:
                    out[key] = result
            return out

        return render
    return lambda scope: value


def structure_paths(value: Any) -> list[Path]:
    """Every placeholder path in a template structure (for load-time checks)."""
    if isinstance(value, str):
        return list(Template(value).paths)
    if isinstance(value, list):
        return [p for v in value for p in structure_paths(v)]
    if isinstance(value, dict):
        return [p for v in value.values() for p in structure_paths(v)]
    return []


# --- conditions ------------------------------------------------------------------------

Condition = Callable[[Scope], bool]


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _falsy(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.lower() == "false")


def compile_condition(spec: Any) -> Condition:
    """Compile ``{set: p}``, ``{unset: p}``, ``{isTrue: p}``, ``{isFalse: p}``,
    ``{equal: [p, q]}``, ``{matches: [p, regex]}`` (true when p is unset), ``{all: [...]}``,
    ``{any: [...]}`` or ``{not: ...}``."""
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ExpressionError(f"a condition is a mapping with exactly one operator, got {spec!r}")
    ((op, arg),) = spec.items()
    if op in ("set", "unset", "isTrue", "isFalse"):
        if not isinstance(arg, str):
            raise ExpressionError(f"condition {op} takes one field path, got {arg!r}")
        path = parse_path(arg)
        if op == "set":
            return lambda scope: lookup(scope, path) is not UNSET
        if op == "unset":
            return lambda scope: lookup(scope, path) is UNSET
        if op == "isTrue":
            return lambda scope: _truthy(lookup(scope, path))
        return lambda scope: _falsy(lookup(scope, path))
    if op == "equal":
        if not isinstance(arg, list) or len(arg) != 2 or not all(isinstance(a, str) for a in arg):
            raise ExpressionError(f"condition equal takes a list of two field paths, got {arg!r}")
        left, right = parse_path(arg[0]), parse_path(arg[1])
        return lambda scope: lookup(scope, left) == lookup(scope, right)
    if op == "matches":
        if not isinstance(arg, list) or len(arg) != 2 or not all(isinstance(a, str) for a in arg):
            raise ExpressionError(f"condition matches takes [field path, regular expression], got {arg!r}")
        path = parse_path(arg[0])
        try:
            pattern = re.compile(arg[1])
        except re.error as error:
            raise ExpressionError(f"condition matches: bad regular expression {arg[1]!r}: {error}") from None
        return lambda scope: (v := lookup(scope, path)) is UNSET or pattern.fullmatch(_text(v)) is not None
    if op == "maxBytes":
        if not (isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str) and type(arg[1]) is int):
            raise ExpressionError(f"condition maxBytes takes [field path, number of bytes], got {arg!r}")
        path, limit = parse_path(arg[0]), arg[1]
        return lambda scope: (v := lookup(scope, path)) is UNSET or len(_text(v).encode()) <= limit
    if op == "hasKey":
        if not isinstance(arg, list) or len(arg) != 2 or not all(isinstance(a, str) for a in arg):
            raise ExpressionError(f"condition hasKey takes [path of a map, path of a key], got {arg!r}")
        mapping, key = parse_path(arg[0]), parse_path(arg[1])
        return lambda scope: isinstance(m := lookup(scope, mapping), dict) and _text(lookup(scope, key)) in m
    if op == "atLeast":
        if not isinstance(arg, list) or len(arg) != 2 or not all(isinstance(a, str) for a in arg):
            raise ExpressionError(f"condition atLeast takes a list of two field paths, got {arg!r}")
        left, right = parse_path(arg[0]), parse_path(arg[1])
        return lambda scope: _at_least(lookup(scope, left), lookup(scope, right))
    if op in ("all", "any"):
        if not isinstance(arg, list) or not arg:
            raise ExpressionError(f"condition {op} takes a non-empty list of conditions")
        parts = [compile_condition(a) for a in arg]
        if op == "all":
            return lambda scope: all(p(scope) for p in parts)
        return lambda scope: any(p(scope) for p in parts)
    if op == "not":
        inner = compile_condition(arg)
        return lambda scope: not inner(scope)
    raise ExpressionError(
        f"unknown condition {op!r} (known: {', '.join(CONDITIONS)})"
    )


CONDITIONS = (
    *("set", "unset", "isTrue", "isFalse", "equal", "matches"),
    *("maxBytes", "hasKey", "atLeast", "all", "any", "not"),
)


def _at_least(left: Any, right: Any) -> bool:
    """``left >= right`` for numbers or Kubernetes quantities; true when either is unset or unreadable."""
    if left is UNSET or right is UNSET:
        return True
    try:
        return quantity_value(left) >= quantity_value(right)
    except ValueError:
        return True  # not comparable: other checks report a value that is no quantity


def condition_paths(spec: Any) -> list[Path]:
    ((op, arg),) = spec.items()
    if op in ("set", "unset", "isTrue", "isFalse"):
        return [parse_path(arg)]
    if op in ("equal", "hasKey", "atLeast"):
        return [parse_path(a) for a in arg]
    if op in ("matches", "maxBytes"):
        return [parse_path(arg[0])]
    if op in ("all", "any"):
        return [p for a in arg for p in condition_paths(a)]
    return condition_paths(arg)


# --- transforms ------------------------------------------------------------------------

Transform = Callable[[Any, str], Any]


def _to_string(value: Any, field: str) -> str:
    return _text(value)


def _to_integer(value: Any, field: str) -> int:
    if isinstance(value, bool):
        raise EvaluationError(field, f"cannot convert boolean {value} to an integer")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise EvaluationError(field, f"cannot convert {value!r} to an integer") from None


def _base64(value: Any, field: str) -> str:
    return base64.b64encode(_text(value).encode()).decode()


def _sha256(value: Any, field: str) -> str:
    data = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(data.encode()).hexdigest()


def _quantity(value: Any, field: str) -> Any:
    try:
        return canonical_quantities(value)
    except QuantityError as error:
        raise EvaluationError(field + error.where, str(error)) from None


_INNER_TABS = re.compile(r"(?<=[^\s])[ \t]*\t[ \t]*", re.MULTILINE)


def _yaml_mapping(value: Any, field: str) -> Any:
    """Text that must hold a YAML mapping (or nothing); passed through unchanged."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    text = _text(value)
    yaml = YAML(typ="safe", pure=True)
    try:
        try:
            node = yaml.compose(text)
        except YAMLError:
            # ruamel refuses a tab inside a line ("key: a<TAB>b"), which YAML 1.2 and the
            # modules' parser (js-yaml) accept: judge the shape with such tabs as spaces.
            # Tabs in indentation stay, and stay an error, as they are for js-yaml.
            node = yaml.compose(_INNER_TABS.sub(lambda m: m.group(0).replace("\t", " "), text))
    except YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise EvaluationError(field, f"is not valid YAML: {where}{problem}") from None
    if node is None:
        return value  # empty, or only comments: the module's defaults, as asked
    if node.tag != "tag:yaml.org,2002:map":  # anything but a mapping at the top
        found = {"tag:yaml.org,2002:seq": "a list"}.get(node.tag, "a single value")
        raise EvaluationError(
            field,
            f"must be a YAML mapping of settings (key: value lines), but line {node.start_mark.line + 1} "
            f"starts {found}; eevee modules ignore such a configuration and run on their defaults",
        )
    return value  # checked, passed through unchanged


def _unix_time(value: Any, field: str) -> float:
    """An RFC 3339 timestamp (as Kubernetes writes them) as seconds since the epoch."""
    try:
        stamp = datetime.fromisoformat(_text(value).replace("Z", "+00:00"))
    except ValueError:
        raise EvaluationError(field, f"{value!r} is not an RFC 3339 timestamp") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


# The macros a CronJob's schedule may use (kube-controller-manager's cron parser, robfig/cron).
_CRON_MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
_CRON_RUNS = 400  # a year of daily runs, two weeks of hourly ones: every weekly or monthly gap shows


@functools.lru_cache(maxsize=1024)
def cron_period(schedule: str) -> float | None:
    """The longest time between two runs of a cron schedule, in seconds (None if it is no schedule
    cronsim reads): what a schedule allows between two backups. Measured over its next runs from a
    fixed date, so the answer never changes."""
    from cronsim import CronSim, CronSimError

    expression = _CRON_MACROS.get(schedule.strip(), schedule.strip())
    try:
        start = datetime(2001, 1, 1, tzinfo=UTC)
        runs = [t.timestamp() for t in itertools.islice(CronSim(expression, start), _CRON_RUNS)]
    except (CronSimError, ValueError):
        return None
    return max((b - a for a, b in itertools.pairwise(runs)), default=None)


def _cron_period(value: Any, field: str) -> Any:
    period = cron_period(_text(value))
    return UNSET if period is None else period


_NAMED_TRANSFORMS: dict[str, Transform] = {
    "unixTime": _unix_time,
    "cronPeriod": _cron_period,
    "string": _to_string,
    "integer": _to_integer,
    "base64": _base64,
    "sha256": _sha256,
    "quantity": _quantity,
    "yamlMapping": _yaml_mapping,
}


def compile_transform(spec: Any) -> Transform:
    """A named transform (``string``, ``integer``, ``base64``, ``sha256``, ``quantity``, ...)
    or ``{map: {from: to, ...}}``; unmapped values pass through unchanged."""
    if isinstance(spec, str):
        if spec not in _NAMED_TRANSFORMS:
            raise ExpressionError(f"unknown transform {spec!r} (known: {', '.join(sorted(_NAMED_TRANSFORMS))}, map)")
        return _NAMED_TRANSFORMS[spec]
    if isinstance(spec, dict) and set(spec) == {"map"} and isinstance(spec["map"], dict):
        table = {_text(k): v for k, v in spec["map"].items()}
        return lambda value, field: table.get(_text(value), value)
    raise ExpressionError(f"a transform is a name or {{map: {{...}}}}, got {spec!r}")


# --- sources ---------------------------------------------------------------------------

SOURCE_KEYS = ("fromFieldPath", "value", "format", "generate")
Generator = Callable[[int], str]


def random_token(nbytes: int) -> str:
    """A URL-safe random token of ``nbytes`` bytes of entropy."""
    return secrets.token_urlsafe(nbytes)


class Source:
    """Where a patch or a named value takes its value from, then default, transforms, condition.

    Exactly one of ``fromFieldPath``, ``value``, ``format`` or ``generate`` (checked
    by the table schema). Evaluation yields :data:`UNSET` when the condition is
    false, or the source is unset and there is no default.
    """

    __slots__ = ("_bytes", "_default", "_paths", "_read", "_transforms", "_when", "generated", "label")

    def __init__(self, spec: Mapping[str, Any], *, label: str) -> None:
        self.label = label
        self.generated = "generate" in spec
        self._bytes = int(spec.get("bytes", 32))
        self._paths: tuple[Path, ...] = ()
        if "fromFieldPath" in spec:
            paths = [parse_path(p) for p in _as_list(spec["fromFieldPath"])]
            self._paths = tuple(paths)
            self._read: Callable[[Scope], Any] = lambda scope: _first_set(scope, paths)
        elif "value" in spec:
            constant = spec["value"]
            self._read = lambda scope: constant
        elif "format" in spec:
            self._read = compile_structure(spec["format"])
            self._paths = tuple(structure_paths(spec["format"]))
        elif self.generated:
            self._read = lambda scope: UNSET  # filled in by evaluate(), which holds the generator
        else:
            raise ExpressionError(f"needs one of {', '.join(SOURCE_KEYS)}")
        self._default = spec.get("default", UNSET)
        self._transforms = [compile_transform(t) for t in spec.get("transforms", ())]
        self._when = compile_condition(spec["when"]) if "when" in spec else None

    def evaluate(self, scope: Scope, generate: Generator = random_token) -> Any:
        if self._when is not None and not self._when(scope):
            return UNSET
        value = generate(self._bytes) if self.generated else self._read(scope)
        if value is UNSET:
            value = self._default
            if value is UNSET:
                return UNSET
        for transform in self._transforms:
            value = transform(value, self.origin(scope))
        return value

    def origin(self, scope: Scope) -> str:
        """The user's field this value comes from (for error messages), else the rule's label."""
        return self.user_field(scope) or self.label

    def user_field(self, scope: Scope) -> str | None:
        """The resource field this value comes from, if any. A value read from ``values.x``
        comes from wherever ``x`` came from: the renderer records that in ``_origins``."""
        for path in self._paths:
            if lookup(scope, path) is UNSET:
                continue
            return field_origin(scope, path)
        return None


def field_origin(scope: Scope, path: Path) -> str | None:
    """The user's field behind ``path``: itself for metadata/spec, the recorded origin for values."""
    if path[0] in ("spec", "metadata"):
        return format_path(path)
    if path[0] in ("values", "refs") and len(path) > 1:
        origins = scope.get("_origins") or {}
        return origins.get(path[1] if path[0] == "values" else f"refs.{path[1]}")
    return None


def _as_list(value: str | list[str]) -> list[str]:
    return value if isinstance(value, list) else [value]


def _first_set(scope: Scope, paths: list[Path]) -> Any:
    for path in paths:
        value = lookup(scope, path)
        if value is not UNSET:
            return value
    return UNSET


def source_paths(spec: Mapping[str, Any]) -> list[Path]:
    """Every field path a source reads (for load-time checks)."""
    paths: list[Path] = []
    if "fromFieldPath" in spec:
        paths.extend(parse_path(p) for p in _as_list(spec["fromFieldPath"]))
    if "format" in spec:
        paths.extend(structure_paths(spec["format"]))
    if "when" in spec:
        paths.extend(condition_paths(spec["when"]))
    return paths


__all__ = [
    "UNSET",
    "Condition",
    "EvaluationError",
    "ExpressionError",
    "Scope",
    "Source",
    "Template",
    "compile_condition",
    "compile_structure",
    "compile_transform",
    "condition_paths",
    "format_path",
    "lookup",
    "random_token",
    "source_paths",
    "structure_paths",
]
