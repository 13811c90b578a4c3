"""Serving the Bottle app with waitress, beside the reconciler in the same process."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from waitress import create_server

from eevee.api.app import make_app
from eevee.kube.client import Kube
from eevee.metrics import Metrics
from eevee.settings import Settings

MAX_BODY = 64 * 1024  # nothing the API accepts has a body worth more
MAX_HEADERS = 32 * 1024


class ApiServer:
    def __init__(self, settings: Settings, kube: Kube, metrics: Metrics, runner: Any) -> None:
        self.app = make_app(settings, kube, metrics, runner)
        self.server = create_server(
            self.app,
            host=settings.http_host,
            port=settings.http_port,
            threads=4,
            max_request_body_size=MAX_BODY,
            max_request_header_size=MAX_HEADERS,
            ident="eevee-operator",
            expose_tracebacks=False,
            clear_untrusted_proxy_headers=True,
        )
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server.effective_port)  # type: ignore[union-attr]

    @property
    def url(self) -> str:
        host = self.server.effective_host  # type: ignore[union-attr]
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.run, name="eevee-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        # close() only stops listening; open keep-alive connections would keep the loop alive.
        self.server.close()
        for channel in list(getattr(self.server, "_map", {}).values()):
            with contextlib.suppress(OSError):
                channel.close()
        self.server.task_dispatcher.shutdown(cancel_pending=True, timeout=1)
        if self._thread is not None:
            self._thread.join(2.0)
