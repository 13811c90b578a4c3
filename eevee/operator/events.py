"""Kubernetes Events on custom resources (what ``kubectl describe bm`` shows).

Creations, updates and deletions of children are Normal events; problems are
Warning events, emitted when the problem starts or changes, not on every retry,
so a resource stuck on a missing IpcConfig does not flood the namespace. A failed
event write is logged and dropped: events are informational.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from eevee.kube.client import Kube, KubeError
from eevee.timestamps import rfc3339_now

log = logging.getLogger("eevee.events")
COMPONENT = "eevee-operator"


MAX_NAME = 253  # an Event's name is a DNS subdomain


def event_name(resource_name: str) -> str:
    """``<resource>.<16 hex>``, as client-go names events, shortened to fit a DNS subdomain
    (a BotModule may have a name of 253 characters; its Events must still be accepted)."""
    suffix = f".{secrets.token_hex(8)}"
    return resource_name[: MAX_NAME - len(suffix)].rstrip(".-") + suffix


class EventRecorder:
    def __init__(self, kube: Kube, *, identity: str = "", enabled: bool = True) -> None:
        self.kube = kube
        self.identity = identity or COMPONENT
        self.enabled = enabled

    def record(self, resource: dict[str, Any], type_: str, reason: str, message: str) -> None:
        if not self.enabled:
            return
        metadata = resource["metadata"]
        namespace = metadata.get("namespace", "default")
        stamp = rfc3339_now()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": event_name(metadata["name"]), "namespace": namespace},
            "involvedObject": {
                "apiVersion": resource["apiVersion"],
                "kind": resource["kind"],
                "name": metadata["name"],
                "namespace": namespace,
                "uid": metadata.get("uid", ""),
                "resourceVersion": metadata.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message[:1024],
            "type": type_,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.identity,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        }
        try:
            self.kube.create("v1", "events", namespace, event)
        except KubeError as error:
            log.warning(
                "could not record event %s: %s",
                reason,
                error,
                extra={"kind": resource["kind"], "namespace": namespace, "resource_name": metadata["name"]},
            )
