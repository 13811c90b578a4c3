"""Work waiting for the loop is bounded by objects, not events (controller-runtime's workqueue)."""

from __future__ import annotations

from eevee.operator.workqueue import EventQueue


def obj(name, version):
    return {"kind": "Deployment", "metadata": {"namespace": "ns", "name": name, "resourceVersion": str(version)}}


def test_one_entry_per_object_the_latest_and_in_order_of_recency():
    queue = EventQueue()
    for version in range(100):
        queue.put(("Deployment", "ns", "a"), "MODIFIED", obj("a", version))
    queue.put(("Deployment", "ns", "b"), "ADDED", obj("b", 200))
    queue.put(("Deployment", "ns", "a"), "DELETED", obj("a", 300))
    assert len(queue) == 2
    assert [(t, o["metadata"]["name"], o["metadata"]["resourceVersion"]) for t, o in queue.drain()] == [
        ("ADDED", "b", "200"), ("DELETED", "a", "300")]
    assert len(queue) == 0 and queue.drain() == []
