"""Where the API server is and how to authenticate to it: in-cluster configuration or a kubeconfig.

The operator talks to the API over plain urllib3 (see ``client.py``), so it does not import the
official ``kubernetes`` package: its thousand generated model classes cost ~35 MB of memory
before the first request. Reading a configuration is small and settled, so it is done here the
way client-go and the official Python client do it:

- in a pod: the ``KUBERNETES_SERVICE_HOST``/``_PORT`` variables and the service account's
  token and CA, the token read again every minute (bound tokens are rotated by the kubelet);
- a kubeconfig (``KUBECONFIG`` may list several files; the first to define a name wins):
  the current context's cluster (``server``, ``certificate-authority[-data]``,
  ``insecure-skip-tls-verify``, ``tls-server-name``, ``proxy-url``) and user (``token``,
  ``tokenFile``, ``client-certificate[-data]``/``client-key[-data]``, ``username``/``password``).

A user with an ``exec`` credential plugin or an ``auth-provider`` is handed to the official
client's loader (imported only then), which runs the plugin and refreshes what it returns.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_REREAD_SECONDS = 60.0


class ConfigurationError(Exception):
    """No usable in-cluster configuration or kubeconfig."""


@dataclass(frozen=True)
class Connection:
    """An API server and the credentials to use on it."""

    server: str
    ca_file: str | None = None
    ca_data: str | None = None  # PEM
    verify: bool = True
    cert_file: str | None = None
    key_file: str | None = None
    tls_server_name: str | None = None
    proxy: str | None = None
    # The Authorization header's value, asked for on every request (a token may be rotated).
    authorization: Callable[[], str | None] = field(default=lambda: None, compare=False)


def load_connection(*, in_cluster: bool | None = None, kubeconfig: str | None = None) -> Connection:
    """In-cluster configuration (tried first when ``in_cluster`` is None) or a kubeconfig."""
    if in_cluster or in_cluster is None:
        try:
            return in_cluster_connection()
        except ConfigurationError:
            if in_cluster:
                raise
    return kubeconfig_connection(kubeconfig)


def in_cluster_connection(service_account: Path = SERVICE_ACCOUNT_DIR) -> Connection:
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ConfigurationError("cannot load the in-cluster configuration: KUBERNETES_SERVICE_HOST/PORT are not set")
    token_file, ca_file = service_account / "token", service_account / "ca.crt"
    for needed in (token_file, ca_file):
        if not needed.is_file():
            raise ConfigurationError(f"cannot load the in-cluster configuration: {needed} does not exist")
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return Connection(
        server=f"https://{host}:{port}", ca_file=str(ca_file), authorization=_token_file(token_file)
    )


def kubeconfig_connection(kubeconfig: str | os.PathLike[str] | None = None) -> Connection:
    kubeconfig = os.fspath(kubeconfig) if kubeconfig is not None else None
    paths = [p for p in (kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config").split(os.pathsep) if p]
    where = f"kubeconfig {kubeconfig or os.environ.get('KUBECONFIG') or '~/.kube/config'}"
    try:
        merged = _merged(paths)
        return _from_kubeconfig(merged, kubeconfig)
    except (OSError, YAMLError, ValueError, KeyError, TypeError) as error:
        raise ConfigurationError(f"cannot load the {where}: {error}") from None


# --- kubeconfig ----------------------------------------------------------------------------


@dataclass
class _Merged:
    clusters: dict[str, tuple[dict[str, Any], Path]] = field(default_factory=dict)
    users: dict[str, tuple[dict[str, Any], Path]] = field(default_factory=dict)
    contexts: dict[str, dict[str, Any]] = field(default_factory=dict)
    current: str | None = None


def _merged(paths: list[str]) -> _Merged:
    """Several kubeconfig files as one: the first file to name a cluster, user, context or
    current context wins (client-go's merge rule). A missing file is skipped unless it is the only one."""
    merged = _Merged()
    found = False
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.is_file():
            if len(paths) == 1:
                raise FileNotFoundError(f"{path} does not exist")
            continue
        found = True
        document = YAML(typ="safe", pure=True).load(path.read_text()) or {}
        if not isinstance(document, dict):
            raise ValueError(f"{path} is not a kubeconfig")
        base = path.parent
        for section, target in (("clusters", merged.clusters), ("users", merged.users)):
            for entry in document.get(section) or []:
                target.setdefault(entry["name"], (entry.get(section[:-1]) or {}, base))
        for entry in document.get("contexts") or []:
            merged.contexts.setdefault(entry["name"], entry.get("context") or {})
        merged.current = merged.current or document.get("current-context") or None
    if not found:
        raise FileNotFoundError(f"none of {', '.join(paths)} exists")
    return merged


def _from_kubeconfig(merged: _Merged, kubeconfig: str | None) -> Connection:
    if not merged.current:
        raise ValueError("no current-context is set")
    context = merged.contexts.get(merged.current)
    if context is None:
        raise ValueError(f"context {merged.current!r} is not defined")
    cluster, cluster_base = merged.clusters.get(context.get("cluster", ""), ({}, Path()))
    if not cluster.get("server"):
        raise ValueError(f"context {merged.current!r}: its cluster has no server")
    user, user_base = merged.users.get(context.get("user", ""), ({}, Path()))
    if user.get("exec") or user.get("auth-provider"):
        return _official_loader(kubeconfig)
    cert_file = _file(user, "client-certificate", user_base)
    key_file = _file(user, "client-key", user_base)
    return Connection(
        server=str(cluster["server"]).rstrip("/"),
        ca_file=_path(cluster.get("certificate-authority"), cluster_base),
        ca_data=_decoded(cluster.get("certificate-authority-data")),
        verify=not cluster.get("insecure-skip-tls-verify", False),
        cert_file=cert_file,
        key_file=key_file,
        tls_server_name=cluster.get("tls-server-name") or None,
        proxy=cluster.get("proxy-url") or None,
        authorization=_user_authorization(user, user_base),
    )


def _user_authorization(user: dict[str, Any], base: Path) -> Callable[[], str | None]:
    if user.get("token"):
        header = f"Bearer {user['token']}"
        return lambda: header
    if user.get("tokenFile"):
        return _token_file(Path(_path(user["tokenFile"], base) or ""))
    if user.get("username"):
        pair = f"{user['username']}:{user.get('password', '')}".encode()
        header = "Basic " + base64.b64encode(pair).decode()
        return lambda: header
    return lambda: None


def _token_file(path: Path) -> Callable[[], str | None]:
    """A bearer token read from a file, again once a minute (as client-go does for rotated tokens)."""
    lock = threading.Lock()
    state: dict[str, Any] = {"read": -TOKEN_REREAD_SECONDS, "header": None}
    if not path.read_text().strip():
        raise ConfigurationError(f"the token file {path} is empty")

    def authorization() -> str | None:
        with lock:
            now = time.monotonic()
            if now - state["read"] >= TOKEN_REREAD_SECONDS:
                with contextlib.suppress(OSError):  # keep the last token if the file is mid-rotation
                    token = path.read_text().strip()
                    if token:
                        state["header"] = f"Bearer {token}"
                state["read"] = now
            return state["header"]

    return authorization


def _path(value: Any, base: Path) -> str | None:
    """A file named in a kubeconfig: relative paths are relative to that kubeconfig's directory."""
    if not value:
        return None
    path = Path(str(value)).expanduser()
    return str(path if path.is_absolute() else base / path)


def _decoded(value: Any) -> str | None:
    return base64.b64decode(value).decode() if value else None


def _file(user: dict[str, Any], name: str, base: Path) -> str | None:
    """A client certificate or key, from its file or its inline data (written to a private file:
    Python's TLS loads certificate chains only from files)."""
    if user.get(f"{name}-data"):
        return _private_file(base64.b64decode(user[f"{name}-data"]))
    return _path(user.get(name), base)


def _private_file(data: bytes) -> str:
    handle, name = tempfile.mkstemp(prefix="eevee-kube-", suffix=".pem")
    with os.fdopen(handle, "wb") as file:  # mkstemp makes it readable by its owner only
        file.write(data)
    atexit.register(lambda: os.path.exists(name) and os.unlink(name))
    return name


def _official_loader(kubeconfig: str | None) -> Connection:
    """The official client reads kubeconfigs whose user runs a credential plugin (exec,
    auth-provider); its configuration is then used as ours, token refresh included."""
    from kubernetes import client, config

    configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    except config.ConfigException as error:
        raise ValueError(str(error)) from None

    def authorization() -> str | None:
        return configuration.get_api_key_with_prefix("BearerToken", alias="authorization") or None

    return Connection(
        server=configuration.host.rstrip("/"),
        ca_file=configuration.ssl_ca_cert,
        verify=configuration.verify_ssl,
        cert_file=configuration.cert_file,
        key_file=configuration.key_file,
        tls_server_name=getattr(configuration, "tls_server_name", None),
        proxy=configuration.proxy,
        authorization=authorization,
    )
