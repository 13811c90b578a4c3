"""Watch events waiting for the loop: at most one per object, the latest.

As controller-runtime's workqueue, work is bounded by the number of objects, not the number
of events: while the loop is busy (a first install creates thousands of objects), an object
that changes ten times waits once, as its last state. The watch threads put, the loop drains.
"""

from __future__ import annotations

import threading
from typing import Any

Obj = dict[str, Any]
Key = tuple[str, str, str]  # (kind, namespace, name)


class EventQueue:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[Key, tuple[str, Obj]] = {}

    def put(self, key: Key, type_: str, obj: Obj) -> None:
        with self._lock:
            self._items.pop(key, None)  # the latest goes last: events keep their order by recency
            self._items[key] = (type_, obj)

    def drain(self) -> list[tuple[str, Obj]]:
        with self._lock:
            items = list(self._items.values())
            self._items.clear()
        return items

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
