"""BackupRestore: one restore Job, of the named or the latest backup, run once.

The latest backup is looked up in a real S3 server (moto) holding keys as the backup image
writes them. The test plays the Job controller: it marks the Job Complete or Failed through
the status subresource, as a real one would once the pod ended.
"""

from __future__ import annotations

from kubernetes import client

from eevee.timestamps import rfc3339_now as now
from tests.conftest import NAMESPACE, eventually
from tests.e2e.test_backups import PVC, credentials, store
from tests.operator_fixtures import module

RESTORE_CAPABILITIES = {"drop": ["ALL"], "add": ["CHOWN", "DAC_OVERRIDE", "FOWNER"]}


def restore(name="bring-back", module_name="irc", **spec):
    return {"apiVersion": "eevee.bot/v1", "kind": "BackupRestore", "metadata": {"name": name},
            "spec": {"botModule": {"name": module_name}, "s3Store": {"name": "minio"},
                     "image": "ghcr.io/eeveebot/backupjob:1.0.0", **spec}}


def job(cluster, name="bring-back-restore"):
    return cluster.read("Job", name)


def finish(cluster, outcome, name="bring-back-restore"):
    """What the Job controller writes when the pod ended."""
    condition = {"type": outcome, "status": "True", "lastTransitionTime": now(),
                 "reason": "BackoffLimitExceeded" if outcome == "Failed" else "Completed",
                 "message": "Job has reached the specified backoff limit" if outcome == "Failed" else ""}
    status = {"conditions": [condition], "startTime": now()}
    status["succeeded" if outcome == "Complete" else "failed"] = 1
    client.BatchV1Api(cluster.api).patch_namespaced_job_status(name, NAMESPACE, {"status": status})


def env_of(found):
    container = found["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def condition(cluster, name="bring-back"):
    return cluster.condition("BackupRestore", name)


def reason_is(cluster, reason, name="bring-back"):
    found = condition(cluster, name)
    return found if found.get("reason") == reason else None


def backed_up_store(cluster, standin, s3, wait=True):
    """Credentials, a Ready S3Store, and backups of module irc as the backup image keys them."""
    standin.seed(credentials(s3=s3))
    made = store(s3=s3)
    bucket = made["spec"]["bucket"]
    for key in ("a0c1-old", "b7e2-new"):
        s3.put(bucket, f"prod/{NAMESPACE}/irc/{key}.tar.gz")
    s3.put(bucket, f"prod/{NAMESPACE}/irc/nested/zzzz.tar.gz")  # not a backup of this module
    s3.put(bucket, f"prod/{NAMESPACE}/irc/notes.txt")
    s3.put(bucket, f"prod/{NAMESPACE}/irc-other/zzzz.tar.gz")  # another module's
    cluster.create(made)
    if wait:
        eventually(lambda: cluster.ready("S3Store", "minio"), timeout=15)
    return bucket


def test_the_latest_backup_is_restored_once(cluster, operator, standin, s3_server):
    bucket = backed_up_store(cluster, standin, s3_server)
    cluster.create(module("irc", persistentVolumeClaim=PVC, volumeMountPath="/var/lib/irc"))
    made = cluster.create(restore(cleanRestore=True))
    found = eventually(lambda: job(cluster), timeout=15)
    assert env_of(found) == {
        "S3_ENDPOINT": s3_server.endpoint, "S3_BUCKET": bucket, "S3_PREFIX": "prod/", "S3_PATH_STYLE": "false",
        "S3_SIGNATURE_V2": "false", "RESTORE_NAMESPACE": NAMESPACE, "RESTORE_MODULE": "irc",
        "RESTORE_BACKUP_ID": "b7e2-new", "BACKUP_PVC_PATH": "/var/lib/irc", "RESTORE_CLEAN": "true",
        "S3_ACCESS_ID": {"secretKeyRef": {"name": "s3-creds", "key": "access-id"}},
        "S3_SECRET_KEY": {"secretKeyRef": {"name": "s3-creds", "key": "secret-key"}},
    }
    spec = found["spec"]
    assert (spec["backoffLimit"], spec["activeDeadlineSeconds"], spec["ttlSecondsAfterFinished"]) == (1, 3600, 86400)
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    assert pod["containers"][0]["command"] == ["/usr/local/bin/restore.sh"]
    assert pod["containers"][0]["securityContext"]["capabilities"] == RESTORE_CAPABILITIES
    assert {v["name"]: v.get("persistentVolumeClaim") for v in pod["volumes"]}["module-data"] == {
        "claimName": "eevee-irc-module-pvc"}
    assert spec["template"]["metadata"]["labels"]["eevee.bot/restore-of"] == "irc"
    assert found["metadata"]["ownerReferences"][0]["uid"] == made["metadata"]["uid"]
    eventually(lambda: reason_is(cluster, "Running"))

    finish(cluster, "Complete")
    done = eventually(lambda: cluster.ready("BackupRestore", "bring-back"), timeout=5)
    assert done["reason"] == "Succeeded" and "b7e2-new" in done["message"]
    assert cluster.get("BackupRestore", "bring-back")["status"]["outcome"] == "Succeeded"

    # Its TTL removes the Job; an edit afterwards does not run the restore again.
    client.BatchV1Api(cluster.api).delete_namespaced_job("bring-back-restore", NAMESPACE)
    eventually(lambda: job(cluster) is None)
    edited = cluster.patch("BackupRestore", "bring-back", {"spec": {"backupId": "a0c1-old"}})
    eventually(lambda: cluster.get("BackupRestore", "bring-back")["status"]["observedGeneration"]
               == edited["metadata"]["generation"])
    assert job(cluster) is None
    assert cluster.ready("BackupRestore", "bring-back")["reason"] == "Succeeded"


def test_no_backup_yet_waits_and_an_edit_naming_one_is_taken(cluster, operator, standin, s3_server):
    standin.seed(credentials(s3=s3_server))
    cluster.create(store(s3=s3_server))  # an empty bucket
    cluster.create(module("irc", persistentVolumeClaim=PVC))
    cluster.create(restore())
    waiting = eventually(lambda: reason_is(cluster, "NoBackupsFound"), timeout=15)
    assert waiting["status"] == "False" and "module irc" in waiting["message"]
    assert job(cluster) is None
    cluster.patch("BackupRestore", "bring-back", {"spec": {"backupId": "c3d4-given"}})  # re-evaluated
    found = eventually(lambda: job(cluster), timeout=5)
    assert env_of(found)["RESTORE_BACKUP_ID"] == "c3d4-given"


def test_a_failed_restore_says_so_and_is_not_run_again(cluster, operator, standin, s3_server):
    backed_up_store(cluster, standin, s3_server)
    cluster.create(module("irc", persistentVolumeClaim=PVC))
    cluster.create(restore(backupId="a0c1-old"))
    eventually(lambda: job(cluster), timeout=15)
    finish(cluster, "Failed")
    failed = eventually(lambda: reason_is(cluster, "Failed"), timeout=5)
    assert failed["status"] == "False" and "backoff limit" in failed["message"]
    client.BatchV1Api(cluster.api).delete_namespaced_job("bring-back-restore", NAMESPACE)
    edited = cluster.patch("BackupRestore", "bring-back", {"spec": {"cleanRestore": True}})
    eventually(lambda: cluster.get("BackupRestore", "bring-back")["status"]["observedGeneration"]
               == edited["metadata"]["generation"])
    assert job(cluster) is None and reason_is(cluster, "Failed")


def test_a_module_without_a_volume_or_a_store_not_ready_makes_no_job(cluster, operator, standin, s3_server):
    cluster.create(store(s3=s3_server))  # its credentials Secret does not exist
    cluster.create(module("irc"))
    cluster.create(restore())
    no_volume = eventually(lambda: reason_is(cluster, "NoVolume"))
    assert "spec.persistentVolumeClaim" in no_volume["message"]
    cluster.patch("BotModule", "irc", {"spec": {"persistentVolumeClaim": PVC}})
    not_ready = eventually(lambda: reason_is(cluster, "S3StoreNotReady"), timeout=5)
    assert "S3Store minio is not ready" in not_ready["message"]
    assert job(cluster) is None


def test_a_restore_the_eevee_operator_finished_is_not_run_again(cluster, standin, start_operator, s3_server):
    backed_up_store(cluster, standin, s3_server, wait=False)
    cluster.create(module("irc", persistentVolumeClaim=PVC))
    cluster.create(restore(backupId="a0c1-old"))
    # Its status as the eevee operator 2.3 left it: one Ready condition, reason Succeeded.
    cluster.custom.patch_namespaced_custom_object_status(
        "eevee.bot", "v1", NAMESPACE, "backuprestores", "bring-back",
        {"status": {"conditions": [{"type": "Ready", "status": "True", "reason": "Succeeded",
                                    "message": "Restore Job bring-back-restore succeeded",
                                    "lastTransitionTime": now(), "observedGeneration": 1}]}})
    start_operator()
    eventually(lambda: cluster.ready("S3Store", "minio"), timeout=15)
    eventually(lambda: cluster.get("BackupRestore", "bring-back")["status"].get("outcome") == "Succeeded")
    assert job(cluster) is None
