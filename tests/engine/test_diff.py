"""The differ: minimal patches over managed fields only, and its properties."""

from __future__ import annotations

import jsonpatch
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eevee.engine.diff import Trimmed, managed_patch, needs_patch, same, trim
from eevee.engine.paths import get
from eevee.engine.render import Renderer, copy_json
from tests.engine.resources import IPC, module


def token_secret(api_version, kind, namespace, name):
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace, "uid": "u-token"}}


def desired(rules, resource, child="deployment"):
    renderer = Renderer(
        rules, lookup=lambda k, ns, n: IPC if n == "bus" else None, fetch=token_secret, generate=lambda n: "x" * n
    )
    return {c.id: c for c in renderer.render(resource).children}[child]


def as_stored(body, version="100"):
    """What the API server hands back: our fields plus its defaults and bookkeeping."""
    live = copy_json(body)
    live["metadata"].update(
        resourceVersion=version, uid="child-uid", creationTimestamp="2026-01-01T00:00:00Z", generation=1
    )
    if live["kind"] == "Deployment":
        pod = live["spec"]["template"]["spec"]
        pod.update(restartPolicy="Always", dnsPolicy="ClusterFirst", terminationGracePeriodSeconds=30)
        for c in pod["containers"]:
            c.update(terminationMessagePath="/dev/termination-log", terminationMessagePolicy="File")
            for port in c.get("ports", []):
                port.setdefault("protocol", "TCP")
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if probe in c:
                    c[probe].update(timeoutSeconds=1, successThreshold=1, failureThreshold=3)
                    if "httpGet" in c[probe]:
                        c[probe]["httpGet"]["scheme"] = "HTTP"
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                volume["configMap"]["defaultMode"] = 420
        live["spec"].setdefault("progressDeadlineSeconds", 600)
        live["status"] = {"replicas": 1, "readyReplicas": 1, "observedGeneration": 1}
    return live


def apply(live, patch):
    return jsonpatch.apply_patch(live, patch, in_place=False)


def managed_fields_match(child, obj):
    return all(same(get(obj, path), value) for path, value in child.leaves)


def test_steady_state_needs_no_patch_despite_server_defaults(rules):
    child = desired(rules, module(metrics=True, moduleConfig="a: 1", ipcConfig="bus"))
    assert managed_patch(child, as_stored(child.body)) is None


def test_drift_of_a_managed_field_is_put_back_with_one_replace(rules):
    child = desired(rules, module())
    live = as_stored(child.body)
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:latest"
    patch = managed_patch(child, live)
    assert patch.patch == [
        {"op": "replace", "path": "/metadata/resourceVersion", "value": "100"},
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "echo:1"},
    ]


def test_fields_set_by_others_are_left_alone(rules):
    child = desired(rules, module())
    live = as_stored(child.body)
    pod = live["spec"]["template"]
    pod.setdefault("metadata", {}).setdefault("annotations", {})["kubectl.kubernetes.io/restartedAt"] = "now"
    pod["spec"]["containers"][0]["env"].append({"name": "INJECTED", "value": "by-webhook"})
    pod["spec"]["containers"].append({"name": "sidecar", "image": "proxy"})
    live["metadata"]["labels"]["team"] = "chat"
    assert managed_patch(child, live) is None


def test_reordered_list_items_are_not_a_change(rules):
    child = desired(rules, module(metrics=True))
    live = as_stored(child.body)
    live["spec"]["template"]["spec"]["containers"][0]["env"].reverse()
    assert managed_patch(child, live) is None


def test_a_field_no_longer_rendered_is_removed_and_foreign_fields_survive(rules):
    before = desired(rules, module(metrics=True, moduleConfig="a: 1"))
    live = as_stored(before.body)
    live["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "INJECTED", "value": "1"})
    after = desired(rules, module())
    result = apply(live, managed_patch(after, live))
    container = result["spec"]["template"]["spec"]["containers"][0]
    assert [e["name"] for e in container["env"]] == ["NAMESPACE", "RESOURCE_NAME", "INJECTED"]
    for gone in ("ports", "livenessProbe", "readinessProbe", "volumeMounts"):
        assert gone not in container
    assert "volumes" not in result["spec"]["template"]["spec"]
    assert "annotations" not in result["spec"]["template"]["metadata"]
    assert container["terminationMessagePath"] == "/dev/termination-log"  # server default kept
    assert managed_fields_match(after, result)
    assert managed_patch(after, result) is None


def test_every_patch_starts_with_a_resource_version_precondition(rules):
    child = desired(rules, module(size=2))
    live = as_stored(desired(rules, module(size=1)).body, version="42")
    assert managed_patch(child, live).patch[0] == {"op": "replace", "path": "/metadata/resourceVersion", "value": "42"}


def test_a_value_of_the_wrong_shape_is_replaced(rules):
    child = desired(rules, module(metrics=True))
    live = as_stored(child.body)
    live["spec"]["template"]["metadata"]["annotations"] = "oops"
    result = apply(live, managed_patch(child, live))
    assert managed_fields_match(child, result)


def test_create_only_fields_are_never_overwritten(rules):
    token = desired(rules, IPC, child="token")
    live = as_stored(token.body)
    live["data"]["token"] = "dXNlci1zZXQ="
    assert managed_patch(token, live) is None


def test_an_object_with_no_record_is_adopted_exactly_as_rendered(rules):
    """Made by the eevee operator 2.3 (no managed-fields record): its spec ends up exactly the
    rendering (its own volume, env and ports gone), foreign metadata stays."""
    child = desired(rules, module(metrics=True, moduleConfig="a: 1"))
    theirs = as_stored(child.body)
    del theirs["metadata"]["annotations"]["eevee.bot/managed-fields"]
    theirs["metadata"]["labels"] = {"team": "chat"}
    pod = theirs["spec"]["template"]["spec"]
    pod["volumes"].append({"name": "module-data", "persistentVolumeClaim": {"claimName": "old"}})
    pod["containers"][0]["volumeMounts"].append({"name": "module-data", "mountPath": "/data"})
    pod["containers"][0]["env"].append({"name": "EEVEE_OPERATOR_API_TOKEN", "value": "a literal token"})
    pod["containers"][0]["ports"].append({"name": "cluster", "containerPort": 6222})
    pod["containers"].append({"name": "sidecar", "image": "old"})
    result = apply(theirs, managed_patch(child, theirs))
    assert result["metadata"]["labels"]["team"] == "chat"
    assert managed_fields_match(child, result)
    container = result["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in container] == ["module"]
    assert [v["name"] for v in result["spec"]["template"]["spec"]["volumes"]] == ["module-config"]
    assert "EEVEE_OPERATOR_API_TOKEN" not in {e["name"] for e in container[0]["env"]}
    assert [p["name"] for p in container[0]["ports"]] == ["metrics"]
    assert managed_patch(child, result) is None  # from then on it is ours, and in sync


def test_adoption_keeps_create_only_fields_and_adds_missing_ones(rules):
    token = desired(rules, IPC, child="token")
    theirs = as_stored(token.body)
    del theirs["metadata"]["annotations"]["eevee.bot/managed-fields"]
    theirs["data"] = {"token": "dGhlaXJz"}  # the predecessor's token and no host
    result = apply(theirs, managed_patch(token, theirs))
    assert result["data"]["token"] == "dGhlaXJz" and "host" in result["data"]
    moved = as_stored(token.body)
    moved["data"] = {"other": "eA=="}  # the key changed: a token is added under it, the rest stays
    result = apply(moved, managed_patch(token, moved))
    assert result["data"]["token"] == token.body["data"]["token"] and result["data"]["other"] == "eA=="


def test_true_is_not_one():
    assert not same(True, 1) and not same(1, "1") and same(1, 1.0) and same({"a": [1]}, {"a": [1]})


def test_needs_patch_sees_a_changed_managed_set(rules):
    child = desired(rules, module())
    live = as_stored(child.body)
    live["metadata"]["annotations"]["eevee.bot/managed-fields"] = "{}"
    assert needs_patch(child, live)


# --- the cache's trimmed copy ----------------------------------------------------------


def kept(rules, kind="Deployment"):
    return rules.cached_fields()[kind]


def test_the_cache_keeps_what_the_rules_read_of_a_deployment_and_a_digest_of_the_rest(rules):
    child = desired(rules, module(metrics=True, moduleConfig="a: 1", ipcConfig="bus"))
    live = as_stored(child.body)
    cached = trim(live, kept(rules))
    assert isinstance(cached, Trimmed) and len(cached.digest) == 16
    # what a rule or the engine reads: spec.replicas (status, the printer column), the immutable
    # selector (re-create or not), metadata (ownership, the record) and status (readiness) ...
    assert cached["metadata"] == live["metadata"] and cached["status"] == live["status"]
    assert cached["spec"] == {"replicas": live["spec"]["replicas"], "selector": live["spec"]["selector"]}
    # ... and not the pod template with the server's defaults.
    assert "template" not in cached["spec"]
    assert not needs_patch(child, cached)
    # A new image: the digest differs, and the patch must be built from the object read anew.
    changed = desired(rules, module(metrics=True, moduleConfig="a: 1", ipcConfig="bus", image="echo:2"))
    assert needs_patch(changed, cached)
    with pytest.raises(ValueError, match="whole live object"):
        managed_patch(changed, cached)


def test_a_drifted_managed_field_changes_the_digest_and_a_foreign_one_does_not(rules):
    child = desired(rules, module())
    live = as_stored(child.body)
    foreign = copy_json(live)
    foreign["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "OTHER", "value": "x"})
    assert not needs_patch(child, trim(foreign, kept(rules)))
    drifted = copy_json(live)
    drifted["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:latest"
    assert needs_patch(child, trim(drifted, kept(rules)))


def test_a_child_with_no_record_is_cached_whole_for_its_adoption(rules):
    child = desired(rules, module())
    live = as_stored(child.body)
    del live["metadata"]["annotations"]["eevee.bot/managed-fields"]
    assert trim(live, kept(rules)) is live


def test_children_written_once_and_referenced_kinds_are_cached_whole(rules):
    fields = rules.cached_fields()
    # createOnly (a Job's template, a claim's spec, a token) is checked for absence; a Secret is
    # read by references (the fields a probe or an env var takes are not known in advance).
    assert fields["Job"] is None and fields["PersistentVolumeClaim"] is None and fields["Secret"] is None
    assert ("spec", "schedule") in fields["CronJob"]  # the backup metrics read it


# --- properties ----------------------------------------------------------------------

specs = st.fixed_dictionaries(
    {},
    optional={
        "size": st.integers(0, 5),
        "enabled": st.booleans(),
        "pullPolicy": st.sampled_from(["Always", "IfNotPresent", "Never"]),
        "metrics": st.booleans(),
        "metricsPort": st.integers(1, 65535),
        "ipcConfig": st.just("bus"),
        "moduleConfig": st.one_of(
            st.just(""),
            st.builds(lambda k, v: f"{k}: {v!r}\n", st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.text(max_size=20)),
        ),
        "mountOperatorApiToken": st.booleans(),
        "envSecret": st.just({"name": "creds"}),
        "persistentVolumeClaim": st.just({"resources": {"requests": {"storage": "1Gi"}}}),
        "resources": st.just({"requests": {"cpu": "0.1"}}),
    },
)
foreign = st.lists(st.sampled_from(["label", "env", "annotation", "sidecar", "status"]), unique=True, max_size=5)


def add_foreign(live, edits):
    pod = live["spec"]["template"]
    if "label" in edits:
        live["metadata"]["labels"]["other"] = "x"
    if "env" in edits:
        pod["spec"]["containers"][0].setdefault("env", []).append({"name": "OTHER", "value": "x"})
    if "annotation" in edits:
        pod["metadata"].setdefault("annotations", {})["kubectl.kubernetes.io/restartedAt"] = "t"
    if "sidecar" in edits:
        pod["spec"]["containers"].append({"name": "sidecar", "image": "s"})
    if "status" in edits:
        live["status"]["readyReplicas"] = 0


def foreign_kept(result, edits):
    pod = result["spec"]["template"]
    checks = {
        "label": lambda: result["metadata"]["labels"]["other"] == "x",
        "env": lambda: {"name": "OTHER", "value": "x"} in pod["spec"]["containers"][0]["env"],
        "annotation": lambda: pod["metadata"]["annotations"]["kubectl.kubernetes.io/restartedAt"] == "t",
        "sidecar": lambda: pod["spec"]["containers"][-1] == {"name": "sidecar", "image": "s"},
        "status": lambda: result["status"]["readyReplicas"] == 0,
    }
    return all(checks[e]() for e in edits)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=specs, after=specs, edits=foreign, drift=st.booleans())
def test_patch_converges_in_one_step_and_keeps_foreign_fields(rules, before, after, edits, drift):
    old = desired(rules, module(**before))
    live = as_stored(old.body)
    add_foreign(live, edits)
    if drift:
        live["spec"]["replicas"] = 99
    new = desired(rules, module(**after))
    patch = managed_patch(new, live)
    result = apply(live, patch) if patch is not None else live
    # managed fields take the desired values ...
    assert managed_fields_match(new, result)
    # ... what we stopped rendering is gone (unless someone else's field sits at that path) ...
    if "ports" not in new.body["spec"]["template"]["spec"]["containers"][0]:
        assert "ports" not in result["spec"]["template"]["spec"]["containers"][0]
    # ... others' fields survive, and diffing again finds nothing to do.
    assert foreign_kept(result, edits)
    assert managed_patch(new, result) is None
    # The cache's trimmed copy (a digest of the managed fields) answers as the whole object does.
    assert needs_patch(new, trim(live, rules.cached_fields()["Deployment"])) == (patch is not None)
    assert not needs_patch(new, trim(result, rules.cached_fields()["Deployment"]))
