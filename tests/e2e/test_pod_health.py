"""A BotModule says what its Pod says (issue 23): the stand-in's kubelet crash-loops a Pod, fails
an image pull, a container's config, or leaves it unschedulable, as a real kubelet and scheduler
report them (containerStatuses[].state.waiting.reason, lastState.terminated, PodScheduled=False
reason Unschedulable: k8s.io/api core/v1 PodStatus), and the module's Ready condition carries it
within seconds, with one Warning Event per change of reason, and no stream of writes while the
restart count climbs."""

from __future__ import annotations

import time

import pytest
import urllib3

from tests.conftest import NAMESPACE, eventually
from tests.operator_fixtures import API_TOKEN, module


def ready_condition(cluster, name="echo"):
    return cluster.condition("BotModule", name)


@pytest.mark.parametrize(
    "mode, details, reasons, words",
    [
        ("crashloop", {"exit_code": 137, "reason": "OOMKilled"}, {"CrashLoopBackOff"}, "last exit code 137 (OOMKilled)"),
        ("image", {}, {"ErrImagePull", "ImagePullBackOff"}, "Back-off pulling image"),
        ("config", {"message": 'secret "echo-env" not found'}, {"CreateContainerConfigError"}, 'secret "echo-env" not found'),
        ("unschedulable", {}, {"Unschedulable"}, "cannot be scheduled: 0/1 nodes are available"),
    ],
)
def test_a_module_says_what_its_pod_says(cluster, operator, standin, mode, details, reasons, words):
    cluster.create(module("echo"))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    standin.pod_fault(NAMESPACE, "eevee-echo-module", mode, **details)
    condition = eventually(lambda: (c := ready_condition(cluster)).get("reason") in reasons and c, timeout=10)
    assert condition["status"] == "False" and words in condition["message"]
    events = [e for e in cluster.events("echo") if e["type"] == "Warning" and e["reason"] in reasons]
    assert events and words in events[0]["message"]
    standin.pod_fault(NAMESPACE, "eevee-echo-module", None)  # fixed: it runs again
    eventually(lambda: cluster.ready("BotModule", "echo"), timeout=10)


def test_a_crash_loop_is_one_event_and_no_stream_of_writes(cluster, operator, standin):
    cluster.create(module("echo"))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    standin.pod_fault(NAMESPACE, "eevee-echo-module", "crashloop", exit_code=1)
    eventually(lambda: ready_condition(cluster).get("reason") == "CrashLoopBackOff", timeout=10)
    eventually(lambda: cluster.get("BotModule", "echo")["status"].get("restarts", 0) >= 1)
    def restarts():
        return standin.objects("v1", "Pod")[0]["status"]["containerStatuses"][0]["restartCount"]

    before = restarts()
    mark = standin.log.mark()
    time.sleep(5)  # a window in which nothing may be written; the kubelet restarts the container every second
    assert restarts() >= before + 2  # the count climbed meanwhile
    writes = [w for w in standin.log.writes(mark) if w.resource == "botmodules/status"]
    assert writes == []  # a restart count that alone changed is written at most once a minute
    crash_events = [e for e in cluster.events("echo") if e["reason"] == "CrashLoopBackOff"]
    assert len(crash_events) == 1 and crash_events[0].get("count", 1) == 1


def test_the_pod_list_answers_fifty_modules_from_the_cache(cluster, operator, standin):
    for index in range(50):
        cluster.create(module(f"m{index}"))
    http = urllib3.PoolManager()
    headers = {"Authorization": f"Bearer {API_TOKEN}"}

    def all_running():
        items = http.request("GET", operator.http.url + "/api/bot-modules", headers=headers).json()
        return len(items) == 50 and all(m["podStatus"] and m["podStatus"]["ready"] for m in items) and items

    eventually(all_running, timeout=30)
    mark = standin.log.mark()
    started = time.monotonic()
    items = http.request("GET", operator.http.url + "/api/bot-modules", headers=headers).json()
    took = time.monotonic() - started
    assert len(items) == 50 and took < 1.0, took
    reads = [e for e in standin.log.entries(mark) if e.verb in ("get", "list")]
    assert reads == []  # no request per call, nor per module: the answer is the watch-fed cache


def test_an_image_that_cannot_be_pulled_shows_in_the_module(cluster, operator):
    """A registry host that never resolves (the .invalid top-level domain, RFC 6761): the kubelet's
    pull fails, ErrImagePull then ImagePullBackOff, and the module says so."""
    cluster.create(module("echo", image="registry.invalid/eevee/echo:1.0.0"))
    condition = eventually(lambda: (c := ready_condition(cluster)).get("reason") in ("ErrImagePull", "ImagePullBackOff") and c,
                           timeout=10)
    assert "no such host" in condition["message"]
    cluster.patch("BotModule", "echo", {"spec": {"image": "ghcr.io/eeveebot/echo:1.0.0"}})
    eventually(lambda: cluster.ready("BotModule", "echo"), timeout=10)
