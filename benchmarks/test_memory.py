"""Peak memory of the operator process holding 1,000 modules (target: under 150 MB RSS)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from benchmarks.conftest import NAMESPACE, ROOT, Scale

TARGET_MB = 150


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_operator_peak_memory(benchmark, scale: Scale):
    if scale.count != 1000:
        pytest.skip("measured at 1,000 modules")
    env = {**os.environ, "KUBECONFIG": str(scale.standin.kubeconfig), "NAMESPACE": NAMESPACE, "LEADER_ELECTION": "false",
           "POLL_INTERVAL_SECONDS": "0.5", "HTTP_API_PORT": "0", "HTTP_API_HOST": "127.0.0.1", "LOG_LEVEL": "WARNING",
           "RULES_DIR": str(ROOT / "rules")}
    log = scale.standin.log
    with subprocess.Popen([sys.executable, "-m", "eevee", "run"], env=env, stderr=subprocess.DEVNULL) as process:
        try:
            mark = log.mark()
            deadline = time.monotonic() + 120
            # Let it hold everything for three full passes.
            while sum(1 for r in log.entries(mark) if r.verb == "list" and r.resource == "botmodules") < 6 and time.monotonic() < deadline:
                time.sleep(0.1)
            peak = benchmark.pedantic(peak_rss_mb, args=(process.pid,), rounds=1, iterations=1)
        finally:
            process.terminate()
            process.wait(10)
    benchmark.extra_info.update(modules=scale.count, peak_rss_mb=round(peak, 1), target_mb=TARGET_MB)
    assert peak < TARGET_MB, peak
