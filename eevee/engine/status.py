"""A resource's status from its live children: the ``Ready`` condition and status fields.

Pure: the reconciler passes the live children (as read or as just written), the
error it met if any, and the time. Child readiness is Kubernetes-generic, in the
spirit of kstatus: a Deployment is ready when its controller has observed the
current generation and every replica is updated and available; an object with a
``Ready`` condition follows it; anything else is ready once it exists. What is
specific to a kind (which children to wait for, overrides such as ``Disabled``,
extra status fields, gauges) comes from the table's ``status`` and ``metrics``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

from eevee.engine.expressions import UNSET
from eevee.engine.tables import RESERVED_METRICS, StatusOverride, Table

Readiness = Literal["Ready", "InProgress", "Failed"]
READY = "Ready"


class ChildState(NamedTuple):
    state: Readiness
    message: str


def child_readiness(obj: Mapping[str, Any]) -> ChildState:
    kind = obj.get("kind", "")
    name = obj.get("metadata", {}).get("name", "")
    status = obj.get("status") or {}
    if kind in ("Deployment", "StatefulSet") and str(obj.get("apiVersion", "")).startswith("apps/"):
        generation = obj.get("metadata", {}).get("generation", 0)
        if status.get("observedGeneration", 0) < generation:
            return ChildState(
                "InProgress", f"{kind} {name}: waiting for its controller to observe generation {generation}"
            )
        for condition in status.get("conditions") or []:
            if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
                return ChildState(
                    "Failed", f"{kind} {name}: progress deadline exceeded: {condition.get('message', '')}".strip()
                )
        replicas = (obj.get("spec") or {}).get("replicas", 1)
        updated = status.get("updatedReplicas", 0)
        available = status.get("availableReplicas", 0)
        ready = status.get("readyReplicas", 0)
        if updated < replicas:
            return ChildState("InProgress", f"{kind} {name}: {updated} of {replicas} replicas updated")
        if status.get("replicas", 0) > updated:
            return ChildState(
                "InProgress", f"{kind} {name}: {status['replicas'] - updated} old replicas pending termination"
            )
        if available < replicas or ready < replicas:
            return ChildState("InProgress", f"{kind} {name}: {min(ready, available)} of {replicas} replicas ready")
        return ChildState("Ready", f"{kind} {name}: {replicas} of {replicas} replicas ready")
    if kind == "Job" and str(obj.get("apiVersion", "")).startswith("batch/"):
        conditions = {c.get("type"): c for c in status.get("conditions") or [] if c.get("status") == "True"}
        if "Complete" in conditions or "SuccessCriteriaMet" in conditions:
            return ChildState("Ready", f"Job {name} completed")
        if "Failed" in conditions or "FailureTarget" in conditions:
            failed = conditions.get("Failed") or conditions["FailureTarget"]
            why = failed.get("message") or failed.get("reason") or ""
            return ChildState("Failed", f"Job {name} failed: {why}".strip())
        return ChildState("InProgress", f"Job {name} is running")
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready":
            if condition.get("status") == "True":
                return ChildState("Ready", f"{kind} {name} is ready")
            return ChildState(
                "InProgress", f"{kind} {name}: {condition.get('message') or condition.get('reason') or 'not ready'}"
            )
    return ChildState("Ready", f"{kind} {name} exists")


class Problem(NamedTuple):
    reason: str  # InvalidSpec, ReferenceNotFound, ReconcileFailed, Paused
    message: str
    event_type: str = "Warning"  # what its Event is: Normal for a state a user chose (Paused)
    event_on_reason: bool = False  # one Event per change of reason, not of message (a Pod's restarts)


def compute_status(
    table: Table,
    scope: Mapping[str, Any],
    live: Mapping[str, Mapping[str, Any]],
    *,
    rendered: set[str],
    problem: Problem | None,
    previous: Mapping[str, Any] | None,
    now: str,
    child_kinds: list[str] | None = None,
) -> dict[str, Any]:
    """The status this resource should have. ``rendered`` holds the ids of the children the
    current rendering has; ``live`` the live objects by id."""
    previous = previous or {}
    old = next((c for c in previous.get("conditions") or [] if c.get("type") == READY), None)
    status_scope = dict(scope)
    status_scope["live"] = live
    # Status fields first: the conditions of this write read them as written (a restore's
    # failure, recorded now, is in the message now).
    fields: dict[str, Any] = {}
    for patch in table.status_patches:
        target = patch.target(status_scope)
        if target is None or len(target) != 1 or not isinstance(target[0], str):
            continue
        if problem is None:
            result = patch.source.evaluate(status_scope)
            if result is not UNSET:
                fields[target[0]] = result
        elif target[0] in previous:  # keep the last known status fields; the condition says what is wrong
            fields[target[0]] = previous[target[0]]
    status_scope["status"] = {**previous, **fields}
    if problem is not None:
        value, reason, message = "False", problem.reason, problem.message
    else:
        override = next((o for o in table.overrides if o.when(status_scope)), None)
        if override is not None:
            value, reason, message = override.status, override.reason, _message(override, status_scope)
        else:
            value, reason, message = _readiness(table, live, rendered, old)
    generation = scope["metadata"].get("generation", 0)
    conditions = [_condition(READY, value, reason, message, generation, old, now)]
    earlier = {c.get("type"): c for c in previous.get("conditions") or []}
    for extra in table.conditions:
        if problem is not None:  # nothing new is known: the last word stands
            if extra.type in earlier:
                conditions.append(earlier[extra.type])
            continue
        if extra.when is not None and not extra.when(status_scope):
            continue  # does not apply (any more): the condition goes
        case = next((c for c in extra.cases if c.when(status_scope)), None)
        if case is not None:
            conditions.append(
                _condition(
                    extra.type, case.status, case.reason, _message(case, status_scope), generation,
                    earlier.get(extra.type), now,
                )
            )
    ours = {READY, *(extra.type for extra in table.conditions)}
    status: dict[str, Any] = {
        "observedGeneration": generation,
        # Conditions are a list keyed by type: ours first, anybody else's kept as they are.
        "conditions": conditions + [c for c in previous.get("conditions") or [] if c.get("type") not in ours],
    }
    once = {c.id for c in table.children if c.once}
    made = sorted({*(previous.get("childrenMade") or []), *(i for i in live if i in once)})
    if made:
        # One-shot children made so far: never made again (a finished Job its TTL removed).
        status["childrenMade"] = made
    if child_kinds is not None:
        # The kinds of child this resource may have ("apps/v1/Deployment"): after a table edit
        # drops a kind, the operator still knows to look for (and prune) objects of it.
        status["childKinds"] = child_kinds
    status.update(fields)
    return status


def _condition(
    type_: str, value: str, reason: str, message: str, generation: int, old: Mapping[str, Any] | None, now: str
) -> dict[str, Any]:
    return {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": old.get("lastTransitionTime", now) if old and old.get("status") == value else now,
    }


def _message(case: StatusOverride, scope: Mapping[str, Any]) -> str:
    text = case.message.render(scope)
    return str(text) if text is not UNSET else case.message.text


def _readiness(
    table: Table, live: Mapping[str, Mapping[str, Any]], rendered: set[str], old: Mapping[str, Any] | None
) -> tuple[str, str, str]:
    waiting: list[str] = []
    for child_id in table.wait_for:
        if child_id not in rendered:
            continue
        obj = live.get(child_id)
        if obj is None:
            waiting.append(f"{child_id} does not exist yet")
            continue
        state = child_readiness(obj)
        if state.state == "Failed":
            return "False", "Degraded", state.message
        if state.state == "InProgress":
            waiting.append(state.message)
    if not waiting:
        return "True", "Available", "all children are ready"
    been_ready = old is not None and (old.get("status") == "True" or old.get("reason") not in (None, "Creating"))
    return "False", "Updating" if been_ready else "Creating", "; ".join(waiting)


def status_changed(previous: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether writing ``new`` would change anything (the comparison that keeps status writes rare)."""
    previous = previous or {}
    return any(previous.get(key) != value for key, value in new.items())


# A per-resource gauge sample: (metric, help, value, extra labels beyond name and namespace).
Sample = tuple[str, str, float, tuple[tuple[str, str], ...]]

READY_METRIC, FAILING_METRIC = RESERVED_METRICS


def gauge_samples(table: Table, scope: Mapping[str, Any], live: Mapping[str, Mapping[str, Any]]) -> list[Sample]:
    """(metric name, help, value, no extra labels) of the table's ``metrics`` for one resource."""
    status_scope = dict(scope)
    status_scope["live"] = live
    out: list[Sample] = []
    for metric in table.metrics:
        value = metric.source.evaluate(status_scope)
        if value is UNSET:
            continue
        if isinstance(value, bool):
            value = 1.0 if value else 0.0
        try:
            out.append((metric.name, metric.help, float(value), ()))
        except (TypeError, ValueError):
            continue
    return out


def condition_samples(kind: str, status: Mapping[str, Any], failing: Problem | None) -> list[Sample]:
    """What every resource reports whatever its table: its Ready condition (1 or 0, with the
    reason: which modules are not ready and why), and whether reconciling it fails (1 with the
    reason, 0 with none), as kube-state-metrics reports a condition."""
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == READY), {})
    return [
        (
            READY_METRIC,
            "1 while the resource's Ready condition is True; the label reason is the condition's.",
            1.0 if ready.get("status") == "True" else 0.0,
            (("kind", kind), ("reason", str(ready.get("reason", "")))),
        ),
        failing_sample(kind, failing.reason if failing is not None else None),
    ]


def failing_sample(kind: str, reason: str | None) -> Sample:
    """Whether reconciling a resource fails: 1 with the reason, or 0 with none."""
    return (
        FAILING_METRIC,
        "1 while the operator cannot reconcile the resource (an invalid spec, a missing reference, "
        "a refused write); the label reason says why.",
        0.0 if reason is None else 1.0,
        (("kind", kind), ("reason", reason or "")),
    )
