"""The metrics the alerts and the dashboard read, over real HTTP from an operator on the stand-in.

Each is what a keeper needs to act on: which resource is not Ready and why, which one the
operator cannot reconcile, a module's restarts, and when its backups last ran and succeeded.
"""

from __future__ import annotations

from datetime import UTC, datetime

import urllib3
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from eevee.engine.expressions import cron_period
from tests.conftest import NAMESPACE, eventually
from tests.e2e.test_backups import PVC, credentials, schedule, store
from tests.operator_fixtures import module

http = urllib3.PoolManager(retries=False)


def samples(service) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = http.request("GET", service.http.url + "/metrics").data.decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def series(service, metric: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The series of ``metric`` for the resource ``name``, by their labels."""
    return {
        labels: value
        for (found, labels), value in samples(service).items()
        if found == metric and ("name", name) in labels
    }


def labels(name: str, **extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"name": name, "namespace": NAMESPACE, **extra}.items()))


def test_every_resource_reports_ready_and_why_it_is_not(cluster, operator, standin):
    cluster.create(module("echo"))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    ready = labels("echo", kind="BotModule", reason="Available")
    eventually(lambda: series(operator, "eevee_operator_resource_ready", "echo") == {ready: 1.0})
    assert series(operator, "eevee_operator_resource_reconcile_failing", "echo") == {
        labels("echo", kind="BotModule", reason=""): 0.0
    }
    # A crash loop (the stand-in's kubelet, as a real one reports it): not ready, and why, in
    # one series that replaces the last one; reconciling it does not fail.
    standin.pod_fault(NAMESPACE, "eevee-echo-module", "crashloop")
    crashing = labels("echo", kind="BotModule", reason="CrashLoopBackOff")
    eventually(lambda: series(operator, "eevee_operator_resource_ready", "echo") == {crashing: 0.0}, timeout=15)
    assert series(operator, "eevee_operator_resource_reconcile_failing", "echo")[
        labels("echo", kind="BotModule", reason="")
    ] == 0.0
    eventually(lambda: series(operator, "eevee_operator_module_restarts", "echo")[labels("echo")] >= 1, timeout=15)


def test_a_resource_the_operator_cannot_reconcile_is_failing_with_the_reason(cluster, operator):
    cluster.create(module("broken", envSecret={"name": "creds", "namespace": "elsewhere"}))
    failing = labels("broken", kind="BotModule", reason="InvalidSpec")
    eventually(lambda: series(operator, "eevee_operator_resource_reconcile_failing", "broken") == {failing: 1.0})
    assert series(operator, "eevee_operator_resource_ready", "broken") == {failing: 0.0}
    # Fixed: the failing series goes to 0 and loses its reason.
    cluster.patch("BotModule", "broken", {"spec": {"envSecret": None}})
    fixed = labels("broken", kind="BotModule", reason="")
    eventually(lambda: series(operator, "eevee_operator_resource_reconcile_failing", "broken") == {fixed: 0.0})


def stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_backup_times_come_from_the_cronjob_status(cluster, operator, standin, s3_server):
    standin.seed(credentials(s3=s3_server))
    cluster.create(store(s3=s3_server))
    cluster.create(schedule(schedule="0 3 * * 1-5"))  # weekdays: three days from Friday to Monday
    cluster.create(module("irc", persistentVolumeClaim=PVC, backupSchedule={"name": "nightly"}))
    job = eventually(lambda: cluster.read("CronJob", "nightly-irc-backup"), timeout=10)
    made = datetime.fromisoformat(job["metadata"]["creationTimestamp"].replace("Z", "+00:00")).timestamp()

    def backup(metric: str) -> float | None:
        return series(operator, f"eevee_operator_module_backup_{metric}", "irc").get(labels("irc"))

    # No backup has run: the last success counts from when the CronJob was made.
    eventually(lambda: backup("last_success_timestamp_seconds") == made, timeout=10)
    assert backup("period_seconds") == 3 * 86400
    assert backup("last_schedule_timestamp_seconds") is None
    # kube-controller-manager's CronJob controller writes these through the status subresource.
    scheduled, succeeded = 1_800_000_000, 1_800_000_300
    client.BatchV1Api(cluster.api).patch_namespaced_cron_job_status(
        "nightly-irc-backup", NAMESPACE,
        {"status": {"lastScheduleTime": stamp(scheduled), "lastSuccessfulTime": stamp(succeeded)}},
    )
    eventually(lambda: backup("last_success_timestamp_seconds") == succeeded, timeout=10)
    assert backup("last_schedule_timestamp_seconds") == scheduled


def test_the_period_of_a_schedule_is_its_longest_gap():
    assert cron_period("0 3 * * *") == 86400
    assert cron_period("@daily") == 86400
    assert cron_period("*/15 * * * *") == 900
    assert cron_period("0 0 1 * *") == 31 * 86400  # the longest month
    assert cron_period("not a schedule") is None
