"""Watch events waiting for the loop: at most one per object, the latest, and a bounded number.

As controller-runtime's workqueue, work is bounded by the number of objects, not the number
of events: while the loop is busy (a first install creates thousands of objects), an object
that changes ten times waits once, as its last state. Past ``limit`` objects an informer that
brings a new one waits until the loop has drained the queue (back-pressure): nothing is dropped,
so nothing has to be listed again, and memory stays flat whatever the burst. A waiting informer
reads no more of its watch meanwhile; the API server holds the events (or, for a watcher too
slow for it, ends the watch, which then resumes from its last resourceVersion).
"""

from __future__ import annotations

import threading
from typing import Any

Obj = dict[str, Any]


class EventQueue:
    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self._lock = threading.Condition()
        self._items: dict[Any, tuple[str, Obj]] = {}
        self._closed = False

    def put(self, key: Any, type_: str, obj: Obj) -> None:
        """Queue an event, replacing the object's earlier one; wait while the queue is full."""
        with self._lock:
            while key not in self._items and len(self._items) >= self.limit and not self._closed:
                self._lock.wait(0.5)
            self._items.pop(key, None)  # the latest goes last: events keep their order by recency
            self._items[key] = (type_, obj)

    def drain(self) -> list[tuple[Any, str, Obj]]:
        """The events with their keys, oldest first."""
        with self._lock:
            items = [(key, type_, obj) for key, (type_, obj) in self._items.items()]
            self._items.clear()
            self._lock.notify_all()
        return items

    def close(self) -> None:
        """Release every waiting put (the operator is stopping)."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    def __len__(self) -> int:
        return len(self._items)
