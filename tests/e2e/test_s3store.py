"""The S3Store connection test against a real S3 server (moto, with IAM authentication on):
right and wrong credentials, a missing Secret or key, a missing bucket, an endpoint where
nothing listens. Each is a clear Ready condition; no secret value shows anywhere."""

from __future__ import annotations

import logging
import socket

import pytest

from tests.conftest import NAMESPACE, eventually
from tests.e2e.test_backups import credentials, schedule, store


def ready(cluster, name="minio"):
    return cluster.condition("S3Store", name)


def settled(cluster, name="minio"):
    """The Ready condition once the connection test has answered (not Checking)."""
    condition = ready(cluster, name)
    return condition if condition.get("reason") not in (None, "Checking") else None


@pytest.fixture
def fast_operator(start_operator):
    # User Secrets are read at each pass (not watched): a short poll shows fixes quickly.
    return start_operator(poll_interval=1.0)


def test_the_right_credentials_make_the_store_ready_and_its_schedule_follows(cluster, fast_operator, standin, s3_server, caplog):
    caplog.set_level(logging.DEBUG)
    standin.seed(credentials(s3=s3_server))
    cluster.create(store(s3=s3_server))
    cluster.create(schedule())
    condition = eventually(lambda: cluster.ready("S3Store", "minio"), timeout=15)
    assert condition["reason"] == "ConnectionSuccessful" and s3_server.endpoint in condition["message"]
    eventually(lambda: cluster.ready("BackupSchedule", "nightly"), timeout=5)
    everything = caplog.text + str(cluster.get("S3Store", "minio")) + str(cluster.events("minio"))
    assert s3_server.secret_key not in everything


@pytest.mark.parametrize(
    ("change", "reason", "words"),
    [
        ("secret", "ConnectionFailed", "secret access key does not match"),
        ("id", "ConnectionFailed", "does not know the access key id"),
        ("bucket", "ConnectionFailed", "bucket does not exist"),
        ("endpoint", "ConnectionFailed", "cannot be reached"),
    ],
)
def test_what_is_wrong_is_said(cluster, fast_operator, standin, s3_server, change, reason, words):
    secret = credentials(s3=s3_server)
    spec = {}
    if change == "secret":
        secret = credentials(access_id=s3_server.access_id, secret_key="not-the-secret-key")
    elif change == "id":
        secret = credentials(access_id="AKIANOSUCHKEY0000000", secret_key=s3_server.secret_key)
    elif change == "bucket":
        spec["bucket"] = "no-such-bucket"
    else:
        with socket.socket() as sock:  # a port nothing listens on
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        spec["endpoint"] = f"http://127.0.0.1:{port}"
    standin.seed(secret)
    cluster.create(store(s3=s3_server, **spec))
    cluster.create(schedule())
    condition = eventually(lambda: settled(cluster), timeout=15)
    assert (condition["status"], condition["reason"]) == ("False", reason)
    assert words in condition["message"], condition["message"]
    assert s3_server.secret_key not in condition["message"]
    # The schedule follows the store's condition, message included (it said "testing ..." first).
    waiting = eventually(lambda: words in cluster.condition("BackupSchedule", "nightly").get("message", "")
                         and cluster.condition("BackupSchedule", "nightly"), timeout=5)
    assert waiting["reason"] == "S3StoreNotReady"
    if change in ("secret", "id"):  # fixed: seen at the next pass, and checked again at once
        cluster.core.replace_namespaced_secret("s3-creds", NAMESPACE, credentials(s3=s3_server))
        eventually(lambda: cluster.ready("S3Store", "minio"), timeout=15)


def test_a_missing_secret_or_key_names_the_field(cluster, fast_operator, standin, s3_server):
    cluster.create(store(s3=s3_server))
    missing = eventually(lambda: ready(cluster).get("reason") == "ReferenceNotFound" and ready(cluster))
    assert "spec.accessId.secretKeyRef.secret.name" in missing["message"]
    secret = credentials(s3=s3_server)
    del secret["data"]["secret-key"]
    standin.seed(secret)
    no_key = eventually(lambda: ready(cluster).get("reason") == "InvalidSpec" and ready(cluster), timeout=15)
    assert "spec.accessKey.secretKeyRef.key" in no_key["message"]
