"""Garbage collection, as kube-controller-manager runs it (the workload chain is in workloads.py).

It works from the store's event stream on a thread of its own, asynchronously: deleting an
owner returns at once and its dependents disappear shortly after.
"""

from __future__ import annotations

import contextlib
import threading

from kubestandin.store import ApiError, Event, Store


class Controller:
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


class GarbageCollector(Controller):
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
