"""The Grafana dashboard: shipped by the chart as Grafana discovers dashboards, and every panel's
query run through a real Prometheus that scrapes a real operator on the stand-in.

Each query must parse (Prometheus answers `success`, not `bad_data`), and each must return data
once the bot has converged: a panel that can only say "No data" is a panel nobody can read.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.charts.helm import render
from tests.conftest import eventually
from tests.monitoring import draw, live
from tests.monitoring.prometheus import tool


def test_the_chart_ships_the_dashboard_where_grafana_looks():
    assert not [o for o in render() if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("-dashboard")]
    shipped = next(o for o in render({"dashboard": {"enabled": True}}) if o["metadata"]["name"] == "eevee-operator-dashboard")
    # Grafana's dashboard sidecar (kube-prometheus-stack) and k8s-monitoring select on this label.
    assert shipped["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(shipped["data"]["eevee-operator.json"]) == live.dashboard()
    moved = next(o for o in render({"dashboard": {"enabled": True, "namespace": "monitoring", "labels": {"dashboards": "eevee", "grafana_dashboard": None},
                                                  "annotations": {"grafana_folder": "Bots"}}})
                 if o["metadata"]["name"] == "eevee-operator-dashboard")
    assert moved["metadata"]["namespace"] == "monitoring" and moved["metadata"]["labels"]["dashboards"] == "eevee"
    assert "grafana_dashboard" not in moved["metadata"]["labels"]  # Helm drops a default set to null
    assert moved["metadata"]["annotations"] == {"grafana_folder": "Bots"}


def test_every_panel_reads_the_chosen_datasource_and_variables():
    board = live.dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert {"namespace", "module"} <= set(variables)
    for panel in live.panels(board):
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        exprs = " ".join(t["expr"] for t in panel["targets"])
        assert "$job" in exprs, panel["title"]
        if "eevee_operator_module" in exprs or "eevee_operator_resource" in exprs:
            assert "$namespace" in exprs and "$module" in exprs, panel["title"]
    titles = {p["title"] for p in live.panels(board)}
    # One look answers: up and leading, modules not ready and why, writes, passes, reloads, backups.
    assert {"Leading", "Resources and why they are not ready", "Writes to children", "Pass duration",
            "Rule reloads and relists", "Backups"} <= titles


@pytest.mark.timeout(300)
def test_every_panel_query_returns_data_from_a_real_prometheus(s3_server, tmp_path):
    binary = tool("prometheus")
    board = live.dashboard()
    with live.bot(s3_server) as bot, live.prometheus(bot.metrics_target, binary) as prom:
        started = time.time()
        # Converged and scraped: every resource's series is in, and a rate has two samples.
        eventually(lambda: len(prom.query('eevee_operator_resource_ready{kind="BotModule"}')) == 5, timeout=60,
                   message="the five modules scraped")

        def empty_panels() -> list[str]:
            """The queries that answer nothing yet (one that does not parse fails at once)."""
            return [f"{panel['title']}: {target['expr']}" for panel in live.panels(board) for target in panel["targets"]
                    if not prom.query(live.resolve(target["expr"]))]

        deadline = time.monotonic() + 60  # a rate needs two scrapes in its window
        while (empty := empty_panels()) and time.monotonic() < deadline:
            time.sleep(live.SCRAPE_SECONDS)
        assert empty == []
        for variable in board["templating"]["list"]:
            if variable["type"] != "query":
                continue
            match, label = variable["query"]["query"].removeprefix("label_values(").removesuffix(")").rsplit(", ", 1)
            assert prom.label_values(label, live.resolve(match)), variable["name"]
        # The README's picture is drawn from these same answers (tests.monitoring.draw).
        draw.draw(board, prom, started, time.time(), tmp_path / "dashboard.png")
        assert (tmp_path / "dashboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
