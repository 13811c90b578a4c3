"""Informers: every kind the tables read is listed once, then followed by its watch.

As client-go's reflector: a kind is listed (in pages), then watched from the list's
resourceVersion. A watch that ends (the server's ``timeoutSeconds``, randomised between 5 and
10 minutes as client-go does, or a dropped connection) resumes from the last resourceVersion it
saw, events and bookmarks alike, without a list. A kind is listed again only when:

- its watch cannot resume (410 Gone: the server no longer has that resourceVersion), or
- the safety resync is due: at most once per ``resync`` seconds per kind (default an hour),
  each informer at its own jittered time, so the kinds are not listed all at once.

A watch cannot go silent unnoticed: it asks for bookmarks (a real API server sends one a
minute), and a stream that delivers no byte for ``silence`` seconds (100 by default, at most
120) is closed and resumed from its last resourceVersion. That is what a dead NAT entry or a
hung load balancer looks like: the socket stays open, nothing arrives (kopf#1276).

An informer does no reconciling and touches no shared state: it hands lists and events to the
runner (``deliver``), whose loop thread alone applies them to the cache.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

from eevee.engine import pods
from eevee.engine.paths import Path
from eevee.kube.client import Kube, KubeError
from eevee.metrics import Metrics
from eevee.operator.backoff import Backoff
from eevee.operator.snapshot import cached_child, shared

log = logging.getLogger("eevee.operator")

# a table's kind; a child kind (label-selected); a referenced kind; what a child runs (its Pods)
Role = Literal["resource", "child", "other", "observed"]
UNAVAILABLE = (403, 404)  # not served (a CRD not installed) or not allowed (RBAC not extended)
# The informers list one kind at a time (a first sync of 5,000 modules lists 14 kinds): each list
# is decoded page by page, but pages of every kind at once were most of a restart's peak memory.
LISTING = threading.Lock()
WATCH_TIMEOUT = (300, 600)  # the server-side timeoutSeconds of a watch, drawn anew each time (client-go's range)


class WatchKey(NamedTuple):
    kind: str
    api_version: str
    plural: str
    namespace: str | None  # None: every namespace
    label_selector: str | None
    field_selector: str | None
    role: Role
    keep: tuple[Path, ...] | None = None  # a child kind: what its cache keeps (RuleSet.cached_fields)


class Listed(NamedTuple):
    """What a kind holds now (a list): it replaces what the cache had of ``key``."""

    key: WatchKey
    items: list[dict[str, Any]]
    reason: str  # initial, expired, resync


class Unavailable(NamedTuple):
    key: WatchKey
    why: str


class Event(NamedTuple):
    key: WatchKey
    type: str  # ADDED, MODIFIED, DELETED
    obj: dict[str, Any]


Delivery = Listed | Unavailable | Event


class Informer:
    def __init__(
        self,
        kube: Kube,
        key: WatchKey,
        *,
        deliver: Callable[[Delivery], None],
        stop: threading.Event,
        metrics: Metrics,
        silence: float,
        resync: float,
        retry_unavailable: float,
        wanted: Callable[[WatchKey], bool],
    ) -> None:
        self.kube = kube
        self.key = key
        self.deliver = deliver
        self.stop = stop
        self.metrics = metrics
        self.silence = silence
        self.resync = resync
        self.retry_unavailable = retry_unavailable
        self.wanted = wanted
        self.version: str | None = None  # the last resourceVersion seen; None: list first

    def _cached(self, obj: dict[str, Any]) -> dict[str, Any]:
        """An object as the cache keeps it: slimmed (observed), trimmed (a child), its strings shared."""
        if self.key.role == "observed":
            return cached_observed(obj)
        if self.key.role == "child":
            return cached_child(obj, self.key.keep)
        return shared(obj)

    def _next_resync(self) -> float:
        if self.resync <= 0:
            return float("inf")
        return time.monotonic() + self.resync * random.uniform(1.0, 1.25)

    def run(self) -> None:
        key = self.key
        errors = Backoff(base=0.5, cap=10.0)
        resync_at = self._next_resync()
        reason = "initial"
        while not self.stop.is_set() and self.wanted(key):
            if time.monotonic() >= resync_at:
                self.version, reason = None, "resync"
            if self.version is None:
                if not self._list(reason, errors):
                    continue
                resync_at = self._next_resync()
            self._follow(errors, until=resync_at)
            reason = "expired"

    def _list(self, reason: str, errors: Backoff) -> bool:
        key = self.key
        try:
            with LISTING:  # one kind at a time: the lists' pages are never all in memory at once
                items, version = self.kube.list(
                    key.api_version, key.plural, key.namespace,
                    label_selector=key.label_selector, field_selector=key.field_selector,
                    transform=self._cached,
                )  # fmt: skip
        except KubeError as error:
            if error.code in UNAVAILABLE:
                self.deliver(Unavailable(key, f"{key.api_version} {key.plural}: {error}"))
                self.stop.wait(self.retry_unavailable)
            else:
                log.warning("listing %s failed; retrying: %s", key.plural, error)
                self.stop.wait(errors.failed("list"))
            return False
        errors.succeeded("list")
        self.metrics.relists.labels(key.kind, reason).inc()
        self.version = version
        self.deliver(Listed(key, items, reason))
        return True

    def _follow(self, errors: Backoff, *, until: float) -> None:
        """Follow the watch from self.version until it ends (at the latest when the resync is due,
        ``until``); leaves self.version None to relist."""
        key = self.key
        timeout = random.randint(*WATCH_TIMEOUT)
        timeout = max(1, min(timeout, int(until - time.monotonic()) + 1)) if until != float("inf") else timeout
        try:
            for type_, obj in self.kube.watch(
                key.api_version,
                key.plural,
                key.namespace,
                resource_version=self.version or "",
                label_selector=key.label_selector,
                field_selector=key.field_selector,
                timeout_seconds=timeout,
                silence=self.silence,
            ):
                errors.succeeded("watch")
                if self.stop.is_set():
                    return
                self.version = obj.get("metadata", {}).get("resourceVersion") or self.version
                if type_ in ("ADDED", "MODIFIED", "DELETED"):
                    obj.setdefault("apiVersion", key.api_version)
                    obj.setdefault("kind", key.kind)
                    obj.get("metadata", {}).pop("managedFields", None)  # never read; 1-2 KB an object
                    self.deliver(Event(key, type_, self._cached(obj)))
            self.metrics.watch_restarts.labels(key.kind, "timeout").inc()
        except Exception as error:  # an informer thread must never die
            if not isinstance(error, KubeError):
                log.exception("unexpected error in the %s watch; it restarts", key.kind)
                error = KubeError(0, "InternalError", str(error))
            if error.code == 410:
                self.metrics.watch_restarts.labels(key.kind, "expired").inc()
                self.version = None  # the server no longer has it: list again
            elif error.reason == "WatchSilent":
                self.metrics.watch_restarts.labels(key.kind, "silent").inc()
                log.warning("the %s watch went silent for %gs; resuming from %s", key.kind, self.silence, self.version)
            else:
                if error.reason == "BadWatchEvent":
                    log.warning("the %s watch read a bad event and resumes: %s", key.kind, error.message)
                self.metrics.watch_restarts.labels(key.kind, "error").inc()
                self.stop.wait(errors.failed("watch"))


def cached_observed(obj: dict[str, Any]) -> dict[str, Any]:
    """An observed object as the cache keeps it: what eevee.engine.pods reads of it, its strings shared."""
    return shared(pods.slim(obj))
