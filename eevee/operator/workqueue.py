"""Watch events waiting for the loop: at most one per object, the latest, and a bounded number.

As controller-runtime's workqueue, work is bounded by the number of objects, not the number
of events: while the loop is busy (a first install creates thousands of objects), an object
that changes ten times waits once, as its last state. Past ``limit`` objects, events are not
kept at all: the queue only remembers that it overflowed, and the loop lists everything again
(the lists then hold what the dropped events said). So memory stays flat whatever the burst,
and nothing is lost. The watch threads put, the loop drains.
"""

from __future__ import annotations

import threading
from typing import Any

Obj = dict[str, Any]
Key = tuple[str, str, str]  # (kind, namespace, name)


class EventQueue:
    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self._lock = threading.Lock()
        self._items: dict[Key, tuple[str, Obj]] = {}
        self._overflowed = False

    def put(self, key: Key, type_: str, obj: Obj) -> None:
        with self._lock:
            if key not in self._items and len(self._items) >= self.limit:
                self._overflowed = True
                return
            self._items.pop(key, None)  # the latest goes last: events keep their order by recency
            self._items[key] = (type_, obj)

    def drain(self) -> tuple[list[tuple[str, Obj]], bool]:
        """The events, and whether some were dropped (then only a fresh list is complete)."""
        with self._lock:
            items, overflowed = list(self._items.values()), self._overflowed
            self._items.clear()
            self._overflowed = False
        return items, overflowed

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._overflowed = False

    def __len__(self) -> int:
        return len(self._items)
