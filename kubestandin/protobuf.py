"""Reading the Kubernetes protobuf encoding of the few kinds clients send that way.

client-go's typed clients (kubectl's generators, Helm's release storage) send built-in
objects as ``application/vnd.kubernetes.protobuf``: the magic ``k8s\\0`` then a
``runtime.Unknown`` holding the apiVersion, the kind and the object's own message. The
stand-in turns such a body into the JSON object it stores; it always answers in JSON,
which those clients accept too (they list it in ``Accept``). Only the kinds below are
understood; any other gets the real server's 415 for a format it cannot read.

Field numbers are those of k8s.io/api and k8s.io/apimachinery ``generated.proto``.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    """The body is not a protobuf message the stand-in can read."""


# --- the wire format -------------------------------------------------------------------


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) pairs: an int for varints, bytes for length-delimited."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            yield number, value
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ProtobufError("truncated field")
            yield number, data[pos : pos + length]
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a string")
    try:
        return value.decode()
    except UnicodeDecodeError:
        raise ProtobufError("a string field is not valid UTF-8") from None


def _int(value: int | bytes) -> int:
    if isinstance(value, bytes):
        raise ProtobufError("expected an integer")
    return value - (1 << 64) if value >= 1 << 63 else value


def _bool(value: int | bytes) -> bool:
    return bool(_int(value))


def _entry(value: int | bytes, decode_value: Callable[[int | bytes], Any]) -> tuple[str, Any]:
    key, item = "", decode_value(b"")
    for number, field in _fields(_bytes(value)):
        if number == 1:
            key = _text(field)
        elif number == 2:
            item = decode_value(field)
    return key, item


def _bytes(value: int | bytes) -> bytes:
    if not isinstance(value, bytes):
        raise ProtobufError("expected bytes")
    return value


def _b64(value: int | bytes) -> str:
    return base64.b64encode(_bytes(value)).decode()


def _time(value: int | bytes) -> str | None:
    seconds = 0
    for number, field in _fields(_bytes(value)):
        if number == 1:
            seconds = _int(field)
    if seconds == 0:
        return None  # an empty Time: the zero value, serialised as null in JSON
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- messages ----------------------------------------------------------------------------
# Each message is a table: field number -> (JSON name, decoder, how repeated values combine).

Scalar = Callable[[int | bytes], Any]
Table = dict[int, tuple[str, Scalar, str]]


def _message(table: Table) -> Scalar:
    def decode(value: int | bytes) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for number, field in _fields(_bytes(value)):
            spec = table.get(number)
            if spec is None:
                continue  # a field the stand-in does not store (as the real server drops unknown ones)
            name, decoder, mode = spec
            if mode == "map":
                key, item = _entry(field, decoder)
                out.setdefault(name, {})[key] = item
            elif mode == "list":
                out.setdefault(name, []).append(decoder(field))
            else:
                out[name] = decoder(field)
        return {k: v for k, v in out.items() if v not in (None, "")}

    return decode


_OWNER_REFERENCE = _message(
    {
        1: ("kind", _text, "one"),
        3: ("name", _text, "one"),
        4: ("uid", _text, "one"),
        5: ("apiVersion", _text, "one"),
        6: ("controller", _bool, "one"),
        7: ("blockOwnerDeletion", _bool, "one"),
    }
)

_OBJECT_META = _message(
    {
        1: ("name", _text, "one"),
        2: ("generateName", _text, "one"),
        3: ("namespace", _text, "one"),
        5: ("uid", _text, "one"),
        6: ("resourceVersion", _text, "one"),
        8: ("creationTimestamp", _time, "one"),
        9: ("deletionTimestamp", _time, "one"),
        10: ("deletionGracePeriodSeconds", _int, "one"),
        11: ("labels", _text, "map"),
        12: ("annotations", _text, "map"),
        13: ("ownerReferences", _OWNER_REFERENCE, "list"),
        14: ("finalizers", _text, "list"),
    }
)

_KINDS: dict[str, Scalar] = {
    "Secret": _message(
        {
            1: ("metadata", _OBJECT_META, "one"),
            2: ("data", _b64, "map"),
            3: ("type", _text, "one"),
            4: ("stringData", _text, "map"),
            5: ("immutable", _bool, "one"),
        }
    ),
    "ConfigMap": _message(
        {
            1: ("metadata", _OBJECT_META, "one"),
            2: ("data", _text, "map"),
            3: ("binaryData", _b64, "map"),
            4: ("immutable", _bool, "one"),
        }
    ),
    "Namespace": _message(
        {
            1: ("metadata", _OBJECT_META, "one"),
            2: ("spec", _message({1: ("finalizers", _text, "list")}), "one"),
        }
    ),
    "DeleteOptions": _message(
        {
            1: ("gracePeriodSeconds", _int, "one"),
            3: ("orphanDependents", _bool, "one"),
            4: ("propagationPolicy", _text, "one"),
            5: ("dryRun", _text, "list"),
        }
    ),
}


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded Kubernetes object.

    Raises ProtobufError for a body that is not an envelope, or a kind not in the table.
    """
    if not body.startswith(MAGIC):
        raise ProtobufError("the body does not start with the Kubernetes protobuf magic number")
    api_version = kind = ""
    raw = b""
    for number, field in _fields(body[len(MAGIC) :]):
        if number == 1:
            for inner, value in _fields(_bytes(field)):
                if inner == 1:
                    api_version = _text(value)
                elif inner == 2:
                    kind = _text(value)
        elif number == 2:
            raw = _bytes(field)
    decoder = _KINDS.get(kind)
    if decoder is None:
        raise ProtobufError(f"the stand-in reads protobuf only for {', '.join(_KINDS)}, not {kind or 'this body'}")
    return {"apiVersion": api_version, "kind": kind, **decoder(raw)}
