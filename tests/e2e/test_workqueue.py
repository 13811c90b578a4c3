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
    events, overflowed = queue.drain()
    assert [(t, o["metadata"]["name"], o["metadata"]["resourceVersion"]) for t, o in events] == [
        ("ADDED", "b", "200"), ("DELETED", "a", "300")] and not overflowed
    assert len(queue) == 0 and queue.drain() == ([], False)


def test_past_its_limit_the_queue_keeps_no_more_objects_and_says_so():
    queue = EventQueue(limit=10)
    for n in range(1000):
        queue.put(("Deployment", "ns", f"d{n}"), "MODIFIED", obj(f"d{n}", n))
    queue.put(("Deployment", "ns", "d3"), "MODIFIED", obj("d3", 5000))  # a known object is still updated
    events, overflowed = queue.drain()
    assert len(events) == 10 and overflowed  # the loop lists everything again
    assert events[-1][1]["metadata"]["resourceVersion"] == "5000"
