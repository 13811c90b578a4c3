"""A real kubectl against the stand-in: what a user types works as on a cluster."""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from tests.conftest import NAMESPACE, eventually

pytestmark = pytest.mark.kubectl

WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: "nginx:1.27"}]}
"""


def test_kubectl_scenario(standin, kubectl, root, api):
    assert "created" in kubectl("apply", "-f", str(root / "crds")).stdout
    applied = kubectl("apply", "-f", str(root / "examples")).stdout
    assert "botmodule.eevee.bot/router created" in applied and "ipcconfig.eevee.bot/eevee-bus created" in applied
    assert "unchanged" in kubectl("apply", "-f", str(root / "examples" / "botmodule-echo.yaml")).stdout

    table = kubectl("get", "bm").stdout.splitlines()
    assert table[0].split() == ["NAME", "MODULE", "IMAGE", "READY", "STATUS", "AGE"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["router"][1:3] == ["router", "ghcr.io/eeveebot/router:1.4.2"]
    wide = kubectl("get", "bm", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-2:] == ["ENABLED", "MESSAGE"]
    enabled_at = wide[0].index("ENABLED")  # columns are fixed-width; READY and STATUS are empty with no operator
    assert {line.split()[0]: line[enabled_at:].split()[0] for line in wide[1:]}["admin"] == "false"
    assert kubectl("get", "ipc", "eevee-bus", "-o", "jsonpath={.spec.nats.managed.enabled}").stdout == "true"

    kubectl("patch", "bm", "echo", "--type=json", "-p", '[{"op": "replace", "path": "/spec/size", "value": 3}]')
    echo = json.loads(kubectl("get", "bm", "echo", "-o", "json").stdout)
    assert echo["spec"]["size"] == 3 and echo["metadata"]["generation"] == 2
    failed = kubectl(
        "patch",
        "bm",
        "echo",
        "--type=json",
        "-p",
        '[{"op": "replace", "path": "/spec/size", "value": -1}]',
        check=False,
    )
    assert failed.returncode != 0 and "should be greater than or equal to 0" in failed.stderr

    # Deployments: scale, rollout restart
    kubectl("apply", "-f", "-", stdin=WEB)
    kubectl("scale", "deployment/web", "--replicas=3")
    apps = client.AppsV1Api(api)
    assert apps.read_namespaced_deployment("web", NAMESPACE).spec.replicas == 3
    kubectl("rollout", "restart", "deployment/web")
    annotations = apps.read_namespaced_deployment("web", NAMESPACE).spec.template.metadata.annotations
    assert "kubectl.kubernetes.io/restartedAt" in annotations
    eventually(lambda: kubectl("get", "deployment", "web", "-o", "jsonpath={.status.readyReplicas}").stdout == "3")
    assert kubectl("rollout", "status", "deployment/web", "--timeout=20s").returncode == 0

    # delete waits for the object to be gone (a watch on metadata.name)
    assert 'botmodule.eevee.bot "echo" deleted' in kubectl("delete", "bm", "echo").stdout
    assert "NotFound" in kubectl("get", "bm", "echo", check=False).stderr
    kubectl("delete", "-f", str(root / "examples"), "--ignore-not-found")
    assert kubectl("get", "bm", "-o", "name").stdout == ""
