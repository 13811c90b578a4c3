"""From a spec change to the patched child, with a poll interval of an hour: the watch carries it."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
from kubernetes import client

from benchmarks.conftest import NAMESPACE, ROUNDS, Scale
from eevee.kube.config import kubeconfig_connection

# A cluster of 1,000 modules with their Pods takes a minute to converge on a quiet machine (its
# fixture's time counts in its first test): more than the suite's default timeout on a loaded one.
pytestmark = pytest.mark.timeout(900)

@pytest.fixture(scope="module")
def running(scale: Scale) -> Any:
    from eevee.service import OperatorService

    service = OperatorService(scale.settings, connection=kubeconfig_connection(scale.standin.kubeconfig), http=False).start()
    deadline = time.monotonic() + 60
    while service.runner.passes < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    yield service
    service.stop()


VERSIONS = itertools.count(2)  # each change a new image, whichever test makes it


@pytest.mark.parametrize("settled", [False, True], ids=["back-to-back", "settled"])
def test_spec_change_reaches_its_deployment(benchmark, scale: Scale, running: Any, settled: bool):
    """Target: under 1 s at 1,000 modules. Back to back, each change lands while the rollout of
    the last one still runs (its ReplicaSets and Pods change, and the operator reconciles their
    owner); settled, each waits (untimed) until that rollout is over and the module is Ready."""
    api = scale.standin.api_client()
    custom = client.CustomObjectsApi(api)
    apps = client.AppsV1Api(api)
    versions = VERSIONS
    target = f"m{scale.count // 2}"

    def rolled_out() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            dep = apps.read_namespaced_deployment(f"eevee-{target}-module", NAMESPACE)
            status = dep.status
            module = custom.get_namespaced_custom_object("eevee.bot", "v1", NAMESPACE, "botmodules", target)
            ready = next((c for c in (module.get("status") or {}).get("conditions", []) if c["type"] == "Ready"), {})
            if (status.observed_generation == dep.metadata.generation and status.updated_replicas == dep.spec.replicas
                    and status.ready_replicas == dep.spec.replicas and status.replicas == dep.spec.replicas
                    and ready.get("status") == "True" and ready.get("observedGeneration") == module["metadata"]["generation"]):
                return
            time.sleep(0.05)
        raise AssertionError("the last rollout did not finish within 60 s")

    def change_and_wait() -> None:
        image = f"ghcr.io/eeveebot/m:{next(versions)}.0.0"
        custom.patch_namespaced_custom_object("eevee.bot", "v1", NAMESPACE, "botmodules", target, {"spec": {"image": image}})
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            dep = apps.read_namespaced_deployment(f"eevee-{target}-module", NAMESPACE)
            if dep.spec.template.spec.containers[0].image == image:
                return
            time.sleep(0.002)
        raise AssertionError("the change did not arrive within 30 s")

    benchmark.pedantic(change_and_wait, setup=rolled_out if settled else None, rounds=ROUNDS, iterations=1)
    benchmark.extra_info.update(modules=scale.count, poll_interval_seconds=scale.settings.poll_interval, settled=settled)
    assert running.runner.passes == 1  # carried by the watch, not by a poll pass
