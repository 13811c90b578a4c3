"""Reconciling one custom resource: render, diff, create or patch, prune, status.

Shaped like a controller-runtime reconciler: given one resource and what the last
list said about the cluster (the :class:`Snapshot`), make the children match the
rendering and report the outcome; keep no state between calls except the
snapshot it updates with what its own writes return. Retries, backoff, passes,
watches and leadership are the runner's business.

Every write is the minimum: a child that matches is not touched, a patch touches
only managed fields and carries a resourceVersion precondition, status is written
only when it changed. With ``dry_run`` the writes are collected, not sent
(``eevee-operator diff``).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from eevee.engine.diff import Trimmed, leaves_digest, managed_patch, needs_patch, recorded_leaves
from eevee.engine.paths import format_path, get
from eevee.engine.pods import pod_problem, pod_status
from eevee.engine.render import (
    CHILD_LABEL,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MANAGED_FIELDS,
    RETAIN,
    DesiredChild,
    InvalidSpec,
    Probes,
    RenderCache,
    Renderer,
    Rendering,
    run_checks,
)
from eevee.engine.status import (
    Problem,
    Sample,
    child_readiness,
    compute_status,
    condition_samples,
    gauge_samples,
    status_changed,
)
from eevee.engine.tables import RuleSet, Table
from eevee.kube.client import JSON_PATCH, MERGE_PATCH, Kube, KubeError, plural_of
from eevee.metrics import Metrics
from eevee.operator.events import EventRecorder
from eevee.operator.snapshot import Key, Obj, Snapshot, key_of, shared
from eevee.timestamps import rfc3339_now, seconds_between

log = logging.getLogger("eevee.reconciler")
Result = Literal["unchanged", "changed", "invalid", "error"]


@dataclass
class PlannedWrite:
    action: Literal["create", "patch", "delete", "status"]
    kind: str
    namespace: str
    name: str
    body: Any = None


@dataclass
class Outcome:
    result: Result
    writes: list[PlannedWrite] = field(default_factory=list)
    error: KubeError | None = None
    gauges: list[Sample] = field(default_factory=list)


# A patch answered 409 Conflict (the object moved since it was read) is made anew from the object
# read again, up to this many attempts in all: client-go's retry.DefaultRetry makes 5, "for a
# conflict where multiple clients are making changes to the same resource". A Deployment in a
# rollout has its status written many times a second; one retry was not always enough.
CONFLICT_ATTEMPTS = 5
WHOLE_OBJECTS_KEPT = 64  # whole children remembered after a write or a read (a few MB at most)


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        *,
        metrics: Metrics,
        events: EventRecorder,
        operator_scope: dict[str, str],
        dry_run: bool = False,
        probes: Probes | None = None,
    ) -> None:
        self.kube = kube
        self.probes = probes
        self.metrics = metrics
        self.events = events
        self.operator_scope = operator_scope
        self.dry_run = dry_run
        # The whole objects of the children written or read last (the cache keeps them trimmed):
        # the next patch of one whose spec did not move since is built without reading it again.
        self._whole: OrderedDict[Key, Obj] = OrderedDict()

    def renderer(self, rules: RuleSet, snapshot: Snapshot, cache: Any = None) -> Renderer:
        def fetch(api_version: str, kind: str, namespace: str, name: str) -> Obj | None:
            return snapshot.fetch(self.kube, api_version, kind, namespace, name)

        return Renderer(
            rules, lookup=snapshot.lookup, fetch=fetch, operator=self.operator_scope, cache=cache, probes=self.probes
        )

    # --- one resource ------------------------------------------------------------------

    def reconcile(self, resource: Obj, rules: RuleSet, snapshot: Snapshot, renderer: Renderer) -> Outcome:
        kind = resource["kind"]
        where = {
            "kind": kind,
            "namespace": resource["metadata"].get("namespace", ""),
            "resource_name": resource["metadata"]["name"],
        }
        started = time.monotonic()
        table = rules.table(kind)
        outcome = Outcome("unchanged")
        if resource["metadata"].get("deletionTimestamp"):
            return outcome  # being deleted: garbage collection takes the children
        try:
            rendering = renderer.render(resource)
            live = self._live_children(rendering, snapshot)
            if any(check.stage == "live" for check in table.checks):
                run_checks(table, {**resource, **(rendering.scope or {}), "live": live}, stage="live")
        except (InvalidSpec, KubeError) as error:
            problem = (
                Problem(error.reason, str(error))
                if isinstance(error, InvalidSpec)
                else Problem("ReconcileFailed", f"reading what {where['resource_name']} references: {error}")
            )
            outcome.result = "invalid" if isinstance(error, InvalidSpec) else "error"
            self._status(table, resource, renderer, snapshot, set(), problem, outcome, where)
            self.metrics.errors.labels(kind, problem.reason).inc()
            self._finish(kind, outcome, started)
            return outcome
        try:
            problem = None
            if paused(resource):  # a person is debugging its children by hand: write none of them
                outcome.result = "paused"
                problem = PAUSED
            else:
                self._children(resource, table, rendering, snapshot, outcome, where, renderer.cache)
        except Refused as refusal:
            outcome.result = "invalid"
            problem = Problem(refusal.reason, refusal.message)
            self.metrics.errors.labels(kind, refusal.reason).inc()
        except KubeError as error:
            outcome.result = "error"
            outcome.error = error
            problem = Problem("ReconcileFailed", f"{error}")
            self.metrics.errors.labels(kind, "ReconcileFailed").inc()
            log.warning("reconcile failed: %s", error, extra=where)
        try:
            self._status(
                table,
                resource,
                renderer,
                snapshot,
                {c.id for c in rendering.children},
                problem,
                outcome,
                where,
                rendering=rendering,
            )
        except KubeError as error:
            if outcome.error is None:
                outcome.result, outcome.error = "error", error
                self.metrics.errors.labels(kind, "StatusWriteFailed").inc()
            log.warning("status write failed: %s", error, extra=where)
        self._finish(kind, outcome, started)
        return outcome

    @staticmethod
    def _live_children(rendering: Rendering, snapshot: Snapshot) -> dict[str, Obj]:
        live: dict[str, Obj] = {}
        for child in rendering.children:
            found = snapshot.child(child.kind, child.namespace, child.name)
            if found is not None:
                live[child.id] = found
        return live

    def _finish(self, kind: str, outcome: Outcome, started: float) -> None:
        self.metrics.observe_reconcile(kind, outcome.result, time.monotonic() - started)

    # --- children ----------------------------------------------------------------------

    def _children(
        self,
        resource: Obj,
        table: Table,
        rendering: Rendering,
        snapshot: Snapshot,
        outcome: Outcome,
        where: dict[str, str],
        cache: RenderCache | None = None,
    ) -> None:
        changed: list[Change] = []
        failures: list[KubeError | Refused] = []
        for child in rendering.children:
            if child.kind in snapshot.unavailable:
                failures.append(
                    Refused(
                        "KindUnavailable",
                        f"{child.kind} {child.name} cannot be made: the API server does not list "
                        f"{snapshot.unavailable[child.kind]}; the other children are reconciled",
                    )
                )
                continue
            if _held_back(resource, child, rendering, snapshot):
                continue
            try:
                action = self._apply(resource, child, snapshot, outcome, None if cache is None else cache.verified)
            except (KubeError, Refused) as error:  # the other children still converge
                failures.append(error)
                continue
            if action:
                changed.append(action)
                log.info("%s %s %s", action.verb, child.kind, child.name, extra=where)
        rendered = {(c.kind, c.namespace, c.name) for c in rendering.children}
        uid = resource["metadata"].get("uid", "")
        for live in snapshot.owned_by(uid):
            if key_of(live) in rendered or not self._prunable(table, live):
                continue
            self._delete(live, snapshot, outcome)
            changed.append(Change("Deleted", "deleted", live["kind"], live["metadata"]["name"], "no longer rendered"))
            log.info("deleted %s %s (no longer rendered)", live["kind"], live["metadata"]["name"], extra=where)
        if changed:
            outcome.result = "changed"
            if not self.dry_run:
                for change in changed:  # one Event per change, its reason saying what happened
                    self.events.record(resource, "Normal", change.reason, change.message)
        # A transient API error is retried with backoff; a refusal waits for a change.
        transient = [f for f in failures if isinstance(f, KubeError)]
        if transient or failures:
            raise (transient or failures)[0]

    @staticmethod
    def _prunable(table: Table, live: Obj) -> bool:
        """A child the rules no longer render goes, unless its rule says prune: false, or (its
        rule gone from the table) the object itself says it was made to be retained."""
        if (live["metadata"].get("annotations") or {}).get(RETAIN) == "true":
            return False
        child_id = (live["metadata"].get("labels") or {}).get(CHILD_LABEL)
        rule = next((c for c in table.children if c.id == child_id), None)
        return rule is None or rule.prune

    def _apply(
        self,
        resource: Obj,
        child: DesiredChild,
        snapshot: Snapshot,
        outcome: Outcome,
        verified: dict[Key, tuple[DesiredChild, str]] | None = None,
    ) -> Change | None:
        plural = plural_of(child.kind)
        key = (child.kind, child.namespace, child.name)
        live = snapshot.child(child.kind, child.namespace, child.name)
        if live is not None and verified is not None:
            seen = verified.get(key)
            if seen is not None and seen[0] is child and seen[1] == live["metadata"].get("resourceVersion"):
                return None  # this rendering matched this very version of it already
        if live is None:
            if self.dry_run:
                outcome.writes.append(PlannedWrite("create", child.kind, child.namespace, child.name, child.body))
                return Change.created(child)
            try:
                created = self.kube.create(child.api_version, plural, child.namespace, child.body)
            except KubeError as error:
                if error.code != 409 or error.reason != "AlreadyExists":
                    raise
                # It exists but was not in our list (made by our predecessor, by Helm, by
                # hand, or before our label): adopt it, as far as the table allows.
                live = self.kube.get(child.api_version, plural, child.namespace, child.name)
                _fill(live, child)
                self._check_ownership(resource, live, child)
            else:
                _fill(created, child)
                snapshot.cache_child(created)
                self._remember(created)
                self.metrics.writes.labels(child.kind, "create").inc()
                return Change.created(child)
        else:
            self._check_ownership(resource, live, child)
        body = child.body  # decoded once for the checks and the diff below
        changed = _immutable_change(child, live, body)
        if changed is not None:
            if not child.recreate:
                raise Refused(
                    "ImmutableFieldChanged",
                    f"{child.kind} {child.name}: {changed} cannot be changed once the object exists, and the rule "
                    "table does not allow re-creating it",
                )
            return self._recreate(child, live, changed, snapshot, outcome)
        if isinstance(live, Trimmed) and needs_patch(child, live, body):
            # The cache holds a digest of the managed fields: a patch is built from the whole object.
            live = self._whole_object(key, live) or self._read(child)
        patch = managed_patch(child, live, body)
        if patch is None:
            if verified is not None:
                verified[key] = (child, live["metadata"].get("resourceVersion", ""))
            return None
        if self.dry_run:
            outcome.writes.append(PlannedWrite("patch", child.kind, child.namespace, child.name, patch.patch))
            return Change.updated(child, patch.patch)
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                patched = self.kube.patch(
                    child.api_version, plural, child.namespace, child.name, patch.patch, content_type=JSON_PATCH
                )
                break
            except KubeError as error:
                if error.code != 409 or attempt == CONFLICT_ATTEMPTS:
                    raise
            # Someone wrote in between (a rollout's status, another client): read it again and
            # make a new patch, as client-go's retry.RetryOnConflict does.
            live = self._read(child)
            patch = managed_patch(child, live, body)
            if patch is None:
                _fill(live, child)
                snapshot.cache_child(live)
                return None
        _fill(patched, child)
        snapshot.cache_child(patched)
        self._remember(patched)
        self.metrics.writes.labels(child.kind, "patch").inc()
        return Change.updated(child, patch.patch)

    def _read(self, child: DesiredChild) -> Obj:
        """The child as the API server holds it now, whole."""
        live = self.kube.get(child.api_version, plural_of(child.kind), child.namespace, child.name)
        _fill(live, child)
        self._remember(live)
        return live

    def _remember(self, whole: Obj) -> None:
        key = key_of(whole)
        self._whole[key] = whole
        self._whole.move_to_end(key)
        while len(self._whole) > WHOLE_OBJECTS_KEPT:
            self._whole.popitem(last=False)

    def _whole_object(self, key: Key, cached: Trimmed) -> Obj | None:
        """The whole object behind the cache's trimmed copy, without a request: the last one written
        or read, if its spec has not moved since (the same uid and metadata.generation, which the API
        server raises on every spec change) and its managed fields hold what the digest says. Its
        metadata and status are the cache's, which are current."""
        whole = self._whole.get(key)
        metadata = cached["metadata"]
        if whole is None or metadata.get("generation") is None:
            return None
        held = whole["metadata"]
        if (held.get("uid"), held.get("generation")) != (metadata.get("uid"), metadata["generation"]):
            return None
        record = (metadata.get("annotations") or {}).get(MANAGED_FIELDS)
        rebuilt = {**whole, "metadata": metadata}
        if "status" in cached:
            rebuilt["status"] = cached["status"]
        if not isinstance(record, str) or leaves_digest(rebuilt, recorded_leaves(record)) != cached.digest:
            return None
        return rebuilt

    @staticmethod
    def _check_ownership(resource: Obj, live: Obj, child: DesiredChild) -> None:
        """Another controller's object is never taken (unless the table names that controller in
        ``adoptFrom``); with ``adopt: owned`` neither is an object no operator made for this
        resource (a user's own Secret)."""
        uid = resource["metadata"].get("uid")
        kind, name = live["kind"], live["metadata"]["name"]
        references = live["metadata"].get("ownerReferences") or []
        for ref in references:
            if ref.get("controller") and ref.get("uid") != uid and ref.get("uid") not in child.adopt_from:
                raise Refused(
                    "OwnedByAnother",
                    f"{child.origin}: {kind} {name} already exists and is controlled by "
                    f"{ref.get('kind')} {ref.get('name')}; it is left alone",
                )
        ours = (live["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY
        if child.adopt == "owned" and not ours and not any(ref.get("uid") == uid for ref in references):
            raise Refused(
                "AdoptionRefused",
                f"{child.origin}: {kind} {name} already exists and was not made by the operator, so it is "
                "left alone (nothing of it is changed); use another name, or delete it to have one created",
            )

    def _recreate(self, child: DesiredChild, live: Obj, changed: str, snapshot: Snapshot, outcome: Outcome) -> Change:
        """Delete and create again: the table allows it for a child whose immutable field must change."""
        log.info("re-creating %s %s: %s cannot be changed in place", child.kind, child.name, changed)
        self._delete(live, snapshot, outcome)
        if self.dry_run:
            outcome.writes.append(PlannedWrite("create", child.kind, child.namespace, child.name, child.body))
            return Change("Recreated", "re-created", child.kind, child.name, f"{changed} cannot change in place")
        created = self.kube.create(child.api_version, plural_of(child.kind), child.namespace, child.body)
        _fill(created, child)
        snapshot.cache_child(created)
        self._remember(created)
        self.metrics.writes.labels(child.kind, "create").inc()
        return Change("Recreated", "re-created", child.kind, child.name, f"{changed} cannot change in place")

    def _delete(self, live: Obj, snapshot: Snapshot, outcome: Outcome) -> None:
        kind, namespace, name = key_of(live)
        if self.dry_run:
            outcome.writes.append(PlannedWrite("delete", kind, namespace, name))
            return
        try:
            self.kube.delete(live["apiVersion"], plural_of(kind), namespace, name, uid=live["metadata"].get("uid"))
        except KubeError as error:
            if error.code != 404:
                raise
        snapshot.drop_child((kind, namespace, name))
        self.metrics.writes.labels(kind, "delete").inc()

    # --- status ------------------------------------------------------------------------

    def _status(
        self,
        table: Table,
        resource: Obj,
        renderer: Renderer,
        snapshot: Snapshot,
        rendered: set[str],
        problem: Problem | None,
        outcome: Outcome,
        where: dict[str, str],
        rendering: Rendering | None = None,
    ) -> None:
        live = self._live_children(rendering, snapshot) if rendering is not None else {}
        owned = snapshot.owned_by(resource["metadata"].get("uid", ""))
        pod = snapshot.speaking_pod(live[table.pods_of]) if table.pods_of and table.pods_of in live else None
        # The same inputs as last time (this version of the resource, this rendering, these
        # versions of its children, no new problem): the same status, already written.
        cache = renderer.cache
        inputs = (
            resource["metadata"].get("resourceVersion"),
            rendering,
            problem,
            tuple(sorted((k, o["metadata"].get("resourceVersion")) for k, o in live.items())),
            tuple(sorted((key_of(o), o["metadata"].get("resourceVersion")) for o in owned)),
            pod and (pod["metadata"]["name"], pod["metadata"].get("resourceVersion")),
        )
        key = key_of(resource)
        if cache is not None and not self.dry_run:
            seen = cache.statuses.get(key)
            if seen is not None and seen[0][0] == inputs[0] and seen[0][1] is rendering and seen[0][2:] == inputs[2:]:
                outcome.gauges = seen[1]
                return
        scope: dict[str, Any] = {**resource, **(rendering.scope or {})} if rendering is not None else dict(resource)
        scope.setdefault("values", {})
        previous = resource.get("status") or {}
        stamp = rfc3339_now()
        pod_fields: dict[str, Any] = {}
        failing = problem if problem is not None and problem is not PAUSED else None
        if table.pods_of and problem is None:
            problem, pod_fields = pod_report(pod, previous, stamp)
        kinds = {f"{c.api_version}/{c.kind}" for c in table.children}
        kinds |= {f"{o['apiVersion']}/{o['kind']}" for o in owned}
        status = compute_status(
            table,
            scope,
            live,
            rendered=rendered,
            problem=problem,
            previous=previous,
            now=stamp,
            child_kinds=sorted(kinds),
        )
        status.update(pod_fields)
        if table.marks:
            self._marks(table, {**scope, "status": status, "live": live}, snapshot, outcome, where)
        # The table's gauges read the status being written (a module's restarts).
        outcome.gauges = gauge_samples(table, {**scope, "status": status}, live)
        outcome.gauges += condition_samples(resource["kind"], status, failing)
        if not status_changed(previous, status):
            if cache is not None:
                cache.statuses[key] = (inputs, outcome.gauges)
            return
        old = next((c for c in previous.get("conditions") or [] if c.get("type") == "Ready"), {})
        new = status["conditions"][0]
        # An Event when what is wrong changes (a Pod's problem: when its reason does).
        fields = 1 if problem is not None and problem.event_on_reason else 2
        said, saying = (old.get("reason"), old.get("message"))[:fields], (new["reason"], new["message"])[:fields]
        if problem is not None and said != saying and not self.dry_run:
            self.events.record(resource, problem.event_type, problem.reason, problem.message)
            log.log(logging.WARNING if problem.event_type == "Warning" else logging.INFO, "%s: %s",
                    problem.reason, problem.message, extra=where)
        if self.dry_run:
            outcome.writes.append(
                PlannedWrite("status", resource["kind"], where["namespace"], where["resource_name"], status)
            )
            return
        updated = self.kube.patch(
            resource["apiVersion"],
            table.plural,
            where["namespace"],
            where["resource_name"],
            {"status": status},
            content_type=MERGE_PATCH,
            subresource="status",
        )
        snapshot.put_resource(shared(updated))
        if old.get("status") != new["status"] or old.get("reason") != new["reason"]:
            log.info("Ready=%s (%s): %s", new["status"], new["reason"], new["message"], extra=where)

    def _marks(
        self, table: Table, scope: Mapping[str, Any], snapshot: Snapshot, outcome: Outcome, where: dict[str, str]
    ) -> None:
        """The table's ``marks``: annotations merged onto a referenced object once their condition
        holds of the status being written (only those it lacks; nothing else of it is touched)."""
        refs = scope.get("refs") or {}
        for mark in table.marks:
            target = refs.get(mark.reference)
            if not isinstance(target, dict) or not target.get("metadata") or not mark.when(scope):
                continue
            meta = target["metadata"]
            have = meta.get("annotations") or {}
            missing = {key: value for key, value in mark.annotations if have.get(key) != value}
            if not missing:
                continue
            body = {"metadata": {"annotations": missing}}
            kind, namespace, name = target.get("kind", ""), meta.get("namespace", ""), meta["name"]
            if self.dry_run:
                outcome.writes.append(PlannedWrite("patch", kind, namespace, name, body))
                continue
            updated = self.kube.patch(
                target.get("apiVersion", "v1"), plural_of(kind), namespace, name, body, content_type=MERGE_PATCH
            )
            self.metrics.writes.labels(kind, "patch").inc()
            log.info("annotated %s %s: %s", kind, name, ", ".join(f"{k}={v}" for k, v in missing.items()), extra=where)
            if snapshot.child(kind, namespace, name) is not None:
                snapshot.cache_child(updated)


# Like kro's kro.run/reconcile: suspended and Crossplane's crossplane.io/paused: a person stops the
# operator writing a resource's children (to hand-edit a Deployment while debugging); its status
# says so; removing the annotation converges at once (its watch event), and deletion still
# cascades (garbage collection needs no write of ours).
PAUSE_ANNOTATION = "eevee.bot/reconcile"
PAUSED = Problem(
    "Paused",
    f"reconciliation is paused ({PAUSE_ANNOTATION}: paused): no child is written; remove the annotation to resume",
    "Normal",
)


RESTARTS_EVERY = 60.0  # seconds: a restart count that alone changed is written at most this often


def pod_report(pod: Obj | None, previous: Obj, stamp: str) -> tuple[Problem | None, dict[str, Any]]:
    """What the speaking Pod adds to a status: its problem as the Ready condition (one Event per
    change of reason), and ``restarts``; a new restart count is written at most once every
    RESTARTS_EVERY seconds (``podReportedAt``) while nothing else changes, so a crash loop is not a
    stream of writes."""
    if pod is None:
        return None, {}
    restarts = (pod_status(pod) or {}).get("restartCount", 0)
    found = pod_problem(pod)
    old = next((c for c in previous.get("conditions") or [] if c.get("type") == "Ready"), {})
    fields: dict[str, Any] = {"restarts": restarts, "podReportedAt": previous.get("podReportedAt") or stamp}
    counted = previous.get("restarts")
    if counted is not None and counted != restarts:
        same_story = found is None or found.reason == old.get("reason")
        if same_story and seconds_between(previous.get("podReportedAt"), stamp) < RESTARTS_EVERY:
            fields["restarts"] = counted  # only the count moved, and lately: it waits
            if found is not None:
                return Problem(found.reason, old.get("message", ""), "Warning", True), fields
            return None, fields
        fields["podReportedAt"] = stamp
    if found is None:
        return None, fields
    return Problem(found.reason, f"{found.message}; {fields['restarts']} restarts", "Warning", True), fields


def paused(resource: Obj) -> bool:
    return (resource["metadata"].get("annotations") or {}).get(PAUSE_ANNOTATION) == "paused"


class Change(NamedTuple):
    """One write to a child, as an Event tells it: ``reason`` is what a user filters on."""

    reason: str  # Created, Updated, RolledOut, Scaled, ScaledDown, Recreated, Deleted
    verb: str
    kind: str
    name: str
    detail: str = ""

    @property
    def message(self) -> str:
        return f"{self.verb} {self.kind} {self.name}" + (f": {self.detail}" if self.detail else "")

    @classmethod
    def created(cls, child: DesiredChild) -> Change:
        return cls("Created", "created", child.kind, child.name)

    @classmethod
    def updated(cls, child: DesiredChild, ops: list[dict[str, Any]]) -> Change:
        """What a patch did, from the paths it wrote: a new pod template rolls the pods out;
        a replica count alone scales (to zero: scaled down)."""
        paths = [str(op.get("path", "")) for op in ops if op.get("path") != "/metadata/resourceVersion"]
        if any(p.startswith("/spec/template") for p in paths):
            return cls("RolledOut", "rolled out", child.kind, child.name, "new pod template")
        if paths and all(p == "/spec/replicas" for p in paths):
            replicas = next(op.get("value") for op in ops if op.get("path") == "/spec/replicas")
            reason = "ScaledDown" if replicas == 0 else "Scaled"
            return cls(reason, "scaled", child.kind, child.name, f"to {replicas} replicas")
        return cls("Updated", "updated", child.kind, child.name)


class Refused(Exception):
    """A child the operator will not touch as things are (adoption refused, immutable field);
    reported on the resource like an invalid spec, retried only when something changes."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _held_back(resource: Obj, child: DesiredChild, rendering: Rendering, snapshot: Snapshot) -> bool:
    """A child not to be made now: a ``once`` child made before (and gone since), or an ``after``
    child whose predecessors are not complete. What exists already is maintained as usual."""
    if not (child.once or child.after or child.create_if) or snapshot.child(
        child.kind, child.namespace, child.name
    ) is not None:
        return False
    if child.once and child.id in ((resource.get("status") or {}).get("childrenMade") or []):
        return True
    for earlier in rendering.children:
        if earlier.id in child.after:
            live = snapshot.child(earlier.kind, earlier.namespace, earlier.name)
            if live is None or child_readiness(live).state != "Ready":
                return True
    if child.create_if is not None:
        live_children = {c.id: found for c in rendering.children if (found := snapshot.child(*_key(c))) is not None}
        if not child.create_if({**resource, **(rendering.scope or {}), "live": live_children}):
            return True
    return False


def _key(child: DesiredChild) -> Key:
    return (child.kind, child.namespace, child.name)


def _immutable_change(child: DesiredChild, live: Obj, body: Obj) -> str | None:
    """The first immutable field whose rendered value (in ``body``) differs from the live one."""
    for path in child.immutable:
        desired, actual = get(body, path, None), get(live, path, None)
        if desired is not None and actual is not None and desired != actual:
            return format_path(path)
    return None


def _fill(obj: Obj, child: DesiredChild) -> None:
    """Answers to writes carry apiVersion/kind; make sure (some servers omit them)."""
    obj.setdefault("apiVersion", child.api_version)
    obj.setdefault("kind", child.kind)
