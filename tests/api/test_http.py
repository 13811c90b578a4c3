"""The HTTP API over real HTTP (waitress), backed by the stand-in."""

from __future__ import annotations

import json
import logging

import pytest
import urllib3
from prometheus_client.parser import text_string_to_metric_families

from eevee import __version__
from eevee.api.modules import parse_image
from tests.conftest import NAMESPACE, eventually
from tests.operator_fixtures import API_TOKEN, examples

http = urllib3.PoolManager(retries=False)


def request(service, method, path, *, token=API_TOKEN, headers=None, body=None):
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    response = http.request(method, service.http.url + path, headers=all_headers, body=body)
    return response.status, response.headers, response.data


def as_json(data):
    return json.loads(data)


@pytest.fixture
def running(cluster, operator):
    for resource in examples().values():
        cluster.create(resource)
    for name in ("router", "echo", "irc-libera"):
        eventually(lambda n=name: cluster.ready("BotModule", n))
    return operator


@pytest.mark.parametrize(
    "image, repository, tag, digest",
    [
        ("ghcr.io/eeveebot/router:1.4.2", "ghcr.io/eeveebot/router", "1.4.2", None),
        ("ghcr.io/eeveebot/router@sha256:abcd", "ghcr.io/eeveebot/router", None, "sha256:abcd"),
        ("ghcr.io/eeveebot/router:1.4.2@sha256:abcd", "ghcr.io/eeveebot/router", "1.4.2", "sha256:abcd"),
        ("registry:5000/echo", "registry:5000/echo", "latest", None),
        ("registry:5000/echo:2", "registry:5000/echo", "2", None),
        ("echo", "echo", "latest", None),
    ],
)
def test_image_references_parse_digest_aware(image, repository, tag, digest):
    assert parse_image(image) == {"repository": repository, "tag": tag, "digest": digest}


def test_health_ready_and_metrics_are_open(running):
    status, _, data = request(running, "GET", "/health", token=None)
    assert (status, as_json(data)) == (200, {"status": "ok", "version": __version__})
    status, _, data = request(running, "GET", "/ready", token=None)
    body = as_json(data)
    assert status == 200 and body["ready"] is True and body["leader"] is True and body["rulesValid"] is True
    status, headers, data = request(running, "GET", "/metrics", token=None)
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(data.decode())}
    for name in ("eevee_operator_reconcile", "eevee_operator_reconcile_duration_seconds", "eevee_operator_reconcile_errors",
                 "eevee_operator_kube_requests", "eevee_operator_poll_pass_duration_seconds", "eevee_operator_managed_objects",
                 "eevee_operator_rule_reloads", "eevee_operator_http_requests", "eevee_operator_http_request_duration_seconds",
                 "eevee_operator_leader", "eevee_operator_module_enabled", "eevee_operator_module_replicas_desired",
                 "eevee_operator_module_replicas_ready"):
        assert name in families, name
    assert families["eevee_operator_reconcile"].type == "counter"
    assert families["eevee_operator_reconcile_duration_seconds"].type == "histogram"
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("eevee_operator_module_replicas_desired", (("name", "router"), ("namespace", NAMESPACE)))] == 2
    assert samples[("eevee_operator_module_enabled", (("name", "admin"), ("namespace", NAMESPACE)))] == 0
    assert samples[("eevee_operator_leader", ())] == 1
    assert samples[("eevee_operator_managed_objects", (("kind", "BotModule"),))] == 4
    import platform

    assert samples[("eevee_operator_build_info", (("python", platform.python_version()), ("version", __version__)))] == 1


def test_ready_is_503_before_the_first_pass(cluster, start_operator, standin):
    standin.faults.pause()
    try:
        service = start_operator()
        eventually(lambda: service.http is not None)
        status, _, data = request(service, "GET", "/ready", token=None)
        assert status == 503 and as_json(data)["ready"] is False
    finally:
        standin.faults.resume()


@pytest.mark.parametrize(
    "header, reason",
    [(None, "missing bearer token"), ("Basic abc", "malformed Authorization header"), ("Bearer", "malformed"),
     ("Bearer wrong-token", "invalid bearer token")],
)
def test_protected_routes_refuse_bad_tokens_with_401(running, header, reason):
    headers = {"Authorization": header} if header else {}
    for method, path in [("GET", "/bot-modules"), ("GET", "/bot-modules/router"), ("POST", "/bot-modules/router/restart")]:
        status, response_headers, data = request(running, method, path, token=None, headers=headers)
        assert status == 401 and reason in as_json(data)["error"]
        assert response_headers["WWW-Authenticate"].startswith("Bearer")
        assert "wrong-token" not in data.decode()


def test_with_no_token_configured_protected_routes_stay_closed(cluster, start_operator):
    service = start_operator(api_token=None)
    eventually(lambda: service.runner.passes > 0)
    status, _, data = request(service, "GET", "/bot-modules", token="anything")
    assert status == 503 and "not configured" in as_json(data)["error"]
    assert request(service, "GET", "/health", token=None)[0] == 200


def test_list_modules_field_by_field(running):
    status, _, data = request(running, "GET", "/bot-modules")
    assert status == 200
    items = {m["name"]: m for m in as_json(data)["items"]}
    assert sorted(items) == ["admin", "echo", "irc-libera", "router"]
    router = items["router"]
    assert router == {
        "name": "router", "namespace": NAMESPACE, "moduleName": "router",
        "image": "ghcr.io/eeveebot/router:1.4.2", "imageRepository": "ghcr.io/eeveebot/router", "imageTag": "1.4.2",
        "imageDigest": None, "size": 2, "enabled": True, "readyReplicas": 2,
        "pods": {"desired": 2, "ready": 2, "updated": 2, "available": 2, "unavailable": 0},
        "ready": "True", "reason": "Available", "deployment": "eevee-router-module",
    }
    admin = items["admin"]
    assert (admin["enabled"], admin["size"], admin["pods"]["desired"], admin["reason"]) == (False, 1, 0, "Disabled")


def test_one_module_and_unknown_or_bad_names(running):
    status, _, data = request(running, "GET", "/bot-modules/echo")
    assert status == 200 and as_json(data)["moduleName"] == "echo"
    status, _, data = request(running, "GET", "/bot-modules/nope")
    assert status == 404 and as_json(data)["error"] == "bot module 'nope' not found"
    for bad in ("..%2F..%2Fetc%2Fpasswd", "UPPER", "a_b"):
        status, _, data = request(running, "GET", f"/bot-modules/{bad}")
        assert status in (400, 404) and "error" in as_json(data)


def test_restart_writes_the_rollout_restart_annotation(running, cluster):
    status, _, data = request(running, "POST", "/bot-modules/echo/restart")
    assert status == 202
    body = as_json(data)
    annotations = cluster.deployment("eevee-echo-module")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["kubectl.kubernetes.io/restartedAt"] == body["restartedAt"]
    other = cluster.deployment("eevee-router-module")["spec"]["template"]["metadata"].get("annotations", {})
    assert "kubectl.kubernetes.io/restartedAt" not in other
    # the operator leaves the annotation alone on its next passes
    status, _, _ = request(running, "POST", "/bot-modules/nope/restart")
    assert status == 404
    status, _, data = request(running, "POST", "/bot-modules/admin/restart")
    assert status == 409 and "disabled" in as_json(data)["error"]
    assert cluster.deployment("eevee-echo-module")["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] == body["restartedAt"]


def test_rate_limit_answers_429_with_retry_after(cluster, start_operator):
    service = start_operator(rate_limit=0.5, rate_burst=3)
    eventually(lambda: service.runner.passes > 0)
    codes = [request(service, "GET", "/bot-modules")[0] for _ in range(5)]
    assert codes[:3] == [200, 200, 200] and codes[3:] == [429, 429]
    status, headers, data = request(service, "GET", "/bot-modules")
    assert status == 429 and int(headers["Retry-After"]) >= 1 and "rate limit" in as_json(data)["error"]
    assert request(service, "GET", "/health", token=None)[0] == 200  # probes are never limited


def test_wrong_methods_unknown_paths_and_oversized_requests_get_clean_json(running):
    status, _, data = request(running, "DELETE", "/bot-modules/echo")
    assert status == 405 and as_json(data)["error"]
    status, _, data = request(running, "GET", "/nothing/here")
    assert status == 404 and as_json(data) == {"error": "no such route", "status": 404}
    status, headers, data = request(running, "POST", "/bot-modules/echo/restart", body=b"x" * 200_000)
    assert status == 413 and headers["Content-Type"] == "application/json" and as_json(data)["status"] == 413
    status, headers, data = request(running, "GET", "/bot-modules", headers={"X-Huge": "y" * 100_000})
    assert status == 431 and headers["Content-Type"] == "application/json" and as_json(data)["status"] == 431
    latency = running.metrics.registry.get_sample_value(
        "eevee_operator_http_request_duration_seconds_count", {"route": "unmatched", "status": "404"}
    )
    assert latency and latency >= 1  # latency by route and status (SPEC 7)
    assert running.metrics.registry.get_sample_value("eevee_operator_http_requests_total", {"route": "refused", "method": "?", "status": "431"}) == 1


def test_the_token_never_reaches_a_log_line(running, caplog):
    caplog.set_level(logging.DEBUG)
    request(running, "GET", "/bot-modules")
    request(running, "POST", "/bot-modules/echo/restart")
    request(running, "GET", "/bot-modules", token="not-the-token-123")
    text = "\n".join(record.getMessage() + json.dumps(record.__dict__, default=str) for record in caplog.records)
    assert API_TOKEN not in text and "not-the-token-123" not in text
    assert any("restarted module echo" in record.getMessage() for record in caplog.records)


# --- the eevee operator's routes, called exactly as the eevee admin module calls them ---------
# (eeveebot/admin src/lib/commandHandlers: fetch(`${EEVEE_OPERATOR_API_URL}/api/...`) with
# "Authorization: Bearer <token>" and "Content-Type: application/json")

ADMIN_HEADERS = {"Content-Type": "application/json"}


def admin_call(service, method, path, body=None, token=API_TOKEN):
    headers = dict(ADMIN_HEADERS, **({"Authorization": f"Bearer {token}"} if token else {}))
    response = http.request(method, service.http.url + path, headers=headers, body=None if body is None else json.dumps(body))
    return response.status, response.headers, response.data


def test_list_bot_modules_answers_what_the_admin_module_reads(running, cluster):
    """The eevee operator 2.3's items, exactly (eeveebot/operator src/api/routes.mts, commit 5883736;
    read by eeveebot/admin 2.8's health command): name is the moduleName, crName the BotModule."""
    cluster.create({**examples()["echo"], "metadata": {"name": "echo-digest"},
                    "spec": {**examples()["echo"]["spec"], "image": "registry.local:5000/eevee/echo@sha256:" + "a" * 64}})

    def listed():
        status, headers, data = admin_call(running, "GET", "/api/bot-modules")
        assert status == 200 and headers["Content-Type"] == "application/json"
        modules = {m["crName"]: m for m in as_json(data)}  # a bare array, as the admin module expects
        return "echo-digest" in modules and modules["echo"]["podStatus"] and modules

    modules = eventually(listed)
    echo = modules["echo"]
    assert set(echo) == {"name", "crName", "namespace", "image", "tag", "enabled", "podStatus"}
    assert {k: echo[k] for k in ("name", "crName", "namespace", "image", "tag", "enabled")} == {
        "name": "echo", "crName": "echo", "namespace": NAMESPACE, "image": examples()["echo"]["spec"]["image"],
        "tag": examples()["echo"]["spec"]["image"].rsplit(":", 1)[1], "enabled": True}
    assert modules["echo-digest"]["name"] == "echo"  # its spec.moduleName, as the eevee operator answers
    pod = eventually(lambda: (p := listed()["echo"]["podStatus"]) and p["ready"] and p)
    assert set(pod) == {"phase", "ready", "restartCount", "startedAt", "containerStatuses", "conditions"}
    assert pod["phase"] == "Running" and pod["restartCount"] == 0 and pod["startedAt"]
    (container,) = pod["containerStatuses"]
    assert set(container) == {"name", "ready", "restartCount", "image", "state", "lastState"}
    assert container["name"] == "module" and container["ready"] and "running" in container["state"]
    assert {c["type"] for c in pod["conditions"]} == {"PodScheduled", "Initialized", "ContainersReady", "Ready"}
    assert all(set(c) == {"type", "status", "lastTransitionTime"} for c in pod["conditions"])
    assert modules["admin"]["enabled"] is False and modules["admin"]["podStatus"] is None  # disabled: no Pod
    # a registry port is no tag; a digest-only image shows its digest (split(':').pop() got both wrong)
    assert modules["echo-digest"]["tag"] == "sha256:" + "a" * 64
    assert admin_call(running, "GET", "/api/bot-modules", token="wrong")[0] == 401


def test_restart_module_is_a_rolling_restart_with_the_eevee_shapes(running, cluster):
    status, _, data = admin_call(running, "POST", "/api/action/restart-module", {"moduleName": "echo", "namespace": NAMESPACE})
    assert status == 200
    body = as_json(data)
    assert body["deployment"] == "eevee-echo-module" and body["namespace"] == NAMESPACE and "echo" in body["message"]
    annotations = cluster.deployment("eevee-echo-module")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["kubectl.kubernetes.io/restartedAt"] == body["restartedAt"]
    assert admin_call(running, "POST", "/api/action/restart-module", {"namespace": NAMESPACE})[0] == 400
    status, _, data = admin_call(running, "POST", "/api/action/restart-module", {"moduleName": "echo"})
    assert status == 400 and as_json(data)["error"] == "namespace is required"
    assert admin_call(running, "POST", "/api/action/restart-module", {"moduleName": "nope", "namespace": NAMESPACE})[0] == 404
    status, _, data = admin_call(running, "POST", "/api/action/restart-module", {"moduleName": "echo", "namespace": "elsewhere"})
    assert status == 404 and "not watched" in as_json(data)["error"]
    assert admin_call(running, "POST", "/api/action/restart-module", {"moduleName": "echo", "namespace": NAMESPACE}, token="bad")[0] == 401


def test_health_and_metrics_under_api_need_no_token(running):
    status, _, data = admin_call(running, "GET", "/api/health", token=None)
    assert status == 200 and as_json(data)["status"] == "ok"
    status, headers, data = admin_call(running, "GET", "/api/metrics", token=None)
    assert status == 200 and headers["Content-Type"].startswith("text/plain") and b"eevee_operator_poll_passes_total" in data
