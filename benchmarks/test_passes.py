"""Poll passes at scale against the stand-in: wall time, requests, writes; and how cost grows."""

from __future__ import annotations

import collections
import math
import statistics

from benchmarks.conftest import FULL, ROUNDS, Scale
from eevee.kube.client import PAGE_SIZE as PAGE


def test_steady_state_pass(benchmark, scale: Scale):
    """Target: under 1 s at 1,000 modules on 2 cores; zero writes; requests set by pagination only."""
    log = scale.standin.log
    mark = log.mark()
    benchmark.pedantic(scale.runner.full_pass, rounds=ROUNDS, iterations=1, warmup_rounds=1)
    passes = ROUNDS + 1
    writes = log.writes(mark)
    requests = len(log.entries(mark)) / passes
    snapshot = scale.runner.snapshot
    per_kind = collections.Counter(key[0] for key in [*snapshot.resources, *snapshot.children])
    # A list request per page of each kind; an empty kind costs one request too.
    rules = scale.runner.rules
    kinds = len(rules.tables) + len(rules.child_kinds())  # each table's kind, and each kind of child
    pages = sum(math.ceil(n / PAGE) for n in per_kind.values()) + kinds - len(per_kind)
    benchmark.extra_info.update(modules=scale.count, requests_per_pass=requests, writes_per_pass=len(writes) / passes,
                                seconds_per_module=(benchmark.stats.stats.mean / scale.count) if benchmark.stats else None)
    assert writes == [], [f"{w.verb} {w.resource} {w.name}" for w in writes[:5]]
    assert requests <= pages, (requests, dict(per_kind))
    assert {r.verb for r in log.entries(mark)} == {"list"}


class Floor:
    """The least a list-based pass can cost: the same list requests the operator sends, by a plain
    HTTP client (urllib3), each page decoded with the standard library's json."""

    def __init__(self, scale: Scale) -> None:
        import ssl

        import urllib3

        log = scale.standin.log
        mark = log.mark()
        scale.runner.full_pass()
        self.paths = [r.path for r in log.entries(mark) if r.verb == "list"]
        context = ssl.create_default_context(cafile=str(scale.standin.ca_file))
        self.http = urllib3.PoolManager(ssl_context=context)
        self.url = scale.standin.url
        self.headers = {"Authorization": f"Bearer {scale.standin.token}", "Accept": "application/json"}

    def __call__(self) -> None:
        import json

        for path in self.paths:
            json.loads(self.http.request("GET", self.url + path, headers=self.headers).data)


def median_seconds(run, rounds: int) -> float:
    import statistics
    import time

    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


# In the test suite, on a CI machine as loaded as ours: with two busy loops on the two cores the
# ratio of seven alternated rounds ranged 1.09-1.57 (ten trials; 1.25 on a quiet machine), and
# once 1.74 in a soak. This bound catches a pass that doubles; the goal is checked by the bench.
FLOOR_RATIO = 2.0
FLOOR_GOAL = 1.3  # in `tox -e bench`, ten alternated rounds on the development machine


def test_steady_pass_against_the_floor(benchmark, scale: Scale):
    """A steady pass against the floor (the same list requests, decoded by a plain client),
    alternated round by round in the same run so that both see the same machine.

    The goal is 1.3x, asserted by `tox -e bench`; the test suite checks FLOOR_RATIO, as the
    floor's own time varies by a third from round to round on a loaded 2-core machine. The
    stand-in shares the process (its threads answer both the pass and the floor)."""
    floor = Floor(scale)
    floors, passes = [], []
    for _ in range(max(ROUNDS, 7)):
        floors.append(median_seconds(floor, 1))
        passes.append(median_seconds(scale.runner.full_pass, 1))
    floor_seconds, pass_seconds = statistics.median(floors), statistics.median(passes)
    ratio = pass_seconds / floor_seconds
    benchmark.extra_info.update(modules=scale.count, floor_seconds=floor_seconds, pass_seconds=pass_seconds, ratio=ratio)
    benchmark.pedantic(floor, rounds=1, iterations=1)
    bound = FLOOR_GOAL if FULL and scale.count >= 1000 else FLOOR_RATIO  # the goal is set at 1,000 and 5,000
    assert ratio <= bound, (pass_seconds, floor_seconds)
