"""A watch-fed cache (issue 24): each kind is listed once, then followed by its watch; a pass at
rest sends no request; a watch that goes silent is noticed and resumed without a list.

Real-server behaviours these rely on, each mirrored by the stand-in and tested there:
- a watch started at a list's resourceVersion delivers every later change (k8s.io/apiserver's
  watch cache), and one resumed from the last resourceVersion seen misses nothing;
- with ``allowWatchBookmarks=true`` the server sends a BOOKMARK about once a minute
  (``defaultBookmarkFrequency`` in k8s.io/apiserver's cacher), so a stream that sends no byte for
  longer is stalled, not quiet;
- Secrets can be selected by ``type`` (a field selector kube-apiserver supports for Secrets).
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import NAMESPACE, eventually
from tests.e2e.test_backups import credentials, store
from tests.e2e.test_reconcile import examples
from tests.operator_fixtures import ipc, module, wait_passes


def converged(cluster):
    for name in ("router", "echo", "irc-libera"):
        eventually(lambda n=name: cluster.ready("BotModule", n))
    eventually(lambda: cluster.ready("IpcConfig", "eevee-bus"))


def test_a_pass_at_rest_reads_nothing_and_writes_nothing(cluster, start_operator, standin):
    service = start_operator(poll_interval=0.2)
    for resource in examples().values():
        cluster.create(resource)
    converged(cluster)
    wait_passes(service, 1)
    mark = standin.log.mark()
    wait_passes(service, 5)
    counts = standin.log.counts(mark)
    assert {verb for verb, resource in counts if resource != "leases"} <= {"watch"}, counts  # a resumed watch at most
    # Each kind was listed once, at the start (a list of several pages continues; it is one list).
    firsts = [(e.resource, e.namespace, urlsplit(e.path).query) for e in standin.log.entries()
              if e.verb == "list" and "continue=" not in e.path]
    assert len(firsts) == len(set(firsts)), firsts


def test_watches_ask_for_bookmarks_with_a_randomised_server_timeout(cluster, operator, standin):
    watches = eventually(lambda: [e for e in standin.log.entries() if e.verb == "watch"])
    timeouts = set()
    for entry in watches:
        query = parse_qs(urlsplit(entry.path).query)
        assert query["allowWatchBookmarks"] == ["true"] and query["resourceVersion"][0] not in ("", "0")
        timeouts.add(int(query["timeoutSeconds"][0]))
    assert all(300 <= t <= 600 for t in timeouts) and len(timeouts) > 1  # as client-go: 5-10 minutes, drawn each time


def test_a_stalled_watch_is_noticed_and_resumed_from_where_it_was(cluster, start_operator, standin):
    standin.bookmark_interval = 0.25  # the real server's minute, scaled down like the silence bound
    service = start_operator(watch_silence=1.5)  # polls every 30 s: only the watch can bring the change
    cluster.create(ipc())
    cluster.create(module("echo", ipcConfig="bus"))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    eventually(lambda: service.runner.passes > 0)
    mark = standin.log.mark()
    standin.freeze_watches()  # every open stream goes silent, its connection open
    time.sleep(0.3)
    started = time.monotonic()
    cluster.patch("BotModule", "echo", {"spec": {"image": "ghcr.io/eeveebot/echo:2.0.0"}})
    eventually(lambda: cluster.deployment("eevee-echo-module")["spec"]["template"]["spec"]["containers"][0]["image"]
               == "ghcr.io/eeveebot/echo:2.0.0", timeout=10)
    took = time.monotonic() - started
    assert took < 1.5 + 5, took  # the silence bound and a resumed watch, not the 30 s poll
    assert service.runner.passes <= 2  # no pass brought it
    assert service.metrics.watch_restarts.labels("BotModule", "silent")._value.get() >= 1
    assert [e.path for e in standin.log.entries(mark) if e.verb == "list"] == []  # resumed, not listed again
    standin.thaw_watches()


def deployment_reads(standin, mark, name):
    """The operator's reads of one Deployment since ``mark`` (not the test's own)."""
    return [e for e in standin.log.entries(mark) if e.verb == "get" and e.resource == "deployments"
            and e.name == name and e.agent.startswith("eevee-operator/")]


def test_a_trimmed_child_is_patched_from_the_whole_object(cluster, start_operator, standin):
    """The cache keeps a Deployment without its pod template (no rule reads it), with a digest of
    the fields it manages. A patch is built from the whole object: read anew when its spec moved
    since the operator last wrote it, else the one its last write returned.

    Real-server rule relied on: kube-apiserver raises metadata.generation on every change of a
    Deployment's spec (k8s.io/kubernetes pkg/registry/apps/deployment/strategy.go,
    PrepareForUpdate: "Any changes to the spec increment the generation number"), and status
    writes through deployments/status leave it; the stand-in does the same (registry.py)."""
    service = start_operator(poll_interval=3600.0)  # only the watch brings the changes
    cluster.create(module("echo"))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    name = "eevee-echo-module"

    def images():
        return [(c["name"], c["image"]) for c in cluster.deployment(name)["spec"]["template"]["spec"]["containers"]]

    # A sidecar injector puts its container first: the module's container moves to index 1.
    cluster.apps.patch_namespaced_deployment(name, NAMESPACE, [
        {"op": "add", "path": "/spec/template/spec/containers/0", "value": {"name": "sidecar", "image": "proxy:1"}}])
    mark = standin.log.mark()
    cluster.patch("BotModule", "echo", {"spec": {"image": "ghcr.io/eeveebot/echo:2.0.0"}})
    eventually(lambda: images() == [("sidecar", "proxy:1"), ("module", "ghcr.io/eeveebot/echo:2.0.0")])
    # Its spec moved: read anew (again, should a status write of the rollout answer 409 Conflict).
    assert deployment_reads(standin, mark, name)

    # Its rollout ran (status writes, no spec change): once the cache holds the last of them, the
    # next patch needs no read.
    eventually(lambda: cluster.ready("BotModule", "echo"))
    eventually(lambda: service.runner.snapshot.child("Deployment", NAMESPACE, name)["metadata"]["resourceVersion"]
               == cluster.deployment(name)["metadata"]["resourceVersion"])
    mark = standin.log.mark()
    cluster.patch("BotModule", "echo", {"spec": {"image": "ghcr.io/eeveebot/echo:3.0.0"}})
    eventually(lambda: images() == [("sidecar", "proxy:1"), ("module", "ghcr.io/eeveebot/echo:3.0.0")])
    assert deployment_reads(standin, mark, name) == []

    # Drift of a managed field is put back through the watch, from the object read anew.
    cluster.apps.patch_namespaced_deployment(name, NAMESPACE, [
        {"op": "replace", "path": "/spec/template/spec/containers/1/image", "value": "evil:latest"}])
    eventually(lambda: images() == [("sidecar", "proxy:1"), ("module", "ghcr.io/eeveebot/echo:3.0.0")])


def test_a_credentials_secret_made_later_takes_effect_within_seconds(cluster, start_operator, standin, s3_server):
    start_operator()  # polls every 30 s: the Secret's watch event brings it
    cluster.create(store(s3=s3_server))
    condition = eventually(lambda: (c := cluster.condition("S3Store", "minio")) and c.get("status") == "False" and c)
    assert "s3-creds" in condition["message"]
    standin.seed(credentials(s3=s3_server))
    eventually(lambda: cluster.ready("S3Store", "minio"), timeout=10)


def test_ready_says_whether_the_cache_is_synced(cluster, operator):
    health = operator.runner.health()
    assert health.cache_synced and health.ready
    assert operator.metrics.cache_synced._value.get() == 1


def test_a_resync_lists_each_kind_again_at_its_own_time(cluster, start_operator, standin):
    service = start_operator(resync_interval=1.0)
    eventually(lambda: service.runner.passes > 0)
    mark = standin.log.mark()
    time.sleep(3.0)
    lists = [e for e in standin.log.entries(mark) if e.verb == "list"]
    kinds = {e.resource for e in lists}
    assert {"botmodules", "ipcconfigs", "deployments", "secrets"} <= kinds
    assert service.metrics.relists.labels("BotModule", "resync")._value.get() >= 1
    per_kind = {kind: sum(1 for e in lists if e.resource == kind) for kind in kinds}
    assert max(per_kind.values()) <= 3, per_kind  # once a second or so (1-1.25 s, jittered), never a storm
    # Each informer draws its own time (spread over the kinds; at 3,600 s that is a 15-minute window).
    draws = {informer._next_resync() for informer in service.runner._informers.values()}
    assert len(draws) == len(service.runner._informers)


def test_the_silence_bound_and_the_resync_are_checked_at_start():
    from eevee.settings import SettingsError, load_settings

    assert (load_settings({}).watch_silence, load_settings({}).resync_interval) == (100.0, 3600.0)
    assert load_settings({"RESYNC_SECONDS": "0"}).resync_interval == 0
    for env, words in (({"WATCH_SILENCE_SECONDS": "300"}, "more than 120"), ({"RESYNC_SECONDS": "10"}, "below 60")):
        with pytest.raises(SettingsError, match=words):
            load_settings(env)
