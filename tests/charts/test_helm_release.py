"""A real Helm release (Helm v4's Go SDK) installed, upgraded and uninstalled on the stand-in.

Helm v4 writes its objects with server-side apply and keeps its release records as
protobuf-encoded Secrets, so this also proves the stand-in speaks both.
"""

from __future__ import annotations

import pytest
from helm_python import Config
from kubernetes import client

from tests.charts.helm import CRDS, OPERATOR
from tests.conftest import NAMESPACE

RELEASE = "eevee-operator"
TOKEN = "eevee-operator-api-token"


@pytest.fixture
def helm(standin):
    with Config(kubeconfig_path=str(standin.kubeconfig), namespace=NAMESPACE) as config:
        yield config


def env_of(apps: client.AppsV1Api) -> dict[str, str | None]:
    deployment = apps.read_namespaced_deployment(RELEASE, NAMESPACE)
    return {e.name: e.value for e in deployment.spec.template.spec.containers[0].env}


def test_install_upgrade_uninstall_keeps_the_api_token(helm, api):
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    helm.install(str(CRDS), "eevee-crds", namespace=NAMESPACE)
    installed = helm.install(
        str(OPERATOR), RELEASE, {"podAnnotations": {"example.org/team": "bots"}}, namespace=NAMESPACE
    )
    assert installed["status"] == "deployed" and installed["revision"] == 1
    token = core.read_namespaced_secret(TOKEN, NAMESPACE).data["token"]
    deployment = apps.read_namespaced_deployment(RELEASE, NAMESPACE)
    assert deployment.spec.template.metadata.annotations["example.org/team"] == "bots"
    assert deployment.metadata.labels["app.kubernetes.io/managed-by"] == "Helm"
    assert client.ApiextensionsV1Api(api).read_custom_resource_definition("botmodules.eevee.bot")

    upgraded = helm.upgrade(str(OPERATOR), RELEASE, {"operator": {"logLevel": "DEBUG"}}, namespace=NAMESPACE)
    assert upgraded["revision"] == 2
    assert core.read_namespaced_secret(TOKEN, NAMESPACE).data["token"] == token  # looked up, not regenerated
    assert env_of(apps)["LOG_LEVEL"] == "DEBUG"
    annotations = apps.read_namespaced_deployment(RELEASE, NAMESPACE).spec.template.metadata.annotations or {}
    assert "example.org/team" not in annotations  # a value dropped on upgrade leaves the object

    helm.uninstall(RELEASE)
    assert apps.list_namespaced_deployment(NAMESPACE).items == []
    left = {s.metadata.name for s in core.list_namespaced_secret(NAMESPACE).items}
    assert left == {TOKEN, "sh.helm.release.v1.eevee-crds.v1"}  # the token has resource-policy: keep

    helm.install(str(OPERATOR), RELEASE, namespace=NAMESPACE)
    assert core.read_namespaced_secret(TOKEN, NAMESPACE).data["token"] == token  # a reinstall reuses the kept token
