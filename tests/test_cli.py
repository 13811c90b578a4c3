"""The offline commands a table editor uses: render and check-rules."""

from __future__ import annotations

import subprocess
import sys

from ruamel.yaml import YAML


def eevee(*args, **kw):
    return subprocess.run([sys.executable, "-m", "eevee", *args], capture_output=True, text=True, timeout=60, **kw)


def test_render_one_module_whose_ipc_config_is_not_given(root):
    result = eevee("render", "-f", str(root / "examples" / "botmodule-router.yaml"))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == (
        "warning: BotModule eevee-bot/router: spec.ipcConfig: IpcConfig eevee-bot/eevee-bus is not in the given files; "
        "shown as a placeholder"
    )
    (deployment,) = [d for d in YAML(typ="safe").load_all(result.stdout) if d["kind"] == "Deployment"]
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["NATS_HOST"] == "<natsHost of IpcConfig eevee-bus>"


def test_render_is_reproducible_and_shows_secrets_only_when_asked(root):
    first, second = (eevee("render", "-f", str(root / "examples")) for _ in range(2))
    assert first.returncode == 0 and first.stdout == second.stdout
    (token,) = [d for d in YAML(typ="safe").load_all(first.stdout) if d["kind"] == "Secret"]
    assert token["data"] == {"token": "<redacted>", "host": "<redacted>"}
    shown = eevee("render", "-f", str(root / "examples"), "--show-secrets")
    (token,) = [d for d in YAML(typ="safe").load_all(shown.stdout) if d["kind"] == "Secret"]
    assert len(token["data"]["token"]) > 40 and token["data"]["token"] != "<redacted>"


PODMONITOR_CHILD = """
  - id: monitor
    apiVersion: monitoring.coreos.com/v1
    kind: PodMonitor
    name: "eevee-{metadata.name}-module"
    patches:
      - toFieldPath: "spec.podMetricsEndpoints[name=metrics].prot"
        value: metrics
"""

PODMONITOR_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: podmonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  names: {kind: PodMonitor, plural: podmonitors}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                podMetricsEndpoints:
                  type: array
                  items: {type: object, properties: {name: {type: string}, port: {type: string}}}
"""


def test_check_rules_checks_a_third_party_kind_once_given_its_crd(root, tmp_path):
    import shutil

    rules = tmp_path / "rules"
    shutil.copytree(root / "rules", rules)
    table = rules / "botmodule.yaml"
    table.write_text(table.read_text().replace("\nchildren:\n", "\nchildren:\n" + PODMONITOR_CHILD, 1))
    unknown = eevee("check-rules", str(rules))
    assert unknown.returncode == 0
    assert "note: " in unknown.stderr and "no schema is known for monitoring.coreos.com/v1 PodMonitor" in unknown.stderr
    (tmp_path / "podmonitor.yaml").write_text(PODMONITOR_CRD)
    checked = eevee("check-rules", str(rules), "--crds", str(tmp_path / "podmonitor.yaml"))
    assert checked.returncode == 1
    assert "prot is not a field of spec.podMetricsEndpoints[name=metrics]; did you mean port?" in checked.stderr
