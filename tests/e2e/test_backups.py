"""Backups: S3Store, BackupSchedule and the CronJob each BotModule that names a schedule gets.

Everything runs over real HTTP against the stand-in, which serves batch/v1 CronJobs as a
real API server does (defaults, the 52-character name limit, the cron syntax check, one
controller per object), and S3Stores point at a real S3 server (moto, tests/s3_server.py);
the operator polls every 30 s here, so whatever happens "within seconds" comes from watches
and from following what a rendering read, not from a pass.
"""

from __future__ import annotations

import base64
import copy

from kubernetes import client

from eevee.kube.config import kubeconfig_connection
from eevee.manifests import read_manifests
from eevee.service import OperatorService
from tests.conftest import NAMESPACE, ROOT, eventually
from tests.operator_fixtures import Cluster, module, operator_settings
from tests.s3_server import S3Server

PVC = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
ACCESS_ID, SECRET_KEY = "AKIAEEVEETEST", "s3cr3t-value-never-shown"


def credentials(name="s3-creds", access_id=ACCESS_ID, secret_key=SECRET_KEY, s3: S3Server | None = None):
    if s3 is not None:
        access_id, secret_key = s3.access_id, s3.secret_key
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NAMESPACE},
            "data": {"access-id": base64.b64encode(access_id.encode()).decode(),
                     "secret-key": base64.b64encode(secret_key.encode()).decode()}}


def store(name="minio", secret="s3-creds", s3: S3Server | None = None, **spec):
    """An S3Store; given a server, one of its buckets (a new one each time)."""
    if s3 is not None:
        spec = {"endpoint": s3.endpoint, "bucket": s3.bucket(), **spec}
    return {"apiVersion": "eevee.bot/v1", "kind": "S3Store", "metadata": {"name": name},
            "spec": {"endpoint": "http://127.0.0.1:9", "bucket": "eevee-backups", "prefix": "prod/",
                     "accessId": {"secretKeyRef": {"secret": {"name": secret}, "key": "access-id"}},
                     "accessKey": {"secretKeyRef": {"secret": {"name": secret}, "key": "secret-key"}}, **spec}}


def schedule(name="nightly", store_name="minio", **spec):
    return {"apiVersion": "eevee.bot/v1", "kind": "BackupSchedule", "metadata": {"name": name},
            "spec": {"schedule": "0 3 * * *", "s3Store": {"name": store_name},
                     "image": "ghcr.io/eeveebot/backupjob:1.0.0", **spec}}


def cronjob(cluster, name):
    return cluster.read("CronJob", name)


def env_of(job):
    container = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def backed_up(cluster, name):
    condition = cluster.condition("BotModule", name, "BackupScheduled")
    return condition if condition.get("status") == "True" else None


def test_a_module_naming_a_schedule_gets_a_cronjob_with_the_backup_image_contract(cluster, operator, standin, s3_server):
    standin.seed(credentials(s3=s3_server))
    cluster.create(store(s3=s3_server))
    cluster.create(schedule())
    made = cluster.create(module("irc", persistentVolumeClaim=PVC, backupSchedule={"name": "nightly"}))
    eventually(lambda: backed_up(cluster, "irc"), timeout=10)
    assert cluster.ready("S3Store", "minio")["reason"] == "ConnectionSuccessful"
    bucket = cluster.get("S3Store", "minio")["spec"]["bucket"]
    ready = eventually(lambda: cluster.ready("BackupSchedule", "nightly"), timeout=5)
    assert ready["reason"] == "Scheduled"
    eventually(lambda: cluster.ready("BotModule", "irc"))

    job = cronjob(cluster, "nightly-irc-backup")  # the eevee operator's name for it
    assert job["spec"]["schedule"] == "0 3 * * *"
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    assert job["metadata"]["ownerReferences"] == [
        {"apiVersion": "eevee.bot/v1", "kind": "BotModule", "name": "irc", "uid": made["metadata"]["uid"],
         "controller": True, "blockOwnerDeletion": True}]
    spec = job["spec"]["jobTemplate"]["spec"]
    assert spec["backoffLimit"] == 2 and spec["activeDeadlineSeconds"] == 3600
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert spec["template"]["metadata"]["labels"]["eevee.bot/backup-of"] == "irc"
    assert "eevee.bot/module" not in spec["template"]["metadata"]["labels"]  # never selected as the module's pod
    container = pod["containers"][0]
    assert container["command"] == ["/usr/local/bin/backup.sh"]
    assert container["image"] == "ghcr.io/eeveebot/backupjob:1.0.0" and container["imagePullPolicy"] == "IfNotPresent"
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["DAC_OVERRIDE"]}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert {m["name"]: (m["mountPath"], m.get("readOnly")) for m in container["volumeMounts"]} == {
        "module-data": ("/data", True), "tmp": ("/tmp", None)}
    assert {v["name"]: v.get("persistentVolumeClaim") for v in pod["volumes"]}["module-data"] == {
        "claimName": "eevee-irc-module-pvc"}
    assert env_of(job) == {
        "S3_ENDPOINT": s3_server.endpoint, "S3_BUCKET": bucket, "S3_PREFIX": "prod/",
        "S3_PATH_STYLE": "false", "S3_SIGNATURE_V2": "false", "BACKUP_NAMESPACE": NAMESPACE,
        "BACKUP_MODULE": "irc", "BACKUP_PVC_PATH": "/data",
        "S3_ACCESS_ID": {"secretKeyRef": {"name": "s3-creds", "key": "access-id"}},
        "S3_SECRET_KEY": {"secretKeyRef": {"name": "s3-creds", "key": "secret-key"}},
    }
    # The credentials are only ever referenced, never copied anywhere the operator writes.
    for text in (str(job), str(cluster.get("S3Store", "minio")), str(cluster.get("BotModule", "irc")),
                 str(cluster.events("irc")), str(cluster.events("minio"))):
        assert s3_server.secret_key not in text and s3_server.access_id not in text


def test_changes_to_the_store_the_schedule_or_the_module_reach_the_cronjob_within_seconds(cluster, operator, standin, s3_server):
    standin.seed(credentials(s3=s3_server))
    cluster.create(store(s3=s3_server))
    cluster.create(schedule())
    cluster.create(module("irc", persistentVolumeClaim=PVC, backupSchedule={"name": "nightly"}))
    eventually(lambda: backed_up(cluster, "irc"))

    cluster.patch("S3Store", "minio", {"spec": {"bucket": "other-bucket", "pathStyle": True}})
    eventually(lambda: env_of(cronjob(cluster, "nightly-irc-backup"))["S3_BUCKET"] == "other-bucket", timeout=5)
    assert env_of(cronjob(cluster, "nightly-irc-backup"))["S3_PATH_STYLE"] == "true"
    cluster.patch("BackupSchedule", "nightly", {"spec": {"schedule": "@hourly", "image": "ghcr.io/eeveebot/backupjob:1.0.1"}})
    eventually(lambda: cronjob(cluster, "nightly-irc-backup")["spec"]["schedule"] == "@hourly", timeout=5)

    # The module stops naming the schedule: its CronJob goes, and so does the condition.
    cluster.patch("BotModule", "irc", {"spec": {"backupSchedule": None}})
    eventually(lambda: cronjob(cluster, "nightly-irc-backup") is None, timeout=5)
    eventually(lambda: cluster.condition("BotModule", "irc", "BackupScheduled") == {}, timeout=5)
    # ... and names another one.
    cluster.create(schedule("weekly", schedule="0 4 * * 0"))
    cluster.patch("BotModule", "irc", {"spec": {"backupSchedule": {"name": "weekly"}}})
    eventually(lambda: cronjob(cluster, "weekly-irc-backup"), timeout=5)
    # The schedule is deleted: nobody's CronJob of it stays.
    cluster.delete("BackupSchedule", "weekly")
    eventually(lambda: cronjob(cluster, "weekly-irc-backup") is None, timeout=5)
    eventually(lambda: cluster.condition("BotModule", "irc", "BackupScheduled")["reason"] == "ScheduleNotFound")
    eventually(lambda: cluster.ready("BotModule", "irc"))


def test_a_missing_schedule_or_volume_never_holds_up_the_module(cluster, operator, standin, s3_server):
    standin.seed(credentials(s3=s3_server))
    cluster.create(store(s3=s3_server))
    cluster.create(module("irc", backupSchedule={"name": "nightly"}))  # no volume, no such schedule
    eventually(lambda: cluster.ready("BotModule", "irc"))
    condition = eventually(lambda: cluster.condition("BotModule", "irc", "BackupScheduled") or None)
    assert (condition["status"], condition["reason"]) == ("False", "NoVolume")
    assert "spec.persistentVolumeClaim" in condition["message"]

    cluster.patch("BotModule", "irc", {"spec": {"persistentVolumeClaim": PVC}})
    eventually(lambda: cluster.condition("BotModule", "irc", "BackupScheduled").get("reason") == "ScheduleNotFound")
    assert "spec.backupSchedule.name" in cluster.condition("BotModule", "irc", "BackupScheduled")["message"]
    eventually(lambda: cluster.ready("BotModule", "irc"))
    assert cronjob(cluster, "nightly-irc-backup") is None

    cluster.create(schedule())  # the schedule appears: the module's CronJob follows within seconds
    eventually(lambda: backed_up(cluster, "irc"), timeout=5)
    assert cronjob(cluster, "nightly-irc-backup") is not None


def test_a_cronjob_name_over_52_characters_is_refused_on_the_module_not_sent(cluster, operator, standin, s3_server):
    standin.seed(credentials(s3=s3_server))
    cluster.create(store(s3=s3_server))
    cluster.create(schedule("a-very-long-backup-schedule-name-of-forty"))
    cluster.create(module("irc-connector", persistentVolumeClaim=PVC,
                          backupSchedule={"name": "a-very-long-backup-schedule-name-of-forty"}))
    condition = eventually(lambda: cluster.condition("BotModule", "irc-connector", "BackupScheduled") or None)
    assert (condition["status"], condition["reason"]) == ("False", "NameTooLong")
    assert "spec.backupSchedule.name" in condition["message"] and "52" in condition["message"]
    eventually(lambda: cluster.ready("BotModule", "irc-connector"))
    batch = client.BatchV1Api(cluster.api)
    assert batch.list_namespaced_cron_job(NAMESPACE).items == []
    # Nothing the API server would refuse was sent.
    assert not [r for r in standin.log.entries(0) if r.resource == "cronjobs" and r.code >= 400]


def test_a_store_without_its_secret_is_not_ready_and_its_schedule_says_so_until_it_appears(cluster, start_operator, standin, s3_server):
    # A user's Secret is not one of the operator's children, so it is not watched (that would
    # hold every Secret of the namespace, Helm's releases included): it is read at each pass.
    start_operator(poll_interval=1.0)
    cluster.create(store(s3=s3_server))
    cluster.create(schedule())
    not_found = eventually(lambda: cluster.condition("S3Store", "minio").get("reason") == "ReferenceNotFound"
                           and cluster.condition("S3Store", "minio"))
    assert "spec.accessId.secretKeyRef.secret.name" in not_found["message"]
    waiting = eventually(lambda: cluster.condition("BackupSchedule", "nightly").get("reason") == "S3StoreNotReady"
                         and cluster.condition("BackupSchedule", "nightly"))
    assert waiting["status"] == "False" and "S3Store minio is not ready" in waiting["message"]

    standin.seed(credentials(s3=s3_server))  # the Secret is created: the store at the next pass, its schedule with it
    eventually(lambda: cluster.ready("S3Store", "minio"), timeout=10)
    eventually(lambda: cluster.ready("BackupSchedule", "nightly"), timeout=5)

    broken = copy.deepcopy(credentials(s3=s3_server))
    del broken["data"]["secret-key"]
    cluster.core.replace_namespaced_secret("s3-creds", NAMESPACE, broken)
    missing = eventually(lambda: cluster.condition("S3Store", "minio").get("reason") == "InvalidSpec"
                         and cluster.condition("S3Store", "minio"))
    assert "spec.accessKey.secretKeyRef.key" in missing["message"]


def test_the_eevee_operators_cronjob_is_taken_over(cluster, standin, start_operator, s3_server):
    """The CronJob as the eevee operator 2.3 made it: controlled by the BackupSchedule, no
    labels, restartPolicy OnFailure, no deadline. Ours takes it over in place."""
    standin.seed(credentials(s3=s3_server))
    cluster.create(store(s3=s3_server))
    made = cluster.create(schedule())
    cluster.create(module("irc", persistentVolumeClaim=PVC, backupSchedule={"name": "nightly"}))
    owner = {"apiVersion": "eevee.bot/v1", "kind": "BackupSchedule", "name": "nightly",
             "uid": made["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
    standin.seed({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "nightly-irc-backup", "namespace": NAMESPACE, "ownerReferences": [owner]},
        "spec": {"schedule": "0 3 * * *", "concurrencyPolicy": "Forbid", "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "OnFailure",
            "containers": [{"name": "backup", "image": "ghcr.io/eeveebot/backupjob:1.0.0",
                            "command": ["/usr/local/bin/backup.sh"],
                            "env": [{"name": "S3_ENDPOINT", "value": "https://old.example.com"}]}],
            "volumes": [{"name": "module-data", "persistentVolumeClaim": {"claimName": "eevee-irc-module-pvc"}}]}}}}},
    })
    before = cronjob(cluster, "nightly-irc-backup")["metadata"]["uid"]
    start_operator()
    eventually(lambda: backed_up(cluster, "irc"))
    job = cronjob(cluster, "nightly-irc-backup")
    assert job["metadata"]["uid"] == before  # the same object, not a new one
    assert [r["kind"] for r in job["metadata"]["ownerReferences"]] == ["BotModule"]
    assert job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert env_of(job)["S3_ENDPOINT"] == s3_server.endpoint
    assert job["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "eevee-operator"


def test_without_the_backup_crds_modules_run_as_before(standin):
    """An operator upgraded before its CRDs (Helm never upgrades CRDs): the backup kinds are not
    served, and every module still runs; the missing kinds are named, not fatal."""
    for crd in read_manifests([ROOT / "crds"]):
        if crd["metadata"]["name"] in ("botmodules.eevee.bot", "ipcconfigs.eevee.bot"):
            standin.seed(crd)
    cluster = Cluster(standin)
    service = OperatorService(operator_settings(), connection=kubeconfig_connection(standin.kubeconfig)).start()
    try:
        cluster.create(module("irc", persistentVolumeClaim=PVC, backupSchedule={"name": "nightly"}))
        eventually(lambda: cluster.ready("BotModule", "irc"))
        condition = eventually(lambda: cluster.condition("BotModule", "irc", "BackupScheduled") or None)
        assert condition["reason"] == "ScheduleNotFound"
        assert {"S3Store", "BackupSchedule", "BackupRestore"} <= set(service.runner.snapshot.unavailable)
    finally:
        service.stop()
