"""What the operator knows about the cluster: a cache fed by one list per kind, then its watch.

The runner's informers list each kind the tables read once (children selected by the
``app.kubernetes.io/managed-by`` label, referenced kinds such as Secrets whole) and then follow
its watch; the runner applies what they deliver here, on its loop thread, together with the
objects its own writes return. The indexes answer every "does this child exist, who owns it,
what does this Secret hold" question without a request: a pass at rest sends none.

``take_snapshot`` lists everything at once, for one-shot commands (``eevee-operator diff``).
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from eevee.engine.diff import trim
from eevee.engine.paths import Path
from eevee.engine.pods import speaking_pod
from eevee.engine.render import MANAGED_BY, MANAGED_BY_LABEL
from eevee.engine.tables import RuleSet
from eevee.kube.client import Kube, KubeError, plural_of

Obj = dict[str, Any]
Key = tuple[str, str, str]  # (kind, namespace, name)


def key_of(obj: Obj) -> Key:
    metadata = obj["metadata"]
    return obj["kind"], metadata.get("namespace", ""), metadata["name"]


SHARED_LENGTH = 96  # longer strings (hashes, config files, the tables' managed-fields record) are rarely repeated


def shared(obj: Any) -> Any:
    """The object with its short strings interned, as it goes into the cache: a thousand modules'
    Deployments repeat the same few hundred values ("apps/v1", "IfNotPresent", label values,
    condition reasons, the ReplicaSet's timestamps), and one copy of each is a third of a cached
    Deployment's memory. orjson already shares the keys. Changes nothing a reader sees."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(value, str):
                if len(value) <= SHARED_LENGTH:
                    obj[key] = sys.intern(value)
            elif isinstance(value, dict | list):
                shared(value)
    elif isinstance(obj, list):
        for index, value in enumerate(obj):
            if isinstance(value, str):
                if len(value) <= SHARED_LENGTH:
                    obj[index] = sys.intern(value)
            elif isinstance(value, dict | list):
                shared(value)
    return obj


def cached_child(obj: Obj, keep: tuple[Path, ...] | None) -> Obj:
    """A child as it goes into the cache: trimmed to what the rules read of its kind (``keep``,
    from RuleSet.cached_fields; None: whole), its strings shared."""
    return shared(obj if keep is None else trim(obj, keep))


@dataclass
class Snapshot:
    resources: dict[Key, Obj] = field(default_factory=dict)
    children: dict[Key, Obj] = field(default_factory=dict)
    owned: dict[str, dict[Key, Obj]] = field(default_factory=dict)  # owner uid -> children
    versions: dict[tuple[str, str | None], str] = field(default_factory=dict)  # (kind, namespace) -> list version
    uids: dict[str, Key] = field(default_factory=dict)  # custom resource uid -> key
    fetched: dict[Key, Obj | None] = field(default_factory=dict)  # other referenced objects, read this pass
    unavailable: dict[str, str] = field(default_factory=dict)  # kind -> why it could not be listed (404, 403)
    # Objects put or dropped since the runner last took them: a write's answer or an event.
    # The runner reconciles whoever read them (the watch drops the echo of our own writes).
    changed: dict[Key, None] = field(default_factory=dict)
    # Referenced objects of kinds that are neither tables nor children (a module's envSecret, an
    # S3Store's credentials), kept by their informers; cached says which (kind, namespace) are.
    others: dict[Key, Obj] = field(default_factory=dict)
    cached: set[tuple[str, str | None]] = field(default_factory=set)
    # What the children run, observed not owned (the ReplicaSets and Pods of a module's Deployment,
    # slimmed), indexed by their controller's uid.
    observed: dict[Key, Obj] = field(default_factory=dict)
    observed_owned: dict[str, dict[Key, Obj]] = field(default_factory=dict)
    # What the cache keeps of each child kind (RuleSet.cached_fields); a kind not named: whole.
    kept: dict[str, tuple[Path, ...] | None] = field(default_factory=dict)

    # --- custom resources ---

    def lookup(self, kind: str, namespace: str, name: str) -> Obj | None:
        return self.resources.get((kind, namespace, name))

    def put_resource(self, obj: Obj) -> None:
        key = key_of(obj)
        self.resources[key] = obj
        self.uids[obj["metadata"].get("uid", "")] = key
        self.changed[key] = None

    def drop_resource(self, key: Key) -> None:
        old = self.resources.pop(key, None)
        if old is not None:
            self.uids.pop(old["metadata"].get("uid", ""), None)
            self.changed[key] = None

    def by_uid(self, uid: str) -> Key | None:
        return self.uids.get(uid)

    def sorted_keys(self, order: dict[str, int] | None = None) -> list[Key]:
        """Resources' keys in a stable order; with ``order``, referenced kinds first."""
        rank = order or {}
        return sorted(self.resources, key=lambda k: (rank.get(k[0], 0), k))

    def sorted_resources(self, order: dict[str, int] | None = None) -> Iterator[Obj]:
        """Resources in a stable order; with ``order``, referenced kinds first."""
        for key in self.sorted_keys(order):
            yield self.resources[key]

    def fetch(self, kube: Kube, api_version: str, kind: str, namespace: str, name: str) -> Obj | None:
        """An object a table references: a child, else a cached object of a watched kind, else
        (a kind no informer follows) one GET per pass (None: absent)."""
        key = (kind, namespace, name)
        found = self.children.get(key)
        if found is not None:
            return found
        if (kind, namespace) in self.cached or (kind, None) in self.cached:
            return self.others.get(key)
        if key not in self.fetched:
            try:
                obj = kube.get(api_version, plural_of(kind), namespace, name)
            except KubeError as error:
                if error.code != 404:
                    raise
                obj = None
            else:
                obj.setdefault("apiVersion", api_version)
                obj.setdefault("kind", kind)
            self.fetched[key] = obj
        return self.fetched[key]

    # --- children ---

    def child(self, kind: str, namespace: str, name: str) -> Obj | None:
        return self.children.get((kind, namespace, name))

    def cache_child(self, obj: Obj) -> None:
        """Put a child this operator wrote (the API server's answer), trimmed as its informer trims."""
        self.put_child(cached_child(obj, self.kept.get(obj["kind"])))

    def put_child(self, obj: Obj) -> None:
        key = key_of(obj)
        old = self.children.get(key)
        if old is not None:
            self._unindex(key, old)
        self.children[key] = obj
        for ref in obj["metadata"].get("ownerReferences") or []:
            self.owned.setdefault(ref.get("uid", ""), {})[key] = obj
        self.changed[key] = None

    def drop_child(self, key: Key) -> None:
        old = self.children.pop(key, None)
        if old is not None:
            self._unindex(key, old)
            self.changed[key] = None

    def put_other(self, obj: Obj) -> None:
        key = key_of(obj)
        self.others[key] = obj
        self.changed[key] = None

    def drop_other(self, key: Key) -> None:
        if self.others.pop(key, None) is not None:
            self.changed[key] = None

    def put_observed(self, obj: Obj) -> None:
        key = key_of(obj)
        self.drop_observed(key)
        self.observed[key] = obj
        for ref in obj["metadata"].get("ownerReferences") or []:
            self.observed_owned.setdefault(ref.get("uid", ""), {})[key] = obj

    def drop_observed(self, key: Key) -> None:
        old = self.observed.pop(key, None)
        for ref in (old or {"metadata": {}})["metadata"].get("ownerReferences") or []:
            self.observed_owned.get(ref.get("uid", ""), {}).pop(key, None)

    def speaking_pod(self, workload: Obj) -> Obj | None:
        """The Pod that speaks for a Deployment (see eevee.engine.pods.speaking_pod)."""
        def owned(uid: str, kind: str) -> list[Obj]:
            return [o for o in self.observed_owned.get(uid, {}).values() if o["kind"] == kind]

        sets = owned(workload["metadata"].get("uid", ""), "ReplicaSet")
        return speaking_pod(sets, {rs["metadata"]["uid"]: owned(rs["metadata"]["uid"], "Pod") for rs in sets})

    def owner_of_observed(self, obj: Obj) -> Key | None:
        """The resource whose child runs ``obj``: a Pod's ReplicaSet's Deployment's owner."""
        for _ in range(3):
            refs = obj["metadata"].get("ownerReferences") or []
            ref = next((r for r in refs if r.get("controller")), None)
            if ref is None:
                return None
            owner = self.by_uid(ref.get("uid", ""))
            if owner is not None:
                return owner
            namespace = obj["metadata"].get("namespace", "")
            obj = self.observed.get((ref.get("kind", ""), namespace, ref.get("name", ""))) or self.children.get(
                (ref.get("kind", ""), namespace, ref.get("name", ""))) or {"metadata": {}}
        return None

    def replace(self, role: str, kind: str, namespace: str | None, items: list[Obj]) -> None:
        """What a (re)list of a kind says: its objects replace the cache's (``namespace`` None: all).
        Objects that differ from what was held are marked changed, those gone are dropped."""
        held, put, drop = self.role(role)
        if role == "other":
            self.cached.add((kind, namespace))
        listed = {key_of(item): item for item in items}
        gone = [k for k in held if k[0] == kind and (namespace is None or k[1] == namespace) and k not in listed]
        for key in gone:
            drop(key)
        for key, item in listed.items():
            old = held.get(key)
            if old is None or _later(item, old):  # an answer to our own write may be newer than the list
                put(item)
            elif not _later(old, item) and item != old:
                # The same version in a new form (a reload's tables read more of a child): swapped
                # quietly, as nothing changed in the cluster; the reload's pass reads it.
                pending = key in self.changed
                put(item)
                if not pending:
                    self.changed.pop(key, None)

    def role(self, role: str) -> tuple[dict[Key, Obj], Any, Any]:
        """What holds the objects an informer of ``role`` brings, and how to put and drop one."""
        return {
            "resource": (self.resources, self.put_resource, self.drop_resource),
            "child": (self.children, self.put_child, self.drop_child),
            "other": (self.others, self.put_other, self.drop_other),
            "observed": (self.observed, self.put_observed, self.drop_observed),
        }[role]

    def take_changed(self) -> list[Key]:
        """The objects put or dropped since the last call."""
        changed, self.changed = list(self.changed), {}
        return changed

    def _unindex(self, key: Key, obj: Obj) -> None:
        for ref in obj["metadata"].get("ownerReferences") or []:
            self.owned.get(ref.get("uid", ""), {}).pop(key, None)

    def owned_by(self, uid: str) -> list[Obj]:
        return list(self.owned.get(uid, {}).values())

    def count(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for kind, _, _ in list(self.resources) + list(self.children):
            counts[kind] = counts.get(kind, 0) + 1
        return counts


def _later(item: Obj, held: Obj) -> bool:
    """Whether ``item`` is a later version than ``held`` (resourceVersions that are not integers,
    which no etcd-backed server issues, count as later when they differ)."""
    new, old = item["metadata"].get("resourceVersion"), held["metadata"].get("resourceVersion")
    try:
        return int(new) > int(old)
    except (TypeError, ValueError):
        return new != old


# A kind the API server does not serve (404: a typo in a table, a CRD not installed) or will not
# show the operator (403: RBAC not extended for a kind a table added). Such a kind does not stop
# the pass: the resources that need it say so, every other kind carries on.
UNAVAILABLE = (403, 404)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while listing, and none of what was listed afterwards.

    Every decoded object is kept (the snapshot) and none is cyclic, so a collection in the
    middle finds nothing and only walks the whole heap: at 1,000 modules that walking was a
    third of a pass. Once the lists are in, everything the process holds is moved to the
    collector's permanent generation (``gc.freeze``): later collections walk only what is
    made after it, not the 100,000s of listed objects (at 5,000 modules one full collection
    of them took 0.1-0.7 s of a pass). Frozen objects are still freed by reference counting
    as soon as the next pass drops them; what could be cyclic garbage among them is collected
    by :func:`collect_frozen_garbage`, which the runner calls every few passes."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def collect_frozen_garbage() -> None:
    """A full collection of everything, frozen objects included (at the start of a pass, when
    the old lists are gone and the new ones not yet read: the heap is at its smallest)."""
    gc.unfreeze()
    gc.collect()


def take_snapshot(kube: Kube, rules: RuleSet, namespaces: tuple[str, ...]) -> Snapshot:
    """List every custom-resource kind and every child kind once per namespace (``*``: all).

    Child kinds also include those no table renders any more but that a resource records in
    its ``status.childKinds`` (objects of them may remain, and are then pruned)."""
    with _collector_paused():
        return _take_snapshot(kube, rules, namespaces)


def _take_snapshot(kube: Kube, rules: RuleSet, namespaces: tuple[str, ...]) -> Snapshot:
    snapshot = Snapshot()
    scopes: list[str | None] = [None] if namespaces == ("*",) else list(namespaces)
    selector = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
    for namespace in scopes:
        for table in rules.tables.values():
            if table.kind in snapshot.unavailable:
                continue
            try:
                items, version = kube.list(table.api_version, table.plural, namespace)
            except KubeError as error:
                if error.code not in UNAVAILABLE:
                    raise
                snapshot.unavailable[table.kind] = f"{table.api_version} {table.plural}: {error}"
                continue
            snapshot.versions[(table.kind, namespace)] = version
            for item in items:
                snapshot.put_resource(item)
        for api_version, kind in _child_kinds(rules, snapshot):
            if kind in snapshot.unavailable:
                continue
            try:
                items, version = kube.list(api_version, plural_of(kind), namespace, label_selector=selector)
            except KubeError as error:
                if error.code not in UNAVAILABLE:
                    raise
                snapshot.unavailable[kind] = f"{api_version} {plural_of(kind)}: {error}"
                continue
            snapshot.versions[(kind, namespace)] = version
            for item in items:
                snapshot.put_child(item)
    snapshot.changed.clear()  # a fresh list: every resource is reconciled anyway
    return snapshot


def _child_kinds(rules: RuleSet, snapshot: Snapshot) -> list[tuple[str, str]]:
    kinds = dict.fromkeys(rules.child_kinds())
    kinds.update(dict.fromkeys(recorded_child_kinds(snapshot)))
    return list(kinds)


def recorded_child_kinds(snapshot: Snapshot) -> list[tuple[str, str]]:
    """The (apiVersion, kind) of children the resources record in ``status.childKinds``."""
    kinds: dict[tuple[str, str], None] = {}
    for resource in snapshot.resources.values():
        for recorded in (resource.get("status") or {}).get("childKinds") or []:
            api_version, _, kind = str(recorded).rpartition("/")
            if api_version and kind:
                kinds.setdefault((api_version, kind))
    return list(kinds)
