"""The pure engine: render + diff of one resource's children, against a reference.

The reference, measured in the same run, is ``jsonpatch.make_patch`` of the same
rendered Deployment (as the API server stores it) against itself: the cheapest thing
a naive differ could do on a no-op pass. The target is that our whole no-op
reconcile of a BotModule (render all children and diff them) costs less than that.
"""

from __future__ import annotations

import timeit

import jsonpatch
import pytest

from eevee.engine.diff import managed_patch
from eevee.engine.render import RenderCache, Renderer, copy_json

IPC = {
    "apiVersion": "eevee.bot/v1",
    "kind": "IpcConfig",
    "metadata": {"name": "bus", "namespace": "bot", "uid": "u-bus", "resourceVersion": "3"},
    "spec": {},
}
MODULE = {
    "apiVersion": "eevee.bot/v1",
    "kind": "BotModule",
    "metadata": {"name": "router", "namespace": "bot", "uid": "u-m", "resourceVersion": "5"},
    "spec": {
        "moduleName": "router",
        "image": "ghcr.io/eeveebot/router:1.4.2",
        "size": 2,
        "metrics": True,
        "ipcConfig": "bus",
        "moduleConfig": "routes:\n  - match: x\n    to: echo\n",
        "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}},
    },
}


def token_secret(api_version, kind, namespace, name):
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace, "uid": "u-token", "resourceVersion": "7"}}


def renderer(rules, cache=None):
    return Renderer(rules, lookup=lambda k, ns, n: IPC if n == "bus" else None, fetch=token_secret, cache=cache)


def stored(body):
    live = copy_json(body)
    live["metadata"].update(resourceVersion="7", uid="x", creationTimestamp="2026-01-01T00:00:00Z")
    if live["kind"] == "Deployment":
        for c in live["spec"]["template"]["spec"]["containers"]:
            c.update(terminationMessagePath="/dev/termination-log", terminationMessagePolicy="File")
        live["status"] = {"replicas": 2, "readyReplicas": 2, "observedGeneration": 1}
    return live


def reconcile(render, resource, live):
    return [managed_patch(child, live[child.id]) for child in render.render(resource).children]


@pytest.fixture
def live_children(rules):
    return {c.id: stored(c.body) for c in renderer(rules).render(MODULE).children}


def test_reference_make_patch_of_a_deployment_against_itself(benchmark, live_children):
    dep = live_children["deployment"]
    assert benchmark(jsonpatch.make_patch, dep, copy_json(dep)).patch == []


def test_noop_reconcile_botmodule(benchmark, rules, live_children):
    """What a steady-state pass does per BotModule: a cached rendering, then the diffs.

    Guarded as a ratio: it must cost less than the reference measured in the same run.
    """
    render = renderer(rules, RenderCache())
    assert benchmark(reconcile, render, MODULE, live_children) == [None, None]
    dep = live_children["deployment"]
    copy = copy_json(dep)
    reference = min(timeit.repeat(lambda: jsonpatch.make_patch(dep, copy), number=50, repeat=5)) / 50
    if benchmark.stats is not None:  # None under --benchmark-disable
        ratio = benchmark.stats.stats.min / reference
        benchmark.extra_info.update(reference_seconds=reference, ratio_to_reference=round(ratio, 3))
        assert ratio < 1.0, f"a no-op reconcile costs {ratio:.2f}x a make_patch of the Deployment against itself"


def test_noop_reconcile_botmodule_uncached(benchmark, rules, live_children):
    """The same with a full validation and rendering (the first pass after a change)."""
    render = renderer(rules)
    assert benchmark(reconcile, render, MODULE, live_children) == [None, None]


def test_changed_field_reconcile_botmodule(benchmark, rules, live_children):
    render = renderer(rules)
    changed = copy_json(MODULE)
    changed["spec"]["image"] = "ghcr.io/eeveebot/router:1.5.0"
    changed["metadata"]["resourceVersion"] = "6"
    patches = benchmark(reconcile, render, changed, live_children)
    assert patches[0] is None and len(patches[1].patch) == 2


def test_noop_diff_deployment_only(benchmark, rules, live_children):
    child = next(c for c in renderer(rules).render(MODULE).children if c.id == "deployment")
    assert benchmark(managed_patch, child, live_children["deployment"]) is None


def test_changed_field_reconcile_ipcconfig(benchmark, rules):
    render = renderer(rules, RenderCache())
    live = {c.id: stored(c.body) for c in render.render(IPC).children}
    changed = copy_json(IPC)
    changed["spec"] = {"nats": {"managed": {"image": "nats:2.11.0-alpine"}}}
    changed["metadata"]["resourceVersion"] = "4"
    patches = benchmark(reconcile, render, changed, live)
    assert patches[0] is None and patches[1] is not None and patches[2] is None


def test_noop_reconcile_ipcconfig(benchmark, rules):
    render = renderer(rules, RenderCache())
    live = {c.id: stored(c.body) for c in render.render(IPC).children}
    assert benchmark(reconcile, render, IPC, live) == [None, None, None]
