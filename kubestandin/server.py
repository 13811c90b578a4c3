"""The stand-in's HTTP front: a Kubernetes API server on 127.0.0.1 for tests and the demo.

It speaks the REST dialect that client-go (kubectl) and the official Python client
use: discovery, CRUD with ``Status`` errors, list with selectors and pagination,
chunked watch streams, the three patch types and server-side apply, the ``status``
and ``scale`` subresources, server-side ``Table`` printing, bearer-token
authentication, protobuf request bodies for the kinds typed clients send that way.
Where it differs from a real kube-apiserver, it is wrong; the tests under
``tests/standin`` pin the behaviour the operator and kubectl rely on.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from kubestandin import apply as ssa
from kubestandin import patching, printing, protobuf
from kubestandin.certs import certificate, server_context
from kubestandin.controllers import GarbageCollector
from kubestandin.faults import Faults, Request, RequestLog, sleep_interruptibly
from kubestandin.protobuf import ProtobufError
from kubestandin.registry import Registry, ResourceType
from kubestandin.selectors import SelectorError, exact_name, field_selector, label_selector
from kubestandin.store import ApiError, Store, Validation, dumps
from kubestandin.workloads import WorkloadController

VERSION_INFO = {
    "major": "1",
    "minor": "34",
    "gitVersion": "v1.34.0-eevee-standin",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.24",
    "compiler": "gc",
    "platform": "linux/amd64",
}
PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
}
MAX_BODY = 3 * 1024 * 1024  # the real server's request size limit


@dataclass
class _Pending:
    """What the request log will say of the request being handled."""

    method: str
    path: str
    verb: str = "unknown"
    route: Route | None = None
    logged: bool = False


class Route:
    __slots__ = ("group", "name", "namespace", "rt", "subresource", "version")

    def __init__(
        self,
        rt: ResourceType,
        group: str,
        version: str,
        namespace: str | None,
        name: str | None,
        subresource: str | None,
    ):
        self.rt, self.group, self.version = rt, group, version
        self.namespace, self.name, self.subresource = namespace, name, subresource

    @property
    def resource(self) -> str:
        return f"{self.rt.plural}/{self.subresource}" if self.subresource else self.rt.plural


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    standin: StandIn

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request is not the server's error; stay quiet."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "eevee-standin"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes: without this, Nagle meets the client's
        # delayed ACK and every answer waits 40 ms.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # --- plumbing ------------------------------------------------------------------

    _warnings: list[str] = []

    def _send(self, code: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(code)
        for warning in self._warnings:
            self.send_header("Warning", f'299 - "{warning}"')
        self._warnings = []
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        # Into the request log before the answer leaves: a client that holds the answer
        # (and a test that takes a log mark right after) always finds the entry there.
        self._record(code)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, obj: Any) -> None:
        self._send(code, dumps(obj))

    def _error(self, error: ApiError) -> None:
        self._json(error.code, error.status())

    def _read_body(self) -> None:
        """Consume the request body before anything else, so that an early error answer
        never leaves it on a keep-alive connection to be misread as the next request."""
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            self._raw = b""
            raise ApiError(413, "RequestEntityTooLarge", "the request is too large")
        self._raw = self.rfile.read(length) if length else b""

    def _body(self) -> Any:
        raw = self._raw
        if not raw:
            return None
        content_type = self.headers.get("Content-Type", "")
        if "protobuf" in content_type:
            try:
                return protobuf.decode(raw)
            except ProtobufError as error:
                raise ApiError(415, "UnsupportedMediaType", f"the body of the request could not be read as protobuf: {error}") from None
        if "cbor" in content_type:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml",
            )
        try:
            return json.loads(raw)
        except ValueError:
            content_type = self.headers.get("Content-Type", "")
            if "yaml" in content_type:
                from ruamel.yaml import YAML

                return YAML(typ="safe", pure=True).load(raw.decode())
            raise ApiError(400, "BadRequest", "the request body is not valid JSON") from None

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    # --- dispatch ------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        standin = self.server.standin
        standin.faults.wait_running()
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        self._pending = _Pending(method, url.path)
        code = 500
        try:
            self._read_body()
            if not self._authorized(standin.token):
                raise ApiError(401, "Unauthorized", "Unauthorized")
            if url.path in ("/healthz", "/readyz", "/livez"):
                self._send(200, b"ok", "text/plain")
                return
            special = self._discovery(url.path)
            if special is not None:
                self._pending.verb = "discovery"
                self._json(200, special)
                return
            route = self._route(url.path)
            if route is None:
                self._send(404, b"404 page not found\n", "text/plain")
                return
            self._pending.route = route
            verb = self._pending.verb = self._verb(method, route, query)
            agent = self.headers.get("User-Agent", "")
            fault = standin.faults.take(verb, route.resource, route.namespace or "", route.name or "", agent)
            if fault is not None:
                if fault.hang:
                    sleep_interruptibly(fault.hang, standin.stopping)
                raise ApiError(fault.code, Faults.reason(fault.code), f"injected fault: {fault.code}")
            if verb == "watch":
                self._watch(route, query)  # logged when it starts, not when it ends
                return
            validation = Validation(query.get("fieldValidation"))
            code, body = self._dispatch(method, verb, route, query, validation)
            self._warnings = validation.warnings
            self._json(code, body)
        except ApiError as error:
            self._error(error)
        except (BrokenPipeError, ConnectionResetError):
            self._record(499)
        except Exception as error:  # a bug in the stand-in must still answer like a server
            self._error(ApiError(500, "InternalError", f"stand-in internal error: {type(error).__name__}: {error}"))
        finally:
            self._record(code)  # no-op when the answer was logged as it was sent

    def _record(self, code: int) -> None:
        pending = getattr(self, "_pending", None)
        if pending is None or pending.logged:
            return
        pending.logged = True
        route = pending.route
        resource = route.resource if route else pending.path
        namespace = (route.namespace or "") if route else ""
        name = (route.name or "") if route else ""
        group = route.group if route else ""
        agent = self.headers.get("User-Agent", "")
        request = Request(time.time(), pending.method, self.path, pending.verb, resource, namespace, name, code, group, agent)
        self.server.standin.log.record(request)

    def _authorized(self, token: str) -> bool:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return False
        return hmac.compare_digest(header[7:].strip().encode(), token.encode())

    def _verb(self, method: str, route: Route, query: dict[str, str]) -> str:
        if method == "GET":
            if route.name is None:
                return "watch" if query.get("watch") in ("1", "true") else "list"
            return "get"
        if method == "POST":
            if route.name is not None:
                raise ApiError(
                    405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
                )
            return "create"
        if method == "PUT":
            return "update"
        if method == "PATCH":
            return "patch"
        if method == "DELETE":
            return "delete" if route.name is not None else "deletecollection"
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    # --- discovery -----------------------------------------------------------------

    def _discovery(self, path: str) -> dict[str, Any] | None:
        standin = self.server.standin
        registry = standin.registry
        path = path.rstrip("/") or "/"
        if path == "/version":
            return VERSION_INFO
        if path == "/api":
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{standin.port}"}
                ],
            }
        if path == "/apis":
            groups: dict[str, list[str]] = {}
            for rt in registry.all():
                if rt.group:
                    versions = groups.setdefault(rt.group, [])
                    if rt.version not in versions:
                        versions.append(rt.version)
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [self._group(g, v) for g, v in sorted(groups.items())],
            }
        parts = path.strip("/").split("/")
        if parts == ["api", "v1"]:
            return self._resource_list("", "v1")
        if len(parts) == 2 and parts[0] == "apis":
            versions = sorted({rt.version for rt in registry.all() if rt.group == parts[1]})
            if not versions:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return {"kind": "APIGroup", "apiVersion": "v1", **self._group(parts[1], versions)}
        if len(parts) == 3 and parts[0] == "apis":
            if not any(rt.group == parts[1] and rt.version == parts[2] for rt in registry.all()):
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return self._resource_list(parts[1], parts[2])
        if path == "/openapi/v3":
            return {
                "paths": {
                    gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={standin.store.rv}"}
                    for gv in self._group_versions()
                }
            }
        if path.startswith("/openapi/v3/"):
            gv = path.removeprefix("/openapi/v3/")
            if gv not in self._group_versions():
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return self._openapi_v3(gv)
        return None

    def _group_versions(self) -> list[str]:
        out = {"api/v1"}
        for rt in self.server.standin.registry.all():
            if rt.group:
                out.add(f"apis/{rt.group}/{rt.version}")
        return sorted(out)

    def _openapi_v3(self, gv: str) -> dict[str, Any]:
        """Enough OpenAPI v3 for kubectl: PATCH takes ``fieldValidation`` (so it validates on
        the server instead of downloading schemas), and the schemas of custom resources
        (so ``kubectl explain`` works for them)."""
        paths: dict[str, Any] = {}
        schemas: dict[str, Any] = {}
        for rt in self.server.standin.registry.all():
            if ("api/v1" if not rt.group else f"apis/{rt.group}/{rt.version}") != gv or rt.version != gv.rsplit("/", 1)[
                -1
            ]:
                continue
            base = (
                f"/{gv}/namespaces/{{namespace}}/{rt.plural}/{{name}}"
                if rt.namespaced
                else f"/{gv}/{rt.plural}/{{name}}"
            )
            operation = {
                "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
                "x-kubernetes-action": "patch",
                "parameters": [
                    {"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                    for name in ("dryRun", "fieldManager", "fieldValidation", "force")
                ],
                "responses": {"200": {"description": "OK"}},
            }
            paths[base] = {"patch": operation}
            if rt.schema is not None:
                # The CRD's own schema, named and tagged as the real server publishes it:
                # what `kubectl explain` reads.
                group = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
                schemas[f"{group}.{rt.version}.{rt.kind}"] = {
                    **rt.schema,
                    "x-kubernetes-group-version-kind": [{"group": rt.group, "version": rt.version, "kind": rt.kind}],
                }
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": VERSION_INFO["gitVersion"]},
            "paths": paths,
            "components": {"schemas": schemas},
        }

    @staticmethod
    def _group(name: str, versions: list[str]) -> dict[str, Any]:
        listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
        return {"name": name, "versions": listed, "preferredVersion": listed[0]}

    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        resources = []
        for rt in sorted(self.server.standin.registry.all(), key=lambda r: r.plural):
            if rt.group != group or rt.version != version:
                continue
            entry: dict[str, Any] = {
                "name": rt.plural,
                "singularName": rt.singular,
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": rt.verbs(),
            }
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            if rt.categories:
                entry["categories"] = list(rt.categories)
            resources.append(entry)
            for sub in rt.subresources:
                sub_entry = {
                    "name": f"{rt.plural}/{sub}",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": rt.kind,
                    "verbs": ["get", "patch", "update"],
                }
                if sub == "scale":
                    sub_entry.update(kind="Scale", group="autoscaling", version="v1")
                resources.append(sub_entry)
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources,
        }

    # --- routing -------------------------------------------------------------------

    def _route(self, path: str) -> Route | None:
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2 and parts[0] == "api" and parts[1] == "v1":
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return None
        if not rest:
            return None
        registry = self.server.standin.registry
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3 and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
            namespace, rest = rest[1], rest[2:]
        plural, name = rest[0], rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if len(rest) > 3:
            return None
        rt = registry.get(group, version, plural)
        if rt is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if rt.namespaced and namespace is None and name is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rt.namespaced and namespace is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if subresource is not None and subresource not in rt.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return Route(rt, group, version, namespace, name, subresource)

    # --- handlers ------------------------------------------------------------------

    def _dispatch(
        self, method: str, verb: str, route: Route, query: dict[str, str], validation: Validation
    ) -> tuple[int, Any]:
        standin = self.server.standin
        store = standin.store
        rt = route.rt
        ns = route.namespace or ""
        dry_run = dry_run_of(query)
        if rt.read_only and verb not in ("get", "list"):
            raise ApiError(405, "MethodNotAllowed", f"{rt.plural} are read-only in the stand-in")
        if verb == "list":
            return 200, self._list(route, query)
        if verb == "get":
            obj = store.get(rt, ns, route.name or "")
            if route.subresource == "scale":
                return 200, _scale(obj)
            if "as=Table" in self.headers.get("Accept", ""):
                return 200, printing.table(rt, [obj], obj["metadata"]["resourceVersion"])
            return 200, obj
        if verb == "create":
            body = self._body()
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the request body must be an object")
            _check_type(rt, body)
            return 201, store.create(rt, ns, body, validation=validation, dry_run=dry_run)
        if verb == "update":
            body = self._body()
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "the request body must be an object")
            if route.subresource == "scale":
                return 200, self._write_scale(route, body, dry_run)
            _check_type(rt, body)
            return 200, store.update(
                rt, ns, route.name or "", body, subresource=route.subresource, validation=validation, dry_run=dry_run
            )
        if verb == "patch":
            return self._patch(route, query, validation)
        if verb == "delete":
            options = self._body() or {}
            propagation = query.get("propagationPolicy") or options.get("propagationPolicy") or "Background"
            if query.get("orphanDependents") == "true" or options.get("orphanDependents") is True:
                propagation = "Orphan"
            return 200, store.delete(
                rt,
                ns,
                route.name or "",
                propagation=propagation,
                preconditions=options.get("preconditions"),
                dry_run=dry_run,
            )
        if verb == "deletecollection":
            match = self._match(query, rt.kind)
            items, _ = store.list(rt, route.namespace, match)
            for item in items:
                with contextlib.suppress(ApiError):  # deleted by someone else meanwhile
                    store.delete(rt, item["metadata"].get("namespace", ""), item["metadata"]["name"], dry_run=dry_run)
            return 200, {"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": {}, "items": items}
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _match(self, query: dict[str, str], kind: str | None = None) -> Any:
        try:
            labels = label_selector(query.get("labelSelector"))
            fields = field_selector(query.get("fieldSelector"), kind)
        except SelectorError as error:
            raise ApiError(400, "BadRequest", str(error)) from None
        return lambda obj: labels(obj) and fields(obj)

    def _list(self, route: Route, query: dict[str, str]) -> Any:
        store = self.server.standin.store
        rt = route.rt
        match = self._match(query, rt.kind)
        name = exact_name(query.get("fieldSelector"))
        if name is not None and route.namespace is not None:
            try:
                obj = store.get(rt, route.namespace, name)
                items, rv = ([obj] if match(obj) else []), store.rv
            except ApiError:
                items, rv = [], store.rv
        else:
            items, rv = store.list(rt, route.namespace, match)
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        metadata: dict[str, Any] = {"resourceVersion": str(rv)}
        start = 0
        if query.get("continue"):
            try:
                token = json.loads(base64.urlsafe_b64decode(query["continue"].encode()))
                after = (token["ns"], token["name"])
                rv = token["rv"]
                metadata["resourceVersion"] = str(rv)
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, "BadRequest", "continue key is not valid") from None
            start = next(
                (i for i, o in enumerate(items) if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > after),
                len(items),
            )
        limit = int(query.get("limit") or 0)
        page = items[start : start + limit] if limit > 0 else items[start:]
        if limit > 0 and start + limit < len(items):
            last = page[-1]["metadata"]
            token = {"rv": rv, "ns": last.get("namespace", ""), "name": last["name"]}
            metadata["continue"] = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
            metadata["remainingItemCount"] = len(items) - start - limit
        if "as=Table" in self.headers.get("Accept", ""):
            tab = printing.table(rt, page, metadata["resourceVersion"])
            tab["metadata"].update({k: v for k, v in metadata.items() if k != "resourceVersion"})
            return tab
        # Lists of built-in kinds carry no apiVersion/kind on their items (custom ones do).
        if not rt.custom:
            page = [{k: v for k, v in o.items() if k not in ("apiVersion", "kind")} for o in page]
        return {"kind": f"{rt.kind}List", "apiVersion": rt.api_version, "metadata": metadata, "items": page}

    def _patch(self, route: Route, query: dict[str, str], validation: Validation) -> tuple[int, Any]:
        store = self.server.standin.store
        rt = route.rt
        ns = route.namespace or ""
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip()
        kind = PATCH_TYPES.get(content_type)
        if content_type == "application/apply-patch+yaml":
            return self._apply(route, query, validation)
        if kind is None:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: {', '.join(PATCH_TYPES)}",
            )
        if kind == "strategic" and rt.custom:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "strategic merge patch is not supported for custom resources; use a JSON merge patch or a JSON patch",
            )
        body = self._body()
        # Read, patch and write as one step: a real server retries a patch internally when the
        # object moved on meanwhile (GuaranteedUpdate), so only a patch that itself carries a
        # stale resourceVersion gets 409 Conflict.
        with store.lock:
            current = store.get(rt, ns, route.name or "")
            target = _scale(current) if route.subresource == "scale" else current
            try:
                if kind == "json":
                    patched = patching.apply_json_patch(target, body)
                elif kind == "merge":
                    patched = patching.apply_merge_patch(target, body)
                else:
                    patched = patching.apply_strategic_merge_patch(target, body)
            except patching.PatchError as error:
                raise ApiError(422, "Invalid", str(error)) from None
            if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
                raise ApiError(422, "Invalid", "the patch produced an object without metadata")
            if route.subresource == "scale":
                return 200, self._write_scale(route, patched, dry_run_of(query))
            return 200, store.update(
                rt,
                ns,
                route.name or "",
                patched,
                subresource=route.subresource,
                validation=validation,
                dry_run=dry_run_of(query),
            )

    def _apply(self, route: Route, query: dict[str, str], validation: Validation) -> tuple[int, Any]:
        """Server-side apply: create the object, or merge the manager's configuration into it."""
        store = self.server.standin.store
        rt = route.rt
        ns = route.namespace or ""
        name = route.name or ""
        manager = query.get("fieldManager", "")
        if not manager:
            raise ApiError(400, "BadRequest", "PATCH requests with apply-patch+yaml must include fieldManager")
        if route.subresource == "scale":
            raise ApiError(415, "UnsupportedMediaType", "server-side apply of the scale subresource is not supported by the stand-in")
        config = self._body()
        if not isinstance(config, dict):
            raise ApiError(400, "BadRequest", "the applied configuration must be an object")
        if not config.get("apiVersion") or not config.get("kind"):
            raise ApiError(400, "BadRequest", "apiVersion and kind must be set in an applied configuration")
        _check_type(rt, config)
        metadata = config.get("metadata")
        if not isinstance(metadata, dict) or metadata.get("name") != name:
            found = metadata.get("name") if isinstance(metadata, dict) else None
            raise ApiError(
                400, "BadRequest", f"the name of the object ({found}) does not match the name on the URL ({name})"
            )
        force = query.get("force") in ("1", "true")
        dry_run = dry_run_of(query)
        with store.lock:  # read, merge and write as one step, as the real server retries internally
            try:
                live = store.get(rt, ns, name)
            except ApiError as error:
                if error.code != 404 or route.subresource:
                    raise
                created = store.create(rt, ns, config, validation=validation, dry_run=dry_run)
                if not dry_run:
                    store.appliers[created["metadata"]["uid"]] = {manager: ssa.fields(config)}
                return 201, created
            uid = live["metadata"]["uid"]
            try:
                merged, owners = ssa.apply(live, config, manager, store.appliers.get(uid, {}), force=force)
            except ssa.ApplyConflict as conflict:
                raise ApiError(409, "Conflict", str(conflict)) from None
            except patching.PatchError as error:
                raise ApiError(422, "Invalid", str(error)) from None
            updated = store.update(
                rt, ns, name, merged, subresource=route.subresource, validation=validation, dry_run=dry_run
            )
            if not dry_run:
                store.appliers[uid] = owners
            return 200, updated

    def _write_scale(self, route: Route, scale: dict[str, Any], dry_run: bool = False) -> Any:
        store = self.server.standin.store
        ns = route.namespace or ""
        current = store.get(route.rt, ns, route.name or "")
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ApiError(
                422,
                "Invalid",
                f'Scale.autoscaling "{route.name}" is invalid: spec.replicas: Invalid value: {json.dumps(replicas)}: must be greater than or equal to 0',
            )
        wanted = (scale.get("metadata") or {}).get("resourceVersion")
        updated = dict(current, spec=dict(current.get("spec") or {}, replicas=replicas))
        updated["metadata"] = dict(
            current["metadata"], resourceVersion=wanted or current["metadata"]["resourceVersion"]
        )
        return _scale(store.update(route.rt, ns, route.name or "", updated, dry_run=dry_run))

    def _watch(self, route: Route, query: dict[str, str]) -> None:
        standin = self.server.standin
        store = standin.store
        match = self._match(query, route.rt.kind)
        timeout = float(query.get("timeoutSeconds") or 1800)
        since_text = query.get("resourceVersion") or ""
        generation = standin.faults.watch_generation
        initial: list[dict[str, Any]] = []
        send_initial = query.get("sendInitialEvents") == "true"
        if since_text in ("", "0") or send_initial:
            items, since = store.list(route.rt, route.namespace, match)
            items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
            initial = [{"type": "ADDED", "object": o} for o in items]
            if send_initial:
                # The watch-list protocol: a bookmark marks the end of the initial state.
                initial.append(
                    {
                        "type": "BOOKMARK",
                        "object": {
                            "kind": route.rt.kind,
                            "apiVersion": route.rt.api_version,
                            "metadata": {
                                "resourceVersion": str(since),
                                "annotations": {"k8s.io/initial-events-end": "true"},
                            },
                        },
                    }
                )
        else:
            try:
                since = int(since_text)
            except ValueError:
                raise ApiError(400, "BadRequest", f"invalid resource version {since_text!r}") from None
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self._record(200)
        self.end_headers()
        stop = threading.Event()
        standin.register_watch(stop)

        as_table = "as=Table" in self.headers.get("Accept", "")  # `kubectl get -w`: rows, not objects

        def chunk(event: dict[str, Any]) -> None:
            obj = event.get("object")
            if as_table and event.get("type") in ("ADDED", "MODIFIED", "DELETED") and isinstance(obj, dict):
                event = {"type": event["type"], "object": printing.table(route.rt, [obj], obj["metadata"]["resourceVersion"])}
            data = dumps(event) + b"\n"
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        garbled = standin.faults.garble_generation
        frozen_at = standin.faults.freeze_generation
        bookmarks = standin.bookmark_interval if query.get("allowWatchBookmarks") == "true" else None

        def hang_while_frozen() -> bool:
            """A frozen stream sends nothing and keeps the connection, until thawed or stopped."""
            if standin.faults.freeze_generation == frozen_at:
                return False
            while standin.faults.frozen.is_set() and not standin.stopping.is_set() and not stop.is_set():
                standin.stopping.wait(0.1)
            return True

        def garble() -> None:
            nonlocal garbled
            if standin.faults.garble_generation != garbled and standin.faults.garbage:
                garbled = standin.faults.garble_generation
                data = standin.faults.garbage
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        try:
            for event in initial:
                chunk(event)
            try:
                events = store.watch(
                    route.rt, route.namespace, match, since, stop=stop, timeout=timeout, bookmark_every=bookmarks
                )
                for type_, obj in events:
                    if standin.faults.watch_generation != generation or hang_while_frozen():
                        self.close_connection = True
                        break
                    garble()
                    if type_ == "BOOKMARK":
                        metadata = {"resourceVersion": obj["resourceVersion"]}
                        obj = {"kind": route.rt.kind, "apiVersion": route.rt.api_version, "metadata": metadata}
                    chunk({"type": type_, "object": obj})
            except ApiError as error:
                chunk({"type": "ERROR", "object": error.status()})
            if standin.faults.watch_generation != generation or self.close_connection:
                self.close_connection = True  # a cut or frozen watch: the connection drops mid-stream
                return
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True
        finally:
            standin.unregister_watch(stop)


def dry_run_of(query: dict[str, str]) -> bool:
    """``?dryRun=All``: the write is validated and answered, never stored (the only value a server knows)."""
    value = query.get("dryRun")
    if value in (None, ""):
        return False
    if value != "All":
        raise ApiError(400, "BadRequest", f'dryRun: Unsupported value: "{value}": supported values: "All"')
    return True


def _check_type(rt: ResourceType, body: dict[str, Any]) -> None:
    if body.get("kind") not in (None, rt.kind) or body.get("apiVersion") not in (None, rt.api_version):
        raise ApiError(
            400,
            "BadRequest",
            f"the API version in the data ({body.get('apiVersion')}) does not match the expected API version ({rt.api_version})"
            if body.get("apiVersion") not in (None, rt.api_version)
            else f"the kind in the data ({body.get('kind')}) does not match the expected kind ({rt.kind})",
        )


def _scale(dep: dict[str, Any]) -> dict[str, Any]:
    metadata = dep["metadata"]
    selector = ((dep.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: metadata[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in metadata
        },
        "spec": {"replicas": (dep.get("spec") or {}).get("replicas", 0)},
        "status": {
            "replicas": (dep.get("status") or {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(selector.items())),
        },
    }


class StandIn:
    """A running stand-in API server. Use as a context manager, or start() and stop().

    ``deployment_delay`` is how long the Deployment controller waits before it reports a
    Deployment ready (None: no Deployment controller at all).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        deployment_delay: float | None = 0.05,
        history: int = 100_000,
        namespaces: tuple[str, ...] = ("default", "kube-system"),
        directory: str | os.PathLike[str] | None = None,
        bookmark_interval: float = 60.0,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.bookmark_interval = bookmark_interval  # a BOOKMARK this often on watches that ask for them
        self.token = token or secrets.token_urlsafe(24)
        self.registry = Registry()
        self.store = Store(self.registry, history=history)
        self.log = RequestLog()
        self.faults = Faults()
        self.gc = GarbageCollector(self.store)
        # The workload chain (Deployment -> ReplicaSet -> Pods, and a kubelet that runs them after
        # deployment_delay seconds); None: no controller, Deployments never get a status.
        self.deployments = (
            WorkloadController(self.store, self.registry, delay=deployment_delay or 0.0)
            if deployment_delay is not None
            else None
        )
        self.stopping = threading.Event()
        self._watches: set[threading.Event] = set()
        self._watch_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._own_dir = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="eevee-standin-"))
        for name in namespaces:
            self.create_namespace(name)

    # --- lifecycle -----------------------------------------------------------------

    def start(self) -> StandIn:
        server = _Server((self.host, self.requested_port), Handler)
        # The handshake happens in each request's thread, not in the accept loop.
        server.socket = server_context().wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        server.standin = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="standin-http", daemon=True
        )
        self._thread.start()
        self.gc.start()
        if self.deployments is not None:
            self.deployments.start()
        self.write_kubeconfig(self.kubeconfig)
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.faults.resume()
        self.faults.thaw_watches()
        with self._watch_lock:
            for stop in self._watches:
                stop.set()
        self.store.close()
        self.gc.stop()
        if self.deployments is not None:
            self.deployments.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def pod_fault(self, namespace: str, deployment: str, mode: str | None, **details: Any) -> None:
        """The simulated kubelet fails the Deployment's Pods: crashloop, image, config, unschedulable
        (None: they run again). See kubestandin.workloads."""
        assert self.deployments is not None, "this stand-in runs no workload controller"
        self.deployments.pod_fault(namespace, deployment, mode, **details)

    def freeze_watches(self) -> None:
        """Every open watch goes silent with its connection open (faults.freeze_watches)."""
        self.faults.freeze_watches()

    def thaw_watches(self) -> None:
        self.faults.thaw_watches()

    def cut_watches(self) -> None:
        """Drop every open watch connection now, mid-stream (clients see the connection end)."""
        self.faults.cut_watches()
        with self._watch_lock:
            for stop in self._watches:
                stop.set()

    def register_watch(self, stop: threading.Event) -> None:
        with self._watch_lock:
            self._watches.add(stop)

    def unregister_watch(self, stop: threading.Event) -> None:
        with self._watch_lock:
            self._watches.discard(stop)

    @property
    def port(self) -> int:
        assert self._server is not None, "the stand-in is not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    def write_kubeconfig(self, path: str | os.PathLike[str], *, namespace: str = "default") -> Path:
        text = (
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: standin\n  cluster:\n    server: {self.url}\n"
            f"    certificate-authority-data: {base64.b64encode(certificate()[0]).decode()}\n"
            f"users:\n- name: standin\n  user:\n    token: {self.token}\n"
            f"contexts:\n- name: standin\n  context:\n    cluster: standin\n    user: standin\n    namespace: {namespace}\n"
            "current-context: standin\n"
        )
        target = Path(path)
        target.write_text(text)
        target.chmod(0o600)
        return target

    # --- conveniences for tests and the demo (no HTTP, not in the request log) -----

    def create_namespace(self, name: str) -> None:
        rt = self.registry.get("", "v1", "namespaces")
        assert rt is not None
        try:
            self.store.create(rt, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        except ApiError as error:
            if error.code != 409:
                raise

    def seed(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create an object directly in the store (setup that should not count as traffic)."""
        rt = self.registry.by_kind(obj["apiVersion"], obj["kind"])
        if rt is None:
            raise KeyError(f"unknown kind {obj['apiVersion']} {obj['kind']}")
        namespace = obj.get("metadata", {}).get("namespace", "default") if rt.namespaced else ""
        return self.store.create(rt, namespace, json.loads(json.dumps(obj)))  # as if it came over the wire

    def objects(self, api_version: str, kind: str) -> list[dict[str, Any]]:
        """Every stored object of a kind, in all namespaces (test bookkeeping, not traffic)."""
        rt = self.registry.by_kind(api_version, kind)
        if rt is None:
            raise KeyError(f"unknown kind {api_version} {kind}")
        return self.store.list(rt, None, lambda obj: True)[0]

    def api_client(self) -> Any:
        """An official ``kubernetes`` client configured for this server."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.url
        configuration.api_key = {"authorization": f"Bearer {self.token}"}
        configuration.ssl_ca_cert = str(self.ca_file)
        configuration.connection_pool_maxsize = 32  # a watch per kind, as the operator's own client
        return client.ApiClient(configuration)

    @property
    def ca_file(self) -> Path:
        path = self.directory / "ca.crt"
        if not path.exists():
            path.write_bytes(certificate()[0])
        return path
