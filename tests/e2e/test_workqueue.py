"""Work waiting for the loop is bounded by objects, not events (controller-runtime's workqueue)."""

from __future__ import annotations

import threading

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
    events = queue.drain()
    assert [(k[2], t, o["metadata"]["name"], o["metadata"]["resourceVersion"]) for k, t, o in events] == [
        ("b", "ADDED", "b", "200"), ("a", "DELETED", "a", "300")]
    assert len(queue) == 0 and queue.drain() == []


def test_past_its_limit_a_new_object_waits_for_the_loop_and_nothing_is_dropped():
    queue = EventQueue(limit=10)
    for n in range(10):
        queue.put(("Deployment", "ns", f"d{n}"), "MODIFIED", obj(f"d{n}", n))
    queue.put(("Deployment", "ns", "d3"), "MODIFIED", obj("d3", 5000))  # a known object is updated at once
    waiting = threading.Thread(target=queue.put, args=(("Deployment", "ns", "new"), "ADDED", obj("new", 6000)))
    waiting.start()
    waiting.join(0.3)
    assert waiting.is_alive() and len(queue) == 10  # back-pressure: the informer waits
    first = queue.drain()
    waiting.join(5)
    assert not waiting.is_alive()
    assert len(first) == 10 and first[-1][2]["metadata"]["resourceVersion"] == "5000"  # the latest goes last
    assert [o["metadata"]["name"] for _, _, o in queue.drain()] == ["new"]


def test_closing_releases_a_waiting_informer():
    queue = EventQueue(limit=1)
    queue.put(("Deployment", "ns", "a"), "ADDED", obj("a", 1))
    waiting = threading.Thread(target=queue.put, args=(("Deployment", "ns", "b"), "ADDED", obj("b", 2)))
    waiting.start()
    queue.close()
    waiting.join(5)
    assert not waiting.is_alive()
