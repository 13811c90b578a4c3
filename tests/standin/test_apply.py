"""Server-side apply and protobuf request bodies: what Helm v4 and kubectl send."""

from __future__ import annotations

import base64
import json

import pytest
from kubernetes import client

from tests.conftest import NAMESPACE, call, status_of

APPLY = "application/apply-patch+yaml"


def deployments(name: str = "") -> str:
    return f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments" + (f"/{name}" if name else "")


def web(replicas=1, env=None, labels=None, **extra):
    container = {"name": "web", "image": "nginx:1.27"}
    if env is not None:
        container["env"] = env
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": labels or {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [container]}},
            **extra,
        },
    }


def apply(api, body, manager="helm", force=False, path=None):
    query = [("fieldManager", manager)] if manager else []
    if force:
        query.append(("force", "true"))
    return call(api, "PATCH", path or deployments("web"), body, query=query, content_type=APPLY)


def test_apply_creates_then_an_unchanged_apply_writes_nothing():
    from kubestandin.server import StandIn

    with StandIn(deployment_delay=None) as server:  # no controller writing the Deployment's status meanwhile
        server.create_namespace(NAMESPACE)
        with server.api_client() as api:
            created = apply(api, web())
            assert created["metadata"]["uid"] and created["spec"]["replicas"] == 1
            again = apply(api, web())
            assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
            assert client.AppsV1Api(api).read_namespaced_deployment("web", NAMESPACE).metadata.generation == 1


def test_a_field_dropped_from_the_configuration_is_removed_and_others_fields_survive(api):
    apply(
        api,
        web(
            env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            labels={"app": "web", "tier": "x"},
            minReadySeconds=5,
        ),
    )
    apps = client.AppsV1Api(api)
    # someone else adds a label and a sidecar container
    apps.patch_namespaced_deployment(
        "web",
        NAMESPACE,
        {
            "metadata": {"labels": {"team": "ops"}},
            "spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox:1"}]}}},
        },
    )
    apply(api, web(env=[{"name": "A", "value": "1"}], labels={"app": "web"}))
    live = apps.read_namespaced_deployment("web", NAMESPACE)
    assert live.metadata.labels == {"app": "web", "team": "ops"}
    assert live.spec.min_ready_seconds in (None, 0)
    containers = {c.name: c for c in live.spec.template.spec.containers}
    assert set(containers) == {"web", "sidecar"}
    assert [(e.name, e.value) for e in containers["web"].env] == [("A", "1")]


def test_two_managers_conflict_on_a_field_unless_forced(api):
    apply(api, web(replicas=1), manager="helm")
    apply(api, web(replicas=1), manager="argocd")  # the same value: shared, no conflict
    with pytest.raises(client.ApiException) as refused:
        apply(api, web(replicas=3), manager="argocd")
    status = status_of(refused.value)
    assert refused.value.status == 409 and status["reason"] == "Conflict"
    assert 'conflict with "helm": .spec.replicas' in status["message"]

    assert apply(api, web(replicas=3), manager="argocd", force=True)["spec"]["replicas"] == 3
    # helm no longer owns replicas: dropping it from helm's configuration leaves argocd's value
    config = web()
    del config["spec"]["replicas"]
    assert apply(api, config, manager="helm")["spec"]["replicas"] == 3


@pytest.mark.parametrize(
    ("manager", "body", "code", "message"),
    [
        ("", web(), 400, "must include fieldManager"),
        ("helm", dict(web(), metadata={"name": "other"}), 400, "does not match the name on the URL"),
        ("helm", {"metadata": {"name": "web"}}, 400, "apiVersion and kind must be set"),
        ("helm", web(replicas="three"), 400, "spec.replicas of type int32"),
    ],
)
def test_bad_apply_requests_are_refused(api, manager, body, code, message):
    with pytest.raises(client.ApiException) as refused:
        apply(api, body, manager=manager)
    assert refused.value.status == code and message in status_of(refused.value)["message"]


def test_apply_of_a_custom_resource_is_validated_against_its_schema(api, crds):
    path = f"/apis/eevee.bot/v1/namespaces/{NAMESPACE}/botmodules/echo"
    module = {
        "apiVersion": "eevee.bot/v1",
        "kind": "BotModule",
        "metadata": {"name": "echo"},
        "spec": {"moduleName": "echo", "image": "echo:1"},
    }
    created = apply(api, module, path=path)
    assert created["spec"]["size"] == 1  # defaulted by the CRD schema
    with pytest.raises(client.ApiException) as refused:
        apply(api, dict(module, spec={"moduleName": "echo", "image": "echo:1", "size": -1}), path=path)
    assert refused.value.status == 422


@pytest.mark.kubectl
def test_kubectl_server_side_apply_and_protobuf_generators(standin, kubectl, api, root):
    first = kubectl("apply", "--server-side", "-f", str(root / "crds")).stdout
    assert "serverside-applied" in first
    assert "serverside-applied" in kubectl("apply", "--server-side", "-f", str(root / "examples")).stdout
    assert kubectl("get", "bm", "router", "-o", "jsonpath={.spec.size}").stdout == "2"

    # kubectl's create generators send Secrets and ConfigMaps as protobuf
    kubectl("create", "secret", "generic", "creds", "--from-literal=password=s3cr\u00e9t", "--from-literal=user=bot")
    secret = client.CoreV1Api(api).read_namespaced_secret("creds", NAMESPACE)
    assert base64.b64decode(secret.data["password"]).decode() == "s3cr\u00e9t"
    assert secret.type == "Opaque"
    kubectl("create", "configmap", "settings", "--from-literal=mode=fast")
    assert client.CoreV1Api(api).read_namespaced_config_map("settings", NAMESPACE).data == {"mode": "fast"}

    # a kind the stand-in cannot read as protobuf is a clear 415, as a real server answers an unknown format
    failed = kubectl("create", "deployment", "hello", "--image=nginx:1.27", check=False)
    assert failed.returncode != 0 and "protobuf" in failed.stderr and "Deployment" in failed.stderr
    assert json.loads(kubectl("get", "deployments", "-o", "json").stdout)["items"] == []


@pytest.mark.parametrize(
    "body",
    [b"k8s\x00\x0a\x05\x0a\x02v1", b"\x0a\x02v1", b"k8s\x00\x0a\x0c\x0a\x02v1\x12\x06Pod\xff\xff"],
    ids=["truncated", "no-magic", "unreadable"],
)
def test_an_unreadable_protobuf_body_is_a_clear_415(api, body):
    with pytest.raises(client.ApiException) as refused:
        call(
            api,
            "POST",
            f"/api/v1/namespaces/{NAMESPACE}/secrets",
            body,
            content_type="application/vnd.kubernetes.protobuf",
        )
    assert refused.value.status == 415
    assert "could not be read as protobuf" in status_of(refused.value)["message"]
    assert client.CoreV1Api(api).list_namespaced_secret(NAMESPACE).items == []
