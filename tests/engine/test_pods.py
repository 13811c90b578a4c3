"""What the cache keeps of a Pod or ReplicaSet (eevee.engine.pods.slim) is all that is read of it:
the podStatus of the HTTP API and the Ready reason say the same from the slim copy as from the
whole object, and what is never read (IPs, the spec, labels, runtime ids) is not kept."""

import copy

import pytest

from eevee.engine.pods import REVISION, pod_problem, pod_status, slim, speaking_pod


def replicaset(uid: str, revision: str) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"irc-{uid}",
            "namespace": "bot",
            "uid": uid,
            "resourceVersion": "10",
            "labels": {"pod-template-hash": uid},
            "annotations": {REVISION: revision, "deployment.kubernetes.io/desired-replicas": "1"},
            "ownerReferences": [{"kind": "Deployment", "name": "irc", "uid": "d1", "controller": True}],
            "managedFields": [{"manager": "kube-controller-manager"}],
        },
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "irc", "image": "irc:1"}]}}},
        "status": {"replicas": 1, "readyReplicas": 1},
    }


def pod(name: str, owner: str, created: str, container_status: dict, conditions: list) -> dict:
    """A Pod as the kubelet reports it (core/v1 PodStatus and ContainerStatus)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "bot",
            "uid": f"u-{name}",
            "resourceVersion": "20",
            "creationTimestamp": created,
            "labels": {"app.kubernetes.io/managed-by": "eevee-operator"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-12-01T00:00:00Z"},
            "ownerReferences": [{"kind": "ReplicaSet", "name": f"irc-{owner}", "uid": owner, "controller": True}],
        },
        "spec": {"containers": [{"name": "irc", "image": "irc:2"}], "nodeName": "node-1"},
        "status": {
            "phase": "Running",
            "hostIP": "10.0.0.4",
            "podIP": "10.244.1.7",
            "podIPs": [{"ip": "10.244.1.7"}],
            "qosClass": "Burstable",
            "startTime": created,
            "conditions": conditions,
            "containerStatuses": [
                {
                    "name": "irc",
                    "image": "irc:2",
                    "imageID": "docker.io/irc@sha256:ab",
                    "containerID": "containerd://1234",
                    "started": False,
                    **container_status,
                }
            ],
        },
    }


CRASHING = {
    "ready": False,
    "restartCount": 7,
    "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}},
    "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}},
}
RUNNING = {"ready": True, "restartCount": 0, "state": {"running": {"startedAt": "2026-12-01T00:00:00Z"}}}
UNSCHEDULED = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes"}]
READY = [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-01T00:00:00Z"}]


@pytest.mark.parametrize(
    "container, conditions",
    [(CRASHING, READY[:0]), (RUNNING, READY), ({"ready": False, "restartCount": 0, "state": {}}, UNSCHEDULED)],
    ids=["crash-loop", "running", "unschedulable"],
)
def test_the_slim_pod_says_what_the_whole_pod_says(container, conditions):
    whole = pod("irc-1", "rs2", "2026-12-01T00:00:00Z", container, conditions)
    kept = slim(copy.deepcopy(whole))
    assert pod_status(kept) == pod_status(whole)
    assert pod_problem(kept) == pod_problem(whole)
    # What is never read is not kept.
    assert "spec" not in kept and "labels" not in kept["metadata"] and "annotations" not in kept["metadata"]
    assert not {"podIP", "podIPs", "hostIP", "qosClass"} & set(kept["status"])
    assert not {"containerID", "imageID", "started"} & set(kept["status"]["containerStatuses"][0])


def test_the_speaking_pod_is_found_from_slim_copies():
    """The newest Pod of the ReplicaSet with the highest revision: the revision is kept, the rest
    of a ReplicaSet (its spec, status, labels, other annotations) is not."""
    sets = [replicaset("rs1", "1"), replicaset("rs2", "2")]
    pods = [
        pod("irc-old", "rs1", "2026-12-02T00:00:00Z", RUNNING, READY),
        pod("irc-new", "rs2", "2026-12-01T00:00:00Z", CRASHING, []),
    ]

    def by_owner(objects):
        out: dict[str, list] = {}
        for p in objects:
            out.setdefault(p["metadata"]["ownerReferences"][0]["uid"], []).append(p)
        return out

    kept_sets = [slim(s) for s in sets]
    assert kept_sets[1]["metadata"]["annotations"] == {REVISION: "2"}
    assert not {"spec", "status"} & set(kept_sets[1]) and "managedFields" not in kept_sets[1]["metadata"]
    whole = speaking_pod(sets, by_owner(pods))
    kept = speaking_pod(kept_sets, by_owner([slim(p) for p in pods]))
    assert whole["metadata"]["name"] == kept["metadata"]["name"] == "irc-new"

