"""Custom resources the engine tests render (one IpcConfig, BotModules made to measure)."""

from __future__ import annotations

from typing import Any

IPC: dict[str, Any] = {
    "apiVersion": "eevee.bot/v1",
    "kind": "IpcConfig",
    "metadata": {"name": "bus", "namespace": "bot", "uid": "u-bus"},
    "spec": {},
}


def module(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "eevee.bot/v1",
        "kind": "BotModule",
        "metadata": {"name": "m", "namespace": "bot", "uid": "u-m"},
        "spec": {"moduleName": "echo", "image": "echo:1", **spec},
    }
