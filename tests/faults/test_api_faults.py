"""Faults of the Kubernetes API during work: the operator survives, retries with backoff,
converges afterwards, creates no duplicate, and counts the errors.

| fault                                  | expected                                                  |
|----------------------------------------|-----------------------------------------------------------|
| 500s on creates                        | retried with backoff; one Deployment in the end           |
| request timeouts (hangs) on patches    | retried; the change lands                                 |
| 409 conflicts on patches               | re-read and patched again; the change lands               |
| 503s on the lists of a pass            | the pass is retried with backoff; the loop goes on        |
| the watch is cut                       | the watch reconnects; the next change still arrives fast |
| a watch stream carries garbage bytes   | logged; the watch restarts from its last resourceVersion |
|                                        | and the change behind the garbage still arrives fast     |
| the API server is away for 30 seconds  | nothing is lost; everything converges after it returns   |
| killed between two writes, restarted   | converges with no duplicate and no orphan                |
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time

import pytest

from eevee.kube.client import USER_AGENT
from tests.conftest import NAMESPACE, ROOT, eventually
from tests.operator_fixtures import API_TOKEN, examples, ipc, module, wait_passes

pytestmark = pytest.mark.faults


def samples(service, name, labels):
    return service.metrics.registry.get_sample_value(name, labels) or 0


def one_of_each(cluster):
    deployments = [d.metadata.name for d in cluster.apps.list_namespaced_deployment(NAMESPACE).items]
    assert len(deployments) == len(set(deployments))
    return deployments


def test_server_errors_on_creates_are_retried_with_backoff(cluster, operator, standin):
    standin.faults.inject(verb="create", resource="deployments", code=500, times=4)
    cluster.create(module("echo"))
    eventually(lambda: cluster.ready("BotModule", "echo"), timeout=30)
    assert one_of_each(cluster) == ["eevee-echo-module"]
    assert samples(operator, "eevee_operator_kube_requests_total", {"verb": "create", "resource": "deployments", "code": "500"}) == 4
    assert samples(operator, "eevee_operator_reconcile_errors_total", {"kind": "BotModule", "reason": "ReconcileFailed"}) >= 4
    failed = [r.at for r in standin.log.entries() if r.verb == "create" and r.resource == "deployments"]
    gaps = [b - a for a, b in itertools.pairwise(failed)]
    assert gaps[-1] > gaps[0]  # the waits grow: exponential backoff


def test_timeouts_on_patches_are_retried(cluster, start_operator, standin):
    service = start_operator()
    service.kube.timeout = 0.5
    cluster.create(module("echo"))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    standin.faults.inject_timeout(verb="patch", resource="deployments", seconds=2, times=2)
    cluster.patch("BotModule", "echo", {"spec": {"image": "ghcr.io/eeveebot/echo:9.0.0"}})
    eventually(lambda: cluster.deployment("eevee-echo-module")["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/eeveebot/echo:9.0.0", timeout=30)
    assert samples(service, "eevee_operator_kube_requests_total", {"verb": "patch", "resource": "deployments", "code": "0"}) >= 1


def test_conflicts_are_reread_and_patched_again(cluster, operator, standin):
    """Three 409s in a row (a rollout writes its Deployment's status many times a second) are
    three re-reads and new patches within the one reconcile, as client-go's RetryOnConflict does
    (retry.DefaultRetry: 5 attempts): no failed reconcile, no retry after a backoff."""
    cluster.create(module("echo"))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    errors = samples(operator, "eevee_operator_reconcile_total", {"kind": "BotModule", "result": "error"})
    gets = {"verb": "get", "resource": "deployments", "code": "200"}
    read = samples(operator, "eevee_operator_kube_requests_total", gets)
    standin.faults.inject(verb="patch", resource="deployments", code=409, times=3)
    cluster.patch("BotModule", "echo", {"spec": {"size": 3}})
    eventually(lambda: cluster.deployment("eevee-echo-module")["spec"]["replicas"] == 3, timeout=30)
    assert samples(operator, "eevee_operator_kube_requests_total", gets) >= read + 3
    assert samples(operator, "eevee_operator_reconcile_total", {"kind": "BotModule", "result": "error"}) == errors


def test_a_failing_list_is_retried_and_the_loop_goes_on(cluster, start_operator, standin):
    """The cache lists each kind once; a list that fails is retried by its informer with backoff,
    and the first pass waits for every kind to be in the cache (it never works from half a cache)."""
    cluster.create(module("echo"))
    standin.faults.inject(verb="list", resource="botmodules", code=503, times=3)
    service = start_operator(poll_interval=0.2, leader_election=False)
    eventually(lambda: cluster.ready("BotModule", "echo"), timeout=30)
    failed = [e for e in standin.log.entries() if e.verb == "list" and e.resource == "botmodules" and e.code == 503]
    assert len(failed) == 3
    assert service.runner.health().cache_synced
    assert samples(service, "eevee_operator_relists_total", {"kind": "BotModule", "reason": "initial"}) == 1


def test_a_cut_watch_reconnects(cluster, operator, standin):
    cluster.create(module("echo"))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    standin.cut_watches()
    eventually(lambda: samples(operator, "eevee_operator_watch_restarts_total", {"kind": "BotModule", "reason": "error"}) >= 1)
    cluster.patch("BotModule", "echo", {"spec": {"size": 2}})
    eventually(lambda: cluster.deployment("eevee-echo-module")["spec"]["replicas"] == 2, timeout=10)
    assert operator.runner.passes == 1  # the watch carried it, not a poll pass


def test_garbage_in_a_watch_stream_restarts_the_watch_where_it_was(cluster, operator, standin, caplog):
    cluster.create(module("echo"))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    standin.faults.garble_watches(b"\xfb\xc1 not utf-8, not json \xae\n")
    cluster.patch("BotModule", "echo", {"spec": {"size": 3}})  # its event comes right after the garbage
    eventually(lambda: cluster.deployment("eevee-echo-module")["spec"]["replicas"] == 3, timeout=10)
    assert operator.runner.passes == 1  # carried by the restarted watch, not by a poll pass
    assert any("bad event" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    assert samples(operator, "eevee_operator_watch_restarts_total", {"kind": "BotModule", "reason": "error"}) >= 1


def test_the_api_server_away_for_30_seconds(cluster, start_operator, standin):
    service = start_operator(poll_interval=1.0, leader_election=False)
    service.kube.timeout = 2.0
    cluster.create(module("echo"))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    standin.faults.pause()
    time.sleep(30)
    assert service.runner._threads and service._thread.is_alive()  # still running
    standin.faults.resume()
    cluster.patch("BotModule", "echo", {"spec": {"size": 4}})
    cluster.create(module("late"))
    eventually(lambda: cluster.deployment("eevee-echo-module")["spec"]["replicas"] == 4, timeout=30)
    eventually(lambda: cluster.ready("BotModule", "late"), timeout=30)
    assert sorted(one_of_each(cluster)) == ["eevee-echo-module", "eevee-late-module"]


def test_killed_between_two_writes_then_restarted(cluster, start_operator, standin):
    """SIGKILL while the Deployment create of a module hangs, after its ConfigMap was written."""
    cluster.create(module("echo", moduleConfig="a: 1\n"))
    standin.faults.inject_timeout(verb="create", resource="deployments", seconds=30, times=1)
    env = {**os.environ, "KUBECONFIG": str(standin.kubeconfig), "NAMESPACE": NAMESPACE, "HTTP_API_PORT": "0",
           "HTTP_API_HOST": "127.0.0.1", "EEVEE_OPERATOR_API_TOKEN": API_TOKEN, "RULES_DIR": str(ROOT / "rules"),
           "LEASE_DURATION_SECONDS": "2"}
    with subprocess.Popen([sys.executable, "-m", "eevee", "run"], env=env, stderr=subprocess.DEVNULL) as process:
        eventually(lambda: any(r.verb == "create" and r.resource == "deployments" for r in standin.log.entries()), timeout=30)
        assert cluster.exists("ConfigMap", "eevee-echo-module-config")
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    standin.faults.clear()
    service = start_operator(identity="operator-b", poll_interval=0.3)  # waits out the dead leader's lease
    eventually(lambda: cluster.ready("BotModule", "echo"), timeout=30)
    wait_passes(service, 2)
    assert one_of_each(cluster) == ["eevee-echo-module"]
    configs = [c.metadata.name for c in cluster.core.list_namespaced_config_map(NAMESPACE).items]
    assert configs == ["eevee-echo-module-config"]
    uids = {cluster.get("BotModule", "echo")["metadata"]["uid"]}
    for obj in cluster.apps.list_namespaced_deployment(NAMESPACE).items + cluster.core.list_namespaced_config_map(NAMESPACE).items:
        assert {ref.uid for ref in obj.metadata.owner_references} <= uids  # no orphan


def test_everything_converges_under_random_faults(cluster, start_operator, standin):
    """A storm: the examples created while a third of the writes fail in every way."""
    service = start_operator(poll_interval=0.5)
    service.kube.timeout = 1.0
    for verb in ("create", "patch"):
        standin.faults.inject(verb=verb, code=500, times=5, agent=USER_AGENT)
        standin.faults.inject(verb=verb, code=409, times=3, agent=USER_AGENT)
        standin.faults.inject_timeout(verb=verb, seconds=1.5, times=2, agent=USER_AGENT)
    for resource in examples().values():
        cluster.create(resource)
    cluster.create(ipc("spare"))
    for name in ("router", "echo", "irc-libera"):
        eventually(lambda n=name: cluster.ready("BotModule", n), timeout=60)
    eventually(lambda: cluster.ready("IpcConfig", "eevee-bus"), timeout=60)
    assert len(one_of_each(cluster)) == 6
    assert sorted(s.metadata.name for s in cluster.core.list_namespaced_secret(NAMESPACE).items) == ["eevee-bus-token", "spare-nats-token"]
