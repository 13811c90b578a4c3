"""``eevee.bot/reconcile: paused`` (issue 23, part 6): a person hand-edits a module's Deployment to
debug it and the operator leaves it alone; the status says Paused; removing the annotation
converges at once; deletion still cascades (garbage collection, which needs no write of ours:
the ownerReferences the children carry, as on a real cluster's kube-controller-manager)."""

from __future__ import annotations

from tests.conftest import NAMESPACE, eventually
from tests.faults.test_api_faults import samples
from tests.operator_fixtures import ipc, module, wait_passes

PAUSE = {"metadata": {"annotations": {"eevee.bot/reconcile": "paused"}}}
RESUME = {"metadata": {"annotations": {"eevee.bot/reconcile": None}}}


def reason(cluster, kind, name):
    condition = cluster.condition(kind, name) or {}
    return condition.get("status"), condition.get("reason")


def test_a_paused_module_keeps_a_hand_edited_deployment_until_it_is_resumed(cluster, start_operator):
    service = start_operator(poll_interval=0.2)
    cluster.create(module("echo", size=1))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    cluster.patch("BotModule", "echo", PAUSE)
    eventually(lambda: reason(cluster, "BotModule", "echo") == ("False", "Paused"))
    assert any(e["reason"] == "Paused" and e["type"] == "Normal" for e in cluster.events("echo"))
    assert samples(service, "eevee_operator_paused_resources", {"kind": "BotModule"}) == 1

    cluster.apps.patch_namespaced_deployment("eevee-echo-module", NAMESPACE, {"spec": {"replicas": 3}})
    cluster.patch("BotModule", "echo", {"spec": {"image": "ghcr.io/eeveebot/echo:9.9.9"}})
    wait_passes(service, 5)
    deployment = cluster.deployment("eevee-echo-module")
    assert deployment["spec"]["replicas"] == 3  # the hand edit stays
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/eeveebot/echo:1.0.0"
    assert reason(cluster, "BotModule", "echo") == ("False", "Paused")  # never Ready=True while paused

    cluster.patch("BotModule", "echo", RESUME)
    eventually(lambda: cluster.deployment("eevee-echo-module")["spec"]["replicas"] == 1, timeout=5)
    deployment = cluster.deployment("eevee-echo-module")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/eeveebot/echo:9.9.9"
    eventually(lambda: cluster.ready("BotModule", "echo"))
    assert samples(service, "eevee_operator_paused_resources", {"kind": "BotModule"}) == 0


def test_a_paused_resource_still_cascades_on_deletion(cluster, operator):
    cluster.create(ipc("bus"))
    cluster.create(module("echo", ipcConfig="bus"))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    cluster.patch("IpcConfig", "bus", PAUSE)
    cluster.patch("BotModule", "echo", PAUSE)
    eventually(lambda: reason(cluster, "IpcConfig", "bus") == ("False", "Paused"))
    cluster.delete("BotModule", "echo")
    eventually(lambda: not cluster.exists("Deployment", "eevee-echo-module"))
    assert cluster.exists("Deployment", "eevee-bus-nats")  # the paused IpcConfig's children stay
