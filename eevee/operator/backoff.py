"""Per-object retry with exponential backoff and jitter.

A resource whose reconcile failed is retried after ``base * 2**(failures-1)``
seconds (at most ``cap``), multiplied by a random factor in [0.5, 1) so that many
objects failing together (the API server was away) do not retry in lockstep.
Other objects are not held back by one object's failures.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Hashable


class Backoff:
    def __init__(
        self,
        *,
        base: float = 0.5,
        cap: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.base = base
        self.cap = cap
        self.clock = clock
        self.rng = rng or random.Random()
        self._failures: dict[Hashable, int] = {}
        self._due: dict[Hashable, float] = {}

    def failed(self, key: Hashable) -> float:
        """Record a failure; returns the delay before the next attempt."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        delay = min(self.cap, self.base * 2 ** (failures - 1)) * self.rng.uniform(0.5, 1.0)
        self._due[key] = self.clock() + delay
        return delay

    def succeeded(self, key: Hashable) -> None:
        self._failures.pop(key, None)
        self._due.pop(key, None)

    def ready(self, key: Hashable) -> bool:
        due = self._due.get(key)
        return due is None or due <= self.clock()

    def failures(self, key: Hashable) -> int:
        return self._failures.get(key, 0)

    def due(self) -> list[Hashable]:
        """Keys whose retry time has come."""
        now = self.clock()
        return [key for key, due in self._due.items() if due <= now]

    def next_due(self) -> float | None:
        return min(self._due.values()) if self._due else None

    def forget(self, keys: set[Hashable]) -> None:
        """Drop state for keys not in ``keys`` (deleted objects)."""
        for key in [k for k in self._failures if k not in keys]:
            self._failures.pop(key, None)
            self._due.pop(key, None)
