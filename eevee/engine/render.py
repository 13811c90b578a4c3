"""Rendering: a custom resource and the rule tables in, the desired child objects out.

Pure: no I/O. Referenced resources come through a ``lookup`` callable, which the
reconciler answers from the lists it already holds and ``eevee-operator render``
answers from the file it was given. Random values (the NATS token) come from a
``generate`` callable so tests can pin them.

Each :class:`DesiredChild` carries, besides its manifest, the *managed leaves*:
every field path this rendering sets, in the keyed-path syntax of
:mod:`eevee.engine.paths`. The differ compares only those, and the sorted list
of their names is written to the child as the annotation
``eevee.bot/managed-fields`` so the next rendering knows what it stopped managing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from eevee.engine.expressions import UNSET, EvaluationError, Generator, lookup, random_token
from eevee.engine.paths import ListKey, Path, assign, encode_path_set
from eevee.engine.tables import ChildRule, RuleSet, Table, flatten_cerberus_errors

MANAGED_FIELDS = "eevee.bot/managed-fields"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "eevee-operator"
CHILD_LABEL = "eevee.bot/child"
_MANAGED_FIELDS_PATH: Path = ("metadata", "annotations", MANAGED_FIELDS)
_IDENTITY = {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")}

Lookup = Callable[[str, str, str], "Mapping[str, Any] | None"]


class SpecProblem(NamedTuple):
    field: str
    reason: str


class InvalidSpec(ValueError):
    """The resource cannot be rendered; ``problems`` name each field and why."""

    reason = "InvalidSpec"

    def __init__(self, problems: list[SpecProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.field}: {p.reason}" for p in problems))


class ReferenceNotFound(InvalidSpec):
    """A referenced resource (e.g. the BotModule's IpcConfig) does not exist (yet)."""

    reason = "ReferenceNotFound"


class DesiredChild(NamedTuple):
    id: str
    api_version: str
    kind: str
    namespace: str
    name: str
    body: dict[str, Any]
    leaves: tuple[tuple[Path, Any], ...]
    managed: str
    owned: bool
    prune: bool


class Rendering(NamedTuple):
    kind: str
    namespace: str
    name: str
    values: dict[str, Any]
    children: list[DesiredChild]


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON-shaped value, several times faster than copy.deepcopy."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


def list_key_field(field: str | ListKey | None) -> str:
    """Which field identifies the items of a list (Kubernetes' own merge keys)."""
    return "uid" if field == "ownerReferences" else "name"


def flatten(document: Any, prefix: Path = ()) -> list[tuple[Path, Any]]:
    """Every leaf of ``document``: lists of named objects are walked by key, other lists
    and empty mappings are single values."""
    leaves: list[tuple[Path, Any]] = []
    _flatten(document, prefix, leaves)
    return leaves


def _flatten(node: Any, prefix: Path, out: list[tuple[Path, Any]]) -> None:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            _flatten(value, (*prefix, key), out)
        return
    if isinstance(node, list) and node:
        key = list_key_field(prefix[-1] if prefix else None)
        if all(isinstance(item, dict) and isinstance(item.get(key), str) for item in node):
            for item in node:
                _flatten(item, (*prefix, ListKey(key, item[key])), out)
            return
    out.append((prefix, node))


def validate_resource(table: Table, resource: Mapping[str, Any]) -> None:
    """The table's spec schema and checks; raise InvalidSpec naming every bad field."""
    spec = resource.get("spec")
    problems: list[SpecProblem] = []
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise InvalidSpec([SpecProblem("spec", "must be a mapping")])
    with table.validator_lock:  # a cerberus Validator keeps state between calls
        validator = table.spec_validator
        if not validator.validate(spec, normalize=False):
            problems.extend(SpecProblem(f, r) for f, r in flatten_cerberus_errors(validator.errors, "spec"))
    if not problems:
        for check in table.checks:
            if not check.rule(resource):
                problems.append(SpecProblem(check.field, check.message))
    if problems:
        raise InvalidSpec(problems)


class RenderCache:
    """Renderings remembered by resource version, across passes.

    A rendering depends only on the resource, the resources it references, the
    tables and the operator settings. The last two are fixed for the life of a
    cache (a rule reload starts a new one); the first two are identified by their
    ``resourceVersion``. So a resource that did not change since the last pass is
    not validated or rendered again: a steady-state pass costs only the diffs.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, str], tuple[tuple[Any, ...], Rendering | InvalidSpec]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, str, str], version: tuple[Any, ...]) -> Rendering | InvalidSpec | None:
        entry = self._entries.get(key)
        if entry is not None and entry[0] == version:
            self.hits += 1
            return entry[1]
        self.misses += 1
        return None

    def put(self, key: tuple[str, str, str], version: tuple[Any, ...], result: Rendering | InvalidSpec) -> None:
        self._entries[key] = (version, result)

    def retain(self, keys: set[tuple[str, str, str]]) -> None:
        """Forget resources that no longer exist."""
        for key in [k for k in self._entries if k not in keys]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


class Renderer:
    """Renders resources of every kind in a RuleSet; one per pass (it memoises references)."""

    def __init__(
        self,
        rules: RuleSet,
        *,
        lookup: Lookup,
        operator: Mapping[str, Any] | None = None,
        generate: Generator = random_token,
        cache: RenderCache | None = None,
    ) -> None:
        self.rules = rules
        self.lookup = lookup
        self.operator = dict(operator or {})
        self.generate = generate
        self.cache = cache
        self._exports: dict[tuple[str, str, str], dict[str, Any]] = {}

    def render(self, resource: Mapping[str, Any]) -> Rendering:
        """Validate ``resource`` and render its children; raise InvalidSpec when it cannot be."""
        version = self._version(resource) if self.cache is not None else None
        if version is None:
            return self._render(resource)
        metadata = resource["metadata"]
        key = (resource["kind"], metadata.get("namespace", "default"), metadata["name"])
        cached = self.cache.get(key, version)  # type: ignore[union-attr]
        if cached is None:
            try:
                cached = self._render(resource)
            except InvalidSpec as error:
                cached = error
            self.cache.put(key, version, cached)  # type: ignore[union-attr]
        if isinstance(cached, InvalidSpec):
            raise cached
        return cached

    def _version(self, resource: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """What a rendering of ``resource`` depends on (None: not cacheable).

        The spec is covered by ``metadata.generation`` (status writes change the
        resourceVersion but not the generation, and must not cost a re-render);
        labels and annotations, which tables may read, are compared as they are.
        """
        table = self.rules.tables.get(resource["kind"])
        if table is None:
            return None
        own = _content_version(resource)
        if own is None:
            return None
        namespace = resource["metadata"].get("namespace", "default")
        versions: list[Any] = [own]
        for ref in table.references:
            name = lookup(resource, ref.from_path)
            target = None if name is UNSET else self.lookup(ref.kind, namespace, str(name))
            versions.append(None if target is None else _content_version(target) or "?")
        return tuple(versions)

    def _render(self, resource: Mapping[str, Any]) -> Rendering:
        table = self.rules.table(resource["kind"])
        scope = self._scope(table, resource)
        metadata = resource["metadata"]
        namespace = metadata.get("namespace", "default")
        children: list[DesiredChild] = []
        rendered: dict[str, Any] = {}
        scope["children"] = rendered
        for rule in table.children:
            if rule.when is not None and not rule.when(scope):
                continue
            child = self._render_child(table, rule, resource, scope, namespace)
            rendered[rule.id] = child.body
            children.append(child)
        return Rendering(table.kind, namespace, metadata["name"], scope["values"], children)

    def values(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        """The resource's named values (validating it first)."""
        table = self.rules.table(resource["kind"])
        return self._scope(table, resource)["values"]

    def _scope(self, table: Table, resource: Mapping[str, Any]) -> dict[str, Any]:
        validate_resource(table, resource)
        scope: dict[str, Any] = dict(resource)
        scope["operator"] = self.operator
        refs: dict[str, Any] = {}
        scope["refs"] = refs
        namespace = resource["metadata"].get("namespace", "default")
        for ref in table.references:
            name = lookup(scope, ref.from_path)
            if name is UNSET:
                continue
            refs[ref.name] = self._exports_of(ref.kind, namespace, str(name), field=ref.field)
        values: dict[str, Any] = {}
        scope["values"] = values
        try:
            for name, source in table.values:
                value = source.evaluate(scope, self.generate)
                if value is not UNSET:
                    values[name] = value
            scope["labels"] = {
                key: text for key, template in table.labels if (text := template.render(scope)) is not UNSET
            }
        except EvaluationError as error:
            raise InvalidSpec([SpecProblem(error.field, error.reason)]) from None
        return scope

    def _exports_of(self, kind: str, namespace: str, name: str, *, field: str) -> dict[str, Any]:
        key = (kind, namespace, name)
        if key in self._exports:
            return self._exports[key]
        target = self.lookup(kind, namespace, name)
        if target is None:
            raise ReferenceNotFound([SpecProblem(field, f"{kind} {namespace}/{name} does not exist")])
        try:
            values = self.values(target)
        except InvalidSpec as error:
            raise ReferenceNotFound([SpecProblem(field, f"{kind} {namespace}/{name} is invalid ({error})")]) from None
        exports = {k: values[k] for k in self.rules.table(kind).exports if k in values}
        self._exports[key] = exports
        return exports

    def _render_child(
        self,
        table: Table,
        rule: ChildRule,
        resource: Mapping[str, Any],
        scope: dict[str, Any],
        namespace: str,
    ) -> DesiredChild:
        name = rule.name.render(scope)
        if name is UNSET:
            raise InvalidSpec([SpecProblem(f"children[{rule.id}].name", "the name template uses an unset field")])
        labels = {MANAGED_BY_LABEL: MANAGED_BY, CHILD_LABEL: rule.id}
        labels.update(scope["labels"])
        for key, template in rule.labels:
            text = template.render(scope)
            if text is not UNSET:
                labels[key] = text
        base = copy_json(rule.base)
        metadata = base.pop("metadata", {})
        metadata["name"] = name
        metadata["namespace"] = namespace
        metadata.setdefault("labels", {}).update(labels)
        body: dict[str, Any] = {"apiVersion": rule.api_version, "kind": rule.kind, "metadata": metadata, **base}
        owner_uid = resource["metadata"].get("uid")
        if rule.owned and owner_uid:
            metadata["ownerReferences"] = [
                {
                    "apiVersion": resource["apiVersion"],
                    "kind": resource["kind"],
                    "name": resource["metadata"]["name"],
                    "uid": owner_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]

        targets: list[tuple[Path, bool]] = []
        units: list[Path] = []
        try:
            for patch in rule.patches:
                value = patch.source.evaluate(scope, self.generate)
                if value is UNSET:
                    continue
                target = patch.target(scope)
                if target is None:
                    continue
                assign(body, target, copy_json(value))
                targets.append((target, patch.create_only))
                if isinstance(value, (dict, list)) and not patch.create_only:
                    units.append(target)
        except EvaluationError as error:
            raise InvalidSpec([SpecProblem(error.field, error.reason)]) from None

        leaves = [leaf for leaf in flatten(body) if leaf[0] not in _IDENTITY]
        if any(create_only for _, create_only in targets):
            leaves = [leaf for leaf in leaves if not _is_create_only(leaf[0], targets)]
        managed = encode_path_set([path for path, _ in leaves], units)
        metadata.setdefault("annotations", {})[MANAGED_FIELDS] = managed
        leaves.append((_MANAGED_FIELDS_PATH, managed))
        return DesiredChild(
            id=rule.id,
            api_version=rule.api_version,
            kind=rule.kind,
            namespace=namespace,
            name=name,
            body=body,
            leaves=tuple(leaves),
            managed=managed,
            owned=rule.owned,
            prune=rule.prune,
        )


def _content_version(resource: Mapping[str, Any]) -> tuple[Any, ...] | None:
    metadata = resource["metadata"]
    generation = metadata.get("generation")
    if generation is None:
        version = metadata.get("resourceVersion")
        return None if version is None else (metadata.get("uid"), "rv", version)
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    return (metadata.get("uid"), generation, tuple(sorted(labels.items())), tuple(sorted(annotations.items())))


def _is_create_only(path: Path, targets: list[tuple[Path, bool]]) -> bool:
    """The last patch that wrote ``path`` (or a parent of it) decides."""
    for target, create_only in reversed(targets):
        if path[: len(target)] == target:
            return create_only
    return False


def render_resources(
    rules: RuleSet,
    resources: list[Mapping[str, Any]],
    *,
    operator: Mapping[str, Any] | None = None,
    generate: Generator = random_token,
) -> list[tuple[Mapping[str, Any], Rendering | InvalidSpec]]:
    """Render a set of resources that reference each other (``eevee-operator render``)."""
    index = {(r["kind"], r["metadata"].get("namespace", "default"), r["metadata"]["name"]): r for r in resources}
    renderer = Renderer(rules, lookup=lambda k, ns, n: index.get((k, ns, n)), operator=operator, generate=generate)
    out: list[tuple[Mapping[str, Any], Rendering | InvalidSpec]] = []
    for resource in resources:
        try:
            out.append((resource, renderer.render(resource)))
        except InvalidSpec as error:
            out.append((resource, error))
    return out
