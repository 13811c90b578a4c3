"""Generation, subresources, patches, CRD schemas, finalizers and garbage collection."""

from __future__ import annotations

import pytest
from kubernetes import client

from tests.conftest import NAMESPACE, call, eventually, status_of


def deployment(name="web", replicas=1, image="nginx:1.27", labels=None):
    labels = labels or {"app": name}
    return {
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": image, "env": [{"name": "A", "value": "1"}]}]},
            },
        },
    }


def module(name="echo", **spec):
    return {
        "apiVersion": "eevee.bot/v1",
        "kind": "BotModule",
        "metadata": {"name": name},
        "spec": {"moduleName": name, "image": "echo:1", **spec},
    }


def custom(api):
    return client.CustomObjectsApi(api)


def bm(api, verb, *args, **kw):
    return getattr(custom(api), f"{verb}_namespaced_custom_object")(
        "eevee.bot", "v1", NAMESPACE, "botmodules", *args, **kw
    )


# --- generation and subresources ----------------------------------------------------------


def test_deployment_generation_follows_spec_and_annotations_not_labels(api):
    apps = client.AppsV1Api(api)
    assert apps.create_namespaced_deployment(NAMESPACE, deployment()).metadata.generation == 1
    assert (
        apps.patch_namespaced_deployment("web", NAMESPACE, {"metadata": {"labels": {"x": "y"}}}).metadata.generation
        == 1
    )
    assert (
        apps.patch_namespaced_deployment(
            "web", NAMESPACE, {"metadata": {"annotations": {"x": "y"}}}
        ).metadata.generation
        == 2
    )
    assert apps.patch_namespaced_deployment("web", NAMESPACE, {"spec": {"replicas": 3}}).metadata.generation == 3
    status = apps.patch_namespaced_deployment_status(
        "web", NAMESPACE, {"status": {"replicas": 3, "observedGeneration": 3}}
    )
    assert status.metadata.generation == 3 and status.status.replicas == 3


def test_custom_resource_generation_and_status_subresource(api, crds):
    created = bm(api, "create", module())
    assert created["metadata"]["generation"] == 1 and "status" not in created
    relabeled = bm(api, "patch", "echo", {"metadata": {"labels": {"a": "b"}}})
    assert relabeled["metadata"]["generation"] == 1
    # a write to the main resource silently drops status
    ignored = bm(api, "patch", "echo", {"status": {"observedGeneration": 9}})
    assert (
        "status" not in ignored and ignored["metadata"]["resourceVersion"] == relabeled["metadata"]["resourceVersion"]
    )
    changed = bm(api, "patch", "echo", {"spec": {"size": 2}})
    assert changed["metadata"]["generation"] == 2
    # a write to /status changes only status
    status = custom(api).patch_namespaced_custom_object_status(
        "eevee.bot", "v1", NAMESPACE, "botmodules", "echo", {"status": {"observedGeneration": 2}, "spec": {"size": 7}}
    )
    assert status["status"] == {"observedGeneration": 2}
    assert status["spec"]["size"] == 2 and status["metadata"]["generation"] == 2


def test_scale_subresource(api):
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(NAMESPACE, deployment(labels={"app": "web", "tier": "x"}))
    scale = apps.read_namespaced_deployment_scale("web", NAMESPACE)
    assert scale.spec.replicas == 1 and scale.status.selector == "app=web,tier=x"
    apps.patch_namespaced_deployment_scale("web", NAMESPACE, {"spec": {"replicas": 4}})
    dep = apps.read_namespaced_deployment("web", NAMESPACE)
    assert dep.spec.replicas == 4 and dep.metadata.generation == 2


# --- patches ------------------------------------------------------------------------------


def test_json_patch_test_failure_and_missing_remove_are_422_stale_version_409(api):
    core = client.CoreV1Api(api)
    created = core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "a"}, "data": {"k": "v"}})
    with pytest.raises(client.ApiException) as caught:
        core.patch_namespaced_config_map("a", NAMESPACE, [{"op": "test", "path": "/data/k", "value": "other"}])
    assert (caught.value.status, status_of(caught.value)["reason"]) == (422, "Invalid")
    with pytest.raises(client.ApiException) as caught:
        core.patch_namespaced_config_map("a", NAMESPACE, [{"op": "remove", "path": "/data/missing"}])
    assert caught.value.status == 422
    core.patch_namespaced_config_map("a", NAMESPACE, {"data": {"k": "w"}})
    stale = [
        {"op": "replace", "path": "/metadata/resourceVersion", "value": created.metadata.resource_version},
        {"op": "replace", "path": "/data/k", "value": "x"},
    ]
    with pytest.raises(client.ApiException) as caught:
        core.patch_namespaced_config_map("a", NAMESPACE, stale)
    assert (caught.value.status, status_of(caught.value)["reason"]) == (409, "Conflict")
    fresh = core.read_namespaced_config_map("a", NAMESPACE).metadata.resource_version
    stale[0]["value"] = fresh
    assert core.patch_namespaced_config_map("a", NAMESPACE, stale).data == {"k": "x"}


def test_merge_patch_deletes_with_null_and_replaces_lists(api, crds):
    bm(api, "create", module(livenessProbe={"exec": {"command": ["a", "b"]}}))
    patched = call(
        api,
        "PATCH",
        f"/apis/eevee.bot/v1/namespaces/{NAMESPACE}/botmodules/echo",
        {"spec": {"livenessProbe": {"exec": {"command": ["c"]}}, "metricsPort": None}},
        content_type="application/merge-patch+json",
    )
    assert patched["spec"]["livenessProbe"]["exec"]["command"] == ["c"]
    assert patched["spec"]["metricsPort"] == 9000  # deleted, then defaulted again by the schema


def test_strategic_merge_patch_merges_containers_and_env_by_name(api):
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(NAMESPACE, deployment())
    patch = {
        "spec": {
            "template": {
                "spec": {
                    "$setElementOrder/containers": [{"name": "main"}, {"name": "side"}],
                    "containers": [
                        {"name": "main", "env": [{"name": "B", "value": "2"}]},
                        {"name": "side", "image": "proxy:1"},
                    ],
                }
            }
        }
    }
    dep = apps.patch_namespaced_deployment("web", NAMESPACE, patch)
    containers = {c.name: c for c in dep.spec.template.spec.containers}
    assert containers["main"].image == "nginx:1.27"
    assert [(e.name, e.value) for e in containers["main"].env] == [("A", "1"), ("B", "2")]
    assert containers["side"].image == "proxy:1"
    dep = apps.patch_namespaced_deployment(
        "web", NAMESPACE, {"spec": {"template": {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}}}
    )
    assert [c.name for c in dep.spec.template.spec.containers] == ["main"]


def test_strategic_merge_patch_of_a_custom_resource_is_415(api, crds):
    bm(api, "create", module())
    with pytest.raises(client.ApiException) as caught:
        call(
            api,
            "PATCH",
            f"/apis/eevee.bot/v1/namespaces/{NAMESPACE}/botmodules/echo",
            {"spec": {"size": 2}},
            content_type="application/strategic-merge-patch+json",
        )
    assert caught.value.status == 415


# --- CRD schemas ----------------------------------------------------------------------------


def test_crd_schema_defaults_and_prunes(api, crds):
    created = bm(api, "create", {**module(), "spec": {**module()["spec"], "unknownField": 1}})
    spec = created["spec"]
    assert "unknownField" not in spec
    assert "pullPolicy" not in spec  # no default: imagePullPolicy applies when it is unset
    assert (spec["size"], spec["enabled"], spec["metricsPort"], spec["volumeMountPath"]) == (
        1,
        True,
        9000,
        "/data",
    )
    ipc = custom(api).create_namespaced_custom_object(
        "eevee.bot",
        "v1",
        NAMESPACE,
        "ipcconfigs",
        {"apiVersion": "eevee.bot/v1", "kind": "IpcConfig", "metadata": {"name": "bus"}},
    )
    assert ipc["spec"]["nats"]["managed"] == {
        "enabled": True,
        "image": "nats:2.10.24-alpine",
        "imagePullPolicy": "IfNotPresent",
    }
    assert ipc["spec"]["nats"]["token"] == {"generate": True}


@pytest.mark.parametrize(
    "spec, field, message",
    [
        (
            {"size": -1},
            "spec.size",
            "spec.size: Invalid value: -1: spec.size in body should be greater than or equal to 0",
        ),
        (
            {"size": "two"},
            "spec.size",
            'spec.size: Invalid value: "string": spec.size in body must be of type integer: "string"',
        ),
        (
            {"pullPolicy": "Sometimes"},
            "spec.pullPolicy",
            'spec.pullPolicy: Unsupported value: "Sometimes": supported values: "Always", "IfNotPresent", "Never"',
        ),
        (
            {"metricsPort": 70000},
            "spec.metricsPort",
            "spec.metricsPort: Invalid value: 70000: spec.metricsPort in body should be less than or equal to 65535",
        ),
        ({"moduleName": "Bad_Name"}, "spec.moduleName", "spec.moduleName in body should match"),
        ({"image": None}, "spec.image", "spec.image: Required value"),
    ],
)
def test_crd_schema_violations_are_422_with_field_paths(api, crds, spec, field, message):
    body = module()
    body["spec"].update(spec)
    body["spec"] = {k: v for k, v in body["spec"].items() if v is not None}
    with pytest.raises(client.ApiException) as caught:
        bm(api, "create", body)
    status = status_of(caught.value)
    assert caught.value.status == 422 and status["reason"] == "Invalid"
    assert status["message"].startswith('BotModule.eevee.bot "echo" is invalid: ')
    assert message in status["message"]
    assert field in [cause["field"] for cause in status["details"]["causes"]]


def test_strict_field_validation_refuses_unknown_fields(api, crds):
    with pytest.raises(client.ApiException) as caught:
        call(
            api,
            "POST",
            f"/apis/eevee.bot/v1/namespaces/{NAMESPACE}/botmodules",
            {**module(), "spec": {**module()["spec"], "sise": 3}},
            query=[("fieldValidation", "Strict")],
        )
    assert caught.value.status == 400 and 'unknown field "spec.sise"' in status_of(caught.value)["message"]


# --- built-in defaults and immutable fields -----------------------------------------------


def test_server_defaults_and_canonical_quantities(api):
    apps = client.AppsV1Api(api)
    body = deployment()
    body["spec"]["template"]["spec"]["containers"][0].update(
        resources={"limits": {"cpu": "0.5", "memory": "1024Mi"}},
        ports=[{"name": "http", "containerPort": 80}],
        livenessProbe={"httpGet": {"path": "/", "port": 80}},
    )
    dep = api.sanitize_for_serialization(apps.create_namespaced_deployment(NAMESPACE, body))
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["ports"][0]["protocol"] == "TCP"
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "1Gi"}
    assert (
        container["livenessProbe"]["timeoutSeconds"] == 1 and container["livenessProbe"]["httpGet"]["scheme"] == "HTTP"
    )
    assert dep["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"},
    }
    assert dep["spec"]["progressDeadlineSeconds"] == 600
    service = client.CoreV1Api(api).create_namespaced_service(
        NAMESPACE,
        {"metadata": {"name": "svc"}, "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}},
    )
    assert service.spec.cluster_ip and service.spec.type == "ClusterIP" and service.spec.ports[0].target_port == 80


def test_immutable_fields_are_422(api):
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(NAMESPACE, deployment())
    with pytest.raises(client.ApiException) as caught:
        apps.patch_namespaced_deployment(
            "web",
            NAMESPACE,
            {
                "spec": {
                    "selector": {"matchLabels": {"app": "other"}},
                    "template": {"metadata": {"labels": {"app": "other"}}},
                }
            },
        )
    assert caught.value.status == 422 and "field is immutable" in status_of(caught.value)["message"]
    core = client.CoreV1Api(api)
    core.create_namespaced_persistent_volume_claim(
        NAMESPACE,
        {
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        },
    )
    grown = core.patch_namespaced_persistent_volume_claim(
        "data", NAMESPACE, {"spec": {"resources": {"requests": {"storage": "2Gi"}}}}
    )
    assert grown.spec.resources.requests["storage"] == "2Gi"
    with pytest.raises(client.ApiException) as caught:
        core.patch_namespaced_persistent_volume_claim("data", NAMESPACE, {"spec": {"storageClassName": "fast"}})
    assert caught.value.status == 422 and "spec is immutable after creation" in status_of(caught.value)["message"]


def test_deployment_selector_must_match_template(api):
    body = deployment()
    body["spec"]["template"]["metadata"]["labels"] = {"app": "other"}
    with pytest.raises(client.ApiException) as caught:
        client.AppsV1Api(api).create_namespaced_deployment(NAMESPACE, body)
    assert (
        caught.value.status == 422
        and "`selector` does not match template `labels`" in status_of(caught.value)["message"]
    )


# --- finalizers and garbage collection ---------------------------------------------------


def test_finalizers_hold_deletion_until_removed(api):
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "a", "finalizers": ["example.org/hold"]}})
    deleted = core.delete_namespaced_config_map("a", NAMESPACE)
    held = core.read_namespaced_config_map("a", NAMESPACE)
    assert held.metadata.deletion_timestamp is not None and deleted is not None
    core.patch_namespaced_config_map("a", NAMESPACE, {"metadata": {"finalizers": None}})
    with pytest.raises(client.ApiException) as caught:
        core.read_namespaced_config_map("a", NAMESPACE)
    assert caught.value.status == 404


def owned_by(owner):
    return [
        {
            "apiVersion": owner["apiVersion"],
            "kind": owner["kind"],
            "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def test_owner_deletion_collects_dependents_in_the_background(api, crds):
    owner = bm(api, "create", module())
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "child", "ownerReferences": owned_by(owner)}})
    core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "bystander"}})
    bm(api, "delete", "echo")
    names = lambda: {c.metadata.name for c in core.list_namespaced_config_map(NAMESPACE).items}  # noqa: E731
    eventually(lambda: names() == {"bystander"}, message="dependent collected")


def test_the_collector_follows_owner_references_as_they_are_now(api, crds):
    """The garbage collector acts on the ownerReferences a dependent holds when its owner goes
    (kubernetes.io/docs/concepts/architecture/garbage-collection; kube-controller-manager's GC
    graph is updated by every dependent's update event): a reference removed by an update no
    longer ties the object to the owner, one added by an update does."""
    owner = bm(api, "create", module())
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "freed", "ownerReferences": owned_by(owner)}})
    core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "claimed"}})
    core.patch_namespaced_config_map("freed", NAMESPACE, {"metadata": {"ownerReferences": None}})
    core.patch_namespaced_config_map("claimed", NAMESPACE, {"metadata": {"ownerReferences": owned_by(owner)}})
    bm(api, "delete", "echo")
    names = lambda: {c.metadata.name for c in core.list_namespaced_config_map(NAMESPACE).items}  # noqa: E731
    eventually(lambda: names() == {"freed"}, message="only the object that holds the reference now is collected")


def test_orphan_propagation_keeps_dependents(api, crds):
    owner = bm(api, "create", module())
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "child", "ownerReferences": owned_by(owner)}})
    bm(api, "delete", "echo", propagation_policy="Orphan")
    child = core.read_namespaced_config_map("child", NAMESPACE)
    assert not child.metadata.owner_references


def test_a_dependent_of_a_missing_owner_is_collected(api):
    core = client.CoreV1Api(api)
    ghost = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ghost", "uid": "0000-gone"}}
    core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "orphan", "ownerReferences": owned_by(ghost)}})
    eventually(lambda: not core.list_namespaced_config_map(NAMESPACE, field_selector="metadata.name=orphan").items)


def test_deleting_a_namespace_deletes_its_objects(api, standin):
    standin.create_namespace("scratch")
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map("scratch", {"metadata": {"name": "a"}})
    core.delete_namespace("scratch")
    assert not core.list_config_map_for_all_namespaces(field_selector="metadata.namespace=scratch").items


# --- the workload chain: kube-controller-manager and a kubelet ----------------------------------


def ready_replicas(apps, name="web"):
    """The Deployment's ready replicas (0 when none, or no status yet)."""
    status = apps.read_namespaced_deployment(name, NAMESPACE).status
    return (status.ready_replicas or 0) if status is not None else 0


def test_a_deployment_makes_a_replicaset_that_makes_running_pods(api, standin):
    """kube-controller-manager's Deployment and ReplicaSet controllers: a ReplicaSet
    ``<deployment>-<pod-template-hash>`` controlled by the Deployment, revision 1 on both; Pods
    ``<replicaset>-<5 characters>`` controlled by the ReplicaSet; a kubelet makes them Running and
    Ready and writes their status through the status subresource; the Deployment's status counts
    them, and its generation is not raised by the controller's writes."""
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(NAMESPACE, deployment(replicas=2))

    def ready():
        status = apps.read_namespaced_deployment("web", NAMESPACE).status
        return status is not None and status.observed_generation == 1 and status.ready_replicas == 2 and status

    status = eventually(ready)
    assert status.updated_replicas == status.available_replicas == 2
    assert {c.type: c.status for c in status.conditions} == {"Available": "True", "Progressing": "True"}
    web = apps.read_namespaced_deployment("web", NAMESPACE)
    assert web.metadata.generation == 1 and web.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    (rs,) = apps.list_namespaced_replica_set(NAMESPACE).items
    hash_ = rs.metadata.labels["pod-template-hash"]
    assert rs.metadata.name == f"web-{hash_}" and rs.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
    assert [(r.kind, r.name, r.controller) for r in rs.metadata.owner_references] == [("Deployment", "web", True)]
    assert rs.spec.selector.match_labels == {"app": "web", "pod-template-hash": hash_}
    pods = core.list_namespaced_pod(NAMESPACE).items
    assert len(pods) == 2 and all(p.metadata.name.startswith(f"web-{hash_}-") and len(p.metadata.name) == len(rs.metadata.name) + 6 for p in pods)
    for pod in pods:
        assert [(r.kind, r.name) for r in pod.metadata.owner_references] == [("ReplicaSet", rs.metadata.name)]
        assert pod.status.phase == "Running" and pod.status.start_time is not None
        assert {c.type: c.status for c in pod.status.conditions} == {
            "PodScheduled": "True", "Initialized": "True", "ContainersReady": "True", "Ready": "True"}
        (container,) = pod.status.container_statuses
        assert container.ready and container.restart_count == 0 and container.state.running.started_at

    # A new template: a new ReplicaSet, revision 2; the old one is scaled to 0 and its Pods go.
    apps.patch_namespaced_deployment("web", NAMESPACE, {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "nginx:1.28"}]}}}})

    def rolled():
        sets = {r.metadata.name: r for r in apps.list_namespaced_replica_set(NAMESPACE).items}
        new = [r for r in sets.values() if r.metadata.annotations["deployment.kubernetes.io/revision"] == "2"]
        pods = core.list_namespaced_pod(NAMESPACE).items
        return (len(sets) == 2 and new and sets[rs.metadata.name].spec.replicas == 0
                and len(pods) == 2 and all(p.metadata.name.startswith(new[0].metadata.name) for p in pods) and new[0])

    eventually(rolled)
    assert apps.read_namespaced_deployment("web", NAMESPACE).metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    # Deleting the Deployment takes its ReplicaSets and their Pods (garbage collection).
    apps.delete_namespaced_deployment("web", NAMESPACE)
    eventually(lambda: not apps.list_namespaced_replica_set(NAMESPACE).items and not core.list_namespaced_pod(NAMESPACE).items)


def test_a_pod_status_is_written_only_through_its_status_subresource(api, standin):
    """kube-apiserver's podStrategy drops the status of a create or an update of the Pod (a new
    Pod is Pending), and podStatusStrategy keeps everything but the status of a status write."""
    core = client.CoreV1Api(api)
    body = {"metadata": {"name": "p", "labels": {"a": "1"}}, "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running"}}
    created = core.create_namespaced_pod(NAMESPACE, body)
    assert created.status.phase == "Pending"
    updated = core.patch_namespaced_pod("p", NAMESPACE, {"metadata": {"labels": {"a": "2"}}, "status": {"phase": "Failed"}})
    assert updated.status.phase == "Pending" and updated.metadata.labels == {"a": "2"}
    written = core.patch_namespaced_pod_status("p", NAMESPACE, {"metadata": {"labels": {"a": "3"}}, "status": {"phase": "Succeeded"}})
    assert written.status.phase == "Succeeded" and written.metadata.labels == {"a": "2"}


@pytest.mark.parametrize(
    "mode, details, phase, waiting",
    [
        ("crashloop", {"exit_code": 137, "reason": "OOMKilled"}, "Running", "CrashLoopBackOff"),
        ("image", {}, "Pending", ("ErrImagePull", "ImagePullBackOff")),
        ("config", {"message": 'secret "creds" not found'}, "Pending", "CreateContainerConfigError"),
        ("unschedulable", {}, "Pending", None),
    ],
)
def test_the_kubelet_reports_what_goes_wrong_as_a_real_one_does(api, standin, mode, details, phase, waiting):
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(NAMESPACE, deployment(replicas=1))
    eventually(lambda: ready_replicas(apps) == 1)
    standin.pod_fault(NAMESPACE, "web", mode, **details)

    def failing():
        (pod,) = core.list_namespaced_pod(NAMESPACE).items
        return pod.status.phase == phase and not any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []) and pod

    pod = eventually(failing)
    if mode == "unschedulable":
        (scheduled,) = pod.status.conditions
        assert (scheduled.type, scheduled.status, scheduled.reason) == ("PodScheduled", "False", "Unschedulable")
    else:
        state = pod.status.container_statuses[0].state.waiting
        assert state.reason in ((waiting,) if isinstance(waiting, str) else waiting)
    if mode == "crashloop":  # it keeps restarting: the count climbs, the last exit stays in lastState
        eventually(lambda: core.list_namespaced_pod(NAMESPACE).items[0].status.container_statuses[0].restart_count >= 2)
        last = core.list_namespaced_pod(NAMESPACE).items[0].status.container_statuses[0].last_state.terminated
        assert (last.exit_code, last.reason) == (137, "OOMKilled")
    eventually(lambda: ready_replicas(apps) == 0)
    standin.pod_fault(NAMESPACE, "web", None)
    eventually(lambda: ready_replicas(apps) == 1)


def test_a_deployment_that_never_becomes_ready(api, standin):
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(NAMESPACE, deployment(replicas=2))
    standin.deployments.set_never_ready(NAMESPACE, "web", deadline_exceeded=True)

    def stuck():
        status = apps.read_namespaced_deployment("web", NAMESPACE).status
        reasons = {c.type: c.reason for c in (status.conditions or [])} if status is not None else {}
        return reasons.get("Progressing") == "ProgressDeadlineExceeded" and status

    status = eventually(stuck)  # the status written after the fault, not one from before it
    assert not status.ready_replicas and status.unavailable_replicas == 2
    assert {c.type: c.status for c in status.conditions} == {"Available": "False", "Progressing": "False"}


# --- the real server's validation of built-in kinds ----------------------------------------


def _refused(call_, *args):
    with pytest.raises(client.ApiException) as caught:
        call_(*args)
    return caught.value.status, status_of(caught.value)["message"]


def test_types_and_integer_ranges_come_from_the_openapi_schemas(api):
    """A real server cannot decode these into its Go types and answers 400 BadRequest
    ("json: cannot unmarshal ..."), before any validation. Raw requests: the typed client
    would refuse them itself."""
    deployments = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
    too_many = deployment()
    too_many["spec"]["replicas"] = 2147483648  # int32
    code, message = _refused(call, api, "POST", deployments, too_many)
    assert code == 400 and "cannot unmarshal number 2147483648" in message and "replicas of type int32" in message
    not_a_list = deployment()
    not_a_list["spec"]["template"]["spec"]["containers"][0]["startupProbe"] = {"exec": {"command": "not-a-list"}}
    code, message = _refused(call, api, "POST", deployments, not_a_list)
    assert code == 400 and "cannot unmarshal string" in message and "command" in message
    not_a_map = {"metadata": {"name": "c"}, "data": ["a"]}
    code, message = _refused(call, api, "POST", f"/api/v1/namespaces/{NAMESPACE}/configmaps", not_a_map)
    assert code == 400 and "data of type map" in message


def test_unknown_fields_of_built_in_kinds_are_dropped(api):
    """A real server's decoder drops fields a built-in type does not have (Ignore, the API
    default), warns with fieldValidation=Warn and refuses with Strict (kubectl's default)."""
    body = deployment()
    body["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"  # a typo
    stored = call(api, "POST", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", body)
    assert "imagePullPolcy" not in stored["spec"]["template"]["spec"]["containers"][0]
    body["metadata"]["name"] = "strict"
    with pytest.raises(client.ApiException) as caught:
        call(api, "POST", f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", body, query=[("fieldValidation", "Strict")])
    assert caught.value.status == 400
    assert 'unknown field "spec.template.spec.containers[0].imagePullPolcy"' in status_of(caught.value)["message"]


def test_probes_resources_images_and_enums_are_validated_as_the_api_server_does(api):
    """core/validation's answers (422 Invalid), one cause each, with the field path."""
    apps = client.AppsV1Api(api)
    body = deployment()
    body["spec"]["template"]["spec"]["containers"][0].update(
        image=" nginx:1.27",
        imagePullPolicy="Sometimes",
        startupProbe={"exec": {"command": ["true"]}, "periodSeconds": -3},
        livenessProbe={"httpGet": {"path": "/", "port": 80}, "tcpSocket": {"port": 80}, "successThreshold": 2},
        readinessProbe={"periodSeconds": 5},
        resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}},
    )
    code, message = _refused(apps.create_namespaced_deployment, NAMESPACE, body)
    container = "spec.template.spec.containers[0]"
    assert code == 422
    for expected in (
        f'{container}.image: Invalid value: " nginx:1.27": must not have leading or trailing whitespace',
        f'{container}.imagePullPolicy: Unsupported value: "Sometimes"',
        f"{container}.startupProbe.periodSeconds: Invalid value: -3: must be greater than or equal to 0",
        f"{container}.livenessProbe: Forbidden: may not specify more than 1 handler type",
        f"{container}.livenessProbe.successThreshold: Invalid value: 2: must be 1",
        f"{container}.readinessProbe: Required value: must specify a handler type",
        f'{container}.resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1',
    ):
        assert expected in message, expected


def test_config_map_and_secret_data_is_at_most_1_mib(api):
    """core.MaxSecretSize: a real server answers 422 "Too long" past 1 MiB of data (keys included)."""
    core = client.CoreV1Api(api)
    at_limit = "x" * (1024 * 1024 - len("config.yaml"))
    core.create_namespaced_config_map(NAMESPACE, {"metadata": {"name": "fits"}, "data": {"config.yaml": at_limit}})
    code, message = _refused(
        core.create_namespaced_config_map, NAMESPACE, {"metadata": {"name": "big"}, "data": {"config.yaml": at_limit + "x"}}
    )
    assert code == 422 and "Too long: may not be more than 1048576 bytes" in message
    import base64

    big = base64.b64encode(b"\0" * (1024 * 1024)).decode()
    code, message = _refused(core.create_namespaced_secret, NAMESPACE, {"metadata": {"name": "big"}, "data": {"k": big}})
    assert code == 422 and "Too long" in message


def test_a_claim_cannot_shrink(api):
    """A real server refuses a smaller storage request (422 Forbidden) and allows growing."""
    core = client.CoreV1Api(api)
    core.create_namespaced_persistent_volume_claim(
        NAMESPACE, {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    )
    code, message = _refused(
        core.patch_namespaced_persistent_volume_claim, "data", NAMESPACE, {"spec": {"resources": {"requests": {"storage": "500Mi"}}}}
    )
    assert code == 422 and "spec.resources.requests.storage: Forbidden: field can not be less than previous value" in message


def cron_job(name="nightly-irc-backup", schedule="0 3 * * *", restart="Never"):
    return {"metadata": {"name": name}, "spec": {"schedule": schedule, "jobTemplate": {"spec": {"template": {"spec": {
        "restartPolicy": restart, "containers": [{"name": "backup", "image": "backup:1"}]}}}}}}


def test_batch_v1_cronjobs_and_jobs_are_defaulted_and_validated_as_a_real_server_does(api):
    batch = client.BatchV1Api(api)
    made = api.sanitize_for_serialization(batch.create_namespaced_cron_job(NAMESPACE, cron_job()))
    # Real: concurrencyPolicy Allow, suspend false, history limits 3 and 1, the pod template defaulted.
    assert (made["spec"]["concurrencyPolicy"], made["spec"]["suspend"]) == ("Allow", False)
    assert (made["spec"]["successfulJobsHistoryLimit"], made["spec"]["failedJobsHistoryLimit"]) == (3, 1)
    assert made["metadata"]["generation"] == 1
    for body, field, words in [
        (cron_job(name="n" * 53), "metadata.name", "must be no more than 52 characters"),  # apis/batch validation
        (cron_job(schedule="every night"), "spec.schedule", "unparseable schedule"),
        (cron_job(name="always", restart="Always"), "spec.jobTemplate.spec.template.spec.restartPolicy", "Unsupported value"),
    ]:
        with pytest.raises(client.ApiException) as caught:
            batch.create_namespaced_cron_job(NAMESPACE, body)
        status = status_of(caught.value)
        assert caught.value.status == 422 and words in status["message"]
        assert field in [c["field"] for c in status["details"]["causes"]]
    job = {"metadata": {"name": "restore"}, "spec": {"template": cron_job()["spec"]["jobTemplate"]["spec"]["template"]}}
    made = api.sanitize_for_serialization(batch.create_namespaced_job(NAMESPACE, job))
    uid = made["metadata"]["uid"]
    # Real: backoffLimit 6, and a selector on the Job's own uid, whose labels the pods get.
    assert made["spec"]["backoffLimit"] == 6
    assert made["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert made["spec"]["template"]["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "restore"
    # Real: a Job's pod template cannot change.
    with pytest.raises(client.ApiException) as caught:
        batch.patch_namespaced_job("restore", NAMESPACE, {"spec": {"template": {"spec": {"activeDeadlineSeconds": 5}}}})
    assert caught.value.status == 422 and "field is immutable" in status_of(caught.value)["message"]


def test_two_controller_references_are_422(api):
    """apimachinery ValidateOwnerReferences: "Only one reference can have Controller set to true"."""
    owners = [{"apiVersion": "v1", "kind": "ConfigMap", "name": n, "uid": f"uid-{n}", "controller": True} for n in ("a", "b")]
    body = {"metadata": {"name": "twice", "ownerReferences": owners}}
    with pytest.raises(client.ApiException) as caught:
        client.CoreV1Api(api).create_namespaced_config_map(NAMESPACE, body)
    assert caught.value.status == 422 and "Only one reference can have Controller set to true" in status_of(caught.value)["message"]


@pytest.mark.parametrize(
    "image, reason, words",
    [
        ("Nginx:1.27", "InvalidImageName", "repository name must be lowercase"),  # the kubelet cannot parse it
        ("registry.invalid/nginx:1.27", "ErrImagePull", "no such host"),  # RFC 6761: never resolves
    ],
)
def test_the_kubelet_refuses_what_it_cannot_pull(api, standin, image, reason, words):
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    body = deployment(replicas=1)
    body["spec"]["template"]["spec"]["containers"][0]["image"] = image
    apps.create_namespaced_deployment(NAMESPACE, body)

    def waiting():
        pods = core.list_namespaced_pod(NAMESPACE).items
        state = pods and pods[0].status.container_statuses and pods[0].status.container_statuses[0].state.waiting
        return state and state

    state = eventually(waiting)
    assert state.reason in (reason, "ImagePullBackOff") and words in state.message
