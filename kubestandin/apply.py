"""Server-side apply (``application/apply-patch+yaml``), as far as the stand-in keeps it.

An apply sends the whole configuration a field manager wants; the server merges it into
the live object and remembers which fields that manager set. Applying again without a
field the manager set before removes that field, unless another manager also set it.
Two managers applying different values to one field conflict (409) unless ``force``
moves the field to the newcomer. Lists of maps with a merge key (containers, env,
volumes...) are merged item by item; other lists are atomic.

Where this is thinner than kube-apiserver: only apply requests record ownership (a PUT
or another patch type does not take fields from an applier), and ownership is kept on
the side rather than shown in ``metadata.managedFields``.
"""

from __future__ import annotations

import copy
from typing import Any

from kubestandin.patching import apply_strategic_merge_patch, merge_key

# A field path: map keys as strings, list items with a merge key as ("key", value).
Step = str | tuple[str, Any]
Path = tuple[Step, ...]

IDENTITY = {"apiVersion", "kind"}
SERVER_OWNED = {
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
}


class ApplyConflict(Exception):
    def __init__(self, conflicts: list[tuple[str, Path]]) -> None:
        self.conflicts = conflicts
        super().__init__(message(conflicts))


def message(conflicts: list[tuple[str, Path]]) -> str:
    lines = [f'conflict with "{manager}": {render(path)}' for manager, path in conflicts]
    noun = "conflict" if len(lines) == 1 else "conflicts"
    return f"Apply failed with {len(lines)} {noun}: " + "; ".join(lines)


def render(path: Path) -> str:
    out = ""
    for step in path:
        out += f"[{step[0]}={step[1]}]" if isinstance(step, tuple) else f".{step}"
    return out


def fields(config: Any, prefix: Path = ()) -> set[Path]:
    """The field paths an applied configuration sets: leaves, plus each keyed list item."""
    found: set[Path] = set()
    if not isinstance(config, dict):
        return {prefix}
    for name, value in config.items():
        if not prefix and name in IDENTITY:
            continue
        if prefix == ("metadata",) and name in SERVER_OWNED:
            continue
        path = (*prefix, name)
        key = merge_key(name, value) if isinstance(value, list) else None
        if isinstance(value, dict) and value:
            found |= fields(value, path)
        elif key is not None and value and all(isinstance(item, dict) and key in item for item in value):
            for item in value:
                item_path = (*path, (key, item[key]))
                found.add(item_path)
                # the key itself is implied by the item's own path
                found |= fields({k: v for k, v in item.items() if k != key}, item_path)
        else:
            found.add(path)
    return found


def _get(obj: Any, path: Path) -> tuple[bool, Any]:
    current = obj
    for step in path:
        if isinstance(step, tuple):
            if not isinstance(current, list):
                return False, None
            current = next((i for i in current if isinstance(i, dict) and i.get(step[0]) == step[1]), None)
            if current is None:
                return False, None
        else:
            if not isinstance(current, dict) or step not in current:
                return False, None
            current = current[step]
    return True, current


def _remove(obj: Any, path: Path) -> None:
    found, parent = _get(obj, path[:-1])
    if not found:
        return
    last = path[-1]
    if isinstance(last, tuple) and isinstance(parent, list):
        parent[:] = [i for i in parent if not (isinstance(i, dict) and i.get(last[0]) == last[1])]
    elif isinstance(last, str) and isinstance(parent, dict):
        parent.pop(last, None)


def apply(
    live: dict[str, Any],
    config: dict[str, Any],
    manager: str,
    owners: dict[str, set[Path]],
    *,
    force: bool = False,
) -> tuple[dict[str, Any], dict[str, set[Path]]]:
    """(merged object, new ownership) for ``manager`` applying ``config`` to ``live``.

    ``owners`` maps each earlier applier to the paths it set; it is not modified.
    Raises ApplyConflict when another manager set one of these fields to another value, and
    PatchError for a keyed list item without its key.
    """
    wanted = fields(config)
    others = {name: paths for name, paths in owners.items() if name != manager}
    conflicts: list[tuple[str, Path]] = []
    for name, paths in sorted(others.items()):
        for path in sorted(wanted & paths, key=render):
            if isinstance(path[-1], tuple):
                continue  # sharing a keyed item is fine; its fields are compared on their own
            _, new_value = _get(config, path)
            found, old_value = _get(live, path)
            if found and old_value != new_value:
                conflicts.append((name, path))
    if conflicts and not force:
        raise ApplyConflict(conflicts)
    taken = {path for _, path in conflicts}
    merged = copy.deepcopy(live)
    still_owned = set().union(*others.values()) if others else set()
    for path in sorted(owners.get(manager, set()) - wanted, key=len, reverse=True):
        if path not in still_owned:
            _remove(merged, path)
    # Merging a configuration into the live object is what a strategic merge patch does
    # (maps merge, keyed lists merge item by item, other lists are replaced).
    merged = apply_strategic_merge_patch(merged, config)
    new_owners = {name: paths - taken for name, paths in others.items()}
    new_owners[manager] = wanted
    return merged, {name: paths for name, paths in new_owners.items() if paths}
