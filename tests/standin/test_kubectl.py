"""A real kubectl against the stand-in: what a user types works as on a cluster."""

from __future__ import annotations

import json
import subprocess
import threading

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


def test_what_the_demo_shows_looks_as_on_a_cluster(standin, kubectl, root):
    """kubectl explain (OpenAPI v3 from the CRDs), the columns of the kinds the demo lists,
    `get -w` keeping its columns, and `kubectl create namespace` (a protobuf body)."""
    kubectl("apply", "-f", str(root / "crds"))
    kubectl("apply", "-f", str(root / "examples"))
    explained = kubectl("explain", "bm.spec.moduleConfig").stdout
    assert "KIND:       BotModule" in explained and "YAML text holding a mapping of settings" in explained
    assert "The token that authenticates the modules to NATS" in kubectl("explain", "ipc.spec.nats").stdout
    assert kubectl("create", "namespace", "more-bots").stdout.strip() == "namespace/more-bots created"

    kubectl("create", "configmap", "settings", "--from-literal=a=1", "--from-literal=b=2")
    kubectl("create", "service", "clusterip", "web", "--tcp=80:8080", check=False)  # protobuf: refused or made
    kubectl("apply", "-f", "-", stdin='{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "nats"}, "spec": {"ports": [{"name": "client", "port": 4222}]}}')
    kubectl("apply", "-f", "-", stdin='{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"}, '
                                       '"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}')
    assert kubectl("get", "cm", "settings").stdout.split()[:4] == ["NAME", "DATA", "AGE", "settings"]
    assert kubectl("get", "svc", "nats").stdout.splitlines()[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert "4222/TCP" in kubectl("get", "svc", "nats").stdout
    pvc = kubectl("get", "pvc", "data").stdout.splitlines()
    assert pvc[0].split() == ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES", "STORAGECLASS", "AGE"] and "RWO" in pvc[1]
    standin.seed({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "echo.1", "namespace": NAMESPACE},
                  "involvedObject": {"kind": "BotModule", "name": "echo"}, "reason": "Created", "type": "Normal",
                  "message": "created Deployment eevee-echo-module"})
    events = kubectl("get", "events").stdout.splitlines()
    assert events[0].split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert events[1].split()[1:4] == ["Normal", "Created", "botmodule/echo"]  # LAST SEEN, then these

    watching = subprocess.Popen([kubectl.binary, "-n", NAMESPACE, "get", "bm", "-w"], env=kubectl.env, stdout=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(watching.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        eventually(lambda: any(line.startswith("router") for line in lines))  # the listed rows are in
        kubectl("patch", "bm", "echo", "--type=merge", "-p", '{"spec": {"size": 2}}')
        eventually(lambda: len([line for line in lines if line.startswith("echo")]) == 2)  # and the watched one
    finally:
        watching.terminate()
        watching.wait(10)
        reader.join(10)
        watching.stdout.close()
    assert lines[0].split() == ["NAME", "MODULE", "IMAGE", "READY", "STATUS", "AGE"]
    assert [line.split()[:3] for line in lines if line.startswith("echo")][-1] == ["echo", "echo", "ghcr.io/eeveebot/echo:1.0.0"]
