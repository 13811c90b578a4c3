"""The stand-in answers like kube-apiserver: codes, Status bodies, versions, selectors."""

from __future__ import annotations

import json

import pytest
import urllib3
from kubernetes import client

from tests.conftest import NAMESPACE, status_of


def cm(name, labels=None, data=None):
    return {"metadata": {"name": name, "labels": labels or {}}, "data": data or {"k": "v"}}


def raw(standin, method, path, body=None, token=None, content_type="application/json"):
    http = urllib3.PoolManager(ca_certs=str(standin.ca_file))
    headers = {"Content-Type": content_type}
    if token is not False:
        headers["Authorization"] = f"Bearer {token or standin.token}"
    response = http.request(
        method, standin.url + path, body=json.dumps(body) if body is not None else None, headers=headers
    )
    return response.status, response.data


@pytest.mark.parametrize("token", ["wrong", False])
def test_a_wrong_or_missing_token_is_401(standin, token):
    code, body = raw(standin, "GET", "/api/v1/namespaces", token=token)
    assert code == 401
    assert json.loads(body) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }


def test_discovery_lists_the_built_in_resources(standin):
    _code, body = raw(standin, "GET", "/apis/apps/v1")
    resources = {r["name"]: r for r in json.loads(body)["resources"]}
    assert resources["deployments"]["kind"] == "Deployment" and "patch" in resources["deployments"]["verbs"]
    assert (
        resources["deployments/scale"]["kind"] == "Scale" and resources["deployments/scale"]["group"] == "autoscaling"
    )
    assert "deployments/status" in resources
    groups = {g["name"] for g in json.loads(raw(standin, "GET", "/apis")[1])["groups"]}
    assert {"apps", "coordination.k8s.io", "apiextensions.k8s.io"} <= groups
    core = {r["name"] for r in json.loads(raw(standin, "GET", "/api/v1")[1])["resources"]}
    assert {"namespaces", "configmaps", "secrets", "services", "persistentvolumeclaims", "events", "pods"} <= core
    assert json.loads(raw(standin, "GET", "/version")[1])["major"] == "1"


def test_custom_resources_appear_in_discovery_when_their_crd_is_created(crds):
    resources = {r["name"]: r for r in json.loads(raw(crds, "GET", "/apis/eevee.bot/v1")[1])["resources"]}
    assert resources["botmodules"]["shortNames"] == ["bm"]
    assert resources["ipcconfigs"]["shortNames"] == ["ipc"]
    assert "botmodules/status" in resources


def test_create_get_delete_and_their_errors(api):
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map(NAMESPACE, cm("one"))
    assert created.metadata.uid and created.metadata.creation_timestamp and created.metadata.resource_version
    with pytest.raises(client.ApiException) as caught:
        core.create_namespaced_config_map(NAMESPACE, cm("one"))
    assert caught.value.status == 409
    assert status_of(caught.value) | {} == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'configmaps "one" already exists',
        "reason": "AlreadyExists",
        "details": {"name": "one", "group": "", "kind": "configmaps"},
        "code": 409,
    }
    with pytest.raises(client.ApiException) as caught:
        core.read_namespaced_config_map("two", NAMESPACE)
    assert (caught.value.status, status_of(caught.value)["reason"], status_of(caught.value)["message"]) == (
        404,
        "NotFound",
        'configmaps "two" not found',
    )
    core.delete_namespaced_config_map("one", NAMESPACE)
    with pytest.raises(client.ApiException) as caught:
        core.delete_namespaced_config_map("one", NAMESPACE)
    assert caught.value.status == 404
    with pytest.raises(client.ApiException) as caught:
        core.create_namespaced_config_map("nowhere", cm("x"))
    assert (caught.value.status, status_of(caught.value)["message"]) == (404, 'namespaces "nowhere" not found')


def test_resource_versions_increase_across_the_cluster(api):
    core = client.CoreV1Api(api)
    apps = client.AppsV1Api(api)
    a = int(core.create_namespaced_config_map(NAMESPACE, cm("a")).metadata.resource_version)
    b = int(core.create_namespaced_secret(NAMESPACE, {"metadata": {"name": "s"}, "data": {}}).metadata.resource_version)
    c = int(core.patch_namespaced_config_map("a", NAMESPACE, {"data": {"k": "w"}}).metadata.resource_version)
    assert a < b < c
    listed = core.list_namespaced_config_map(NAMESPACE).metadata.resource_version
    assert int(listed) >= c
    assert apps.list_namespaced_deployment(NAMESPACE).metadata.resource_version == listed


def test_label_and_field_selectors(api):
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(NAMESPACE, cm("a", {"tier": "web", "env": "prod"}))
    core.create_namespaced_config_map(NAMESPACE, cm("b", {"tier": "db"}))
    core.create_namespaced_config_map(NAMESPACE, cm("c"))

    def names(**kw):
        return sorted(i.metadata.name for i in core.list_namespaced_config_map(NAMESPACE, **kw).items)

    assert names(label_selector="tier=web") == ["a"]
    assert names(label_selector="tier!=web") == ["b", "c"]
    assert names(label_selector="tier in (web,db)") == ["a", "b"]
    assert names(label_selector="tier notin (web)") == ["b", "c"]
    assert names(label_selector="tier") == ["a", "b"]
    assert names(label_selector="!tier") == ["c"]
    assert names(label_selector="tier=web,env=prod") == ["a"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b") == ["a", "c"]
    with pytest.raises(client.ApiException) as caught:
        names(label_selector="tier in web")
    assert caught.value.status == 400


def test_list_pagination_with_continue(api):
    core = client.CoreV1Api(api)
    for n in range(5):
        core.create_namespaced_config_map(NAMESPACE, cm(f"cm{n}"))
    first = core.list_namespaced_config_map(NAMESPACE, limit=2)
    assert [i.metadata.name for i in first.items] == ["cm0", "cm1"]
    assert first.metadata.remaining_item_count == 3
    second = core.list_namespaced_config_map(NAMESPACE, limit=2, _continue=first.metadata._continue)
    third = core.list_namespaced_config_map(NAMESPACE, limit=2, _continue=second.metadata._continue)
    assert [i.metadata.name for i in second.items + third.items] == ["cm2", "cm3", "cm4"]
    assert third.metadata._continue is None


def test_list_items_of_built_in_kinds_carry_no_kind(standin, crds):
    built_in = json.loads(raw(standin, "GET", f"/api/v1/namespaces/{NAMESPACE}/configmaps")[1])
    assert built_in["kind"] == "ConfigMapList"
    standin.seed({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": NAMESPACE}})
    item = json.loads(raw(standin, "GET", f"/api/v1/namespaces/{NAMESPACE}/configmaps")[1])["items"][0]
    assert "kind" not in item and "apiVersion" not in item


def test_a_stale_update_is_a_conflict(api):
    core = client.CoreV1Api(api)
    old = core.create_namespaced_config_map(NAMESPACE, cm("a"))
    core.patch_namespaced_config_map("a", NAMESPACE, {"data": {"k": "newer"}})
    old.data = {"k": "stale"}
    with pytest.raises(client.ApiException) as caught:
        core.replace_namespaced_config_map("a", NAMESPACE, old)
    assert caught.value.status == 409
    assert status_of(caught.value)["reason"] == "Conflict"
    assert "the object has been modified" in status_of(caught.value)["message"]


def test_put_replaces_the_whole_object(api):
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(
        NAMESPACE, {"metadata": {"name": "a", "labels": {"x": "1"}, "annotations": {"y": "2"}}, "data": {"k": "v"}}
    )
    replaced = core.replace_namespaced_config_map("a", NAMESPACE, {"metadata": {"name": "a"}, "data": {"k": "v"}})
    assert not replaced.metadata.labels and not replaced.metadata.annotations


def test_a_write_that_changes_nothing_is_not_a_write(api):
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map(NAMESPACE, cm("a"))
    same = core.patch_namespaced_config_map("a", NAMESPACE, {"data": {"k": "v"}})
    assert same.metadata.resource_version == created.metadata.resource_version


def test_leases_events_and_pods(api):
    coordination = client.CoordinationV1Api(api)
    lease = coordination.create_namespaced_lease(
        NAMESPACE, {"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}
    )
    assert lease.spec.holder_identity == "a"
    core = client.CoreV1Api(api)
    core.create_namespaced_event(
        NAMESPACE,
        {
            "metadata": {"name": "e1"},
            "involvedObject": {"kind": "BotModule", "name": "echo", "namespace": NAMESPACE},
            "reason": "Created",
            "message": "m",
            "type": "Normal",
        },
    )
    core.create_namespaced_event(
        NAMESPACE,
        {
            "metadata": {"name": "e2"},
            "involvedObject": {"kind": "BotModule", "name": "other", "namespace": NAMESPACE},
            "reason": "Created",
            "message": "m",
            "type": "Normal",
        },
    )
    found = core.list_namespaced_event(
        NAMESPACE, field_selector="involvedObject.name=echo,involvedObject.kind=BotModule"
    )
    assert [e.metadata.name for e in found.items] == ["e1"]
    assert core.list_namespaced_pod(NAMESPACE).items == []


def test_unknown_paths_and_resources(standin):
    assert raw(standin, "GET", "/nothing/here")[0] == 404
    code, body = raw(standin, "GET", "/apis/apps/v1/namespaces/x/widgets")
    assert code == 404 and json.loads(body)["message"] == "the server could not find the requested resource"
    code, body = raw(
        standin, "POST", f"/api/v1/namespaces/{NAMESPACE}/configmaps", body=None, content_type="application/json"
    )
    assert code == 400


@pytest.mark.parametrize(
    "kind_path, selector, code",
    [
        # k8s.io/kubernetes pkg/apis/core/v1/conversion.go: Secrets may be selected by type.
        ("/api/v1/namespaces/eevee-bot/secrets", "type!=helm.sh/release.v1", 200),
        ("/api/v1/namespaces/eevee-bot/events", "involvedObject.name=echo,reason=Created", 200),
        ("/api/v1/namespaces/eevee-bot/configmaps", "metadata.name=a", 200),
        # Any other field is refused (DefaultMetaV1FieldSelectorConversion, or the kind's own list).
        ("/api/v1/namespaces/eevee-bot/configmaps", "data.k=v", 400),
        ("/api/v1/namespaces/eevee-bot/secrets", "data.token=x", 400),
    ],
)
def test_field_selectors_take_only_the_fields_a_real_server_supports(standin, kind_path, selector, code):
    from urllib.parse import quote

    got, body = raw(standin, "GET", f"{kind_path}?fieldSelector={quote(selector)}")
    assert got == code, body
