"""The HTTP API as a Bottle app (SPEC section 6; shapes in docs/api.md).

Open: ``GET /health``, ``GET /ready``, ``GET /metrics``. Behind the bearer token
and the per-client rate limit: ``GET /bot-modules``, ``GET /bot-modules/<name>``,
``POST /bot-modules/<name>/restart``. Every answer, errors included, is JSON (the
metrics page aside); no error ever carries a stack trace or anything the client
sent in its Authorization header.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import bottle
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from eevee import __version__
from eevee.api.guard import RateLimiter, TokenCheck
from eevee.api.modules import ApiProblem, Modules, eevee_modules
from eevee.kube.client import Kube, KubeError
from eevee.metrics import Metrics
from eevee.settings import Settings
from eevee.timestamps import rfc3339_now

log = logging.getLogger("eevee.api")
OPEN_ROUTES = {"/", "/health", "/ready", "/metrics", "/api/health", "/api/metrics"}


def make_app(settings: Settings, kube: Kube, metrics: Metrics, runner: Any) -> bottle.Bottle:
    app = bottle.Bottle(catchall=True, autojson=True)
    tokens = TokenCheck(settings.api_token)
    limiter = RateLimiter(settings.rate_limit, settings.rate_burst)

    def modules() -> Modules:
        return Modules(kube, settings, runner.rules)

    def problem(status: int, message: str, headers: dict[str, str] | None = None) -> bottle.HTTPResponse:
        response = bottle.HTTPResponse(status=status, body=bottle.json_dumps({"error": message, "status": status}))
        response.content_type = "application/json"
        for key, value in (headers or {}).items():
            response.set_header(key, value)
        return response

    def guarded(handler: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            # Raw from the WSGI environ (latin-1 text): bottle's own accessor re-decodes it as
            # UTF-8 and fails on a header that is not.
            refusal = tokens.verdict(bottle.request.environ.get("HTTP_AUTHORIZATION"))
            if refusal is not None:
                status = 503 if not tokens.configured else 401
                return problem(
                    status, refusal, {"WWW-Authenticate": 'Bearer realm="eevee-operator"'} if status == 401 else None
                )
            try:
                return handler(*args, **kwargs)
            except ApiProblem as error:
                return problem(error.status, error.message)
            except KubeError as error:
                log.warning("Kubernetes API error while answering %s: %s", bottle.request.path, error)
                return problem(502, f"the Kubernetes API answered: {error.code} {error.reason}")

        return wrapper

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    @app.get("/ready")
    def ready() -> Any:
        state = runner.health()
        body = {
            "ready": state.ready,
            "leader": state.leader,
            "passes": state.passes,
            # Every kind the tables read has been listed into the watch-fed cache.
            "cacheSynced": state.cache_synced,
            "rulesValid": state.rules_valid,
            # Kinds the tables use that cannot be listed: those resources are not reconciled.
            "unavailableKinds": state.unavailable_kinds,
        }
        if not state.ready:
            return bottle.HTTPResponse(
                status=503, body=bottle.json_dumps(body), headers={"Content-Type": "application/json"}
            )
        return body

    @app.get("/metrics")
    def prometheus() -> Any:
        bottle.response.content_type = CONTENT_TYPE_LATEST
        return generate_latest(metrics.registry)

    @app.get("/bot-modules")
    @guarded
    def list_modules() -> dict[str, Any]:
        return {"items": modules().list()}

    @app.get("/bot-modules/<name>")
    @guarded
    def one_module(name: str) -> Any:
        return dict(modules().find(name, bottle.request.query.get("namespace") or None))

    @app.post("/bot-modules/<name>/restart")
    @guarded
    def restart(name: str) -> Any:
        raw = bottle.request.body.read()
        if raw.strip():
            try:
                json.loads(raw)
            except ValueError:
                return problem(400, "the request body must be empty or JSON (restart takes no parameters)")
        result = modules().restart(name, bottle.request.query.get("namespace") or None)
        log.info(
            "restarted module %s on request",
            name,
            extra={"kind": "BotModule", "namespace": result["namespace"], "resource_name": name},
        )
        bottle.response.status = 202
        return result

    # --- the eevee operator's routes, as its modules call them (eeveebot/admin) ---------

    @app.get("/")
    def about() -> dict[str, Any]:
        return {"name": "eevee-operator", "version": __version__, "timestamp": rfc3339_now()}

    @app.get("/api/health")
    def eevee_health() -> dict[str, Any]:
        return {"status": "ok", "timestamp": rfc3339_now()}

    @app.get("/api/metrics")
    def eevee_metrics() -> Any:
        return prometheus()

    @app.get("/api/bot-modules")
    @guarded
    def eevee_list() -> Any:
        # A bare array, exactly the eevee operator 2.3's items (name is the moduleName, crName the
        # BotModule's name, podStatus its Pod's), read from the watch-fed cache.
        return bottle.HTTPResponse(
            body=bottle.json_dumps(eevee_modules(runner)), headers={"Content-Type": "application/json"}
        )

    @app.post("/api/action/restart-module")
    @guarded
    def eevee_restart() -> Any:
        try:
            body = json.loads(bottle.request.body.read() or b"{}")
        except ValueError:
            return problem(400, "the request body must be JSON: {\"moduleName\": ..., \"namespace\": ...}")
        if not isinstance(body, dict):
            return problem(400, "the request body must be a JSON object")
        for field in ("moduleName", "namespace"):
            if not isinstance(body.get(field), str) or not body[field]:
                return problem(400, f"{field} is required")
        namespace = body["namespace"]
        if not settings.all_namespaces and namespace not in settings.watch_namespaces:
            return problem(404, f"namespace {namespace!r} is not watched by this operator")
        result = modules().restart(body["moduleName"], namespace)
        log.info(
            "restarted module %s on request",
            body["moduleName"],
            extra={"kind": "BotModule", "namespace": namespace, "resource_name": body["moduleName"]},
        )
        return {
            "message": f"Successfully restarted module {body['moduleName']}",
            "deployment": result["deployment"],
            "namespace": namespace,
            "restartedAt": result["restartedAt"],
        }

    for status, message in (
        (404, "no such route"),
        (405, "method not allowed on this route"),
        (413, "request body too large"),
        (400, "bad request"),
    ):
        app.error(status)(lambda error, s=status, m=message: _json_error(s, m))
    app.error(500)(lambda error: _json_error(500, "internal error"))

    return _Instrumented(app, metrics, limiter)  # type: ignore[return-value]


def _json_error(status: int, message: str) -> str:
    bottle.response.content_type = "application/json"
    if status == 500:
        # One line; the traceback only at DEBUG (a log must not carry request internals).
        info = bottle.request.environ.get("bottle.exc_info")
        error = info[1] if info else None
        log.error("unhandled error in the HTTP API: %s", type(error).__name__ if error else "unknown")
        log.debug("unhandled error in the HTTP API", exc_info=info)
    return bottle.json_dumps({"error": message, "status": status})


class _Instrumented:
    """WSGI middleware: rate limit, metrics by route template, one access-log line."""

    def __init__(self, app: bottle.Bottle, metrics: Metrics, limiter: RateLimiter) -> None:
        self.app = app
        self.metrics = metrics
        self.limiter = limiter

    def _route(self, environ: dict[str, Any]) -> str:
        try:
            route, _ = self.app.router.match(environ)
            return route.rule
        except bottle.HTTPError:
            return "unmatched"

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        started = time.monotonic()
        route = self._route(environ)
        method = environ.get("REQUEST_METHOD", "GET")
        captured: dict[str, str] = {}

        def recording_start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"] = status.split(" ", 1)[0]
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        if route not in OPEN_ROUTES:
            wait = self.limiter.take(environ.get("REMOTE_ADDR", "?"))
            if wait > 0:
                body = bottle.json_dumps({"error": "rate limit exceeded; slow down", "status": 429}).encode()
                recording_start(
                    "429 Too Many Requests",
                    [
                        ("Content-Type", "application/json"),
                        ("Retry-After", RateLimiter.retry_after(wait)),
                        ("Content-Length", str(len(body))),
                    ],
                )
                self._observe(route, method, "429", started)
                return [body]
        result = self.app(environ, recording_start)
        self._observe(route, method, captured.get("status", "500"), started)
        return result

    def _observe(self, route: str, method: str, status: str, started: float) -> None:
        seconds = time.monotonic() - started
        self.metrics.http_requests.labels(route, method, status).inc()
        self.metrics.http_seconds.labels(route, status).observe(seconds)
        if route not in OPEN_ROUTES:
            log.info("%s %s -> %s", method, route, status, extra={"seconds": round(seconds, 4)})
