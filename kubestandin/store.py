"""The stand-in's object store: what etcd plus the API server's registry logic do.

One lock guards everything; stored objects are never mutated after they are stored
(every write stores a new dict), so readers may serialise them outside the lock.
Every write takes the next value of one cluster-wide resourceVersion counter and
appends an event to a bounded history that watches read from (a watch older than
the history gets 410 Gone, like a compacted etcd). A write that changes nothing
is not a write: no new resourceVersion, no event (as the real server's no-op
update short-circuit).
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, NamedTuple

from kubestandin import builtins, cel, crds, schema
from kubestandin.openapi import OpenApiSchemas
from kubestandin.registry import Registry, ResourceType
from kubestandin.schema import Cause
from kubestandin.selectors import Predicate

Key = tuple[str, str]  # (group, plural)
Obj = dict[str, Any]


class ApiError(Exception):
    """An error answer of the API server, as a ``Status`` object."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        causes: list[Cause] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = dict(details or {})
        if causes:
            self.details["causes"] = [{"reason": c.reason, "message": c.message, "field": c.field} for c in causes]

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def not_found(rt: ResourceType, name: str) -> ApiError:
    return ApiError(
        404,
        "NotFound",
        f'{rt.qualified} "{name}" not found',
        details={"name": name, "group": rt.group, "kind": rt.plural},
    )


def invalid(rt: ResourceType, name: str, causes: list[Cause]) -> ApiError:
    listed = causes[0].message if len(causes) == 1 else "[" + ", ".join(c.message for c in causes) + "]"
    kind = f"{rt.kind}.{rt.group}" if rt.group else rt.kind
    return ApiError(
        422,
        "Invalid",
        f'{kind} "{name}" is invalid: {listed}',
        details={"name": name, "group": rt.group, "kind": rt.kind},
        causes=causes,
    )


def conflict(rt: ResourceType, name: str) -> ApiError:
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {rt.qualified} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        details={"name": name, "group": rt.group, "kind": rt.plural},
    )


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # metav1.Time: RFC 3339, seconds


class Event(NamedTuple):
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    key: Key
    namespace: str
    obj: Obj
    old: Obj | None


Listener = Callable[[Event], None]


class Validation:
    """The request's ``fieldValidation``: unknown fields are an error (Strict), a warning, or ignored."""

    def __init__(self, mode: str | None) -> None:
        self.mode = (mode or "Ignore").capitalize()
        self.warnings: list[str] = []

    def unknown(self, fields: list[str]) -> None:
        messages = [f'unknown field "{f}"' for f in fields]
        if self.mode == "Strict":
            raise ApiError(400, "BadRequest", "strict decoding error: " + ", ".join(messages))
        if self.mode == "Warn":
            self.warnings.extend(messages)


_OPENAPI = OpenApiSchemas()


def _drop(obj: Obj, fields: list[tuple[tuple[Any, ...], str]]) -> None:
    """Remove fields the kind does not have, as the server's decoder does."""
    for path, field in fields:
        node: Any = obj
        for part in path:
            node = node[part]
        node.pop(field, None)


def _dotted(path: tuple[Any, ...], field: str) -> str:
    text = ""
    for part in (*path, field):
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _without(obj: Obj, *keys: str) -> Obj:
    return {k: v for k, v in obj.items() if k not in keys}


class Store:
    def __init__(self, registry: Registry, *, history: int = 100_000) -> None:
        self.registry = registry
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.rv = 0
        self.compacted = 0  # events up to this resourceVersion are gone from the history
        self.history_size = history
        self.events: list[Event] = []
        self.event_rvs: list[int] = []
        self.objects: dict[Key, dict[tuple[str, str], Obj]] = {}
        self.by_uid: dict[str, tuple[Key, str, str]] = {}
        # owner uid -> {dependent uid: its type}: the garbage collector's graph (kube-controller-manager's
        # GC keeps each owner's dependents in its uidToNode graph), so an owner's deletion does not
        # scan every object with the store locked.
        self.owned: dict[str, dict[str, ResourceType]] = {}
        self.appliers: dict[str, dict[str, set[Any]]] = {}  # uid -> field manager -> paths it applied
        self.listeners: list[Listener] = []
        self.closed = False

    # --- helpers -------------------------------------------------------------------

    def _bucket(self, rt: ResourceType) -> dict[tuple[str, str], Obj]:
        return self.objects.setdefault((rt.group, rt.plural), {})

    def _emit(self, type_: str, rt: ResourceType, obj: Obj, old: Obj | None) -> None:
        event = Event(self.rv, type_, (rt.group, rt.plural), obj["metadata"].get("namespace", ""), obj, old)
        self.events.append(event)
        self.event_rvs.append(self.rv)
        if len(self.events) > 2 * self.history_size:
            cut = len(self.events) - self.history_size
            self.compacted = self.event_rvs[cut - 1]
            del self.events[:cut]
            del self.event_rvs[:cut]
        for listener in self.listeners:
            listener(event)
        self.changed.notify_all()

    @staticmethod
    def _owner_uids(obj: Obj | None) -> set[str]:
        return {ref.get("uid", "") for ref in (obj or {}).get("metadata", {}).get("ownerReferences") or []}

    def _put(self, rt: ResourceType, key: tuple[str, str], obj: Obj, old: Obj | None) -> None:
        """Store ``obj`` (replacing ``old``) and keep the owner index current."""
        self._bucket(rt)[key] = obj
        uid = obj["metadata"]["uid"]
        before, after = self._owner_uids(old), self._owner_uids(obj)
        for owner in before - after:
            self._unown(owner, uid)
        for owner in after - before:
            self.owned.setdefault(owner, {})[uid] = rt

    def _unown(self, owner: str, uid: str) -> None:
        dependents = self.owned.get(owner)
        if dependents is not None:
            dependents.pop(uid, None)
            if not dependents:
                del self.owned[owner]

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def namespace_exists(self, name: str) -> bool:
        return ("", name) in self.objects.get(("", "namespaces"), {})

    def _prepare(self, rt: ResourceType, obj: Obj, old: Obj | None, validation: Validation | None = None) -> Obj:
        """Prune, default and validate a candidate object; raise 422 when invalid."""
        name = obj["metadata"].get("name", "")
        causes: list[Cause] = []
        if rt.schema is not None:
            metadata = obj["metadata"]
            dropped: list[str] = []
            obj = schema.prune_and_default(rt.schema, _without(obj, "metadata"), dropped)
            obj["metadata"] = metadata
            if dropped and validation is not None:
                validation.unknown(dropped)
            causes.extend(schema.validate(rt.schema, obj))
            if not causes:
                causes.extend(cel.enforce(list(rt.rules), rt.schema, obj, old))
        else:
            if rt.kind == "Service" and old is not None:
                spec = obj.setdefault("spec", {})
                old_spec = old.get("spec") or {}
                for field in ("clusterIP", "clusterIPs"):
                    if field not in spec and field in old_spec:
                        spec[field] = old_spec[field]
            findings = _OPENAPI.check(rt.api_version, rt.kind, obj)
            if findings.decode_error:
                raise ApiError(400, "BadRequest", findings.decode_error)
            if findings.unknown:
                _drop(obj, findings.unknown)
                if validation is not None:
                    validation.unknown([_dotted(path, field) for path, field in findings.unknown])
            causes.extend(findings.causes)
            causes.extend(builtins.default(rt, obj))
            causes.extend(builtins.validate(rt, obj, old))
        if old is None:
            causes[:0] = builtins.validate_name(rt, name)
        causes.extend(builtins.validate_owner_references(obj))
        if causes:
            raise invalid(rt, name, causes)
        return obj

    # --- reads ---------------------------------------------------------------------

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        with self.lock:
            obj = self._bucket(rt).get((namespace, name))
            if obj is None:
                raise not_found(rt, name)
            return obj

    def find_uid(self, uid: str) -> Obj | None:
        with self.lock:
            where = self.by_uid.get(uid)
            if where is None:
                return None
            key, namespace, name = where
            return self.objects.get(key, {}).get((namespace, name))

    def list(self, rt: ResourceType, namespace: str | None, match: Predicate) -> tuple[list[Obj], int]:
        with self.lock:
            bucket = self._bucket(rt)
            items = [o for (ns, _), o in bucket.items() if (namespace is None or ns == namespace) and match(o)]
            return items, self.rv

    # --- writes --------------------------------------------------------------------

    def create(
        self, rt: ResourceType, namespace: str, obj: Obj, *, validation: Validation | None = None, dry_run: bool = False
    ) -> Obj:
        """POST semantics; ``dry_run`` (``?dryRun=All``): validated, defaulted and answered, never stored."""
        obj = copy.deepcopy(obj)
        metadata = obj.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")
        with self.lock:
            if rt.namespaced:
                if metadata.get("namespace") not in (None, "", namespace):
                    raise ApiError(
                        400,
                        "BadRequest",
                        "the namespace of the provided object does not match the namespace sent on the request",
                    )
                metadata["namespace"] = namespace
                if not self.namespace_exists(namespace):
                    raise ApiError(
                        404,
                        "NotFound",
                        f'namespaces "{namespace}" not found',
                        details={"name": namespace, "kind": "namespaces"},
                    )
            else:
                metadata.pop("namespace", None)
            if not metadata.get("name"):
                if metadata.get("generateName"):
                    metadata["name"] = metadata["generateName"] + uuid.uuid4().hex[:5]
                else:
                    raise invalid(
                        rt,
                        "",
                        [
                            Cause(
                                "FieldValueRequired",
                                "metadata.name",
                                "metadata.name: Required value: name or generateName is required",
                            )
                        ],
                    )
            name = metadata["name"]
            if "status" in rt.subresources:
                obj.pop("status", None)  # status is not part of a create
            obj["apiVersion"] = rt.api_version
            obj["kind"] = rt.kind
            for field in (
                "resourceVersion",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "generation",
                "managedFields",
            ):
                metadata.pop(field, None)
            # The uid is known before defaulting, as on a real server (a Job's selector is made of it).
            uid = metadata["uid"] = str(uuid.uuid4())
            obj = self._prepare(rt, obj, None, validation)
            bucket = self._bucket(rt)
            key = (namespace if rt.namespaced else "", name)
            if key in bucket:
                raise ApiError(
                    409,
                    "AlreadyExists",
                    f'{rt.qualified} "{name}" already exists',
                    details={"name": name, "group": rt.group, "kind": rt.plural},
                )
            metadata = obj["metadata"]
            metadata["uid"] = uid
            metadata["creationTimestamp"] = now()
            if rt.generation:
                metadata["generation"] = 1
            if dry_run:
                return obj  # no resourceVersion: only storage gives one
            metadata["resourceVersion"] = self._next_rv()
            self._put(rt, key, obj, None)
            self.by_uid[metadata["uid"]] = ((rt.group, rt.plural), key[0], name)
            if rt.kind == "CustomResourceDefinition":
                obj = self._establish(obj, None)
                bucket[key] = obj
            self._emit("ADDED", rt, obj, None)
            return obj

    def _establish(self, crd: Obj, old: Obj | None) -> Obj:
        self.registry.install_crd(crd)
        crd = dict(crd)
        names = crd["spec"]["names"]
        crd["status"] = {
            "acceptedNames": names,
            "storedVersions": crds.stored_versions(crd, old),
            "conditions": [
                {
                    "type": "NamesAccepted",
                    "status": "True",
                    "reason": "NoConflicts",
                    "message": "no conflicts found",
                    "lastTransitionTime": now(),
                },
                {
                    "type": "Established",
                    "status": "True",
                    "reason": "InitialNamesAccepted",
                    "message": "the initial names have been accepted",
                    "lastTransitionTime": now(),
                },
            ],
        }
        return crd

    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        new: Obj,
        *,
        subresource: str | None = None,
        validation: Validation | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """PUT semantics (also the last step of every PATCH); ``dry_run``: answered, never stored."""
        new = copy.deepcopy(new)
        with self.lock:
            bucket = self._bucket(rt)
            key = (namespace if rt.namespaced else "", name)
            old = bucket.get(key)
            if old is None:
                raise not_found(rt, name)
            metadata = new.get("metadata")
            if not isinstance(metadata, dict):
                raise ApiError(400, "BadRequest", "metadata must be an object")
            if metadata.get("name", name) != name:
                raise ApiError(
                    400,
                    "BadRequest",
                    f"the name of the object ({metadata.get('name')}) does not match the name on the URL ({name})",
                )
            wanted_rv = metadata.get("resourceVersion")
            if wanted_rv not in (None, "") and str(wanted_rv) != old["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            if old["metadata"].get("deletionTimestamp") and len(metadata.get("finalizers") or []) > len(
                old["metadata"].get("finalizers") or []
            ):
                raise ApiError(
                    422,
                    "Invalid",
                    f'{rt.kind} "{name}" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted',
                )
            has_status = "status" in rt.subresources
            if subresource == "status":
                candidate = dict(old)
                if "status" in new:
                    candidate["status"] = new["status"]
                else:
                    candidate.pop("status", None)
                candidate["metadata"] = dict(old["metadata"])
                if rt.status_writes_annotations and "annotations" in metadata:
                    # apps/v1 deploymentStatusStrategy keeps spec and labels, not annotations: the
                    # Deployment controller records deployment.kubernetes.io/revision this way.
                    candidate["metadata"]["annotations"] = metadata["annotations"]
            else:
                candidate = dict(new)
                if has_status:
                    if "status" in old:
                        candidate["status"] = old["status"]
                    else:
                        candidate.pop("status", None)
                meta = dict(metadata)
                for field in (
                    "uid",
                    "creationTimestamp",
                    "deletionTimestamp",
                    "deletionGracePeriodSeconds",
                    "generation",
                    "namespace",
                ):
                    if field in old["metadata"]:
                        meta[field] = old["metadata"][field]
                    else:
                        meta.pop(field, None)
                meta.pop("managedFields", None)
                candidate["metadata"] = meta
            candidate["apiVersion"] = rt.api_version
            candidate["kind"] = rt.kind
            candidate["metadata"]["name"] = name
            candidate["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
            candidate = self._prepare(rt, candidate, old, validation)
            if candidate == old:
                return old  # a no-op write: no new version, no event
            if rt.generation and subresource != "status" and self._generation_changes(rt, old, candidate):
                candidate["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
            if dry_run:
                return candidate
            candidate["metadata"]["resourceVersion"] = self._next_rv()
            if candidate["metadata"].get("deletionTimestamp") and not candidate["metadata"].get("finalizers"):
                return self._remove(rt, key, candidate)
            self._put(rt, key, candidate, old)
            if rt.kind == "CustomResourceDefinition":
                candidate = self._establish(candidate, old)
                bucket[key] = candidate
            self._emit("MODIFIED", rt, candidate, old)
            return candidate

    @staticmethod
    def _generation_changes(rt: ResourceType, old: Obj, new: Obj) -> bool:
        if rt.custom:
            ignored = ("metadata", "status") if "status" in rt.subresources else ("metadata",)
            return _without(old, *ignored) != _without(new, *ignored)
        if old.get("spec") != new.get("spec"):
            return True
        if rt.annotations_bump_generation:
            return old["metadata"].get("annotations") != new["metadata"].get("annotations")
        return False

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        *,
        propagation: str = "Background",
        preconditions: dict[str, Any] | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """DELETE semantics; ``dry_run``: preconditions checked, the object answered, nothing deleted."""
        with self.lock:
            key = (namespace if rt.namespaced else "", name)
            obj = self._bucket(rt).get(key)
            if obj is None:
                raise not_found(rt, name)
            pre = preconditions or {}
            if pre.get("uid") and pre["uid"] != obj["metadata"]["uid"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {rt.qualified} "{name}": Precondition failed: UID in precondition: {pre["uid"]}, UID in object meta: {obj["metadata"]["uid"]}',
                )
            if pre.get("resourceVersion") and pre["resourceVersion"] != obj["metadata"]["resourceVersion"]:
                raise conflict(rt, name)
            if dry_run:
                return obj
            uid = obj["metadata"]["uid"]
            if propagation == "Orphan":
                self._orphan_dependents(uid)
            elif propagation == "Foreground":
                for dep_rt, dep in self.dependents(uid):
                    self._delete_quiet(dep_rt, dep, "Foreground")
            if obj["metadata"].get("finalizers"):
                if obj["metadata"].get("deletionTimestamp"):
                    return obj
                marked = dict(obj)
                marked["metadata"] = dict(obj["metadata"], deletionTimestamp=now(), deletionGracePeriodSeconds=0)
                marked["metadata"]["resourceVersion"] = self._next_rv()
                self._put(rt, key, marked, obj)
                self._emit("MODIFIED", rt, marked, obj)
                return marked
            removed = dict(obj)
            removed["metadata"] = dict(obj["metadata"], resourceVersion=self._next_rv())
            return self._remove(rt, key, removed)

    def _delete_quiet(self, rt: ResourceType, obj: Obj, propagation: str) -> None:
        with contextlib.suppress(ApiError):  # already gone
            self.delete(rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"], propagation=propagation)

    def _remove(self, rt: ResourceType, key: tuple[str, str], obj: Obj) -> Obj:
        self._bucket(rt).pop(key, None)
        self.by_uid.pop(obj["metadata"]["uid"], None)
        for owner in self._owner_uids(obj):
            self._unown(owner, obj["metadata"]["uid"])
        self.appliers.pop(obj["metadata"]["uid"], None)
        self._emit("DELETED", rt, obj, None)
        if rt.kind == "CustomResourceDefinition":
            for served in self.registry.remove_crd(obj["metadata"]["name"]):
                for (ns, name), cr in list(self.objects.get((served.group, served.plural), {}).items()):
                    self._remove(
                        served, (ns, name), dict(cr, metadata=dict(cr["metadata"], resourceVersion=self._next_rv()))
                    )
        if rt.kind == "Namespace":
            for other in self.registry.all():
                if not other.namespaced:
                    continue
                for (ns, name), child in list(self.objects.get((other.group, other.plural), {}).items()):
                    if ns == key[1]:
                        self._remove(
                            other,
                            (ns, name),
                            dict(child, metadata=dict(child["metadata"], resourceVersion=self._next_rv())),
                        )
        return obj

    # --- ownership -----------------------------------------------------------------

    def dependents(self, uid: str) -> list[tuple[ResourceType, Obj]]:
        out = []
        with self.lock:
            for dependent, rt in list(self.owned.get(uid, {}).items()):
                obj = self.find_uid(dependent)
                if obj is not None:
                    out.append((rt, obj))
        return out

    def _orphan_dependents(self, uid: str) -> None:
        for rt, dep in self.dependents(uid):
            refs = [r for r in dep["metadata"]["ownerReferences"] if r.get("uid") != uid]
            updated = dict(dep, metadata=dict(dep["metadata"], ownerReferences=refs))
            if not refs:
                updated["metadata"].pop("ownerReferences")
            self.update(rt, dep["metadata"].get("namespace", ""), dep["metadata"]["name"], updated)

    def collect_garbage(self, uid: str) -> None:
        """Background deletion of the dependents of a deleted owner (the GC controller)."""
        with self.lock:
            for rt, dep in self.dependents(uid):
                refs = dep["metadata"].get("ownerReferences") or []
                alive = [r for r in refs if r.get("uid") != uid and self.find_uid(r.get("uid", "")) is not None]
                if alive:
                    updated = dict(dep, metadata=dict(dep["metadata"], ownerReferences=alive))
                    self.update(rt, dep["metadata"].get("namespace", ""), dep["metadata"]["name"], updated)
                else:
                    self._delete_quiet(rt, dep, "Background")

    # --- watch ---------------------------------------------------------------------

    def watch(
        self,
        rt: ResourceType,
        namespace: str | None,
        match: Predicate,
        since: int,
        *,
        stop: threading.Event,
        timeout: float,
        bookmark_every: float | None = None,
    ) -> Iterator[tuple[str, Obj]]:
        """Events after resourceVersion ``since``; 410 Gone when the history no longer has them.

        With ``bookmark_every``, a ``BOOKMARK`` (its object: ``{"resourceVersion": ...}``) comes at
        that interval, events or not, as kube-apiserver's watch cache sends one a minute to watchers
        that ask (``allowWatchBookmarks``; ``defaultBookmarkFrequency`` in k8s.io/apiserver's cacher)."""
        key = (rt.group, rt.plural)
        deadline = _monotonic() + timeout
        next_bookmark = _monotonic() + bookmark_every if bookmark_every else None
        position = since
        with self.lock:
            if since < self.compacted:
                raise ApiError(410, "Expired", f"too old resource version: {since} ({self.compacted + 1})")
        while not stop.is_set() and not self.closed:
            batch: list[tuple[str, Obj]] = []
            with self.lock:
                remaining = deadline - _monotonic()
                if remaining <= 0:
                    return
                if self.rv <= position:
                    self.changed.wait(min(remaining, 0.5, *([max(0.0, next_bookmark - _monotonic())] if next_bookmark else [])))
                if position < self.compacted:
                    raise ApiError(410, "Expired", f"too old resource version: {position} ({self.compacted + 1})")
                for event in self.events[bisect.bisect_right(self.event_rvs, position) :]:
                    position = event.rv
                    if event.key != key or (namespace is not None and event.namespace != namespace):
                        continue
                    now_matches = match(event.obj)
                    was_matching = event.old is not None and match(event.old)
                    if event.type == "MODIFIED" and not now_matches and was_matching:
                        batch.append(("DELETED", event.obj))
                    elif event.type == "MODIFIED" and now_matches and not was_matching:
                        batch.append(("ADDED", event.obj))
                    elif now_matches:
                        batch.append((event.type, event.obj))
                position = max(position, self.rv)
            yield from batch
            if next_bookmark is not None and _monotonic() >= next_bookmark:
                next_bookmark = _monotonic() + (bookmark_every or 0.0)
                yield "BOOKMARK", {"resourceVersion": str(position)}

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.changed.notify_all()


def _monotonic() -> float:
    import time

    return time.monotonic()


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def compact(store: Store) -> None:
    """Drop the whole watch history (tests: make every older resourceVersion 410 Gone)."""
    with store.lock:
        if store.events:
            store.compacted = store.event_rvs[-1]
            store.events.clear()
            store.event_rvs.clear()
