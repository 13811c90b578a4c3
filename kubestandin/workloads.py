"""The workload chain, as kube-controller-manager and a kubelet run it: Deployment -> ReplicaSet -> Pods.

- The Deployment controller makes one ReplicaSet per pod template, named
  ``<deployment>-<pod-template-hash>``, labelled and selected with ``pod-template-hash``,
  controlled by the Deployment, annotated ``deployment.kubernetes.io/revision`` (the Deployment
  gets the same annotation through its status subresource, as the real controller's
  ``UpdateStatus`` does); a template change makes a new ReplicaSet and scales the old ones to 0.
  Its status counts the Pods of the current ReplicaSet.
- The ReplicaSet controller keeps ``spec.replicas`` Pods, named ``<replicaset>-<5 characters>``,
  controlled by the ReplicaSet.
- The kubelet turns a new Pod ``Running`` and ``Ready`` after ``delay`` seconds, through the
  Pod's status subresource: ``startTime``, the conditions ``PodScheduled``, ``Initialized``,
  ``ContainersReady``, ``Ready``, and a ``containerStatuses`` entry per container. Without
  nodes a real Pod stays ``Pending``; here the kubelet stands in for a node.

An image reference the kubelet cannot parse (uppercase in the repository) leaves the container
waiting with ``InvalidImageName``, and one on a registry host under ``.invalid`` (a name that never
resolves, RFC 6761) fails to pull (``ErrImagePull``, then ``ImagePullBackOff``), as a real kubelet's do. Faults a test can ask the kubelet for, per Deployment (``pod_fault``): ``crashloop`` (the
container exits and is restarted: ``CrashLoopBackOff``, ``restartCount`` climbing, the last
exit in ``lastState``), ``image`` (``ErrImagePull``, then ``ImagePullBackOff``), ``config``
(``CreateContainerConfigError``, e.g. a missing Secret), ``unschedulable`` (``Pending``,
``PodScheduled=False`` reason ``Unschedulable``). Deleting a Deployment takes its ReplicaSets
and Pods through garbage collection (their ownerReferences).
"""

from __future__ import annotations

import copy
import hashlib
import heapq
import itertools
import json
import random
import re
import threading
import time
from typing import Any

from kubestandin.controllers import Controller
from kubestandin.registry import Registry
from kubestandin.store import ApiError, Event, Store, now

# A docker reference the kubelet can parse: lowercase repository path, optional tag and digest.
IMAGE = re.compile(r"^[a-z0-9]+([._-]+[a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*(:[\w][\w.-]{0,127})?(@[a-z0-9]+:[a-f0-9]{32,})?$")
SAFE = "bcdfghjklmnpqrstvwxz2456789"  # k8s.io/apimachinery's rand.SafeEncodeString alphabet
REVISION = "deployment.kubernetes.io/revision"
HASH = "pod-template-hash"
Obj = dict[str, Any]


def template_hash(template: Obj) -> str:
    digest = int.from_bytes(hashlib.sha256(json.dumps(template, sort_keys=True).encode()).digest()[:4], "big")
    return "".join(SAFE[int(c) % len(SAFE)] for c in str(digest))


def _suffix() -> str:
    return "".join(random.choice(SAFE) for _ in range(5))


def _owner(obj: Obj) -> dict[str, Any]:
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": obj["metadata"]["name"],
            "uid": obj["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


class WorkloadController(Controller):
    """One thread for the three controllers: events schedule syncs, timers drive the kubelet."""

    def __init__(self, store: Store, registry: Registry, *, delay: float = 0.1, crash_interval: float = 1.0) -> None:
        self.delay = delay
        self.crash_interval = crash_interval
        self.rt = {kind: registry.get(group, "v1", plural) for kind, group, plural in (
            ("Deployment", "apps", "deployments"), ("ReplicaSet", "apps", "replicasets"), ("Pod", "", "pods"))}
        self.never_ready: set[tuple[str, str]] = set()
        self.deadline_exceeded: set[tuple[str, str]] = set()
        self.faults: dict[tuple[str, str], dict[str, Any]] = {}  # (namespace, deployment) -> fault
        self._owned: dict[str, set[tuple[str, str, str]]] = {}  # controller uid -> (kind, namespace, name)
        self._index_lock = threading.Lock()
        self._heap: list[tuple[float, int, tuple[str, str, str]]] = []
        self._counter = itertools.count()
        super().__init__(store, "standin-workloads")

    # --- what tests ask for ------------------------------------------------------------

    def set_never_ready(self, namespace: str, name: str, never: bool = True, *, deadline_exceeded: bool = False) -> None:
        """Make a Deployment's Pods never (or again) become ready; optionally report its deadline passed."""
        key = (namespace, name)
        (self.never_ready.add if never else self.never_ready.discard)(key)
        (self.deadline_exceeded.add if deadline_exceeded else self.deadline_exceeded.discard)(key)
        self._resync_pods(namespace, name)

    def pod_fault(self, namespace: str, deployment: str, mode: str | None, **details: Any) -> None:
        """The kubelet fails the Deployment's Pods this way from now on (None: they run again).
        ``details``: ``exit_code``, ``reason`` (crashloop's last termination: Error, OOMKilled),
        ``message`` (config, image, unschedulable)."""
        assert mode in (None, "crashloop", "image", "config", "unschedulable"), mode
        key = (namespace, deployment)
        if mode is None:
            self.faults.pop(key, None)
        else:
            self.faults[key] = {"mode": mode, **details}
        self._resync_pods(namespace, deployment)

    def _resync_pods(self, namespace: str, deployment: str) -> None:
        for pod in self._pods_of(namespace, deployment):
            self._schedule(("kubelet", namespace, pod["metadata"]["name"]), 0.0)
        self._schedule(("deployment", namespace, deployment), 0.0)

    # --- events and the loop ---------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        obj = event.obj
        name = obj["metadata"]["name"]
        if event.key in (("apps", "replicasets"), ("", "pods")):  # who controls what, without a scan
            kind = "ReplicaSet" if event.key[1] == "replicasets" else "Pod"
            with self._index_lock:
                for ref in (event.old or obj)["metadata"].get("ownerReferences") or []:
                    self._owned.get(ref.get("uid", ""), set()).discard((kind, event.namespace, name))
                if event.type != "DELETED":
                    for ref in obj["metadata"].get("ownerReferences") or []:
                        if ref.get("controller"):
                            self._owned.setdefault(ref.get("uid", ""), set()).add((kind, event.namespace, name))
        if event.key == ("apps", "deployments") and event.type != "DELETED":
            self._schedule(("deployment", event.namespace, name), 0.0)
        elif event.key == ("apps", "replicasets"):
            if event.type != "DELETED":
                self._schedule(("replicaset", event.namespace, name), 0.0)
            for owner in self._owner_names(obj, "Deployment"):
                self._schedule(("deployment", event.namespace, owner), 0.0)
        elif event.key == ("", "pods"):
            if event.type == "ADDED":
                self._schedule(("kubelet", event.namespace, name), self.delay)
            for owner in self._owner_names(obj, "ReplicaSet"):
                self._schedule(("replicaset", event.namespace, owner), 0.0)

    @staticmethod
    def _owner_names(obj: Obj, kind: str) -> list[str]:
        return [r["name"] for r in obj["metadata"].get("ownerReferences") or [] if r.get("kind") == kind and r.get("controller")]

    def _schedule(self, task: tuple[str, str, str], delay: float) -> None:
        with self._cv:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._counter), task))
            self._cv.notify_all()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cv:
                while not self._stop.is_set() and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = 0.5 if not self._heap else max(0.0, self._heap[0][0] - time.monotonic())
                    self._cv.wait(min(timeout, 0.5))
                if self._stop.is_set():
                    return
                _, _, task = heapq.heappop(self._heap)
                # the same task queued again meanwhile is done by this run
                self._heap = [entry for entry in self._heap if entry[2] != task or entry[0] > time.monotonic()]
                heapq.heapify(self._heap)
            kind, namespace, name = task
            try:
                {"deployment": self._sync_deployment, "replicaset": self._sync_replicaset, "kubelet": self._kubelet}[kind](
                    namespace, name
                )
            except ApiError:
                continue  # gone or changed meanwhile: its next event schedules it again

    def _get(self, kind: str, namespace: str, name: str) -> Obj | None:
        try:
            return self.store.get(self.rt[kind], namespace, name)
        except ApiError:
            return None

    def _controlled(self, owner: Obj, kind: str) -> list[Obj]:
        """The objects of ``kind`` that ``owner`` controls, from the index (deleted ones left out)."""
        with self._index_lock:
            keys = [k for k in self._owned.get(owner["metadata"].get("uid", ""), ()) if k[0] == kind]
        found = (self._get(kind, namespace, name) for _, namespace, name in keys)
        return [o for o in found if o is not None and not o["metadata"].get("deletionTimestamp")]

    # --- Deployments ----------------------------------------------------------------------

    def _sync_deployment(self, namespace: str, name: str) -> None:
        dep = self._get("Deployment", namespace, name)
        if dep is None or dep["metadata"].get("deletionTimestamp"):
            return
        spec = dep.get("spec") or {}
        template = copy.deepcopy(spec.get("template") or {})
        pod_hash = template_hash(template)
        owned = self._controlled(dep, "ReplicaSet")
        current = next((rs for rs in owned if rs["metadata"].get("labels", {}).get(HASH) == pod_hash), None)
        revisions = [int((rs["metadata"].get("annotations") or {}).get(REVISION, "0") or 0) for rs in owned]
        replicas = int(spec.get("replicas", 1))
        if current is None:
            revision = str(max(revisions, default=0) + 1)
            labels = {**(template.get("metadata") or {}).get("labels", {}), HASH: pod_hash}
            template.setdefault("metadata", {})["labels"] = labels
            selector = copy.deepcopy(spec.get("selector") or {})
            selector.setdefault("matchLabels", {})[HASH] = pod_hash
            current = self.store.create(self.rt["ReplicaSet"], namespace, {
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": f"{name}-{pod_hash}", "namespace": namespace, "labels": labels,
                             "annotations": {REVISION: revision, "deployment.kubernetes.io/desired-replicas": str(replicas)},
                             "ownerReferences": [_owner(dep)]},
                "spec": {"replicas": replicas, "selector": selector, "template": template},
            })
        elif (current.get("spec") or {}).get("replicas") != replicas:
            self._scale(current, replicas)
        for rs in owned:
            if rs["metadata"]["uid"] != current["metadata"]["uid"] and (rs.get("spec") or {}).get("replicas", 0) != 0:
                self._scale(rs, 0)  # the old template's Pods go
        status = self._deployment_status(dep, current)
        annotations = dict(dep["metadata"].get("annotations") or {})
        annotations[REVISION] = (current["metadata"].get("annotations") or {}).get(REVISION, "1")
        if status != dep.get("status") or annotations != (dep["metadata"].get("annotations") or {}):
            metadata = dict(dep["metadata"], annotations=annotations)
            self.store.update(self.rt["Deployment"], namespace, name, dict(dep, metadata=metadata, status=status),
                              subresource="status")

    def _scale(self, rs: Obj, replicas: int) -> None:
        metadata = rs["metadata"]
        self.store.update(self.rt["ReplicaSet"], metadata["namespace"], metadata["name"],
                          dict(rs, spec=dict(rs.get("spec") or {}, replicas=replicas)))

    def _pods_of(self, namespace: str, deployment: str) -> list[Obj]:
        dep = self._get("Deployment", namespace, deployment)
        if dep is None:
            return []
        return [pod for rs in self._controlled(dep, "ReplicaSet") for pod in self._controlled(rs, "Pod")]

    def _deployment_status(self, dep: Obj, current: Obj) -> Obj:
        key = (dep["metadata"].get("namespace", ""), dep["metadata"]["name"])
        replicas = int((dep.get("spec") or {}).get("replicas", 1))
        pods = self._controlled(current, "Pod")
        all_pods = [pod for rs in self._controlled(dep, "ReplicaSet") for pod in self._controlled(rs, "Pod")]
        ready = sum(1 for p in pods if _ready(p))
        counts = {
            "replicas": len(all_pods),
            "updatedReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(0, replicas - ready),
        }
        status: Obj = {"observedGeneration": dep["metadata"].get("generation", 1)}
        status.update({k: v for k, v in counts.items() if v})  # zero counts are omitted, as by the real one
        old = {c["type"]: c for c in (dep.get("status") or {}).get("conditions", [])}

        def condition(type_: str, value: str, reason: str, message: str) -> Obj:
            previous = old.get(type_)
            changed = previous is None or previous.get("status") != value
            stamp = now() if changed else previous.get("lastTransitionTime", now())
            return {"type": type_, "status": value, "reason": reason, "message": message, "lastTransitionTime": stamp,
                    "lastUpdateTime": stamp if changed else previous.get("lastUpdateTime", stamp)}

        rs_name = current["metadata"]["name"]
        available = ready >= replicas
        if available:
            progressing = condition("Progressing", "True", "NewReplicaSetAvailable", f'ReplicaSet "{rs_name}" has successfully progressed.')
        elif key in self.deadline_exceeded:
            progressing = condition("Progressing", "False", "ProgressDeadlineExceeded", f'ReplicaSet "{rs_name}" has timed out progressing.')
        else:
            progressing = condition("Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.')
        status["conditions"] = [
            condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.")
            if available
            else condition("Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability."),
            progressing,
        ]
        return status

    # --- ReplicaSets ----------------------------------------------------------------------

    def _sync_replicaset(self, namespace: str, name: str) -> None:
        rs = self._get("ReplicaSet", namespace, name)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        wanted = int((rs.get("spec") or {}).get("replicas", 1))
        pods = self._controlled(rs, "Pod")
        template = (rs.get("spec") or {}).get("template") or {}
        for _ in range(wanted - len(pods)):
            self.store.create(self.rt["Pod"], namespace, {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"{name}-{_suffix()}", "namespace": namespace,
                             "labels": dict((template.get("metadata") or {}).get("labels") or {}),
                             "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
                             "ownerReferences": [_owner(rs)]},
                "spec": copy.deepcopy(template.get("spec") or {}),
            })
        for pod in sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"], reverse=True)[: max(0, len(pods) - wanted)]:
            self.store.delete(self.rt["Pod"], namespace, pod["metadata"]["name"])
        pods = self._controlled(rs, "Pod")
        ready = sum(1 for p in pods if _ready(p))
        status = {"replicas": len(pods), "fullyLabeledReplicas": len(pods), "readyReplicas": ready,
                  "availableReplicas": ready, "observedGeneration": rs["metadata"].get("generation", 1)}
        status = {k: v for k, v in status.items() if v or k == "replicas"}
        if status != rs.get("status"):
            self.store.update(self.rt["ReplicaSet"], namespace, name, dict(rs, status=status), subresource="status")

    # --- the kubelet ----------------------------------------------------------------------

    def _deployment_of(self, pod: Obj) -> tuple[str, str]:
        namespace = pod["metadata"].get("namespace", "")
        for rs_name in self._owner_names(pod, "ReplicaSet"):
            rs = self._get("ReplicaSet", namespace, rs_name)
            for owner in self._owner_names(rs or {"metadata": {}}, "Deployment"):
                return namespace, owner
        return namespace, ""

    def _kubelet(self, namespace: str, name: str) -> None:
        pod = self._get("Pod", namespace, name)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return
        key = self._deployment_of(pod)
        fault = self.faults.get(key) or ({"mode": "never"} if key in self.never_ready else {"mode": None})
        status = _pod_status(pod, fault, now())
        if status != pod.get("status"):
            self.store.update(self.rt["Pod"], namespace, name, dict(pod, status=status), subresource="status")
        if fault["mode"] == "crashloop":  # it keeps exiting and being restarted
            self._schedule(("kubelet", namespace, name), self.crash_interval)


def _ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in (pod.get("status") or {}).get("conditions", []))


def _pod_status(pod: Obj, fault: dict[str, Any], stamp: str) -> Obj:
    """The status a kubelet reports for ``pod`` under ``fault`` (its ``mode``: None runs it)."""
    old = pod.get("status") or {}
    mode = fault["mode"]
    containers = (pod.get("spec") or {}).get("containers") or []
    started = old.get("startTime") or stamp

    def conditions(scheduled: bool, ready: bool, reason: str = "", message: str = "") -> list[Obj]:
        previous = {c["type"]: c for c in old.get("conditions", [])}
        out = []
        for type_, value in (("PodScheduled", scheduled), ("Initialized", scheduled), ("ContainersReady", ready), ("Ready", ready)):
            if not scheduled and type_ != "PodScheduled":
                continue
            text = "True" if value else "False"
            same = previous.get(type_, {}).get("status") == text
            entry = {"type": type_, "status": text,
                     "lastTransitionTime": previous[type_]["lastTransitionTime"] if same else stamp}
            if not value and type_ in ("ContainersReady", "Ready"):
                entry.update(reason="ContainersNotReady", message=f"containers with unready status: [{' '.join(c['name'] for c in containers)}]")
            if not value and type_ == "PodScheduled":
                entry.update(reason=reason, message=message)
            out.append(entry)
        return out

    if mode == "unschedulable":
        message = fault.get("message", "0/1 nodes are available: 1 Insufficient memory.")
        return {"phase": "Pending", "conditions": conditions(False, False, "Unschedulable", message), "qosClass": "Burstable"}
    restarts = {s["name"]: s.get("restartCount", 0) for s in old.get("containerStatuses", [])}
    unreachable = next((c for c in containers if c.get("image", "").split("/")[0].endswith(".invalid")), None)
    if mode is None and unreachable is not None:  # a registry host that can never resolve (RFC 6761)
        image = unreachable.get("image", "")
        mode, fault = "image", {"mode": "image", "message": (
            f'Failed to pull image "{image}": dial tcp: lookup {image.split("/")[0]}: no such host')}
    invalid = next((c for c in containers if not IMAGE.match(c.get("image", ""))), None)
    if mode is None and invalid is not None:  # the kubelet cannot even parse the reference
        mode, fault = "invalid", {"mode": "invalid", "message": (
            f'Failed to apply default image tag "{invalid.get("image", "")}": couldn\'t parse image name '
            f'"{invalid.get("image", "")}": invalid reference format: repository name must be lowercase')}
    statuses = []
    for container in containers:
        status: Obj = {"name": container["name"], "image": container.get("image", ""), "imageID": "",
                       "ready": mode is None, "started": mode is None, "restartCount": restarts.get(container["name"], 0)}
        if mode is None:
            previous = next((s for s in old.get("containerStatuses", []) if s["name"] == container["name"]), {})
            running = (previous.get("state") or {}).get("running") or {"startedAt": stamp}
            status["state"] = {"running": running}
            status["containerID"] = f"containerd://{hashlib.sha1((pod['metadata']['uid'] + container['name']).encode()).hexdigest()}"
        elif mode == "never":
            status["state"] = {"waiting": {"reason": "ContainerCreating"}}
        elif mode == "crashloop":
            status["restartCount"] += 1
            status["state"] = {"waiting": {"reason": "CrashLoopBackOff",
                                           "message": f"back-off 10s restarting failed container={container['name']} pod={pod['metadata']['name']}"}}
            status["lastState"] = {"terminated": {"exitCode": fault.get("exit_code", 1), "reason": fault.get("reason", "Error"),
                                                  "startedAt": stamp, "finishedAt": stamp}}
        elif mode == "image":
            reason = "ImagePullBackOff" if (old.get("containerStatuses") or [{}])[0].get("state", {}).get("waiting") else "ErrImagePull"
            status["state"] = {"waiting": {"reason": reason, "message": fault.get(
                "message", f'Back-off pulling image "{container.get("image", "")}"')}}
        elif mode == "invalid":
            status["state"] = {"waiting": {"reason": "InvalidImageName", "message": fault["message"]}}
        elif mode == "config":
            status["state"] = {"waiting": {"reason": "CreateContainerConfigError",
                                           "message": fault.get("message", 'secret "missing" not found')}}
        status.setdefault("lastState", {})
        statuses.append(status)
    running = mode in (None, "crashloop")
    return {"phase": "Running" if running else "Pending", "conditions": conditions(True, mode is None),
            "hostIP": "10.0.0.1", "podIP": f"10.1.{random.randint(0, 255)}.{random.randint(1, 254)}" if "podIP" not in old else old["podIP"],
            "startTime": started, "containerStatuses": statuses, "qosClass": "Burstable"}
