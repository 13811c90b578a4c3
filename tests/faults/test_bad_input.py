"""Bad input is refused clearly and loses nothing.

| input                                       | expected                                                       |
|---------------------------------------------|----------------------------------------------------------------|
| a BotModule with one invalid field          | Ready=False InvalidSpec naming the field, a Warning Event,     |
|                                             | nothing created, the other modules reconciled as usual         |
| an IpcConfig that does not exist            | Ready=False ReferenceNotFound naming spec.ipcConfig            |
| a rule table with a syntax error, an unknown| refused at start-up (exit 1, file + rule + reason); refused on |
| construct, a missing path, an unknown kind  | reload with the last good tables kept                          |
| values a real API server refuses: size over | refused by the CRD (422 naming the field), or Ready=False      |
| int32, a bad probe, an image with a space,  | InvalidSpec naming the user's field and a Warning Event before |
| moduleConfig over 1 MiB or not a mapping,   | anything of that resource is sent; the others converge         |
| a shrinking claim, a 240-character name     |                                                                |
| a token Secret of the user's               | never adopted (AdoptionRefused, the Secret untouched); with    |
|                                             | generate: false, a missing key is named                        |
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from kubernetes import client

from eevee.kube.config import kubeconfig_connection
from tests.conftest import NAMESPACE, ROOT, eventually
from tests.operator_fixtures import Cluster, ipc, module, operator_settings

pytestmark = pytest.mark.faults

BAD_MODULES = {
    "wrong type of size": ({"size": "three"}, "spec.size", "must be of integer type"),
    "negative size": ({"size": -2}, "spec.size", "min value is 0"),
    "unknown pullPolicy": ({"pullPolicy": "Sometimes"}, "spec.pullPolicy", "unallowed value Sometimes"),
    "missing image": ({"image": None}, "spec.image", "required field"),
    "bad moduleName": ({"moduleName": "Not_A_Label"}, "spec.moduleName", "does not match regex"),
    "wrong type of enabled": ({"enabled": "yes"}, "spec.enabled", "must be of boolean type"),
    "metricsPort out of range": ({"metricsPort": 0}, "spec.metricsPort", "min value is 1"),
    "envSecret in another namespace": ({"envSecret": {"name": "creds", "namespace": "kube-system"}}, "spec.envSecret.namespace", "another namespace"),
    "relative volumeMountPath": ({"volumeMountPath": "data"}, "spec.volumeMountPath", "does not match regex"),
    "unknown field": ({"sise": 3}, "spec.sise", "unknown field"),
    "size over int32": ({"size": 2147483648}, "spec.size", "max value is 2147483647"),
    "image with a space": ({"image": "ghcr.io/eeveebot/echo 1.0"}, "spec.image", "does not match regex"),
    "image with a leading space": ({"image": " ghcr.io/eeveebot/echo:1.0"}, "spec.image", "does not match regex"),
    "probe with a negative period": ({"startupProbe": {"tcpSocket": {"port": 80}, "periodSeconds": -3}}, "spec.startupProbe.periodSeconds", "min value is 1"),
    "probe command not a list": ({"livenessProbe": {"exec": {"command": "not-a-list"}}}, "spec.livenessProbe.exec.command", "must be of list type"),
    "storage that is no quantity": ({"persistentVolumeClaim": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "lots"}}}},
                                    "spec.persistentVolumeClaim.resources.requests.storage", "'lots' is not a Kubernetes quantity"),
    "moduleConfig not a mapping": ({"moduleConfig": "- just\n- a list\n"}, "spec.moduleConfig", "line 1 starts a list"),
    # 350,000 characters (what a character count allows) but 1,050,003 bytes
    "moduleConfig over 1 MiB": ({"moduleConfig": "a: " + "€" * 350_000}, "spec.moduleConfig", "at most 1048565 bytes"),
}


@pytest.fixture
def loose(loose_standin):
    """The operator against CRDs that accept anything (specs stored before a CRD upgrade)."""
    from eevee.service import OperatorService

    service = OperatorService(operator_settings(), connection=kubeconfig_connection(loose_standin.kubeconfig)).start()
    yield Cluster(loose_standin)
    service.stop()


@pytest.mark.parametrize("change, field, reason", BAD_MODULES.values(), ids=BAD_MODULES.keys())
def test_an_invalid_module_field_is_named_and_nothing_else_is_affected(loose, change, field, reason):
    bad = module("bad")
    bad["spec"].update(change)
    bad["spec"] = {k: v for k, v in bad["spec"].items() if v is not None}
    loose.create(module("good"))
    loose.create(bad)
    eventually(lambda: loose.condition("BotModule", "bad").get("reason") == "InvalidSpec")
    condition = loose.condition("BotModule", "bad")
    assert condition["status"] == "False" and field in condition["message"] and reason in condition["message"]
    warnings = [e for e in loose.events("bad") if e["type"] == "Warning"]
    assert warnings and field in warnings[0]["message"] and warnings[0]["reason"] == "InvalidSpec"
    assert not loose.exists("Deployment", "eevee-bad-module")
    eventually(lambda: loose.ready("BotModule", "good"))
    # fixing the field makes it converge
    loose.custom.replace_namespaced_custom_object("eevee.bot", "v1", NAMESPACE, "botmodules", "bad",
                                                  {**module("bad"), "metadata": loose.get("BotModule", "bad")["metadata"]})
    eventually(lambda: loose.ready("BotModule", "bad"))


CRD_REFUSALS = {
    "size over int32": ({"size": 2147483648}, "spec.size", "less than or equal to 2147483647"),
    "image with a space": ({"image": "ghcr.io/eeveebot/echo 1.0"}, "spec.image", "should match"),
    "probe with a negative period": ({"startupProbe": {"exec": {"command": ["true"]}, "periodSeconds": -3}}, "spec.startupProbe.periodSeconds", "greater than or equal to 1"),
    "probe command not a list": ({"startupProbe": {"exec": {"command": "not-a-list"}}}, "spec.startupProbe.exec.command", "must be of type array"),
    "storage that is no quantity": ({"persistentVolumeClaim": {"resources": {"requests": {"storage": "lots"}}}}, "spec.persistentVolumeClaim.resources.requests.storage", "should match"),
}


@pytest.mark.parametrize("change, field, message", CRD_REFUSALS.values(), ids=CRD_REFUSALS.keys())
def test_the_crd_refuses_what_a_real_server_would_refuse_later(cluster, change, field, message):
    with pytest.raises(client.ApiException) as caught:
        cluster.create(module("bad", **change))
    assert caught.value.status == 422
    text = json.loads(caught.value.body)["message"]
    assert field in text and message in text


def test_a_shrinking_claim_is_refused_before_anything_is_sent(cluster, operator, standin):
    claim = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    cluster.create(module("keeper", persistentVolumeClaim=claim))
    cluster.create(module("good"))
    eventually(lambda: cluster.ready("BotModule", "keeper"))
    mark = standin.log.mark()
    smaller = {"spec": {"persistentVolumeClaim": {"resources": {"requests": {"storage": "500Mi"}}}, "size": 3}}
    cluster.patch("BotModule", "keeper", smaller)
    eventually(lambda: cluster.condition("BotModule", "keeper").get("reason") == "InvalidSpec")
    assert "spec.persistentVolumeClaim.resources.requests.storage: a claim can grow but never shrink" in cluster.condition("BotModule", "keeper")["message"]
    assert any(e["reason"] == "InvalidSpec" for e in cluster.events("keeper"))
    sent = [r for r in standin.log.writes(mark) if r.resource in ("persistentvolumeclaims", "deployments")]
    assert sent == []  # neither the claim nor the size change: nothing half-applied
    assert cluster.core.read_namespaced_persistent_volume_claim("eevee-keeper-module-pvc", NAMESPACE).spec.resources.requests["storage"] == "1Gi"
    cluster.patch("BotModule", "good", {"spec": {"size": 2}})  # the others carry on
    eventually(lambda: cluster.deployment("eevee-good-module")["spec"]["replicas"] == 2)
    cluster.patch("BotModule", "keeper", {"spec": {"persistentVolumeClaim": {"resources": {"requests": {"storage": "2Gi"}}}}})
    eventually(lambda: cluster.core.read_namespaced_persistent_volume_claim("eevee-keeper-module-pvc", NAMESPACE).spec.resources.requests["storage"] == "2Gi")
    eventually(lambda: cluster.deployment("eevee-keeper-module")["spec"]["replicas"] == 3)


def test_a_very_long_name_gets_its_condition_and_its_event(cluster, operator):
    name = "m" * 240
    cluster.create(module("m") | {"metadata": {"name": name}})
    eventually(lambda: cluster.condition("BotModule", name).get("reason") == "InvalidSpec")
    assert "metadata.name: must be at most 49 characters" in cluster.condition("BotModule", name)["message"]
    eventually(lambda: any(e["reason"] == "InvalidSpec" for e in cluster.events(name)))


def test_a_user_token_secret_is_never_adopted(cluster, start_operator, standin):
    start_operator(poll_interval=0.5)  # a user's Secret is not watched: a pass reads it again
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mine", "namespace": NAMESPACE, "labels": {"team": "chat"}},
              "data": {"other": "eA=="}}
    standin.seed(secret)
    token = {"secretKeyRef": {"secret": {"name": "mine"}, "key": "token"}}
    cluster.create(ipc("bus", nats={"token": token}))  # generate: true (the default), but the Secret is the user's
    eventually(lambda: cluster.condition("IpcConfig", "bus").get("reason") == "AdoptionRefused")
    message = cluster.condition("IpcConfig", "bus")["message"]
    assert message.startswith("spec.nats.token.secretKeyRef.secret.name: Secret mine already exists and was not made by the operator")
    assert any(e["reason"] == "AdoptionRefused" for e in cluster.events("bus"))
    stored = cluster.core.read_namespaced_secret("mine", NAMESPACE)
    assert stored.metadata.labels == {"team": "chat"} and not stored.metadata.owner_references and stored.data == {"other": "eA=="}
    # generate: false uses it as it is, once it holds the key
    cluster.patch("IpcConfig", "bus", {"spec": {"nats": {"token": {"generate": False}}}})
    eventually(lambda: cluster.condition("IpcConfig", "bus").get("reason") == "InvalidSpec")
    assert "spec.nats.token.secretKeyRef.key: the token Secret has no such key" in cluster.condition("IpcConfig", "bus")["message"]
    cluster.core.patch_namespaced_secret("mine", NAMESPACE, {"data": {"token": "dG9rZW4="}})
    eventually(lambda: cluster.ready("IpcConfig", "bus"))
    stored = cluster.core.read_namespaced_secret("mine", NAMESPACE)
    assert stored.metadata.labels == {"team": "chat"} and not stored.metadata.owner_references


def test_a_missing_user_token_secret_is_named(cluster, operator):
    cluster.create(ipc("bus", nats={"token": {"generate": False, "secretKeyRef": {"secret": {"name": "absent"}, "key": "token"}}}))
    eventually(lambda: cluster.condition("IpcConfig", "bus").get("reason") == "ReferenceNotFound")
    assert "spec.nats.token.secretKeyRef.secret.name: Secret eevee-bot/absent does not exist" in cluster.condition("IpcConfig", "bus")["message"]
    assert not cluster.exists("Deployment", "eevee-bus-nats")  # nothing runs on a token that is not there


def test_a_missing_ipc_config_is_named(cluster, operator):
    cluster.create(module("echo", ipcConfig="nowhere"))
    eventually(lambda: cluster.condition("BotModule", "echo").get("reason") == "ReferenceNotFound")
    assert "spec.ipcConfig: IpcConfig eevee-bot/nowhere does not exist" in cluster.condition("BotModule", "echo")["message"]


BAD_TABLES = {
    "syntax error": (lambda text: text.replace("children:\n", "children: [\n", 1), "YAML syntax error"),
    "unknown construct": (lambda text: text.replace("transforms: [sha256]", "transforms: [md5]", 1), "unknown transform 'md5'"),
    "path that does not exist": (lambda text: text.replace("fromFieldPath: spec.image", "fromFieldPath: spec.imaeg", 1), "path spec.imaeg does not exist"),
    "reference to a kind with no table": (lambda text: text.replace("kind: IpcConfig\n", "kind: IpcConfgi\n", 1), "no table is loaded for kind IpcConfgi"),
    "kind the API server does not serve": (lambda text: text.replace("kind: Deployment\n", "kind: Deploymnet\n", 1),
                                           "apps/v1 serves no kind Deploymnet; did you mean Deployment?"),
    "misspelt field of the child": (lambda text: text.replace("[name=module].imagePullPolicy", "[name=module].imagePullPolcy", 1),
                                    "imagePullPolcy is not a field of spec.template.spec.containers[name=module]; did you mean imagePullPolicy?"),
    "value of the wrong type": (lambda text: text.replace("revisionHistoryLimit: 5", 'revisionHistoryLimit: "five"', 1),
                                "spec.revisionHistoryLimit holds an integer, not a string"),
}


def broken_rules(tmp_path, name):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    edit, _ = BAD_TABLES[name]
    target = rules / "botmodule.yaml"
    target.write_text(edit(target.read_text()))
    return rules


@pytest.mark.parametrize("name", BAD_TABLES, ids=BAD_TABLES.keys())
def test_a_bad_table_is_refused_at_start_with_file_rule_and_reason(tmp_path, name):
    rules = broken_rules(tmp_path, name)
    result = subprocess.run([sys.executable, "-m", "eevee", "check-rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert BAD_TABLES[name][1] in result.stderr and ".yaml" in result.stderr
    marker = {"kind the API server does not serve": "Deploymnet", "misspelt field of the child": "imagePullPolcy",
              "value of the wrong type": '"five"'}.get(name)
    if marker:  # the line of the mistake, as a compiler names it
        lines = (rules / "botmodule.yaml").read_text().splitlines()
        line = next(n for n, text in enumerate(lines, 1) if marker in text)
        assert f"botmodule.yaml:{line}: " in result.stderr or f"botmodule.yaml: line {line}," in result.stderr
    env = {"RULES_DIR": str(rules), "KUBECONFIG": str(tmp_path / "none"), "PATH": "/usr/bin:/bin"}
    started = subprocess.run([sys.executable, "-m", "eevee", "run"], env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode == 1 and "the rule tables are refused" in started.stderr and BAD_TABLES[name][1] in started.stderr


@pytest.mark.parametrize("name", BAD_TABLES, ids=BAD_TABLES.keys())
def test_a_bad_table_is_refused_on_reload_and_the_last_good_ones_stay(cluster, start_operator, tmp_path, name):
    rules = tmp_path / "live-rules"
    shutil.copytree(ROOT / "rules", rules)
    service = start_operator(rules_dir=str(rules), leader_election=False)
    cluster.create(module("echo"))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    broken = broken_rules(tmp_path / "broken", name)
    for file in broken.iterdir():
        shutil.copy(file, rules / file.name)
    samples = service.metrics.registry.get_sample_value
    eventually(lambda: samples("eevee_operator_rule_reloads_total", {"result": "failure"}) == 1, timeout=15)
    cluster.patch("BotModule", "echo", {"spec": {"size": 2}})
    eventually(lambda: cluster.deployment("eevee-echo-module")["spec"]["replicas"] == 2)
    assert "BotModule" in service.runner.rules.tables


def test_a_crd_schema_refuses_what_kubectl_would_send(cluster):
    with pytest.raises(client.ApiException) as caught:
        cluster.create({**module("echo"), "spec": {"moduleName": "echo", "image": "x", "size": -1}})
    assert caught.value.status == 422


def test_no_kubernetes_configuration_is_a_clear_error(tmp_path):
    env = {"KUBECONFIG": str(tmp_path / "missing"), "PATH": "/usr/bin:/bin", "KUBE_IN_CLUSTER_CONFIG": "false"}
    result = subprocess.run([sys.executable, "-m", "eevee", "run"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 3
    assert result.stderr.startswith("error: cannot load the kubeconfig") and "Traceback" not in result.stderr
