"""The shipped tables produce exactly SPEC sections 3 and 4 (module pod contract, NATS)."""

from __future__ import annotations

import base64
import json

import pytest

from eevee.engine.paths import format_path, parse_path
from eevee.engine.render import InvalidSpec, ReferenceNotFound, Renderer
from eevee.settings import Settings
from tests.engine.resources import IPC, module

TOKEN_UID = "u-token"


def render(rules, resource, *others, live=None):
    """Render ``resource`` with ``others`` in the cluster; a Secret an IpcConfig makes exists too."""
    index = {(r["kind"], r["metadata"]["namespace"], r["metadata"]["name"]): r for r in (resource, *others)}
    objects = dict(index)
    renderer = Renderer(
        rules,
        lookup=lambda k, ns, n: index.get((k, ns, n)),
        fetch=lambda api_version, k, ns, n: objects.get((k, ns, n)),
        operator=Settings(namespace="ops").operator_scope(),
        generate=lambda n: "x" * n,
    )
    for other in others:
        if other["kind"] == "IpcConfig":
            try:
                rendered = renderer.render(other).children
            except InvalidSpec:
                rendered = []
            for child in rendered:
                body = dict(child.body, metadata=dict(child.body["metadata"], uid=TOKEN_UID))
                objects[(child.kind, child.namespace, child.name)] = body
    return {c.id: c for c in renderer.render(resource).children}


def container(children):
    return children["deployment"].body["spec"]["template"]["spec"]["containers"][0]


def env(children):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(children).get("env", [])}


def test_minimal_module_has_a_deployment_with_the_spec_labels_and_selector(rules):
    children = render(rules, module())
    assert set(children) == {"deployment"}
    dep = children["deployment"].body
    assert dep["metadata"]["name"] == "eevee-m-module"
    for key, value in {
        "app.kubernetes.io/name": "eevee",
        "app.kubernetes.io/component": "module",
        "app.kubernetes.io/managed-by": "eevee-operator",
        "eevee.bot/module": "m",  # the BotModule's name, unique in its namespace
        "eevee.bot/module-name": "echo",
    }.items():
        assert dep["metadata"]["labels"][key] == value
        assert dep["spec"]["template"]["metadata"]["labels"][key] == value
    assert dep["spec"]["template"]["metadata"]["labels"]["app"] == "eevee.bot"  # the eevee operator's pod label
    # Selected by name, as the eevee operator 2.3 selects: never by moduleName, which modules share.
    assert dep["spec"]["selector"] == {"matchLabels": {"eevee.bot/module": "m"}}
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert dep["metadata"]["ownerReferences"][0]["uid"] == "u-m"
    assert env(children) == {"NAMESPACE": "bot", "RESOURCE_NAME": "echo"}
    assert "livenessProbe" not in container(children)  # no default probes without metrics
    assert container(children)["imagePullPolicy"] == "Always"


def test_size_and_enabled(rules):
    assert render(rules, module(size=3))["deployment"].body["spec"]["replicas"] == 3
    assert render(rules, module(size=3, enabled=False))["deployment"].body["spec"]["replicas"] == 0


def test_metrics_contract(rules):
    children = render(rules, module(metrics=True, metricsPort=9100))
    assert env(children) | {} == {
        "NAMESPACE": "bot",
        "RESOURCE_NAME": "echo",
        "METRICS_ENABLED": "true",
        "METRICS_PORT": "9100",
        "HTTP_API_PORT": "9100",
    }
    c = container(children)
    assert c["ports"] == [{"name": "metrics", "containerPort": 9100}]
    assert c["livenessProbe"] == {
        "httpGet": {"path": "/health", "port": "metrics"},
        "initialDelaySeconds": 10,
        "periodSeconds": 30,
    }
    assert c["readinessProbe"] == {
        "httpGet": {"path": "/health", "port": "metrics"},
        "initialDelaySeconds": 5,
        "periodSeconds": 10,
    }
    annotations = children["deployment"].body["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9100",
        "prometheus.io/path": "/metrics",
        # Grafana k8s-monitoring's autodiscovery, as the eevee bot's production cluster scrapes.
        "k8s.grafana.com/scrape": "true",
        "k8s.grafana.com/metrics.portNumber": "9100",
    }


def test_a_probe_in_the_spec_replaces_the_default(rules):
    probe = {"tcpSocket": {"port": 1234}}
    c = container(render(rules, module(metrics=True, livenessProbe=probe, startupProbe=probe)))
    assert c["livenessProbe"] == probe and c["startupProbe"] == probe
    assert c["readinessProbe"]["httpGet"]["path"] == "/health"


def test_module_config_is_a_mounted_config_map_with_a_content_hash(rules):
    children = render(rules, module(moduleConfig="a: 1\n"))
    assert children["config"].body["metadata"]["name"] == "eevee-m-module-config"
    assert children["config"].body["data"] == {"config.yaml": "a: 1\n"}
    assert env(children)["MODULE_CONFIG_PATH"] == "/etc/module-config/config.yaml"
    c = container(children)
    assert c["volumeMounts"] == [{"name": "module-config", "mountPath": "/etc/module-config", "readOnly": True}]
    pod = children["deployment"].body["spec"]["template"]
    assert pod["spec"]["volumes"] == [{"name": "module-config", "configMap": {"name": "eevee-m-module-config"}}]
    same = render(rules, module(moduleConfig="a: 1\n", image="other:2"))["deployment"].body["spec"]["template"]
    changed = render(rules, module(moduleConfig="a: 2\n"))["deployment"].body["spec"]["template"]
    key = "eevee.bot/config-hash"
    assert pod["metadata"]["annotations"][key] == same["metadata"]["annotations"][key]
    assert pod["metadata"]["annotations"][key] != changed["metadata"]["annotations"][key]


def test_an_empty_module_config_is_still_a_config(rules):
    assert render(rules, module(moduleConfig=""))["config"].body["data"] == {"config.yaml": ""}


def test_persistent_volume_claim_is_retained_and_mounted(rules):
    pvc_spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1024Mi"}}}
    children = render(rules, module(persistentVolumeClaim=pvc_spec, volumeMountPath="/var/lib/x"))
    pvc = children["data"]
    assert pvc.body["metadata"]["name"] == "eevee-m-module-pvc"
    assert "ownerReferences" not in pvc.body["metadata"]
    assert (pvc.owned, pvc.prune) == (False, False)
    assert pvc.body["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pvc.body["spec"]["resources"]["requests"]["storage"] == "1Gi"  # as the API server stores it
    managed = {format_path(p) for p, _ in pvc.leaves}
    assert "spec.resources.requests.storage" in managed and "spec.accessModes" not in managed  # immutable: create only
    assert env(children)["MODULE_DATA"] == "/var/lib/x"
    assert {"name": "module-data", "mountPath": "/var/lib/x"} in container(children)["volumeMounts"]


def test_ipc_config_wires_nats_host_and_token_secret(rules):
    children = render(rules, module(ipcConfig="bus"), IPC)
    assert env(children)["NATS_HOST"] == "eevee-bus-nats.bot.svc"
    assert env(children)["NATS_TOKEN"] == {"secretKeyRef": {"name": "bus-nats-token", "key": "token"}}
    custom = {**IPC, "spec": {"nats": {"token": {"secretKeyRef": {"secret": {"name": "tok"}, "key": "k"}}}}}
    assert env(render(rules, module(ipcConfig="bus"), custom))["NATS_TOKEN"] == {
        "secretKeyRef": {"name": "tok", "key": "k"}
    }


def test_a_missing_ipc_config_is_reported_on_its_field(rules):
    with pytest.raises(ReferenceNotFound) as caught:
        render(rules, module(ipcConfig="nope"))
    assert caught.value.problems[0].field == "spec.ipcConfig"


def test_operator_api_token_comes_from_a_secret_never_a_literal(rules):
    variables = env(render(rules, module(mountOperatorApiToken=True)))
    assert variables["EEVEE_OPERATOR_API_TOKEN"] == {
        "secretKeyRef": {"name": "eevee-operator-api-token", "key": "token"}
    }
    assert variables["EEVEE_OPERATOR_API_URL"] == "http://eevee-operator.ops.svc:9000"


def test_env_secret_is_injected_whole_and_cross_namespace_is_refused(rules):
    c = container(render(rules, module(envSecret={"name": "creds"})))
    assert c["envFrom"] == [{"secretRef": {"name": "creds"}}]
    assert container(render(rules, module(envSecret={"name": "creds", "namespace": "bot"})))["envFrom"]
    with pytest.raises(InvalidSpec) as caught:
        render(rules, module(envSecret={"name": "creds", "namespace": "elsewhere"}))
    assert caught.value.problems[0].field == "spec.envSecret.namespace"


def test_resources_are_rendered_in_canonical_form(rules):
    c = container(render(rules, module(resources={"limits": {"cpu": "0.5", "memory": "1024Mi"}})))
    assert c["resources"] == {"limits": {"cpu": "500m", "memory": "1Gi"}}


@pytest.mark.parametrize(
    "spec, field",
    [
        ({"moduleName": "echo"}, "spec.image"),
        ({"image": "x"}, "spec.moduleName"),
        ({"moduleName": "Bad_Name", "image": "x"}, "spec.moduleName"),
        ({"moduleName": "echo", "image": "x", "size": -1}, "spec.size"),
        ({"moduleName": "echo", "image": "x", "size": "two"}, "spec.size"),
        ({"moduleName": "echo", "image": "x", "pullPolicy": "Sometimes"}, "spec.pullPolicy"),
        ({"moduleName": "echo", "image": "x", "metricsPort": 70000}, "spec.metricsPort"),
        ({"moduleName": "echo", "image": "x", "enabled": "yes"}, "spec.enabled"),
        ({"moduleName": "echo", "image": "x", "size": 2147483648}, "spec.size"),
        ({"moduleName": "echo", "image": " x"}, "spec.image"),
        ({"moduleName": "echo", "image": "ghcr.io/eeveebot/echo 1.0"}, "spec.image"),
        ({"moduleName": "echo", "image": "ghcr.io/eeveebot/backupJob:latest"}, "spec.image"),
        ({"moduleName": "echo", "image": "x", "startupProbe": {"exec": {"command": "not-a-list"}}}, "spec.startupProbe.exec.command"),
        ({"moduleName": "echo", "image": "x", "livenessProbe": {"tcpSocket": {"port": 1}, "periodSeconds": -3}}, "spec.livenessProbe.periodSeconds"),
        ({"moduleName": "echo", "image": "x", "resources": {"limits": {"cpu": "lots"}}}, "spec.resources.limits.cpu"),
        ({"moduleName": "echo", "image": "x", "persistentVolumeClaim": {"resources": {"requests": {"storage": "lots"}}}}, "spec.persistentVolumeClaim.resources.requests.storage"),
    ],
)
def test_invalid_module_specs_name_the_field(rules, spec, field):
    resource = module()
    resource["spec"] = spec
    with pytest.raises(InvalidSpec) as caught:
        render(rules, resource)
    assert field in [p.field for p in caught.value.problems]


def test_ipc_config_children(rules):
    children = render(rules, IPC)
    assert set(children) == {"token", "deployment", "service"}
    token = children["token"]
    assert token.body["metadata"]["name"] == "bus-nats-token"
    assert base64.b64decode(token.body["data"]["token"]).decode() == "x" * 32
    assert token.prune is False and token.owned is True
    nats = children["deployment"].body
    assert nats["metadata"]["name"] == "eevee-bus-nats"
    assert nats["spec"]["replicas"] == 1
    c = nats["spec"]["template"]["spec"]["containers"][0]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"client": 4222, "monitoring": 8222}
    assert c["env"] == [
        {"name": "NATS_TOKEN", "valueFrom": {"secretKeyRef": {"name": "bus-nats-token", "key": "token"}}}
    ]
    assert "$(NATS_TOKEN)" in c["args"]
    assert c["livenessProbe"]["httpGet"]["port"] == "monitoring"
    service = children["service"].body
    assert service["spec"]["type"] == "ClusterIP"
    assert {p["name"]: p["port"] for p in service["spec"]["ports"]} == {"client": 4222, "monitoring": 8222}
    # Selected as the eevee operator 2.3 selects its NATS pods.
    assert nats["spec"]["selector"] == {"matchLabels": {"eevee.bot/nats-server": "true", "eevee.bot/ipcconfig": "bus"}}
    assert service["spec"]["selector"] == {"eevee.bot/nats-server": "true", "eevee.bot/ipcconfig": "bus"}
    assert service["spec"]["selector"].items() <= nats["spec"]["template"]["metadata"]["labels"].items()
    assert nats["spec"]["template"]["metadata"]["labels"]["app"] == "eevee.bot"
    # The token Secret carries the NATS host too, as the eevee operator's does.
    assert base64.b64decode(token.body["data"]["host"]).decode() == "eevee-bus-nats.bot.svc"
    assert token.adopt == "owned"  # a user's Secret of that name is never taken over


def user_secret(name="bus-nats-token", **data):
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": "bot", "uid": "u-user"}, "data": data}


def test_unmanaged_nats_and_user_owned_token(rules):
    ipc = {**IPC, "spec": {"nats": {"managed": {"enabled": False}, "token": {"generate": False}}}}
    assert render(rules, ipc, user_secret(token="dG9r")) == {}
    assert "NATS_HOST" not in env(render(rules, module(ipcConfig="bus"), ipc, user_secret(token="dG9r")))


def test_a_user_token_secret_must_exist_and_hold_the_key(rules):
    ipc = {**IPC, "spec": {"nats": {"token": {"generate": False, "secretKeyRef": {"secret": {"name": "mine"}, "key": "tok"}}}}}
    with pytest.raises(ReferenceNotFound) as caught:
        render(rules, ipc)
    assert caught.value.problems[0].field == "spec.nats.token.secretKeyRef.secret.name"
    assert "Secret bot/mine does not exist" in caught.value.problems[0].reason
    with pytest.raises(InvalidSpec) as caught:
        render(rules, ipc, user_secret("mine", other="eA=="))
    assert caught.value.problems[0].field == "spec.nats.token.secretKeyRef.key"
    assert set(render(rules, ipc, user_secret("mine", tok="eA=="))) == {"deployment", "service"}


def test_module_pods_roll_when_the_token_secret_is_replaced(rules):
    dep = render(rules, module(ipcConfig="bus"), IPC)["deployment"].body
    assert dep["spec"]["template"]["metadata"]["annotations"]["eevee.bot/nats-token-uid"] == TOKEN_UID
    with pytest.raises(ReferenceNotFound) as caught:  # no token yet: nothing would start
        render(rules, module(ipcConfig="bus"), {**IPC, "spec": {"nats": {"token": {"generate": False}}}})
    assert caught.value.problems[0].field == "spec.ipcConfig"


def test_image_pull_policy_of_the_eevee_crds_is_honoured_when_pull_policy_is_unset(rules):
    assert container(render(rules, module(imagePullPolicy="IfNotPresent")))["imagePullPolicy"] == "IfNotPresent"
    both = module(imagePullPolicy="IfNotPresent", pullPolicy="Never")
    assert container(render(rules, both))["imagePullPolicy"] == "Never"


@pytest.mark.parametrize(
    "text, line, what",
    [
        ("just words\n", 1, "a single value"),
        ("# settings\n- a\n- b\n", 2, "a list"),
        ("a: 1\n  b: [2\n", 2, "is not valid YAML"),
    ],
)
def test_module_config_that_is_no_yaml_mapping_is_refused_with_its_line(rules, text, line, what):
    with pytest.raises(InvalidSpec) as caught:
        render(rules, module(moduleConfig=text))
    problem = caught.value.problems[0]
    assert problem.field == "spec.moduleConfig" and f"line {line}" in problem.reason and what in problem.reason


def test_module_config_over_a_config_maps_limit_is_refused(rules):
    with pytest.raises(InvalidSpec) as caught:
        render(rules, module(moduleConfig="a: " + "é" * 524_282))  # 1,048,567 bytes, half as many characters
    assert [(p.field, "1048565 bytes" in p.reason) for p in caught.value.problems] == [("spec.moduleConfig", True)]
    assert render(rules, module(moduleConfig="a: " + "x" * 1_048_562))["config"]  # exactly at the limit


def test_managed_fields_annotation_is_compact(rules):
    """The record of what the operator manages rides on every child: about 0.6 KB on a module
    Deployment (the JSON tree was 2 KB, a flat list of paths 5 KB), and it still says everything."""
    from eevee.engine.paths import decode_path_set

    dep = render(rules, module(metrics=True, moduleConfig="x: 1", ipcConfig="bus"), IPC)["deployment"]
    flat = json.dumps(sorted(format_path(p) for p, _ in dep.leaves))
    assert dep.managed.startswith("z1:") and len(dep.managed) < len(flat) / 6 and len(dep.managed) < 700
    leaves, units = decode_path_set(dep.managed)
    managed = {p for p, _ in dep.leaves} - {("metadata", "annotations", "eevee.bot/managed-fields")}
    assert set(leaves) == managed
    assert parse_path("spec.template.spec.containers[name=module].livenessProbe") in units
