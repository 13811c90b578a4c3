"""The operator's main loop: a watch-fed cache, polling passes over it, retries, leadership, reloads.

- Informers (``informer.py``) list every kind the tables read once, then follow its watch;
  the loop thread applies what they deliver to the cache (``Snapshot``). A pass reads nothing
  from the API server: at rest the operator sends no request but its Lease.
- Every ``poll_interval`` a full pass reconciles every resource from the cache, so drift is
  repaired even if an event was missed (level-triggered, as a polling reconciler should be).
- Events wake the loop: the resource they name (its owner, for a child; its readers, for a
  referenced object) is reconciled at once, so a spec change reaches its children in
  milliseconds.
- A resource whose reconcile failed is retried with backoff, on its own.
- Only the leader reconciles; a standby keeps its cache current, so it takes over without a
  list. The loop stops between two resources when asked to.

All reconciling happens on the loop's thread; the informer threads only deliver.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from eevee import __version__
from eevee.engine import pods
from eevee.engine.render import MANAGED_BY, MANAGED_BY_LABEL, RenderCache, status_inputs
from eevee.engine.status import FAILING_METRIC, Sample, failing_sample
from eevee.engine.tables import RuleSet
from eevee.kube.client import Kube, plural_of
from eevee.metrics import Metrics
from eevee.operator.backoff import Backoff
from eevee.operator.events import EventRecorder
from eevee.operator.informer import Delivery, Event, Informer, Listed, Unavailable, WatchKey
from eevee.operator.leader import LeaseElector
from eevee.operator.reconciler import Outcome, Reconciler, paused
from eevee.operator.reload import RulesSource
from eevee.operator.snapshot import Key, Obj, Snapshot, collect_frozen_garbage, key_of, recorded_child_kinds
from eevee.operator.workqueue import EventQueue
from eevee.probes import ProbeRunner
from eevee.settings import Settings

log = logging.getLogger("eevee.operator")
RELOAD_CHECK_SECONDS = 2.0
FOLLOW_RUNS = 3  # reconciles of one resource per batch, when what it reads keeps changing
FULL_COLLECTION_PASSES = 10  # a full garbage collection, frozen lists included, every this many passes
CHILD_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY}"
# Secrets Helm keeps its releases in (tens of KB each, a revision apiece) are never a reference:
# the Secret informer leaves them out (a field selector kube-apiserver supports for Secrets).
OTHER_FIELD_SELECTORS = {"Secret": "type!=helm.sh/release.v1"}


@dataclass
class Health:
    ready: bool
    leader: bool
    passes: int
    last_pass_seconds: float | None
    rules_valid: bool
    unavailable_kinds: dict[str, str]
    cache_synced: bool


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
        self.snapshot = Snapshot()  # the cache: kept current by the informers, never rebuilt
        self.backoff = Backoff()
        self.stop = threading.Event()
        self.incoming = EventQueue()  # watch events, one per object, the latest
        self.lists: deque[Delivery] = deque()  # (re)lists and unavailable kinds, in order
        self.passes = 0
        self.last_pass_seconds: float | None = None
        self._pass_requested = True
        self._gauges: dict[Key, list[Sample]] = {}
        self._threads: list[threading.Thread] = []
        self._wanted: set[WatchKey] = set()
        self._informers: dict[WatchKey, Informer] = {}
        self._synced: set[WatchKey] = set()  # listed (or found unavailable) at least once
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
        # Counted when /metrics is scraped, not on every event (see KindGauges).
        metrics.managed.source = self.snapshot.count
        metrics.paused.source = self._paused_counts

    # --- state for the HTTP API ----------------------------------------------------

    @property
    def leading(self) -> bool:
        return self.elector is None or self.elector.leading.is_set()

    def health(self) -> Health:
        standing_by = self.elector is not None and not self.leading and self.elector.in_touch
        return Health(
            ready=(self.leading and self.passes > 0) or (standing_by and self.synced()),
            leader=self.leading,
            passes=self.passes,
            last_pass_seconds=self.last_pass_seconds,
            rules_valid=self.rules_source.valid,
            unavailable_kinds=dict(self.snapshot.unavailable),
            cache_synced=self.synced(),
        )

    def wait_for_cache(self, timeout: float) -> bool:
        """Apply what the informers deliver until every kind is in the cache (for callers that
        drive passes themselves, not through run(): the benchmarks); False at the deadline."""
        deadline = time.monotonic() + timeout
        while not self.synced() and time.monotonic() < deadline:
            self.wake.wait(0.05)
            self.wake.clear()
            self._handle_events(reconcile=False)
        return self.synced()

    def synced(self) -> bool:
        """Whether every kind the tables read has been listed into the cache."""
        with self._watch_lock:
            return self._wanted <= self._synced

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
        child_kinds = dict.fromkeys(self.rules.child_kinds())
        # Kinds no table renders any more, that resources record they made: their objects are pruned.
        child_kinds.update(dict.fromkeys(recorded_child_kinds(self.snapshot)))
        kept = self.rules.cached_fields()
        wanted: set[WatchKey] = set()
        for namespace in scopes:
            for table in self.rules.tables.values():
                wanted.add(WatchKey(table.kind, table.api_version, table.plural, namespace, None, None, "resource"))
            # Children too (label-selected), as controller-runtime's Owns(): a Deployment
            # becoming ready, or edited or deleted by someone, wakes its owner at once.
            for api_version, kind in child_kinds:
                # Trimmed to what the tables read: a reload that reads more starts a new informer, which lists anew.
                keep = kept.get(kind)
                wanted.add(WatchKey(kind, api_version, plural_of(kind), namespace, CHILD_SELECTOR, None, "child", keep))
            # What tables reference and cannot select by label (a module's envSecret, an S3Store's
            # credentials): a Secret made or changed later takes effect within seconds.
            for api_version, kind in self.rules.referenced_kinds():
                selector = OTHER_FIELD_SELECTORS.get(kind)
                wanted.add(WatchKey(kind, api_version, plural_of(kind), namespace, None, selector, "other"))
            # What the children run (a table's pods.of): their ReplicaSets and Pods, which carry the
            # children's pod-template labels, so the same label selects them and nothing else.
            if self.rules.watches_pods():
                for read in pods.OBSERVED.values():
                    kind, plural = read.kind, plural_of(read.kind)
                    wanted.add(WatchKey(kind, read.api_version, plural, namespace, CHILD_SELECTOR, None, "observed"))
        return wanted

    def _start_watches(self) -> None:
        """An informer for every kind the current tables use; one whose kind a reload dropped ends by itself."""
        with self._watch_lock:
            self._wanted = self._wanted_watches()
            self.snapshot.kept = self.rules.cached_fields()
            self._synced &= self._wanted
            for key in sorted(self._wanted - set(self._informers), key=repr):
                informer = Informer(
                    self.kube,
                    key,
                    deliver=self.deliver,
                    stop=self.stop,
                    metrics=self.metrics,
                    silence=self.settings.watch_silence,
                    resync=self.settings.resync_interval,
                    retry_unavailable=min(self.settings.poll_interval, 30.0),
                    wanted=self._still_wanted,
                )
                self._informers[key] = informer
                self._spawn(f"informer-{key.plural}-{key.namespace or 'all'}", self._run_informer, informer)

    def _still_wanted(self, key: WatchKey) -> bool:
        with self._watch_lock:
            return key in self._wanted

    def _run_informer(self, informer: Informer) -> None:
        try:
            informer.run()
        finally:
            with self._watch_lock:
                if self._informers.get(informer.key) is informer:
                    del self._informers[informer.key]

    def _spawn(self, name: str, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def shutdown(self) -> None:
        self.stop.set()
        self.wake.set()
        self.probes.close()
        self.incoming.close()
        self.kube.close_streams()  # unblock the informer threads now rather than at their timeout

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
            self._handle_events(reconcile=False)  # a standby keeps its cache current
            self.wake.wait(0.25)
            self.wake.clear()
            return next_pass, next_reload
        self._handle_events(reconcile=self.passes > 0)
        if (self._pass_requested or now >= next_pass) and self.synced():
            self.full_pass()
            next_pass = time.monotonic() + self.settings.poll_interval
            self._pass_requested = False
        self._retry_due()
        deadlines = [next_pass, next_reload]
        retry = self.backoff.next_due()
        if retry is not None:
            deadlines.append(retry)
        timeout = max(0.0, min(deadlines) - time.monotonic())
        # An event is acted on at once, as controller-runtime does (no settling delay: 0.2.x waited
        # 20 ms, most of a spec change's latency). A burst still batches: what arrives while the
        # loop works waits in the queue, one entry per object, for the next turn.
        if self.wake.wait(timeout):
            self.wake.clear()
        return next_pass, next_reload

    # --- passes --------------------------------------------------------------------

    def full_pass(self) -> bool:
        """Reconcile every resource from the cache (no request but the writes it needs)."""
        started = time.monotonic()
        self._handle_events(reconcile=False)  # what the informers delivered is in before we start
        if self.passes % FULL_COLLECTION_PASSES == 0:
            # What the cache holds lives long: once collected, it goes to the permanent generation,
            # so later collections walk only what passes and events make (see snapshot.py).
            collect_frozen_garbage()
            gc.freeze()
        self.snapshot.fetched.clear()  # objects of kinds no informer follows: read again this pass
        self._run(self.snapshot.sorted_keys(self.rules.kind_order()))
        keys = set(self.snapshot.resources)
        self.cache.retain(keys, set(self.snapshot.children))
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
            kept = [sample for sample in self._gauges.get(key, []) if sample[0] != FAILING_METRIC]
            outcome = Outcome("error", gauges=[*kept, failing_sample(key[0], "InternalError")])
        if outcome.result == "error":
            delay = self.backoff.failed(key)
            log.info("retrying in %.2fs", delay, extra={"kind": key[0], "namespace": key[1], "resource_name": key[2]})
        else:
            self.backoff.succeeded(key)
        self._gauges[key] = outcome.gauges
        return outcome

    def _publish(self) -> None:
        self.metrics.resources.replace(self._gauges)

    def _paused_counts(self) -> dict[str, int]:
        """Paused resources by kind, a 0 for every table's kind (read when /metrics is scraped)."""
        held = dict.fromkeys(self.rules.tables, 0)
        for (kind, _, _), resource in list(self.snapshot.resources.items()):
            if paused(resource):
                held[kind] = held.get(kind, 0) + 1
        return held

    def _retry_due(self) -> None:
        if self.passes == 0:
            return
        due = [key for key in self.backoff.due() if key in self.snapshot.resources]
        if not due:
            return
        self._run(due)  # type: ignore[arg-type]
        self._publish()

    # --- what the informers deliver ------------------------------------------------------

    def deliver(self, delivery: Delivery) -> None:
        """Called on informer threads: queue a delivery for the loop and wake it."""
        if delivery.key not in self._wanted:
            return  # an informer whose kind a reload dropped, until its watch ends
        if isinstance(delivery, Event):
            if delivery.type != "DELETED" and self._known(delivery.key.role, delivery.obj):
                return  # the echo of our own write: its answer is in the cache already
            self.incoming.put((delivery.key.role, *key_of(delivery.obj)), delivery.type, delivery.obj)
        else:
            self.lists.append(delivery)
        self.wake.set()

    def _known(self, role: str, obj: Obj) -> bool:
        """Whether the cache holds this version of the object or a newer one (read from an informer
        thread: a dict lookup, safe under the GIL; at worst an event is queued that need not be)."""
        found = self.snapshot.role(role)[0].get(key_of(obj))
        return found is not None and not _newer(obj, found)

    def _handle_events(self, *, reconcile: bool = True) -> None:
        """Apply what the informers delivered to the cache; with ``reconcile``, reconcile whom it concerns."""
        keys: dict[Key, None] = {}
        while self.lists:
            self._apply_list(self.lists.popleft(), keys)
        for (role, *_), type_, obj in self.incoming.drain():
            if role == "resource":
                key = key_of(obj)
                current = self.snapshot.resources.get(key)
                if type_ == "DELETED":
                    self.snapshot.drop_resource(key)
                    self._gauges.pop(key, None)
                elif current is not None and (not _newer(obj, current) or _older(obj, current)):
                    continue  # what we hold is as new (the answer to our own write), or newer
                else:
                    self.snapshot.put_resource(obj)
                    keys[key] = None
            elif role == "child":
                owner = self._child_event(type_, obj)
                if owner is not None:
                    keys[owner] = None
            elif role == "observed":  # a Pod or ReplicaSet of a child: its resource says what its Pod says
                if type_ == "DELETED":
                    self.snapshot.drop_observed(key_of(obj))
                else:
                    self.snapshot.put_observed(obj)
                owner = self.snapshot.owner_of_observed(obj) if pods.OBSERVED[obj["kind"]].wakes_owner else None
                if owner is not None:
                    keys[owner] = None
            elif type_ == "DELETED":
                self.snapshot.drop_other(key_of(obj))
            else:
                held = self.snapshot.others.get(key_of(obj))
                if held is None or _newer(obj, held):
                    self.snapshot.put_other(obj)
        for changed in self.snapshot.take_changed():  # e.g. modules reading their token Secret
            keys.update(dict.fromkeys(self.cache.readers(changed)))
        for changed in self.probes.take_changed():  # an S3 check that answered differently
            keys.update(dict.fromkeys(self.cache.readers(changed)))
        if not keys or not reconcile:
            return
        self._run([key for key in keys if key in self.snapshot.resources])
        self._publish()

    def _apply_list(self, delivery: Delivery, keys: dict[Key, None]) -> None:
        key = delivery.key
        with self._watch_lock:
            if key not in self._wanted:
                return  # a kind a reload dropped
            first = key not in self._synced
            self._synced.add(key)
        if isinstance(delivery, Unavailable):
            if key.kind not in self.snapshot.unavailable:
                log.error("kind %s cannot be listed, resources needing it are marked: %s", key.kind, delivery.why)
                self.snapshot.unavailable[key.kind] = delivery.why
                self.metrics.kind_unavailable.labels(key.kind).set(1)
                self._pass_requested = True  # those resources say so now
            return
        if self.snapshot.unavailable.pop(key.kind, None) is not None:
            log.info("kind %s can be listed again", key.kind)
            self._pass_requested = True
        self.metrics.kind_unavailable.labels(key.kind).set(0)  # a series per kind read, 0 while all is well
        assert isinstance(delivery, Listed)
        before = set(self.snapshot.resources) if key.role == "resource" else set()
        self.snapshot.replace(key.role, key.kind, key.namespace, delivery.items)
        if first:
            self.snapshot.take_changed()  # the first pass reconciles everything anyway
            if key.role == "resource":
                self._start_watches()  # child kinds recorded in the resources' status
        elif key.role == "resource":  # a relist after 410: what changed meanwhile is reconciled
            for changed in self.snapshot.changed:
                if changed in self.snapshot.resources or changed in before:
                    keys[changed] = None
            for gone in before - set(self.snapshot.resources):
                self._gauges.pop(gone, None)
        elif key.role == "observed":
            for obj in delivery.items:
                owner = self.snapshot.owner_of_observed(obj)
                if owner is not None:
                    keys[owner] = None
        elif key.role == "child":
            for changed in list(self.snapshot.changed):
                obj = self.snapshot.children.get(changed)
                for ref in (obj or {}).get("metadata", {}).get("ownerReferences") or []:
                    owner = self.snapshot.by_uid(ref.get("uid", ""))
                    if owner is not None:
                        keys[owner] = None
        self.metrics.cache_synced.set(1 if self.synced() else 0)

    def _child_event(self, type_: str, obj: Obj) -> Key | None:
        """Apply a child's event to the cache; return its owner's key (to reconcile)."""
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
