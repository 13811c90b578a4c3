"""An operator running against a stand-in, the way users run it (minus the Pod)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client

from eevee.kube.config import kubeconfig_connection
from eevee.manifests import read_manifests
from eevee.service import OperatorService
from eevee.settings import Settings
from tests.conftest import NAMESPACE, ROOT, eventually

API_TOKEN = "e2e-api-token-8c1f2b9d"

# A child kind the shipped tables do not make (for tests that add one to a table).
ACCOUNT_CHILD = """
  - id: account
    apiVersion: v1
    kind: ServiceAccount
    name: "eevee-{metadata.name}-module"
    base:
      automountServiceAccountToken: false
"""


def operator_settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = dict(
        namespace=NAMESPACE, watch_namespaces=(NAMESPACE,), http_host="127.0.0.1", http_port=0,
        api_token=API_TOKEN, poll_interval=30.0, rules_dir=str(ROOT / "rules"), lease_duration=2.0,
        identity="operator-a", log_format="text",
    )
    base.update(overrides)
    return Settings(**base)


PLURALS = {"IpcConfig": "ipcconfigs", "BotModule": "botmodules", "S3Store": "s3stores",
           "BackupSchedule": "backupschedules", "BackupRestore": "backuprestores"}


class Cluster:
    """Helpers over the official client for a test's story."""

    def __init__(self, standin: Any) -> None:
        self.standin = standin
        self.api = standin.api_client()
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)

    def create(self, resource: dict[str, Any]) -> dict[str, Any]:
        plural = PLURALS[resource["kind"]]
        return self.custom.create_namespaced_custom_object("eevee.bot", "v1", NAMESPACE, plural, copy.deepcopy(resource))

    def patch(self, kind: str, name: str, body: Any) -> dict[str, Any]:
        plural = PLURALS[kind]
        return self.custom.patch_namespaced_custom_object("eevee.bot", "v1", NAMESPACE, plural, name, body)

    def delete(self, kind: str, name: str) -> None:
        plural = PLURALS[kind]
        self.custom.delete_namespaced_custom_object("eevee.bot", "v1", NAMESPACE, plural, name)

    def get(self, kind: str, name: str) -> dict[str, Any]:
        plural = PLURALS[kind]
        return self.custom.get_namespaced_custom_object("eevee.bot", "v1", NAMESPACE, plural, name)

    def deployment(self, name: str) -> dict[str, Any] | None:
        try:
            return self.api.sanitize_for_serialization(self.apps.read_namespaced_deployment(name, NAMESPACE))
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise

    def read(self, kind: str, name: str) -> dict[str, Any] | None:
        """A built-in object as a dict, or None when it does not exist."""
        batch = client.BatchV1Api(self.api)
        read = {"ConfigMap": self.core.read_namespaced_config_map, "Secret": self.core.read_namespaced_secret,
                "Service": self.core.read_namespaced_service, "PersistentVolumeClaim": self.core.read_namespaced_persistent_volume_claim,
                "Deployment": self.apps.read_namespaced_deployment,
                "CronJob": batch.read_namespaced_cron_job, "Job": batch.read_namespaced_job}[kind]
        try:
            return self.api.sanitize_for_serialization(read(name, NAMESPACE))
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise

    def exists(self, kind: str, name: str) -> bool:
        return self.read(kind, name) is not None

    def ready(self, kind: str, name: str) -> dict[str, Any] | None:
        """The Ready condition when it is True for the current generation."""
        obj = self.get(kind, name)
        status = obj.get("status") or {}
        condition = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)
        if condition and condition["status"] == "True" and status.get("observedGeneration") == obj["metadata"]["generation"]:
            return condition
        return None

    def condition(self, kind: str, name: str, type_: str = "Ready") -> dict[str, Any]:
        status = self.get(kind, name).get("status") or {}
        return next((c for c in status.get("conditions", []) if c["type"] == type_), {})

    def events(self, name: str) -> list[dict[str, Any]]:
        found = self.core.list_namespaced_event(NAMESPACE, field_selector=f"involvedObject.name={name}")
        return [self.api.sanitize_for_serialization(e) for e in found.items]


def examples() -> dict[str, dict[str, Any]]:
    return {r["metadata"]["name"]: r for r in read_manifests([ROOT / "examples"])}


def module(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "eevee.bot/v1", "kind": "BotModule", "metadata": {"name": name},
            "spec": {"moduleName": name, "image": f"ghcr.io/eeveebot/{name}:1.0.0", **spec}}


def ipc(name: str = "bus", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "eevee.bot/v1", "kind": "IpcConfig", "metadata": {"name": name}, "spec": spec}


@pytest.fixture
def cluster(crds: Any) -> Cluster:
    return Cluster(crds)


OperatorFactory = Callable[..., OperatorService]


@pytest.fixture
def start_operator(crds: Any) -> Iterator[OperatorFactory]:
    started: list[OperatorService] = []

    def start(**overrides: Any) -> OperatorService:
        service = OperatorService(operator_settings(**overrides), connection=kubeconfig_connection(crds.kubeconfig)).start()
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def operator(start_operator: OperatorFactory) -> OperatorService:
    service = start_operator()
    eventually(lambda: service.runner.passes > 0, message="first pass")
    return service


def wait_passes(service: OperatorService, count: int, timeout: float = 20.0) -> None:
    target = service.runner.passes + count
    eventually(lambda: service.runner.passes >= target, timeout=timeout, message=f"{count} more passes")


@pytest.fixture
def loose_standin():
    """A stand-in whose CRDs accept anything, to store specs the real CRDs would refuse
    (resources written before a CRD upgrade, or with validation off)."""
    from eevee.manifests import read_manifests
    from kubestandin.server import StandIn

    with StandIn() as server:
        server.create_namespace(NAMESPACE)
        for crd in read_manifests([ROOT / "crds"]):
            version = crd["spec"]["versions"][0]
            version["schema"] = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}
            server.seed(crd)
        yield server
