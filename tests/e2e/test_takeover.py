"""Taking over a bot the eevee operator 2.3 runs (SPEC 12).

The objects are first made exactly as the eevee operator 2.3 makes them (eeveebot/operator,
src/lib/managers/eevee.bot.v1.{IpcConfig,BotModule}.mts at 2.3): the token Secret with
``token`` and ``host`` owned by the IpcConfig, the NATS config Secret, the NATS Deployment
selected by ``eevee.bot/nats-server`` + ``eevee.bot/ipcconfig`` with its ``nats-server``
container, the NATS Service with three ports; per module a Deployment selected by
``eevee.bot/module: <BotModule name>`` with no owner, its ``module-data`` volume at ``/data``
and ``module-config`` at ``/etc/module-config``, a ConfigMap and a claim with neither labels nor
owner. One module is older still: its Deployment selects ``eevee.bot/module: "true"``.

Then our operator starts, and:

| what                                  | expected                                                     |
|---------------------------------------|--------------------------------------------------------------|
| every resource                        | Ready, with no duplicate object                              |
| the token                             | the same value (no module is cut off)                        |
| claims                                | the same uid and data                                        |
| 2.3 Deployments                       | adopted in place: the same uid, spec exactly the rendering   |
|                                       | (their own volumes, env and ports gone), one template change |
|                                       | (at most one pod restart)                                    |
| the older Deployment (`"true"`)       | re-created once with the right selector                      |
| two modules sharing `moduleName: irc` | two Deployments that do not select each other's pods         |
| afterwards                            | steady: no write at all                                      |
"""

from __future__ import annotations

import base64
import copy

from tests.conftest import NAMESPACE, eventually
from tests.operator_fixtures import ipc, module, wait_passes

CLAIM = {"storageClassName": "filesystem", "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
TOKEN = "0123456789abcdef0123456789abcdef"


def owner(resource, kind):
    return {"apiVersion": "eevee.bot/v1", "kind": kind, "name": resource["metadata"]["name"],
            "uid": resource["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def b64(text):
    return base64.b64encode(text.encode()).decode()


def seed_ipc_as_the_eevee_operator(standin, bus):
    name, own = bus["metadata"]["name"], [owner(bus, "IpcConfig")]
    host = f"eevee-{name}-nats.{NAMESPACE}.svc.cluster.local"
    standin.seed({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                  "metadata": {"name": "nats-auth-secret", "namespace": NAMESPACE, "ownerReferences": own},
                  "data": {"token": b64(TOKEN), "host": b64(host)}})
    standin.seed({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                  "metadata": {"name": f"eevee-{name}-nats-config", "namespace": NAMESPACE, "ownerReferences": own},
                  "data": {"nats.conf": b64(f'port: 4222\nauthorization {{\n  token: "{TOKEN}"\n}}\n')}})
    labels = {"eevee.bot/nats-server": "true", "eevee.bot/ipcconfig": name}
    standin.seed({"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": f"eevee-{name}-nats", "namespace": NAMESPACE, "ownerReferences": own},
                  "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                           "template": {"metadata": {"labels": {"app": "eevee.bot", **labels}}, "spec": {
                               "volumes": [{"name": "nats-config-volume", "secret": {"secretName": f"eevee-{name}-nats-config"}}],
                               "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000},
                               "containers": [{"name": "nats-server", "image": "docker.io/nats:latest", "imagePullPolicy": "IfNotPresent",
                                               "command": ["nats-server"], "args": ["--config", "/etc/nats-config/nats.conf"],
                                               "ports": [{"containerPort": 4222, "name": "client"}, {"containerPort": 8222, "name": "management"},
                                                         {"containerPort": 6222, "name": "cluster"}],
                                               "env": [{"name": "NATS_TOKEN", "valueFrom": {"secretKeyRef": {"name": "nats-auth-secret", "key": "token"}}}],
                                               "volumeMounts": [{"name": "nats-config-volume", "mountPath": "/etc/nats-config", "readOnly": True}]}]}}}})
    standin.seed({"apiVersion": "v1", "kind": "Service",
                  "metadata": {"name": f"eevee-{name}-nats", "namespace": NAMESPACE, "ownerReferences": own},
                  "spec": {"type": "ClusterIP", "selector": labels,
                           "ports": [{"name": "client", "port": 4222, "targetPort": 4222, "protocol": "TCP"},
                                     {"name": "management", "port": 8222, "targetPort": 8222, "protocol": "TCP"},
                                     {"name": "cluster", "port": 6222, "targetPort": 6222, "protocol": "TCP"}]}})


def seed_module_as_the_eevee_operator(standin, bm, *, selector_value=None):
    name, spec = bm["metadata"]["name"], bm["spec"]
    deployment = f"eevee-{name}-module"
    selected = {"eevee.bot/module": selector_value or name}
    env = [{"name": "NAMESPACE", "value": NAMESPACE}, {"name": "RESOURCE_NAME", "value": name},
           {"name": "NATS_HOST", "valueFrom": {"secretKeyRef": {"name": "nats-auth-secret", "key": "host"}}},
           {"name": "NATS_TOKEN", "valueFrom": {"secretKeyRef": {"name": "nats-auth-secret", "key": "token"}}},
           {"name": "EEVEE_OPERATOR_API_TOKEN", "value": "a-literal-token-in-the-pod-spec"}]
    volumes, mounts = [], []
    if "persistentVolumeClaim" in spec:
        standin.seed({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                      "metadata": {"name": f"{deployment}-pvc", "namespace": NAMESPACE, "annotations": {"data": "precious"}},
                      "spec": copy.deepcopy(spec["persistentVolumeClaim"])})
        volumes.append({"name": "module-data", "persistentVolumeClaim": {"claimName": f"{deployment}-pvc"}})
        mounts.append({"name": "module-data", "mountPath": "/data"})
        env.append({"name": "MODULE_DATA", "value": "/data"})
    if "moduleConfig" in spec:
        standin.seed({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{deployment}-config", "namespace": NAMESPACE},
                      "data": {"config.yaml": spec["moduleConfig"]}})
        volumes.append({"name": "module-config", "configMap": {"name": f"{deployment}-config"}})
        mounts.append({"name": "module-config", "mountPath": "/etc/module-config"})
        env.append({"name": "MODULE_CONFIG_PATH", "value": "/etc/module-config/config.yaml"})
    probe = {"httpGet": {"path": "/health", "port": spec.get("metricsPort", 9000)}, "initialDelaySeconds": 10, "periodSeconds": 30}
    standin.seed({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": deployment, "namespace": NAMESPACE},
                  "spec": {"replicas": spec.get("size", 1), "selector": {"matchLabels": selected},
                           "template": {"metadata": {"labels": {"app": "eevee.bot", **selected}},
                                        "spec": {"volumes": volumes, "containers": [{
                                            "name": "module", "image": spec["image"], "imagePullPolicy": "Always", "env": env,
                                            "envFrom": [], "ports": [{"name": "metrics", "containerPort": 8080, "protocol": "TCP"}],
                                            "volumeMounts": mounts, "livenessProbe": probe, "readinessProbe": probe}]}}}})


def test_a_bot_run_by_the_eevee_operator_is_taken_over_and_loses_nothing(cluster, start_operator, standin):
    bus = cluster.create(ipc("eevee-bot", nats={"managed": {"enabled": True, "image": "docker.io/nats:latest"},
                                                "token": {"generate": True, "secretKeyRef": {"secret": {"name": "nats-auth-secret"}, "key": "token"}}}))
    modules = {
        "echo": module("echo", ipcConfig="eevee-bot", pullPolicy="Always", moduleConfig="ratelimit:\n  limit: 5\n"),
        "seen": module("seen", ipcConfig="eevee-bot", metrics=True, metricsPort=8080, persistentVolumeClaim=CLAIM,
                       moduleConfig="ratelimit:\n  limit: 5\n"),
        "connector-irc-wetfish": module("connector-irc-wetfish", moduleName="irc", ipcConfig="eevee-bot", metrics=True, metricsPort=8080),
        "connector-irc-libera": module("connector-irc-libera", moduleName="irc", ipcConfig="eevee-bot", metrics=True, metricsPort=8080),
        "legacy": module("legacy", ipcConfig="eevee-bot"),
    }
    created = {name: cluster.create(resource) for name, resource in modules.items()}
    seed_ipc_as_the_eevee_operator(standin, bus)
    for name, resource in created.items():
        seed_module_as_the_eevee_operator(standin, resource, selector_value="true" if name == "legacy" else None)
    before = {d.metadata.name: d.metadata.uid for d in cluster.apps.list_namespaced_deployment(NAMESPACE).items}
    claim_uid = cluster.core.read_namespaced_persistent_volume_claim("eevee-seen-module-pvc", NAMESPACE).metadata.uid

    service = start_operator(poll_interval=0.5)
    for name in modules:
        eventually(lambda n=name: cluster.ready("BotModule", n), timeout=30, message=f"{name} ready")
    eventually(lambda: cluster.ready("IpcConfig", "eevee-bot"), timeout=30)
    wait_passes(service, 2)

    # Nothing lost: the same token, the same claim with its data, no duplicates.
    token = cluster.core.read_namespaced_secret("nats-auth-secret", NAMESPACE)
    assert base64.b64decode(token.data["token"]).decode() == TOKEN
    assert base64.b64decode(token.data["host"]).decode() == f"eevee-eevee-bot-nats.{NAMESPACE}.svc"
    claim = cluster.core.read_namespaced_persistent_volume_claim("eevee-seen-module-pvc", NAMESPACE)
    assert claim.metadata.uid == claim_uid and claim.metadata.annotations["data"] == "precious"
    after = {d.metadata.name: d for d in cluster.apps.list_namespaced_deployment(NAMESPACE).items}
    assert set(after) == set(before)

    # Adopted in place, exactly as rendered, with one template change at most.
    for name in ("echo", "seen", "connector-irc-wetfish", "connector-irc-libera"):
        dep = cluster.deployment(f"eevee-{name}-module")
        assert dep["metadata"]["uid"] == before[f"eevee-{name}-module"], name
        assert dep["metadata"]["generation"] == 2, name  # created by 2.3, then one patch: one rollout
        assert dep["spec"]["selector"] == {"matchLabels": {"eevee.bot/module": name}}
        pod = dep["spec"]["template"]
        assert pod["metadata"]["labels"]["app"] == "eevee.bot" and pod["metadata"]["labels"]["eevee.bot/module"] == name
        container = pod["spec"]["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        assert "EEVEE_OPERATOR_API_TOKEN" not in env  # the literal token is gone from the pod spec
        assert env["NATS_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "nats-auth-secret", "key": "token"}
        assert env["NATS_HOST"]["value"] == f"eevee-eevee-bot-nats.{NAMESPACE}.svc"
        assert dep["metadata"]["ownerReferences"][0]["uid"] == created[name]["metadata"]["uid"]
    seen = cluster.deployment("eevee-seen-module")["spec"]["template"]["spec"]
    assert {v["name"] for v in seen["volumes"]} == {"module-data", "module-config"}
    assert {(m["name"], m["mountPath"]) for m in seen["containers"][0]["volumeMounts"]} == {
        ("module-data", "/data"), ("module-config", "/etc/module-config")}
    assert [p["name"] for p in seen["containers"][0]["ports"]] == ["metrics"]
    echo = cluster.deployment("eevee-echo-module")["spec"]["template"]["spec"]["containers"][0]
    assert "ports" not in echo and "livenessProbe" not in echo  # metrics off: no port, no default probe

    # Two modules that share moduleName: irc select only their own pods.
    wetfish, libera = (cluster.deployment(f"eevee-connector-irc-{n}-module") for n in ("wetfish", "libera"))
    assert wetfish["spec"]["selector"] != libera["spec"]["selector"]
    for one, other in ((wetfish, libera), (libera, wetfish)):
        selector = one["spec"]["selector"]["matchLabels"].items()
        assert not selector <= other["spec"]["template"]["metadata"]["labels"].items()

    # The older operator's selector ("true") cannot change in place: re-created once.
    legacy = cluster.deployment("eevee-legacy-module")
    assert legacy["metadata"]["uid"] != before["eevee-legacy-module"]
    assert legacy["spec"]["selector"] == {"matchLabels": {"eevee.bot/module": "legacy"}}

    # NATS: adopted in place, its own container, volume and ports gone; the Service likewise.
    nats = cluster.deployment("eevee-eevee-bot-nats")
    assert nats["metadata"]["uid"] == before["eevee-eevee-bot-nats"]
    assert [c["name"] for c in nats["spec"]["template"]["spec"]["containers"]] == ["nats"]
    assert "volumes" not in nats["spec"]["template"]["spec"]
    service_ports = cluster.core.read_namespaced_service("eevee-eevee-bot-nats", NAMESPACE).spec.ports
    assert sorted(p.name for p in service_ports) == ["client", "monitoring"]

    # And from then on, steady: no write at all.
    mark = standin.log.mark()
    wait_passes(service, 3)
    assert [w for w in standin.log.writes(mark) if w.resource != "leases"] == []


def test_changing_module_name_works(cluster, operator):
    cluster.create(module("connector", moduleName="irc"))
    eventually(lambda: cluster.ready("BotModule", "connector"))
    uid = cluster.deployment("eevee-connector-module")["metadata"]["uid"]
    cluster.patch("BotModule", "connector", {"spec": {"moduleName": "discord"}})
    eventually(lambda: cluster.deployment("eevee-connector-module")["spec"]["template"]["metadata"]["labels"]["eevee.bot/module-name"] == "discord")
    dep = cluster.deployment("eevee-connector-module")
    assert dep["metadata"]["uid"] == uid  # the selector is the BotModule's name: nothing immutable changed
    env = {e["name"]: e.get("value") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["RESOURCE_NAME"] == "discord"
    eventually(lambda: cluster.ready("BotModule", "connector"))


def test_module_pods_roll_when_their_token_is_replaced(cluster, start_operator):
    """An IpcConfig deleted and created again makes a new token Secret (the old one is garbage
    collected with it): every module using it must roll, or its pods keep a stale token."""
    start_operator(poll_interval=0.5)
    cluster.create(ipc("bus"))
    cluster.create(module("echo", ipcConfig="bus"))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    key = "eevee.bot/nats-token-uid"

    def token_uid():
        return cluster.deployment("eevee-echo-module")["spec"]["template"]["metadata"]["annotations"][key]

    first = token_uid()
    assert first == cluster.core.read_namespaced_secret("bus-nats-token", NAMESPACE).metadata.uid
    cluster.delete("IpcConfig", "bus")
    eventually(lambda: not cluster.exists("Secret", "bus-nats-token"))
    cluster.create(ipc("bus"))
    eventually(lambda: cluster.exists("Secret", "bus-nats-token"))
    eventually(lambda: token_uid() == cluster.core.read_namespaced_secret("bus-nats-token", NAMESPACE).metadata.uid)
    assert token_uid() != first
    eventually(lambda: cluster.ready("BotModule", "echo"))
