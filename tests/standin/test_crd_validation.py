"""CustomResourceDefinitions and custom resources are refused exactly where kube-apiserver refuses them.

0.2.0 shipped CRDs that no real cluster accepts (a ``description`` on the root ``metadata``),
and 449 tests passed because this stand-in took any CRD. Here:

- every shipped CRD is sent over HTTP as a real server would receive it (the regression test);
- the answers a real kube-apiserver v1.28.0 gave to 46 requests (``kube_answers/``, recorded
  beside its kube-controller-manager and etcd 3.4; a copy this project owns) are replayed: the
  status, the Status reason and the set of ``(field, reason)`` causes must be the same; messages
  may differ in wording, fields and kinds of refusal may not;
- further requests that follow the same rules (``test_the_rules_hold_beyond_the_samples``),
  each naming the rule of k8s.io/apiextensions-apiserver it mirrors.

Field paths are the real server's: a one-version CRD is validated in the internal version, where
its schema lives at ``spec.validation.openAPIV3Schema`` (see kubestandin/crds.py).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import urllib3

from eevee.manifests import read_manifests

ANSWERS = json.loads((Path(__file__).parent / "kube_answers" / "crd-validation-v1.28.json").read_text())["answers"]
GROUP = "answers.example.com"
CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
GIZMOS = f"/apis/{GROUP}/v1/namespaces/answers/gizmos"


class Http:
    def __init__(self, standin):
        self.standin = standin
        self.pool = urllib3.PoolManager(ca_certs=str(standin.ca_file))

    def __call__(self, method, path, body=None, content_type="application/json"):
        headers = {"Authorization": f"Bearer {self.standin.token}", "Content-Type": content_type}
        data = json.dumps(body) if body is not None else None
        response = self.pool.request(method, self.standin.url + path, body=data, headers=headers)
        return response.status, json.loads(response.data) if response.data else None


@pytest.fixture
def http(standin):
    standin.create_namespace("answers")
    return Http(standin)


def causes_of(body):
    """The (field, reason) pairs of a Status, without those that name no field (as recorded)."""
    return sorted({(c["field"], c["reason"]) for c in (body.get("details") or {}).get("causes") or [] if c.get("field")})


# --- the shipped CRDs ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.name for p in (Path(__file__).parents[2] / "crds").glob("*.yaml")))
def test_every_shipped_crd_is_accepted_as_a_real_server_accepts_it(root, http, name):
    """The 0.2.0 regression: kube-apiserver answered 422 ``properties[metadata]: Forbidden: must not
    specify anything other than name and generateName`` to every one of them."""
    (crd,) = read_manifests([root / "crds" / name])
    code, body = http("POST", CRDS, crd)
    assert code == 201, body.get("message")
    assert {c["type"]: c["status"] for c in body["status"]["conditions"]}["Established"] == "True"


@pytest.mark.parametrize("name", sorted(p.name for p in (Path(__file__).parents[2] / "crds").glob("*.yaml")))
def test_no_shipped_crd_says_anything_of_metadata_but_its_type(root, name):
    """apiextensions-apiserver pkg/apiserver/schema/validation.go: at the root, metadata may be
    ``type: object`` and restrict name/generateName; a description, title or other field is Forbidden."""
    (crd,) = read_manifests([root / "crds" / name])
    for version in crd["spec"]["versions"]:
        assert version["schema"]["openAPIV3Schema"]["properties"]["metadata"] == {"type": "object"}


# --- the recorded answers --------------------------------------------------------------------


def gizmo_crd(plural="gizmos", kind="Gizmo", spec_properties=None, root=None, **changes):
    """A CRD as the recorder sent them: namespaced, one version v1 with a status subresource."""
    schema = root or {
        "type": "object",
        "properties": {
            "spec": {"type": "object", "properties": spec_properties or {"size": {"type": "integer"}}},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        },
    }
    version = {"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema},
               "subresources": {"status": {}}}
    version.update(changes.pop("version", {}))
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{changes.get('group', GROUP)}"},
        "spec": {"group": GROUP, "scope": "Namespaced", "versions": [version],
                 "names": {"plural": plural, "singular": plural.lower().rstrip("s"), "kind": kind}},
    }
    crd["spec"].update(changes)
    return crd


def unique(case, **kwargs):
    """Names made unique per case, as recorded (so that a refused case never collides with another)."""
    slug = case.replace("_", "")[:40]
    return gizmo_crd(plural=kwargs.pop("plural", slug + "s"), kind=kwargs.pop("kind", "G" + slug), **kwargs)


def spec_case(case, **properties):
    return unique(case, spec_properties=properties)


STRING = {"type": "string"}
CRD_CASES = {
    "crd_valid_minimal": lambda c: unique(c),
    "crd_additional_properties_false": lambda c: spec_case(c, labels={"type": "object", "additionalProperties": False}),
    "crd_array_items_without_type": lambda c: spec_case(c, ports={"type": "array", "items": {"minimum": 1}}),
    "crd_cel_bad_message_expression": lambda c: unique(c, spec_properties=None, root={
        "type": "object", "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}},
                                                  "x-kubernetes-validations": [{"rule": "self.size > 0", "messageExpression": "self.size"}]}}}),
    "crd_cel_on_string_ok": lambda c: spec_case(c, name={"type": "string", "x-kubernetes-validations": [{"rule": "self.startsWith('a')"}]}),
    "crd_cel_transition_rule_ok": lambda c: spec_case(c, owner={"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}),
    "crd_cel_type_error": lambda c: unique(c, root={
        "type": "object", "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}},
                                                  "x-kubernetes-validations": [{"rule": "self.size == 'big'"}]}}}),
    "crd_default_breaks_pattern": lambda c: spec_case(c, mode={"type": "string", "pattern": "^[a-z]+$", "default": "Fast1"}),
    "crd_default_not_in_enum": lambda c: spec_case(c, tier={"type": "string", "enum": ["gold", "silver"], "default": "bronze"}),
    "crd_default_ok": lambda c: spec_case(c, tier={"type": "string", "enum": ["gold", "silver"], "default": "gold"}),
    "crd_deprecation_warning_too_long": lambda c: unique(c, version={"deprecated": True, "deprecationWarning": "w" * 300}),
    "crd_embedded_resource_bare": lambda c: spec_case(c, template={"type": "object", "x-kubernetes-embedded-resource": True}),
    "crd_embedded_resource_ok": lambda c: spec_case(c, template={"type": "object", "x-kubernetes-embedded-resource": True,
                                                                 "x-kubernetes-preserve-unknown-fields": True}),
    "crd_group_without_dot": lambda c: {**unique(c), "spec": {**unique(c)["spec"], "group": "answers"},
                                        "metadata": {"name": f"{c.replace('_', '')}s.answers"}},
    "crd_items_as_tuple": lambda c: spec_case(c, pair={"type": "array", "items": [STRING, {"type": "integer"}]}),
    "crd_listtype_set_of_objects": lambda c: spec_case(c, tags={"type": "array", "x-kubernetes-list-type": "set",
                                                                "items": {"type": "object", "properties": {"k": STRING}}}),
    "crd_listtype_unknown": lambda c: spec_case(c, tags={"type": "array", "x-kubernetes-list-type": "bag", "items": STRING}),
    "crd_maptype_on_string": lambda c: spec_case(c, label={"type": "string", "x-kubernetes-map-type": "atomic"}),
    "crd_metadata_generatename_pattern": lambda c: unique(c, root={
        "type": "object", "properties": {"metadata": {"type": "object", "properties": {"generateName": {"type": "string", "pattern": "^g-"}}},
                                         "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}),
    "crd_metadata_labels_property": lambda c: unique(c, root={
        "type": "object", "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}},
                                         "spec": {"type": "object"}}}),
    "crd_metadata_title": lambda c: unique(c, root={"type": "object", "properties": {"metadata": {"type": "object", "title": "meta"}}}),
    "crd_no_storage_version": lambda c: unique(c, version={"storage": False}),
    "crd_nullable_without_type": lambda c: spec_case(c, note={"nullable": True}),
    "crd_plural_uppercase": lambda c: unique(c, plural="Gizmos"),
    "crd_preserve_unknown_on_root_ok": lambda c: unique(c, root={"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
    "crd_printer_column_bad_format": lambda c: unique(c, version={"additionalPrinterColumns": [
        {"name": "Size", "type": "integer", "format": "bogus", "jsonPath": ".spec.size"}]}),
    "crd_printer_column_empty_name": lambda c: unique(c, version={"additionalPrinterColumns": [
        {"name": "", "type": "integer", "jsonPath": ".spec.size"}]}),
    "crd_printer_column_negative_priority": lambda c: unique(c, version={"additionalPrinterColumns": [
        {"name": "Size", "type": "integer", "jsonPath": ".spec.size", "priority": -1}]}),
    "crd_ref_used": lambda c: spec_case(c, cfg={"type": "object", "$ref": "#/definitions/cfg"}),
    "crd_scale_ok": lambda c: unique(c, version={"subresources": {"status": {}, "scale": {
        "specReplicasPath": ".spec.size", "statusReplicasPath": ".status.replicas"}}}),
    "crd_scope_invalid": lambda c: unique(c, scope="Global"),
    "crd_shortname_uppercase": lambda c: {**unique(c), "spec": {**unique(c)["spec"], "names": {**unique(c)["spec"]["names"], "shortNames": ["GZ"]}}},
    "crd_status_replicas_path_outside_status": lambda c: unique(c, version={"subresources": {"status": {}, "scale": {
        "specReplicasPath": ".spec.size", "statusReplicasPath": ".spec.replicas"}}}),
    "crd_two_versions_same_name": lambda c: {**unique(c), "spec": {**unique(c)["spec"], "versions": [
        unique(c)["spec"]["versions"][0], {**unique(c)["spec"]["versions"][0], "storage": False}]}},
    "crd_type_unknown_word": lambda c: spec_case(c, count={"type": "int"}),
    "crd_version_name_uppercase": lambda c: unique(c, version={"name": "V1"}),
}


def test_every_recorded_crd_case_is_replayed():
    recorded = {case for case in ANSWERS if case.startswith("crd_")}
    assert recorded == set(CRD_CASES)


@pytest.mark.parametrize("case", sorted(CRD_CASES))
def test_a_crd_gets_the_answer_kube_apiserver_gave(http, case):
    code, body = http("POST", CRDS, CRD_CASES[case](case))
    answer = ANSWERS[case]
    assert (code, body.get("reason") if code >= 400 else None) == (answer["status"], answer["reason"]), body
    assert causes_of(body if code >= 400 else {}) == sorted(tuple(c) for c in answer["causes"]), body.get("message")


GIZMO_SPEC = {
    "type": "object",
    "required": ["size"],
    "properties": {
        "size": {"type": "integer", "minimum": 1, "maximum": 9},
        "color": {"type": "string", "default": "blue"},
        "owner": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf", "message": "owner is immutable"}]},
        "limits": {
            "type": "object",
            "properties": {"max": {"type": "integer"}, "min": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "!has(self.max) || !has(self.min) || self.min <= self.max",
                                          "message": "min must not exceed max"}],
        },
    },
}


@pytest.fixture
def gizmos(http):
    code, body = http("POST", CRDS, gizmo_crd(spec_properties=GIZMO_SPEC["properties"], root={
        "type": "object", "properties": {"spec": GIZMO_SPEC, "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}))
    assert code == 201, body
    return http


def gizmo(name, **spec):
    return {"apiVersion": f"{GROUP}/v1", "kind": "Gizmo", "metadata": {"name": name}, "spec": spec}


def expect(case, code, body):
    answer = ANSWERS[case]
    assert (code, body.get("reason") if code >= 400 else None) == (answer["status"], answer["reason"]), body
    assert causes_of(body if code >= 400 else {}) == sorted(tuple(c) for c in answer["causes"])


def test_cr_required_missing(gizmos):
    expect("cr_required_missing", *gizmos("POST", GIZMOS, gizmo("a", color="red")))


def test_cr_above_maximum(gizmos):
    expect("cr_above_maximum", *gizmos("POST", GIZMOS, gizmo("a", size=10)))


def test_cr_cel_violation(gizmos):
    code, body = gizmos("POST", GIZMOS, gizmo("a", size=1, limits={"min": 5, "max": 3}))
    expect("cr_cel_violation", code, body)
    assert ANSWERS["cr_cel_violation"]["message_has_rule_message"] and "min must not exceed max" in body["message"]


def test_cr_unknown_field_strict(gizmos):
    expect("cr_unknown_field_strict", *gizmos("POST", GIZMOS + "?fieldValidation=Strict", gizmo("a", size=2, extra=1)))


def test_cr_unknown_field_pruned_and_defaulted(gizmos):
    code, body = gizmos("POST", GIZMOS, gizmo("a", size=2, extra=1))
    expect("cr_unknown_field_pruned_and_defaulted", code, body)
    assert body["spec"] == ANSWERS["cr_unknown_field_pruned_and_defaulted"]["spec"]


def test_cr_transition_rule_violation(gizmos):
    assert gizmos("POST", GIZMOS, gizmo("a", size=2, owner="alice"))[0] == 201
    code, body = gizmos("PATCH", GIZMOS + "/a", {"spec": {"owner": "bob"}}, "application/merge-patch+json")
    expect("cr_transition_rule_violation", code, body)
    assert "owner is immutable" in body["message"]
    assert gizmos("GET", GIZMOS + "/a")[1]["spec"]["owner"] == "alice"


def test_dryrun_create_not_stored(gizmos):
    code, body = gizmos("POST", GIZMOS + "?dryRun=All", gizmo("a", size=3))
    expect("dryrun_create_not_stored", code, body)
    assert body["spec"] == ANSWERS["dryrun_create_not_stored"]["spec"]
    assert gizmos("GET", GIZMOS + "/a")[0] == ANSWERS["dryrun_create_not_stored"]["get_after"]


def test_dryrun_patch_not_stored(gizmos):
    assert gizmos("POST", GIZMOS, gizmo("a", size=2))[0] == 201
    code, body = gizmos("PATCH", GIZMOS + "/a?dryRun=All", {"spec": {"size": 7}}, "application/merge-patch+json")
    expect("dryrun_patch_not_stored", code, body)
    assert body["spec"]["size"] == ANSWERS["dryrun_patch_not_stored"]["answered_size"]
    assert gizmos("GET", GIZMOS + "/a")[1]["spec"]["size"] == ANSWERS["dryrun_patch_not_stored"]["stored_size"]


def test_dryrun_delete_not_done(gizmos):
    assert gizmos("POST", GIZMOS, gizmo("a", size=2))[0] == 201
    expect("dryrun_delete_not_done", *gizmos("DELETE", GIZMOS + "/a?dryRun=All"))
    assert gizmos("GET", GIZMOS + "/a")[0] == ANSWERS["dryrun_delete_not_done"]["get_after"]


def test_dryrun_create_still_validated(gizmos):
    expect("dryrun_create_still_validated", *gizmos("POST", GIZMOS + "?dryRun=All", gizmo("a", size=0)))


def test_every_recorded_cr_case_is_replayed():
    here = {name[len("test_"):] for name in globals() if name.startswith(("test_cr_", "test_dryrun_"))}
    assert {case for case in ANSWERS if not case.startswith("crd_")} == here


# --- the same rules, other requests ------------------------------------------------------------

MAP_LIST = {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
            "items": {"type": "object", "properties": {"name": STRING, "port": {"type": "integer"}}}}
BEYOND = {
    # pkg/apis/apiextensions/validation: properties and additionalProperties are mutually exclusive.
    "properties_and_additional_properties": (spec_case("beyond1", both={
        "type": "object", "properties": {"a": STRING}, "additionalProperties": STRING}),
        [("spec.validation.openAPIV3Schema.properties[spec].properties[both].additionalProperties", "FieldValueForbidden")]),
    # list-type map: its keys must be required or defaulted (requireMapListKeysMapSetValidation).
    "map_list_key_not_required": (spec_case("beyond2", ports=MAP_LIST),
        [("spec.validation.openAPIV3Schema.properties[spec].properties[ports].items.properties[name]", "FieldValueRequired")]),
    "map_list_without_keys": (spec_case("beyond3", ports={k: v for k, v in MAP_LIST.items() if k != "x-kubernetes-list-map-keys"}),
        [("spec.validation.openAPIV3Schema.properties[spec].properties[ports].x-kubernetes-list-map-keys", "FieldValueRequired")]),
    # The root must be an object (structural invariants).
    "root_not_an_object": (unique("beyond4", root={"type": "string"}),
        [("spec.validation.openAPIV3Schema.type", "FieldValueInvalid")]),
    # A default must not need pruning (requirePrunedDefaults).
    "default_with_unknown_field": (spec_case("beyond5", opts={"type": "object", "properties": {"a": STRING}, "default": {"a": "x", "b": "y"}}),
        [("spec.validation.openAPIV3Schema.properties[spec].properties[opts].default", "FieldValueInvalid")]),
    # metadata.name must be <plural>.<group>.
    "name_not_plural_dot_group": ({**unique("beyond6"), "metadata": {"name": "other.answers.example.com"}},
        [("metadata.name", "FieldValueInvalid")]),
    # A scale subresource's specReplicasPath lives under .spec.
    "spec_replicas_outside_spec": (unique("beyond7", version={"subresources": {"scale": {
        "specReplicasPath": ".status.size", "statusReplicasPath": ".status.replicas"}}}),
        [("spec.subresources.scale.specReplicasPath", "FieldValueInvalid")]),
    # A printer column's type is one of integer, number, string, boolean, date.
    "printer_column_type": (unique("beyond8", version={"additionalPrinterColumns": [{"name": "S", "type": "int", "jsonPath": ".spec.size"}]}),
        [("spec.additionalPrinterColumns[0].type", "FieldValueInvalid")]),
    # A CEL rule that does not compile (an unknown field of the schema).
    "cel_unknown_field": (unique("beyond9", root={"type": "object", "properties": {"spec": {
        "type": "object", "properties": {"size": {"type": "integer"}}, "x-kubernetes-validations": [{"rule": "self.sise > 0"}]}}}),
        [("spec.validation.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule", "FieldValueInvalid")]),
    # A transition rule under a list that is not a map cannot find its old value.
    "cel_old_self_uncorrelatable": (spec_case("beyond10", tags={"type": "array", "items": {
        "type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}}),
        [("spec.validation.openAPIV3Schema.properties[spec].properties[tags].items.x-kubernetes-validations[0].rule", "FieldValueInvalid")]),
    # Two versions with different schemas: the paths are per version.
    "per_version_schemas": ({**unique("beyond11"), "spec": {**unique("beyond11")["spec"], "versions": [
        unique("beyond11")["spec"]["versions"][0],
        {"name": "v2", "served": True, "storage": False, "schema": {"openAPIV3Schema": {"type": "object", "properties": {"x": {}}}}}]}},
        [("spec.versions[1].schema.openAPIV3Schema.properties[x].type", "FieldValueRequired")]),
}


@pytest.mark.parametrize("case", sorted(BEYOND))
def test_the_rules_hold_beyond_the_samples(http, case):
    crd, causes = BEYOND[case]
    code, body = http("POST", CRDS, crd)
    assert (code, causes_of(body)) == (422, sorted(causes)), body.get("message")


def test_a_valid_map_list_and_cel_on_its_items_are_accepted_and_enforced(http):
    ports = copy.deepcopy(MAP_LIST)
    ports["items"]["required"] = ["name"]
    ports["items"]["x-kubernetes-validations"] = [{"rule": "self.port == oldSelf.port", "message": "port is fixed"}]
    assert http("POST", CRDS, gizmo_crd(spec_properties={"ports": ports}))[0] == 201
    assert http("POST", GIZMOS, gizmo("a", ports=[{"name": "web", "port": 80}]))[0] == 201
    code, body = http("PATCH", GIZMOS + "/a", {"spec": {"ports": [{"name": "web", "port": 81}, {"name": "new", "port": 1}]}},
                      "application/merge-patch+json")
    assert (code, causes_of(body)) == (422, [("spec.ports[0]", "FieldValueInvalid")])
    assert "port is fixed" in body["message"]
