"""The shipped tables produce exactly SPEC sections 3 and 4 (module pod contract, NATS)."""

from __future__ import annotations

import base64
import json

import pytest

from eevee.engine.paths import format_path
from eevee.engine.render import InvalidSpec, ReferenceNotFound, Renderer
from eevee.settings import Settings
from tests.engine.resources import IPC, module


def render(rules, resource, *others):
    index = {(r["kind"], r["metadata"]["namespace"], r["metadata"]["name"]): r for r in (resource, *others)}
    renderer = Renderer(
        rules,
        lookup=lambda k, ns, n: index.get((k, ns, n)),
        operator=Settings(namespace="ops").operator_scope(),
        generate=lambda n: "x" * n,
    )
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
        "eevee.bot/module": "echo",
    }.items():
        assert dep["metadata"]["labels"][key] == value
        assert dep["spec"]["template"]["metadata"]["labels"][key] == value
    assert dep["spec"]["selector"] == {"matchLabels": {"eevee.bot/module": "echo"}}
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
    assert env(children)["MODULE_CONFIG_PATH"] == "/etc/eevee/module/config.yaml"
    c = container(children)
    assert c["volumeMounts"] == [{"name": "module-config", "mountPath": "/etc/eevee/module", "readOnly": True}]
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
    assert {"name": "data", "mountPath": "/var/lib/x"} in container(children)["volumeMounts"]


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
    assert service["spec"]["selector"]["eevee.bot/ipc"] == "bus"
    assert service["spec"]["selector"].items() <= nats["spec"]["template"]["metadata"]["labels"].items()


def test_unmanaged_nats_and_user_owned_token(rules):
    ipc = {**IPC, "spec": {"nats": {"managed": {"enabled": False}, "token": {"generate": False}}}}
    assert render(rules, ipc) == {}
    assert "NATS_HOST" not in env(render(rules, module(ipcConfig="bus"), ipc))


def test_managed_fields_annotation_is_compact(rules):
    dep = render(rules, module(metrics=True, moduleConfig="x", ipcConfig="bus"), IPC)["deployment"]
    flat = json.dumps(sorted(format_path(p) for p, _ in dep.leaves))
    assert len(dep.managed) < len(flat) / 2
    assert json.loads(dep.managed)["spec"]["template"]["spec"]["containers"]["[name=module]"]["livenessProbe"]["@"] == 1
