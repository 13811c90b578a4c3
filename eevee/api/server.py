"""Serving the Bottle app with waitress, beside the reconciler in the same process."""

from __future__ import annotations

import contextlib
import json
import threading
from typing import Any

from waitress import create_server
from waitress.channel import HTTPChannel
from waitress.task import ErrorTask

from eevee.api.app import make_app
from eevee.kube.client import Kube
from eevee.metrics import Metrics
from eevee.settings import Settings

MAX_BODY = 64 * 1024  # nothing the API accepts has a body worth more
MAX_HEADERS = 32 * 1024


class _JsonErrorTask(ErrorTask):
    """What waitress answers by itself (a body or headers too large, a malformed request, a
    crash of the app), in the API's JSON error shape instead of waitress' plain text."""

    def execute(self) -> None:
        error = self.request.error
        body = json.dumps({"error": str(error.reason).lower(), "status": error.code}).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        # Counted before the answer leaves: a client that reads /metrics next finds it there.
        observe = getattr(self.channel.server, "observe_refusal", None)
        if observe is not None:
            observe(str(error.code))
        self.write(body)


class _JsonErrorChannel(HTTPChannel):
    error_task_class = _JsonErrorTask


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
        self.server.channel_class = _JsonErrorChannel  # type: ignore[union-attr]
        self.server.observe_refusal = lambda status: (  # type: ignore[union-attr]
            metrics.http_requests.labels("refused", "?", status).inc()
        )
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def port(self) -> int:
        return int(self.server.effective_port)  # type: ignore[union-attr]

    @property
    def url(self) -> str:
        host = self.server.effective_host  # type: ignore[union-attr]
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{self.port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="eevee-http", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            self.server.run()
        except OSError:
            if not self._stopping.is_set():
                raise

    def stop(self) -> None:
        """Close the listening socket, open connections and the wake-up pipe *inside* the server's
        loop (its trigger runs a callable there): closing them from this thread would pull them from
        under select(). With nothing left to watch, the loop ends."""
        self._stopping.set()
        if self._thread is None or not self._thread.is_alive():
            self.server.close()
            return
        closed = threading.Event()

        def close_everything() -> None:
            for channel in list(self.server._map.values()):  # type: ignore[union-attr]
                with contextlib.suppress(OSError):
                    channel.close()
            closed.set()

        with contextlib.suppress(OSError):
            self.server.trigger.pull_trigger(close_everything)  # type: ignore[union-attr]
        closed.wait(2.0)
        self.server.task_dispatcher.shutdown(cancel_pending=True, timeout=1)
        self._thread.join(2.0)
