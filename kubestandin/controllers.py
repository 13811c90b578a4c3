"""The two controllers the stand-in runs: garbage collection and a small Deployment controller.

Both work from the store's event stream on threads of their own, asynchronously,
as kube-controller-manager does: deleting an owner returns at once and its
dependents disappear shortly after.

The Deployment controller only writes Deployment status (it creates no ReplicaSets
or Pods): after ``delay`` seconds a Deployment reports all replicas ready, unless it
was told that this Deployment never becomes ready.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from typing import Any

from kubestandin.registry import Registry
from kubestandin.store import ApiError, Event, Store, now


class _Controller:
    """A thread fed by the store's events (what both controllers share)."""

    def __init__(self, store: Store, name: str) -> None:
        self.store = store
        self._cv = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        store.listeners.append(self._on_event)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cv:
            self._cv.notify_all()

    def _on_event(self, event: Event) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        raise NotImplementedError


class GarbageCollector(_Controller):
    def __init__(self, store: Store) -> None:
        self._queue: list[str] = []
        super().__init__(store, "standin-gc")

    def _on_event(self, event: Event) -> None:
        if event.type == "DELETED":
            with self._cv:
                self._queue.append(event.obj["metadata"]["uid"])
                self._cv.notify_all()
        elif event.type == "ADDED":
            # A dependent created with an owner that does not exist is collected too.
            for ref in event.obj["metadata"].get("ownerReferences") or []:
                if self.store.find_uid(ref.get("uid", "")) is None:
                    with self._cv:
                        self._queue.append(ref.get("uid", ""))
                        self._cv.notify_all()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cv:
                while not self._queue and not self._stop.is_set():
                    self._cv.wait(0.5)
                batch, self._queue = self._queue, []
            for uid in batch:
                with contextlib.suppress(ApiError):  # the dependent went away meanwhile
                    self.store.collect_garbage(uid)

    def idle(self) -> bool:
        with self._cv:
            return not self._queue


class DeploymentController(_Controller):
    def __init__(self, store: Store, registry: Registry, *, delay: float = 0.1) -> None:
        self.registry = registry
        self.delay = delay
        self.never_ready: set[tuple[str, str]] = set()
        self.deadline_exceeded: set[tuple[str, str]] = set()
        self._heap: list[tuple[float, int, tuple[str, str]]] = []
        self._counter = itertools.count()
        super().__init__(store, "standin-deployments")

    def set_never_ready(
        self, namespace: str, name: str, never: bool = True, *, deadline_exceeded: bool = False
    ) -> None:
        """Make a Deployment never (or again) become ready; optionally report its deadline passed."""
        key = (namespace, name)
        (self.never_ready.add if never else self.never_ready.discard)(key)
        (self.deadline_exceeded.add if deadline_exceeded else self.deadline_exceeded.discard)(key)
        self._schedule(key, 0.0)

    def _on_event(self, event: Event) -> None:
        deployment = event.key == ("apps", "deployments") and event.type != "DELETED"
        if deployment and self.desired_status(event.obj) != event.obj.get("status"):
            self._schedule((event.namespace, event.obj["metadata"]["name"]), self.delay)

    def _schedule(self, key: tuple[str, str], delay: float) -> None:
        with self._cv:
            heapq.heappush(self._heap, (time.monotonic() + delay, next(self._counter), key))
            self._cv.notify_all()

    def desired_status(self, dep: dict[str, Any]) -> dict[str, Any]:
        key = (dep["metadata"].get("namespace", ""), dep["metadata"]["name"])
        replicas = int((dep.get("spec") or {}).get("replicas", 1))
        old = dep.get("status") or {}
        status: dict[str, Any] = {"observedGeneration": dep["metadata"].get("generation", 1)}
        ready = key not in self.never_ready
        counts = {
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas if ready else 0,
            "availableReplicas": replicas if ready else 0,
            "unavailableReplicas": 0 if ready else replicas,
        }
        status.update({k: v for k, v in counts.items() if v})  # zero counts are omitted, as by the real one
        old_conditions = {c["type"]: c for c in old.get("conditions", [])}

        def condition(type_: str, value: str, reason: str, message: str) -> dict[str, Any]:
            previous = old_conditions.get(type_)
            changed = previous is None or previous.get("status") != value
            stamp = now() if changed else previous.get("lastTransitionTime", now())
            return {
                "type": type_,
                "status": value,
                "reason": reason,
                "message": message,
                "lastTransitionTime": stamp,
                "lastUpdateTime": stamp if changed else previous.get("lastUpdateTime", stamp),
            }

        name = dep["metadata"]["name"]
        if ready:
            conditions = [
                condition("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."),
                condition(
                    "Progressing", "True", "NewReplicaSetAvailable", f'ReplicaSet "{name}" has successfully progressed.'
                ),
            ]
        else:
            progressing = (
                condition(
                    "Progressing",
                    "False",
                    "ProgressDeadlineExceeded",
                    f'ReplicaSet "{name}" has timed out progressing.',
                )
                if key in self.deadline_exceeded
                else condition("Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{name}" is progressing.')
            )
            conditions = [
                condition(
                    "Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability."
                ),
                progressing,
            ]
        status["conditions"] = conditions
        return status

    def _run(self) -> None:
        rt = self.registry.get("apps", "v1", "deployments")
        assert rt is not None
        while not self._stop.is_set():
            with self._cv:
                while not self._stop.is_set() and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = 0.5 if not self._heap else max(0.0, self._heap[0][0] - time.monotonic())
                    self._cv.wait(min(timeout, 0.5))
                if self._stop.is_set():
                    return
                _, _, key = heapq.heappop(self._heap)
            try:
                dep = self.store.get(rt, *key)
                status = self.desired_status(dep)
                if status != dep.get("status"):
                    self.store.update(rt, key[0], key[1], dict(dep, status=status), subresource="status")
            except ApiError:
                continue
