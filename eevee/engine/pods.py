"""What a module's Pod says: which Pod speaks for a Deployment, its status as the eevee operator
2.3 reports it, and the problem it shows, in words a person acts on.

Pure functions over Pod and ReplicaSet objects (as the cache keeps them); no I/O.

- The Pod that speaks for a Deployment is the newest Pod of its current ReplicaSet (the one with
  the highest ``deployment.kubernetes.io/revision``), else the newest of any of its ReplicaSets:
  during a rollout the new Pod is the one that tells whether the new version works.
- A Pod's problem is the first of: unschedulable (``PodScheduled=False``), a container waiting
  for a reason a person must act on (``CrashLoopBackOff`` with its restarts and last exit,
  ``ErrImagePull``/``ImagePullBackOff``, ``CreateContainerConfigError``...), a container that
  terminated. A Pod merely starting (``ContainerCreating``) has none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

Obj = Mapping[str, Any]
REVISION = "deployment.kubernetes.io/revision"
# Waiting reasons that are a state on the way, not a problem.
STARTING = frozenset({"ContainerCreating", "PodInitializing"})


class Reads(NamedTuple):
    """What this module reads of a kind it observes, which is all the cache keeps of it (as
    controller-runtime's cache transforms keep a cache small): a ReplicaSet's owner and revision,
    a Pod's owner and the status fields below (not its spec, labels, IPs, QoS class or the
    containers' runtime ids)."""

    api_version: str
    kind: str
    annotations: tuple[str, ...] = ()
    status: tuple[str, ...] = ()
    container_status: tuple[str, ...] = ()  # of each status.containerStatuses item
    # Whether its own change can change what its resource reports (a Pod's status can; a
    # ReplicaSet's new revision cannot alone: its Pods' events follow).
    wakes_owner: bool = False


OBSERVED_METADATA = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp", "ownerReferences")
OBSERVED = {
    read.kind: read
    for read in (
        Reads("apps/v1", "ReplicaSet", annotations=(REVISION,)),
        Reads(
            "v1",
            "Pod",
            status=("phase", "conditions", "startTime", "containerStatuses"),
            container_status=("name", "ready", "restartCount", "image", "state", "lastState"),
            wakes_owner=True,
        ),
    )
}


def _pick(mapping: Any, keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: mapping[k] for k in keys if k in mapping} if isinstance(mapping, dict) else {}


def slim(obj: Mapping[str, Any]) -> dict[str, Any]:
    """An observed object (a kind of :data:`OBSERVED`) cut to what this module reads of it."""
    reads = OBSERVED[obj.get("kind", "")]
    metadata = obj.get("metadata") or {}
    kept = _pick(metadata, OBSERVED_METADATA)
    if annotations := _pick(metadata.get("annotations"), reads.annotations):
        kept["annotations"] = annotations
    out = {"apiVersion": obj.get("apiVersion"), "kind": reads.kind, "metadata": kept}
    if reads.status:
        status = _pick(obj.get("status"), reads.status)
        if isinstance(status.get("containerStatuses"), list):
            status["containerStatuses"] = [_pick(c, reads.container_status) for c in status["containerStatuses"]]
        out["status"] = status
    return out


class PodProblem(NamedTuple):
    reason: str  # CrashLoopBackOff, ImagePullBackOff, ErrImagePull, CreateContainerConfigError, Unschedulable, ...
    message: str  # without the restart count: that is `restarts`, reported apart (and throttled)
    restarts: int


def _revision(replicaset: Obj) -> int:
    try:
        return int((replicaset.get("metadata", {}).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def speaking_pod(replicasets: Iterable[Obj], pods_of: Mapping[str, list[Obj]]) -> Obj | None:
    """The newest Pod of the current ReplicaSet, else the newest Pod of any (``pods_of``: by ReplicaSet uid)."""
    ordered = sorted(replicasets, key=_revision, reverse=True)
    for candidates in ([ordered[0]] if ordered else [], ordered):
        pods = [p for rs in candidates for p in pods_of.get(rs.get("metadata", {}).get("uid", ""), [])]
        if pods:
            return max(pods, key=lambda p: (p["metadata"].get("creationTimestamp") or "", p["metadata"]["name"]))
    return None


def pod_status(pod: Obj | None) -> dict[str, Any] | None:
    """The ``podStatus`` of the eevee operator 2.3's ``GET /api/bot-modules``: null without a Pod."""
    if pod is None:
        return None
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    conditions = status.get("conditions") or []
    return {
        "phase": status.get("phase", "Unknown"),
        "ready": any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions),
        "restartCount": sum(int(c.get("restartCount", 0)) for c in containers),
        "startedAt": status.get("startTime"),
        "containerStatuses": [
            {"name": c.get("name"), "ready": bool(c.get("ready")), "restartCount": int(c.get("restartCount", 0)),
             "image": c.get("image"), "state": c.get("state") or {}, "lastState": c.get("lastState") or {}}
            for c in containers
        ],
        "conditions": [
            {"type": c.get("type"), "status": c.get("status"), "lastTransitionTime": c.get("lastTransitionTime")}
            for c in conditions
        ],
    }


def pod_problem(pod: Obj | None) -> PodProblem | None:
    """What is wrong with ``pod``, or None (no Pod, or one running or on its way)."""
    if pod is None:
        return None
    status = pod.get("status") or {}
    name = pod["metadata"]["name"]
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            reason = condition.get("reason") or "Unschedulable"
            return PodProblem(reason, f"pod {name} cannot be scheduled: {condition.get('message', '')}".rstrip(": "), 0)
    for container in status.get("containerStatuses") or []:
        restarts = int(container.get("restartCount", 0))
        state = container.get("state") or {}
        waiting = state.get("waiting") or {}
        terminated = state.get("terminated") or {}
        last = (container.get("lastState") or {}).get("terminated") or {}
        where = f"container {container.get('name')} of pod {name}"
        if waiting.get("reason") and waiting["reason"] not in STARTING:
            message = f"{where}: {waiting['reason']}"
            if waiting["reason"] == "CrashLoopBackOff" and last:
                why = f" ({last['reason']})" if last.get("reason") else ""
                message += f"; last exit code {last.get('exitCode')}{why}"
            elif waiting.get("message"):
                message += f": {waiting['message']}"
            return PodProblem(waiting["reason"], message, restarts)
        if terminated:
            reason = terminated.get("reason") or "Terminated"
            exit_code = terminated.get("exitCode")
            return PodProblem(reason, f"{where} terminated with exit code {exit_code} ({reason})", restarts)
    return None
