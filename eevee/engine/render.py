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

import base64
import binascii
import zlib
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

import orjson

from eevee.engine.expressions import UNSET, EvaluationError, Generator, field_origin, lookup, random_token
from eevee.engine.paths import Path, assign, encode_path_set, flatten, get
from eevee.engine.tables import ChildRule, ProbeRule, RuleSet, SecretInput, Table, flatten_cerberus_errors

MANAGED_FIELDS = "eevee.bot/managed-fields"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "eevee-operator"
CHILD_LABEL = "eevee.bot/child"
RETAIN = "eevee.bot/retain"  # annotation: never delete this object, whatever the tables say later
_MANAGED_FIELDS_PATH: Path = ("metadata", "annotations", MANAGED_FIELDS)
_IDENTITY = {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")}

Lookup = Callable[[str, str, str], "Mapping[str, Any] | None"]  # (kind, namespace, name) of a custom resource
Fetch = Callable[[str, str, str, str], "Mapping[str, Any] | None"]  # (apiVersion, kind, namespace, name), any object
RefKey = tuple[str, str, str]  # (kind, namespace, name)
PROBE = "Probe"  # the kind of a probe's RefKey: (PROBE, check, digest of its inputs)


class Probes(Protocol):
    """Runs a table's probes (the I/O is the operator's; see eevee/probes.py). Never blocks:
    ``result`` answers what is known (a placeholder while the first check runs) and starts a
    check when none is known or the last one is older than ``every`` seconds."""

    def result(self, check: str, inputs: Mapping[str, Any], every: float) -> tuple[RefKey, Mapping[str, Any]]: ...

    def current(self, key: RefKey) -> Mapping[str, Any] | None: ...


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
    # The rendered object as compressed JSON. Renderings are kept across passes and a steady
    # pass never reads their bodies (a verified match is by identity), so they are kept
    # packed: a module's Deployment is ~1 KB this way and ~10 KB as Python dicts.
    packed: bytes
    managed: str
    owned: bool
    prune: bool
    adopt: str = "always"
    immutable: tuple[Path, ...] = ()
    recreate: bool = False
    create_only: tuple[Path, ...] = ()  # targets written only when absent (never compared, never removed)
    origin: str = "metadata.name"  # the resource field the child's name comes from, for messages
    targets: tuple[tuple[Path, bool], ...] = ()  # what each patch wrote, and whether createOnly
    adopt_from: tuple[str, ...] = ()  # uids of referenced objects whose controller reference we may replace
    once: bool = False  # made at most once per resource
    after: tuple[str, ...] = ()  # ids of children that must be complete before this one is made
    create_if: Any = None  # a condition on the live children that must hold for it to be made

    @property
    def body(self) -> dict[str, Any]:
        """The rendered object: a fresh copy at each call (decode once, then keep it while working)."""
        return orjson.loads(zlib.decompress(self.packed))

    @property
    def leaves(self) -> list[tuple[Path, Any]]:
        """The managed (path, value) pairs the differ compares. Worked out when asked, not kept:
        a steady pass never needs them, and a thousand renderings' worth is megabytes."""
        return managed_leaves(self.body, self.targets)


class Rendering(NamedTuple):
    kind: str
    namespace: str
    name: str
    values: dict[str, Any]
    children: list[DesiredChild]
    references: tuple[RefKey, ...] = ()  # every object the rendering read (for watches of referenced kinds)
    # What the table's expressions saw besides the resource itself (values, refs, labels, ...),
    # for live checks and status: {**resource, **scope}. The resource is not kept here, so a
    # cached rendering does not hold an old copy of it.
    scope: Mapping[str, Any] | None = None


class PackedBodies(dict[str, Any]):
    """Rendered children's bodies by child id, kept as JSON and decoded when an expression
    reads one (``children.config.data`` in a status rule). ``get`` is what path lookups use."""

    def __getitem__(self, key: str) -> Any:
        return orjson.loads(zlib.decompress(super().__getitem__(key)))

    def get(self, key: str, default: Any = None) -> Any:
        packed = super().get(key)
        return default if packed is None else orjson.loads(zlib.decompress(packed))

    def values(self) -> list[Any]:  # type: ignore[override]
        return [self[key] for key in self]

    def items(self) -> list[tuple[str, Any]]:  # type: ignore[override]
        return [(key, self[key]) for key in self]


_SHARED: dict[Any, Any] = {}
_SHARED_LIMIT = 20_000


def shared(value: Any) -> Any:
    """One copy of an immutable value that many renderings hold alike (the patch targets of a
    table's Deployment, what the modules of one bus read); bounded, past the bound a value is
    kept as it is."""
    try:
        found = _SHARED.get(value)
    except TypeError:  # not hashable: not shared
        return value
    if found is not None:
        return found
    if len(_SHARED) < _SHARED_LIMIT:
        _SHARED[value] = value
    return value


def shared_mapping(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only mapping, one copy for all renderings whose mapping is the same."""
    key = ("mapping", tuple(mapping.items()))
    found = _SHARED.get(key)
    if found is None:
        found = MappingProxyType(dict(mapping))
        if len(_SHARED) < _SHARED_LIMIT:
            _SHARED[key] = found
    return found


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON-shaped value, several times faster than copy.deepcopy."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


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
    if problems:
        raise InvalidSpec(problems)


def run_checks(table: Table, scope: Mapping[str, Any], *, stage: str) -> None:
    """The table's ``checks`` of one stage: ``static`` (spec and values), ``refs`` (also
    referenced objects) or ``live`` (also the live children); raise InvalidSpec naming each field."""
    problems = [
        SpecProblem(check.field, check.message)
        for check in table.checks
        if check.stage == stage and not check.rule(scope)
    ]
    if problems:
        raise InvalidSpec(problems)


class RenderCache:
    """Renderings remembered across passes, with what they were made from.

    A rendering depends only on the resource, the objects it references, the tables
    and the operator settings. The last two are fixed for the life of a cache (a
    rule reload starts a new one); the first two are identified by their versions
    (a custom resource's generation, labels and annotations; any other object's
    resourceVersion). So a resource that did not change since the last pass, and
    whose references did not, is not validated or rendered again.
    """

    def __init__(self) -> None:
        self._entries: dict[RefKey, tuple[Any, tuple[tuple[RefKey, Any], ...], Rendering | InvalidSpec]] = {}
        self._readers: dict[RefKey, set[RefKey]] = {}  # referenced object -> resources that read it
        # A steady pass costs little more than its lists: a child whose live resourceVersion and
        # desired rendering are those of its last verified match is not diffed again, and a
        # resource whose inputs did not change does not have its status computed again.
        self.verified: dict[RefKey, tuple[DesiredChild, str]] = {}
        self.statuses: dict[RefKey, tuple[tuple[Any, ...], Any]] = {}
        self.hits = 0
        self.misses = 0

    def readers(self, key: RefKey) -> set[RefKey]:
        """The resources whose last rendering read the object ``key`` (to reconcile when it changes)."""
        return set(self._readers.get(key, ()))

    def get(self, key: RefKey, version: Any, current: Callable[[RefKey], Any]) -> Rendering | InvalidSpec | None:
        entry = self._entries.get(key)
        if entry is not None and entry[0] == version and all(current(ref) == seen for ref, seen in entry[1]):
            self.hits += 1
            return entry[2]
        self.misses += 1
        return None

    def put(
        self, key: RefKey, version: Any, used: tuple[tuple[RefKey, Any], ...], result: Rendering | InvalidSpec
    ) -> None:
        self._forget(key)
        self._entries[key] = (version, used, result)
        for ref, _ in used:
            self._readers.setdefault(ref, set()).add(key)

    def _forget(self, key: RefKey) -> None:
        old = self._entries.pop(key, None)
        for ref, _ in old[1] if old else ():
            readers = self._readers.get(ref)
            if readers is not None:
                readers.discard(key)
                if not readers:
                    del self._readers[ref]

    def retain(self, keys: set[RefKey], children: set[RefKey] | None = None) -> None:
        """Forget resources (and, given, children) that no longer exist."""
        for key in [k for k in self._entries if k not in keys]:
            self._forget(key)
        for key in [k for k in self.statuses if k not in keys]:
            del self.statuses[key]
        if children is not None:
            for key in [k for k in self.verified if k not in children]:
                del self.verified[key]

    def __len__(self) -> int:
        return len(self._entries)


class Renderer:
    """Renders resources of every kind in a RuleSet; one per pass (it memoises references).

    ``lookup`` finds custom resources of the loaded kinds; ``fetch`` any other object
    a table references (a Secret), by apiVersion, kind, namespace and name."""

    def __init__(
        self,
        rules: RuleSet,
        *,
        lookup: Lookup,
        fetch: Fetch | None = None,
        operator: Mapping[str, Any] | None = None,
        generate: Generator = random_token,
        cache: RenderCache | None = None,
        placeholders: bool = False,
        probes: Probes | None = None,
    ) -> None:
        self.rules = rules
        self.probes = probes
        # Offline (`render`): a referenced object that is not given is a placeholder, named in
        # placeholders_used, instead of a ReferenceNotFound.
        self.placeholders = placeholders
        self.placeholders_used: list[tuple[str, str]] = []
        self.lookup = lookup
        self.fetch = fetch or (lambda api_version, kind, namespace, name: None)
        self.operator = dict(operator or {})
        self.generate = generate
        self.cache = cache
        self._exports: dict[RefKey, dict[str, Any] | ReferenceNotFound] = {}
        self._kinds = {  # kind -> apiVersion of the referenced kinds that have no table
            ref.kind: ref.api_version or ""
            for table in rules.tables.values()
            for ref in table.references
            if ref.kind not in rules.tables
        }
        self._used: dict[RefKey, Any] = {}

    # --- what a rendering read -------------------------------------------------------

    def _get(self, kind: str, api_version: str | None, namespace: str, name: str) -> Mapping[str, Any] | None:
        key = (kind, namespace, name)
        if kind in self.rules.tables:
            target = self.lookup(kind, namespace, name)
        else:
            target = self.fetch(api_version or self._kinds.get(kind, ""), kind, namespace, name)
        self._used[key] = _version_of(target)
        return target

    def _current(self, key: RefKey) -> Any:
        kind, namespace, name = key
        if kind == PROBE:
            return None if self.probes is None else _probe_version(self.probes.current(key))
        if kind in self.rules.tables:
            return _version_of(self.lookup(kind, namespace, name))
        return _version_of(self.fetch(self._kinds.get(kind, ""), kind, namespace, name))

    def forget(self, key: RefKey) -> None:
        """The object ``key`` changed: what this renderer memoised of it is stale."""
        self._exports.pop(key, None)

    # --- rendering -------------------------------------------------------------------

    def render(self, resource: Mapping[str, Any]) -> Rendering:
        """Validate ``resource`` and render its children; raise InvalidSpec when it cannot be."""
        metadata = resource["metadata"]
        key = (resource["kind"], metadata.get("namespace", "default"), metadata["name"])
        version = _content_version(resource) if self.cache is not None else None
        table = self.rules.tables.get(resource["kind"])
        if version is not None and table is not None and table.status_reads:
            version = (*version, status_inputs(table, resource))
        if version is not None:
            cached = self.cache.get(key, version, self._current)  # type: ignore[union-attr]
            if cached is not None:
                if isinstance(cached, InvalidSpec):
                    raise cached
                return cached
        self._used = {}
        self.placeholders_used = []
        result: Rendering | InvalidSpec
        try:
            result = self._render(resource)
        except InvalidSpec as error:
            result = error
        if version is not None:
            self.cache.put(key, version, shared(tuple(self._used.items())), result)  # type: ignore[union-attr]
        if isinstance(result, InvalidSpec):
            raise result
        return result

    def _render(self, resource: Mapping[str, Any]) -> Rendering:
        table = self.rules.table(resource["kind"])
        scope = self._scope(table, resource)
        metadata = resource["metadata"]
        namespace = metadata.get("namespace", "default")
        children: list[DesiredChild] = []
        rendered: dict[str, Any] = {}
        scope["children"] = rendered
        made: dict[tuple[str, str, str], str] = {}  # (group, kind, name) -> the child rule that makes it
        for rule in table.children:
            if rule.when is not None and not rule.when(scope):
                continue
            child, rendered[rule.id] = self._render_child(table, rule, resource, scope, namespace)
            identity = (rule.api_version.rpartition("/")[0], rule.kind, child.name)
            if identity in made:  # two rules would write one object and undo each other, pass after pass
                why = f"{rule.kind} {child.name} is also made by children[{made[identity]}]"
                problem = SpecProblem(f"children[{rule.id}].name", f"{why}; one object cannot be two children")
                raise InvalidSpec([problem])
            made[identity] = rule.id
            children.append(child)
        # Kept with the rendering for status and live checks, packed like the children themselves.
        scope["children"] = PackedBodies((child.id, child.packed) for child in children)
        scope["_origins"] = shared_mapping(scope["_origins"])
        scope["_ref_uids"] = shared_mapping(scope["_ref_uids"])
        return Rendering(
            table.kind, namespace, metadata["name"], scope["values"], children, shared(tuple(self._used)),
            {key: scope[key] for key in _DERIVED if key in scope},
        )

    def values(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        """The resource's named values (validating its spec and static checks first)."""
        table = self.rules.table(resource["kind"])
        return self._scope(table, resource, references=False)["values"]

    def _scope(self, table: Table, resource: Mapping[str, Any], *, references: bool = True) -> dict[str, Any]:
        validate_resource(table, resource)
        scope: dict[str, Any] = dict(resource)
        scope["operator"] = self.operator
        values: dict[str, Any] = {}
        origins: dict[str, str | None] = {}
        scope["values"] = values
        scope["_origins"] = origins
        refs: dict[str, Any] = {}
        scope["refs"] = refs
        ref_uids: dict[str, str] = {}
        scope["_ref_uids"] = ref_uids
        try:
            for name, source in table.values:
                value = source.evaluate(scope, self.generate)
                if value is not UNSET:
                    values[name] = value
                    origins[name] = source.user_field(scope)
            run_checks(table, scope, stage="static")
            if not references:
                return scope
            namespace = resource["metadata"].get("namespace", "default")
            for ref in table.references:
                name = ref.source.evaluate(scope, self.generate)
                if name is UNSET:
                    continue
                field = ref.source.origin(scope)
                origins[f"refs.{ref.name}"] = field
                if ref.kind in self.rules.tables:
                    found = self.lookup(ref.kind, namespace, str(name))
                    target_uid = None if found is None else found["metadata"].get("uid")
                    try:
                        refs[ref.name] = self._exports_of(ref.kind, namespace, str(name), field=field)
                    except ReferenceNotFound:
                        if ref.optional:
                            continue  # refs.<name> stays unset; the table says what that means
                        if not self.placeholders or self._get(ref.kind, None, namespace, str(name)) is not None:
                            raise
                        exports = self.rules.table(ref.kind).exports
                        refs[ref.name] = {e: f"<{e} of {ref.kind} {name}>" for e in exports}
                        self.placeholders_used.append((field, f"{ref.kind} {namespace}/{name}"))
                else:
                    target = self._get(ref.kind, ref.api_version, namespace, str(name))
                    if target is None and self.placeholders:
                        target = _placeholder(ref.kind, namespace, str(name))
                        if not str(name).startswith("<"):  # named by another placeholder: said already
                            self.placeholders_used.append((field, f"{ref.kind} {namespace}/{name}"))
                    if target is None:
                        if ref.optional:
                            continue
                        raise ReferenceNotFound([SpecProblem(field, f"{ref.kind} {namespace}/{name} does not exist")])
                    refs[ref.name] = target
                    target_uid = (target.get("metadata") or {}).get("uid")
                if target_uid:
                    ref_uids[ref.name] = target_uid
            scope["probes"] = self._probe(table, scope)
            if not self.placeholders_used:  # what a placeholder holds cannot be checked
                run_checks(table, scope, stage="refs")
            scope["labels"] = {
                key: text for key, template in table.labels if (text := template.render(scope)) is not UNSET
            }
        except EvaluationError as error:
            raise InvalidSpec([SpecProblem(error.field, error.reason)]) from None
        return scope

    def _probe(self, table: Table, scope: Mapping[str, Any]) -> dict[str, Any]:
        """The results of the table's probes whose inputs are all set (what it does not know
        yet, or cannot check offline, stays unset)."""
        results: dict[str, Any] = {}
        if self.probes is None:
            return results
        for rule in table.probes:
            if rule.when is not None and not rule.when(scope):
                continue
            inputs = _probe_inputs(rule, scope, self.generate)
            if inputs is None:
                continue
            key, result = self.probes.result(rule.check, inputs, rule.every)
            self._used[key] = _probe_version(result)
            results[rule.name] = dict(result)
        return results

    def _exports_of(self, kind: str, namespace: str, name: str, *, field: str) -> dict[str, Any]:
        key = (kind, namespace, name)
        target = self._get(kind, None, namespace, name)
        if key not in self._exports:
            if target is None:
                missing = SpecProblem(field, f"{kind} {namespace}/{name} does not exist")
                self._exports[key] = ReferenceNotFound([missing])
            else:
                try:
                    values = self.values(target)
                except InvalidSpec as error:
                    self._exports[key] = ReferenceNotFound(
                        [SpecProblem(field, f"{kind} {namespace}/{name} is invalid ({error})")]
                    )
                else:
                    exports = {k: values[k] for k in self.rules.table(kind).exports if k in values}
                    # Its conditions as its operator wrote them: refs.<name>.conditions.<Type>.status
                    exports["conditions"] = _conditions_of(target)
                    self._exports[key] = exports
        exports = self._exports[key]
        if isinstance(exports, ReferenceNotFound):
            raise ReferenceNotFound([SpecProblem(field, exports.problems[0].reason)])
        return exports

    def _render_child(
        self,
        table: Table,
        rule: ChildRule,
        resource: Mapping[str, Any],
        scope: dict[str, Any],
        namespace: str,
    ) -> tuple[DesiredChild, dict[str, Any]]:
        """The child, and its body (which later children's patches may read)."""
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

        if not rule.prune:
            # Kept on the object: should a table edit drop this child, the operator still
            # knows never to delete what it made under it (a token, a claim).
            metadata.setdefault("annotations", {})[RETAIN] = "true"
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

        written_once = [target for target, once in targets if once]  # written again when found missing
        if rule.create_only:  # only metadata is maintained once the object exists
            tops = [(key,) for key in body if key not in ("apiVersion", "kind", "metadata")]
            targets = [(target, True) for target, _ in targets] + [(top, True) for top in tops]
            units = []
            written_once = tops
        leaves = managed_leaves(body, tuple(targets))
        managed = encode_path_set([path for path, _ in leaves], units)
        metadata.setdefault("annotations", {})[MANAGED_FIELDS] = managed
        child = DesiredChild(
            id=rule.id,
            api_version=rule.api_version,
            kind=rule.kind,
            namespace=namespace,
            name=name,
            packed=zlib.compress(orjson.dumps(body), 1),
            managed=managed,
            owned=rule.owned,
            prune=rule.prune,
            adopt=rule.adopt,
            immutable=rule.immutable,
            recreate=rule.recreate,
            create_only=tuple(written_once),
            origin=next((f for p in rule.name.paths if (f := field_origin(scope, p))), "metadata.name"),
            targets=shared(tuple(targets)),
            adopt_from=tuple(uid for ref in rule.adopt_from if (uid := scope["_ref_uids"].get(ref))),
            once=rule.once,
            after=rule.after,
            create_if=rule.create_if,
        )
        return child, body


_DERIVED = ("values", "refs", "probes", "labels", "operator", "children", "_origins", "_ref_uids")


def _probe_inputs(rule: ProbeRule, scope: Mapping[str, Any], generate: Generator) -> dict[str, Any] | None:
    inputs: dict[str, Any] = {}
    for name, source in rule.inputs:
        if isinstance(source, SecretInput):
            secret, key = lookup(scope, source.secret), lookup(scope, source.key)
            data = secret.get("data") if isinstance(secret, Mapping) else None
            encoded = data.get(str(key)) if isinstance(data, Mapping) and key is not UNSET else None
            if not isinstance(encoded, str):
                return None
            try:
                value: Any = base64.b64decode(encoded, validate=True).decode()
            except (binascii.Error, ValueError):
                return None
        else:
            value = source.evaluate(scope, generate)
            if value is UNSET:
                return None
        inputs[name] = value
    return inputs


def status_inputs(table: Table, resource: Mapping[str, Any]) -> tuple[Any, ...]:
    """What the table's rules read of the resource's own status (empty when they read none)."""
    return tuple(str(lookup(resource, path)) for path in table.status_reads)


def _probe_version(result: Mapping[str, Any] | None) -> Any:
    return None if result is None else tuple(sorted((k, str(v)) for k, v in result.items()))


def _conditions_of(obj: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """A resource's conditions by type, each with its status, reason and message."""
    out: dict[str, dict[str, Any]] = {}
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(condition, dict) and isinstance(condition.get("type"), str):
            out[condition["type"]] = {k: condition[k] for k in ("status", "reason", "message") if k in condition}
    return out


def managed_leaves(body: Mapping[str, Any], targets: tuple[tuple[Path, bool], ...]) -> list[tuple[Path, Any]]:
    """Every leaf of a rendered body the operator manages: all but identity and createOnly
    fields; the managed-fields annotation, once the body carries it, last."""
    leaves = [leaf for leaf in flatten(body) if leaf[0] not in _IDENTITY and leaf[0] != _MANAGED_FIELDS_PATH]
    if any(once for _, once in targets):
        leaves = [leaf for leaf in leaves if not _is_create_only(leaf[0], list(targets))]
    managed = get(body, _MANAGED_FIELDS_PATH)
    if managed is not None:
        leaves.append((_MANAGED_FIELDS_PATH, managed))
    return leaves


def _placeholder(kind: str, namespace: str, name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "uid": f"<uid of {kind} {name}>"}}


def _version_of(obj: Mapping[str, Any] | None) -> Any:
    """What identifies the content of a referenced object (None: it does not exist)."""
    if obj is None:
        return None
    version = _content_version(obj) or "?"
    if obj["metadata"].get("generation") is not None:  # a referrer may read its conditions too
        conditions = (obj.get("status") or {}).get("conditions") or []
        seen = tuple(
            (c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
            for c in conditions
            if isinstance(c, dict)
        )
        version = (*version, seen)
    return version


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
    placeholders: bool = False,
    warn: Callable[[Mapping[str, Any], str, str], None] | None = None,
) -> list[tuple[Mapping[str, Any], Rendering | InvalidSpec]]:
    """Render a set of resources that reference each other (``eevee-operator render``).

    With ``placeholders``, what they reference but the set lacks is shown as a placeholder,
    and ``warn(resource, field, what)`` is told."""
    index = {(r["kind"], r["metadata"].get("namespace", "default"), r["metadata"]["name"]): r for r in resources}
    renderer = Renderer(
        rules,
        lookup=lambda k, ns, n: index.get((k, ns, n)),
        fetch=lambda api_version, k, ns, n: index.get((k, ns, n)),
        operator=operator,
        generate=generate,
        placeholders=placeholders,
    )
    # Referenced kinds first, and what they render is readable by the others (a module
    # reads the token Secret its IpcConfig makes), as on a cluster after one pass.
    order = rules.kind_order()
    results: dict[int, tuple[Mapping[str, Any], Rendering | InvalidSpec]] = {}
    for number in sorted(range(len(resources)), key=lambda n: order.get(resources[n]["kind"], 0)):
        resource = resources[number]
        try:
            rendering = renderer.render(resource)
        except InvalidSpec as error:
            results[number] = (resource, error)
            continue
        for field, what in renderer.placeholders_used:
            if warn is not None:
                warn(resource, field, what)
        results[number] = (resource, rendering)
        for child in rendering.children:
            index.setdefault((child.kind, child.namespace, child.name), child.body)
    return [results[n] for n in range(len(resources))]
