"""Every construct of the rule-table language, and tables that must be refused."""

from __future__ import annotations

import base64
import hashlib
import textwrap

import pytest

from eevee.engine.render import MANAGED_BY_LABEL, InvalidSpec, ReferenceNotFound
from eevee.engine.tables import TableError, load_rules

from .tables_helpers import bodies, load, render, resource, widget

CM = """
- id: cm
  apiVersion: v1
  kind: ConfigMap
  name: "w-{metadata.name}"
  patches:
"""


def cm_with(patches: str, **spec):
    rules = widget(CM + "\n".join("    " + line for line in textwrap.dedent(patches).strip().splitlines()))
    return bodies(render(rules, resource(spec)))["cm"]


def test_child_identity_name_template_and_labels():
    rules = widget(
        """
        - id: cm
          apiVersion: v1
          kind: ConfigMap
          name: "w-{metadata.name}-{spec.color}"
          labels: {tier: "{spec.color}"}
        """,
        "labels:\n  app: widget\n",
    )
    body = bodies(render(rules, resource({"color": "red"})))["cm"]
    assert (body["apiVersion"], body["kind"]) == ("v1", "ConfigMap")
    assert body["metadata"]["name"] == "w-w1-red"
    assert body["metadata"]["namespace"] == "ns"
    assert body["metadata"]["labels"]["app"] == "widget"
    assert body["metadata"]["labels"]["tier"] == "red"
    assert body["metadata"]["labels"][MANAGED_BY_LABEL] == "eevee-operator"


def test_base_manifest_and_field_mapping_with_default():
    body = cm_with(
        """
        - {toFieldPath: "data[size]", fromFieldPath: spec.size, default: 1, transforms: [string]}
        - {toFieldPath: "data[color]", fromFieldPath: spec.color}
        """
    )
    assert body["data"] == {"size": "1"}  # color unset: no field at all


def test_value_format_and_structured_format():
    body = cm_with(
        """
        - {toFieldPath: "data[fixed]", value: "x"}
        - {toFieldPath: "data[url]", format: "http://{spec.color}:{spec.size}"}
        - {toFieldPath: "extra", format: {a: "{spec.color}", b: ["{spec.color}", "{spec.extra.missing}"]}}
        """,
        color="red",
        size=3,
    )
    assert body["data"] == {"fixed": "x", "url": "http://red:3"}
    assert body["extra"] == {"a": "red", "b": ["red"]}  # an unset placeholder drops its item


def test_a_template_with_an_unset_field_is_unset_not_half_filled():
    body = cm_with('- {toFieldPath: "data[url]", format: "http://{spec.color}/"}')
    assert "data" not in body


def test_conditions_on_children_and_on_patches():
    rules = widget(
        """
        - id: cm
          apiVersion: v1
          kind: ConfigMap
          name: "w-{metadata.name}"
          when: {isTrue: spec.enabled}
          patches:
            - {toFieldPath: "data[a]", value: "1", when: {set: spec.color}}
            - {toFieldPath: "data[b]", value: "2", when: {not: {set: spec.color}}}
            - {toFieldPath: "data[c]", value: "3", when: {all: [{isTrue: spec.enabled}, {equal: [spec.color, spec.text]}]}}
            - {toFieldPath: "data[d]", value: "4", when: {any: [{unset: spec.size}, {isFalse: spec.enabled}]}}
            - {toFieldPath: "data[e]", value: "5", when: {matches: [spec.color, "r.d"]}}
        """
    )
    assert bodies(render(rules, resource({"enabled": False}))) == {}
    data = bodies(render(rules, resource({"enabled": True, "color": "red", "text": "red"})))["cm"]["data"]
    assert data == {"a": "1", "c": "3", "d": "4", "e": "5"}
    data = bodies(render(rules, resource({"enabled": True, "size": 2})))["cm"]["data"]
    # two unset fields are equal; matches holds for an unset field (nothing to refuse)
    assert data == {"b": "2", "c": "3", "e": "5"}


@pytest.mark.parametrize(
    "transform, value, expected",
    [
        ("[string]", True, "true"),
        ("[integer]", "42", 42),
        ("[base64]", "hi", base64.b64encode(b"hi").decode()),
        ("[sha256]", "hi", hashlib.sha256(b"hi").hexdigest()),
        ("[quantity]", "0.5", "500m"),
        ('[{map: {"false": 0, "true": 3}}]', False, 0),
        ('[{map: {"a": "b"}}]', "z", "z"),  # unmapped values pass through
        ('[{map: {"true": "yes"}}, sha256]', True, hashlib.sha256(b"yes").hexdigest()),
        ("[unixTime]", "2026-12-07T18:00:00Z", 1796666400.0),
        ("[cronPeriod]", "0 3 * * 1-5", 3 * 86400.0),  # Friday to Monday
        ("[cronPeriod]", "@hourly", 3600.0),
    ],
)
def test_transforms(transform, value, expected):
    rules = widget(CM + f"    - {{toFieldPath: out, fromFieldPath: spec.extra.v, transforms: {transform}}}")
    assert bodies(render(rules, resource({"extra": {"v": value}})))["cm"]["out"] == expected


def test_a_transform_that_cannot_apply_is_an_invalid_spec_naming_the_rule():
    rules = widget(CM + "    - {toFieldPath: out, fromFieldPath: spec.extra.v, transforms: [quantity]}")
    with pytest.raises(InvalidSpec) as caught:
        render(rules, resource({"extra": {"v": "lots"}}))
    assert "not a Kubernetes quantity" in str(caught.value)


def test_from_field_path_list_takes_the_first_set_value():
    body = cm_with("- {toFieldPath: out, fromFieldPath: [spec.color, spec.text], default: none}", text="t")
    assert body["out"] == "t"


def test_list_items_are_addressed_by_key():
    rules = widget(
        """
        - id: dep
          apiVersion: apps/v1
          kind: Deployment
          name: "w-{metadata.name}"
          base:
            spec: {containers: [{name: main, image: base}, {name: side, image: s}]}
          patches:
            - {toFieldPath: "spec.containers[name=main].image", fromFieldPath: spec.color}
            - {toFieldPath: "spec.containers[name=main].env[name=B].value", value: "b"}
            - {toFieldPath: "spec.containers[name=main].env[name=A].value", value: "a"}
        """
    )
    body = bodies(render(rules, resource({"color": "img"})))["dep"]
    assert body["spec"]["containers"][0] == {
        "name": "main",
        "image": "img",
        "env": [{"name": "B", "value": "b"}, {"name": "A", "value": "a"}],
    }
    assert body["spec"]["containers"][1] == {"name": "side", "image": "s"}


def test_values_are_named_and_used_in_order():
    rules = widget(
        CM + "    - {toFieldPath: out, fromFieldPath: values.label}",
        'values:\n  size: {fromFieldPath: spec.size, default: 2}\n  label: {format: "size-{values.size}"}\n',
    )
    assert bodies(render(rules, resource({})))["cm"]["out"] == "size-2"


BUS = """
resource: {apiVersion: example.org/v1, kind: Bus, plural: buses}
schema: {secret: {type: string}}
values:
  host: {format: "bus-{metadata.name}.{metadata.namespace}"}
  secret: {fromFieldPath: [spec.secret, values.host]}
exports: [host, secret]
children: []
"""


def test_references_read_the_exports_of_another_resource():
    rules = load(
        BUS,
        """
        resource: {apiVersion: example.org/v1, kind: Widget, plural: widgets}
        schema: {bus: {type: string}}
        references:
          bus: {kind: Bus, fromFieldPath: spec.bus}
        children:
          - id: cm
            apiVersion: v1
            kind: ConfigMap
            name: w
            patches:
              - {toFieldPath: "data[host]", fromFieldPath: refs.bus.host}
              - {toFieldPath: "data[secret]", fromFieldPath: refs.bus.secret}
        """,
    )
    bus = resource({"secret": "s3"}, kind="Bus", name="b")
    data = bodies(render(rules, resource({"bus": "b"}), bus))["cm"]["data"]
    assert data == {"host": "bus-b.ns", "secret": "s3"}
    # no reference given: the mapped fields are simply unset
    assert "data" not in bodies(render(rules, resource({})))["cm"]
    # a reference to a resource that does not exist is reported on its field
    with pytest.raises(ReferenceNotFound) as caught:
        render(rules, resource({"bus": "nope"}))
    assert caught.value.problems[0].field == "spec.bus"
    assert "Bus ns/nope does not exist" in caught.value.problems[0].reason


def test_generated_values_are_create_only():
    rules = widget(
        """
        - id: secret
          apiVersion: v1
          kind: Secret
          name: "w-{metadata.name}"
          patches:
            - {toFieldPath: "data[token]", generate: token, bytes: 16, transforms: [base64], createOnly: true}
        """
    )
    child = render(rules, resource({})).children[0]
    assert base64.b64decode(child.body["data"]["token"]).decode() == "t" * 16
    assert all(path != ("data", "token") for path, _ in child.leaves)  # never compared, never overwritten


def test_ownership_and_retention_policies():
    rules = widget(
        """
        - {id: owned, apiVersion: v1, kind: ConfigMap, name: a}
        - {id: kept, apiVersion: v1, kind: PersistentVolumeClaim, name: b, owned: false}
        - {id: sticky, apiVersion: v1, kind: Secret, name: c, prune: false}
        """
    )
    children = {c.id: c for c in render(rules, resource({}, uid="u-1")).children}
    assert children["owned"].body["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert (children["owned"].owned, children["owned"].prune) == (True, True)
    assert "ownerReferences" not in children["kept"].body["metadata"]
    assert (children["kept"].owned, children["kept"].prune) == (False, False)
    assert (children["sticky"].owned, children["sticky"].prune) == (True, False)


def test_a_later_child_can_hash_an_earlier_one():
    rules = widget(
        """
        - id: cm
          apiVersion: v1
          kind: ConfigMap
          name: a
          patches: [{toFieldPath: "data[f]", fromFieldPath: spec.text}]
        - id: dep
          apiVersion: apps/v1
          kind: Deployment
          name: b
          patches: [{toFieldPath: "metadata.annotations[hash]", fromFieldPath: children.cm.data, transforms: [sha256]}]
        """
    )
    first = bodies(render(rules, resource({"text": "one"})))["dep"]["metadata"]["annotations"]["hash"]
    again = bodies(render(rules, resource({"text": "one"})))["dep"]["metadata"]["annotations"]["hash"]
    other = bodies(render(rules, resource({"text": "two"})))["dep"]["metadata"]["annotations"]["hash"]
    assert first == again != other


def test_spec_schema_and_checks_name_the_field():
    rules = widget(
        "- {id: cm, apiVersion: v1, kind: ConfigMap, name: a}",
        "checks:\n  - {field: spec.color, rule: {not: {equal: [spec.color, spec.text]}}, message: must differ from text}\n",
    )
    with pytest.raises(InvalidSpec) as caught:
        render(rules, resource({"size": -1, "colour": "x"}))
    fields = {p.field: p.reason for p in caught.value.problems}
    assert fields["spec.size"] == "min value is 0"
    assert fields["spec.colour"] == "unknown field"
    with pytest.raises(InvalidSpec, match=r"spec\.color: must differ from text"):
        render(rules, resource({"color": "a", "text": "a"}))


# --- refused tables ----------------------------------------------------------------------


def refused(*texts: str) -> list[tuple[str, str, str]]:
    with pytest.raises(TableError) as caught:
        load(*texts)
    return caught.value.problems


def test_yaml_syntax_errors_name_file_and_line(tmp_path):
    (tmp_path / "bad.yaml").write_text("resource:\n  kind: [unclosed\n")
    with pytest.raises(TableError) as caught:
        load_rules(tmp_path)
    ((file, where, reason),) = caught.value.problems
    assert file.endswith("bad.yaml") and where.startswith("line ") and "YAML syntax error" in reason


@pytest.mark.parametrize(
    "children, extra, rule, reason",
    [
        (
            "- {id: cm, apiVersion: v1, kind: ConfigMap, name: a, colour: red}",
            "",
            "children[cm].colour",
            "unknown field",
        ),
        (
            "- {id: cm, apiVersion: v1, kind: ConfigMap, name: a, patches: [{toFieldPath: x, fromFieldPath: spec.size, transforms: [upper]}]}",
            "",
            "children[cm].patches[0] (toFieldPath x)",
            "unknown transform 'upper'",
        ),
        (
            "- {id: cm, apiVersion: v1, kind: ConfigMap, name: a, when: {greater: spec.size}}",
            "",
            "children[cm].when",
            "unknown condition 'greater'",
        ),
        (
            "- {id: cm, apiVersion: v1, kind: ConfigMap, name: a, patches: [{toFieldPath: x, fromFieldPath: spec.sise}]}",
            "",
            "children[cm].patches[0] (toFieldPath x)",
            "path spec.sise does not exist in the table's spec schema",
        ),
        (
            "- {id: cm, apiVersion: v1, kind: ConfigMap, name: a, patches: [{toFieldPath: x, fromFieldPath: values.nope}]}",
            "",
            "children[cm].patches[0] (toFieldPath x)",
            "path values.nope names no value defined above this rule",
        ),
        (
            "- {id: cm, apiVersion: v1, kind: ConfigMap, name: a, patches: [{toFieldPath: x, fromFieldPath: state.x}]}",
            "",
            "children[cm].patches[0] (toFieldPath x)",
            "unknown root 'state'",
        ),
        (
            "- {id: cm, apiVersion: v1, kind: ConfigMap, name: a, patches: [{toFieldPath: 'x[', value: 1}]}",
            "",
            "children[cm].patches[0] (toFieldPath x[)",
            "malformed brackets",
        ),
        (
            "- {id: cm, apiVersion: v1, kind: ConfigMap, name: 'a-{spec.size'}",
            "",
            "children[cm].name",
            "unbalanced brace",
        ),
        (
            "- {id: cm, apiVersion: v1, kind: ConfigMap, name: a, patches: [{toFieldPath: x, value: 1, fromFieldPath: spec.size}]}",
            "",
            "children[cm].patches[0] (toFieldPath x)",
            "exactly one of fromFieldPath, value, format, generate (found fromFieldPath, value)",
        ),
        (
            "- {id: cm, apiVersion: v1, kind: ConfigMap, name: a, patches: [{toFieldPath: x, generate: token}]}",
            "",
            "children[cm].patches[0] (toFieldPath x)",
            "must be createOnly",
        ),
        (
            "- {id: cm, apiVersion: v1, kind: ConfigMap, name: a}\n- {id: cm, apiVersion: v1, kind: Secret, name: b}",
            "",
            "children[1] (id cm)",
            "the id cm is already used by an earlier child",
        ),
        (
            "- {id: cm, apiVersion: v1, kind: ConfigMap, name: a}",
            "values:\n  a: {fromFieldPath: values.b}\n  b: {value: 1}\n",
            "values.a",
            "names no value defined above",
        ),
        (
            "- {id: cm, apiVersion: v1, kind: ConfigMap, name: a}",
            "status:\n  waitFor: [dep]\n",
            "status.waitFor",
            "dep is not a child",
        ),
        (
            "- {id: cm, apiVersion: v1, kind: ConfigMap, name: a}",
            "exports: [nothing]\n",
            "exports",
            "nothing is not a value",
        ),
        (
            "- {id: cm, apiVersion: v1, kind: ConfigMap, name: a, after: [dep]}\n- {id: dep, apiVersion: v1, kind: Secret, name: b}",
            "",
            "children[cm].after",
            "dep is not a child listed before this one",
        ),
        (
            "- {id: cm, apiVersion: v1, kind: ConfigMap, name: a, adoptFrom: [owner]}",
            "",
            "children[cm].adoptFrom",
            "owner is not a reference of this table",
        ),
        (
            "- {id: cm, apiVersion: v1, kind: ConfigMap, name: a, createIf: {set: live.nothing}}",
            "",
            "children[cm].createIf",
            "names no child of this table",
        ),
        (
            "- {id: cm, apiVersion: v1, kind: ConfigMap, name: a}",
            "probes:\n  s3: {check: s3.listObjects, inputs: {endpoint: {value: x}}}\n",
            "probes.s3",
            "needs the inputs bucket, accessKeyId, secretAccessKey",
        ),
        (
            "- {id: cm, apiVersion: v1, kind: ConfigMap, name: a, patches: [{toFieldPath: 'data[x]', fromFieldPath: probes.s3.ok}]}",
            "",
            "children[cm].patches[0] (toFieldPath data[x])",
            "names no probe defined above",
        ),
        (
            "- {id: cm, apiVersion: v1, kind: ConfigMap, name: a}",
            "status:\n  conditions:\n    - {type: Ready, cases: [{when: {set: spec.size}, status: 'True', reason: A, message: a}]}\n",
            "status.conditions[0] (Ready)",
            "given twice",
        ),
        (
            "- {id: cm, apiVersion: v1, kind: ConfigMap, name: a}",
            "marks:\n  - {reference: nothing, when: {set: spec.size}, annotations: {a: b}}\n",
            "marks[0].reference",
            "nothing is not a reference of this table to an object",
        ),
        (
            "- {id: cm, apiVersion: v1, kind: ConfigMap, name: a}",
            "metrics:\n  - {name: eevee_operator_resource_ready, help: mine, value: 1}\n",
            "metrics[0] (eevee_operator_resource_ready)",
            "is a metric every resource has already",
        ),
    ],
)
def test_broken_tables_are_refused_with_rule_and_reason(children, extra, rule, reason):
    from .tables_helpers import WIDGET

    problems = refused(WIDGET + textwrap.indent(children, "  ") + "\n" + extra)
    assert any(r == rule and reason in why for _, r, why in problems), problems
    assert all(file == "table0.yaml" for file, _, _ in problems)


def test_a_missing_required_section_is_named():
    problems = refused("resource: {apiVersion: example.org/v1, kind: Widget, plural: widgets}\nschema: {}\n")
    assert ("table0.yaml", "children", "required field") in problems


def test_references_to_unknown_kinds_values_from_refs_and_missing_exports_are_refused():
    a = """
    resource: {apiVersion: example.org/v1, kind: A, plural: as}
    schema: {b: {type: string}}
    values: {x: {fromFieldPath: spec.b}}
    references: {b: {kind: B, fromFieldPath: spec.b}}
    exports: [x]
    children:
      - id: cm
        apiVersion: v1
        kind: ConfigMap
        name: "{metadata.name}"
        patches: [{toFieldPath: "data[y]", fromFieldPath: refs.b.y}]
    """
    b = """
    resource: {apiVersion: example.org/v1, kind: B, plural: bs}
    schema: {a: {type: string}}
    values: {y: {fromFieldPath: spec.a}}
    references: {a: {kind: A, fromFieldPath: spec.a}}
    exports: [y]
    children:
      - id: cm
        apiVersion: v1
        kind: ConfigMap
        name: "b-{metadata.name}"
        patches: [{toFieldPath: "data[x]", fromFieldPath: refs.a.x}]
    """
    assert any("no table is loaded for kind B; a reference to another kind needs its apiVersion" in why for _, _, why in refused(a))
    # Exports are values and values never read references, so tables may reference each other.
    load(a, b)
    b_without_export = b.replace("exports: [y]", "exports: []")
    assert any("B exports no value 'y'" in why for _, _, why in refused(a, b_without_export))
    reads_refs = a.replace("values: {x: {fromFieldPath: spec.b}}", "values: {x: {fromFieldPath: refs.b.y}}")
    assert any("names no reference defined above this rule" in why for _, _, why in refused(reads_refs, b))


def test_the_shipped_tables_load(rules):
    assert set(rules.tables) == {"BotModule", "IpcConfig", "S3Store", "BackupSchedule", "BackupRestore"}


# --- two children, one object (issue 26) --------------------------------------------------

TWO_CONFIGS = """\
resource: {apiVersion: example.org/v1, kind: Widget, plural: widgets}
schema:
  text: {type: string}
  other: {type: string}
children:
  - id: config
    apiVersion: v1
    kind: ConfigMap
    name: "w-{metadata.name}-config"
    when: {set: spec.text}
    patches: [{toFieldPath: "data[a]", fromFieldPath: spec.text}]
  - id: extra
    apiVersion: v1
    kind: ConfigMap
    name: "w-{NAME}-config"
    when: {set: spec.text}
    patches: [{toFieldPath: "data[b]", fromFieldPath: spec.text}]
"""


def refused_files(tmp_path, **files):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(TableError) as caught:
        load_rules(tmp_path)
    return [(where.replace(str(tmp_path) + "/", ""), rule, reason.replace(str(tmp_path) + "/", ""))
            for where, rule, reason in caught.value.problems]


def test_two_children_with_one_name_are_refused_with_the_line_of_both(tmp_path):
    assert refused_files(tmp_path, **{"widget.yaml": TWO_CONFIGS.replace("{NAME}", "{metadata.name}")}) == [
        ("widget.yaml:12", "children[extra]",
         "makes the same ConfigMap as children[config] (widget.yaml:6): both are named 'w-{metadata.name}-config' under the same condition"),
    ]


def test_names_that_differ_only_in_their_placeholders_are_refused(tmp_path):
    assert refused_files(tmp_path, **{"widget.yaml": TWO_CONFIGS.replace("{NAME}", "{spec.other}")}) == [
        ("widget.yaml:12", "children[extra]",
         "makes the same ConfigMap as children[config] (widget.yaml:6): names 'w-{spec.other}-config' and "
         "'w-{metadata.name}-config' differ only in their placeholders under the same condition"),
    ]


def test_two_tables_whose_children_make_one_object_are_refused(tmp_path):
    gadget = TWO_CONFIGS.replace("kind: Widget, plural: widgets", "kind: Gadget, plural: gadgets")
    gadget = gadget[: gadget.index("  - id: extra")]
    problems = refused_files(tmp_path, **{"gadget.yaml": gadget, "widget.yaml": TWO_CONFIGS.replace("{NAME}", "x-{metadata.name}")})
    assert problems == [
        ("widget.yaml:6", "children[config]",
         "makes the same ConfigMap as children[config] of the Gadget table (gadget.yaml:6): both are named 'w-{metadata.name}-config'"),
    ]


def test_children_under_different_conditions_or_of_other_shapes_load():
    exclusive = TWO_CONFIGS.replace("{NAME}", "{metadata.name}").replace(
        "when: {set: spec.text}\n    patches: [{toFieldPath: \"data[b]\"", "when: {unset: spec.text}\n    patches: [{toFieldPath: \"data[b]\"")
    assert [c.id for c in load(exclusive).tables["Widget"].children] == ["config", "extra"]
    assert [c.id for c in load(TWO_CONFIGS.replace("{NAME}", "{metadata.name}-extra")).tables["Widget"].children] == ["config", "extra"]


def test_a_rendering_in_which_two_children_make_one_object_is_an_invalid_spec():
    # Shapes differ, values meet: "w-a-x-config" is both children's name for this resource.
    rules = load(TWO_CONFIGS.replace('"w-{metadata.name}-config"', '"w-{metadata.name}-x-config"').replace("{NAME}", "{spec.other}"))
    assert [c.name for c in render(rules, resource({"text": "t", "other": "b"}, name="a")).children] == ["w-a-x-config", "w-b-config"]
    with pytest.raises(InvalidSpec) as caught:
        render(rules, resource({"text": "t", "other": "a-x"}, name="a"))
    assert [(p.field, p.reason) for p in caught.value.problems] == [
        ("children[extra].name", "ConfigMap w-a-x-config is also made by children[config]; one object cannot be two children"),
    ]


def test_a_duplicate_child_id_is_named_at_the_duplicate_without_follow_on_errors(tmp_path):
    duplicate = TWO_CONFIGS.replace("id: extra", "id: config").replace("{NAME}", "{metadata.name}-extra") + """\
status:
  waitFor: [config]
  patches:
    - {toFieldPath: text, fromFieldPath: "live.config.data[a]"}
"""
    assert refused_files(tmp_path, **{"widget.yaml": duplicate}) == [
        ("widget.yaml:12", "children[1] (id config)", "the id config is already used by an earlier child"),
    ]
