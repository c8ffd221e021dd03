"""Patch flavours and server-side-apply field tracking for the API emulator.

Approximations (documented):
* Strategic merge patch is a JSON merge patch, except that lists under the well-known
  associative keys (containers, ports, env, volumes, ...) are merged by their key (``name``,
  or ``containerPort``/``port`` for ports without names), ``metadata.finalizers`` is merged as
  a set, and ``$patch: delete``/``replace`` directives are honoured; other ``$...`` directives
  are dropped.
* Server-side apply tracks, per object and field manager, the set of leaf paths it applied;
  lists are atomic except the associative ones above (merged by key).
"""
from __future__ import annotations

import copy
import json
from typing import Any

ASSOCIATIVE_LISTS = {
    'containers', 'initContainers', 'ephemeralContainers', 'ports', 'env', 'volumes',
    'volumeMounts', 'volumeDevices', 'imagePullSecrets', 'conditions', 'hostAliases',
}
SET_LISTS = {'finalizers'}


class PatchError(Exception):
    """A malformed or failing patch (422 for failed tests, 400 for malformed ones)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (returns a new value)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, val in patch.items():
        if val is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), val)
    return result


def _item_key(item: Any, list_name: str) -> tuple[str, Any] | None:
    if not isinstance(item, dict):
        return None
    if 'name' in item:
        return ('name', item['name'])
    if list_name == 'conditions' and 'type' in item:
        return ('type', item['type'])
    for k in ('containerPort', 'port', 'mountPath', 'ip'):
        if k in item:
            return (k, item[k])
    return None


def _is_assoc(name: str | None, items: list[Any]) -> bool:
    return name in ASSOCIATIVE_LISTS and all(_item_key(i, name) is not None for i in items)


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith('$')}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


def strategic_merge_patch(target: Any, patch: Any, name: str | None = None) -> Any:
    if not isinstance(patch, dict):
        if isinstance(patch, list) and isinstance(target, list):
            return _strategic_list(target, patch, name)
        return _strip_directives(copy.deepcopy(patch))
    if patch.get('$patch') == 'replace':
        return _strip_directives({k: v for k, v in patch.items() if k != '$patch'})
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, val in patch.items():
        if key.startswith('$deleteFromPrimitiveList/'):
            field = key.split('/', 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in (val or [])]
            continue
        if key.startswith('$'):
            continue
        if val is None:
            result.pop(key, None)
        elif isinstance(val, list) and isinstance(result.get(key), list):
            result[key] = _strategic_list(result[key], val, key)
        else:
            result[key] = strategic_merge_patch(result.get(key), val, key)
    return result


def _strategic_list(target: list[Any], patch: list[Any], name: str | None) -> list[Any]:
    if name in SET_LISTS:
        return list(target) + [v for v in patch if v not in target]
    if not (_is_assoc(name, target) and _is_assoc(name, [p for p in patch if isinstance(p, dict)])):
        return _strip_directives(copy.deepcopy(patch))
    result = copy.deepcopy(target)
    for item in patch:
        key = _item_key(item, name or '')
        idx = next((i for i, t in enumerate(result) if _item_key(t, name or '') == key), None)
        if item.get('$patch') == 'delete':
            if idx is not None:
                result.pop(idx)
        elif idx is None:
            result.append(_strip_directives(item))
        else:
            result[idx] = strategic_merge_patch(result[idx], item, None)
    return result


# ----------------------------------------------------------------------------------------------
# RFC 6902 JSON patch.

def _pointer(path: str) -> list[str]:
    if path == '':
        return []
    if not path.startswith('/'):
        raise PatchError(f'invalid JSON pointer: {path!r}', 400)
    return [p.replace('~1', '/').replace('~0', '~') for p in path[1:].split('/')]


def _walk(doc: Any, parts: list[str], path: str) -> Any:
    for p in parts:
        if isinstance(doc, dict) and p in doc:
            doc = doc[p]
        elif isinstance(doc, list) and p.isdigit() and int(p) < len(doc):
            doc = doc[int(p)]
        else:
            raise PatchError(f'doc is missing path: "{path}": missing value')
    return doc


def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise PatchError('json patch must be a list of operations', 400)
    doc = copy.deepcopy(doc)
    for op in ops:
        kind, path = op.get('op'), op.get('path', '')
        parts = _pointer(path)

        def _add(value: Any, parts: list[str] = parts, path: str = path) -> None:
            nonlocal doc
            if not parts:
                doc = value
                return
            parent = _walk(doc, parts[:-1], path)
            last = parts[-1]
            if isinstance(parent, list):
                if last == '-':
                    parent.append(value)
                elif last.isdigit() and int(last) <= len(parent):
                    parent.insert(int(last), value)
                else:
                    raise PatchError(f'add operation does not apply: doc is missing path: "{path}"')
            elif isinstance(parent, dict):
                parent[last] = value
            else:
                raise PatchError(f'doc is missing path: "{path}"')

        def _remove(parts: list[str] = parts, path: str = path) -> Any:
            parent = _walk(doc, parts[:-1], path)
            last = parts[-1]
            if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
                return parent.pop(int(last))
            if isinstance(parent, dict) and last in parent:
                return parent.pop(last)
            raise PatchError(f'remove operation does not apply: doc is missing path: "{path}"')

        if kind == 'add':
            _add(copy.deepcopy(op.get('value')))
        elif kind == 'remove':
            _remove()
        elif kind == 'replace':
            _walk(doc, parts, path)
            if parts:
                _remove()
            _add(copy.deepcopy(op.get('value')))
        elif kind == 'test':
            if _walk(doc, parts, path) != op.get('value'):
                raise PatchError(f'testing value {path} failed')
        elif kind in ('move', 'copy'):
            from_parts = _pointer(op.get('from', ''))
            value = copy.deepcopy(_walk(doc, from_parts, op.get('from', '')))
            if kind == 'move':
                _remove(from_parts, op.get('from', ''))
            _add(value)
        else:
            raise PatchError(f'Unexpected kind: {kind}', 400)
    return doc


# ----------------------------------------------------------------------------------------------
# Server-side apply: field sets.

Path = tuple[Any, ...]


def field_paths(value: Any, prefix: Path = (), name: str | None = None) -> set[Path]:
    """The leaf paths of an applied configuration (associative lists keyed by their item keys)."""
    result: set[Path] = set()
    if isinstance(value, dict) and value:
        for k, v in value.items():
            result |= field_paths(v, prefix + (k,), k)
    elif isinstance(value, list) and value and _is_assoc(name, value):
        for item in value:
            key = _item_key(item, name or '')
            sub = {k: v for k, v in item.items()}
            result.add(prefix + (key,))
            result |= field_paths(sub, prefix + (key,), None)
    else:
        result.add(prefix)
    return result


def get_path(obj: Any, path: Path) -> Any:
    for p in path:
        if isinstance(p, tuple) and isinstance(obj, list):
            obj = next((i for i in obj if _item_key(i, '') == p or (isinstance(i, dict) and i.get(p[0]) == p[1])), None)
        elif isinstance(obj, dict):
            obj = obj.get(p)
        else:
            return None
        if obj is None:
            return None
    return obj


def remove_path(obj: Any, path: Path) -> None:
    """Remove a leaf and any parents that become empty because of it."""
    if not path:
        return
    parent = get_path(obj, path[:-1]) if len(path) > 1 else obj
    last = path[-1]
    if isinstance(last, tuple) and isinstance(parent, list):
        for i, item in enumerate(parent):
            if isinstance(item, dict) and item.get(last[0]) == last[1]:
                parent.pop(i)
                break
    elif isinstance(parent, dict):
        parent.pop(last, None)
    else:
        return
    if len(path) > 1 and parent in ({}, []):
        remove_path(obj, path[:-1])


def apply_merge(target: Any, config: Any, name: str | None = None) -> Any:
    """Merge an applied configuration into the live object (lists atomic unless associative)."""
    if isinstance(config, dict):
        result = copy.deepcopy(target) if isinstance(target, dict) else {}
        for k, v in config.items():
            result[k] = apply_merge(result.get(k), v, k)
        return result
    if isinstance(config, list) and isinstance(target, list) and _is_assoc(name, config) and _is_assoc(name, target):
        result = copy.deepcopy(target)
        for item in config:
            key = _item_key(item, name or '')
            idx = next((i for i, t in enumerate(result) if _item_key(t, name or '') == key), None)
            if idx is None:
                result.append(copy.deepcopy(item))
            else:
                result[idx] = apply_merge(result[idx], item, None)
        return result
    return copy.deepcopy(config)


def fields_v1(paths: set[Path]) -> dict[str, Any]:
    """A FieldsV1-like nested structure: {"f:spec": {"f:replicas": {}}} ({"k:{...}"} for list items)."""
    root: dict[str, Any] = {}
    for path in sorted(paths, key=lambda p: [str(x) for x in p]):
        node = root
        for p in path:
            key = f'k:{json.dumps({p[0]: p[1]}, separators=(",", ":"))}' if isinstance(p, tuple) else f'f:{p}'
            node = node.setdefault(key, {})
    return root
