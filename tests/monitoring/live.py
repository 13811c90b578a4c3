"""A bot on the stand-in, its operator, and a real Prometheus scraping it: what the dashboard
test queries and what tests/monitoring/draw.py plots.

The bot is the demo's (examples/: an IpcConfig and four modules) plus a module with a volume and
a nightly backup to a real S3 server (moto), so that the backup panels have a CronJob to read.
Nothing on the stand-in runs CronJobs: its status is written as kube-controller-manager's CronJob
controller writes it, through the status subresource, once a run has succeeded.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client

from eevee.kube.config import kubeconfig_connection
from eevee.manifests import read_manifests
from eevee.service import OperatorService
from kubestandin.server import StandIn
from tests.conftest import NAMESPACE, ROOT, eventually
from tests.operator_fixtures import Cluster, module, operator_settings
from tests.s3_server import S3Server

DASHBOARD = ROOT / "charts" / "eevee-operator" / "monitoring" / "dashboard.json"
JOB = "eevee-operator"
SCRAPE_SECONDS = 1
# What Grafana puts in for the dashboard's variables when "All" is chosen, and for its interval.
VARIABLES = {"$job": ".*", "$namespace": ".*", "$module": ".*", "$__rate_interval": "1m"}
http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=5, read=30))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Prometheus:
    url: str

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        response = http.request("GET", self.url + path, fields=params)
        body = json.loads(response.data)
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.get("/api/v1/query", query=expr)["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        return self.get("/api/v1/query_range", query=expr, start=str(start), end=str(end), step=str(step))["result"]

    def label_values(self, label: str, match: str) -> list[str]:
        return self.get(f"/api/v1/label/{label}/values", **{"match[]": match})


@contextlib.contextmanager
def prometheus(target: str, binary: str) -> Iterator[Prometheus]:
    """A real Prometheus scraping ``target`` (host:port) every second, as job eevee-operator,
    keeping the series' own namespace label as the chart's ServiceMonitor does (honorLabels)."""
    directory = Path(tempfile.mkdtemp(prefix="eevee-prometheus-"))
    config = {
        "global": {"scrape_interval": f"{SCRAPE_SECONDS}s", "evaluation_interval": f"{SCRAPE_SECONDS}s"},
        "scrape_configs": [{"job_name": JOB, "honor_labels": True, "metrics_path": "/metrics",
                            "static_configs": [{"targets": [target], "labels": {"namespace": NAMESPACE, "pod": "eevee-operator-0"}}]}],
    }
    (directory / "prometheus.yml").write_text(json.dumps(config))
    port = free_port()
    process = subprocess.Popen(
        [binary, f"--config.file={directory / 'prometheus.yml'}", f"--storage.tsdb.path={directory / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    server = Prometheus(f"http://127.0.0.1:{port}")
    try:
        def ready() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"prometheus exited with {process.returncode}")
            try:
                return http.request("GET", server.url + "/-/ready").status == 200
            except urllib3.exceptions.HTTPError:
                return False

        eventually(ready, timeout=60, interval=0.2, message="prometheus ready")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)


def stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Bot:
    standin: StandIn
    operator: OperatorService
    cluster: Cluster

    @property
    def metrics_target(self) -> str:
        return self.operator.http.url.removeprefix("http://")


@contextlib.contextmanager
def bot(s3: S3Server, *, poll_interval: float = 10.0) -> Iterator[Bot]:
    """The demo's bot and a backed-up module, converged, with its operator serving /metrics."""
    with StandIn(deployment_delay=0.5) as standin:
        standin.create_namespace(NAMESPACE)
        for crd in read_manifests([ROOT / "crds"]):
            standin.seed(crd)
        secrets = {
            "irc-libera-credentials": {"IRC_PASSWORD": "demo-password"},  # examples/botmodule-irc.yaml
            "s3-creds": {"access-id": s3.access_id, "secret-key": s3.secret_key},
        }
        for name, data in secrets.items():
            standin.seed({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NAMESPACE},
                          "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}})
        cluster = Cluster(standin)
        for resource in read_manifests([ROOT / "examples"]):
            cluster.create(resource)
        secret_ref = {"secret": {"name": "s3-creds"}}
        cluster.create({"apiVersion": "eevee.bot/v1", "kind": "S3Store", "metadata": {"name": "backups"},
                        "spec": {"endpoint": s3.endpoint, "bucket": s3.bucket(), "prefix": "bot/",
                                 "accessId": {"secretKeyRef": {**secret_ref, "key": "access-id"}},
                                 "accessKey": {"secretKeyRef": {**secret_ref, "key": "secret-key"}}}})
        cluster.create({"apiVersion": "eevee.bot/v1", "kind": "BackupSchedule", "metadata": {"name": "nightly"},
                        "spec": {"schedule": "0 3 * * *", "s3Store": {"name": "backups"},
                                 "image": "ghcr.io/eeveebot/backupjob:1.0.0"}})
        cluster.create(module("seen", persistentVolumeClaim={"accessModes": ["ReadWriteOnce"],
                                                             "resources": {"requests": {"storage": "1Gi"}}},
                              backupSchedule={"name": "nightly"}))
        operator = OperatorService(
            operator_settings(poll_interval=poll_interval, identity="eevee-operator-0", lease_duration=15.0),
            connection=kubeconfig_connection(standin.kubeconfig),
        ).start()
        try:
            for name in ("router", "echo", "irc-libera", "seen"):
                eventually(lambda n=name: cluster.ready("BotModule", n), timeout=30, message=f"{name} ready")
            job = eventually(lambda: cluster.read("CronJob", "nightly-seen-backup"), timeout=30)
            now = time.time()
            client.BatchV1Api(cluster.api).patch_namespaced_cron_job_status(
                job["metadata"]["name"], NAMESPACE,
                {"status": {"lastScheduleTime": stamp(now - 600), "lastSuccessfulTime": stamp(now - 540)}},
            )
            yield Bot(standin, operator, cluster)
        finally:
            operator.stop()


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """The panels that query (not the rows)."""
    return [p for p in board["panels"] if p.get("targets")]


def resolve(expr: str, rate_interval: str = VARIABLES["$__rate_interval"]) -> str:
    """A panel's query with the dashboard's variables as Grafana fills them in for "All"."""
    variables = {**VARIABLES, "$__rate_interval": rate_interval}
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace(name, variables[name])
    return expr
