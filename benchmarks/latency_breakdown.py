"""Where a spec change's time goes, back to back (not a test: a tool behind the README's figures).

    python -m benchmarks.latency_breakdown MODULES ROUNDS    (from the repository root)

Builds the benchmark cluster (``Scale``: stand-in, operator and client in one process, as
benchmarks/test_convergence.py), then changes one module's image ROUNDS times, each as soon as
the last reached its Deployment, and prints the median and mean of each step: the client's
BotModule patch, the watch event reaching the operator, the reconcile starting, a GET of the
Deployment (only when one is needed), the Deployment PATCH being sent, its answer, and the
client seeing it. It also prints the interpreter's garbage collections meanwhile.
"""

from __future__ import annotations

import collections
import gc
import itertools
import statistics
import sys
import time
from typing import Any

from kubernetes import client

from benchmarks.conftest import NAMESPACE, Scale
from eevee.kube.config import kubeconfig_connection
from eevee.service import OperatorService

STEPS = ("event", "reconcile", "get", "patch sent", "patched")


def main(count: int, rounds: int) -> None:
    scale = Scale(count)
    service = OperatorService(scale.settings, connection=kubeconfig_connection(scale.standin.kubeconfig), http=False)
    service.start()
    while service.runner.passes < 1:
        time.sleep(0.01)
    runner, target = service.runner, f"m{count // 2}"
    deployment = f"eevee-{target}-module"
    marks: dict[str, float] = {}

    def mark(step: str) -> None:
        marks.setdefault(step, time.perf_counter())

    def deliver(delivery: Any, original: Any = runner.deliver) -> None:
        obj = getattr(delivery, "obj", None) or {}
        if obj.get("kind") == "BotModule" and obj["metadata"]["name"] == target:
            mark("event")
        original(delivery)

    def reconcile(resource: Any, *args: Any, original: Any = runner.reconciler.reconcile, **kwargs: Any) -> Any:
        if resource["metadata"]["name"] == target and "event" in marks:
            mark("reconcile")
        return original(resource, *args, **kwargs)

    kube = runner.reconciler.kube

    def patch(api_version: str, plural: str, namespace: str, name: str, *args: Any, **kwargs: Any) -> Any:
        if name == deployment and plural == "deployments":
            mark("patch sent")
            answer = original_patch(api_version, plural, namespace, name, *args, **kwargs)
            mark("patched")
            return answer
        return original_patch(api_version, plural, namespace, name, *args, **kwargs)

    def get(api_version: str, plural: str, namespace: str, name: str, *args: Any, **kwargs: Any) -> Any:
        if name == deployment:
            mark("get")
        return original_get(api_version, plural, namespace, name, *args, **kwargs)

    original_patch, original_get = kube.patch, kube.get
    kube.patch, kube.get = patch, get  # type: ignore[method-assign]
    runner.deliver = deliver  # type: ignore[method-assign]
    for informer in list(runner._informers.values()):
        informer.deliver = deliver
    runner.reconciler.reconcile = reconcile  # type: ignore[method-assign]

    collections_seen: list[tuple[int, float]] = []
    started: dict[str, float] = {}

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started["at"] = time.perf_counter()
        else:
            collections_seen.append((info["generation"], time.perf_counter() - started["at"]))

    api = scale.standin.api_client()
    custom, apps = client.CustomObjectsApi(api), client.AppsV1Api(api)
    versions = itertools.count(2)
    rows: dict[str, list[float]] = collections.defaultdict(list)
    gc.callbacks.append(on_gc)
    for _ in range(rounds):
        image = f"ghcr.io/eeveebot/m:{next(versions)}.0.0"
        marks.clear()
        begin = time.perf_counter()
        custom.patch_namespaced_custom_object("eevee.bot", "v1", NAMESPACE, "botmodules", target, {"spec": {"image": image}})
        sent = time.perf_counter()
        while apps.read_namespaced_deployment(deployment, NAMESPACE).spec.template.spec.containers[0].image != image:
            time.sleep(0.002)
        end = time.perf_counter()
        rows["total"].append(end - begin)
        rows["client patch"].append(sent - begin)
        previous = sent
        for step in STEPS:
            if step in marks:
                rows[step].append(marks[step] - previous)
                previous = marks[step]
        rows["client sees it"].append(end - previous)
    gc.callbacks.remove(on_gc)
    for step, seconds in rows.items():
        print(f"{step:15s} median {statistics.median(seconds) * 1000:6.1f} ms  mean {statistics.mean(seconds) * 1000:6.1f} ms  n={len(seconds)}")
    for generation in sorted({g for g, _ in collections_seen}):
        spent = [s for g, s in collections_seen if g == generation]
        print(f"gc generation {generation}: {len(spent)} collections, {sum(spent) * 1000:.1f} ms in all")
    service.stop()
    scale.close()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
