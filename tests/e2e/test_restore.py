"""Backup and restore: a namespace restored the way Velero restores it converges with no
duplicate, no new token and no data loss."""

from __future__ import annotations

from tests.conftest import NAMESPACE, eventually
from tests.operator_fixtures import examples, wait_passes


def strip(obj):
    """An object as Velero restores it: no uid, version, status, or ownerReferences."""
    metadata = {k: v for k, v in obj["metadata"].items() if k in ("name", "namespace", "labels", "annotations")}
    restored = {k: v for k, v in obj.items() if k not in ("status", "metadata")}
    restored["metadata"] = metadata
    return restored


def test_a_restored_namespace_converges_without_new_tokens_or_duplicates(cluster, start_operator, standin):
    first = start_operator(leader_election=False)
    for resource in examples().values():
        cluster.create(resource)
    for name in ("router", "echo", "irc-libera"):
        eventually(lambda n=name: cluster.ready("BotModule", n))
    api = cluster.api
    token = api.sanitize_for_serialization(cluster.core.read_namespaced_secret("eevee-bus-token", NAMESPACE))
    claim = api.sanitize_for_serialization(cluster.core.read_namespaced_persistent_volume_claim("eevee-irc-libera-module-pvc", NAMESPACE))
    deployment = cluster.deployment("eevee-router-module")
    resources = [cluster.get(r["kind"], r["metadata"]["name"]) for r in examples().values()]
    first.stop()

    # Disaster: the namespace is gone.
    cluster.core.delete_namespace(NAMESPACE)
    eventually(lambda: not standin.store.namespace_exists(NAMESPACE))
    # Restore: the namespace, the custom resources (new UIDs), the token Secret, the claim and
    # one Deployment, without ownerReferences.
    standin.create_namespace(NAMESPACE)
    for obj in [token, claim, deployment, *resources]:
        standin.seed(strip(obj))
    old_uids = {r["metadata"]["uid"] for r in resources}

    second = start_operator(leader_election=False, poll_interval=0.3, identity="operator-b")
    for name in ("router", "echo", "irc-libera"):
        eventually(lambda n=name: cluster.ready("BotModule", n))
    wait_passes(second, 2)
    assert cluster.core.read_namespaced_secret("eevee-bus-token", NAMESPACE).data == token["data"]
    restored_claim = cluster.core.read_namespaced_persistent_volume_claim("eevee-irc-libera-module-pvc", NAMESPACE)
    assert restored_claim.spec.resources.requests == claim["spec"]["resources"]["requests"]
    deployments = [d.metadata for d in cluster.apps.list_namespaced_deployment(NAMESPACE).items]
    assert len(deployments) == 5
    for metadata in deployments:
        assert len(metadata.owner_references) == 1 and metadata.owner_references[0].uid not in old_uids
    secret = cluster.core.read_namespaced_secret("eevee-bus-token", NAMESPACE)
    assert secret.metadata.owner_references[0].uid == cluster.get("IpcConfig", "eevee-bus")["metadata"]["uid"]
