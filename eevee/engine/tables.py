"""Loading rule tables: read YAML, validate the format with cerberus, check meaning, compile.

A table is refused as a whole, with every problem listed as *file, rule, reason*:
half a table would render half a workload. Three layers of checks run in order:

1. the YAML parses (ruamel reports the line);
2. the document has the shape of a table (the cerberus schema below);
3. the table means something: paths parse and point at fields that exist (in the
   table's own spec schema, its values, its references' exports, earlier
   children), templates compile, and references name a loaded kind or carry the
   apiVersion of another one.

This module reads files but renders nothing; :mod:`eevee.engine.render` uses
the compiled :class:`RuleSet`.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path as FilePath
from typing import Any

import cerberus
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, SequenceNode

from eevee.engine.expressions import (
    SOURCE_KEYS,
    Condition,
    ExpressionError,
    Source,
    Template,
    compile_condition,
    condition_paths,
    source_paths,
)
from eevee.engine.kubeschema import KindSchemas, Unchecked, json_type
from eevee.engine.paths import Path, PathError, flatten, format_path, parse_path

# Roots a path may start with, and what they hold (see docs/rule-tables.md).
RESOURCE_ROOTS = ("metadata", "spec")
OPERATOR_SETTINGS = ("namespace", "apiUrl", "apiTokenSecretName", "apiTokenSecretKey", "backupImage")
CONDITION_FIELDS = ("status", "reason", "message")
# The checks a table's `probes` may ask the operator to run (eevee/probes.py runs them), with
# the inputs each needs. A result is a mapping: `ok` (true or false; unset while the first check
# runs), `reason`, `message`, and what the check found.
PROBE_CHECKS: dict[str, tuple[str, ...]] = {
    "s3.listObjects": ("endpoint", "bucket", "accessKeyId", "secretAccessKey"),
    "s3.latestBackup": ("endpoint", "bucket", "accessKeyId", "secretAccessKey", "prefix"),
}
METADATA_FIELDS = ("name", "namespace", "uid", "labels", "annotations", "generation")

_CONDITION = {"type": "dict", "minlength": 1, "maxlength": 1}
_SOURCE_FIELDS: dict[str, Any] = {
    "fromFieldPath": {"type": ["string", "list"], "schema": {"type": "string"}},
    "value": {"nullable": False},
    "format": {},
    "generate": {"type": "string", "allowed": ["token"]},
    "bytes": {"type": "integer", "min": 16, "max": 256, "dependencies": "generate"},
    "default": {"nullable": False},
    "transforms": {"type": "list", "schema": {"type": ["string", "dict"]}},
    "when": _CONDITION,
}
_PATCH = {
    "type": "dict",
    "schema": {
        "toFieldPath": {"type": "string", "required": True, "empty": False},
        "createOnly": {"type": "boolean"},
        **_SOURCE_FIELDS,
    },
}
_VALUE = {"type": "dict", "schema": dict(_SOURCE_FIELDS)}
_CASE = {
    "type": "dict",
    "schema": {
        "when": {**_CONDITION, "required": True},
        "status": {"type": "string", "allowed": ["True", "False", "Unknown"], "required": True},
        "reason": {"type": "string", "required": True, "regex": r"^[A-Z][A-Za-z0-9]*$"},
        "message": {"type": "string", "required": True},
    },
}
_LABELS = {"type": "dict", "keysrules": {"type": "string"}, "valuesrules": {"type": "string"}}

TABLE_SCHEMA: dict[str, Any] = {
    "resource": {
        "type": "dict",
        "required": True,
        "schema": {
            "apiVersion": {"type": "string", "required": True, "regex": r"^[a-z0-9.-]+/v[0-9a-z]+$"},
            "kind": {"type": "string", "required": True, "regex": r"^[A-Z][A-Za-z0-9]*$"},
            "plural": {"type": "string", "required": True, "regex": r"^[a-z0-9]+$"},
        },
    },
    "schema": {"type": "dict", "required": True},
    "checks": {
        "type": "list",
        "schema": {
            "type": "dict",
            "schema": {
                "field": {"type": "string", "required": True},
                "rule": {**_CONDITION, "required": True},
                "message": {"type": "string", "required": True, "empty": False},
            },
        },
    },
    "values": {
        "type": "dict",
        "keysrules": {"type": "string", "regex": r"^[A-Za-z][A-Za-z0-9]*$"},
        "valuesrules": _VALUE,
    },
    "exports": {"type": "list", "schema": {"type": "string"}},
    "references": {
        "type": "dict",
        "keysrules": {"type": "string", "regex": r"^[A-Za-z][A-Za-z0-9]*$"},
        "valuesrules": {
            "type": "dict",
            "schema": {
                "kind": {"type": "string", "required": True, "regex": r"^[A-Z][A-Za-z0-9]*$"},
                "apiVersion": {"type": "string", "regex": r"^([a-z0-9.-]+/)?v[0-9a-z]+$"},
                "fromFieldPath": {"type": ["string", "list"], "schema": {"type": "string"}},
                "format": {"type": "string"},
                "when": _CONDITION,
                "optional": {"type": "boolean"},
            },
        },
    },
    "probes": {
        "type": "dict",
        "keysrules": {"type": "string", "regex": r"^[A-Za-z][A-Za-z0-9]*$"},
        "valuesrules": {
            "type": "dict",
            "schema": {
                "check": {"type": "string", "required": True, "allowed": list(PROBE_CHECKS)},
                "every": {"type": "integer", "min": 10, "max": 86400},
                "when": _CONDITION,
                "inputs": {
                    "type": "dict",
                    "required": True,
                    "keysrules": {"type": "string"},
                    "valuesrules": {"type": "dict"},
                },
            },
        },
    },
    "labels": _LABELS,
    "children": {
        "type": "list",
        "required": True,
        "schema": {
            "type": "dict",
            "schema": {
                "id": {"type": "string", "required": True, "regex": r"^[a-z][a-zA-Z0-9]*$"},
                "apiVersion": {"type": "string", "required": True, "empty": False},
                "kind": {"type": "string", "required": True, "regex": r"^[A-Z][A-Za-z0-9]*$"},
                "name": {"type": "string", "required": True, "empty": False},
                "when": _CONDITION,
                "owned": {"type": "boolean"},
                "prune": {"type": "boolean"},
                "labels": _LABELS,
                "adopt": {"type": "string", "allowed": ["always", "owned"]},
                "adoptFrom": {"type": "list", "schema": {"type": "string"}},
                "once": {"type": "boolean"},
                "createOnly": {"type": "boolean"},
                "createIf": _CONDITION,
                "after": {"type": "list", "schema": {"type": "string"}},
                "immutable": {"type": "list", "schema": {"type": "string"}},
                "onImmutableChange": {"type": "string", "allowed": ["recreate", "refuse"]},
                "base": {"type": "dict"},
                "patches": {"type": "list", "schema": _PATCH},
            },
        },
    },
    "status": {
        "type": "dict",
        "schema": {
            "waitFor": {"type": "list", "schema": {"type": "string"}},
            "overrides": {"type": "list", "schema": _CASE},
            "conditions": {
                "type": "list",
                "schema": {
                    "type": "dict",
                    "schema": {
                        "type": {"type": "string", "required": True, "regex": r"^[A-Z][A-Za-z0-9]*$"},
                        "when": _CONDITION,
                        "cases": {"type": "list", "required": True, "minlength": 1, "schema": _CASE},
                    },
                },
            },
            "patches": {"type": "list", "schema": _PATCH},
        },
    },
    # Annotations written onto a referenced object once a condition holds of the status being
    # written (a restore that succeeded marks the module's claim).
    "marks": {
        "type": "list",
        "schema": {
            "type": "dict",
            "schema": {
                "reference": {"type": "string", "required": True},
                "when": {**_CONDITION, "required": True},
                "annotations": {**_LABELS, "required": True, "empty": False},
            },
        },
    },
    # The Pods of a child (a Deployment): watched, and what the speaking one says goes into the
    # resource's Ready condition and the HTTP API.
    "pods": {"type": "dict", "schema": {"of": {"type": "string", "required": True}}},
    "metrics": {
        "type": "list",
        "schema": {
            "type": "dict",
            "schema": {
                "name": {"type": "string", "required": True, "regex": r"^eevee_operator_[a-z0-9_]+$"},
                "help": {"type": "string", "required": True, "empty": False},
                **_SOURCE_FIELDS,
            },
        },
    },
}


# Gauges the operator exports for every resource, whatever its table (eevee.engine.status).
# Fields of a live child the engine itself reads (eevee.engine.status.child_state: a workload's desired replicas).
ENGINE_READS: tuple[Path, ...] = (("spec", "replicas"),)
RESERVED_METRICS = ("eevee_operator_resource_ready", "eevee_operator_resource_reconcile_failing")


class TableError(ValueError):
    """A refused rule table: every problem as (file, rule, reason)."""

    def __init__(self, problems: list[tuple[str, str, str]]) -> None:
        self.problems = problems
        super().__init__("\n".join(f"{f}: {rule}: {reason}" for f, rule, reason in problems))


# --- compiled tables -----------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledPatch:
    to_path: Path | None  # None when the target path is a template
    to_template: Template | None
    source: Source
    create_only: bool
    label: str

    def target(self, scope: Mapping[str, Any]) -> Path | None:
        if self.to_path is not None:
            return self.to_path
        assert self.to_template is not None
        rendered = self.to_template.render(scope)
        return parse_path(rendered) if isinstance(rendered, str) else None


@dataclass(frozen=True)
class ChildRule:
    id: str
    api_version: str
    kind: str
    name: Template
    when: Condition | None
    owned: bool
    prune: bool
    labels: tuple[tuple[str, Template], ...]
    base: Mapping[str, Any]
    patches: tuple[CompiledPatch, ...]
    adopt: str = "always"  # "owned": take over an existing object only if an operator made it for us
    adopt_from: tuple[str, ...] = ()  # references whose objects may control an existing child we take over
    once: bool = False  # made at most once per resource (recorded in status.childrenMade): a one-shot Job
    create_only: bool = False  # all but metadata written at creation only (a Job's pod template cannot change)
    after: tuple[str, ...] = ()  # made only once these children (if rendered) are complete
    create_if: Condition | None = None  # made only when this holds of the live children (then kept)
    immutable: tuple[Path, ...] = ()  # fields the API server refuses to change
    recreate: bool = False  # an immutable field that must change: delete and create again
    when_text: str = ""  # the condition as written: two children under the same one both render


@dataclass(frozen=True)
class Check:
    field: str
    rule: Condition
    message: str
    stage: str = "static"  # "static": spec and values; "refs": also referenced objects; "live": also live children


@dataclass(frozen=True)
class Reference:
    """Another object this resource points at: a custom resource with a table (its exports
    are readable) or any other object (the whole object is readable)."""

    name: str
    kind: str
    api_version: str | None
    source: Source
    field: str  # the resource's field that names it, for messages
    optional: bool = False  # a missing (or invalid) object leaves refs.<name> unset instead of failing


@dataclass(frozen=True)
class SecretInput:
    """A probe input read from a Secret the table references: ``{fromSecret: refs.x, key: values.k}``,
    the value under that key, decoded. It goes to the check only, never into a rendering."""

    secret: Path
    key: Path


@dataclass(frozen=True)
class ProbeRule:
    """A check with I/O the operator runs for a resource (an S3 bucket answers with these
    credentials), its result readable as ``probes.<name>.<field>``."""

    name: str
    check: str
    every: int
    when: Condition | None
    inputs: tuple[tuple[str, Source | SecretInput], ...]


@dataclass(frozen=True)
class StatusOverride:
    """One case of a condition: when ``when`` holds, the condition is ``status``/``reason`` with
    ``message`` (a template: ``{path}`` placeholders, an unset one shown as ``?``)."""

    when: Condition
    status: str
    reason: str
    message: Template


@dataclass(frozen=True)
class ExtraCondition:
    """A condition besides Ready (Bootstrapped, BackupScheduled): present while ``when`` holds,
    its value the first of ``cases`` that holds."""

    type: str
    when: Condition | None
    cases: tuple[StatusOverride, ...]


@dataclass(frozen=True)
class Mark:
    """Annotations the operator writes onto a referenced object when ``when`` holds."""

    reference: str
    when: Condition
    annotations: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class MetricRule:
    name: str
    help: str
    source: Source


@dataclass(frozen=True)
class Table:
    """One compiled rule table: everything the engine knows about one custom-resource kind."""

    file: str
    api_version: str
    kind: str
    plural: str
    spec_validator: cerberus.Validator
    checks: tuple[Check, ...]
    values: tuple[tuple[str, Source], ...]
    exports: tuple[str, ...]
    references: tuple[Reference, ...]
    labels: tuple[tuple[str, Template], ...]
    children: tuple[ChildRule, ...]
    wait_for: tuple[str, ...]
    overrides: tuple[StatusOverride, ...]
    status_patches: tuple[CompiledPatch, ...]
    conditions: tuple[ExtraCondition, ...] = ()
    probes: tuple[ProbeRule, ...] = ()
    status_reads: tuple[Path, ...] = ()  # the resource's own status fields some rule reads (status.<field>)
    live_reads: tuple[Path, ...] = ()  # (child id, *field) of every live.<child>.<field> a rule reads
    ref_uses: tuple[tuple[str, Path], ...] = ()
    metrics: tuple[MetricRule, ...] = ()
    notes: tuple[str, ...] = ()
    pods_of: str | None = None  # the child whose Pods speak for the resource (pods.of)
    marks: tuple[Mark, ...] = ()
    validator_lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    @property
    def group(self) -> str:
        return self.api_version.split("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.split("/")[1]


@dataclass(frozen=True)
class RuleSet:
    """Every loaded table, by kind; what the renderer and the reconciler work from."""

    tables: Mapping[str, Table]
    sources: tuple[str, ...] = field(default=())
    notes: tuple[str, ...] = field(default=())  # what could not be checked, and why

    def table(self, kind: str) -> Table:
        return self.tables[kind]

    def kind_order(self) -> dict[str, int]:
        """Kinds ranked so that a referenced kind comes before the kinds that reference it
        (IpcConfigs before BotModules): a pass then creates what others wait for first."""
        rank: dict[str, int] = {}

        def depth(kind: str, trail: tuple[str, ...] = ()) -> int:
            if kind not in rank:
                refs = [r.kind for r in self.tables[kind].references if r.kind in self.tables and r.kind not in trail]
                rank[kind] = 1 + max((depth(r, (*trail, kind)) for r in refs), default=-1)
            return rank[kind]

        for kind in self.tables:
            depth(kind)
        return rank

    def child_kinds(self) -> list[tuple[str, str]]:
        """Every (apiVersion, kind) any table renders, in a stable order."""
        seen: dict[tuple[str, str], None] = {}
        for table in self.tables.values():
            for child in table.children:
                seen[(child.api_version, child.kind)] = None
        return list(seen)

    def watches_pods(self) -> bool:
        """Whether a table reads the Pods of a child (then Pods and ReplicaSets are cached)."""
        return any(table.pods_of for table in self.tables.values())

    def cached_fields(self) -> dict[str, tuple[Path, ...] | None]:
        """What the cache keeps of each child kind besides its metadata and status (see
        docs/rule-tables.md, "What the cache keeps"): the fields some rule reads through
        ``live.<child>``, the immutable ones, and those the engine reads itself (a workload's
        ``spec.replicas``), each cut at its first list selector; the managed fields the differ
        compares are kept as a digest. None: the kind is kept whole, as a child some rule writes
        once (createOnly: the differ checks what is missing) or a kind a table references."""
        kept: dict[str, tuple[Path, ...] | None] = {}
        whole = {ref.kind for table in self.tables.values() for ref in table.references}
        for table in self.tables.values():
            reads = {child_id: [] for child_id in (c.id for c in table.children)}
            for child_id, *field_path in table.live_reads:
                if field_path:  # live.<child> alone asks whether it exists
                    reads.setdefault(child_id, []).append(tuple(field_path))
            for child in table.children:
                once = child.create_only or any(patch.create_only for patch in child.patches)
                if once or child.kind in whole or kept.get(child.kind, ()) is None:
                    kept[child.kind] = None
                    continue
                paths = set(kept.get(child.kind) or ()) | set(ENGINE_READS)
                for path in [*reads[child.id], *child.immutable]:
                    cut = tuple(itertools.takewhile(lambda segment: isinstance(segment, str), path))
                    if not cut or cut[0] in ("apiVersion", "kind", "metadata", "status"):
                        continue  # kept whole already
                    paths.add(cut)
                kept[child.kind] = tuple(sorted(paths))
        return kept

    def referenced_kinds(self) -> list[tuple[str, str]]:
        """Every (apiVersion, kind) a table references that has no table of its own (a Secret):
        the operator keeps these in its cache too, whole, as it cannot select them by label."""
        seen: dict[tuple[str, str], None] = {}
        for table in self.tables.values():
            for ref in table.references:
                if ref.kind not in self.tables and ref.api_version:
                    seen[(ref.api_version, ref.kind)] = None
        return list(seen)


# --- loading -------------------------------------------------------------------------------


def _yaml() -> YAML:
    yaml = YAML(typ="safe", pure=True)
    return yaml


def read_table_file(path: str | os.PathLike[str]) -> Any:
    """Parse one table file; raise TableError with the YAML problem and its line."""
    return read_table(path)[0]


def read_table(path: str | os.PathLike[str]) -> tuple[Any, Any]:
    """One table file as (document, node tree); the nodes know the lines of what errors name."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as handle:
            text = handle.read()
        return _yaml().load(text), _yaml().compose(text)
    except YAMLError as error:
        # Where the broken construct starts (an unclosed quote), not where the parser gave up.
        mark = getattr(error, "context_mark", None) or getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "document"
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        context = getattr(error, "context", None)
        end = getattr(error, "problem_mark", None)
        if context and end is not None and end is not mark:
            problem = f"{context}: {problem} (line {end.line + 1})"
        raise TableError([(name, where, f"YAML syntax error: {problem}")]) from None
    except OSError as error:
        raise TableError([(name, "file", f"cannot read: {error.strerror}")]) from None


def _node_id(node: Any, field: str = "id") -> Any:
    if not isinstance(node, MappingNode):
        return None
    return next((getattr(v, "value", None) for k, v in node.value if getattr(k, "value", None) == field), None)


def line_of(node: Any, rule: str) -> int | None:
    """The line (1-based) of what a problem's rule names (``children[deployment].patches[3]``),
    as deep as the tree goes; None when nothing of it is found."""
    line = None
    for key, bracket in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)|\[([^\]]+)\]", rule.split(" (", 1)[0]):
        token = key or bracket
        found = None
        if isinstance(node, MappingNode):
            found = next((v for k, v in node.value if getattr(k, "value", None) == token), None)
        elif isinstance(node, SequenceNode):
            if token.isdigit() and int(token) < len(node.value):
                found = node.value[int(token)]
            else:  # children[deployment]: the item whose id is that; containers[name=nats]: whose name
                field, _, wanted = token.rpartition("=") if "=" in token else ("id", "", token)
                found = next((item for item in node.value if _node_id(item, field) == wanted), None)
        if found is None:
            break
        node = found
        line = node.start_mark.line + 1
    return line


def table_files(directory: str | os.PathLike[str]) -> list[FilePath]:
    folder = FilePath(directory)
    if not folder.is_dir():
        raise TableError([(str(folder), "directory", "no such rules directory")])
    files = sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and not p.name.startswith("."))
    if not files:
        raise TableError([(str(folder), "directory", "holds no *.yaml rule tables")])
    return files


def load_rules(directory: str | os.PathLike[str], *, schemas: KindSchemas | None = None) -> RuleSet:
    """Load and check every ``*.yaml`` table in ``directory``; raise TableError on any problem,
    each as ``file:line``, rule, reason. With ``schemas``, every child is checked against the
    Kubernetes schema of its kind."""
    documents: list[tuple[str, Any]] = []
    nodes: dict[str, Any] = {}
    problems: list[tuple[str, str, str]] = []
    for file in table_files(directory):
        try:
            document, nodes[str(file)] = read_table(file)
            documents.append((str(file), document))
        except TableError as error:
            problems.extend(error.problems)
    if problems:
        raise TableError(problems)

    def locate(file: str, rule: str) -> str:
        line = line_of(nodes.get(file), rule)
        return f"{file}:{line}" if line else file

    try:
        return compile_rules(documents, schemas=schemas, locate=locate)
    except TableError as error:
        located = []
        for file, rule, reason in error.problems:
            line = line_of(nodes.get(file), rule)
            located.append((f"{file}:{line}" if line else file, rule, reason))
        raise TableError(located) from None


def compile_rules(
    documents: Iterable[tuple[str, Any]],
    *,
    schemas: KindSchemas | None = None,
    locate: Callable[[str, str], str] | None = None,
) -> RuleSet:
    """Compile already-parsed table documents (``(file name, document)`` pairs); ``locate``
    turns a file and a rule into ``file:line`` for messages that point at another place."""
    problems: list[tuple[str, str, str]] = []
    tables: dict[str, Table] = {}
    files: list[str] = []
    for file, document in documents:
        files.append(file)
        try:
            table = _compile_table(file, document, schemas)
        except TableError as error:
            problems.extend(error.problems)
            continue
        if table.kind in tables:
            problems.append((file, "resource.kind", f"{table.kind} already has a table in {tables[table.kind].file}"))
            continue
        tables[table.kind] = table
    if not problems:
        problems.extend(_check_references(tables))
        problems.extend(_check_collisions(tables, locate or (lambda file, rule: file)))
    if problems:
        raise TableError(problems)
    notes = tuple(note for table in tables.values() for note in table.notes)
    return RuleSet(tables=tables, sources=tuple(files), notes=notes)


def _join(prefix: str, key: Any) -> str:
    if not prefix:
        return str(key)
    return f"{prefix}[{key}]" if isinstance(key, int) else f"{prefix}.{key}"


def flatten_cerberus_errors(errors: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Cerberus' nested error tree as (``a.b[2].c``, reason) pairs."""
    out: list[tuple[str, str]] = []
    for key, items in errors.items():
        name = _join(prefix, key)
        for item in items:
            if isinstance(item, dict):
                out.extend(flatten_cerberus_errors(item, name))
            else:
                out.append((name, str(item)))
    return out


def _child_ids(document: dict[str, Any], rule: str) -> str:
    """``children[3].x`` as ``children[deployment].x``: rules are named the same everywhere."""
    match = re.match(r"children\[(\d+)\]", rule)
    children = document.get("children")
    if match and isinstance(children, list) and int(match.group(1)) < len(children):
        child = children[int(match.group(1))]
        if isinstance(child, dict) and isinstance(child.get("id"), str):
            return f"children[{child['id']}]{rule[match.end() :]}"
    return rule


def _compile_table(file: str, document: Any, schemas: KindSchemas | None = None) -> Table:
    if not isinstance(document, dict):
        raise TableError([(file, "document", "a rule table is a YAML mapping")])
    validator = cerberus.Validator(TABLE_SCHEMA)
    if not validator.validate(document):
        errors = flatten_cerberus_errors(validator.errors)
        raise TableError([(file, _child_ids(document, rule), reason) for rule, reason in errors])

    compiler = _TableCompiler(file, document, schemas)
    return compiler.compile()


class _TableCompiler:
    """Compiles one validated document, collecting every problem before raising."""

    def __init__(self, file: str, document: dict[str, Any], schemas: KindSchemas | None = None) -> None:
        self.file = file
        self.doc = document
        self.schemas = schemas
        self.notes: list[str] = []
        self.problems: list[tuple[str, str, str]] = []
        self.value_names: list[str] = []
        self.reference_names: list[str] = []
        self.probe_names: list[str] = []
        self.status_reads: list[Path] = []
        self.live_reads: list[Path] = []
        self.child_ids: list[str] = []
        self.spec_schema: dict[str, Any] = document["schema"]
        self.deferred_ref_paths: list[tuple[str, Path]] = []

    def fail(self, rule: str, reason: str) -> None:
        self.problems.append((self.file, rule, reason))

    # Paths are checked against what exists at the point of use: values defined
    # above, children rendered earlier, the spec schema. A later value or child is
    # a forward reference (and the only way to write a cycle), so it is refused.
    def check_path(self, rule: str, path: Path, *, children: bool = False, live: bool = False) -> None:
        root = path[0]
        text = format_path(path)
        if root == "spec":
            if not _schema_has(self.spec_schema, path[1:]):
                self.fail(rule, f"path {text} does not exist in the table's spec schema")
        elif root == "metadata":
            if len(path) < 2 or path[1] not in METADATA_FIELDS:
                self.fail(rule, f"path {text}: metadata offers {', '.join(METADATA_FIELDS)}")
        elif root == "values":
            if len(path) != 2 or path[1] not in self.value_names:
                self.fail(rule, f"path {text} names no value defined above this rule")
        elif root == "refs":
            if len(path) < 3 or path[1] not in self.reference_names:
                self.fail(rule, f"path {text} names no reference defined above this rule (refs.<reference>.<field>)")
            else:
                self.deferred_ref_paths.append((rule, path))
        elif root == "status":
            # The resource's own status as last written: what a one-shot child reads to know it
            # has run (the render cache then follows the status too).
            if path not in self.status_reads:
                self.status_reads.append(path)
        elif root == "probes":
            if len(path) != 3 or path[1] not in self.probe_names:
                self.fail(rule, f"path {text} names no probe defined above this rule (probes.<probe>.<field>)")
        elif root == "labels":
            if len(path) > 2:
                self.fail(rule, f"path {text}: labels.<key> or labels")
        elif root == "operator":
            if len(path) != 2 or path[1] not in OPERATOR_SETTINGS:
                self.fail(rule, f"path {text}: operator offers {', '.join(OPERATOR_SETTINGS)}")
        elif root == "children" and children:
            if len(path) < 2 or path[1] not in self.child_ids:
                self.fail(rule, f"path {text} names no child rendered before this one")
        elif root == "live" and live:
            ids = [c.get("id") for c in self.doc.get("children", []) if isinstance(c, dict)]
            if len(path) < 2 or path[1] not in ids:
                self.fail(rule, f"path {text} names no child of this table")
            elif path[1:] not in self.live_reads:
                self.live_reads.append(path[1:])
        else:
            allowed = "metadata, spec, status, values, refs, probes, labels, operator"
            allowed += ", children" if children else ""
            allowed += ", live" if live else ""
            self.fail(rule, f"path {text} starts with an unknown root {root!r} (known: {allowed})")

    def source(self, rule: str, spec: dict[str, Any], *, children: bool = False, live: bool = False) -> Source | None:
        found = [key for key in SOURCE_KEYS if key in spec]
        if len(found) != 1:
            self.fail(rule, f"needs exactly one of {', '.join(SOURCE_KEYS)} (found {', '.join(found) or 'none'})")
            return None
        try:
            compiled = Source(spec, label=rule)
            for path in source_paths(spec):
                self.check_path(rule, path, children=children, live=live)
        except (ExpressionError, PathError) as error:
            self.fail(rule, str(error))
            return None
        return compiled

    def condition(self, rule: str, spec: Any, **kw: bool) -> Condition | None:
        try:
            compiled = compile_condition(spec)
            for path in condition_paths(spec):
                self.check_path(rule, path, **kw)
        except (ExpressionError, PathError) as error:
            self.fail(rule, str(error))
            return None
        return compiled

    def template(self, rule: str, text: str, **kw: bool) -> Template | None:
        try:
            compiled = Template(text)
            for path in compiled.paths:
                self.check_path(rule, path, **kw)
        except (ExpressionError, PathError) as error:
            self.fail(rule, str(error))
            return None
        return compiled

    def patch(self, rule: str, spec: dict[str, Any], **kw: bool) -> CompiledPatch | None:
        rule = f"{rule} (toFieldPath {spec['toFieldPath']})"
        target = spec["toFieldPath"]
        to_path: Path | None = None
        to_template: Template | None = None
        if "{" in target:
            to_template = self.template(rule, target, **kw)
        else:
            try:
                to_path = parse_path(target)
            except PathError as error:
                self.fail(rule, str(error))
        source = self.source(rule, spec, **kw)
        if source is None or (to_path is None and to_template is None):
            return None
        if source.generated and not spec.get("createOnly"):
            self.fail(rule, "a generated value must be createOnly: true, or it would change on every pass")
        return CompiledPatch(to_path, to_template, source, bool(spec.get("createOnly")), rule)

    def check_child_schema(self, rule: str, child: Mapping[str, Any]) -> None:
        """The child's kind exists, and its base and every patch name fields of that kind,
        with values of the right type (as far as a table tells the type)."""
        assert self.schemas is not None
        api_version, kind = child["apiVersion"], child["kind"]
        try:
            root = self.schemas.root(api_version, kind)
        except KeyError as error:
            self.fail(f"{rule}.kind", str(error.args[0]))
            return
        if isinstance(root, Unchecked):
            self.notes.append(f"{self.file}: {rule}: {root.why}")
            return
        for path, value in flatten(child.get("base") or {}):
            why = self.schemas.check(api_version, kind, path, json_type(value))
            if why is not None:
                self.fail(f"{rule}.base.{format_path(path)}", why)
        for number, patch in enumerate(child.get("patches") or []):
            target = re.sub(r"\{[^{}]*\}", "x", patch["toFieldPath"])  # a templated key: any key
            try:
                path = parse_path(target)
            except PathError:
                continue  # reported by the patch itself
            why = self.schemas.check(api_version, kind, path, self.value_type(patch))
            if why is not None:
                self.fail(f"{rule}.patches[{number}] (toFieldPath {patch['toFieldPath']})", why)
        for path in child.get("immutable") or []:
            try:
                why = self.schemas.check(api_version, kind, parse_path(path))
            except PathError:
                continue
            if why is not None:
                self.fail(f"{rule}.immutable", why)

    def check_status_field(self, rule: str, patch: Mapping[str, Any]) -> None:
        """A status field the resource's CRD does not declare would be pruned by the API server."""
        if self.schemas is None:
            return
        resource = self.doc["resource"]
        try:
            path = ("status", *parse_path(patch["toFieldPath"]))
            why = self.schemas.check(resource["apiVersion"], resource["kind"], path, self.value_type(patch))
        except (KeyError, PathError):
            return  # a table for a kind with no CRD known: nothing to check against
        if why is not None:
            self.fail(rule, f"{why} (the CRD of {resource['kind']} would prune it)")

    def value_type(self, patch: Mapping[str, Any]) -> str | None:
        """The JSON type a patch writes, when the table says it (None: not known here)."""
        transforms = patch.get("transforms") or []
        last = transforms[-1] if transforms else None
        if last in ("string", "base64", "sha256", "yamlMapping"):
            return "string"
        if last == "integer":
            return "integer"
        if last is not None:
            return None  # quantity, map: whatever comes in
        if "value" in patch:
            return json_type(patch["value"])
        if "format" in patch:
            return json_type(patch["format"])
        if "generate" in patch:
            return "string"
        source = patch.get("fromFieldPath")
        if isinstance(source, str) and source.startswith("spec."):
            rules = _schema_rules(self.spec_schema, parse_path(source)[1:])
            declared = rules.get("type") if isinstance(rules, Mapping) else None
            return _CERBERUS_TYPES.get(declared) if isinstance(declared, str) else None
        return None

    def cases(self, rule: str, specs: list[Mapping[str, Any]]) -> tuple[StatusOverride, ...]:
        out = []
        for index, case in enumerate(specs):
            when = self.condition(f"{rule}[{index}].when", case["when"], live=True)
            message = self.template(f"{rule}[{index}].message", case["message"], live=True)
            if when is not None and message is not None:
                out.append(StatusOverride(when, case["status"], case["reason"], message))
        return tuple(out)

    def labels(self, rule: str, spec: Mapping[str, str]) -> tuple[tuple[str, Template], ...]:
        out = []
        for key, text in spec.items():
            compiled = self.template(f"{rule}[{key}]", text)
            if compiled is not None:
                out.append((key, compiled))
        return tuple(out)

    def compile(self) -> Table:
        doc = self.doc
        resource = doc["resource"]
        spec_validator = cerberus.Validator(self.spec_schema)
        try:
            spec_validator.validate({})
        except cerberus.SchemaError as error:
            self.fail("schema", f"not a valid cerberus schema: {error}")

        values = []
        for name, spec in doc.get("values", {}).items():
            compiled = self.source(f"values.{name}", spec)
            if compiled is not None and compiled.generated:
                self.fail(f"values.{name}", "generate is only allowed in a child's createOnly patch")
            elif compiled is not None:
                values.append((name, compiled))
            self.value_names.append(name)

        references = []
        for name, ref in doc.get("references", {}).items():
            rule = f"references.{name}"
            if ("fromFieldPath" in ref) == ("format" in ref):
                self.fail(rule, "needs exactly one of fromFieldPath, format (the name of the object)")
            else:
                source = self.source(rule, {k: v for k, v in ref.items() if k in ("fromFieldPath", "format", "when")})
                if source is not None:
                    names = ref.get("fromFieldPath") or ref["format"]
                    field = names[0] if isinstance(names, list) else names
                    references.append(
                        Reference(name, ref["kind"], ref.get("apiVersion"), source, field, bool(ref.get("optional")))
                    )
            self.reference_names.append(name)

        probes = []
        for name, probe in doc.get("probes", {}).items():
            rule = f"probes.{name}"
            missing = [i for i in PROBE_CHECKS[probe["check"]] if i not in probe["inputs"]]
            if missing:
                self.fail(rule, f"{probe['check']} needs the inputs {', '.join(missing)}")
            inputs: list[tuple[str, Source | SecretInput]] = []
            for input_name, spec in probe["inputs"].items():
                where = f"{rule}.inputs.{input_name}"
                if "fromSecret" in spec:
                    try:
                        secret, key = parse_path(spec["fromSecret"]), parse_path(spec.get("key", ""))
                    except PathError as error:
                        self.fail(where, f"fromSecret and key must be paths: {error}")
                        continue
                    if secret[0] != "refs" or len(secret) != 2:
                        self.fail(where, "fromSecret names a reference to a Secret: refs.<reference>")
                    self.check_path(where, (*secret, "data"))
                    self.check_path(where, key)
                    inputs.append((input_name, SecretInput(secret, key)))
                else:
                    source = self.source(where, spec)
                    if source is not None:
                        inputs.append((input_name, source))
            when = self.condition(f"{rule}.when", probe["when"]) if "when" in probe else None
            probes.append(ProbeRule(name, probe["check"], probe.get("every", 300), when, tuple(inputs)))
            self.probe_names.append(name)

        checks = []
        for index, check in enumerate(doc.get("checks", [])):
            rule = f"checks[{index}]"
            compiled = self.condition(rule, check["rule"], live=True)
            try:
                self.check_path(rule, parse_path(check["field"]))
            except PathError as error:
                self.fail(rule, str(error))
            if compiled is not None:
                roots = {path[0] for path in condition_paths(check["rule"])}
                stage = "live" if "live" in roots else "refs" if roots & {"refs", "probes"} else "static"
                checks.append(Check(check["field"], compiled, check["message"], stage))

        exports = tuple(doc.get("exports", []))
        for name in exports:
            if name not in self.value_names:
                self.fail("exports", f"{name} is not a value of this table")

        table_labels = self.labels("labels", doc.get("labels", {}))

        children = []
        for index, child in enumerate(doc["children"]):
            rule = f"children[{child['id']}]"
            if child["id"] in [c.get("id") for c in doc["children"][:index]]:
                # Named by position, so that the problem points at the duplicate, not the first;
                # the duplicate is not compiled further: what refers to the id means the first.
                duplicate = child["id"]
                self.fail(
                    f"children[{index}] (id {duplicate})", f"the id {duplicate} is already used by an earlier child"
                )
                continue
            name = self.template(f"{rule}.name", child["name"])
            when = self.condition(f"{rule}.when", child["when"], children=True) if "when" in child else None
            patches = []
            for number, patch in enumerate(child.get("patches", [])):
                compiled = self.patch(f"{rule}.patches[{number}]", patch, children=True)
                if compiled is not None:
                    patches.append(compiled)
            labels = self.labels(f"{rule}.labels", child.get("labels", {}))
            owned = child.get("owned", True)
            immutable = []
            for text in child.get("immutable", []):
                try:
                    immutable.append(parse_path(text))
                except PathError as error:
                    self.fail(f"{rule}.immutable", str(error))
            for earlier in child.get("after", []):
                if earlier not in self.child_ids:
                    self.fail(f"{rule}.after", f"{earlier} is not a child listed before this one")
            for ref_name in child.get("adoptFrom", []):
                if ref_name not in self.reference_names:
                    self.fail(f"{rule}.adoptFrom", f"{ref_name} is not a reference of this table")
            if "onImmutableChange" in child and not immutable:
                self.fail(f"{rule}.onImmutableChange", "names no immutable fields (immutable: [...])")
            if self.schemas is not None:
                self.check_child_schema(rule, child)
            if name is not None:
                children.append(
                    ChildRule(
                        id=child["id"],
                        api_version=child["apiVersion"],
                        kind=child["kind"],
                        name=name,
                        when=when,
                        owned=owned,
                        prune=child.get("prune", owned),
                        labels=labels,
                        base=child.get("base", {}),
                        patches=tuple(patches),
                        adopt=child.get("adopt", "always"),
                        adopt_from=tuple(child.get("adoptFrom", [])),
                        once=bool(child.get("once")),
                        create_only=bool(child.get("createOnly")),
                        after=tuple(child.get("after", [])),
                        create_if=self.condition(f"{rule}.createIf", child["createIf"], children=True, live=True)
                        if "createIf" in child
                        else None,
                        immutable=tuple(immutable),
                        recreate=child.get("onImmutableChange") == "recreate",
                        when_text=json.dumps(child.get("when"), sort_keys=True),
                    )
                )
            self.child_ids.append(child["id"])

        status = doc.get("status", {})
        wait_for = tuple(status.get("waitFor", []))
        for child_id in wait_for:
            if child_id not in self.child_ids:
                self.fail("status.waitFor", f"{child_id} is not a child of this table")
        overrides = self.cases("status.overrides", status.get("overrides", []))
        conditions = []
        for index, extra in enumerate(status.get("conditions", [])):
            rule = f"status.conditions[{index}] ({extra['type']})"
            if extra["type"] == "Ready" or extra["type"] in [c.type for c in conditions]:
                self.fail(rule, f"condition type {extra['type']} is given twice (Ready is waitFor's and overrides')")
            when = self.condition(f"{rule}.when", extra["when"], live=True) if "when" in extra else None
            conditions.append(ExtraCondition(extra["type"], when, self.cases(f"{rule}.cases", extra["cases"])))
        status_patches = []
        for index, patch in enumerate(status.get("patches", [])):
            compiled = self.patch(f"status.patches[{index}]", patch, live=True)
            if compiled is not None:
                status_patches.append(compiled)
                self.check_status_field(f"status.patches[{index}] (toFieldPath {patch['toFieldPath']})", patch)

        metrics = []
        for index, metric in enumerate(doc.get("metrics", [])):
            if metric["name"] in RESERVED_METRICS:
                self.fail(f"metrics[{index}] ({metric['name']})", "is a metric every resource has already; rename it")
                continue
            compiled = self.source(f"metrics[{index}] ({metric['name']})", metric, live=True)
            if compiled is not None:
                metrics.append(MetricRule(metric["name"], metric["help"], compiled))

        marks = []
        for index, mark in enumerate(doc.get("marks", [])):
            rule = f"marks[{index}]"
            target = next((r for r in references if r.name == mark["reference"]), None)
            if target is None or target.api_version is None:
                why = "is not a reference of this table to an object (one with apiVersion)"
                self.fail(f"{rule}.reference", f"{mark['reference']} {why}")
                continue
            when = self.condition(f"{rule}.when", mark["when"], live=True)
            if when is not None:
                marks.append(Mark(target.name, when, tuple(sorted(mark["annotations"].items()))))

        pods_of = (doc.get("pods") or {}).get("of")
        if pods_of is not None:
            made = next((c for c in children if c.id == pods_of), None)
            if made is None or made.kind not in ("Deployment", "StatefulSet", "DaemonSet"):
                self.fail("pods.of", f"{pods_of} is not a child of this table that runs Pods (a Deployment)")

        if self.problems:
            raise TableError(self.problems)
        return Table(
            file=self.file,
            api_version=resource["apiVersion"],
            kind=resource["kind"],
            plural=resource["plural"],
            spec_validator=spec_validator,
            checks=tuple(checks),
            values=tuple(values),
            exports=exports,
            references=tuple(references),
            labels=table_labels,
            children=tuple(children),
            wait_for=wait_for,
            overrides=tuple(overrides),
            status_patches=tuple(status_patches),
            conditions=tuple(conditions),
            probes=tuple(probes),
            status_reads=tuple(self.status_reads),
            live_reads=tuple(self.live_reads),
            ref_uses=tuple(self.deferred_ref_paths),
            metrics=tuple(metrics),
            notes=tuple(self.notes),
            pods_of=pods_of,
            marks=tuple(marks),
        )


_CERBERUS_TYPES = {"string": "string", "integer": "integer", "boolean": "boolean", "dict": "object", "list": "array"}


def _schema_rules(schema: Mapping[str, Any], path: Path) -> Any:
    """The cerberus rules of the field at ``path`` (None when not declared that deep)."""
    rules: Any = None
    for segment in path:
        if not isinstance(schema, Mapping) or not isinstance(segment, str) or segment not in schema:
            return None
        rules = schema[segment]
        schema = rules.get("schema") if isinstance(rules, Mapping) else None
    return rules


def _schema_has(schema: Mapping[str, Any], path: Path) -> bool:
    """Whether a cerberus schema declares the field at ``path`` (open dicts hold anything)."""
    if not path:
        return True
    head, rest = path[0], path[1:]
    if not isinstance(head, str) or head not in schema:
        return False
    rules = schema[head]
    if not rest:
        return True
    inner = rules.get("schema") if isinstance(rules, Mapping) else None
    if inner is None or rules.get("type") == "list":
        return True  # an open mapping (e.g. a PVC spec checked by the CRD): anything below
    return _schema_has(inner, rest)


def _check_references(tables: Mapping[str, Table]) -> list[tuple[str, str, str]]:
    problems: list[tuple[str, str, str]] = []
    for table in tables.values():
        for ref in table.references:
            if ref.kind not in tables and ref.api_version is None:
                problems.append(
                    (
                        table.file,
                        f"references.{ref.name}",
                        f"no table is loaded for kind {ref.kind}; a reference to another kind needs its apiVersion",
                    )
                )
        by_name = {ref.name: ref for ref in table.references}
        for rule, path in table.ref_uses:
            ref = by_name.get(str(path[1]))
            target = tables.get(ref.kind) if ref is not None else None
            if target is None:
                continue
            if path[2] == "conditions":  # refs.<name>.conditions.<Type>.<status|reason|message>
                if len(path) != 5 or path[4] not in CONDITION_FIELDS:
                    problems.append(
                        (table.file, rule, f"path {format_path(path)}: use refs.<reference>.conditions.<Type>.<field>")
                    )
            elif len(path) != 3 or path[2] not in target.exports:
                problems.append(
                    (table.file, rule, f"path {format_path(path)}: {ref.kind} exports no value {path[2]!r}")
                )
    return problems


def _name_shape(rule: ChildRule) -> tuple[str, ...]:
    """A child's name with every placeholder blanked: two names of one shape differ only in
    values, which nothing stops from being equal (``eevee-{metadata.name}`` and ``eevee-{spec.x}``)."""
    return tuple("" if isinstance(part, tuple) else part for part in rule.name.parts)


def _check_collisions(tables: Mapping[str, Table], locate: Callable[[str, str], str]) -> list[tuple[str, str, str]]:
    """Refuse two children that surely make the same object: the same group and kind, names of
    the same shape, and (within one table) the same condition. Across tables, resources of two
    kinds may share a name, so conditions cannot keep them apart. What only may collide is
    refused per resource at render time (``Renderer``)."""
    problems = []
    seen: list[tuple[Table, ChildRule]] = []
    for table in tables.values():
        for rule in table.children:
            group = rule.api_version.rpartition("/")[0]
            for other_table, other in seen:
                same_object = (other.kind == rule.kind and other.api_version.rpartition("/")[0] == group
                               and _name_shape(other) == _name_shape(rule))
                if not same_object or (other_table is table and other.when_text != rule.when_text):
                    continue
                where = locate(other_table.file, f"children[{other.id}]")
                whose = "" if other_table is table else f" of the {other_table.kind} table"
                names = (f"both are named {rule.name.text!r}" if rule.name.text == other.name.text
                         else f"names {rule.name.text!r} and {other.name.text!r} differ only in their placeholders")
                when = " under the same condition" if other_table is table else ""
                problems.append((table.file, f"children[{rule.id}]",
                                 f"makes the same {rule.kind} as children[{other.id}]{whose} ({where}): {names}{when}"))
                break
            seen.append((table, rule))
    return problems
