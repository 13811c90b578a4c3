"""The chart's alerts, checked and unit-tested by promtool, the real Prometheus tool.

A PrometheusRule's `spec` is a Prometheus rule file (the Prometheus Operator writes it out as
one), so `promtool check rules` on it is what Prometheus does when it loads it: PromQL parses,
`for` durations, annotation templates. `promtool test rules` runs every alert over recorded
series (alerts_test.yaml): each fires when it should and stays quiet when it should not.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.charts.helm import render
from tests.conftest import ROOT
from tests.monitoring.prometheus import tool

pytestmark = pytest.mark.helm
HERE = Path(__file__).parent


def rendered_rule(values: dict | None = None) -> dict:
    objects = render({"prometheusRule": {"enabled": True, **(values or {})}})
    return next(o for o in objects if o["kind"] == "PrometheusRule")


def alerts(rule: dict) -> list[dict]:
    return [r for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r]


def write(path: Path, data: dict) -> Path:
    yaml = YAML()
    with path.open("w") as out:
        yaml.dump(data, out)
    return path


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_no_prometheus_rule_unless_asked():
    assert not [o for o in render() if o["kind"] == "PrometheusRule"]


@pytest.mark.parametrize(
    "values",
    [{}, {"selector": 'job="ops", cluster="prod"', "namespaceSelector": 'namespace=~"bots|more-bots"',
          "alertLabels": {"team": "bots"}, "labels": {"release": "kube-prometheus-stack"}, "namespace": "monitoring"}],
    ids=["defaults", "every-knob"],
)
def test_promtool_accepts_the_rendered_rules(tmp_path, values):
    rule = rendered_rule(values)
    result = promtool("check", "rules", str(write(tmp_path / "rules.yaml", rule["spec"])), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 10 rules found" in result.stdout


def test_the_values_reach_every_alert():
    rule = rendered_rule({"selector": 'job="ops"', "namespaceSelector": 'namespace=~"bots"',
                          "alertLabels": {"team": "bots"}, "labels": {"release": "kps"}, "namespace": "monitoring"})
    assert rule["metadata"]["namespace"] == "monitoring" and rule["metadata"]["labels"]["release"] == "kps"
    for alert in alerts(rule):
        assert 'job="ops"' in alert["expr"], alert["alert"]
        assert alert["labels"]["team"] == "bots" and alert["labels"]["severity"] in ("warning", "critical")
        if "namespace=~" in alert["expr"]:
            # The resource selector is the operator's plus the namespaces'; never the namespaces'
            # alone, which would also match other jobs' series.
            assert 'job="ops", namespace=~"bots"' in alert["expr"]
    default = rendered_rule()
    assert all('job="eevee-operator"' in a["expr"] for a in alerts(default))


def test_every_alert_says_what_and_where_and_has_a_runbook_section():
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    # GitHub's anchors: the heading, lower-cased, punctuation dropped.
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", runbook, re.M)}
    names = [a["alert"] for a in alerts(rendered_rule())]
    assert len(names) == len(set(names)) == 10
    for alert in alerts(rendered_rule()):
        notes = alert["annotations"]
        assert set(notes) == {"summary", "description", "runbook_url"}, alert["alert"]
        assert notes["runbook_url"].startswith("https://github.com/eeveebot/eevee-operator/blob/main/docs/runbook.md#")
        assert notes["runbook_url"].rpartition("#")[2] in anchors, f"docs/runbook.md has no section {alert['alert']}"
        if "$labels.name" in alert["expr"] or "by (namespace, name" in alert["expr"] or "name, reason" in alert["expr"]:
            assert "{{ $labels.name }}" in notes["summary"] and "{{ $labels.namespace }}" in notes["summary"]


def test_promtool_unit_tests_every_alert_firing_and_not(tmp_path):
    rule = rendered_rule()
    spec = copy.deepcopy(rule["spec"])
    for alert in alerts({"spec": spec}):
        del alert["annotations"]["description"]  # parsed by `check rules`; not repeated in the tests
    write(tmp_path / "rules.yaml", spec)
    shutil.copy(HERE / "alerts_test.yaml", tmp_path / "alerts_test.yaml")
    tested = {t["alertname"] for t in YAML(typ="safe").load((HERE / "alerts_test.yaml").read_text())["tests"][1]["alert_rule_test"]
              if t.get("exp_alerts")}
    assert tested == {a["alert"] for a in alerts(rule)}, "every alert fires in the broken case"
    result = promtool("test", "rules", "alerts_test.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_broken_rule_is_refused_by_promtool(tmp_path):
    """The check above can fail: promtool names the rule and the PromQL error."""
    spec = copy.deepcopy(rendered_rule()["spec"])
    alerts({"spec": spec})[0]["expr"] = "sum(up{job=\"eevee-operator\"}"
    result = promtool("check", "rules", str(write(tmp_path / "rules.yaml", spec)), cwd=tmp_path)
    assert result.returncode != 0 and "parse error" in (result.stdout + result.stderr)
