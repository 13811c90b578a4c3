"""Wiring: the operator as one service (Kubernetes client, metrics, rules, runner, HTTP API).

Used by ``eevee-operator run``, by the demo and by the end-to-end tests, so that
all three run exactly the same assembly.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from eevee import logs
from eevee.kube.client import Connection, Kube, load_connection
from eevee.metrics import Metrics
from eevee.operator.reload import RulesSource
from eevee.operator.runner import Runner
from eevee.settings import Settings

log = logging.getLogger("eevee.service")


class OperatorService:
    def __init__(self, settings: Settings, *, connection: Connection | None = None, http: bool = True) -> None:
        self.settings = settings
        logs.redact(settings.api_token)
        self.metrics = Metrics()
        self.rules = RulesSource(settings.rules_dir, self.metrics)  # bad tables stop us before anything else
        self.connection = connection or load_connection(in_cluster=settings.in_cluster, kubeconfig=settings.kubeconfig)
        self.kube = Kube(self.connection, observe=self.metrics.observe_kube)
        identity = settings.identity or f"{socket.gethostname()}-{os.getpid()}"
        self.runner = Runner(settings, self.kube, self.metrics, self.rules, identity=identity)
        self.http = None
        if http:
            from eevee.api.server import ApiServer

            self.http = ApiServer(settings, self.kube, self.metrics, self.runner)
        self._thread: threading.Thread | None = None

    def start(self) -> OperatorService:
        """Start in the background (tests, demo)."""
        if self.http is not None:
            self.http.start()
        self._thread = threading.Thread(target=self.runner.run, name="eevee-operator", daemon=True)
        self._thread.start()
        return self

    def run_forever(self) -> None:
        """Run in the foreground until shutdown() (``eevee-operator run``)."""
        if self.http is not None:
            self.http.start()
        try:
            self.runner.run()
        finally:
            self.close()

    def shutdown(self) -> None:
        self.runner.shutdown()

    def stop(self, timeout: float = 10.0) -> None:
        self.runner.shutdown()
        if self._thread is not None:
            self._thread.join(timeout)
        self.close()

    def close(self) -> None:
        self.runner.join(1.0)
        if self.http is not None:
            self.http.stop()
