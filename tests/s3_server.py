"""A real S3-compatible server for the tests: moto's server mode, on loopback, with IAM
authentication on (a wrong key or secret is refused as by AWS or MinIO).

moto needs boto3, whose botocore pins python-dateutil below 3 while the kubernetes client
needs 3 or later, so it cannot live in the project's environment: the first test that needs it
makes its own environment under ``.cache/s3-server`` (a pinned ``pip install``, about a minute,
once per clone) and runs the server from there.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
MOTO = "moto[server]==5.2.5"
VENV = ROOT / ".cache" / "s3-server"
SETUP_ACTIONS = 3  # create the user, its access key and its policy before authentication starts

_SETUP = """
import json, sys
import boto3
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="setup", aws_secret_access_key="setup")
iam.create_user(UserName="eevee")
key = iam.create_access_key(UserName="eevee")["AccessKey"]
iam.put_user_policy(UserName="eevee", PolicyName="s3", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
print(json.dumps({"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}))
"""


@dataclass
class S3Server:
    endpoint: str
    access_id: str
    secret_key: str

    def client(self, secret_key: str | None = None) -> Any:
        from minio import Minio

        return Minio(self.endpoint.removeprefix("http://"), access_key=self.access_id,
                     secret_key=secret_key or self.secret_key, secure=False, region="us-east-1")

    def bucket(self) -> str:
        name = f"eevee-{uuid.uuid4().hex[:12]}"
        self.client().make_bucket(name)
        return name

    def put(self, bucket: str, key: str, data: bytes = b"backup") -> None:
        import io

        self.client().put_object(bucket, key, io.BytesIO(data), len(data))


def _environment() -> None:
    if (VENV / "bin" / "moto_server").exists():
        return
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", MOTO], check=True, timeout=900)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with running_s3_server() as server:
        yield server


@contextlib.contextmanager
def running_s3_server() -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port, with one IAM user allowed everything."""
    _environment()
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_ACTIONS), "MOTO_CALL_RESET_API": "false"}
    server = subprocess.Popen([str(VENV / "bin" / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:  # listening (a request would count as one of the actions before authentication)
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        made = subprocess.run([str(VENV / "bin" / "python"), "-c", _SETUP, endpoint],
                              check=True, capture_output=True, text=True, timeout=60)
        key = json.loads(made.stdout)
        yield S3Server(endpoint, key["id"], key["secret"])
    finally:
        server.terminate()
        server.wait(10)
