"""Nothing is lost, and no secret leaks.

| promise                                        | how it is checked                                          |
|------------------------------------------------|------------------------------------------------------------|
| a module's claim is never deleted              | field removed, module disabled, module deleted: claim stays|
| the NATS token never changes                   | across restarts, rule reloads and IpcConfig edits          |
| moduleConfig arrives byte for byte             | unicode, 512 KiB, YAML anchors, empty string               |
| the HTTP API shrugs off abuse                  | wrong methods, unknown paths, traversal, bad JSON, huge    |
|                                                | headers and bodies, floods: clean 4xx, no trace, still up  |
| tokens and Secret values never appear in logs  | every log record of a scenario searched for them          |
|   or in API answers                            |                                                            |
"""

from __future__ import annotations

import base64
import json
import logging
import shutil

import pytest
import urllib3

from tests.conftest import NAMESPACE, ROOT, eventually
from tests.operator_fixtures import API_TOKEN, ipc, module, wait_passes

pytestmark = pytest.mark.faults
CLAIM = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}


def test_a_claim_survives_disabling_removal_and_deletion(cluster, operator):
    cluster.create(module("keeper", persistentVolumeClaim=CLAIM))
    eventually(lambda: cluster.ready("BotModule", "keeper"))
    uid = cluster.core.read_namespaced_persistent_volume_claim("eevee-keeper-module-pvc", NAMESPACE).metadata.uid
    cluster.patch("BotModule", "keeper", {"spec": {"enabled": False}})
    eventually(lambda: cluster.deployment("eevee-keeper-module")["spec"]["replicas"] == 0)
    cluster.patch("BotModule", "keeper", {"spec": {"persistentVolumeClaim": None}})
    eventually(lambda: not any(v.get("name") == "data" for v in cluster.deployment("eevee-keeper-module")["spec"]["template"]["spec"].get("volumes", [])))
    cluster.delete("BotModule", "keeper")
    eventually(lambda: not cluster.exists("Deployment", "eevee-keeper-module"))
    assert cluster.core.read_namespaced_persistent_volume_claim("eevee-keeper-module-pvc", NAMESPACE).metadata.uid == uid
    assert not any(r.verb == "delete" and r.resource == "persistentvolumeclaims" for r in cluster.standin.log.entries())


def test_the_nats_token_never_changes(cluster, start_operator, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    first = start_operator(rules_dir=str(rules), leader_election=False, poll_interval=0.3)
    cluster.create(ipc("bus"))
    eventually(lambda: cluster.exists("Secret", "bus-nats-token"))
    token = cluster.core.read_namespaced_secret("bus-nats-token", NAMESPACE).data

    def unchanged():
        return cluster.core.read_namespaced_secret("bus-nats-token", NAMESPACE).data == token

    cluster.patch("IpcConfig", "bus", {"spec": {"nats": {"managed": {"imagePullPolicy": "Always"}}}})
    wait_passes(first, 2)
    assert unchanged()
    table = rules / "ipcconfig.yaml"
    table.write_text(table.read_text().replace("bytes: 32", "bytes: 48"))  # a reload that would make longer tokens
    eventually(lambda: first.metrics.registry.get_sample_value("eevee_operator_rule_reloads_total", {"result": "success"}) == 2, timeout=15)
    wait_passes(first, 2)
    assert unchanged()
    first.stop()
    second = start_operator(rules_dir=str(rules), leader_election=False, poll_interval=0.3, identity="operator-b")
    wait_passes(second, 2)
    assert unchanged()


@pytest.mark.parametrize(
    "text",
    [
        "greeting: \"Grüß dich, 世界! 🐍\"\nemoji: ✨\n",
        "".join(f"line {n}: {'x' * 100}\n" for n in range(5000)),  # about 512 KiB
        "base: &base\n  color: red\nderived:\n  <<: *base\n  size: 2\n",
        "",
        "# leading comment\r\nkey:   spaced\tand tabbed\r\nwindows: line ends\n\n\ntrailing: blank lines\n\n",
    ],
    ids=["unicode", "512-KiB", "yaml-anchors", "empty", "whitespace"],
)
def test_module_config_arrives_byte_for_byte(cluster, operator, text):
    cluster.create(module("cfg", moduleConfig=text))
    eventually(lambda: cluster.exists("ConfigMap", "eevee-cfg-module-config"))
    stored = cluster.core.read_namespaced_config_map("eevee-cfg-module-config", NAMESPACE).data["config.yaml"]
    assert stored == text


def call(service, method, path, *, token=API_TOKEN, headers=None, body=None):
    http = urllib3.PoolManager(retries=False)
    all_headers = {"Authorization": f"Bearer {token}"} if token else {}
    all_headers.update(headers or {})
    response = http.request(method, service.http.url + path, headers=all_headers, body=body)
    return response.status, response.data


ABUSE = {
    "wrong method": ("PUT", "/bot-modules/echo", None, None, {405}),
    "DELETE on the list": ("DELETE", "/bot-modules", None, None, {405}),
    "unknown path": ("GET", "/admin/secrets", None, None, {404}),
    "path traversal": ("GET", "/bot-modules/..%2F..%2Fsecrets", None, None, {400, 404}),
    "encoded null": ("GET", "/bot-modules/echo%00", None, None, {400, 404}),
    "bad JSON body": ("POST", "/bot-modules/echo/restart", None, b"{not json", {400}),
    "huge body": ("POST", "/bot-modules/echo/restart", None, b"[" + b"1," * 200_000 + b"1]", {413}),
    "huge header": ("GET", "/bot-modules", {"X-Padding": "p" * 70_000}, None, {431}),
    "huge URL": ("GET", "/bot-modules/" + "a" * 20_000, None, None, {400, 404, 414, 431}),
    "latin-1 Authorization": ("GET", "/bot-modules", {"Authorization": "Bearer caf\xe9"}, None, {401}),
    "non-UTF-8 path": ("GET", "/bot-modules/%FF%FE", None, None, {400, 404}),
}


@pytest.mark.parametrize("method, path, headers, body, codes", ABUSE.values(), ids=ABUSE.keys())
def test_the_http_api_answers_abuse_with_clean_errors(cluster, operator, method, path, headers, body, codes, caplog):
    """Every answer is JSON with an error, even those waitress gives by itself (413, 431),
    and no log line carries a traceback."""
    caplog.set_level(logging.INFO)
    cluster.create(module("echo"))
    status, data = call(operator, method, path, headers=headers, body=body)
    assert status in codes
    assert b"Traceback" not in data and b'File "' not in data
    assert json.loads(data)["status"] == status and json.loads(data)["error"]
    assert call(operator, "GET", "/health", token=None)[0] == 200
    assert not any(record.exc_info or "Traceback" in record.getMessage() for record in caplog.records)


def test_a_flood_is_limited_and_the_operator_carries_on(cluster, start_operator):
    service = start_operator(rate_limit=5, rate_burst=5)
    eventually(lambda: service.runner.passes > 0)
    codes = [call(service, "GET", "/bot-modules/nope")[0] for _ in range(40)]
    assert codes.count(429) >= 30 and set(codes) <= {404, 429}
    cluster.create(module("echo"))
    eventually(lambda: cluster.ready("BotModule", "echo"))


def test_tokens_and_secret_values_never_reach_logs_or_answers(cluster, start_operator, caplog):
    caplog.set_level(logging.DEBUG)
    secret_value = "s3cr3t-irc-password-6f1d"
    cluster.core.create_namespaced_secret(NAMESPACE, {"metadata": {"name": "creds"}, "stringData": {"PASSWORD": secret_value}})
    service = start_operator(poll_interval=0.3)
    cluster.create(ipc("bus"))
    cluster.create(module("echo", ipcConfig="bus", envSecret={"name": "creds"}, mountOperatorApiToken=True))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    nats_token = base64.b64decode(cluster.core.read_namespaced_secret("bus-nats-token", NAMESPACE).data["token"]).decode()
    answers = [call(service, "GET", "/bot-modules")[1], call(service, "GET", "/bot-modules/echo")[1],
               call(service, "POST", "/bot-modules/echo/restart")[1], call(service, "GET", "/metrics", token=None)[1],
               call(service, "GET", "/bot-modules", token="wrong-" + API_TOKEN)[1]]
    cluster.standin.faults.inject(verb="patch", resource="deployments", code=500, times=1)
    cluster.patch("BotModule", "echo", {"spec": {"size": 2}})
    eventually(lambda: cluster.deployment("eevee-echo-module")["spec"]["replicas"] == 2)
    wait_passes(service, 2)
    logged = "\n".join(f"{r.getMessage()} {json.dumps(r.__dict__, default=str)}" for r in caplog.records)
    for value in (API_TOKEN, nats_token, secret_value):
        assert value not in logged
        assert all(value.encode() not in answer for answer in answers)
    assert any("reconcile failed" in r.getMessage() for r in caplog.records)  # the logs did see the action
