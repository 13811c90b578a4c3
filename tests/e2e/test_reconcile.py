"""The operator's stories: resources in, the objects of SPEC 3 and 4 out, and kept so."""

from __future__ import annotations

import base64
import threading

from kubernetes import client, watch

from tests.conftest import NAMESPACE, eventually
from tests.e2e.test_backups import schedule
from tests.operator_fixtures import examples, ipc, module, wait_passes


def container(dep):
    return dep["spec"]["template"]["spec"]["containers"][0]


def env(dep):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(dep).get("env", [])}


def test_examples_converge_to_the_spec_objects(cluster, operator):
    for resource in examples().values():
        cluster.create(resource)
    for name in ("router", "echo", "irc-libera"):
        eventually(lambda n=name: cluster.ready("BotModule", n), message=f"{name} ready")
    eventually(lambda: cluster.ready("IpcConfig", "eevee-bus"))
    router = cluster.deployment("eevee-router-module")
    assert router["spec"]["replicas"] == 2
    assert router["metadata"]["ownerReferences"][0]["kind"] == "BotModule"
    assert env(router)["NATS_HOST"] == "eevee-eevee-bus-nats.eevee-bot.svc"
    assert env(router)["NATS_TOKEN"] == {"secretKeyRef": {"name": "eevee-bus-token", "key": "token"}}
    assert container(router)["resources"]["limits"] == {"cpu": "500m", "memory": "1Gi"}
    for kind, name in [("ConfigMap", "eevee-router-module-config"), ("PersistentVolumeClaim", "eevee-irc-libera-module-pvc"),
                       ("Secret", "eevee-bus-token"), ("Service", "eevee-eevee-bus-nats"), ("Deployment", "eevee-eevee-bus-nats")]:
        assert cluster.exists(kind, name), f"{kind} {name}"
    pvc = cluster.core.read_namespaced_persistent_volume_claim("eevee-irc-libera-module-pvc", NAMESPACE)
    assert not pvc.metadata.owner_references
    admin = cluster.condition("BotModule", "admin")
    assert (admin["status"], admin["reason"]) == ("False", "Disabled")
    # what `kubectl get bm` / `get ipc` show in their READY column
    assert cluster.get("BotModule", "router")["status"]["ready"] == "2/2"
    assert cluster.get("BotModule", "admin")["status"]["ready"] == "0/0"
    assert cluster.get("IpcConfig", "eevee-bus")["status"]["ready"] == "1/1"
    assert cluster.deployment("eevee-admin-module")["spec"]["replicas"] == 0
    status = cluster.get("BotModule", "router")["status"]
    assert status["readyReplicas"] == 2 and status["replicas"] == 2
    assert any(e["reason"] == "Created" and e["message"] == "created Deployment eevee-router-module" for e in cluster.events("router"))


import pytest  # noqa: E402


@pytest.mark.parametrize("election", [False, True], ids=["single", "leader-election"])
def test_steady_state_sends_no_writes(cluster, start_operator, standin, election):
    service = start_operator(poll_interval=0.2, leader_election=election)
    for resource in examples().values():
        cluster.create(resource)
    for name in ("router", "echo", "irc-libera"):
        eventually(lambda n=name: cluster.ready("BotModule", n))
    eventually(lambda: cluster.ready("IpcConfig", "eevee-bus"))
    wait_passes(service, 1)
    mark = standin.log.mark()
    wait_passes(service, 3)
    # With leader election the leader renews its Lease (every lease-duration/7.5 s); nothing else is written.
    writes = [w for w in standin.log.writes(mark) if not (election and w.resource == "leases")]
    assert writes == [], [f"{w.verb} {w.resource} {w.name}" for w in writes]
    reads = {verb for verb, resource in standin.log.counts(mark) if resource != "leases"}
    assert reads <= {"watch"}, reads  # no list, no per-object GET in steady state: the cache is watch-fed


def test_a_changed_module_config_rolls_the_pods_once_and_an_unchanged_one_never(cluster, operator):
    cluster.create(module("echo", moduleConfig="greeting: hi\n"))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    templates = []
    stop = threading.Event()
    start = cluster.deployment("eevee-echo-module")["metadata"]["resourceVersion"]

    def record():
        for event in watch.Watch().stream(cluster.apps.list_namespaced_deployment, NAMESPACE, resource_version=start,
                                          field_selector="metadata.name=eevee-echo-module", timeout_seconds=10):
            templates.append(cluster.api.sanitize_for_serialization(event["object"].spec.template))
            if stop.is_set():
                return

    watcher = threading.Thread(target=record, daemon=True)
    watcher.start()
    cluster.patch("BotModule", "echo", {"spec": {"size": 2}})  # not a config change: no roll
    eventually(lambda: cluster.deployment("eevee-echo-module")["spec"]["replicas"] == 2)
    cluster.patch("BotModule", "echo", {"spec": {"moduleConfig": "greeting: hello\n"}})
    eventually(lambda: cluster.core.read_namespaced_config_map("eevee-echo-module-config", NAMESPACE).data["config.yaml"] == "greeting: hello\n")
    eventually(lambda: cluster.ready("BotModule", "echo"))
    stop.set()
    cluster.apps.patch_namespaced_deployment("eevee-echo-module", NAMESPACE, {"metadata": {"labels": {"poke": "1"}}})
    watcher.join(10)
    hashes = [t["metadata"]["annotations"]["eevee.bot/config-hash"] for t in templates]
    distinct = [h for i, h in enumerate(hashes) if i == 0 or h != hashes[i - 1]]
    assert len(distinct) == 2, distinct  # the original template, then exactly one roll


def test_enabled_false_scales_to_zero_and_back(cluster, operator):
    cluster.create(module("echo", size=3, moduleConfig="x: 1\n"))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    cluster.patch("BotModule", "echo", {"spec": {"enabled": False}})
    eventually(lambda: cluster.deployment("eevee-echo-module")["spec"]["replicas"] == 0)
    eventually(lambda: cluster.condition("BotModule", "echo").get("reason") == "Disabled")
    assert cluster.exists("ConfigMap", "eevee-echo-module-config")
    cluster.patch("BotModule", "echo", {"spec": {"enabled": True}})
    eventually(lambda: cluster.deployment("eevee-echo-module")["spec"]["replicas"] == 3)
    eventually(lambda: cluster.ready("BotModule", "echo"))


def test_image_and_size_changes_reach_the_deployment(cluster, operator):
    cluster.create(module("echo"))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    cluster.patch("BotModule", "echo", {"spec": {"image": "ghcr.io/eeveebot/echo:2.0.0", "size": 4}})
    eventually(lambda: container(cluster.deployment("eevee-echo-module"))["image"] == "ghcr.io/eeveebot/echo:2.0.0")
    assert cluster.deployment("eevee-echo-module")["spec"]["replicas"] == 4


def test_drift_is_repaired_and_foreign_fields_are_left_alone(cluster, operator):
    cluster.create(module("echo", metrics=True))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    cluster.apps.patch_namespaced_deployment("eevee-echo-module", NAMESPACE, {
        "metadata": {"labels": {"team": "chat"}},
        "spec": {"replicas": 5, "template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}},
                 "spec": {"containers": [{"name": "module", "image": "evil:latest", "env": [{"name": "EXTRA", "value": "1"}]}]}}},
    })
    eventually(lambda: container(cluster.deployment("eevee-echo-module"))["image"] == "ghcr.io/eeveebot/echo:1.0.0")
    dep = cluster.deployment("eevee-echo-module")
    assert dep["spec"]["replicas"] == 1
    assert dep["metadata"]["labels"]["team"] == "chat"
    assert dep["spec"]["template"]["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] == "2026-01-01T00:00:00Z"
    assert env(dep)["EXTRA"] == "1"


def test_a_deleted_child_is_recreated(cluster, operator):
    cluster.create(module("echo", moduleConfig="a: 1\n"))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    cluster.core.delete_namespaced_config_map("eevee-echo-module-config", NAMESPACE)
    eventually(lambda: cluster.exists("ConfigMap", "eevee-echo-module-config"))


def test_fields_no_longer_rendered_are_removed(cluster, operator):
    cluster.create(module("echo", metrics=True, moduleConfig="a: 1\n"))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    cluster.patch("BotModule", "echo", {"spec": {"metrics": False, "moduleConfig": None}})
    eventually(lambda: "METRICS_PORT" not in env(cluster.deployment("eevee-echo-module")))
    eventually(lambda: not cluster.exists("ConfigMap", "eevee-echo-module-config"))
    dep = cluster.deployment("eevee-echo-module")
    c = container(dep)
    assert "ports" not in c and "livenessProbe" not in c and "readinessProbe" not in c and "volumeMounts" not in c
    assert "volumes" not in dep["spec"]["template"]["spec"]
    assert set(env(dep)) == {"NAMESPACE", "RESOURCE_NAME"}


def test_persistent_volume_claims_are_never_deleted(cluster, operator):
    pvc = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    cluster.create(module("echo", persistentVolumeClaim=pvc))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    cluster.patch("BotModule", "echo", {"spec": {"persistentVolumeClaim": None}})
    eventually(lambda: "MODULE_DATA" not in env(cluster.deployment("eevee-echo-module")))
    assert cluster.exists("PersistentVolumeClaim", "eevee-echo-module-pvc")
    cluster.patch("BotModule", "echo", {"spec": {"persistentVolumeClaim": pvc}})
    eventually(lambda: "MODULE_DATA" in env(cluster.deployment("eevee-echo-module")))
    cluster.delete("BotModule", "echo")
    eventually(lambda: not cluster.exists("Deployment", "eevee-echo-module"), message="garbage collected")
    assert cluster.exists("PersistentVolumeClaim", "eevee-echo-module-pvc")


def test_the_nats_token_is_created_once_and_never_changes(cluster, start_operator):
    first = start_operator()
    cluster.create(ipc(nats={"managed": {"image": "nats:2.10.24-alpine"}}))
    eventually(lambda: cluster.exists("Secret", "bus-nats-token"))
    token = cluster.core.read_namespaced_secret("bus-nats-token", NAMESPACE).data["token"]
    text = base64.b64decode(token).decode()
    assert len(text) >= 43 and all(ch.isalnum() or ch in "-_" for ch in text)  # 32 random bytes, URL-safe
    cluster.patch("IpcConfig", "bus", {"spec": {"nats": {"managed": {"imagePullPolicy": "Always"}}}})
    eventually(lambda: container(cluster.deployment("eevee-bus-nats"))["imagePullPolicy"] == "Always")
    first.stop()
    second = start_operator(identity="operator-b", poll_interval=0.5)
    wait_passes(second, 2)
    assert cluster.core.read_namespaced_secret("bus-nats-token", NAMESPACE).data["token"] == token


def test_a_module_waits_for_its_ipc_config_and_converges_when_it_appears(cluster, operator):
    cluster.create(module("echo", ipcConfig="bus"))
    eventually(lambda: cluster.condition("BotModule", "echo").get("reason") == "ReferenceNotFound")
    condition = cluster.condition("BotModule", "echo")
    assert "spec.ipcConfig" in condition["message"] and "IpcConfig eevee-bot/bus does not exist" in condition["message"]
    assert any(e["type"] == "Warning" and e["reason"] == "ReferenceNotFound" for e in cluster.events("echo"))
    assert not cluster.exists("Deployment", "eevee-echo-module")
    cluster.create(ipc())
    eventually(lambda: cluster.ready("BotModule", "echo"))
    assert env(cluster.deployment("eevee-echo-module"))["NATS_HOST"] == "eevee-bus-nats.eevee-bot.svc"


def test_a_cross_namespace_secret_is_refused_and_others_go_on(cluster, operator):
    cluster.create(module("thief", envSecret={"name": "creds", "namespace": "kube-system"}))
    cluster.create(module("echo"))
    eventually(lambda: cluster.condition("BotModule", "thief").get("reason") == "InvalidSpec")
    assert "spec.envSecret.namespace" in cluster.condition("BotModule", "thief")["message"]
    eventually(lambda: cluster.ready("BotModule", "echo"))
    assert not cluster.exists("Deployment", "eevee-thief-module")


def test_api_errors_are_retried_until_convergence(cluster, operator, standin):
    standin.faults.inject(verb="create", resource="deployments", code=500, times=3)
    standin.faults.inject(verb="patch", resource="botmodules/status", code=409, times=1)
    cluster.create(module("echo"))
    eventually(lambda: cluster.ready("BotModule", "echo"), timeout=20)
    text = client.CoreV1Api(cluster.api).api_client.configuration.host  # noqa: F841 - the client stays usable
    samples = operator.metrics.registry.get_sample_value
    assert samples("eevee_operator_reconcile_errors_total", {"kind": "BotModule", "reason": "ReconcileFailed"}) >= 1
    assert samples("eevee_operator_kube_requests_total", {"verb": "create", "resource": "deployments", "code": "500"}) == 3
    assert len(cluster.apps.list_namespaced_deployment(NAMESPACE).items) == 1


def test_events_say_what_happened_one_per_change(cluster, operator):
    """Reasons a user can filter on (kubectl get events --field-selector reason=RolledOut)."""
    cluster.create(module("echo", moduleConfig="a: 1\n"))
    eventually(lambda: cluster.ready("BotModule", "echo"))

    def reasons():
        return [(e["reason"], e["message"]) for e in cluster.events("echo") if e["type"] == "Normal"]

    assert ("Created", "created ConfigMap eevee-echo-module-config") in reasons()
    assert ("Created", "created Deployment eevee-echo-module") in reasons()
    cluster.patch("BotModule", "echo", {"spec": {"image": "ghcr.io/eeveebot/echo:2.0.0"}})
    eventually(lambda: ("RolledOut", "rolled out Deployment eevee-echo-module: new pod template") in reasons())
    cluster.patch("BotModule", "echo", {"spec": {"size": 3}})
    eventually(lambda: ("Scaled", "scaled Deployment eevee-echo-module: to 3 replicas") in reasons())
    cluster.patch("BotModule", "echo", {"spec": {"enabled": False}})
    eventually(lambda: ("ScaledDown", "scaled Deployment eevee-echo-module: to 0 replicas") in reasons())
    cluster.patch("BotModule", "echo", {"spec": {"moduleConfig": None}})
    eventually(lambda: ("Deleted", "deleted ConfigMap eevee-echo-module-config: no longer rendered") in reasons())


def test_an_edit_made_while_the_status_is_written_is_reconciled_at_once(cluster, operator, standin):
    """The answer to the status write already carries the edited spec, so the edit's watch event
    is dropped as known: the operator must notice from the answer itself, not wait for a pass.
    A BackupSchedule has no children whose events would bring it back by chance."""
    cluster.create(schedule(store_name="first"))
    eventually(lambda: "first" in cluster.condition("BackupSchedule", "nightly").get("message", ""))
    kube = operator.runner.reconciler.kube
    original = kube.patch
    edited = []

    def patch(api_version, plural, namespace, name, body, **kw):
        if kw.get("subresource") == "status" and not edited:  # the user edits right before our status write
            edited.append(cluster.patch("BackupSchedule", "nightly", {"spec": {"s3Store": {"name": "third"}}}))
        return original(api_version, plural, namespace, name, body, **kw)

    kube.patch = patch
    try:
        cluster.patch("BackupSchedule", "nightly", {"spec": {"s3Store": {"name": "second"}}})
        eventually(lambda: edited)
        # A pass is 30 s away: only following the write's answer gets there in time.
        eventually(lambda: "third" in cluster.condition("BackupSchedule", "nightly")["message"], timeout=5)
    finally:
        kube.patch = original
