"""The differ: the smallest RFC 6902 patch that brings a live object to what we render.

It compares only the *managed leaves* of a :class:`DesiredChild` (the fields this
rendering sets) against the live object, and removes the leaves the previous
rendering managed (read back from the ``eevee.bot/managed-fields`` annotation) that
this one no longer renders. Everything else on the live object (server defaults,
other controllers' fields, ``kubectl rollout restart`` annotations, status) is
never looked at, so it is never touched.

List items are addressed by key, and turned into indexes against the live object
only when a patch is built. That is safe because every patch starts by replacing
``/metadata/resourceVersion`` with the version it was computed from: the API server
answers 409 Conflict when the object moved on, and the caller re-reads and retries.

The steady state (nothing to do) is the hot path: it is a walk over the managed
leaves with no copying and no patch objects, which is what makes a no-op pass
cheaper than ``jsonpatch.make_patch`` of the same object against itself.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from typing import Any

import jsonpatch
import orjson

from eevee.engine.paths import ListKey, Path, assign, decode_path_set, find_index, flatten, get, pointer
from eevee.engine.render import MANAGED_FIELDS, DesiredChild, copy_json, managed_leaves

_MISSING = object()


def same(a: Any, b: Any) -> bool:
    """JSON equality: ``True`` is not ``1`` (Python's ``==`` says it is)."""
    if type(a) is not type(b):
        if isinstance(a, bool) or isinstance(b, bool):
            return False
        if not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
            return False
    return bool(a == b)


_NOT_CONTENT = ("apiVersion", "kind", "metadata", "status")


class Trimmed(dict):  # type: ignore[type-arg]
    """A child as the cache keeps it (see :func:`trim`): ``digest`` stands for its managed leaves."""

    __slots__ = ("digest",)
    digest: bytes


@functools.lru_cache(maxsize=64)
def _decoded(record: str) -> tuple[tuple[Path, ...], tuple[Path, ...]]:
    """A record decoded once while one child is worked on (the trimmed check, the whole object's
    check and the patch all read it); each child's record is its own (its owner's uid is in it)."""
    leaves, units = decode_path_set(record)
    return tuple(leaves), tuple(units)


def recorded_leaves(record: str) -> tuple[Path, ...]:
    """The leaves of a managed-fields record."""
    return _decoded(record)[0]


def leaves_digest(obj: Mapping[str, Any], leaves: tuple[Path, ...]) -> bytes:
    """What ``obj`` holds at ``leaves``, as 16 bytes: equal digests, equal values (an absent
    leaf differs from every value, ``true`` from ``1``)."""
    values = [[1, found] if (found := get(obj, path, _MISSING)) is not _MISSING else [0] for path in leaves]
    return hashlib.blake2b(orjson.dumps(values, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()


def trim(obj: dict[str, Any], keep: tuple[Path, ...]) -> dict[str, Any]:
    """A child as the cache keeps it, as controller-runtime's cache transforms slim what a
    controller caches: its identity, metadata and status, the fields in ``keep`` (what the rules
    read of it), and a digest of the leaves its managed-fields record names, which is all
    :func:`needs_patch` compares. The rest (most of a pod template, the server's defaults) is
    dropped: a patch is built from the whole object (the one the operator last wrote or read, if
    it has not moved since, else read anew). An object with no record (not written by this
    operator yet, to be adopted) is kept whole: adopting it reads all its fields."""
    record = ((obj.get("metadata") or {}).get("annotations") or {}).get(MANAGED_FIELDS)
    if not isinstance(record, str):
        return obj
    out = Trimmed({key: value for key, value in obj.items() if key in _NOT_CONTENT})
    for path in keep:
        found = get(obj, path, _MISSING)
        if found is not _MISSING:
            assign(out, path, found)
    out.digest = leaves_digest(obj, recorded_leaves(record))
    return out


def previously_managed(
    live: Mapping[str, Any], desired: DesiredChild | None = None, body: Mapping[str, Any] | None = None
) -> tuple[list[Path], list[Path]]:
    """The (leaves, units) recorded on ``live`` by the last write.

    An object with no record was not written by this operator (made by its predecessor,
    by Helm, by hand) and is being adopted: then everything in the top-level fields the
    rendering sets counts as managed, so whatever the rendering does not hold is removed
    and the object ends up exactly as rendered (createOnly fields stay as they are)."""
    text = (live.get("metadata", {}).get("annotations") or {}).get(MANAGED_FIELDS)
    if isinstance(text, str):
        leaves, units = _decoded(text)
        return list(leaves), list(units)
    if desired is None:
        return [], []
    leaves: list[Path] = []
    body = desired.body if body is None else body
    for top, value in live.items():
        if top in _NOT_CONTENT or top not in body:
            continue
        for path, _ in flatten(value, (top,)):
            if not any(path[: len(target)] == target or target[: len(path)] == path for target in desired.create_only):
                leaves.append(path)
    return leaves, []


def needs_patch(desired: DesiredChild, live: Mapping[str, Any], body: Mapping[str, Any] | None = None) -> bool:
    """Whether ``live`` differs from ``desired`` in any field we manage or used to manage
    (``body``: the desired body, when the caller has decoded it already)."""
    annotations = live.get("metadata", {}).get("annotations") or {}
    if annotations.get(MANAGED_FIELDS) != desired.managed:
        return True
    body = desired.body if body is None else body
    if isinstance(live, Trimmed):  # the same record: the same leaves, compared as digests
        if live.digest != leaves_digest(body, recorded_leaves(desired.managed)):
            return True
        return any(get(live, target, _MISSING) is _MISSING for target in desired.create_only)
    # Worked out here: only when the live object moved on.
    for path, value in managed_leaves(body, desired.targets):
        found = get(live, path, _MISSING)
        if found is _MISSING or not same(found, value):
            return True
    # createOnly fields are written when absent (a token under a new key), never overwritten.
    return any(get(live, target, _MISSING) is _MISSING for target in desired.create_only)


def managed_patch(
    desired: DesiredChild, live: Mapping[str, Any], body: Mapping[str, Any] | None = None
) -> jsonpatch.JsonPatch | None:
    """The JSON patch from ``live`` to ``desired`` over managed fields, or None when in sync
    (``body``: the desired body, when the caller has decoded it already; it is decoded once)."""
    body = desired.body if body is None else body
    if not needs_patch(desired, live, body):
        return None
    if isinstance(live, Trimmed):
        raise ValueError("a patch is built from the whole live object, not the cache's trimmed copy")
    work: dict[str, Any] = copy_json(dict(live))
    ops: list[dict[str, Any]] = []
    version = live.get("metadata", {}).get("resourceVersion")
    if version is not None:
        ops.append({"op": "replace", "path": "/metadata/resourceVersion", "value": version})

    # Remove what the last write managed and this rendering no longer holds at all
    # (createOnly fields are still in the body, so they are never removed).
    leaves, units = previously_managed(live, desired, body)
    wanted = managed_leaves(body, desired.targets)
    for path in [*units, *leaves]:
        if get(body, path, _MISSING) is _MISSING:
            _remove(work, path, ops, body)

    # Taking over a child another of the resource's references controlled (the BackupSchedule
    # that made a module's CronJob under the eevee operator): its controller reference goes.
    for uid in desired.adopt_from:
        _remove(work, ("metadata", "ownerReferences", ListKey("uid", uid)), ops, body)

    for path, value in wanted:
        _set(work, path, value, body, ops)
    for target in desired.create_only:
        if get(work, target, _MISSING) is _MISSING:
            _set(work, target, get(body, target), body, ops)
    return jsonpatch.JsonPatch(ops)


def _remove(work: dict[str, Any], path: Path, ops: list[dict[str, Any]], body: Mapping[str, Any]) -> None:
    """Remove a leaf we no longer render, then any map or keyed item it leaves empty."""
    # Dropping the key field of a list item means the whole item is no longer ours
    # (with whatever defaults the server put in it).
    if len(path) > 1 and isinstance(path[-2], ListKey) and path[-2].field == path[-1]:
        path = path[:-1]
    parent_path, last = path[:-1], path[-1]
    parent = get(work, parent_path, _MISSING)
    if isinstance(last, ListKey):
        if not isinstance(parent, list) or find_index(parent, last) < 0:
            return
    elif not isinstance(parent, dict) or last not in parent:
        return
    _remove_node(work, path, ops)
    # Prune what became empty, up to the first ancestor that is still rendered.
    while parent_path and get(body, parent_path, _MISSING) is _MISSING:
        node = get(work, parent_path, _MISSING)
        owner = parent_path[-1]
        empty_item = isinstance(owner, ListKey) and isinstance(node, dict) and set(node) <= {owner.field}
        if not (node == {} or node == [] or empty_item):
            break
        _remove_node(work, parent_path, ops)
        parent_path = parent_path[:-1]


def _remove_node(work: dict[str, Any], path: Path, ops: list[dict[str, Any]]) -> None:
    where = pointer(work, path)
    if where is None:
        return
    ops.append({"op": "remove", "path": where})
    parent = get(work, path[:-1])
    last = path[-1]
    if isinstance(last, ListKey):
        del parent[find_index(parent, last)]
    else:
        del parent[last]


def _set(work: dict[str, Any], path: Path, value: Any, body: Mapping[str, Any], ops: list[dict[str, Any]]) -> None:
    node: Any = work
    for depth, segment in enumerate(path):
        prefix = path[: depth + 1]
        if isinstance(segment, ListKey):
            if not isinstance(node, list):
                break  # replaced below, with its parent
            index = find_index(node, segment)
            if index < 0:
                item = copy_json(get(body, prefix))
                ops.append({"op": "add", "path": f"{pointer(work, path[:depth])}/-", "value": item})
                node.append(copy_json(item))
                return
            node = node[index]
            continue
        if not isinstance(node, dict):
            break
        if segment not in node:
            subtree = copy_json(get(body, prefix))
            ops.append({"op": "add", "path": pointer(work, prefix), "value": subtree})
            node[segment] = copy_json(subtree)
            return
        if depth == len(path) - 1:
            if not same(node[segment], value):
                ops.append({"op": "replace", "path": pointer(work, prefix), "value": copy_json(value)})
                node[segment] = copy_json(value)
            return
        node = node[segment]
    else:
        return
    # A node of the wrong type sits on the way (a scalar where a map belongs):
    # replace it with what we render there.
    prefix = path[:depth]
    subtree = copy_json(get(body, prefix))
    ops.append({"op": "replace", "path": pointer(work, prefix), "value": subtree})
    parent = get(work, prefix[:-1])
    last = prefix[-1]
    if isinstance(last, ListKey):
        parent[find_index(parent, last)] = copy_json(subtree)
    else:
        parent[last] = copy_json(subtree)
