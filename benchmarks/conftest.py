"""Benchmarks with pytest-benchmark.

``pytest`` (and CI) runs a short version: few rounds, 100 and 1,000 modules, failing only when
a ratio or count target breaks (no-op reconcile vs its reference, writes and requests per
steady pass). ``tox -e bench`` runs the full version (more rounds, 5,000 modules too) and saves
the results as JSON; its figures are in the README's Performance section.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eevee.engine.tables import RuleSet, load_rules  # noqa: E402
from eevee.kube.config import kubeconfig_connection  # noqa: E402

FULL = os.environ.get("EEVEE_BENCH_FULL") == "1"
SCALES = (100, 1000, 5000) if FULL else (100, 1000)
ROUNDS = 10 if FULL else 3
NAMESPACE = "eevee-bot"


@pytest.fixture(scope="session")
def rules() -> RuleSet:
    return load_rules(ROOT / "rules")


def module_spec(index: int) -> dict[str, Any]:
    return {"moduleName": f"m{index}", "image": "ghcr.io/eeveebot/m:1.0.0", "ipcConfig": "bus", "metrics": True,
            "moduleConfig": f"index: {index}\n", "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}}


def seeded_standin(count: int) -> Any:
    """A started stand-in holding the CRDs, one IpcConfig and ``count`` BotModules, and nothing
    the operator makes."""
    from eevee.manifests import read_manifests
    from kubestandin.server import StandIn

    standin = StandIn(deployment_delay=0.0).start()
    standin.create_namespace(NAMESPACE)
    for crd in read_manifests([ROOT / "crds"]):
        standin.seed(crd)
    standin.seed({"apiVersion": "eevee.bot/v1", "kind": "IpcConfig", "metadata": {"name": "bus", "namespace": NAMESPACE}, "spec": {}})
    for index in range(count):
        standin.seed({"apiVersion": "eevee.bot/v1", "kind": "BotModule",
                      "metadata": {"name": f"m{index}", "namespace": NAMESPACE}, "spec": module_spec(index)})
    return standin


def ready_resources(standin: Any) -> int:
    """How many custom resources report Ready=True for their current generation."""
    ready = 0
    for obj in standin.objects("eevee.bot/v1", "BotModule") + standin.objects("eevee.bot/v1", "IpcConfig"):
        status = obj.get("status") or {}
        conditions = {c["type"]: c for c in status.get("conditions") or []}
        if conditions.get("Ready", {}).get("status") == "True" and status.get("observedGeneration") == obj["metadata"]["generation"]:
            ready += 1
    return ready


class Scale:
    """A stand-in holding ``count`` BotModules, and an operator loop (not started) that converged them."""

    def __init__(self, count: int) -> None:
        from eevee.kube.client import Kube
        from eevee.metrics import Metrics
        from eevee.operator.reload import RulesSource
        from eevee.operator.runner import Runner
        from eevee.settings import Settings

        self.count = count
        self.standin = seeded_standin(count)
        self.settings = Settings(namespace=NAMESPACE, watch_namespaces=(NAMESPACE,), rules_dir=str(ROOT / "rules"),
                                 leader_election=False, poll_interval=3600)
        self.metrics = Metrics()
        kube = Kube(kubeconfig_connection(self.standin.kubeconfig), observe=self.metrics.observe_kube)
        self.kube = kube
        self.runner = Runner(self.settings, kube, self.metrics, RulesSource(self.settings.rules_dir, self.metrics), identity="bench")
        # The informers list every kind into the cache and follow it; the loop itself is not
        # started: the benchmarks run its passes.
        self.runner.start_threads()
        assert self.runner.wait_for_cache(60 + count * 0.05), "the cache did not sync"
        # Converge: create the children, then record the Deployments' readiness in status, until
        # a pass (with every event in) writes nothing.
        deadline = time.monotonic() + 120 + count * 0.25  # generous: a CI machine as loaded as ours
        while True:
            mark = self.standin.log.mark()
            self.runner.full_pass()
            if not self.standin.log.writes(mark) and self.ready() == count + 1:
                break
            assert time.monotonic() < deadline, "the benchmark cluster did not converge"
            time.sleep(0.2)

    def ready(self) -> int:
        return ready_resources(self.standin)

    def close(self) -> None:
        self.runner.shutdown()
        self.runner.join()
        self.standin.stop()


@pytest.fixture(scope="module", params=SCALES, ids=[f"{n}-modules" for n in SCALES])
def scale(request: pytest.FixtureRequest) -> Iterator[Scale]:
    cluster = Scale(request.param)
    yield cluster
    cluster.close()
