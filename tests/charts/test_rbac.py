"""The chart's RBAC grants every verb the operator uses, and nothing beyond.

The operator runs a scenario that takes every code path that talks to the API
(creating, adopting what exists already, re-reading after conflicts, patching,
pruning, status, events, the Lease, the HTTP API's restart); what it asked the
stand-in for is compared with what the rendered chart grants.
"""

from __future__ import annotations

import urllib3

from eevee.kube.client import USER_AGENT
from tests.charts.helm import render
from tests.conftest import NAMESPACE, eventually
from tests.e2e.test_backup_restore import restore
from tests.e2e.test_backups import credentials, schedule, store
from tests.operator_fixtures import API_TOKEN, ipc, module

# Granted without the operator calling it: setting ownerReferences with blockOwnerDeletion
# needs update on <owner>/finalizers where OwnerReferencesPermissionEnforcement is on.
JUSTIFIED_EXTRAS = {("eevee.bot", f"{plural}/finalizers", "update") for plural in ("botmodules", "ipcconfigs", "backuprestores")}


def granted(objects):
    rules = set()
    for obj in objects:
        if obj["kind"] in ("Role", "ClusterRole"):
            for rule in obj["rules"]:
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        for verb in rule["verbs"]:
                            rules.add((group, resource, verb))
    return rules


def test_rbac_grants_exactly_what_the_operator_calls(cluster, start_operator, standin, s3_server):
    seed = standin.seed
    # Objects with the children's names, made before the operator: creating them is 409
    # AlreadyExists, then the operator reads and adopts them.
    seed({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "eevee-echo-module-config", "namespace": NAMESPACE}})
    bus = cluster.create(ipc())  # its token Secret as the eevee operator 2.3 made it: owned by the IpcConfig
    owner = {"apiVersion": "eevee.bot/v1", "kind": "IpcConfig", "name": "bus", "uid": bus["metadata"]["uid"], "controller": True}
    seed({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bus-nats-token", "namespace": NAMESPACE, "ownerReferences": [owner]},
          "data": {"token": "dG9rZW4="}})
    seed({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "eevee-echo-module-pvc", "namespace": NAMESPACE},
          "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}})
    seed({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "eevee-bus-nats", "namespace": NAMESPACE},
          "spec": {"ports": [{"name": "client", "port": 4222}]}})
    # Backups: an S3Store, its credentials, a schedule, and a CronJob made before the operator (adopted);
    # a restore, its Job made before the operator (adopted: read, then patched).
    seed(credentials(s3=s3_server))
    cluster.create(store(s3=s3_server))
    cluster.create(schedule())
    made = cluster.create(restore(module_name="echo", backupId="a0c1-old"))
    owner = {"apiVersion": "eevee.bot/v1", "kind": "BackupRestore", "name": "bring-back", "uid": made["metadata"]["uid"], "controller": True}
    seed({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "bring-back-restore", "namespace": NAMESPACE, "ownerReferences": [owner]},
          "spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "restore", "image": "ghcr.io/eeveebot/backupjob:1.0.0"}]}}}})
    seed({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "nightly-echo-backup", "namespace": NAMESPACE},
          "spec": {"schedule": "0 3 * * *", "jobTemplate": {"spec": {"template": {"spec": {
              "restartPolicy": "OnFailure", "containers": [{"name": "backup", "image": "ghcr.io/eeveebot/backupjob:1.0.0"}]}}}}}})
    standin.faults.inject(verb="patch", resource="deployments", code=409, times=1)  # a conflict: re-read, patch again
    service = start_operator(poll_interval=0.3)
    mark = 0
    pvc = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    cluster.create(module("echo", moduleConfig="a: 1\n", persistentVolumeClaim=pvc, ipcConfig="bus", backupSchedule={"name": "nightly"}))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    eventually(lambda: cluster.condition("BackupRestore", "bring-back").get("reason") == "Running", timeout=15)
    cluster.patch("BotModule", "echo", {"spec": {"size": 2}})
    eventually(lambda: cluster.deployment("eevee-echo-module")["spec"]["replicas"] == 2)
    cluster.patch("BotModule", "echo", {"spec": {"moduleConfig": None, "backupSchedule": None}})  # prune the ConfigMap and the CronJob
    cluster.patch("IpcConfig", "bus", {"spec": {"nats": {"managed": {"enabled": False}}}})  # prune Deployment and Service
    eventually(lambda: not cluster.exists("Service", "eevee-bus-nats") and not cluster.exists("ConfigMap", "eevee-echo-module-config"))
    eventually(lambda: not cluster.exists("CronJob", "nightly-echo-backup"))
    http = urllib3.PoolManager()
    assert http.request("POST", service.http.url + "/bot-modules/echo/restart", headers={"Authorization": f"Bearer {API_TOKEN}"}).status == 202
    service.stop()  # releases the Lease

    used = {(r.group, r.resource, r.verb) for r in standin.log.entries(mark)
            if r.agent.startswith(USER_AGENT) and r.verb not in ("discovery", "unknown")}
    rules = granted(render())
    assert used <= rules, f"used but not granted: {sorted(used - rules)}"
    assert rules - used <= JUSTIFIED_EXTRAS, f"granted but never used: {sorted(rules - used - JUSTIFIED_EXTRAS)}"
