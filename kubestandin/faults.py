"""Test hooks of the stand-in: a request log with counters, and fault injection.

The request log is what "no writes in steady state" is measured with: every
request is recorded with its verb (``get``, ``list``, ``watch``, ``create``,
``update``, ``patch``, ``delete``, ``deletecollection``), resource and answer.

Faults are rules matched against incoming requests: the next N matching requests
answer an error (500, 409, ...) or hang for a while and then answer 504 (a
timeout for any client with a shorter deadline). Watches can be cut, and the
whole server can be paused (requests wait) and resumed.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


class Request(NamedTuple):
    at: float
    method: str
    path: str
    verb: str
    resource: str  # plural, with "/subresource" when there is one
    namespace: str
    name: str
    code: int
    group: str = ""
    agent: str = ""


class RequestLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[Request] = []

    def record(self, entry: Request) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self, since: int = 0) -> list[Request]:
        with self._lock:
            return self._entries[since:]

    def mark(self) -> int:
        """A position in the log; pass it as ``since`` to see only what came after."""
        with self._lock:
            return len(self._entries)

    def writes(self, since: int = 0) -> list[Request]:
        return [r for r in self.entries(since) if r.verb in WRITE_VERBS]

    def counts(self, since: int = 0) -> Counter[tuple[str, str]]:
        """Requests by (verb, resource)."""
        return Counter((r.verb, r.resource) for r in self.entries(since))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


@dataclass
class FaultRule:
    verb: str | None
    resource: str | None
    name: str | None
    namespace: str | None
    remaining: int
    code: int = 500
    hang: float = 0.0  # seconds to hold the request before answering (a timeout)
    agent: str | None = None  # only requests whose User-Agent starts with this
    hits: int = field(default=0)

    def matches(self, verb: str, resource: str, namespace: str, name: str, agent: str = "") -> bool:
        return (
            self.remaining > 0
            and (self.agent is None or agent.startswith(self.agent))
            and (self.verb is None or self.verb == verb)
            and (self.resource is None or self.resource == resource)
            and (self.name is None or self.name == name)
            and (self.namespace is None or self.namespace == namespace)
        )


_REASONS = {
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._running = threading.Event()
        self._running.set()
        self.watch_generation = 0  # bumped by cut_watches(); open watches end when it changes
        self.garbage: bytes | None = None  # garble_watches(): sent once on every open watch
        self.garble_generation = 0
        self.freeze_generation = 0  # bumped by freeze_watches(): watches open then go silent
        self.frozen = threading.Event()  # set while frozen watches must stay silent

    def inject(
        self,
        *,
        verb: str | None = None,
        resource: str | None = None,
        name: str | None = None,
        namespace: str | None = None,
        code: int = 500,
        times: int = 1,
        agent: str | None = None,
    ) -> FaultRule:
        """The next ``times`` matching requests answer ``code``."""
        rule = FaultRule(verb, resource, name, namespace, times, code=code, agent=agent)
        with self._lock:
            self._rules.append(rule)
        return rule

    def inject_timeout(
        self,
        *,
        verb: str | None = None,
        resource: str | None = None,
        name: str | None = None,
        seconds: float = 5.0,
        times: int = 1,
        agent: str | None = None,
    ) -> FaultRule:
        """The next ``times`` matching requests hang ``seconds``, then answer 504."""
        rule = FaultRule(verb, resource, name, None, times, code=504, hang=seconds, agent=agent)
        with self._lock:
            self._rules.append(rule)
        return rule

    def take(self, verb: str, resource: str, namespace: str, name: str, agent: str = "") -> FaultRule | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(verb, resource, namespace, name, agent):
                    rule.remaining -= 1
                    rule.hits += 1
                    return rule
        return None

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @staticmethod
    def reason(code: int) -> str:
        return _REASONS.get(code, "InternalError")

    def cut_watches(self) -> None:
        """Mark open watch streams as cut (StandIn.cut_watches also wakes them up)."""
        with self._lock:
            self.watch_generation += 1

    def garble_watches(self, garbage: bytes = b"\xfb\xff{not an event\n") -> None:
        """Every open watch sends ``garbage`` as its next line (a proxy or a flaky
        link mangling the stream); the connection stays open."""
        with self._lock:
            self.garbage = garbage
            self.garble_generation += 1

    def freeze_watches(self) -> None:
        """Every watch stream open now stops sending anything, events and bookmarks alike, and
        keeps its connection open: a dead NAT entry or a hung load balancer. Watches opened later
        work. thaw_watches() (or stopping the server) lets the frozen ones end."""
        with self._lock:
            self.freeze_generation += 1
            self.frozen.set()

    def thaw_watches(self) -> None:
        self.frozen.clear()

    def pause(self) -> None:
        """Hold every request until resume() (as if the API server hung)."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def wait_running(self) -> None:
        while not self._running.wait(0.1):
            pass

    @property
    def paused(self) -> bool:
        return not self._running.is_set()


def sleep_interruptibly(seconds: float, stop: threading.Event) -> None:
    deadline = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < deadline:
        stop.wait(min(0.05, max(0.0, deadline - time.monotonic())))
