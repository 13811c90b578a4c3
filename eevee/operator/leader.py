"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go does it.

Why not ``kubernetes.leaderelection``: its loops block with no way to stop them,
it never releases the lease (a restart then waits a full lease duration), it
uses the library's global default client instead of ours, and it logs at INFO on
every retry. The algorithm here is the same one:

- the Lease is written with its resourceVersion, so two candidates can never
  both win (the loser gets 409 Conflict);
- another holder's lease counts as expired when its record has not changed for
  ``duration`` seconds *of our own clock* (no comparison of clocks across nodes);
- a leader that cannot renew within ``renew_deadline`` stops leading before its
  lease could expire for others;
- on shutdown the leader releases the lease so a successor takes over at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from eevee.kube.client import Kube, KubeError

log = logging.getLogger("eevee.leader")
LEASES = ("coordination.k8s.io/v1", "leases")


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    def __init__(
        self,
        kube: Kube,
        *,
        namespace: str,
        name: str,
        identity: str,
        duration: float = 15.0,
        renew_deadline: float | None = None,
        retry_period: float | None = None,
        on_change: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.duration = duration
        self.renew_deadline = renew_deadline if renew_deadline is not None else duration * 2 / 3
        self.retry_period = retry_period if retry_period is not None else max(0.05, duration / 7.5)
        self.on_change = on_change or (lambda leading: None)
        self.clock = clock
        self.leading = threading.Event()
        self.in_touch = False  # the last attempt reached the API server (a follower standing by is ready)
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._renewed_at = 0.0

    def run(self, stop: threading.Event) -> None:
        """Campaign and renew until ``stop``; release the lease on the way out."""
        while not stop.is_set():
            try:
                won = self._try_acquire_or_renew()
                self.in_touch = True
            except KubeError as error:
                won = False
                self.in_touch = False
                log.debug("lease %s/%s: %s", self.namespace, self.name, error)
            if won:
                self._renewed_at = self.clock()
                self._set(True)
            elif self.leading.is_set() and self.clock() - self._renewed_at > self.renew_deadline:
                log.warning("could not renew the leader lease within %.1fs; stepping down", self.renew_deadline)
                self._set(False)
            stop.wait(self.retry_period)
        if self.leading.is_set():
            self.release()

    def _set(self, leading: bool) -> None:
        if leading != self.leading.is_set():
            (self.leading.set if leading else self.leading.clear)()
            log.info("%s leadership of lease %s/%s", "acquired" if leading else "lost", self.namespace, self.name)
            self.on_change(leading)

    def _try_acquire_or_renew(self) -> bool:
        now_text = _micro_now()
        try:
            lease = self.kube.get(*LEASES, self.namespace, self.name)
        except KubeError as error:
            if error.code != 404:
                raise
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {
                    "holderIdentity": self.identity,
                    "leaseDurationSeconds": max(1, round(self.duration)),
                    "acquireTime": now_text,
                    "renewTime": now_text,
                    "leaseTransitions": 0,
                },
            }
            try:
                self.kube.create(*LEASES, self.namespace, body)
            except KubeError as create_error:
                if create_error.code == 409:
                    return False
                raise
            return True
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"), spec.get("leaseDurationSeconds"))
        if record != self._observed:
            self._observed = record
            self._observed_at = self.clock()
        duration = float(spec.get("leaseDurationSeconds") or self.duration)
        if holder and holder != self.identity and self._observed_at + duration > self.clock():
            return False
        new_spec = dict(spec)
        new_spec.update(
            holderIdentity=self.identity, leaseDurationSeconds=max(1, round(self.duration)), renewTime=now_text
        )
        if holder != self.identity:
            new_spec["acquireTime"] = now_text
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        updated = dict(lease, spec=new_spec)
        try:
            self.kube.replace(*LEASES, self.namespace, self.name, updated)
        except KubeError as error:
            if error.code == 409:
                return False
            raise
        return True

    def release(self) -> None:
        """Give the lease up (holder cleared) so that another replica leads at once."""
        try:
            lease = self.kube.get(*LEASES, self.namespace, self.name)
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            spec = dict(lease["spec"], holderIdentity="", leaseDurationSeconds=1, renewTime=_micro_now())
            self.kube.replace(*LEASES, self.namespace, self.name, dict(lease, spec=spec))
            log.info("released lease %s/%s", self.namespace, self.name)
        except KubeError as error:
            log.warning("could not release lease %s/%s: %s", self.namespace, self.name, error)
        finally:
            self._set(False)
