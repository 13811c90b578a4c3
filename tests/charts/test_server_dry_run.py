"""What every chart renders passes ``kubectl apply --server-side --dry-run=server``, as users run it
before they apply, with the defaults and with the eevee bot's production values file.

The stand-in answers a dry run as kube-apiserver does (``?dryRun=All``: validated, defaulted,
answered, never stored) and refuses what a real server refuses (CRDs included; see
tests/standin/test_crd_validation.py), so a chart that renders something a real cluster would
refuse fails here, before a user's install does.
"""

from __future__ import annotations

import pytest

from eevee.manifests import dump_manifests
from tests.charts.helm import CRDS, OPERATOR, crds
from tests.charts.test_bot_charts import BOT, EEVEE, PRODUCTION, TOKEN, rendered

pytestmark = [pytest.mark.helm, pytest.mark.kubectl]

CHARTS = {
    "crds": (CRDS, lambda values: crds(), {}),
    "eevee-operator": (OPERATOR, lambda values: rendered(OPERATOR, values), PRODUCTION["operator"]),
    "bot": (BOT, lambda values: rendered(BOT, values), PRODUCTION["bot"]),
    "eevee": (EEVEE, lambda values: rendered(EEVEE, values), {**PRODUCTION, **TOKEN}),
}


def server_dry_run(kubectl, objects):
    return kubectl("apply", "--server-side", "--dry-run=server", "--field-manager=helm", "-f", "-",
                   stdin=dump_manifests(objects), check=False)


@pytest.mark.parametrize("values", ["defaults", "production"])
@pytest.mark.parametrize("chart", sorted(CHARTS))
def test_a_chart_passes_a_server_side_dry_run(standin, kubectl, chart, values):
    _path, render, production = CHARTS[chart]
    objects = render({} if values == "defaults" else production)
    assert objects, f"{chart} rendered nothing"
    if chart != "crds":  # the custom resources need their CRDs, installed for real first
        installed = kubectl("apply", "--server-side", "-f", "-", stdin=dump_manifests(crds()))
        assert installed.returncode == 0, installed.stderr
    before = {kind: len(standin.objects(o["apiVersion"], o["kind"])) for o in objects
              if (kind := (o["apiVersion"], o["kind"]))}
    result = server_dry_run(kubectl, objects)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("serverside-applied (server dry run)") == len(objects), result.stdout
    after = {kind: len(standin.objects(*kind)) for kind in before}
    assert after == before  # nothing was stored


def test_a_server_dry_run_refuses_what_a_real_server_refuses(standin, kubectl):
    """The dry run is validated like the real write: a CRD with a description on its root
    metadata (0.2.0) is refused with the real server's message, and nothing is stored."""
    (crd, *_) = crds()
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["metadata"]["description"] = "meta"
    result = server_dry_run(kubectl, [crd])
    assert result.returncode != 0
    assert "must not specify anything other than name and generateName" in result.stderr
    assert standin.objects("apiextensions.k8s.io/v1", "CustomResourceDefinition") == []

