"""The checks with I/O that rule tables ask for (``probes:``): does this S3 bucket answer these
credentials, which backup is the latest.

A table names a check and its inputs; the renderer asks :class:`ProbeRunner` for the result,
which never blocks it: the first time it answers "Checking" and runs the check on a worker
thread; afterwards it answers the last result, and checks again once that is older than the
table's ``every``. When a result changes, the runner is woken and the resources that read it
are reconciled again (the same bookkeeping as a referenced object that changed).

Inputs may hold secrets (credentials read from a Secret). They stay in this process's memory:
no result, message or log line carries them, and a check's messages are written here from the
S3 error code, never copied from an exception.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from eevee.engine.render import PROBE, RefKey

log = logging.getLogger("eevee.probes")

CHECKING: Mapping[str, Any] = {"reason": "Checking", "message": "the first check has not answered yet"}
CONNECT_SECONDS, READ_SECONDS = 3.0, 10.0


@dataclass
class _Entry:
    check: str
    inputs: Mapping[str, Any]
    every: float
    result: Mapping[str, Any] = field(default_factory=lambda: CHECKING)
    checked: float | None = None  # monotonic time of the last answer
    used: float = 0.0
    running: bool = False


class ProbeRunner:
    """Runs probes on a small pool of worker threads and remembers their results."""

    def __init__(
        self,
        *,
        on_change: Callable[[], None] | None = None,
        checks: Mapping[str, Callable[[Mapping[str, Any]], Mapping[str, Any]]] | None = None,
        workers: int = 2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.on_change = on_change
        self.checks = dict(CHECKS if checks is None else checks)
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[RefKey, _Entry] = {}
        self._changed: dict[RefKey, None] = {}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="eevee-probe")
        self._closed = False

    def result(self, check: str, inputs: Mapping[str, Any], every: float) -> tuple[RefKey, Mapping[str, Any]]:
        digest = hashlib.sha256(orjson.dumps([check, inputs], option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
        key = (PROBE, check, digest)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry(check, dict(inputs), every)
            entry.every = every
            entry.used = self.clock()
            self._refresh(key, entry)
            return key, entry.result

    def current(self, key: RefKey) -> Mapping[str, Any] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            entry.used = self.clock()
            self._refresh(key, entry)
            return entry.result

    def take_changed(self) -> list[RefKey]:
        """The probes whose result changed since the last call; forgets probes nobody asked
        about for a while (their resource was deleted or its inputs changed)."""
        now = self.clock()
        with self._lock:
            changed, self._changed = list(self._changed), {}
            for key in [k for k, e in self._entries.items() if not e.running and now - e.used > 2 * e.every + 60]:
                del self._entries[key]
        return changed

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _refresh(self, key: RefKey, entry: _Entry) -> None:
        """Start a check when none is known or the last is due again (called under the lock)."""
        due = entry.checked is None or self.clock() - entry.checked >= entry.every
        if entry.running or not due or self._closed:
            return
        entry.running = True
        try:
            self._pool.submit(self._run, key, entry)
        except RuntimeError:  # shutting down
            entry.running = False

    def _run(self, key: RefKey, entry: _Entry) -> None:
        check = self.checks.get(entry.check)
        try:
            result = dict(check(entry.inputs)) if check else _failed("UnknownCheck", f"no check {entry.check}")
        except Exception as error:  # a bug in a check: say so, without its text (it may hold inputs)
            log.error("probe %s failed unexpectedly (%s)", entry.check, type(error).__name__)
            result = _failed("CheckFailed", f"the check failed unexpectedly ({type(error).__name__})")
        with self._lock:
            changed = result != entry.result
            entry.result, entry.checked, entry.running = result, self.clock(), False
            if changed:
                self._changed[key] = None
        if changed and self.on_change is not None:
            self.on_change()


def _failed(reason: str, message: str) -> dict[str, Any]:
    return {"ok": False, "reason": reason, "message": message}


# --- S3 ----------------------------------------------------------------------------------------

# What S3 error codes mean to a user who wrote an S3Store (the code itself is kept in the message).
_S3_CODES = {
    "InvalidAccessKeyId": "the S3 service does not know the access key id (spec.accessId)",
    "SignatureDoesNotMatch": "the secret access key does not match the access key id (spec.accessKey)",
    "AccessDenied": "the credentials may not list the bucket",
    "NoSuchBucket": "the bucket does not exist",
    "AllAccessDisabled": "all access to the bucket is disabled",
    "InvalidBucketName": "the bucket name is not valid",
}


def _s3_client(inputs: Mapping[str, Any]) -> Any:
    """A MinIO client (a small, well-kept S3 client on urllib3, which the operator already has:
    boto3 would add tens of megabytes to the operator's memory) with short timeouts, no retries."""
    import urllib3
    from minio import Minio

    url = urlsplit(str(inputs["endpoint"]))
    if url.scheme not in ("http", "https") or not url.netloc:
        raise ValueError("spec.endpoint must be http:// or https:// and a host")
    if url.path.strip("/"):
        raise ValueError("spec.endpoint must not have a path: the backup image's s3cmd cannot address one")
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=CONNECT_SECONDS, read=READ_SECONDS), retries=urllib3.Retry(total=0)
    )
    return Minio(
        url.netloc,
        access_key=str(inputs["accessKeyId"]),
        secret_key=str(inputs["secretAccessKey"]),
        secure=url.scheme == "https",
        region=str(inputs.get("region") or "us-east-1"),
        http_client=http,
    )


def _s3_call(inputs: Mapping[str, Any], call: Callable[[Any], Mapping[str, Any]]) -> Mapping[str, Any]:
    from minio.error import MinioException, S3Error
    from urllib3.exceptions import HTTPError

    endpoint, bucket = inputs["endpoint"], inputs["bucket"]
    try:
        return call(_s3_client(inputs))
    except ValueError as error:
        return _failed("InvalidEndpoint", str(error))
    except S3Error as error:
        meaning = _S3_CODES.get(error.code or "", "the S3 service refused the request")
        return _failed(error.code or "S3Error", f"bucket {bucket} at {endpoint}: {meaning} ({error.code})")
    except HTTPError as error:
        cause = getattr(error, "reason", None) or error
        what = "timed out" if "timed out" in str(cause).lower() else "cannot be reached"
        return _failed("Unreachable", f"{endpoint} {what} ({type(cause).__name__})")
    except MinioException as error:
        return _failed("S3Error", f"bucket {bucket} at {endpoint}: unexpected answer ({type(error).__name__})")


def s3_list_objects(inputs: Mapping[str, Any]) -> Mapping[str, Any]:
    """The connection test: list one page of the bucket (needs s3:ListBucket; a write is not tested)."""

    def call(client: Any) -> Mapping[str, Any]:
        next(iter(client.list_objects(str(inputs["bucket"]))), None)
        return {"ok": True, "reason": "ConnectionSuccessful",
                "message": f"listed bucket {inputs['bucket']} at {inputs['endpoint']}"}

    return _s3_call(inputs, call)


def s3_latest_backup(inputs: Mapping[str, Any]) -> Mapping[str, Any]:
    """The newest ``<prefix><id>.tar.gz`` directly under ``prefix`` (the backup image's keys:
    ``<S3_PREFIX><namespace>/<module>/<uuid>.tar.gz``); ``id`` is unset when there is none."""
    prefix = str(inputs["prefix"])

    def call(client: Any) -> Mapping[str, Any]:
        newest: tuple[Any, str] | None = None
        for item in client.list_objects(str(inputs["bucket"]), prefix=prefix, recursive=True):
            rest = str(item.object_name)[len(prefix):]
            if "/" in rest or not rest.endswith(".tar.gz") or rest == ".tar.gz":
                continue  # nested keys and other files are not backups of this module
            if newest is None or (item.last_modified, rest) > newest:
                newest = (item.last_modified, rest)
        if newest is None:
            return {"ok": True, "reason": "NoBackups", "message": f"no backup under {prefix} in {inputs['bucket']}"}
        backup = newest[1][: -len(".tar.gz")]
        return {"ok": True, "reason": "Found", "id": backup, "message": f"the latest backup is {backup}"}

    return _s3_call(inputs, call)


CHECKS: Mapping[str, Callable[[Mapping[str, Any]], Mapping[str, Any]]] = {
    "s3.listObjects": s3_list_objects,
    "s3.latestBackup": s3_latest_backup,
}
