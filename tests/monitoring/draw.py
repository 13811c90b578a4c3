"""Draw docs/dashboard.png: the dashboard's panels, each from its own queries, answered by a real
Prometheus that scrapes a real operator on the stand-in while the bot does a few things.

    .venv/bin/python -m tests.monitoring.draw [docs/dashboard.png] [--seconds 120]

Needs Debian's prometheus package, and makes moto's S3 server as the tests do. The layout follows
the panels' gridPos (24 columns), as Grafana lays them out.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.conftest import NAMESPACE, ROOT, eventually
from tests.monitoring import live

ROW_HEIGHT = 0.42  # inches per grid unit
RATE_INTERVAL = "10s"  # a run of minutes, not hours: rates over ten seconds (Grafana picks it from the range)
HIDDEN = ("__name__", "job", "pod", "instance")


def _legend(template: str, metric: dict[str, str]) -> str:
    text = template or ", ".join(f"{k}={v}" for k, v in metric.items() if k not in HIDDEN)
    for key, value in metric.items():
        text = text.replace("{{" + key + "}}", value)
    return re.sub(r"\{\{\w+\}\}", "", text).strip()  # a label the series lacks (empty), as Grafana shows it


def _number(value: float, unit: str | None) -> str:
    if unit == "s":
        for size, suffix in ((86400, "d"), (3600, "h"), (60, "min"), (1, "s"), (0.001, "ms")):
            if abs(value) >= size or size == 0.001:
                return f"{value / size:.3g} {suffix}"
    return f"{value:.3g}"


def draw(board: dict[str, Any], prom: live.Prometheus, start: float, end: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in board["panels"])
    figure = plt.figure(figsize=(24 * 0.75, height * ROW_HEIGHT), dpi=72)
    grid = figure.add_gridspec(height, 24, hspace=1.6, wspace=0.6, left=0.03, right=0.99, top=0.97, bottom=0.02)
    figure.suptitle(f"{board['title']} - {datetime.fromtimestamp(end):%Y-%m-%d %H:%M}", fontsize=16, x=0.03, ha="left")
    step = max(1.0, (end - start) / 200)
    for panel in board["panels"]:
        pos = panel["gridPos"]
        if panel["type"] == "row":
            axes = figure.add_subplot(grid[pos["y"], :])
            axes.axis("off")
            axes.text(0, 0.2, panel["title"], fontsize=14, fontweight="bold")
            continue
        axes = figure.add_subplot(grid[pos["y"] + 1 : pos["y"] + pos["h"], pos["x"] : pos["x"] + pos["w"]])
        axes.set_title(panel["title"], fontsize=11, loc="left")
        unit = panel["fieldConfig"]["defaults"].get("unit")
        if panel["type"] == "timeseries":
            for target in panel["targets"]:
                for series in prom.query_range(live.resolve(target["expr"], RATE_INTERVAL), start, end, step):
                    times = [datetime.fromtimestamp(float(t)) for t, _ in series["values"]]
                    values = [float(v) for _, v in series["values"]]
                    dashed = "desired" in target["legendFormat"]
                    axes.plot(times, values, linestyle="--" if dashed else "-", linewidth=1.4,
                              label=_legend(target["legendFormat"], series["metric"]))
            axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
            axes.tick_params(labelsize=8)
            if axes.get_legend_handles_labels()[0]:
                axes.legend(fontsize=7, loc="upper left", ncol=2)
            if unit:
                axes.set_ylabel(unit, fontsize=8)
            continue
        axes.axis("off")
        rows = []
        for target in panel["targets"]:
            for series in prom.query(live.resolve(target["expr"])):
                rows.append((series["metric"], float(series["value"][1]), target["legendFormat"]))
        if panel["type"] == "stat":
            if panel["options"].get("textMode") == "name":
                text = "  ".join(_legend(legend, metric) for metric, _, legend in rows)
            elif len(rows) > 1:
                text = "  ".join(f"{_number(value, unit)} {legend}" for _, value, legend in rows)
            else:
                text = "  ".join(_number(value, unit) for _, value, _ in rows)
            axes.text(0.5, 0.35, text or "-", fontsize=26, ha="center", va="center", color="#2a7f3f")
            continue
        keys = sorted({k for metric, _, _ in rows for k in metric if k not in HIDDEN})
        named = any(legend for _, _, legend in rows)
        cells = [
            [metric.get(k, "") for k in keys] + ([legend] if named else []) + [_number(value, unit)]
            for metric, value, legend in rows
        ][:12]
        if cells:
            labels = [*keys, *(["what"] if named else []), "value"]
            table = axes.table(cellText=cells, colLabels=labels, loc="upper center", cellLoc="left")
            table.auto_set_font_size(False)
            table.set_fontsize(8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def _activity(bot: live.Bot, seconds: float) -> None:
    """A few minutes of a bot's life, compressed: a rollout, a scale-up, a crash loop and its fix."""
    steps = [
        (0.15, lambda: bot.cluster.patch("BotModule", "echo", {"spec": {"image": "ghcr.io/eeveebot/echo:1.1.0"}})),
        (0.30, lambda: bot.cluster.patch("BotModule", "router", {"spec": {"size": 3}})),
        (0.45, lambda: bot.standin.pod_fault(NAMESPACE, "eevee-echo-module", "crashloop")),
        (0.75, lambda: bot.standin.pod_fault(NAMESPACE, "eevee-echo-module", None)),
    ]
    started = time.monotonic()
    for at, action in steps:
        time.sleep(max(0.0, started + at * seconds - time.monotonic()))
        action()
    time.sleep(max(0.0, started + seconds - time.monotonic()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", nargs="?", default=str(ROOT / "docs" / "dashboard.png"))
    parser.add_argument("--seconds", type=float, default=120.0, help="how long the bot runs while scraped")
    args = parser.parse_args(argv)
    binary = shutil.which("prometheus")
    if binary is None:
        print("error: prometheus is not installed (apt-get install prometheus)", file=sys.stderr)
        return 1
    from tests.s3_server import running_s3_server

    with running_s3_server() as s3, live.bot(s3) as bot, live.prometheus(bot.metrics_target, binary) as prom:
        eventually(lambda: prom.query("up") != [], timeout=60)
        start = time.time()
        _activity(bot, args.seconds)
        draw(live.dashboard(), prom, start, time.time(), Path(args.output))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
