"""Rule tables that cannot break the operator (issue: safe rule tables).

| situation                                             | expected                                                   |
|-------------------------------------------------------|------------------------------------------------------------|
| a table renders a kind the operator may not list (403)| the pass goes on; resources needing it: KindUnavailable    |
|                                                       | naming the kind and why, an Event, a metric, /ready says so; |
|                                                       | their other children and every other resource converge     |
| the kind becomes listable                             | picked up by the next pass                                 |
| a table stops rendering a kind                        | the objects of that kind the operator made are deleted,    |
|                                                       | also by an operator started after the edit                 |
| a reload                                              | resets the backoff of what failed before                   |
"""

from __future__ import annotations

import shutil

import urllib3

from tests.conftest import NAMESPACE, ROOT, eventually
from tests.operator_fixtures import ACCOUNT_CHILD, module, wait_passes


def rules_with_an_account(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    table = rules / "botmodule.yaml"
    table.write_text(table.read_text().replace("\nchildren:\n", "\nchildren:\n" + ACCOUNT_CHILD, 1))
    return rules


def accounts(cluster):
    return {a.metadata.name for a in cluster.core.list_namespaced_service_account(NAMESPACE).items}


def test_a_kind_that_cannot_be_listed_is_contained(cluster, start_operator, standin, tmp_path):
    for verb in ("list", "watch"):  # RBAC not extended to the kind a table added
        standin.faults.inject(verb=verb, resource="serviceaccounts", code=403, times=10_000)
    service = start_operator(rules_dir=str(rules_with_an_account(tmp_path)), poll_interval=0.3)
    cluster.create(module("echo"))
    cluster.create(module("other"))
    eventually(lambda: cluster.condition("BotModule", "echo").get("reason") == "KindUnavailable")
    message = cluster.condition("BotModule", "echo")["message"]
    assert "ServiceAccount eevee-echo-module cannot be made" in message and "403" in message
    assert any(e["reason"] == "KindUnavailable" for e in cluster.events("echo"))
    assert cluster.exists("Deployment", "eevee-echo-module")  # the other children still converge
    cluster.patch("BotModule", "other", {"spec": {"size": 2}})  # and so does every other change
    eventually(lambda: cluster.deployment("eevee-other-module")["spec"]["replicas"] == 2)
    samples = service.metrics.registry.get_sample_value
    assert samples("eevee_operator_kind_unavailable", {"kind": "ServiceAccount"}) == 1
    ready = urllib3.PoolManager().request("GET", service.http.url + "/ready").json()
    assert "ServiceAccount" in ready["unavailableKinds"] and "403" in ready["unavailableKinds"]["ServiceAccount"]

    standin.faults.clear()  # the RBAC is fixed
    eventually(lambda: cluster.ready("BotModule", "echo"))
    # Each module's account comes in its own reconcile of the pass: wait for both.
    eventually(lambda: accounts(cluster) >= {"eevee-echo-module", "eevee-other-module"})
    eventually(lambda: samples("eevee_operator_kind_unavailable", {"kind": "ServiceAccount"}) == 0)


def test_a_kind_a_table_drops_is_pruned_even_after_a_restart(cluster, start_operator, tmp_path):
    rules = rules_with_an_account(tmp_path)
    first = start_operator(rules_dir=str(rules), poll_interval=0.3, leader_election=False)
    cluster.create(module("echo"))
    eventually(lambda: "eevee-echo-module" in accounts(cluster))
    eventually(lambda: "v1/ServiceAccount" in (cluster.get("BotModule", "echo").get("status") or {}).get("childKinds", []))
    first.stop()
    shutil.copy(ROOT / "rules" / "botmodule.yaml", rules / "botmodule.yaml")  # the edit, while no operator runs
    second = start_operator(rules_dir=str(rules), poll_interval=0.3, leader_election=False, identity="operator-b")
    eventually(lambda: "eevee-echo-module" not in accounts(cluster))
    eventually(lambda: "v1/ServiceAccount" not in cluster.get("BotModule", "echo")["status"]["childKinds"])
    assert cluster.exists("Deployment", "eevee-echo-module")
    wait_passes(second, 2)
    assert second.metrics.registry.get_sample_value("eevee_operator_managed_objects", {"kind": "ServiceAccount"}) in (None, 0)


def test_a_retained_child_survives_its_rule_leaving_the_table(cluster, start_operator, tmp_path, standin):
    """The token Secret is `prune: false`: were its rule removed, the Secret must stay."""
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    service = start_operator(rules_dir=str(rules), poll_interval=0.3, leader_election=False)
    cluster.custom.create_namespaced_custom_object("eevee.bot", "v1", NAMESPACE, "ipcconfigs",
                                                   {"apiVersion": "eevee.bot/v1", "kind": "IpcConfig", "metadata": {"name": "bus"}, "spec": {}})
    eventually(lambda: cluster.exists("Secret", "bus-nats-token"))
    token = cluster.core.read_namespaced_secret("bus-nats-token", NAMESPACE).data["token"]
    table = rules / "ipcconfig.yaml"
    text = table.read_text()
    start, end = text.index("  - id: token\n"), text.index("  - id: deployment\n")
    table.write_text(text[:start] + text[end:])  # no table makes the token any more
    eventually(lambda: service.metrics.registry.get_sample_value("eevee_operator_rule_reloads_total", {"result": "success"}) == 2, timeout=15)
    wait_passes(service, 3)
    assert cluster.core.read_namespaced_secret("bus-nats-token", NAMESPACE).data["token"] == token


def test_a_reload_resets_the_backoff_of_what_failed(cluster, start_operator, standin, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    standin.faults.inject(verb="create", resource="deployments", code=500, times=10_000)
    service = start_operator(rules_dir=str(rules), poll_interval=3600.0, leader_election=False)
    cluster.create(module("echo"))
    key = ("BotModule", NAMESPACE, "echo")
    eventually(lambda: service.runner.backoff.failures(key) >= 6, timeout=30)  # now waiting half a minute or so
    standin.faults.clear()
    table = rules / "botmodule.yaml"
    table.write_text(table.read_text() + "\n# an edit that fixes it\n")
    # at once: the 6th failure put the next attempt 8 to 16 s away, the reload check runs every 2 s
    eventually(lambda: cluster.exists("Deployment", "eevee-echo-module"), timeout=6)


def test_a_rendering_in_which_two_children_meet_is_refused_for_that_resource_only(cluster, start_operator, tmp_path):
    """Issue 26: names of different shapes that meet for one resource's values. That module gets
    InvalidSpec naming both children and nothing of it is written; the others converge."""
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    table = rules / "botmodule.yaml"
    extra = """
  - id: notes
    apiVersion: v1
    kind: ConfigMap
    name: "eevee-{spec.moduleName}-config"
"""
    table.write_text(table.read_text().replace("\nchildren:\n", "\nchildren:\n" + extra, 1))
    start_operator(rules_dir=str(rules))
    cluster.create(module("fine"))  # eevee-fine-config and eevee-fine-module-config
    cluster.create(module("clash", moduleName="clash-module", moduleConfig="a: 1\n"))  # both eevee-clash-module-config
    eventually(lambda: cluster.ready("BotModule", "fine"))
    condition = eventually(lambda: (c := cluster.condition("BotModule", "clash")) and c.get("reason") == "InvalidSpec" and c)
    assert "children[config].name" in condition["message"] and "children[notes]" in condition["message"]
    assert not cluster.exists("Deployment", "eevee-clash-module")
    assert not cluster.exists("ConfigMap", "eevee-clash-module-config")


def test_a_reload_that_reads_more_of_a_child_lists_it_again_whole_enough(cluster, start_operator, tmp_path):
    """The cache keeps of a child only what the tables read (RuleSet.cached_fields): a Deployment's
    pod template is not kept while no rule reads it. A reload whose table reads it starts a new
    Deployment informer, which lists them again with that field; the new rule sees it at once."""
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    service = start_operator(rules_dir=str(rules), poll_interval=0.3, leader_election=False)
    cluster.create(module("echo", metrics=True))
    eventually(lambda: cluster.ready("BotModule", "echo"))
    deployment = service.runner.snapshot.child("Deployment", NAMESPACE, "eevee-echo-module")
    assert "template" not in deployment["spec"]  # not read by any rule: not kept
    samples = service.metrics.registry.get_sample_value
    listed = samples("eevee_operator_relists_total", {"kind": "Deployment", "reason": "initial"})
    table = rules / "botmodule.yaml"
    table.write_text(table.read_text().replace("\nmetrics:\n", """
metrics:
  - name: eevee_operator_module_metrics_port
    help: The port the module's container serves its metrics on.
    fromFieldPath: "live.deployment.spec.template.spec.containers[name=module].ports[name=metrics].containerPort"
""", 1))
    labels = {"namespace": NAMESPACE, "name": "echo"}
    eventually(lambda: samples("eevee_operator_rule_reloads_total", {"result": "success"}) == 2, timeout=15)
    eventually(lambda: samples("eevee_operator_module_metrics_port", labels) == 9000, timeout=15)
    assert samples("eevee_operator_relists_total", {"kind": "Deployment", "reason": "initial"}) == listed + 1
    deployment = service.runner.snapshot.child("Deployment", NAMESPACE, "eevee-echo-module")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] == 9000
