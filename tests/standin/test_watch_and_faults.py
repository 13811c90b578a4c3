"""Watch streams, the request log, and fault injection."""

from __future__ import annotations

import threading
import time

import pytest
import urllib3
from kubernetes import client, watch

from kubestandin.store import compact
from tests.conftest import NAMESPACE, eventually, status_of


def cm(name, labels=None):
    return {"metadata": {"name": name, "labels": labels or {}}, "data": {"k": "v"}}


def collect(api, *, count, **kw):
    core = client.CoreV1Api(api)
    events = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_config_map, NAMESPACE, timeout_seconds=5, **kw):
        events.append((event["type"], event["object"].metadata.name))
        if len(events) >= count:
            w.stop()
    return events


def test_watch_streams_added_modified_deleted(api):
    core = client.CoreV1Api(api)
    start = core.list_namespaced_config_map(NAMESPACE).metadata.resource_version

    def writes():
        time.sleep(0.1)
        core.create_namespaced_config_map(NAMESPACE, cm("a"))
        core.patch_namespaced_config_map("a", NAMESPACE, {"data": {"k": "w"}})
        core.delete_namespaced_config_map("a", NAMESPACE)

    thread = threading.Thread(target=writes)
    thread.start()
    events = collect(api, count=3, resource_version=start)
    thread.join()
    assert events == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]


def test_watch_resumes_from_a_resource_version(api):
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(NAMESPACE, cm("before"))
    mark = core.list_namespaced_config_map(NAMESPACE).metadata.resource_version
    core.create_namespaced_config_map(NAMESPACE, cm("after"))
    assert collect(api, count=1, resource_version=mark) == [("ADDED", "after")]
    # without a version, a watch starts with the current state
    assert collect(api, count=2) == [("ADDED", "after"), ("ADDED", "before")]


def test_a_too_old_resource_version_is_410_gone(api, standin):
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(NAMESPACE, cm("a"))
    old = core.list_namespaced_config_map(NAMESPACE).metadata.resource_version
    core.create_namespaced_config_map(NAMESPACE, cm("b"))
    compact(standin.store)
    http = urllib3.PoolManager(ca_certs=str(standin.ca_file))
    response = http.request(
        "GET",
        f"{standin.url}/api/v1/namespaces/{NAMESPACE}/configmaps?watch=1&resourceVersion={old}&timeoutSeconds=2",
        headers={"Authorization": f"Bearer {standin.token}"},
    )
    import json

    event = json.loads(response.data.splitlines()[0])
    assert event["type"] == "ERROR"
    assert (event["object"]["code"], event["object"]["reason"]) == (410, "Expired")
    with pytest.raises(client.ApiException) as caught:
        collect(api, count=1, resource_version=old)
    assert caught.value.status == 410


def test_a_label_selected_watch_sees_objects_leave_and_join(api):
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(NAMESPACE, cm("a", {"team": "x"}))
    mark = core.list_namespaced_config_map(NAMESPACE).metadata.resource_version
    core.patch_namespaced_config_map("a", NAMESPACE, {"metadata": {"labels": {"team": None}}})
    core.patch_namespaced_config_map("a", NAMESPACE, {"metadata": {"labels": {"team": "x"}}})
    assert collect(api, count=2, resource_version=mark, label_selector="team=x") == [("DELETED", "a"), ("ADDED", "a")]


def test_request_log_counts_verbs_by_resource(api, standin):
    core = client.CoreV1Api(api)
    mark = standin.log.mark()
    core.create_namespaced_config_map(NAMESPACE, cm("a"))
    core.list_namespaced_config_map(NAMESPACE)
    core.read_namespaced_config_map("a", NAMESPACE)
    core.patch_namespaced_config_map("a", NAMESPACE, {"data": {"k": "w"}})
    core.delete_namespaced_config_map("a", NAMESPACE)
    counts = standin.log.counts(mark)
    assert counts == {
        ("create", "configmaps"): 1,
        ("list", "configmaps"): 1,
        ("get", "configmaps"): 1,
        ("patch", "configmaps"): 1,
        ("delete", "configmaps"): 1,
    }
    assert [w.verb for w in standin.log.writes(mark)] == ["create", "patch", "delete"]
    assert all(r.code < 300 for r in standin.log.entries(mark))


@pytest.mark.parametrize("code, reason", [(500, "InternalError"), (409, "Conflict"), (503, "ServiceUnavailable")])
def test_injected_errors_answer_the_next_matching_requests(api, standin, code, reason):
    core = client.CoreV1Api(api)
    standin.faults.inject(verb="create", resource="configmaps", code=code, times=2)
    for _ in range(2):
        with pytest.raises(client.ApiException) as caught:
            core.create_namespaced_config_map(NAMESPACE, cm("a"))
        assert (caught.value.status, status_of(caught.value)["reason"]) == (code, reason)
    assert core.create_namespaced_config_map(NAMESPACE, cm("a")).metadata.name == "a"
    core.list_namespaced_config_map(NAMESPACE)  # other verbs were never affected


def test_injected_timeouts_hang_then_answer_504(api, standin):
    core = client.CoreV1Api(api)
    rule = standin.faults.inject_timeout(verb="list", resource="configmaps", seconds=3, times=10)
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.HTTPError):  # read timeouts (urllib3 retries GETs a few times)
        core.list_namespaced_config_map(NAMESPACE, _request_timeout=0.2)
    assert time.monotonic() - started < 2.5
    assert rule.hits >= 1
    standin.faults.clear()
    assert core.list_namespaced_config_map(NAMESPACE).items == []


def test_cut_watches_end_open_streams(api, standin):
    core = client.CoreV1Api(api)
    ended = threading.Event()

    def watcher():
        try:
            for _ in watch.Watch().stream(
                core.list_namespaced_config_map, NAMESPACE, timeout_seconds=30, resource_version="1"
            ):
                pass
        except urllib3.exceptions.ProtocolError:
            pass  # the connection dropped mid-stream, as a cut watch does
        ended.set()

    threading.Thread(target=watcher, daemon=True).start()
    eventually(lambda: any(r.verb == "watch" for r in standin.log.entries()) or standin._watches)
    time.sleep(0.1)
    standin.cut_watches()
    core.create_namespaced_config_map(NAMESPACE, cm("wake"))
    assert ended.wait(5), "the watch did not end"


def test_pause_holds_requests_until_resume(api, standin):
    core = client.CoreV1Api(api)
    standin.faults.pause()
    done = threading.Event()
    threading.Thread(target=lambda: (core.list_namespaced_config_map(NAMESPACE), done.set()), daemon=True).start()
    assert not done.wait(0.3)
    standin.faults.resume()
    assert done.wait(5)
