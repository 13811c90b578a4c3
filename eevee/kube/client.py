"""The one module that talks to the Kubernetes API.

It works on plain JSON over urllib3 (the HTTP library under the official client): the
official client's generated models are slow to build, hide fields they do not know and
cost ~35 MB of memory just to import. Where the server is and how to authenticate comes
from ``config.py`` (in-cluster configuration or a kubeconfig). Answers are decoded with
orjson.

Every call is timed and reported to an ``observe`` hook (verb, resource, code,
seconds) so metrics live elsewhere. Errors become :class:`KubeError` with the API
server's status code and reason, or code 0 for a transport failure (refused
connection, timeout).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import orjson
import urllib3

from eevee import __version__
from eevee.kube.config import ConfigurationError, Connection, load_connection

__all__ = ["ConfigurationError", "Connection", "Kube", "KubeError", "load_connection"]

log = logging.getLogger("eevee.kube")

Observer = Callable[[str, str, int, float], None]

USER_AGENT = f"eevee-operator/{__version__}"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"


# Objects per list page. Smaller pages keep less decoded JSON alive at once (each page is
# folded into the snapshot before the next is read); 100 costs ~10 requests per kind at
# 1,000 modules, which the steady-pass benchmark holds against a plain-HTTP floor.
PAGE_SIZE = 100
CONNECT_TIMEOUT = 10.0  # seconds to open a connection to the API server


class KubeError(Exception):
    """A failed API call: ``code`` is the HTTP status (0: no answer), ``reason`` the Status reason."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(f"{code} {reason}: {message}" if code else f"{reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message


def resource_path(
    api_version: str, plural: str, namespace: str | None, name: str | None = None, subresource: str | None = None
) -> str:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    path = f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"
    if name:
        path += f"/{name}"
    if subresource:
        path += f"/{subresource}"
    return path


def plural_of(kind: str) -> str:
    """The resource name of a kind, as kubectl guesses it (ConfigMap → configmaps, Ingress → ingresses)."""
    lower = kind.lower()
    if lower.endswith("s"):
        return lower + "es"
    if lower.endswith("y"):
        return lower[:-1] + "ies"
    return lower + "s"


# Connections kept to the API server: one per watched kind (held by its watch) plus the loop's
# own requests; the client's default (5 per core) is fewer than the kinds the tables watch.
POOL_SIZE = 32


def pool_manager(connection: Connection, maxsize: int = POOL_SIZE) -> urllib3.PoolManager:
    """Pooled connections to the API server, with its TLS settings."""
    tls: dict[str, Any] = {
        "ca_certs": connection.ca_file,
        "ca_cert_data": connection.ca_data,
        "cert_file": connection.cert_file,
        "key_file": connection.key_file,
    }
    if connection.verify:
        tls["cert_reqs"] = "CERT_REQUIRED"
        if connection.tls_server_name:
            tls["server_hostname"] = connection.tls_server_name
    else:
        # The user turned verification off (insecure-skip-tls-verify), for this server, knowingly:
        # said once here rather than by urllib3 on every request.
        log.warning("TLS verification of the API server %s is off (insecure-skip-tls-verify)", connection.server)
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        tls.update(cert_reqs="CERT_NONE", assert_hostname=False)
    if connection.proxy:
        return urllib3.ProxyManager(connection.proxy, maxsize=maxsize, **tls)
    return urllib3.PoolManager(maxsize=maxsize, **tls)


class Kube:
    """Typed-enough access to the API for the operator: list, watch, create, patch, delete."""

    def __init__(self, connection: Connection, *, timeout: float = 15.0, observe: Observer | None = None) -> None:
        self.connection = connection
        self.pool = pool_manager(connection)
        self.timeout = timeout
        self.observe = observe or (lambda verb, resource, code, seconds: None)
        self._streams: set[Any] = set()
        self._closed: set[int] = set()
        self._streams_lock = threading.Lock()

    def close_streams(self) -> None:
        """End every open watch (their iterators raise KubeError(0, "WatchEnded"))."""
        with self._streams_lock:
            streams = list(self._streams)
            # A TLS stream shut down under its reader can hand it a few bytes of garbage;
            # those are the end of the watch, not a bad event.
            self._closed.update(id(stream) for stream in streams)
        for stream in streams:
            with contextlib.suppress(Exception):
                stream.shutdown() if hasattr(stream, "shutdown") else stream.close()

    def _request(
        self,
        verb: str,
        resource: str,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, Any]] | None = None,
        content_type: str = "application/json",
        stream: bool = False,
        timeout: float | None = None,
        read_timeout: float | None = None,
    ) -> Any:
        started = time.monotonic()
        code = 0
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if body is not None:
            headers["Content-Type"] = content_type
        authorization = self.connection.authorization()
        if authorization:
            headers["Authorization"] = authorization
        url = self.connection.server + path
        if query:
            url += "?" + urlencode(query)
        try:
            response = self.pool.request(
                method,
                url,
                body=None if body is None else orjson.dumps(body),
                headers=headers,
                # A connect timeout and a read timeout on every request; a stream (a watch) has no
                # total: its read timeout is the longest silence it may keep.
                timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=read_timeout)
                if stream
                else urllib3.Timeout(total=timeout or self.timeout, connect=CONNECT_TIMEOUT),
                preload_content=not stream,
            )
            code = response.status
            if stream and 200 <= code < 300:
                return response
            data = response.data
            if stream:
                response.release_conn()
            if not 200 <= code < 300:
                raise _error(code, data)
            return orjson.loads(data) if data else None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            code = 0
            raise KubeError(0, "Unreachable", f"{type(error).__name__}: {error}") from None
        finally:
            self.observe(verb, resource, code, time.monotonic() - started)

    # --- reads ---------------------------------------------------------------------

    def list(
        self,
        api_version: str,
        plural: str,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        page_size: int = PAGE_SIZE,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """Every object (all pages), with apiVersion/kind filled in, and the list's resourceVersion;
        ``transform`` is applied to each object as its page is read (only a page is ever whole)."""
        kind = None
        items: list[dict[str, Any]] = []
        token = None
        version = ""
        while True:
            query: list[tuple[str, Any]] = [("limit", page_size)]
            if label_selector:
                query.append(("labelSelector", label_selector))
            if field_selector:
                query.append(("fieldSelector", field_selector))
            if token:
                query.append(("continue", token))
            page = self._request("list", plural, "GET", resource_path(api_version, plural, namespace), query=query)
            kind = (page.get("kind") or "").removesuffix("List")
            for item in page.get("items") or []:
                item.setdefault("apiVersion", api_version)
                item.setdefault("kind", kind)
                # Server-side apply bookkeeping: 1-2 KB an object on a real cluster, never read here.
                item.get("metadata", {}).pop("managedFields", None)
                items.append(transform(item) if transform is not None else item)
            version = page.get("metadata", {}).get("resourceVersion", version)
            token = page.get("metadata", {}).get("continue")
            if not token:
                return items, version

    def get(self, api_version: str, plural: str, namespace: str | None, name: str) -> dict[str, Any]:
        return self._request("get", plural, "GET", resource_path(api_version, plural, namespace, name))

    def watch(
        self,
        api_version: str,
        plural: str,
        namespace: str | None,
        *,
        resource_version: str,
        label_selector: str | None = None,
        field_selector: str | None = None,
        timeout_seconds: int = 300,
        silence: float = 100.0,
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Watch events (BOOKMARKs included) from ``resource_version``; a 410 Gone arrives as
        KubeError(410). A stream that sends no byte for ``silence`` seconds ends with
        KubeError(0, "WatchSilent"): a real server sends a bookmark a minute, so a longer silence
        is a stalled connection (a dead NAT entry, a hung proxy), never a quiet kind."""
        query: list[tuple[str, Any]] = [
            ("watch", "true"),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", timeout_seconds),
            ("allowWatchBookmarks", "true"),
        ]
        if label_selector:
            query.append(("labelSelector", label_selector))
        if field_selector:
            query.append(("fieldSelector", field_selector))
        response = self._request(
            "watch",
            plural,
            "GET",
            resource_path(api_version, plural, namespace),
            query=query,
            stream=True,
            read_timeout=silence,
        )
        with self._streams_lock:
            self._streams.add(response)
        try:
            buffer = b""
            for chunk in response.stream(4096, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if not line.strip():
                        continue
                    event = _watch_event(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        raise KubeError(
                            int(status.get("code") or 500), status.get("reason", "Error"), status.get("message", "")
                        )
                    yield event["type"], event["object"]
        except (urllib3.exceptions.ReadTimeoutError, TimeoutError) as error:
            raise KubeError(0, "WatchSilent", f"no byte for {silence:g}s: {type(error).__name__}") from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            if isinstance(error.__context__, (urllib3.exceptions.ReadTimeoutError, TimeoutError)):
                raise KubeError(0, "WatchSilent", f"no byte for {silence:g}s: {type(error).__name__}") from None
            raise KubeError(0, "WatchEnded", f"{type(error).__name__}: {error}") from None
        except ValueError as error:
            # Bytes that are not an event (a garbled or cut stream): the watch ends here
            # and its caller starts a new one from the last resourceVersion it saw.
            with self._streams_lock:
                closed = id(response) in self._closed
            reason = "WatchEnded" if closed else "BadWatchEvent"
            raise KubeError(0, reason, f"{type(error).__name__}: {str(error)[:200]}") from None
        finally:
            with self._streams_lock:
                self._streams.discard(response)
                self._closed.discard(id(response))
            response.release_conn()

    # --- writes --------------------------------------------------------------------

    def create(self, api_version: str, plural: str, namespace: str | None, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("create", plural, "POST", resource_path(api_version, plural, namespace), body=body)

    def patch(
        self,
        api_version: str,
        plural: str,
        namespace: str | None,
        name: str,
        patch: Any,
        *,
        content_type: str = JSON_PATCH,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        resource = f"{plural}/{subresource}" if subresource else plural
        return self._request(
            "patch",
            resource,
            "PATCH",
            resource_path(api_version, plural, namespace, name, subresource),
            body=patch,
            content_type=content_type,
        )

    def replace(
        self, api_version: str, plural: str, namespace: str | None, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        return self._request("update", plural, "PUT", resource_path(api_version, plural, namespace, name), body=body)

    def delete(
        self,
        api_version: str,
        plural: str,
        namespace: str | None,
        name: str,
        *,
        uid: str | None = None,
        propagation: str = "Background",
    ) -> None:
        options: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        if uid:
            options["preconditions"] = {"uid": uid}
        self._request("delete", plural, "DELETE", resource_path(api_version, plural, namespace, name), body=options)


def _watch_event(line: bytes) -> dict[str, Any]:
    """One line of a watch stream as an event; ValueError for anything else."""
    event = orjson.loads(line)  # bad UTF-8 and bad JSON are both ValueErrors
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise ValueError(f"not a watch event: {line[:80]!r}")
    if event["type"] != "ERROR" and not isinstance(event.get("object"), dict):
        raise ValueError(f"a watch event without an object: {line[:80]!r}")
    return event


def _error(code: int, data: Any) -> KubeError:
    try:
        status = orjson.loads(data) if data else {}
    except (ValueError, TypeError):
        status = {}
    if not isinstance(status, dict):
        status = {}
    return KubeError(code, status.get("reason") or "Error", status.get("message") or f"HTTP {code}")
