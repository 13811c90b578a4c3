"""The operator's main loop: polling passes, watch wake-ups, retries, leadership, reloads.

- Every ``poll_interval`` a full pass lists everything again and reconciles every
  resource, so drift is repaired even when nothing announces it.
- Watches on the custom resources feed events to the loop; the resource they name
  (and the resources that reference it) are reconciled at once against the last
  snapshot, so a spec change reaches its children in milliseconds.
- A resource whose reconcile failed is retried with backoff, on its own.
- Only the leader reconciles; the loop stops between two resources when asked to.

All reconciling happens on the loop's thread; the watch threads only queue events.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, NamedTuple

from eevee import __version__
from eevee.engine.render import MANAGED_BY, MANAGED_BY_LABEL, RenderCache, status_inputs
from eevee.engine.tables import RuleSet
from eevee.kube.client import Kube, KubeError, plural_of
from eevee.metrics import Metrics
from eevee.operator.backoff import Backoff
from eevee.operator.events import EventRecorder
from eevee.operator.leader import LeaseElector
from eevee.operator.reconciler import Outcome, Reconciler
from eevee.operator.reload import RulesSource
from eevee.operator.snapshot import Key, Obj, Snapshot, collect_frozen_garbage, key_of, take_snapshot
from eevee.operator.workqueue import EventQueue
from eevee.probes import ProbeRunner
from eevee.settings import Settings

log = logging.getLogger("eevee.operator")
RELOAD_CHECK_SECONDS = 2.0
SETTLE_SECONDS = 0.02  # let a burst of watch events arrive before acting
FOLLOW_RUNS = 3  # reconciles of one resource per batch, when what it reads keeps changing
FULL_COLLECTION_PASSES = 10  # a full garbage collection, frozen lists included, every this many passes
CHILD_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"


class WatchKey(NamedTuple):
    kind: str
    api_version: str
    plural: str
    namespace: str | None
    selector: str | None


@dataclass
class Health:
    ready: bool
    leader: bool
    passes: int
    last_pass_seconds: float | None
    rules_valid: bool
    unavailable_kinds: dict[str, str]


class Runner:
    def __init__(self, settings: Settings, kube: Kube, metrics: Metrics, rules: RulesSource, *, identity: str) -> None:
        self.settings = settings
        self.kube = kube
        self.metrics = metrics
        self.rules_source = rules
        self.rules: RuleSet = rules.rules
        self.identity = identity
        self.events = EventRecorder(kube, identity=identity)
        self.wake = threading.Event()
        # The tables' checks with I/O (S3); a changed result wakes the loop, like a watch event.
        self.probes = ProbeRunner(on_change=self.wake.set)
        self.reconciler = Reconciler(
            kube, metrics=metrics, events=self.events, operator_scope=settings.operator_scope(), probes=self.probes
        )
        self.cache = RenderCache()
        self.snapshot = Snapshot()
        self._snapshot_current = False
        self.backoff = Backoff()
        self.pass_backoff = Backoff(base=1.0, cap=30.0)
        self.stop = threading.Event()
        self.incoming = EventQueue()
        self.passes = 0
        self.last_pass_seconds: float | None = None
        self._pass_requested = True
        self._gauges: dict[Key, list[tuple[str, str, float]]] = {}
        self._watch_versions: dict[tuple[str, str | None], str] = {}
        self._threads: list[threading.Thread] = []
        self._wanted: set[WatchKey] = set()
        self._watching: set[WatchKey] = set()
        self._watch_lock = threading.Lock()
        self.elector: LeaseElector | None = None
        if settings.leader_election:
            self.elector = LeaseElector(
                kube,
                namespace=settings.namespace,
                name=settings.lease_name,
                identity=identity,
                duration=settings.lease_duration,
                on_change=self._leadership_changed,
            )
            metrics.leader.set(0)
        else:
            metrics.leader.set(1)

    # --- state for the HTTP API ----------------------------------------------------

    @property
    def leading(self) -> bool:
        return self.elector is None or self.elector.leading.is_set()

    def health(self) -> Health:
        standing_by = self.elector is not None and not self.leading and self.elector.in_touch
        return Health(
            ready=(self.leading and self.passes > 0) or standing_by,
            leader=self.leading,
            passes=self.passes,
            last_pass_seconds=self.last_pass_seconds,
            rules_valid=self.rules_source.valid,
            unavailable_kinds=dict(self.snapshot.unavailable),
        )

    def _leadership_changed(self, leading: bool) -> None:
        self.metrics.leader.set(1 if leading else 0)
        if leading:
            self._pass_requested = True
        self.wake.set()

    # --- lifecycle -----------------------------------------------------------------

    def start_threads(self) -> None:
        if self.elector is not None:
            self._spawn("leader-election", self.elector.run, self.stop)
        self._start_watches()

    def _wanted_watches(self) -> set[WatchKey]:
        scopes: list[str | None] = [None] if self.settings.all_namespaces else list(self.settings.watch_namespaces)
        wanted: set[WatchKey] = set()
        for namespace in scopes:
            for table in self.rules.tables.values():
                wanted.add(WatchKey(table.kind, table.api_version, table.plural, namespace, None))
            # Children too (label-selected), as controller-runtime's Owns(): a Deployment
            # becoming ready, or edited or deleted by someone, wakes its owner at once.
            for api_version, kind in self.rules.child_kinds():
                wanted.add(WatchKey(kind, api_version, plural_of(kind), namespace, CHILD_SELECTOR))
        return wanted

    def _start_watches(self) -> None:
        """Watch every kind the current tables use; a watch whose kind a reload dropped ends by itself."""
        with self._watch_lock:
            self._wanted = self._wanted_watches()
            for key in sorted(self._wanted - self._watching, key=repr):
                self._watching.add(key)
                self._spawn(f"watch-{key.plural}-{key.namespace or 'all'}", self._watch, key)

    def _spawn(self, name: str, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def shutdown(self) -> None:
        self.stop.set()
        self.wake.set()
        self.probes.close()
        self.kube.close_streams()  # unblock the watch threads now rather than at their timeout

    def join(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def run(self) -> None:
        """Run until shutdown(); returns after the current resource is finished."""
        self.start_threads()
        next_pass = 0.0
        next_reload = time.monotonic() + RELOAD_CHECK_SECONDS
        log.info(
            "eevee-operator %s started",
            __version__,
            extra={"identity": self.identity, "namespaces": list(self.settings.watch_namespaces)},
        )
        while not self.stop.is_set():
            try:
                next_pass, next_reload = self._iteration(next_pass, next_reload)
            except Exception:  # the loop never dies; a bug here costs a second, not the operator
                log.exception("unexpected error in the operator loop")
                self.stop.wait(1.0)
        log.info("operator stopped")  # the elector thread releases the lease as it ends

    def _iteration(self, next_pass: float, next_reload: float) -> tuple[float, float]:
        """One turn of the loop; returns when the next pass and the next reload check are due."""
        now = time.monotonic()
        if now >= next_reload:
            next_reload = now + RELOAD_CHECK_SECONDS
            self._reload()
        if not self.leading:
            self._discard_events()
            self.wake.wait(0.25)
            self.wake.clear()
            return next_pass, next_reload
        if self._pass_requested or now >= next_pass:
            if self.full_pass():
                next_pass = time.monotonic() + self.settings.poll_interval
            else:
                next_pass = time.monotonic() + self.pass_backoff.failed("pass")
            self._pass_requested = False
        self._handle_events()
        self._retry_due()
        deadlines = [next_pass, next_reload]
        retry = self.backoff.next_due()
        if retry is not None:
            deadlines.append(retry)
        timeout = max(0.0, min(deadlines) - time.monotonic())
        if self.wake.wait(timeout):
            self.wake.clear()
            self.stop.wait(SETTLE_SECONDS)
        return next_pass, next_reload

    # --- passes --------------------------------------------------------------------

    def full_pass(self) -> bool:
        started = time.monotonic()
        unavailable = dict(self.snapshot.unavailable)
        # The old lists go before the new ones come: holding both would double the memory of a pass.
        self.snapshot = Snapshot()
        self._snapshot_current = False
        if self.passes % FULL_COLLECTION_PASSES == 0:
            collect_frozen_garbage()
        try:
            snapshot = take_snapshot(self.kube, self.rules, self.settings.watch_namespaces)
        except KubeError as error:
            self.snapshot.unavailable = unavailable
            self.metrics.passes.labels("error").inc()
            log.warning("listing failed; the pass is retried with backoff: %s", error)
            return False
        self.pass_backoff.succeeded("pass")
        for kind, why in snapshot.unavailable.items():
            if kind not in unavailable:
                log.error("kind %s cannot be listed, resources needing it are marked: %s", kind, why)
        for kind in {*snapshot.unavailable, *unavailable}:
            self.metrics.kind_unavailable.labels(kind).set(1 if kind in snapshot.unavailable else 0)
        self.snapshot = snapshot
        self._snapshot_current = True
        self._watch_versions.update(snapshot.versions)
        # Events queued while listing stay: _handle_events skips those the lists already hold.
        self._run(snapshot.sorted_keys(self.rules.kind_order()))
        keys = set(snapshot.resources)
        self.cache.retain(keys, set(snapshot.children))
        self.backoff.forget(keys)  # type: ignore[arg-type]
        self._gauges = {k: v for k, v in self._gauges.items() if k in keys}
        self._publish()
        self.last_pass_seconds = time.monotonic() - started
        self.metrics.pass_seconds.observe(self.last_pass_seconds)
        self.metrics.passes.labels("ok").inc()
        self.passes += 1
        log.debug("pass done", extra={"seconds": round(self.last_pass_seconds, 4), "resources": len(keys)})
        return True

    def _run(self, keys: list[Key]) -> None:
        """Reconcile ``keys`` in order, and again whoever read an object that changed meanwhile
        (a write's answer or an event): an IpcConfig's new token Secret brings its modules back,
        as its watch event would (the watch threads drop the echo of our own writes). A resource
        runs at most FOLLOW_RUNS times per batch, so resources reading each other cannot spin."""
        renderer = self.reconciler.renderer(self.rules, self.snapshot, self.cache)
        queue = dict.fromkeys(keys)
        runs: dict[Key, int] = {}
        while queue and not self.stop.is_set():
            key = next(iter(queue))
            del queue[key]
            resource = self.snapshot.resources.get(key)
            if resource is not None and self.backoff.ready(key) and runs.get(key, 0) < FOLLOW_RUNS:
                runs[key] = runs.get(key, 0) + 1
                self._reconcile(resource, renderer)
                after = self.snapshot.resources.get(key)
                table = self.rules.tables.get(key[0])
                if after is not None and after is not resource and (
                    _edited(resource, after)
                    or (table is not None and status_inputs(table, after) != status_inputs(table, resource))
                ):
                    # The answer to our status write carried a newer spec (the user edited it
                    # meanwhile; its watch event will be dropped as known), or the table reads
                    # the status it just wrote (a one-shot child, a bootstrap): go again now.
                    queue.setdefault(key, None)
            for changed in self.snapshot.take_changed():
                renderer.forget(changed)
                for reader in self.cache.readers(changed):
                    queue.setdefault(reader, None)

    def _reconcile(self, resource: Obj, renderer: Any) -> Outcome:
        key = key_of(resource)
        try:
            outcome = self.reconciler.reconcile(resource, self.rules, self.snapshot, renderer)
        except Exception:  # a bug must cost one resource a retry, never the loop
            log.exception(
                "unexpected error while reconciling",
                extra={"kind": key[0], "namespace": key[1], "resource_name": key[2]},
            )
            self.metrics.errors.labels(key[0], "InternalError").inc()
            outcome = Outcome("error")
        if outcome.result == "error":
            delay = self.backoff.failed(key)
            log.info("retrying in %.2fs", delay, extra={"kind": key[0], "namespace": key[1], "resource_name": key[2]})
        else:
            self.backoff.succeeded(key)
        self._gauges[key] = outcome.gauges
        return outcome

    def _publish(self) -> None:
        for kind, count in self.snapshot.count().items():
            self.metrics.managed.labels(kind).set(count)
        self.metrics.resources.replace(self._gauges)

    def _retry_due(self) -> None:
        if not self._snapshot_current:
            return
        due = [key for key in self.backoff.due() if key in self.snapshot.resources]
        if not due:
            return
        self._run(due)  # type: ignore[arg-type]
        self._publish()

    # --- watch events ----------------------------------------------------------------

    def _watch(self, key: WatchKey) -> None:
        kind, api_version, plural, namespace, selector = key
        errors = Backoff(base=0.5, cap=10.0)
        while not self.stop.is_set():
            with self._watch_lock:
                if key not in self._wanted:
                    self._watching.discard(key)
                    return
            version = self._watch_versions.get((kind, namespace))
            if version is None:
                self.stop.wait(0.1)
                continue
            try:
                for type_, obj in self.kube.watch(
                    api_version,
                    plural,
                    namespace,
                    resource_version=version,
                    label_selector=selector,
                    timeout_seconds=300,
                ):
                    errors.succeeded("watch")
                    if self.stop.is_set():
                        return
                    version = obj.get("metadata", {}).get("resourceVersion", version)
                    self._watch_versions[(kind, namespace)] = version
                    if type_ in ("ADDED", "MODIFIED", "DELETED"):
                        obj.setdefault("apiVersion", api_version)
                        obj.setdefault("kind", kind)
                        if type_ != "DELETED" and self._known(kind, obj):
                            continue  # the echo of our own write: its answer is in the snapshot already
                        self.incoming.put(key_of(obj), type_, obj)
                        self.wake.set()
                self.metrics.watch_restarts.labels(kind, "timeout").inc()
            except Exception as error:  # a watch thread must never die
                if not isinstance(error, KubeError):
                    log.exception("unexpected error in the %s watch; it restarts", kind)
                    error = KubeError(0, "InternalError", str(error))
                elif error.reason == "BadWatchEvent":
                    log.warning("the %s watch read a bad event and restarts from %s: %s", kind, version, error.message)
                reason = "expired" if error.code == 410 else "error"
                self.metrics.watch_restarts.labels(kind, reason).inc()
                if error.code == 410:
                    self._watch_versions.pop((kind, namespace), None)  # wait for a fresh list version
                    self._pass_requested = True
                    self.wake.set()
                else:
                    self.stop.wait(errors.failed("watch"))

    def _known(self, kind: str, obj: Obj) -> bool:
        """Whether the snapshot holds this version of the object or a newer one (read from a watch
        thread: a dict lookup, safe under the GIL; at worst an event is queued that need not be)."""
        snapshot = self.snapshot
        held = (snapshot.resources if kind in self.rules.tables else snapshot.children).get(key_of(obj))
        return held is not None and not _newer(obj, held)

    def _discard_events(self) -> None:
        self.incoming.clear()

    def _handle_events(self) -> None:
        if not self._snapshot_current:
            return  # no lists to act against (the last pass could not list): the next pass will
        keys: dict[Key, None] = {}
        events, overflowed = self.incoming.drain()
        if overflowed:
            self._pass_requested = True  # events were dropped: list everything again, now
            self.wake.set()
        for type_, obj in events:
            key = key_of(obj)
            if type_ != "DELETED" and self._known(obj["kind"], obj):
                continue  # the lists, or the answer to our own write, hold this version already
            if obj["kind"] not in self.rules.tables:
                owner = self._child_event(type_, obj)
                if owner is not None:
                    keys[owner] = None
                continue
            current = self.snapshot.resources.get(key)
            if type_ == "DELETED":
                self.snapshot.drop_resource(key)
                self._gauges.pop(key, None)
            elif current is not None and _older(obj, current):
                continue  # an event older than what we already hold (e.g. our own status write)
            else:
                self.snapshot.put_resource(obj)
                keys[key] = None
        for changed in self.snapshot.take_changed():  # e.g. modules reading their token Secret
            keys.update(dict.fromkeys(self.cache.readers(changed)))
        for changed in self.probes.take_changed():  # an S3 check that answered differently
            keys.update(dict.fromkeys(self.cache.readers(changed)))
        if not keys:
            return
        self._run(list(keys))
        self._publish()

    def _child_event(self, type_: str, obj: Obj) -> Key | None:
        """Apply a child's event to the snapshot; return its owner's key (to reconcile)."""
        key = key_of(obj)
        current = self.snapshot.children.get(key)
        if current is not None and _stale(obj, current):
            return None  # the echo of a write whose answer we already hold
        if type_ == "DELETED":
            self.snapshot.drop_child(key)
        else:
            self.snapshot.put_child(obj)
        for ref in obj["metadata"].get("ownerReferences") or []:
            owner = self.snapshot.by_uid(ref.get("uid", ""))
            if owner is not None:
                return owner
        return None

    # --- rule reloads ----------------------------------------------------------------

    def _reload(self) -> None:
        rules = self.rules_source.check()
        if rules is not None:
            self.rules = rules
            self.cache = RenderCache()
            # New tables may fix what failed: retry everything now, not after leftover backoff.
            self.backoff = Backoff()
            self.pass_backoff.succeeded("pass")
            self._pass_requested = True
            self._start_watches()


def _edited(before: Obj, after: Obj) -> bool:
    """Whether what a user may edit (spec, labels, annotations) differs between two versions."""
    old, new = before["metadata"], after["metadata"]
    return (
        old.get("generation") != new.get("generation")
        or old.get("labels") != new.get("labels")
        or old.get("annotations") != new.get("annotations")
    )


def _newer(event: Obj, current: Obj) -> bool:
    """True when ``event`` is a later version than ``current`` (unknown orders count as newer)."""
    try:
        return int(event["metadata"]["resourceVersion"]) > int(current["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return True


def _stale(event: Obj, current: Obj) -> bool:
    """True when ``event`` is older than ``current``. resourceVersions are opaque by contract, but
    every etcd-backed API server issues increasing integers; anything else is never called stale."""
    try:
        return int(event["metadata"]["resourceVersion"]) < int(current["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return False


def _older(event: Obj, current: Obj) -> bool:
    """True when ``event`` shows an older spec than ``current`` (generations are ordered)."""
    if event["metadata"].get("uid") != current["metadata"].get("uid"):
        return False
    return int(event["metadata"].get("generation") or 0) < int(current["metadata"].get("generation") or 0)
