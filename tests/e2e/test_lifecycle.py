"""Leadership, restarts, rule reloads, signals and the cluster commands."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import NAMESPACE, ROOT, eventually
from tests.operator_fixtures import ACCOUNT_CHILD, API_TOKEN, examples, module, wait_passes


def leader_of(standin):
    lease = standin.store.get(standin.registry.get("coordination.k8s.io", "v1", "leases"), NAMESPACE, "eevee-operator-leader")
    return lease["spec"].get("holderIdentity")


def test_two_operators_one_leader_and_a_fast_takeover(cluster, start_operator):
    a = start_operator(identity="operator-a", poll_interval=0.3)
    eventually(lambda: a.runner.leading)
    b = start_operator(identity="operator-b", poll_interval=0.3)
    cluster.create(module("echo"))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    time.sleep(1.0)
    assert (a.runner.leading, b.runner.leading) == (True, False)
    assert leader_of(cluster.standin) == "operator-a"
    writes = b.metrics.registry.get_sample_value
    assert not writes("eevee_operator_child_writes_total", {"kind": "Deployment", "action": "create"})
    assert b.runner.passes == 0
    assert a.metrics.registry.get_sample_value("eevee_operator_leader") == 1
    assert b.metrics.registry.get_sample_value("eevee_operator_leader") == 0
    # a stopped leader releases its lease: the other one leads well within the lease duration
    stopped = time.monotonic()
    a.stop()
    eventually(lambda: b.runner.leading, timeout=5)
    assert time.monotonic() - stopped < 2.0  # the lease duration
    cluster.patch("BotModule", "echo", {"spec": {"size": 2}})
    eventually(lambda: cluster.deployment("eevee-echo-module")["spec"]["replicas"] == 2)


def test_a_leader_that_dies_without_releasing_is_replaced_after_the_lease_expires(cluster, start_operator):
    a = start_operator(identity="operator-a")
    eventually(lambda: a.runner.leading)
    a.runner.elector.release = lambda: None  # as if killed: no release
    b = start_operator(identity="operator-b")
    a.stop()
    started = time.monotonic()
    eventually(lambda: b.runner.leading, timeout=10)
    assert time.monotonic() - started < 2.0 + 1.5  # lease duration plus a retry period or two


def test_restart_in_the_middle_of_a_pass_converges_without_duplicates(cluster, start_operator, standin):
    for resource in examples().values():
        cluster.create(resource)
    # The first operator dies after its third write, in the middle of the first resource's children.
    first = start_operator(identity="operator-a", leader_election=False)
    eventually(lambda: len(standin.log.writes()) >= 3)
    first.stop()
    second = start_operator(identity="operator-b", leader_election=False, poll_interval=0.3)
    for name in ("router", "echo", "irc-libera"):
        eventually(lambda n=name: cluster.ready("BotModule", n))
    wait_passes(second, 2)
    names = [d.metadata.name for d in cluster.apps.list_namespaced_deployment(NAMESPACE).items]
    assert sorted(names) == sorted(set(names)) and len(names) == 5
    configs = [c.metadata.name for c in cluster.core.list_namespaced_config_map(NAMESPACE).items]
    assert len(configs) == 3
    assert [s.metadata.name for s in cluster.core.list_namespaced_secret(NAMESPACE).items] == ["eevee-bus-token"]
    assert len(cluster.core.list_namespaced_persistent_volume_claim(NAMESPACE).items) == 1


def test_rule_tables_reload_and_a_bad_edit_keeps_the_last_good_ones(cluster, start_operator, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    service = start_operator(rules_dir=str(rules), poll_interval=0.3, leader_election=False)
    cluster.create(module("echo"))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    table = rules / "botmodule.yaml"
    table.write_text(table.read_text().replace("  app.kubernetes.io/name: eevee\n", "  app.kubernetes.io/name: eevee\n  example.org/tier: chat\n", 1))
    eventually(lambda: cluster.deployment("eevee-echo-module")["metadata"]["labels"].get("example.org/tier") == "chat", timeout=15)
    good = table.read_text()
    table.write_text(good.replace("fromFieldPath: spec.image", "fromFieldPath: spec.imaeg"))
    samples = service.metrics.registry.get_sample_value
    eventually(lambda: samples("eevee_operator_rule_reloads_total", {"result": "failure"}) == 1, timeout=15)
    assert samples("eevee_operator_rules_last_reload_successful") == 0
    cluster.patch("BotModule", "echo", {"spec": {"image": "ghcr.io/eeveebot/echo:3.0.0"}})
    eventually(lambda: cluster.deployment("eevee-echo-module")["spec"]["template"]["spec"]["containers"][0]["image"] == "ghcr.io/eeveebot/echo:3.0.0")
    assert service.runner.health().rules_valid is False


def test_a_child_kind_added_by_a_reload_is_watched_too(cluster, start_operator, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)  # no table renders a ServiceAccount: none is watched
    start_operator(rules_dir=str(rules), poll_interval=3600.0, leader_election=False)
    cluster.create(module("echo"))
    eventually(lambda: cluster.exists("Deployment", "eevee-echo-module"))
    table = rules / "botmodule.yaml"
    table.write_text(table.read_text().replace("\nchildren:\n", "\nchildren:\n" + ACCOUNT_CHILD, 1))

    def account_exists():
        return any(a.metadata.name == "eevee-echo-module" for a in cluster.core.list_namespaced_service_account(NAMESPACE).items)

    eventually(account_exists, timeout=15, message="the new child")
    # with an hour between polls, only a watch on ServiceAccounts brings a deleted one back at once
    cluster.core.delete_namespaced_service_account("eevee-echo-module", NAMESPACE)
    eventually(account_exists, timeout=10, message="the deleted ServiceAccount is back")


def operator_env(standin, **extra):
    return {**os.environ, "KUBECONFIG": str(standin.kubeconfig), "NAMESPACE": NAMESPACE, "HTTP_API_PORT": "0",
            "HTTP_API_HOST": "127.0.0.1", "POLL_INTERVAL_SECONDS": "0.5", "LOG_FORMAT": "json", "LOG_LEVEL": "INFO",
            "EEVEE_OPERATOR_API_TOKEN": API_TOKEN, "RULES_DIR": str(ROOT / "rules"), **extra}


def test_sigterm_finishes_cleanly_and_releases_the_lease(cluster, standin):
    cluster.create(module("echo"))
    with subprocess.Popen([sys.executable, "-m", "eevee", "run"], env=operator_env(standin), stderr=subprocess.PIPE, text=True) as process:
        try:
            eventually(lambda: cluster.exists("Deployment", "eevee-echo-module"), timeout=20)
            eventually(lambda: leader_of(standin))
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=15)
        finally:
            if process.poll() is None:
                process.kill()
    assert process.returncode == 0, stderr
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(line["message"] == "operator stopped" for line in lines)
    assert leader_of(standin) == ""
    reconcile_lines = [line for line in lines if line["logger"] == "eevee.reconciler"]
    assert reconcile_lines and all({"kind", "namespace", "name"} <= set(line) for line in reconcile_lines)
    assert API_TOKEN not in "".join(json.dumps(line) for line in lines)


def test_diff_shows_what_a_pass_would_send_and_sends_nothing(cluster, standin):
    cluster.create(module("echo", size=2))
    mark = standin.log.mark()
    result = subprocess.run([sys.executable, "-m", "eevee", "diff"], env=operator_env(standin), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "# create Deployment eevee-bot/eevee-echo-module" in result.stdout
    assert "replicas: 2" in result.stdout
    assert standin.log.writes(mark) == []


def test_demo_runs_the_whole_thing_guides_and_cleans_up(tmp_path):
    result = subprocess.run([sys.executable, "-m", "eevee", "demo", "--port", "0", "--exit-after", "2"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "demo: starting the Kubernetes API stand-in..." in out and "demo: starting the operator" in out  # progress
    assert "eevee-operator demo is running" in out and "kubectl get bm,ipc" in out and "demo stopped." in out
    kubeconfig = re.search(r"export KUBECONFIG=(\S+)", out).group(1)
    assert "--kubeconfig" not in out and "curl -s " in out and "curl {" not in out
    assert not Path(kubeconfig).parent.exists()  # the kubeconfig and the API token are gone
    assert "eevee-operator 0" in result.stderr and " started" in result.stderr  # the operator's log, readable text


def test_demo_on_a_busy_port_is_a_one_line_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "eevee", "demo", "--port", str(port), "--quiet", "--exit-after", "1"],
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: cannot listen on port {port} (Address already in use); try --port 0 for any free port"


def test_demo_takes_the_rules_to_try(tmp_path, root):
    rules = tmp_path / "my-rules"
    shutil.copytree(root / "rules", rules)
    (rules / "botmodule.yaml").write_text((rules / "botmodule.yaml").read_text().replace("revisionHistoryLimit: 5", "revisionHistoryLimit: 7"))
    result = subprocess.run([sys.executable, "-m", "eevee", "demo", "--port", "0", "--quiet", "--rules", str(rules), "--exit-after", "1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and f"rule tables in {rules}" in result.stdout
    (rules / "botmodule.yaml").write_text("children: [\n")
    broken = subprocess.run([sys.executable, "-m", "eevee", "demo", "--port", "0", "--quiet", "--exit-after", "1"],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "RULES_DIR": str(rules)})
    assert broken.returncode == 1 and "the rule tables are refused" in broken.stderr and "botmodule.yaml" in broken.stderr


def test_every_command_documents_its_options_and_run_its_environment():
    from eevee.cli import parser

    (commands,) = [a for a in parser()._actions if a.choices and a.dest == "command"]
    assert set(commands.choices) == {"run", "diff", "demo", "render", "check-rules", "version"}
    for name, sub in commands.choices.items():
        undocumented = [a.option_strings or a.dest for a in sub._actions if not a.help]
        assert undocumented == [], name
        assert subprocess.run([sys.executable, "-m", "eevee", name, "--help"], capture_output=True, timeout=60).returncode == 0
    run = subprocess.run([sys.executable, "-m", "eevee", "run", "--help"], capture_output=True, text=True, timeout=60).stdout
    for variable in ("NAMESPACE", "WATCH_NAMESPACES", "KUBE_IN_CLUSTER_CONFIG", "HTTP_API_PORT", "EEVEE_OPERATOR_API_TOKEN",
                     "POLL_INTERVAL_SECONDS", "WATCH_SILENCE_SECONDS", "RESYNC_SECONDS", "RULES_DIR", "LOG_LEVEL",
                     "LOG_FORMAT", "LEADER_ELECTION", "LEASE_DURATION_SECONDS"):
        assert variable in run
