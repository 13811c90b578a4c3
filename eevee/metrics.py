"""The operator's Prometheus metrics, on a registry of its own (SPEC section 7).

A registry of our own (not prometheus_client's global one) keeps tests and the
demo, which run several operators in one process, from sharing counters. Names
follow Prometheus conventions: ``eevee_operator_`` prefix, base units
(``_seconds``), ``_total`` on counters.

Per-resource gauges (a module's desired and ready replicas, whether it is
enabled) are declared in the rule tables' ``metrics`` sections and exported by
:class:`ResourceGauges`, which is replaced wholesale after every pass, so a
deleted module's series disappear with it.
"""

from __future__ import annotations

import platform
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from eevee import __version__
from eevee.engine.status import Sample

_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class KindGauges(Collector):
    """A gauge by kind worked out when it is scraped (client_golang's GaugeFunc, with a label):
    counting every resource and child on every event was milliseconds of a reconcile's time at
    5,000 modules. ``source`` is set by the runner; it reads the cache without locking (a
    ``list()`` of a dict is one step under the GIL)."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name, self.documentation = name, documentation
        self.source: Callable[[], Mapping[str, int]] = dict

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=["kind"])
        for kind, count in sorted(self.source().items()):
            family.add_metric([kind], count)
        yield family


class ResourceGauges(Collector):
    """Gauges per custom resource, declared by the tables, swapped in after each pass.

    The loop hands over its table of samples per resource as it is (a shallow copy, cheap at any
    size); the families are built when they are scraped, not on every pass."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._per_resource: dict[tuple[str, str, str], list[Sample]] = {}

    def replace(self, per_resource: Mapping[tuple[str, str, str], list[Sample]]) -> None:
        """``per_resource``: (kind, namespace, name) -> [(metric, documentation, value, extra labels)].
        A metric's extra labels are the same names for every resource."""
        with self._lock:
            self._per_resource = dict(per_resource)

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            per_resource = self._per_resource
        samples: dict[str, tuple[str, list[str], list[tuple[list[str], float]]]] = {}
        for (_, namespace, name), gauges in per_resource.items():
            for metric, documentation, value, extra in gauges:
                family = samples.setdefault(metric, (documentation, [k for k, _ in extra], []))
                family[2].append(([name, namespace, *(v for _, v in extra)], value))
        for name, (documentation, labels, values) in sorted(samples.items()):
            family = GaugeMetricFamily(name, documentation, labels=["name", "namespace", *labels])
            for label_values, value in values:
                family.add_metric(label_values, value)
            yield family


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.build_info = Gauge(
            "eevee_operator_build_info", "The operator's version (always 1).", ["version", "python"], registry=r
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self.reconciles = Counter(
            "eevee_operator_reconcile_total",
            "Reconciles of custom resources, by kind and result.",
            ["kind", "result"],
            registry=r,
        )
        self.reconcile_seconds = Histogram(
            "eevee_operator_reconcile_duration_seconds",
            "Time to reconcile one custom resource.",
            ["kind", "result"],
            buckets=_FAST,
            registry=r,
        )
        self._reconcile_series: dict[tuple[str, str], tuple[Any, Any]] = {}
        self.errors = Counter(
            "eevee_operator_reconcile_errors_total",
            "Reconcile errors, by kind and reason.",
            ["kind", "reason"],
            registry=r,
        )
        self.writes = Counter(
            "eevee_operator_child_writes_total",
            "Writes to child objects, by child kind and action (create, patch, delete).",
            ["kind", "action"],
            registry=r,
        )
        self.kube_requests = Counter(
            "eevee_operator_kube_requests_total",
            "Requests to the Kubernetes API, by verb, resource and status code (0: no answer).",
            ["verb", "resource", "code"],
            registry=r,
        )
        self.kube_seconds = Histogram(
            "eevee_operator_kube_request_duration_seconds",
            "Latency of Kubernetes API requests, by verb.",
            ["verb"],
            buckets=_FAST,
            registry=r,
        )
        self.pass_seconds = Histogram(
            "eevee_operator_poll_pass_duration_seconds",
            "Duration of a full poll pass.",
            buckets=(*_FAST, 30.0, 60.0),
            registry=r,
        )
        self.passes = Counter(
            "eevee_operator_poll_passes_total", "Full poll passes, by result.", ["result"], registry=r
        )
        self.managed = KindGauges(
            "eevee_operator_managed_objects", "Objects the operator manages, by kind (custom resources and children)."
        )
        r.register(self.managed)
        self.rule_reloads = Counter(
            "eevee_operator_rule_reloads_total",
            "Rule-table (re)loads, by result (success, failure).",
            ["result"],
            registry=r,
        )
        self.rules_valid = Gauge(
            "eevee_operator_rules_last_reload_successful", "1 when the last rule-table load succeeded.", registry=r
        )
        self.http_requests = Counter(
            "eevee_operator_http_requests_total",
            "HTTP API requests, by route, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "eevee_operator_http_request_duration_seconds",
            "HTTP API latency, by route and status.",
            ["route", "status"],
            buckets=_FAST,
            registry=r,
        )
        self.kind_unavailable = Gauge(
            "eevee_operator_kind_unavailable",
            "1 while a kind the rule tables use cannot be listed (404: not served; 403: not allowed).",
            ["kind"],
            registry=r,
        )
        self.leader = Gauge("eevee_operator_leader", "1 while this replica holds the leader lease.", registry=r)
        self.watch_restarts = Counter(
            "eevee_operator_watch_restarts_total",
            "Watch streams restarted, by kind and reason.",
            ["kind", "reason"],
            registry=r,
        )
        self.relists = Counter(
            "eevee_operator_relists_total",
            "Kinds listed whole, by kind and reason: initial, expired (410 Gone), resync.",
            ["kind", "reason"],
            registry=r,
        )
        self.paused = KindGauges(
            "eevee_operator_paused_resources",
            "Resources whose children are not written while annotated eevee.bot/reconcile=paused, by kind.",
        )
        r.register(self.paused)
        self.cache_synced = Gauge(
            "eevee_operator_cache_synced",
            "1 once every kind the rule tables read has been listed into the cache.",
            registry=r,
        )
        self.resources = ResourceGauges()
        r.register(self.resources)

    def observe_reconcile(self, kind: str, result: str, seconds: float) -> None:
        """One reconcile counted and timed (its two series looked up once per kind and result:
        a steady pass does this for every resource)."""
        series = self._reconcile_series.get((kind, result))
        if series is None:
            series = (self.reconciles.labels(kind, result), self.reconcile_seconds.labels(kind, result))
            self._reconcile_series[(kind, result)] = series
        series[0].inc()
        series[1].observe(seconds)

    def observe_kube(self, verb: str, resource: str, code: int, seconds: float) -> None:
        self.kube_requests.labels(verb, resource, str(code)).inc()
        self.kube_seconds.labels(verb).observe(seconds)
