"""The three patch types the API server accepts, applied as it applies them.

- ``application/json-patch+json`` (RFC 6902), through the ``jsonpatch`` library; a
  failed ``test`` or a ``remove`` of a missing path is 422 Invalid.
- ``application/merge-patch+json`` (RFC 7386): maps merge, ``null`` deletes, lists replace.
- ``application/strategic-merge-patch+json``: like a merge patch, but lists of
  containers, env vars, ports, volumes and mounts merge item by item on their merge
  key, with the directives kubectl sends. Built-in kinds only (custom resources: 415).
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer


class PatchError(ValueError):
    """A patch that cannot be applied (the server answers 422)."""


# Merge keys of the built-in list fields kubectl patches (by field name).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "imagePullSecrets": "name",
    "ownerReferences": "uid",
    "conditions": "type",
    "hostAliases": "ip",
}
MERGE_PRIMITIVE_LISTS = {"finalizers"}


def apply_json_patch(document: dict[str, Any], operations: Any) -> dict[str, Any]:
    if not isinstance(operations, list):
        raise PatchError("a JSON patch is a list of operations")
    try:
        return jsonpatch.apply_patch(document, operations, in_place=False)
    except jsonpatch.JsonPatchTestFailed as error:
        raise PatchError(f"the test operation failed: {error}") from None
    except (jsonpatch.JsonPatchConflict, jsonpointer.JsonPointerException) as error:
        raise PatchError(f"the patch cannot be applied: {error}") from None
    except jsonpatch.InvalidJsonPatch as error:
        raise PatchError(f"invalid JSON patch: {error}") from None


def apply_merge_patch(document: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(document) if isinstance(document, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def apply_strategic_merge_patch(document: Any, patch: Any, field: str = "") -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = dict(document) if isinstance(document, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            target = key.split("/", 1)[1]
            current = result.get(target) or []
            result[target] = [item for item in current if item not in (value or [])]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        else:
            merged = apply_strategic_merge_patch(result.get(key), value, key)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":
        sample = next((i for i in items if isinstance(i, dict)), {})
        return "containerPort" if "containerPort" in sample else "port"
    return MERGE_KEYS.get(field)


def _merge_list(field: str, current: Any, patch: list[Any]) -> list[Any]:
    current = list(current) if isinstance(current, list) else []
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    if field in MERGE_PRIMITIVE_LISTS:
        return current + [copy.deepcopy(i) for i in patch if i not in current]
    key = merge_key(field, patch + current)
    if key is None or not all(isinstance(i, dict) for i in patch):
        return copy.deepcopy(patch)
    result = [copy.deepcopy(i) for i in current]
    for item in patch:
        if key not in item:
            raise PatchError(f"map: {item} does not contain declared merge key: {key}")
        index = next((n for n, old in enumerate(result) if isinstance(old, dict) and old.get(key) == item[key]), -1)
        if item.get("$patch") == "delete":
            if index >= 0:
                del result[index]
            continue
        if index >= 0:
            result[index] = apply_strategic_merge_patch(result[index], item, field)
        else:
            result.append(apply_strategic_merge_patch({}, item, field))
    return result
