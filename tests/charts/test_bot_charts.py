"""The bot chart and the umbrella chart eevee (SPEC 12): the eevee bot's production values file
(eeveebot/gitops) lints, renders and installs unchanged, and the operator then runs the bot."""

from __future__ import annotations

import pytest
from helm_python import Chart, Config, lint
from kubernetes import client
from ruamel.yaml import YAML

from tests.charts.helm import CRDS
from tests.conftest import NAMESPACE, ROOT, eventually
from tests.operator_fixtures import Cluster

pytestmark = pytest.mark.helm
BOT = ROOT / "charts" / "bot"
EEVEE = ROOT / "charts" / "eevee"
PRODUCTION = YAML(typ="safe").load((ROOT / "tests" / "charts" / "eevee-production-values.yaml").read_text())
TOKEN = {"operator": {"operatorApiToken": {"token": "a-token-from-the-sops-secret"}}}  # its valuesFrom Secret


def rendered(chart, values):
    from eevee.manifests import parse_manifests

    loaded = Chart.load(str(chart))
    try:
        files = loaded.render(values, name="eevee-eevee", namespace=NAMESPACE, is_install=True)
    finally:
        loaded.close()
    return [o for path, text in sorted(files.items()) if path.endswith(".yaml") for o in parse_manifests(text, source=path)]


@pytest.mark.parametrize("chart", [BOT, EEVEE], ids=["bot", "eevee"])
def test_the_charts_lint_cleanly(chart):
    report = lint(str(chart), strict=True, namespace=NAMESPACE, values=PRODUCTION if chart == EEVEE else PRODUCTION["bot"])
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_the_production_values_render_every_resource_with_its_whole_spec():
    objects = rendered(EEVEE, {**PRODUCTION, **TOKEN})
    modules = {o["metadata"]["name"]: o for o in objects if o["kind"] == "BotModule"}
    assert set(modules) == {m["name"] for m in PRODUCTION["bot"]["botModules"]}
    for wanted in PRODUCTION["bot"]["botModules"]:
        assert modules[wanted["name"]]["spec"] == wanted["spec"]  # nothing dropped: pullPolicy, false, 0
    (ipc,) = [o for o in objects if o["kind"] == "IpcConfig"]
    assert ipc["metadata"]["name"] == "eevee-bot" and ipc["spec"] == PRODUCTION["bot"]["ipcConfig"]["spec"]
    assert any(o["kind"] == "Deployment" and o["metadata"]["name"].endswith("operator") for o in objects)


def test_bot_modules_keep_false_and_zero():
    values = {"ipcConfig": {"name": "bus"}, "botModules": [{"name": "off", "spec": {"moduleName": "off", "image": "x:1", "enabled": False, "size": 0}}]}
    (off,) = [o for o in rendered(BOT, values) if o["kind"] == "BotModule"]
    assert off["spec"]["enabled"] is False and off["spec"]["size"] == 0


def test_the_production_values_install_and_the_operator_runs_the_bot(standin, start_operator):
    with Config(kubeconfig_path=str(standin.kubeconfig), namespace=NAMESPACE) as helm:
        helm.install(str(CRDS), "eevee-crds", namespace=NAMESPACE)
        release = helm.install(str(EEVEE), "eevee-eevee", {**PRODUCTION, **TOKEN}, namespace=NAMESPACE)
        assert release["status"] == "deployed"
    cluster = Cluster(standin)
    token = client.CoreV1Api(standin.api_client()).read_namespaced_secret("eevee-eevee-operator-api-token", NAMESPACE)
    import base64

    assert base64.b64decode(token.data["token"]).decode() == "a-token-from-the-sops-secret"
    standin.seed({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "eevee-bot-urltitle-secrets", "namespace": NAMESPACE}, "data": {}})
    start_operator(poll_interval=0.5)  # the operator, as the release would run it, minus the Pod
    for module in PRODUCTION["bot"]["botModules"]:
        eventually(lambda n=module["name"]: cluster.ready("BotModule", n), timeout=30, message=module["name"])
    eventually(lambda: cluster.ready("IpcConfig", "eevee-bot"), timeout=30)
    assert cluster.exists("Secret", "nats-auth-secret") and cluster.exists("PersistentVolumeClaim", "eevee-seen-module-pvc")
