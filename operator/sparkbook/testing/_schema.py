"""Structural-schema handling for custom resources: pruning, defaulting, validation and CEL rules.

The messages mimic the real kube-apiserver's field errors, e.g.::

    spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1
    spec.mode: Unsupported value: "x": supported values: "a", "b"
    spec: Invalid value: min must be <= max
    <nil>: Invalid value: metadata.name must be ...   (a rule at the root)

and, as there, a cause's message is that text without its leading "field: ".
"""
from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import celpy

# celpy logs every evaluation step at DEBUG (with huge reprs): costly when a test enables DEBUG logging.
logging.getLogger('celpy').setLevel(logging.WARNING)

_MISSING = object()
_ROOT_FIELDS = ('apiVersion', 'kind', 'metadata')


class FieldError:
    __slots__ = ('field', 'reason', 'message', 'detail')

    def __init__(self, field: str, reason: str, message: str, detail: str = '') -> None:
        self.field = field
        self.reason = reason
        self.message = message   # the full "field: Kind of error: detail" text
        self.detail = detail     # a CEL rule's own message, when the error comes from one

    def cause(self) -> dict[str, str]:
        # kube-apiserver's causes carry the error body (field.Error.ErrorBody), the field apart.
        body = self.message.removeprefix(f'{self.field}: ')
        return {'reason': self.reason, 'message': body, 'field': self.field}


# Errors after which kube-apiserver runs no CEL rule at all (apiextensions-apiserver
# pkg/registry/customresource/strategy.go, hasBlockingErr): the rules' cost estimates and types
# assume that the schema's bounds and types hold.
_BLOCKING = frozenset({'FieldValueNotSupported', 'FieldValueRequired', 'FieldValueTooLong', 'FieldValueTooMany',
                       'FieldValueTypeInvalid'})
_NOT_CHECKED = FieldError('<nil>', 'FieldValueInvalid', '<nil>: Invalid value: null: some validation rules were not '
                          'checked because the object was invalid; correct the existing errors to complete validation')


def _fmt(value: Any) -> str:
    """How Go's field.Invalid renders values: strings quoted, numbers raw."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if value is None:
        return 'null'
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, separators=(',', ':'))


def _type_name(value: Any) -> str:
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'boolean'
    if isinstance(value, int):
        return 'integer'
    if isinstance(value, float):
        return 'number'
    if isinstance(value, str):
        return 'string'
    if isinstance(value, list):
        return 'array'
    return 'object'


def _join(path: str, key: str) -> str:
    return f'{path}.{key}' if path else key


# ----------------------------------------------------------------------------------------------
# Pruning & defaulting.

def prune(obj: Any, schema: dict[str, Any], path: str = '', *, root: bool = True) -> list[str]:
    """Remove fields not declared in the schema (in place); return the dotted paths removed."""
    removed: list[str] = []
    if isinstance(obj, dict):
        if schema.get('x-kubernetes-int-or-string'):
            return removed
        props = schema.get('properties')
        addl = schema.get('additionalProperties')
        preserve = bool(schema.get('x-kubernetes-preserve-unknown-fields'))
        embedded = bool(schema.get('x-kubernetes-embedded-resource'))
        for key in list(obj):
            if (root or embedded) and key in _ROOT_FIELDS:
                if key == 'metadata' or (props and key in props):
                    continue
                continue
            if props is not None and key in props:
                removed += prune(obj[key], props[key], _join(path, key), root=False)
            elif isinstance(addl, dict):
                removed += prune(obj[key], addl, _join(path, key), root=False)
            elif addl is True or preserve:
                continue
            else:
                removed.append(_join(path, key))
                del obj[key]
    elif isinstance(obj, list) and isinstance(schema.get('items'), dict):
        for i, item in enumerate(obj):
            removed += prune(item, schema['items'], f'{path}[{i}]', root=False)
    return removed


def apply_defaults(obj: Any, schema: dict[str, Any]) -> None:
    """Apply `default:` values in place wherever the parent object exists (like the real server)."""
    if isinstance(obj, dict):
        props = schema.get('properties') or {}
        for key, sub in props.items():
            if key not in obj and 'default' in sub:
                obj[key] = copy.deepcopy(sub['default'])
            if key in obj and isinstance(sub, dict):
                apply_defaults(obj[key], sub)
        addl = schema.get('additionalProperties')
        if isinstance(addl, dict):
            for key, val in obj.items():
                if key not in props:
                    apply_defaults(val, addl)
    elif isinstance(obj, list) and isinstance(schema.get('items'), dict):
        for item in obj:
            apply_defaults(item, schema['items'])


# ----------------------------------------------------------------------------------------------
# Validation.

def validate(obj: Any, schema: dict[str, Any], *, old: Any = _MISSING) -> list[FieldError]:
    """Validate an entire custom resource; `old` is the previous object for transition rules."""
    errors: list[FieldError] = []
    body = {k: v for k, v in obj.items() if k not in _ROOT_FIELDS} if isinstance(obj, dict) else obj
    # Root-level CEL rules see metadata.name and metadata.generateName, and nothing else of it.
    if isinstance(obj, dict) and isinstance(obj.get('metadata'), dict):
        visible = {k: obj['metadata'][k] for k in ('name', 'generateName') if k in obj['metadata']}
        body['metadata'] = visible
    sch = dict(schema)
    sch['properties'] = {k: v for k, v in (schema.get('properties') or {}).items() if k not in _ROOT_FIELDS}
    sch['required'] = [r for r in schema.get('required') or [] if r not in _ROOT_FIELDS]
    oldbody = _MISSING
    if isinstance(old, dict):
        oldbody = {k: v for k, v in old.items() if k not in _ROOT_FIELDS}
        if isinstance(old.get('metadata'), dict):
            oldbody['metadata'] = {k: old['metadata'][k] for k in ('name', 'generateName') if k in old['metadata']}
    _validate(body, sch, '', errors, oldbody)
    # As kube-apiserver: the schema first, then every CEL rule of the object (also where the schema
    # found a pattern or a minimum broken), unless an error above makes them all unsafe to run.
    if _has_cel(sch):
        if any(e.reason in _BLOCKING for e in errors):
            errors.append(_NOT_CHECKED)
        else:
            _walk_cel(body, sch, '', errors, oldbody)
    return errors


def _has_cel(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    if schema.get('x-kubernetes-validations'):
        return True
    subs = list((schema.get('properties') or {}).values()) + [schema.get('items'), schema.get('additionalProperties')]
    return any(_has_cel(sub) for sub in subs)


def _properties(value: dict[str, Any], schema: dict[str, Any], path: str,
                old: Any) -> Iterator[tuple[Any, dict[str, Any], str, Any]]:
    """Each member of an object with the schema that covers it (a property's, or
    additionalProperties'), its path and its old value."""
    props = schema.get('properties') or {}
    addl = schema.get('additionalProperties')
    for key, sub in value.items():
        sub_schema = props.get(key) if key in props else (addl if isinstance(addl, dict) else None)
        if sub_schema is not None:
            yield sub, sub_schema, _join(path, key), old.get(key, _MISSING) if isinstance(old, dict) else _MISSING


def _walk_cel(value: Any, schema: dict[str, Any], path: str, errors: list[FieldError], old: Any) -> None:
    """Every CEL rule where its node has a value: the node's own rules, then its children's."""
    if value is None or not isinstance(schema, dict):
        return
    if schema.get('x-kubernetes-validations'):
        _validate_cel(value, schema, path, errors, old)
    if isinstance(value, dict) and not schema.get('x-kubernetes-int-or-string'):
        for sub, sub_schema, sub_path, sub_old in _properties(value, schema, path, old):
            _walk_cel(sub, sub_schema, sub_path, errors, sub_old)
    elif isinstance(value, list) and isinstance(schema.get('items'), dict):
        for i, item in enumerate(value):
            _walk_cel(item, schema['items'], f'{path}[{i}]', errors, _MISSING)


def _validate(value: Any, schema: dict[str, Any], path: str, errors: list[FieldError], old: Any) -> None:
    shown = path or '<root>'
    if value is None:
        if not schema.get('nullable'):
            typ = schema.get('type')
            if typ:
                errors.append(FieldError(shown, 'FieldValueTypeInvalid',
                                         f'{shown}: Invalid value: "null": {shown} in body must be of type {typ}: "null"'))
        return

    if schema.get('x-kubernetes-int-or-string'):
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            errors.append(FieldError(shown, 'FieldValueTypeInvalid',
                                     f'{shown}: Invalid value: "{_type_name(value)}": {shown} in body must be of type integer-or-string: "{_type_name(value)}"'))
            return
    else:
        typ = schema.get('type')
        actual = _type_name(value)
        ok = (typ is None or typ == actual or (typ == 'number' and actual == 'integer'))
        if not ok:
            errors.append(FieldError(shown, 'FieldValueTypeInvalid',
                                     f'{shown}: Invalid value: "{actual}": {shown} in body must be of type {typ}: "{actual}"'))
            return

    if 'enum' in schema and value not in schema['enum']:
        supported = ', '.join(_fmt(v) for v in schema['enum'])
        errors.append(FieldError(shown, 'FieldValueNotSupported',
                                 f'{shown}: Unsupported value: {_fmt(value)}: supported values: {supported}'))

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if 'minimum' in schema:
            lo = schema['minimum']
            if schema.get('exclusiveMinimum') is True and value <= lo:
                errors.append(FieldError(shown, 'FieldValueInvalid', f'{shown}: Invalid value: {_fmt(value)}: {shown} in body should be greater than {lo}'))
            elif value < lo:
                errors.append(FieldError(shown, 'FieldValueInvalid', f'{shown}: Invalid value: {_fmt(value)}: {shown} in body should be greater than or equal to {lo}'))
        if 'maximum' in schema:
            hi = schema['maximum']
            if schema.get('exclusiveMaximum') is True and value >= hi:
                errors.append(FieldError(shown, 'FieldValueInvalid', f'{shown}: Invalid value: {_fmt(value)}: {shown} in body should be less than {hi}'))
            elif value > hi:
                errors.append(FieldError(shown, 'FieldValueInvalid', f'{shown}: Invalid value: {_fmt(value)}: {shown} in body should be less than or equal to {hi}'))

    if isinstance(value, str):
        if 'minLength' in schema and len(value) < schema['minLength']:
            errors.append(FieldError(shown, 'FieldValueInvalid', f'{shown}: Invalid value: {_fmt(value)}: {shown} in body should be at least {schema["minLength"]} chars long'))
        if 'maxLength' in schema and len(value) > schema['maxLength']:
            errors.append(FieldError(shown, 'FieldValueTooLong', f'{shown}: Too long: may not be more than {schema["maxLength"]} bytes'))
        if 'pattern' in schema and not re.search(schema['pattern'], value):
            errors.append(FieldError(shown, 'FieldValueInvalid', f"{shown}: Invalid value: {_fmt(value)}: {shown} in body should match '{schema['pattern']}'"))

    if isinstance(value, list):
        if 'minItems' in schema and len(value) < schema['minItems']:
            errors.append(FieldError(shown, 'FieldValueInvalid', f'{shown}: Invalid value: {len(value)}: {shown} in body should have at least {schema["minItems"]} items'))
        if 'maxItems' in schema and len(value) > schema['maxItems']:
            errors.append(FieldError(shown, 'FieldValueTooMany', f'{shown}: Too many: {len(value)}: must have at most {schema["maxItems"]} items'))
        items = schema.get('items')
        if isinstance(items, dict):
            for i, item in enumerate(value):
                old_item = _MISSING
                _validate(item, items, f'{path}[{i}]', errors, old_item)

    if isinstance(value, dict) and not schema.get('x-kubernetes-int-or-string'):
        if 'maxProperties' in schema and len(value) > schema['maxProperties']:
            errors.append(FieldError(shown, 'FieldValueTooMany', f'{shown}: Too many: {len(value)}: must have at most {schema["maxProperties"]} items'))
        if 'minProperties' in schema and len(value) < schema['minProperties']:
            errors.append(FieldError(shown, 'FieldValueInvalid', f'{shown}: Invalid value: {len(value)}: {shown} in body should have at least {schema["minProperties"]} properties'))
        for req in schema.get('required') or []:
            if req not in value:
                errors.append(FieldError(_join(path, req), 'FieldValueRequired', f'{_join(path, req)}: Required value'))
        for sub, sub_schema, sub_path, sub_old in _properties(value, schema, path, old):
            _validate(sub, sub_schema, sub_path, errors, sub_old)


# ----------------------------------------------------------------------------------------------
# CEL (x-kubernetes-validations).

_cel_env = celpy.Environment()
_cel_cache: dict[str, Any] = {}


def _cel_program(expr: str) -> Any:
    prog = _cel_cache.get(expr)
    if prog is None:
        prog = _cel_env.program(_cel_env.compile(expr), functions=_CEL_FUNCTIONS)
        _cel_cache[expr] = prog
    return prog


def _lower_ascii(s: Any) -> Any:
    return celpy.celtypes.StringType(str(s).lower())


def _upper_ascii(s: Any) -> Any:
    return celpy.celtypes.StringType(str(s).upper())


def _trim(s: Any) -> Any:
    return celpy.celtypes.StringType(str(s).strip())


_CEL_FUNCTIONS = {'lowerAscii': _lower_ascii, 'upperAscii': _upper_ascii, 'trim': _trim}
_USES_OLD = re.compile(r'\boldSelf\b')


def _cel_eval(expr: str, value: Any, old: Any) -> Any:
    activation = {'self': celpy.json_to_cel(value)}
    if old is not _MISSING:
        activation['oldSelf'] = celpy.json_to_cel(old)
    result = _cel_program(expr).evaluate(activation)
    if isinstance(result, Exception):
        raise result
    return result


def _validate_cel(value: Any, schema: dict[str, Any], path: str, errors: list[FieldError], old: Any) -> None:
    for rule in schema.get('x-kubernetes-validations') or []:
        expr = rule.get('rule', '')
        uses_old = bool(_USES_OLD.search(expr))
        if uses_old and old is _MISSING:
            continue   # transition rules are skipped on create / when there is no old value
        field = path
        if rule.get('fieldPath'):
            field = (path + rule['fieldPath']) if path else rule['fieldPath'].lstrip('.')
        shown = field or '<nil>'   # Go prints the root's empty field.Path as <nil>
        reason = rule.get('reason') or 'FieldValueInvalid'
        # The value is shown for a scalar node only (field.OmitValueType for objects and arrays).
        omit = schema.get('type') in ('object', 'array')
        bad_value = '' if omit else f' {_fmt(value)}:'
        try:
            ok = _cel_eval(expr, value, old if uses_old else _MISSING)
        except Exception as e:  # noqa: BLE001 — evaluation errors are reported as invalid values
            # Here the value shown is the node's type, as kube-apiserver passes sts.Type.
            detail = f'{e.args[0] if e.args else e} evaluating rule: {(rule.get("message") or expr).strip()}'
            errors.append(FieldError(shown, 'FieldValueInvalid',
                                     f'{shown}: Invalid value: "{schema.get("type") or ""}": {detail}', detail))
            continue
        if bool(ok):
            continue
        message = (rule.get('message') or '').strip() or f'failed rule: {expr.strip()}'
        if rule.get('messageExpression'):
            try:
                message = str(_cel_eval(rule['messageExpression'], value, old if uses_old else _MISSING))
            except Exception:  # noqa: BLE001 — fall back to the static message
                pass
        if reason == 'FieldValueForbidden':
            text = f'{shown}: Forbidden: {message}'
        elif reason == 'FieldValueRequired':
            text = f'{shown}: Required value: {message}'
        elif reason == 'FieldValueDuplicate':
            text = f'{shown}: Duplicate value{bad_value.rstrip(":")}'
        else:
            text = f'{shown}: Invalid value:{bad_value} {message}'
        errors.append(FieldError(shown, reason, text, message))


def validate_crd_defaults(crd: dict[str, Any]) -> list[FieldError]:
    """Like kube-apiserver: every `default:` in a CRD's schemas must pass its node's CEL rules as
    written, before nested defaults are filled in (a `{}` default read by a rule is refused)."""
    errors: list[FieldError] = []

    def walk(node: Any, path: str) -> None:
        if not isinstance(node, dict):
            return
        if 'default' in node and node.get('x-kubernetes-validations'):
            found: list[FieldError] = []
            _validate_cel(node['default'], node, '', found, _MISSING)
            for err in found:
                errors.append(FieldError(f'{path}.default', 'FieldValueInvalid',
                                         f'{path}.default: Invalid value: "{_type_name(node["default"])}": {err.detail}'))
        for key, sub in (node.get('properties') or {}).items():
            walk(sub, f'{path}.properties[{key}]')
        if isinstance(node.get('items'), dict):
            walk(node['items'], f'{path}.items')
        if isinstance(node.get('additionalProperties'), dict):
            walk(node['additionalProperties'], f'{path}.additionalProperties')

    for version in (crd.get('spec') or {}).get('versions') or []:
        schema = (version.get('schema') or {}).get('openAPIV3Schema')
        walk(schema, 'spec.validation.openAPIV3Schema')
    return errors


# ----------------------------------------------------------------------------------------------
# Metadata name rules.

DNS1123_SUBDOMAIN = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')
DNS1123_LABEL = re.compile(r'^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')
DNS1035_LABEL = re.compile(r'^[a-z]([-a-z0-9]*[a-z0-9])?$')
LABEL_VALUE = re.compile(r'^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$')


def validate_name(name: str, rule: str, field: str = 'metadata.name') -> list[FieldError]:
    errors = []
    if rule == 'dns1035':
        if len(name) > 63:
            errors.append(FieldError(field, 'FieldValueInvalid', f'{field}: Invalid value: {_fmt(name)}: must be no more than 63 characters'))
        if not DNS1035_LABEL.match(name):
            errors.append(FieldError(field, 'FieldValueInvalid', f"{field}: Invalid value: {_fmt(name)}: a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"))
    elif rule == 'dns1123label':
        if len(name) > 63:
            errors.append(FieldError(field, 'FieldValueInvalid', f'{field}: Invalid value: {_fmt(name)}: must be no more than 63 characters'))
        if not DNS1123_LABEL.match(name):
            errors.append(FieldError(field, 'FieldValueInvalid', f"{field}: Invalid value: {_fmt(name)}: a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"))
    else:
        if len(name) > 253:
            errors.append(FieldError(field, 'FieldValueInvalid', f'{field}: Invalid value: {_fmt(name)}: must be no more than 253 characters'))
        if not DNS1123_SUBDOMAIN.match(name):
            errors.append(FieldError(field, 'FieldValueInvalid', f"{field}: Invalid value: {_fmt(name)}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"))
    return errors


def validate_labels(labels: Any) -> list[FieldError]:
    errors = []
    if not isinstance(labels, dict):
        return errors
    for key, val in labels.items():
        field = 'metadata.labels'
        if not isinstance(val, str) or len(val) > 63 or not LABEL_VALUE.match(val):
            errors.append(FieldError(field, 'FieldValueInvalid', f"{field}: Invalid value: {_fmt(val)}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"))
        name = key.rpartition('/')[2]
        if not name or len(name) > 63 or not re.match(r'^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$', name):
            errors.append(FieldError(field, 'FieldValueInvalid', f'{field}: Invalid value: {_fmt(key)}: name part must consist of alphanumeric characters'))
    return errors
