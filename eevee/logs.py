"""Logging: one JSON object per line by default (``LOG_FORMAT=text`` for people).

Reconcile lines carry ``kind``, ``namespace`` and ``name`` (pass them in
``extra``). Secret values the operator knows (its API token) are registered with
:func:`redact` and replaced by ``***`` in every record, as a last line of defence:
no code path is meant to log them in the first place.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def redact(value: str | None) -> None:
    """Never let ``value`` appear in a log line."""
    if value and len(value) >= 6:
        with _secrets_lock:
            _secrets.add(value)


def _scrub(text: str) -> str:
    with _secrets_lock:
        known = list(_secrets)
    for secret in known:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    # ``name`` is taken by the logger's name on a LogRecord: resources travel as resource_name.
    return {
        ("name" if k == "resource_name" else k): v
        for k, v in vars(record).items()
        if k not in _STANDARD and not k.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _scrub(json.dumps(entry, default=str))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        where = ""
        if "kind" in fields:
            where = f" {fields.pop('kind')} {fields.pop('namespace', '')}/{fields.pop('name', '')}"
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        stamp = datetime.fromtimestamp(record.created).strftime("%H:%M:%S")
        line = f"{stamp} {record.levelname:<7} {record.name}{where}: {record.getMessage()}" + (
            f" ({extra})" if extra else ""
        )
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return _scrub(line)


def configure(level: str = "INFO", fmt: str = "json", stream: Any = None) -> None:
    """Configure the ``eevee`` loggers (others stay at WARNING)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("eevee").setLevel(level)
    for noisy in ("kubernetes", "urllib3", "waitress"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
