"""Query helpers for the API emulator: label/field selectors, a tiny JSONPath, human durations."""
from __future__ import annotations

import datetime
import json
import re
from typing import Any

import kmock

from sparkbook.testing._resources import ResourceDef


def _err(status: int, reason: str, message: str) -> kmock.KubernetesError:
    return kmock.KubernetesError(status=status, reason=reason, message=message)


def human_duration(seconds: float) -> str:
    """Like k8s.io/apimachinery/pkg/util/duration.HumanDuration (what kubectl shows as AGE)."""
    s = int(seconds)
    if s < -1:
        return '<invalid>'
    if s < 0:
        return '0s'
    if s < 120:
        return f'{s}s'
    m = s // 60
    if m < 10:
        return f'{m}m' if s % 60 == 0 else f'{m}m{s % 60}s'
    if m < 180:
        return f'{m}m'
    h = m // 60
    if h < 8:
        return f'{h}h' if m % 60 == 0 else f'{h}h{m % 60}m'
    if h < 48:
        return f'{h}h'
    if h < 192:
        return f'{h // 24}d' if h % 24 == 0 else f'{h // 24}d{h % 24}h'
    if h < 24 * 365 * 2:
        return f'{h // 24}d'
    if h < 24 * 365 * 8:
        return f'{h // 24 // 365}y{(h // 24) % 365}d'
    return f'{h // 24 // 365}y'


def _age(ts: str | None) -> str | None:
    if not ts:
        return None
    try:
        t = datetime.datetime.strptime(ts, '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return ts
    return human_duration((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds())


_JP_TOKEN = re.compile(r"""\.\.?(?P<field>[A-Za-z0-9_\-/]+)|\[\?\(@\.(?P<fk>[\w.\-]+)\s*(?P<fop>==|!=)\s*['"](?P<fv>[^'"]*)['"]\)\]|\[(?P<idx>-?\d+|\*)\]|\[['"](?P<key>[^'"]+)['"]\]|\.\*""")


def jsonpath(obj: Any, expr: str) -> list[Any]:
    """A tiny JSONPath: dotted fields, [n], [*], ['key'] and [?(@.k=="v")] filters."""
    expr = expr.strip()
    if expr.startswith('{') and expr.endswith('}'):
        expr = expr[1:-1]
    expr = expr.lstrip('$')
    nodes = [obj]
    for m in _JP_TOKEN.finditer(expr):
        out: list[Any] = []
        for node in nodes:
            if m.group('field') is not None or m.group('key') is not None:
                key = m.group('field') if m.group('field') is not None else m.group('key')
                if isinstance(node, dict) and key in node:
                    out.append(node[key])
            elif m.group('fk') is not None:
                items = node if isinstance(node, list) else []
                for item in items:
                    val = item
                    for p in m.group('fk').split('.'):
                        val = val.get(p) if isinstance(val, dict) else None
                    sval = val if isinstance(val, str) else json.dumps(val)
                    if (sval == m.group('fv')) == (m.group('fop') == '=='):
                        out.append(item)
            elif m.group('idx') is not None:
                if isinstance(node, list):
                    if m.group('idx') == '*':
                        out.extend(node)
                    elif -len(node) <= int(m.group('idx')) < len(node):
                        out.append(node[int(m.group('idx'))])
            else:  # .*
                out.extend(node.values() if isinstance(node, dict) else node if isinstance(node, list) else [])
        nodes = out
    return nodes


# ----------------------------------------------------------------------------------------------
# Selectors.

_LABEL_TERM = re.compile(r'^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9_./\-]+)\s*(?:(?P<op>==|=|!=|\s+in\s+|\s+notin\s+)\s*(?P<val>\([^)]*\)|[A-Za-z0-9_.\-]*))?\s*$')


def parse_label_selector(sel: str | None) -> list[tuple[str, str, set[str]]]:
    if not sel:
        return []
    terms, depth, cur = [], 0, ''
    for ch in sel:
        depth += ch == '('
        depth -= ch == ')'
        if ch == ',' and depth == 0:
            terms.append(cur)
            cur = ''
        else:
            cur += ch
    terms.append(cur)
    result = []
    for term in terms:
        if not term.strip():
            continue
        m = _LABEL_TERM.match(term)
        if not m:
            raise _err(400, 'BadRequest', f'unable to parse requirement: invalid label selector: {term!r}')
        key, op, val = m.group('key'), (m.group('op') or '').strip(), m.group('val') or ''
        if m.group('neg'):
            result.append((key, '!exists', set()))
        elif not op:
            result.append((key, 'exists', set()))
        elif op in ('in', 'notin'):
            result.append((key, op, {v.strip() for v in val.strip('()').split(',') if v.strip()}))
        else:
            result.append((key, '!=' if op == '!=' else '=', {val}))
    return result


def match_labels(selector: list[tuple[str, str, set[str]]], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    for key, op, vals in selector:
        present = key in labels
        if op == 'exists' and not present:
            return False
        if op == '!exists' and present:
            return False
        if op in ('=', 'in') and (not present or labels[key] not in vals):
            return False
        if op in ('!=', 'notin') and present and labels[key] in vals:
            return False
    return True


_EXTRA_FIELDS = {
    ('', 'pods'): {'status.phase', 'spec.nodeName', 'spec.restartPolicy', 'spec.schedulerName',
                   'spec.serviceAccountName', 'status.podIP', 'status.nominatedNodeName'},
    ('', 'events'): {'involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name',
                     'involvedObject.uid', 'involvedObject.apiVersion', 'involvedObject.resourceVersion',
                     'involvedObject.fieldPath', 'reason', 'reportingComponent', 'source', 'type'},
    ('', 'secrets'): {'type'},
    ('', 'namespaces'): {'status.phase'},
}


def parse_field_selector(rd: ResourceDef, sel: str | None) -> list[tuple[str, str, str]]:
    if not sel:
        return []
    allowed = {'metadata.name', 'metadata.namespace'} | _EXTRA_FIELDS.get((rd.group, rd.plural), set())
    result = []
    for term in sel.split(','):
        if not term.strip():
            continue
        m = re.match(r'^\s*([\w.\-]+)\s*(==|!=|=)\s*(.*?)\s*$', term)
        if not m:
            raise _err(400, 'BadRequest', f'invalid field selector: {term!r}')
        if m.group(1) not in allowed:
            raise _err(400, 'BadRequest', f'field label not supported: {m.group(1)}')
        result.append((m.group(1), '!=' if m.group(2) == '!=' else '=', m.group(3)))
    return result


def match_fields(selector: list[tuple[str, str, str]], obj: dict[str, Any]) -> bool:
    for path, op, val in selector:
        cur: Any = obj
        for p in path.split('.'):
            cur = cur.get(p) if isinstance(cur, dict) else None
        sval = '' if cur is None else str(cur)
        if (sval == val) != (op == '='):
            return False
    return True
