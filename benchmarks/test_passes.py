"""Poll passes at scale against the stand-in: wall time, requests, writes; and how cost grows."""

from __future__ import annotations

import math

from benchmarks.conftest import ROUNDS, Scale

KINDS_PER_NAMESPACE = 2 + 5  # BotModule, IpcConfig; ConfigMap, PersistentVolumeClaim, Deployment, Secret, Service
PAGE = 500


def test_steady_state_pass(benchmark, scale: Scale):
    """Target: under 1 s at 1,000 modules on 2 cores; zero writes; requests set by pagination only."""
    log = scale.standin.log
    mark = log.mark()
    benchmark.pedantic(scale.runner.full_pass, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    passes = ROUNDS + 1
    writes = log.writes(mark)
    requests = len(log.entries(mark)) / passes
    pages = math.ceil(max(scale.count, 1) / PAGE)
    benchmark.extra_info.update(modules=scale.count, requests_per_pass=requests, writes_per_pass=len(writes) / passes,
                                seconds_per_module=(benchmark.stats.stats.mean / scale.count) if benchmark.stats else None)
    assert writes == [], [f"{w.verb} {w.resource} {w.name}" for w in writes[:5]]
    assert requests <= KINDS_PER_NAMESPACE * pages, requests
    assert {r.verb for r in log.entries(mark)} == {"list"}
