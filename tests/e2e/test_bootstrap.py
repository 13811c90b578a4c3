"""bootstrapFromBackup: a new module's volume gets the latest backup before its Deployment.

Backups are keys in a real S3 server (moto); the test plays the Job controller (it marks the
restore Job Complete or Failed through the status subresource).
"""

from __future__ import annotations

from kubernetes import client

from tests.conftest import NAMESPACE, eventually
from tests.e2e.test_backup_restore import backed_up_store, env_of, finish
from tests.e2e.test_backups import PVC, credentials, store
from tests.operator_fixtures import module

JOB = "eevee-irc-bootstrap-restore"


def bootstrapping(**spec):
    return module("irc", persistentVolumeClaim=PVC, bootstrapFromBackup={"s3Store": {"name": "minio"}}, **spec)


def job(cluster, name=JOB):
    return cluster.read("Job", name)


def bootstrapped(cluster, name="irc"):
    return cluster.condition("BotModule", name, "Bootstrapped")


def claim_annotations(cluster, name="eevee-irc-module-pvc"):
    found = cluster.core.read_namespaced_persistent_volume_claim(name, NAMESPACE)
    return found.metadata.annotations or {}


def starts_on_its_claim(cluster):
    """A module with bootstrapFromBackup over a claim marked bootstrapped: it starts, no restore."""
    cluster.create(bootstrapping())
    eventually(lambda: cluster.deployment("eevee-irc-module"), timeout=10)
    eventually(lambda: bootstrapped(cluster).get("reason") == "NotNeeded")
    assert job(cluster) is None


def test_a_new_module_starts_after_its_volume_is_restored_and_never_again(cluster, operator, standin, s3_server):
    backed_up_store(cluster, standin, s3_server)
    cluster.create(bootstrapping())
    found = eventually(lambda: job(cluster), timeout=15)
    env = env_of(found)
    assert env["RESTORE_BACKUP_ID"] == "b7e2-new" and env["RESTORE_MODULE"] == "irc" and "RESTORE_CLEAN" not in env
    pod = found["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "ghcr.io/eeveebot/backupjob:1.0.0"  # the pinned default
    assert pod["restartPolicy"] == "Never" and found["spec"]["backoffLimit"] == 1
    assert {v["name"]: v.get("persistentVolumeClaim") for v in pod["volumes"]}["module-data"] == {
        "claimName": "eevee-irc-module-pvc"}
    assert cluster.exists("PersistentVolumeClaim", "eevee-irc-module-pvc")
    assert cluster.deployment("eevee-irc-module") is None  # waits for the restore
    eventually(lambda: cluster.condition("BotModule", "irc").get("reason") == "Bootstrapping")
    eventually(lambda: bootstrapped(cluster).get("reason") == "Bootstrapping")

    # Waiting never holds up anything else.
    cluster.create(module("echo"))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    assert cluster.deployment("eevee-irc-module") is None

    finish(cluster, "Complete", JOB)
    eventually(lambda: cluster.deployment("eevee-irc-module"), timeout=5)
    done = eventually(lambda: bootstrapped(cluster).get("status") == "True" and bootstrapped(cluster))
    assert done["reason"] == "Restored" and "b7e2-new" in done["message"]
    eventually(lambda: cluster.ready("BotModule", "irc"))
    eventually(lambda: claim_annotations(cluster).get("eevee.bot/bootstrapped") == "true")

    # The Job's TTL removes it: no new restore, the module keeps running.
    client.BatchV1Api(cluster.api).delete_namespaced_job(JOB, NAMESPACE)
    edited = cluster.patch("BotModule", "irc", {"spec": {"size": 2}})
    eventually(lambda: cluster.deployment("eevee-irc-module")["spec"]["replicas"] == 2)
    eventually(lambda: cluster.get("BotModule", "irc")["status"]["observedGeneration"] == edited["metadata"]["generation"])
    assert job(cluster) is None
    assert bootstrapped(cluster)["reason"] == "Restored"


def test_a_running_module_is_never_restored_over(cluster, operator, standin, s3_server):
    backed_up_store(cluster, standin, s3_server)
    cluster.create(module("irc", persistentVolumeClaim=PVC))
    eventually(lambda: cluster.ready("BotModule", "irc"))
    cluster.patch("BotModule", "irc", {"spec": {"bootstrapFromBackup": {"s3Store": {"name": "minio"}}}})
    eventually(lambda: bootstrapped(cluster).get("reason") == "NotNeeded")
    eventually(lambda: claim_annotations(cluster).get("eevee.bot/bootstrapped") == "true")
    assert job(cluster) is None


def test_with_no_backup_yet_the_module_starts_empty(cluster, operator, standin, s3_server):
    standin.seed(credentials(s3=s3_server))
    cluster.create(store(s3=s3_server))  # an empty bucket
    cluster.create(bootstrapping())
    eventually(lambda: cluster.ready("BotModule", "irc"), timeout=15)
    assert bootstrapped(cluster)["status"] == "True" and job(cluster) is None


def test_a_failed_restore_keeps_the_module_stopped_until_the_job_is_deleted(cluster, operator, standin, s3_server):
    backed_up_store(cluster, standin, s3_server)
    cluster.create(bootstrapping())
    first = eventually(lambda: job(cluster), timeout=15)
    finish(cluster, "Failed", JOB)
    failed = eventually(lambda: bootstrapped(cluster).get("reason") == "BootstrapRestoreFailed" and bootstrapped(cluster))
    assert "Delete the Job to try again" in failed["message"]
    assert cluster.deployment("eevee-irc-module") is None
    client.BatchV1Api(cluster.api).delete_namespaced_job(JOB, NAMESPACE)  # try again
    second = eventually(lambda: job(cluster), timeout=5)
    assert second["metadata"]["uid"] != first["metadata"]["uid"]


def test_a_claim_the_eevee_operator_bootstrapped_is_not_restored_over(cluster, operator, standin, s3_server):
    """A claim kept after its BotModule was deleted, marked by the eevee operator 2.3."""
    backed_up_store(cluster, standin, s3_server)
    standin.seed({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                  "metadata": {"name": "eevee-irc-module-pvc", "namespace": NAMESPACE,
                               "annotations": {"eevee.bot/bootstrapped": "true"}},
                  "spec": PVC})
    starts_on_its_claim(cluster)


def test_a_name_too_long_for_the_bootstrap_job_is_refused_before_anything_is_made(cluster, operator, standin, s3_server):
    backed_up_store(cluster, standin, s3_server)
    name = "a-module-name-of-thirty-seven-letters"
    cluster.create(module(name, persistentVolumeClaim=PVC, bootstrapFromBackup={"s3Store": {"name": "minio"}}))
    refused = eventually(lambda: cluster.condition("BotModule", name).get("reason") == "InvalidSpec"
                         and cluster.condition("BotModule", name))
    assert "metadata.name" in refused["message"] and "36" in refused["message"]
    assert not cluster.exists("PersistentVolumeClaim", f"eevee-{name}-module-pvc")


def test_without_a_volume_or_a_store_the_condition_says_why(cluster, operator, standin, s3_server):
    cluster.create(module("irc", bootstrapFromBackup={"s3Store": {"name": "minio"}}))
    no_volume = eventually(lambda: bootstrapped(cluster).get("reason") == "NoVolume" and bootstrapped(cluster))
    assert "spec.persistentVolumeClaim" in no_volume["message"]
    eventually(lambda: cluster.ready("BotModule", "irc"))  # nothing to restore into: it just runs
    cluster.create(module("other", persistentVolumeClaim=PVC, bootstrapFromBackup={"s3Store": {"name": "nowhere"}}))
    missing = eventually(lambda: bootstrapped(cluster, "other").get("reason") == "S3StoreNotFound"
                         and bootstrapped(cluster, "other"))
    assert "spec.bootstrapFromBackup.s3Store.name" in missing["message"]
    assert cluster.deployment("eevee-other-module") is None  # waits until the store exists


def test_a_claim_a_backup_restore_filled_is_not_restored_over_by_a_new_module(cluster, operator, standin, s3_server):
    """As the eevee operator does (peer-backup.md 2.5): a BackupRestore that succeeded marks the
    module's claim bootstrapped; the module deleted and made again over the kept claim, now with
    bootstrapFromBackup, starts on what was restored instead of restoring the latest backup."""
    from tests.e2e.test_backup_restore import restore

    backed_up_store(cluster, standin, s3_server)
    cluster.create(module("irc", persistentVolumeClaim=PVC))
    cluster.create(restore(backupId="a0c1-old"))
    eventually(lambda: cluster.read("Job", "bring-back-restore"), timeout=15)
    assert "eevee.bot/bootstrapped" not in claim_annotations(cluster)  # not before it succeeded
    finish(cluster, "Complete")
    eventually(lambda: claim_annotations(cluster).get("eevee.bot/bootstrapped") == "true", timeout=10)

    cluster.delete("BotModule", "irc")
    eventually(lambda: cluster.deployment("eevee-irc-module") is None, timeout=10)
    assert claim_annotations(cluster)["eevee.bot/bootstrapped"] == "true"  # the claim is kept
    starts_on_its_claim(cluster)


def test_a_failed_restore_does_not_mark_the_claim(cluster, operator, standin, s3_server):
    from tests.e2e.test_backup_restore import reason_is, restore

    backed_up_store(cluster, standin, s3_server)
    cluster.create(module("irc", persistentVolumeClaim=PVC))
    cluster.create(restore(backupId="a0c1-old"))
    eventually(lambda: cluster.read("Job", "bring-back-restore"), timeout=15)
    finish(cluster, "Failed")
    eventually(lambda: reason_is(cluster, "Failed"), timeout=10)
    assert "eevee.bot/bootstrapped" not in claim_annotations(cluster)
