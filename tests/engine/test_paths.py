import pytest

from eevee.engine.paths import (
    ListKey,
    PathError,
    assign,
    decode_path_set,
    encode_path_set,
    format_path,
    get,
    parse_path,
    pointer,
)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("spec.replicas", ("spec", "replicas")),
        ("spec.containers[name=module].image", ("spec", "containers", ListKey("name", "module"), "image")),
        ("metadata.annotations[eevee.bot/config-hash]", ("metadata", "annotations", "eevee.bot/config-hash")),
        ("data[config.yaml]", ("data", "config.yaml")),
    ],
)
def test_parse_and_format_round_trip(text, expected):
    assert parse_path(text) == expected
    assert format_path(parse_path(text)) == text


@pytest.mark.parametrize("text", ["", ".a", "a.", "a..b", "a[", "a[]", "a[=x]", "a[x=]", "a]b", "a[b]c", "a b"])
def test_malformed_paths_are_refused(text):
    with pytest.raises(PathError):
        parse_path(text)


def test_assign_creates_keyed_items_and_keeps_others():
    doc = {"spec": {"containers": [{"name": "sidecar", "image": "x"}]}}
    assign(doc, parse_path("spec.containers[name=module].env[name=A].value"), "1")
    assign(doc, parse_path("spec.containers[name=module].image"), "img")
    assert doc["spec"]["containers"] == [
        {"name": "sidecar", "image": "x"},
        {"name": "module", "env": [{"name": "A", "value": "1"}], "image": "img"},
    ]


def test_get_follows_keys_not_positions():
    doc = {"env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]}
    assert get(doc, parse_path("env[name=A].value")) == "1"
    assert get(doc, parse_path("env[name=C].value"), "missing") == "missing"
    assert pointer(doc, parse_path("env[name=A].value")) == "/env/1/value"
    assert pointer({"a": {"b/c": 1}}, parse_path("a[b/c]")) == "/a/b~1c"


def test_path_sets_encode_compactly_and_decode_exactly():
    paths = [
        parse_path("spec.replicas"),
        parse_path("spec.template.spec.containers[name=module].image"),
        parse_path("spec.template.spec.containers[name=module].env[name=A].value"),
        parse_path("metadata.labels[app.kubernetes.io/name]"),
    ]
    units = [parse_path("spec.template.spec.containers[name=module]")]
    text = encode_path_set(paths, units)
    leaves, decoded_units = decode_path_set(text)
    assert sorted(map(format_path, leaves)) == sorted(map(format_path, paths))
    assert decoded_units == units
    assert decode_path_set("not json") == ([], [])
    assert decode_path_set("z1:not base64!") == ([], [])
    # records written by eevee-operator 0.1 (the plain JSON tree) are still read
    legacy = '{"metadata":{"labels":{"app.kubernetes.io/name":0}},"spec":{"replicas":0,"template":{"spec":{"containers":{"[name=module]":{"@":1,"image":0}}}}}}'
    leaves, units = decode_path_set(legacy)
    assert sorted(map(format_path, leaves)) == sorted(["metadata.labels[app.kubernetes.io/name]", "spec.replicas", "spec.template.spec.containers[name=module].image"])
    assert units == [parse_path("spec.template.spec.containers[name=module]")]
