"""Rule-table children are checked against the real Kubernetes schema of their kind."""

from __future__ import annotations

import pytest

from eevee.engine.kubeschema import KindSchemas, Unchecked
from eevee.engine.paths import parse_path
from eevee.manifests import read_manifests


@pytest.fixture(scope="module")
def schemas(root):
    return KindSchemas(read_manifests([root / "crds"]))


@pytest.mark.parametrize(
    "api_version, kind, path, value_type, why",
    [
        ("apps/v1", "Deployment", "spec.template.spec.containers[name=m].imagePullPolicy", "string", None),
        ("apps/v1", "Deployment", "spec.template.spec.containers[name=m].imagePullPolcy", None,
         "imagePullPolcy is not a field of spec.template.spec.containers[name=m]; did you mean imagePullPolicy?"),
        ("apps/v1", "Deployment", "spec.replicas", "string", "spec.replicas holds an integer, not a string"),
        ("apps/v1", "Deployment", "spec.selector.matchLabels[eevee.bot/module]", "string", None),  # a map: any key
        ("v1", "ConfigMap", "data[config.yaml]", "string", None),
        ("v1", "Service", "spec.ports[name=client].targetPort", "string", None),  # int-or-string
        ("v1", "Service", "spec.ports[name=client].targetPort", "integer", None),
        ("v1", "PersistentVolumeClaim", "spec.resources.requests.storage", "string", None),
        ("v1", "Secret", "data.token", "object", "data.token holds a string, not an object"),
        ("eevee.bot/v1", "BotModule", "status.ready", "string", None),  # from the bundled CRD
        ("eevee.bot/v1", "BotModule", "status.redy", None, "redy is not a field of status; did you mean ready?"),
    ],
)
def test_paths_and_types(schemas, api_version, kind, path, value_type, why):
    assert schemas.check(api_version, kind, parse_path(path), value_type) == why


def test_kinds_groups_and_what_cannot_be_checked(schemas):
    with pytest.raises(KeyError, match="apps/v1 serves no kind Deploymnet; did you mean Deployment"):
        schemas.root("apps/v1", "Deploymnet")
    with pytest.raises(KeyError, match="unknown API group 'app'; did you mean 'apps'"):
        schemas.root("app/v1", "Deployment")
    unknown = schemas.root("monitoring.coreos.com/v1", "PodMonitor")
    assert isinstance(unknown, Unchecked) and "give its CRD with check-rules --crds" in unknown.why
    podmonitor = {"kind": "CustomResourceDefinition", "spec": {"group": "monitoring.coreos.com", "names": {"kind": "PodMonitor"},
                  "versions": [{"name": "v1", "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                      "spec": {"type": "object", "properties": {"podMetricsEndpoints": {"type": "array", "items": {
                          "type": "object", "properties": {"port": {"type": "string"}}}}}}}}}}]}}
    given = KindSchemas([podmonitor])
    assert given.check("monitoring.coreos.com/v1", "PodMonitor", parse_path("spec.podMetricsEndpoints[name=a].port"), "string") is None
    assert "prot is not a field" in given.check("monitoring.coreos.com/v1", "PodMonitor", parse_path("spec.podMetricsEndpoints[name=a].prot"))
