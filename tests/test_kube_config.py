"""How the operator finds and authenticates to the API server, without the ``kubernetes``
package: in-cluster configuration and kubeconfig files, each used for a real request to the
stand-in (which, like a real API server, answers 401 to a missing or wrong bearer token)."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from eevee.kube import config
from eevee.kube.client import Kube, KubeError
from eevee.kube.config import ConfigurationError, in_cluster_connection, kubeconfig_connection, load_connection
from tests.conftest import NAMESPACE


def can_list(connection: config.Connection) -> bool:
    try:
        Kube(connection).list("v1", "configmaps", NAMESPACE)
    except KubeError as error:
        if error.code == 401:
            return False
        raise
    return True


def kubeconfig(path: Path, cluster: str, user: str, *, name: str = "standin", current: str | None = "standin") -> Path:
    text = (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: {name}\n  cluster:\n{textwrap.indent(cluster, '    ')}\n"
        f"users:\n- name: {name}\n  user:\n{textwrap.indent(user, '    ')}\n"
        f"contexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\n"
    )
    if current:
        text += f"current-context: {current}\n"
    path.write_text(text)
    return path


def test_the_stand_ins_own_kubeconfig_token_and_inline_ca(standin):
    assert can_list(kubeconfig_connection(standin.kubeconfig))


def test_relative_ca_file_and_token_file_are_read_from_the_kubeconfigs_folder(standin, tmp_path, monkeypatch):
    (tmp_path / "ca.crt").write_bytes(standin.ca_file.read_bytes())
    (tmp_path / "token").write_text(standin.token + "\n")
    path = kubeconfig(tmp_path / "config", f"server: {standin.url}\ncertificate-authority: ca.crt", "tokenFile: token")
    connection = kubeconfig_connection(path)
    assert can_list(connection)
    # A rotated token (as the kubelet rotates a bound service-account token) is read again.
    monkeypatch.setattr(config, "TOKEN_REREAD_SECONDS", 0.0)
    standin.token = "rotated-" + standin.token
    assert not can_list(connection)  # the file still holds the old token
    (tmp_path / "token").write_text(standin.token)
    assert can_list(connection)


def test_a_wrong_token_is_refused_and_insecure_skip_tls_verify_needs_no_ca(standin, tmp_path):
    wrong = kubeconfig(tmp_path / "wrong", f"server: {standin.url}\ninsecure-skip-tls-verify: true", "token: nope")
    assert not can_list(kubeconfig_connection(wrong))
    right = kubeconfig(tmp_path / "right", f"server: {standin.url}\ninsecure-skip-tls-verify: true",
                       f"token: {standin.token}")
    assert can_list(kubeconfig_connection(right))


def test_without_the_ca_the_servers_certificate_is_not_trusted(standin, tmp_path):
    path = kubeconfig(tmp_path / "config", f"server: {standin.url}", f"token: {standin.token}")
    with pytest.raises(KubeError) as raised:
        Kube(kubeconfig_connection(path)).list("v1", "configmaps", NAMESPACE)
    assert raised.value.code == 0 and "CERTIFICATE_VERIFY_FAILED" in raised.value.message


def test_kubeconfig_lists_merge_and_the_first_file_wins(standin, tmp_path, monkeypatch):
    ca = base64.b64encode(standin.ca_file.read_bytes()).decode()
    first = kubeconfig(tmp_path / "first", f"server: {standin.url}\ncertificate-authority-data: {ca}",
                       f"token: {standin.token}")
    second = kubeconfig(tmp_path / "second", "server: https://127.0.0.1:1", "token: other", current="elsewhere")
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'missing'}:{first}:{second}")
    assert can_list(kubeconfig_connection())


def test_in_cluster_configuration_from_the_service_account_and_the_environment(standin, tmp_path, monkeypatch):
    (tmp_path / "token").write_text(standin.token)
    (tmp_path / "ca.crt").write_bytes(standin.ca_file.read_bytes())
    host, port = standin.url.removeprefix("https://").rsplit(":", 1)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
    assert can_list(in_cluster_connection(tmp_path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(ConfigurationError, match="KUBERNETES_SERVICE_HOST"):
        in_cluster_connection(tmp_path)
    # Not in a pod: the kubeconfig is used instead (what `eevee-operator run` does on a laptop).
    assert can_list(load_connection(kubeconfig=str(standin.kubeconfig)))
    with pytest.raises(ConfigurationError):
        load_connection(in_cluster=True)


def test_an_exec_credential_plugin_is_run_by_the_official_loader(standin, tmp_path):
    """EKS, GKE and AKS kubeconfigs get their token from a plugin (client.authentication.k8s.io)."""
    credential = {"apiVersion": "client.authentication.k8s.io/v1beta1", "kind": "ExecCredential",
                  "status": {"token": standin.token}}
    plugin = tmp_path / "plugin.py"
    plugin.write_text(f"print({json.dumps(json.dumps(credential))})\n")
    ca = base64.b64encode(standin.ca_file.read_bytes()).decode()
    user = (f"exec:\n  apiVersion: client.authentication.k8s.io/v1beta1\n  command: {sys.executable}\n"
            f"  args: [{plugin}]\n  interactiveMode: Never")
    path = kubeconfig(tmp_path / "config", f"server: {standin.url}\ncertificate-authority-data: {ca}", user)
    assert can_list(kubeconfig_connection(path))


@pytest.mark.parametrize("content, says", [
    (None, "does not exist"),
    ("apiVersion: v1\nkind: Config\nclusters: []\n", "no current-context"),
    ("apiVersion: v1\nkind: Config\ncurrent-context: gone\n", "context 'gone' is not defined"),
    ("- just\n- a list\n", "is not a kubeconfig"),
])
def test_a_bad_kubeconfig_is_a_clear_error_naming_the_file(tmp_path, content, says):
    path = tmp_path / "config"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigurationError, match=says) as raised:
        kubeconfig_connection(path)
    assert str(path) in str(raised.value)


def test_the_operator_process_does_not_import_the_kubernetes_package():
    """~35 MB of generated models the operator never uses (the tests still use the official client)."""
    code = "import sys, eevee.service, eevee.commands, eevee.api.server; print('kubernetes' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
