"""Both charts lint, render valid Kubernetes objects, and install onto the stand-in."""

from __future__ import annotations

import base64

import kubernetes_validate
import pytest
from helm_python import Chart, HelmValuesError, lint
from ruamel.yaml import YAML

from eevee.engine.tables import compile_rules
from eevee.manifests import dump_manifests, read_manifests
from tests.charts.helm import CRDS, OPERATOR, crds, render
from tests.conftest import NAMESPACE, ROOT, eventually

pytestmark = pytest.mark.helm
K8S_VERSION = "1.34"  # the version the CRDs and the chart are checked against

VALUE_SETS = {
    "defaults": {},
    "namespaces": {"watchNamespaces": ["bots", "more-bots"], "replicaCount": 2},
    "everywhere": {"watchNamespaces": ["*"], "serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True},
                   "prometheusRule": {"enabled": True}, "dashboard": {"enabled": True}},
    "existing-token": {"apiToken": {"existingSecret": "my-token", "secretKey": "api"}, "serviceAccount": {"create": False, "name": "ops"}},
    "tuned": {"operator": {"pollIntervalSeconds": 5, "watchSilenceSeconds": 60, "resyncSeconds": 0, "logLevel": "DEBUG", "logFormat": "text", "leaderElection": False},
              "image": {"repository": "registry.example.org/eevee-operator", "tag": "9.9.9"}, "nodeSelector": {"pool": "bots"}},
}


@pytest.mark.parametrize("chart", [OPERATOR, CRDS], ids=["eevee-operator", "crds"])
def test_charts_lint_cleanly(chart):
    report = lint(str(chart), strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_the_crd_chart_ships_exactly_the_crds(root):
    assert crds() == read_manifests([root / "crds"])


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_rendered_object_is_a_valid_kubernetes_object(values):
    for obj in render(values):
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            assert obj["kind"] in ("ServiceMonitor", "PodMonitor", "PrometheusRule") and obj["spec"]
            continue
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    for crd in crds():
        kubernetes_validate.validate(crd, K8S_VERSION, strict=True)


def kinds(objects):
    return {(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) for o in objects}


def test_rbac_is_namespaced_by_default_and_cluster_wide_only_for_all_namespaces():
    default = render()
    assert not any(o["kind"].startswith("Cluster") for o in default)
    assert ("Role", "eevee-operator", NAMESPACE) in kinds(default)
    listed = render(VALUE_SETS["namespaces"])
    assert {("RoleBinding", "eevee-operator", "bots"), ("RoleBinding", "eevee-operator", "more-bots")} <= kinds(listed)
    assert not any(o["kind"] == "ClusterRoleBinding" for o in listed)
    everywhere = render(VALUE_SETS["everywhere"])
    assert any(o["kind"] == "ClusterRoleBinding" for o in everywhere)
    deployment = next(o for o in everywhere if o["kind"] == "Deployment")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["WATCH_NAMESPACES"] == "*"


def test_the_operator_pod_runs_restricted_with_probes_and_every_setting():
    deployment = next(o for o in render(VALUE_SETS["tuned"]) if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    security = container["securityContext"]
    assert security == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["resources"]["requests"]
    assert container["image"] == "registry.example.org/eevee-operator:9.9.9"
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["WATCH_SILENCE_SECONDS"] == "60" and env["RESYNC_SECONDS"] == "0"
    assert env["POLL_INTERVAL_SECONDS"] == "5" and env["LOG_LEVEL"] == "DEBUG" and env["LEADER_ELECTION"] == "false"
    assert env["EEVEE_OPERATOR_API_TOKEN"] == {"secretKeyRef": {"name": "eevee-operator-api-token", "key": "token"}}
    for setting in ("NAMESPACE", "WATCH_NAMESPACES", "KUBE_IN_CLUSTER_CONFIG", "HTTP_API_PORT", "RULES_DIR", "LOG_FORMAT",
                    "LEASE_DURATION_SECONDS", "HTTP_API_RATE_LIMIT", "HTTP_API_RATE_BURST", "EEVEE_OPERATOR_API_URL", "POD_NAME"):
        assert setting in env


def test_the_api_token_secret_is_generated_or_taken_from_an_existing_secret():
    generated = next(o for o in render() if o["kind"] == "Secret")
    assert generated["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert len(base64.b64decode(generated["data"]["token"])) == 48
    existing = render(VALUE_SETS["existing-token"])
    assert not any(o["kind"] == "Secret" for o in existing)
    deployment = next(o for o in existing if o["kind"] == "Deployment")
    env = {e["name"]: e.get("valueFrom") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["EEVEE_OPERATOR_API_TOKEN"] == {"secretKeyRef": {"name": "my-token", "key": "api"}}
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "ops"


def test_rule_tables_come_from_the_chart_and_values_can_override_them(root):
    configmap = next(o for o in render() if o["kind"] == "ConfigMap")
    assert configmap["data"]["botmodule.yaml"] == (root / "rules" / "botmodule.yaml").read_text()
    edited = (root / "rules" / "botmodule.yaml").read_text().replace("revisionHistoryLimit: 5", "revisionHistoryLimit: 2")
    configmap = next(o for o in render({"rules": {"override": {"botmodule.yaml": edited}}}) if o["kind"] == "ConfigMap")
    assert "revisionHistoryLimit: 2" in configmap["data"]["botmodule.yaml"]
    yaml = YAML(typ="safe", pure=True)
    compile_rules([(name, yaml.load(text)) for name, text in configmap["data"].items()])  # still valid tables


@pytest.mark.parametrize("values", [{"replicaCount": -1}, {"operator": {"logLevel": "LOUD"}}, {"watchNamespaces": ["Bad_NS"]},
                                    {"unknownKey": 1}, {"service": {"port": 70000}}])
def test_values_schema_refuses_bad_values(values):
    chart = Chart.load(str(OPERATOR))
    try:
        with pytest.raises(HelmValuesError):
            chart.validate_schema(values)
    finally:
        chart.close()


@pytest.mark.kubectl
def test_the_rendered_charts_apply_to_the_stand_in(standin, kubectl, tmp_path):
    crd_file = tmp_path / "crds.yaml"
    crd_file.write_text(dump_manifests(crds()))
    kubectl("apply", "-f", str(crd_file))
    manifests = tmp_path / "operator.yaml"
    manifests.write_text(dump_manifests(render()))
    applied = kubectl("apply", "-f", str(manifests)).stdout
    for line in ("serviceaccount/eevee-operator created", "role.rbac.authorization.k8s.io/eevee-operator created",
                 "deployment.apps/eevee-operator created", "service/eevee-operator created",
                 "configmap/eevee-operator-rules created", "secret/eevee-operator-api-token created"):
        assert line in applied
    eventually(lambda: kubectl("get", "deployment", "eevee-operator", "-o", "jsonpath={.status.readyReplicas}").stdout == "1")
    kubectl("apply", "-f", str(ROOT / "examples"))
    assert "router" in kubectl("get", "bm").stdout


def test_rbac_can_be_extended_for_kinds_a_table_adds():
    extra = {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get", "list", "watch", "create", "patch", "delete"]}
    for values in ({"rules": {"rbac": [extra]}}, {"rules": {"rbac": [extra]}, "watchNamespaces": ["*"]}):
        roles = [o for o in render(values) if o["kind"] in ("Role", "ClusterRole") and not o["metadata"]["name"].endswith("leader-election")]
        assert roles and all(extra in role["rules"] for role in roles)
    with pytest.raises(HelmValuesError):
        render({"rules": {"rbac": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["escalate"]}]}})
