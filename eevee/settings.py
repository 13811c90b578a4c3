"""The operator's settings, read once from the environment (SPEC section 8).

Every variable is documented in the README and mirrored by a value of the
operator chart. Parsing is strict: a malformed number or level stops start-up
with a message naming the variable, rather than running with a surprise.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from eevee.locations import bundled

_SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class SettingsError(ValueError):
    """An environment variable with a value the operator cannot use."""


@dataclass(frozen=True)
class Settings:
    namespace: str = "eevee-bot"
    watch_namespaces: tuple[str, ...] = ("eevee-bot",)  # ("*",) means every namespace
    in_cluster: bool | None = None  # None: detect
    kubeconfig: str | None = None
    http_host: str = "0.0.0.0"
    http_port: int = 9000
    api_token: str | None = field(default=None, repr=False)
    poll_interval: float = 30.0
    rules_dir: str = ""
    log_level: str = "INFO"
    log_format: str = "json"
    api_url: str = ""
    api_token_secret_name: str = "eevee-operator-api-token"
    api_token_secret_key: str = "token"
    # The restore image a BotModule's bootstrapFromBackup uses when it names none: a valid,
    # pinned reference (the eevee operator's default, ghcr.io/eeveebot/backupJob:latest, is
    # neither). The chart's `backupImage` value.
    backup_image: str = "ghcr.io/eeveebot/backupjob:1.0.0"
    leader_election: bool = True
    lease_name: str = "eevee-operator-leader"
    lease_duration: float = 15.0
    identity: str = ""
    rate_limit: float = 10.0  # HTTP API requests per second per client
    rate_burst: int = 20
    # A watch that sends no byte (no event, no bookmark: a real server sends one a minute) for this
    # long is stalled: it is closed and resumed from its last resourceVersion.
    watch_silence: float = 100.0
    # The informers' safety net against missed events: each kind is listed again after this many
    # seconds (jittered, up to +25%, each kind at its own time); 0: never.
    resync_interval: float = 3600.0

    @property
    def all_namespaces(self) -> bool:
        return self.watch_namespaces == ("*",)

    def operator_scope(self) -> dict[str, str]:
        """What rule tables may read under ``operator.``."""
        return {
            "namespace": self.namespace,
            "apiUrl": self.api_url or f"http://eevee-operator.{self.namespace}.svc:{self.http_port}",
            "apiTokenSecretName": self.api_token_secret_name,
            "apiTokenSecretKey": self.api_token_secret_key,
            "backupImage": self.backup_image,
        }


def _number(env: Mapping[str, str], name: str, default: float, *, minimum: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {minimum:g}")
    return value


def _boolean(env: Mapping[str, str], name: str) -> bool | None:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return None
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean (true or false)")


def default_namespace() -> str:
    try:
        return _SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "eevee-bot"
    except OSError:
        return "eevee-bot"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ``env`` (default: the process environment)."""
    env = os.environ if env is None else env
    namespace = env.get("NAMESPACE") or default_namespace()
    watch_raw = env.get("WATCH_NAMESPACES", "").strip()
    if watch_raw == "*":
        watch: tuple[str, ...] = ("*",)
    elif watch_raw:
        watch = tuple(dict.fromkeys(n.strip() for n in watch_raw.split(",") if n.strip()))
    else:
        watch = (namespace,)
    level = env.get("LOG_LEVEL", "INFO").upper()
    if level not in LOG_LEVELS:
        raise SettingsError(f"LOG_LEVEL={level!r} is not one of {', '.join(LOG_LEVELS)}")
    log_format = env.get("LOG_FORMAT", "json").lower()
    if log_format not in ("json", "text"):
        raise SettingsError(f"LOG_FORMAT={log_format!r} is not json or text")
    port = int(_number(env, "HTTP_API_PORT", 9000, minimum=0))
    if port > 65535:
        raise SettingsError(f"HTTP_API_PORT={port} is not a port")
    leader = _boolean(env, "LEADER_ELECTION")
    return Settings(
        namespace=namespace,
        watch_namespaces=watch,
        in_cluster=_boolean(env, "KUBE_IN_CLUSTER_CONFIG"),
        kubeconfig=env.get("KUBECONFIG") or None,
        http_host=env.get("HTTP_API_HOST", "0.0.0.0"),
        http_port=port,
        api_token=env.get("EEVEE_OPERATOR_API_TOKEN") or None,
        poll_interval=_number(env, "POLL_INTERVAL_SECONDS", 30.0, minimum=0.05),
        rules_dir=env.get("RULES_DIR") or str(bundled("rules")),
        log_level=level,
        log_format=log_format,
        api_url=env.get("EEVEE_OPERATOR_API_URL", ""),
        api_token_secret_name=env.get("EEVEE_OPERATOR_API_TOKEN_SECRET", "eevee-operator-api-token"),
        api_token_secret_key=env.get("EEVEE_OPERATOR_API_TOKEN_SECRET_KEY", "token"),
        backup_image=env.get("EEVEE_BACKUP_IMAGE") or Settings.backup_image,
        leader_election=True if leader is None else leader,
        lease_name=env.get("LEASE_NAME", "eevee-operator-leader"),
        lease_duration=_number(env, "LEASE_DURATION_SECONDS", 15.0, minimum=1.0),
        identity=env.get("POD_NAME") or env.get("HOSTNAME") or "",
        rate_limit=_number(env, "HTTP_API_RATE_LIMIT", 10.0, minimum=0.1),
        rate_burst=int(_number(env, "HTTP_API_RATE_BURST", 20, minimum=1)),
        watch_silence=_watch_silence(env),
        resync_interval=_resync(env),
    )


def _watch_silence(env: Mapping[str, str]) -> float:
    value = _number(env, "WATCH_SILENCE_SECONDS", 100.0, minimum=1.0)
    if value > 120:
        raise SettingsError(f"WATCH_SILENCE_SECONDS={value:g} is more than 120: a stalled watch would stay unnoticed")
    return value


def _resync(env: Mapping[str, str]) -> float:
    value = _number(env, "RESYNC_SECONDS", 3600.0, minimum=0.0)
    if 0 < value < 60:
        raise SettingsError(f"RESYNC_SECONDS={value:g} is below 60 (0 turns the resync off)")
    return value
