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
from dataclasses import dataclass, field
from typing import Any, Literal

from eevee.engine.diff import managed_patch
from eevee.engine.render import CHILD_LABEL, DesiredChild, InvalidSpec, Renderer, Rendering
from eevee.engine.status import Problem, compute_status, gauge_samples, status_changed
from eevee.engine.tables import RuleSet, Table
from eevee.kube.client import JSON_PATCH, MERGE_PATCH, Kube, KubeError, plural_of
from eevee.metrics import Metrics
from eevee.operator.events import EventRecorder
from eevee.operator.snapshot import Obj, Snapshot, key_of
from eevee.timestamps import rfc3339_now

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
    gauges: list[tuple[str, str, float]] = field(default_factory=list)


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        *,
        metrics: Metrics,
        events: EventRecorder,
        operator_scope: dict[str, str],
        dry_run: bool = False,
    ) -> None:
        self.kube = kube
        self.metrics = metrics
        self.events = events
        self.operator_scope = operator_scope
        self.dry_run = dry_run

    def renderer(self, rules: RuleSet, snapshot: Snapshot, cache: Any = None) -> Renderer:
        return Renderer(rules, lookup=snapshot.lookup, operator=self.operator_scope, cache=cache)

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
        except InvalidSpec as error:
            outcome.result = "invalid"
            self._status(table, resource, renderer, snapshot, set(), Problem(error.reason, str(error)), outcome, where)
            self.metrics.errors.labels(kind, error.reason).inc()
            self._finish(kind, outcome, started)
            return outcome
        try:
            self._children(resource, table, rendering, snapshot, outcome, where)
            problem = None
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

    def _finish(self, kind: str, outcome: Outcome, started: float) -> None:
        seconds = time.monotonic() - started
        self.metrics.reconciles.labels(kind, outcome.result).inc()
        self.metrics.reconcile_seconds.labels(kind, outcome.result).observe(seconds)

    # --- children ----------------------------------------------------------------------

    def _children(
        self,
        resource: Obj,
        table: Table,
        rendering: Rendering,
        snapshot: Snapshot,
        outcome: Outcome,
        where: dict[str, str],
    ) -> None:
        changed: list[str] = []
        for child in rendering.children:
            action = self._apply(resource, child, snapshot, outcome)
            if action:
                changed.append(f"{action} {child.kind} {child.name}")
                log.info("%s %s %s", action, child.kind, child.name, extra=where)
        rendered = {(c.kind, c.namespace, c.name) for c in rendering.children}
        uid = resource["metadata"].get("uid", "")
        for live in snapshot.owned_by(uid):
            if key_of(live) in rendered or not self._prunable(table, live):
                continue
            self._delete(live, snapshot, outcome)
            changed.append(f"deleted {live['kind']} {live['metadata']['name']}")
            log.info("deleted %s %s (no longer rendered)", live["kind"], live["metadata"]["name"], extra=where)
        if changed:
            outcome.result = "changed"
            if not self.dry_run:
                self.events.record(resource, "Normal", "Reconciled", "; ".join(changed))

    @staticmethod
    def _prunable(table: Table, live: Obj) -> bool:
        child_id = (live["metadata"].get("labels") or {}).get(CHILD_LABEL)
        rule = next((c for c in table.children if c.id == child_id), None)
        return rule is None or rule.prune

    def _apply(self, resource: Obj, child: DesiredChild, snapshot: Snapshot, outcome: Outcome) -> str | None:
        plural = plural_of(child.kind)
        live = snapshot.child(child.kind, child.namespace, child.name)
        if live is None:
            if self.dry_run:
                outcome.writes.append(PlannedWrite("create", child.kind, child.namespace, child.name, child.body))
                return "created"
            try:
                created = self.kube.create(child.api_version, plural, child.namespace, child.body)
            except KubeError as error:
                if error.code != 409 or error.reason != "AlreadyExists":
                    raise
                # It exists but was not in our list (made by someone else, or before our label):
                # adopt it, unless another controller owns it.
                live = self.kube.get(child.api_version, plural, child.namespace, child.name)
                self._check_ownership(resource, live)
            else:
                _fill(created, child)
                snapshot.put_child(created)
                self.metrics.writes.labels(child.kind, "create").inc()
                return "created"
        else:
            self._check_ownership(resource, live)
        patch = managed_patch(child, live)
        if patch is None:
            return None
        if self.dry_run:
            outcome.writes.append(PlannedWrite("patch", child.kind, child.namespace, child.name, patch.patch))
            return "updated"
        try:
            patched = self.kube.patch(
                child.api_version, plural, child.namespace, child.name, patch.patch, content_type=JSON_PATCH
            )
        except KubeError as error:
            if error.code != 409:
                raise
            # Someone wrote in between: read it again and make a new patch, once.
            live = self.kube.get(child.api_version, plural, child.namespace, child.name)
            patch = managed_patch(child, live)
            if patch is None:
                _fill(live, child)
                snapshot.put_child(live)
                return None
            patched = self.kube.patch(
                child.api_version, plural, child.namespace, child.name, patch.patch, content_type=JSON_PATCH
            )
        _fill(patched, child)
        snapshot.put_child(patched)
        self.metrics.writes.labels(child.kind, "patch").inc()
        return "updated"

    @staticmethod
    def _check_ownership(resource: Obj, live: Obj) -> None:
        uid = resource["metadata"].get("uid")
        for ref in live["metadata"].get("ownerReferences") or []:
            if ref.get("controller") and ref.get("uid") != uid:
                kind, name = live["kind"], live["metadata"]["name"]
                raise KubeError(
                    409,
                    "OwnedByAnother",
                    f"{kind} {name} already exists and is controlled by {ref.get('kind')} {ref.get('name')}",
                )

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
        scope: dict[str, Any] = dict(resource)
        scope["values"] = rendering.values if rendering is not None else {}
        live: dict[str, Obj] = {}
        if rendering is not None:
            for child in rendering.children:
                found = snapshot.child(child.kind, child.namespace, child.name)
                if found is not None:
                    live[child.id] = found
        previous = resource.get("status") or {}
        status = compute_status(
            table, scope, live, rendered=rendered, problem=problem, previous=previous, now=rfc3339_now()
        )
        outcome.gauges = gauge_samples(table, scope, live)
        if not status_changed(previous, status):
            return
        old = next((c for c in previous.get("conditions") or [] if c.get("type") == "Ready"), {})
        new = status["conditions"][0]
        if (
            problem is not None
            and (old.get("reason"), old.get("message")) != (new["reason"], new["message"])
            and not self.dry_run
        ):
            self.events.record(resource, "Warning", problem.reason, problem.message)
            log.warning("%s: %s", problem.reason, problem.message, extra=where)
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
        snapshot.put_resource(updated)
        if old.get("status") != new["status"] or old.get("reason") != new["reason"]:
            log.info("Ready=%s (%s): %s", new["status"], new["reason"], new["message"], extra=where)


def _fill(obj: Obj, child: DesiredChild) -> None:
    """Answers to writes carry apiVersion/kind; make sure (some servers omit them)."""
    obj.setdefault("apiVersion", child.api_version)
    obj.setdefault("kind", child.kind)
