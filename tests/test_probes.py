"""The probe runner: never blocks a reconcile, checks again when due, says when a result changed."""

from __future__ import annotations

import threading

from eevee.probes import CHECKING, ProbeRunner
from tests.conftest import eventually


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_probe_answers_at_once_then_with_its_result_and_checks_again_when_due():
    clock, calls, release = Clock(), [], threading.Event()
    woken = threading.Event()

    def check(inputs):
        calls.append(dict(inputs))
        release.wait(5)
        return {"ok": inputs["n"] > 0, "reason": "Counted", "message": f"n={inputs['n']}"}

    runner = ProbeRunner(on_change=woken.set, checks={"count": check}, clock=clock)
    try:
        key, first = runner.result("count", {"n": 1}, every=60)
        assert first == CHECKING  # the check is running; the reconcile does not wait for it
        release.set()
        eventually(woken.is_set)
        assert runner.take_changed() == [key]
        assert runner.current(key)["ok"] is True
        runner.result("count", {"n": 1}, every=60)
        assert len(calls) == 1  # not due yet
        clock.now += 61
        runner.current(key)  # due: checked again in the background, same answer, no change
        eventually(lambda: len(calls) == 2)
        eventually(lambda: not runner._entries[key].running)
        assert runner.take_changed() == []
        other, _ = runner.result("count", {"n": 0}, every=60)  # other inputs: another probe
        assert other != key
        eventually(lambda: runner.current(other)["ok"] is False)
        clock.now += 10_000  # nobody asked for a long while: forgotten
        runner.take_changed()
        assert runner.current(key) is None
    finally:
        runner.close()


def test_a_check_that_raises_is_a_failed_result_without_its_text():
    def check(inputs):
        raise RuntimeError(f"boom with {inputs['secret']}")

    runner = ProbeRunner(checks={"bad": check})
    try:
        key, _ = runner.result("bad", {"secret": "hunter2"}, every=60)
        result = eventually(lambda: runner.current(key) if runner.current(key) is not CHECKING else None)
        assert result["ok"] is False and result["reason"] == "CheckFailed"
        assert "hunter2" not in str(result)
    finally:
        runner.close()
