"""An in-process Kubernetes API emulator built on kmock, for tests, demos and benchmarks.

Async form::

    async with Emulator(crds=[path]) as emu, kmock.Server(emu):
        ...

Sync form (a background thread with its own loop; usable by subprocesses via a kubeconfig)::

    with EmulatorThread(crds=[Path('crds/a.yaml')]) as emu:
        emu.write_kubeconfig(tmp_path / 'kubeconfig')
        emu.get('v1', 'pods', 'default', 'x')

CLI: ``python -m sparkbook.testing.emulator --port 8080 --crds crds/ --kubeconfig /tmp/kc``.

kmock's reaction DSL keeps priority over the emulator (its fallback reactions), so tests can
inject faults: ``emu.handler['patch', kmock.resource('v1/pods')] << 409``.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import copy
import dataclasses
import datetime
import json
import random
import signal
import threading
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml
from kmock._internal import dsl as _dsl, rendering

from sparkbook.testing import _patch, _schema
from sparkbook.testing._query import _age, jsonpath, match_fields, match_labels, \
    parse_field_selector, parse_label_selector
from sparkbook.testing._resources import ResourceDef, builtin_resources, resources_from_crd, version_priority

# ----------------------------------------------------------------------------------------------
# Small helpers.

ApiError = kmock.KubernetesError
_GEN_CHARS = 'bcdfghjklmnpqrstvwxz2456789'
_SPEC_EXCLUDED = ('metadata', 'status', 'apiVersion', 'kind')


_APF_FLOW_SCHEMA_UID = str(uuid.uuid5(uuid.NAMESPACE_URL, 'flowschema/global-default'))
_APF_PRIORITY_LEVEL_UID = str(uuid.uuid5(uuid.NAMESPACE_URL, 'prioritylevelconfiguration/global-default'))


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def _err(status: int, reason: str, message: str, **details: Any) -> ApiError:
    return ApiError(status=status, reason=reason, message=message, details=details or None)


def _not_found(rd: ResourceDef, name: str) -> ApiError:
    return _err(404, 'NotFound', f'{rd.qualified} "{name}" not found', name=name, group=rd.group, kind=rd.plural)


def _conflict(rd: ResourceDef, name: str) -> ApiError:
    return _err(409, 'Conflict', f'Operation cannot be fulfilled on {rd.qualified} "{name}": the object has been '
                'modified; please apply your changes to the latest version and try again',
                name=name, group=rd.group, kind=rd.plural)


def _invalid(rd: ResourceDef, name: str, errors: list[_schema.FieldError]) -> ApiError:
    msgs = [e.message for e in errors]
    text = msgs[0] if len(msgs) == 1 else '[' + ', '.join(msgs) + ']'
    return _err(422, 'Invalid', f'{rd.qualified_kind} "{name}" is invalid: {text}',
                name=name, group=rd.group, kind=rd.kind, causes=[e.cause() for e in errors])


def _spec_part(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in _SPEC_EXCLUDED}


def _deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, dict) else copy.deepcopy(v)
    return out


# ----------------------------------------------------------------------------------------------
# Records & events.

@dataclasses.dataclass
class RequestRecord:
    method: str
    path: str
    verb: str | None = None
    group: str | None = None
    version: str | None = None
    plural: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    content_type: str | None = None
    user_agent: str | None = None
    status: int | None = None
    user: str | None = None  # who sent it (a real API server's audit log; the emulator has one user)
    query: dict[str, str] = dataclasses.field(default_factory=dict)
    at: float = dataclasses.field(default_factory=time.monotonic)  # when it arrived


WRITE_VERBS = frozenset({'create', 'update', 'patch', 'delete', 'deletecollection'})


@dataclasses.dataclass(frozen=True)
class _Event:
    rv: int
    key: tuple[str, str]   # (group, plural)
    type: str
    obj: dict[str, Any]
    old: dict[str, Any] | None = None


@dataclasses.dataclass(eq=False)
class _Watcher:
    rd: ResourceDef
    namespace: str | None
    name: str | None
    labels: list[tuple[str, str, set[str]]]
    fields: list[tuple[str, str, str]]
    queue: asyncio.Queue[_Event | None] = dataclasses.field(default_factory=asyncio.Queue)

    def matches(self, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        meta = obj.get('metadata') or {}
        if self.namespace is not None and meta.get('namespace') != self.namespace:
            return False
        if self.name is not None and meta.get('name') != self.name:
            return False
        return match_labels(self.labels, meta.get('labels')) and match_fields(self.fields, obj)


@dataclasses.dataclass(frozen=True)
class _ApiPath:
    group: str
    version: str | None
    plural: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


def parse_api_path(path: str) -> _ApiPath | None:
    """Parse /api/v1/... and /apis/g/v/... paths (unlike kmock, also /api/v1/namespaces[/x])."""
    parts = [p for p in path.split('/') if p]
    if len(parts) >= 2 and parts[0] == 'api':
        group, version, rest = '', parts[1], parts[2:]
    elif len(parts) >= 2 and parts[0] == 'apis':
        group, version, rest = parts[1], (parts[2] if len(parts) > 2 else None), parts[3:]
    else:
        return None
    namespace = None
    if len(rest) >= 3 and rest[0] == 'namespaces' and not (len(rest) == 3 and rest[2] in ('status', 'finalize')):
        namespace, rest = rest[1], rest[2:]
    plural = rest[0] if rest else None
    name = rest[1] if len(rest) > 1 else None
    sub = '/'.join(rest[2:]) or None
    return _ApiPath(group, version, plural, namespace, name, sub)


def _load_yaml_docs(paths: Iterable[Path | str | dict[str, Any]]) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for item in paths:
        if isinstance(item, dict):
            docs.append(item)
            continue
        p = Path(item)
        files = sorted(list(p.glob('*.yaml')) + list(p.glob('*.yml'))) if p.is_dir() else [p]
        for f in files:
            docs.extend(d for d in yaml.safe_load_all(f.read_text()) if isinstance(d, dict))
    return docs


# ----------------------------------------------------------------------------------------------
# The emulator itself.

@attrs.define(kw_only=True)
class Emulator(kmock.KubernetesScaffold):
    """A stateful Kubernetes API emulator: kmock scaffold + own store installed as fallback reactions."""

    crds: list[Any] = attrs.field(factory=list)
    history_size: int = 10000
    bookmark_interval: float = 30.0
    namespaces: tuple[str, ...] = ('default', 'kube-system', 'kube-public')
    # API Priority and Fairness (on by default since Kubernetes 1.20, GA in 1.29): the real server
    # names the flow schema and priority level that admitted each request in these headers.
    priority_and_fairness: bool = True
    # Fault injection: watch events of these (group, plural) reach clients this many seconds late,
    # as from a watch cache that lags behind the others (each event waits in its stream).
    watch_lag: dict[tuple[str, str], float] = attrs.field(factory=dict)

    records: list[RequestRecord] = attrs.field(factory=list, init=False)
    _defs: dict[tuple[str, str, str], ResourceDef] = attrs.field(factory=dict, init=False)
    _store: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = attrs.field(factory=dict, init=False)
    _uids: dict[str, tuple[str, str, str, str]] = attrs.field(factory=dict, init=False)
    _rv: int = attrs.field(default=0, init=False)
    _service_ips_given: int = attrs.field(default=0, init=False)
    _history: collections.deque[_Event] = attrs.field(init=False)
    _watchers: set[_Watcher] = attrs.field(factory=set, init=False)
    _lock: asyncio.Lock = attrs.field(factory=asyncio.Lock, init=False)
    _applied: dict[tuple[str, str, str], set[tuple[Any, ...]]] = attrs.field(factory=dict, init=False)
    _orphaning: set[str] = attrs.field(factory=set, init=False)
    _loaded: bool = attrs.field(default=False, init=False)
    _compacted: int = attrs.field(default=0, init=False)

    @_history.default
    def _history_default(self) -> collections.deque[_Event]:
        return collections.deque(maxlen=self.history_size)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for rd in builtin_resources():
            self._register(rd)
        for ns in self.namespaces:
            self._insert(self._kind_def('', 'namespaces'), {
                'apiVersion': 'v1', 'kind': 'Namespace',
                'metadata': self._new_meta({'name': ns}), 'spec': {'finalizers': ['kubernetes']},
                'status': {'phase': 'Active'}}, emit=False)
        # Our own fallbacks go slightly above the scaffold's ones (which stay as the last resort).
        fb = self.fallback ** 1
        fb[self._is_discovery] << self._serve_discovery
        fb[self._is_openapi] << self._serve_openapi
        fb[kmock.action.WATCH] << self._serve_watch
        fb[kmock.action.LIST] << self._serve_list
        fb[kmock.action.FETCH] << self._serve_get
        fb[kmock.action.CREATE] << self._serve_create
        fb[kmock.action.UPDATE] << self._serve_patch
        fb[kmock.action.DELETE] << self._serve_delete
        fb[kmock.method.PUT] << self._serve_put
        fb[kmock.method.DELETE] << self._serve_delete_collection

    async def __aenter__(self) -> Emulator:
        await super().__aenter__()
        if not self._loaded:
            self._loaded = True
            await self.load(self.crds)
        return self

    async def load(self, sources: Iterable[Path | str | dict[str, Any]]) -> None:
        """Create objects from YAML files/dirs/dicts: CRDs first, then everything else."""
        docs = _load_yaml_docs(sources)
        docs.sort(key=lambda d: d.get('kind') != 'CustomResourceDefinition')
        for doc in docs:
            await self.create(doc)

    # ------------------------------------------------------------------------------------------
    # Request plumbing (overrides kmock's parsing to fix /api/v1/namespaces and record statuses).

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        body = await raw_request.read()
        record = RequestRecord(method=raw_request.method.upper(), path=raw_request.path,
                               content_type=raw_request.headers.get('Content-Type'),
                               user_agent=raw_request.headers.get('User-Agent'), query=dict(raw_request.query))
        self.records.append(record)
        raw_response: aiohttp.web.StreamResponse | None = None
        try:
            try:
                request = self._parse_request(raw_request, body, record)
                self._requests.append(request)
                return_value = await self._handle(request)
            except rendering.StreamingError as e:
                raw_response = e.args[0]
                raise (e.__cause__ or e)
        except asyncio.CancelledError:
            record.status = 499
            raise
        except Exception as e:  # noqa: BLE001 — rendered as a k8s Status, as the real server does
            if not isinstance(e, ApiError) and self._errors:
                self._errors[-1].append(e)
            if raw_response is None or not raw_response.prepared:
                return_value = await self._render_error(e)
            else:
                await self._stream_error(e, raw_response)
                await raw_response.write_eof()
                return_value = raw_response
        record.status = return_value.status
        if self.priority_and_fairness and not return_value.prepared:
            return_value.headers['X-Kubernetes-PF-FlowSchema-UID'] = _APF_FLOW_SCHEMA_UID
            return_value.headers['X-Kubernetes-PF-PriorityLevel-UID'] = _APF_PRIORITY_LEVEL_UID
        return return_value

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        # kmock's own _handle decides whether a reaction sees the request with `request in view`,
        # which replays *every earlier request* through the view's filters: O(requests so far) per
        # request, so the emulator slowed down quadratically (60 ms per create after 300 requests).
        # Same order and semantics; plain filter chains are checked on this request alone.
        priorities = [payload.priorities for payload in self._payloads]
        width = max((len(p) for p in priorities), default=0)
        keys = [tuple(-p for p in prio) + (0,) * (width - len(prio)) for prio in priorities]
        for index in sorted(range(len(keys)), key=keys.__getitem__):
            payload = self._payloads[index]
            if not payload._disabled.is_set() and self._sees(payload._source, request):
                try:
                    return await payload(request)
                except rendering.ReactionMismatchError:  # either mismatch or depletion
                    payload._disabled.set()
                except NotImplementedError:  # matched, but non-actionable
                    pass
        raise NotImplementedError('no reaction matches the request')

    def _sees(self, view: Any, request: rendering.Request) -> bool:
        """`request in view`, without scanning the history when the view is only filters over us."""
        node = view
        while node is not self:
            kind = type(node)
            if kind is _dsl.Filter:
                if not node.criteria(request):
                    return False
            elif kind is not _dsl.Priority:  # slices, groups, exclusions, streams: kmock's exact check
                return request in view
            node = node._source
        return True

    def _parse_request(self, raw: aiohttp.web.BaseRequest, body: bytes, record: RequestRecord) -> rendering.Request:
        api = parse_api_path(raw.path)
        query = dict(raw.query)
        method = raw.method.upper()
        action = None
        resource = None
        if api is not None and api.version is not None:
            resource = kmock.resource(group=api.group, version=api.version, plural=api.plural)
            watch = query.get('watch') in ('true', '1')
            if method == 'GET' and watch:
                action = kmock.action.WATCH
            elif api.name is None:
                action = {'GET': kmock.action.LIST, 'POST': kmock.action.CREATE}.get(method)
            else:
                action = {'GET': kmock.action.FETCH, 'PATCH': kmock.action.UPDATE,
                          'DELETE': kmock.action.DELETE}.get(method)
            if api.plural is not None:
                record.group, record.version, record.plural = api.group, api.version, api.plural
                record.namespace, record.name, record.subresource = api.namespace, api.name, api.subresource
                if method == 'GET':
                    record.verb = 'watch' if watch else 'get' if api.name else 'list'
                elif method == 'DELETE':
                    record.verb = 'delete' if api.name else 'deletecollection'
                else:
                    record.verb = {'POST': 'create', 'PUT': 'update', 'PATCH': 'patch'}.get(method)
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        return rendering.Request(
            id=len(self._requests), raw_request=raw, url=raw.url, method=method, params=query,
            headers=dict(raw.headers), cookies=dict(raw.cookies), body=body,
            text=body.decode('utf-8', 'replace'), data=data, action=action, resource=resource,
            namespace=api.namespace if api else None, name=api.name if api else None,
            subresource=api.subresource if api else None,
        )

    async def _render_error(self, exc: Exception) -> aiohttp.web.StreamResponse:
        if isinstance(exc, ApiError):
            body = {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure',
                    'message': exc.message or '', 'reason': exc.reason or '', 'code': exc.status}
            if exc.details:
                body['details'] = exc.details
            return aiohttp.web.json_response(body, status=exc.status)
        return aiohttp.web.json_response({
            'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure', 'code': 500,
            'reason': 'InternalError', 'message': f'emulator error: {exc!r}',
            'details': {'causes': [{'message': traceback.format_exc()}]}}, status=500)

    @staticmethod
    def _respond(body: Any, status: int = 200, warnings: Iterable[str] = ()) -> rendering.Response:
        # NB: kmock merges headers into the reaction's shared Response; always set the same keys.
        warns = ', '.join(f'299 - {json.dumps(w)}' for w in warnings)
        return rendering.Response(status=status, payload=body, headers={'Warning': warns or None})

    # --- OpenAPI v3 ------------------------------------------------------------------------------
    # kubectl (>= 1.27) downloads /openapi/v3 before `apply`/`create` to learn whether the server
    # validates fields itself (a `fieldValidation` query parameter on the write operations); when
    # it does, kubectl sends fieldValidation=Strict and leaves validation to the server, as with a
    # real cluster. We publish that much: the paths with their write parameters, and each kind's
    # schema (the CRD's openAPIV3Schema, or an open object for built-ins).

    def _is_openapi(self, request: rendering.Request) -> bool:
        return request.method == kmock.method.GET and request.url.path.rstrip('/').startswith('/openapi/v3')

    def _openapi_groups(self) -> dict[str, list[ResourceDef]]:
        groups: dict[str, list[ResourceDef]] = collections.defaultdict(list)
        for rd in self._defs.values():
            prefix = f'apis/{rd.group}/{rd.version}' if rd.group else f'api/{rd.version}'
            groups[prefix].append(rd)
        return groups

    def _openapi_document(self, rds: list[ResourceDef]) -> dict[str, Any]:
        validation = {'name': 'fieldValidation', 'in': 'query', 'schema': {'type': 'string', 'uniqueItems': True}}
        manager = {'name': 'fieldManager', 'in': 'query', 'schema': {'type': 'string', 'uniqueItems': True}}
        paths: dict[str, Any] = {}
        schemas: dict[str, Any] = {}
        for rd in rds:
            base = f'/apis/{rd.group}/{rd.version}' if rd.group else f'/api/{rd.version}'
            coll = f'{base}/namespaces/{{namespace}}/{rd.plural}' if rd.namespaced else f'{base}/{rd.plural}'
            ref_name = f'{(rd.group or "core")}.{rd.version}.{rd.kind}'
            ref = {'content': {'application/json': {'schema': {'$ref': f'#/components/schemas/{ref_name}'}}}}
            gvk = {'group': rd.group, 'version': rd.version, 'kind': rd.kind}
            write = {'parameters': [validation, manager], 'responses': {'200': {'description': 'OK', **ref}},
                     'x-kubernetes-group-version-kind': gvk}
            paths[coll] = {'post': {**write, 'x-kubernetes-action': 'post'},
                           'get': {'responses': {'200': {'description': 'OK'}}, 'x-kubernetes-action': 'list',
                                   'x-kubernetes-group-version-kind': gvk}}
            paths[f'{coll}/{{name}}'] = {
                'put': {**write, 'x-kubernetes-action': 'put'},
                'patch': {**write, 'x-kubernetes-action': 'patch'},
                'get': {'responses': {'200': {'description': 'OK', **ref}}, 'x-kubernetes-action': 'get',
                        'x-kubernetes-group-version-kind': gvk},
            }
            schema = copy.deepcopy(rd.schema) if rd.schema else {'type': 'object',
                                                                 'x-kubernetes-preserve-unknown-fields': True}
            schema['x-kubernetes-group-version-kind'] = [gvk]
            schemas[ref_name] = schema
        return {'openapi': '3.0.0', 'info': {'title': 'Kubernetes (sparkbook emulator)', 'version': 'v1.30.0'},
                'paths': paths, 'components': {'schemas': schemas}}

    async def _serve_openapi(self, request: rendering.Request) -> Any:
        path = request.url.path.rstrip('/')
        groups = self._openapi_groups()
        if path == '/openapi/v3':
            return {'paths': {prefix: {'serverRelativeURL': f'/openapi/v3/{prefix}?hash={self._rv}'}
                              for prefix in sorted(groups)}}
        prefix = path[len('/openapi/v3/'):]
        if prefix not in groups:
            raise kmock.KubernetesEndpointNotFoundError()
        return self._openapi_document(groups[prefix])

    def _is_discovery(self, request: rendering.Request) -> bool:
        if request.method != kmock.method.GET:
            return False
        path = request.url.path.rstrip('/') or '/'
        if path in ('/', '/api', '/apis', '/version'):
            return True
        api = parse_api_path(path)
        return api is not None and api.plural is None

    def _resolve(self, request: rendering.Request) -> tuple[ResourceDef, _ApiPath]:
        api = parse_api_path(request.url.path)
        if api is None or api.version is None or api.plural is None:
            raise kmock.KubernetesEndpointNotFoundError()
        rd = self._defs.get((api.group, api.version, api.plural))
        if rd is None:
            raise _err(404, 'NotFound', 'the server could not find the requested resource')
        ctype = request.headers.get('Content-Type', '')
        if 'protobuf' in ctype:
            raise _err(415, 'UnsupportedMediaType', 'the body of the request was in an unknown format - '
                       'accepted media types include: application/json, application/yaml')
        if api.subresource and api.subresource not in rd.subresources:
            raise _err(404, 'NotFound', 'the server could not find the requested resource')
        if api.subresource == 'log':
            raise _err(404, 'NotFound', 'the emulator has no kubelet: pod logs are not available')
        if rd.namespaced and api.namespace is None and api.name is not None:
            raise _err(404, 'NotFound', 'the server could not find the requested resource')
        return rd, api

    @staticmethod
    def _manager(request: rendering.Request) -> str:
        mgr = request.params.get('fieldManager')
        if mgr:
            return mgr
        ua = request.headers.get('User-Agent') or 'unknown'
        return ua.split('/')[0] or 'unknown'

    # ------------------------------------------------------------------------------------------
    # Registry of resources.

    def _register(self, rd: ResourceDef) -> None:
        self._defs[(rd.group, rd.version, rd.plural)] = rd
        self._store.setdefault((rd.group, rd.plural), {})
        self.resources[kmock.resource(rd.group, rd.version, rd.plural)] = kmock.ResourceInfo(
            kind=rd.kind, singular=rd.singular, namespaced=rd.namespaced, verbs=set(rd.verbs),
            shortnames=set(rd.short_names), categories=set(rd.categories), subresources=set(rd.subresources))

    def _unregister_crd(self, crd_name: str) -> None:
        for key, rd in list(self._defs.items()):
            if rd.crd_name == crd_name:
                del self._defs[key]
                for w in list(self._watchers):   # the real server closes the watches of a gone resource
                    if (w.rd.group, w.rd.plural) == (rd.group, rd.plural):
                        w.queue.put_nowait(None)
                try:
                    del self.resources[kmock.resource(rd.group, rd.version, rd.plural)]
                except (KeyError, TypeError):
                    pass

    def _kind_def(self, group: str, plural: str) -> ResourceDef:
        """The preferred version's definition of a (group, plural)."""
        cands = [rd for (g, _, p), rd in self._defs.items() if g == group and p == plural]
        if not cands:
            raise _err(404, 'NotFound', f'the server could not find the requested resource ({plural}.{group})')
        return sorted(cands, key=lambda rd: version_priority(rd.version))[0]

    def find_def(self, api_version: str, plural_or_kind: str) -> ResourceDef:
        group, _, version = api_version.rpartition('/')
        for rd in self._defs.values():
            if rd.group == group and rd.version == version and plural_or_kind in (rd.plural, rd.kind):
                return rd
        raise _err(404, 'NotFound', f'the server could not find the requested resource ({api_version} {plural_or_kind})')

    # ------------------------------------------------------------------------------------------
    # Store primitives (called with the lock held, or before serving starts).

    def _new_meta(self, meta: dict[str, Any]) -> dict[str, Any]:
        meta = dict(meta)
        meta['uid'] = str(uuid.uuid4())
        meta['creationTimestamp'] = _now()
        meta['generation'] = 1
        for key in ('deletionTimestamp', 'deletionGracePeriodSeconds', 'selfLink'):
            meta.pop(key, None)
        return meta

    def _emit(self, rd: ResourceDef, etype: str, obj: dict[str, Any], old: dict[str, Any] | None = None) -> None:
        """Assign the next global resourceVersion and publish the event — atomically."""
        self._rv += 1
        obj['metadata']['resourceVersion'] = str(self._rv)
        event = _Event(self._rv, (rd.group, rd.plural), etype, obj, old)
        self._history.append(event)
        for w in list(self._watchers):
            if (w.rd.group, w.rd.plural) == event.key:
                w.queue.put_nowait(event)

    def _insert(self, rd: ResourceDef, obj: dict[str, Any], emit: bool = True) -> None:
        meta = obj['metadata']
        self._store[(rd.group, rd.plural)][(meta.get('namespace') or '', meta['name'])] = obj
        self._uids[meta['uid']] = (rd.group, rd.plural, meta.get('namespace') or '', meta['name'])
        if emit:
            self._emit(rd, 'ADDED', obj)
        else:
            self._rv += 1
            meta['resourceVersion'] = str(self._rv)

    def _replace(self, rd: ResourceDef, old: dict[str, Any], new: dict[str, Any]) -> None:
        meta = new['metadata']
        self._store[(rd.group, rd.plural)][(meta.get('namespace') or '', meta['name'])] = new
        self._emit(rd, 'MODIFIED', new, old)

    def _lookup(self, rd: ResourceDef, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self._store.get((rd.group, rd.plural), {}).get((namespace or '', name))

    def _objects(self, rd: ResourceDef, namespace: str | None = None) -> list[dict[str, Any]]:
        objs = self._store.get((rd.group, rd.plural), {})
        return [o for (ns, _), o in sorted(objs.items()) if namespace is None or ns == namespace]

    def _render(self, rd: ResourceDef, obj: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(obj)
        out['apiVersion'] = rd.api_version
        out['kind'] = rd.kind
        return out

    # ------------------------------------------------------------------------------------------
    # Core operations (HTTP-independent; used by both the API and the direct test methods).

    async def create_object(self, rd: ResourceDef, namespace: str | None, body: Any, *, manager: str = 'emulator',
                            params: dict[str, str] | None = None, applied: set[Any] | None = None) -> tuple[dict[str, Any], list[str]]:
        params = params or {}
        if not isinstance(body, dict):
            raise _err(400, 'BadRequest', 'the body of the request could not be decoded as a JSON object')
        obj = copy.deepcopy(body)
        meta = obj.setdefault('metadata', {}) or {}
        obj['metadata'] = meta
        if rd.namespaced:
            if namespace and meta.get('namespace') and meta['namespace'] != namespace:
                raise _err(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request')
            namespace = namespace or meta.get('namespace') or 'default'
            meta['namespace'] = namespace
        else:
            meta.pop('namespace', None)
            namespace = None
        if not meta.get('name') and meta.get('generateName'):
            meta['name'] = meta['generateName'] + ''.join(random.choice(_GEN_CHARS) for _ in range(5))
        name = meta.get('name') or ''
        if not name:
            raise _invalid(rd, '', [_schema.FieldError('metadata.name', 'FieldValueRequired',
                                                       'metadata.name: Required value: name or generateName is required')])
        obj['apiVersion'], obj['kind'] = rd.api_version, rd.kind
        async with self._lock:
            if namespace is not None:
                ns_obj = self._lookup(self._kind_def('', 'namespaces'), None, namespace)
                if ns_obj is None:
                    raise _err(404, 'NotFound', f'namespaces "{namespace}" not found', name=namespace, kind='namespaces')
                if ns_obj['metadata'].get('deletionTimestamp'):
                    raise _err(403, 'Forbidden', f'{rd.qualified} "{name}" is forbidden: unable to create new content '
                               f'in namespace {namespace} because it is being terminated')
            if self._lookup(rd, namespace, name) is not None:
                raise _err(409, 'AlreadyExists', f'{rd.qualified} "{name}" already exists',
                           name=name, group=rd.group, kind=rd.plural)
            obj['metadata'] = self._new_meta(meta)
            if rd.has_status:
                obj.pop('status', None)
            warnings = self._prepare(rd, obj, None, params)
            self._set_managed(obj, manager, 'Apply' if applied is not None else 'Update', None,
                              applied if applied is not None else _patch.field_paths(_spec_part(body) | {'metadata': {k: v for k, v in (body.get('metadata') or {}).items() if k in ('labels', 'annotations', 'finalizers', 'ownerReferences')}}))
            if params.get('dryRun'):
                obj['metadata']['resourceVersion'] = str(self._rv)
                return self._render(rd, obj), warnings
            if applied is not None:
                self._applied[(obj['metadata']['uid'], manager, '')] = set(applied)
            self._insert(rd, obj)
            if rd.plural == 'customresourcedefinitions' and rd.group == 'apiextensions.k8s.io':
                self._crd_established(rd, obj)
            return self._render(rd, self._lookup(rd, namespace, name) or obj), warnings

    def _crd_established(self, rd: ResourceDef, crd: dict[str, Any]) -> None:
        for r in resources_from_crd(crd):
            self._register(r)
        new = copy.deepcopy(crd)
        spec = new.get('spec') or {}
        new['status'] = {
            'acceptedNames': spec.get('names') or {},
            'storedVersions': [v['name'] for v in spec.get('versions') or [] if v.get('storage')],
            'conditions': [
                {'type': t, 'status': 'True', 'reason': r, 'message': m, 'lastTransitionTime': _now()}
                for t, r, m in (('NamesAccepted', 'NoConflicts', 'no conflicts found'),
                                ('Established', 'InitialNamesAccepted', 'the initial names have been accepted'))],
        }
        self._replace(rd, crd, new)

    def _prepare(self, rd: ResourceDef, obj: dict[str, Any], old: dict[str, Any] | None,
                 params: dict[str, str]) -> list[str]:
        """Validate/default/prune an object about to be stored; return the warnings."""
        name = obj['metadata'].get('name', '')
        errors: list[_schema.FieldError] = []
        warnings: list[str] = []
        if old is None:
            rule = ('dns1035' if rd.plural == 'services' and not rd.group else
                    'dns1123label' if rd.plural == 'namespaces' and not rd.group else 'dns1123')
            errors += _schema.validate_name(name, rule)
        errors += _schema.validate_labels(obj['metadata'].get('labels'))
        if rd.crd_name and rd.schema:
            removed = _schema.prune(obj, rd.schema)
            mode = params.get('fieldValidation', 'Warn')
            if removed and mode == 'Strict':
                unknown = ', '.join(f'unknown field "{p}"' for p in removed)
                raise _err(400, 'BadRequest', f'{rd.kind} in version "{rd.version}" cannot be handled as a '
                           f'{rd.kind}: strict decoding error: {unknown}')
            if removed and mode == 'Warn':
                warnings += [f'unknown field "{p}"' for p in removed]
            _schema.apply_defaults(obj, rd.schema)
            errors += _schema.validate(obj, rd.schema, old=old if old is not None else _schema._MISSING)
        if rd.group == 'apiextensions.k8s.io' and rd.plural == 'customresourcedefinitions':
            spec = obj.get('spec') or {}
            names = spec.get('names') or {}
            if not names.get('plural') or not names.get('kind') or not spec.get('group') or not spec.get('versions'):
                errors.append(_schema.FieldError('spec', 'FieldValueRequired', 'spec: Required value: group, names.plural, names.kind and versions are required'))
            elif name != f"{names['plural']}.{spec['group']}":
                errors.append(_schema.FieldError('metadata.name', 'FieldValueInvalid', f'metadata.name: Invalid value: "{name}": must be spec.names.plural+"."+spec.group'))
            errors += _schema.validate_crd_defaults(obj)
        if rd.plural == 'secrets' and not rd.group:
            # Like the real server: stringData is write-only, merged into base64 data.
            string_data = obj.pop('stringData', None) or {}
            if string_data:
                data = obj.setdefault('data', {})
                for key, value in string_data.items():
                    data[key] = base64.b64encode(str(value).encode()).decode()
            if old is not None and old.get('immutable') and (obj.get('data') != old.get('data')
                                                             or obj.get('immutable') is not True):
                errors.append(_schema.FieldError('data', 'FieldValueForbidden',
                                                 'data: Forbidden: field is immutable when `immutable` is set'))
        if rd.plural == 'services' and not rd.group:
            errors += self._service_ips(obj, old)
        if rd.plural == 'pods' and not rd.group and old is None:
            obj.setdefault('status', {}).setdefault('phase', 'Pending')
        if rd.plural == 'namespaces' and not rd.group and old is None:
            obj.setdefault('spec', {}).setdefault('finalizers', ['kubernetes'])
            obj.setdefault('status', {}).setdefault('phase', 'Active')
        if errors:
            raise _invalid(rd, name, errors)
        return warnings

    def _service_ips(self, obj: dict[str, Any], old: dict[str, Any] | None) -> list[_schema.FieldError]:
        """Like the real server: a Service gets a cluster IP when it is created (unless it asks for
        none, a headless one, or is an ExternalName), an update that leaves it out keeps it, and it
        may not change once set."""
        spec = obj.setdefault('spec', {})
        spec.setdefault('type', 'ClusterIP')
        if spec['type'] == 'ExternalName':
            return []
        if old is None:
            if not spec.get('clusterIP'):
                self._service_ips_given += 1
                n = self._service_ips_given
                spec['clusterIP'] = f'10.96.{(n >> 8) & 255}.{n & 255}'
            spec['clusterIPs'] = [spec['clusterIP']]
            return []
        was = (old.get('spec') or {}).get('clusterIP')
        if not spec.get('clusterIP') and was:
            spec['clusterIP'] = was
            spec['clusterIPs'] = list((old.get('spec') or {}).get('clusterIPs') or [was])
            return []
        if was and spec.get('clusterIP') != was:
            return [_schema.FieldError('spec.clusterIPs[0]', 'FieldValueInvalid',
                                       f'spec.clusterIPs[0]: Invalid value: []string{{"{spec["clusterIP"]}"}}: '
                                       'may not change once set')]
        spec['clusterIPs'] = [spec['clusterIP']] if spec.get('clusterIP') else spec.get('clusterIPs', [])
        return []

    def _set_managed(self, obj: dict[str, Any], manager: str, operation: str, sub: str | None,
                     paths: set[Any]) -> None:
        meta = obj['metadata']
        fields = _patch.fields_v1(paths)
        entries = list(meta.get('managedFields') or [])
        index = next((i for i, e in enumerate(entries) if e.get('manager') == manager
                      and e.get('operation') == operation and e.get('subresource') == sub), None)
        if index is not None and operation == 'Update':   # updates accumulate ownership; apply replaces it
            fields = _deep_merge(entries[index].get('fieldsV1') or {}, fields)
        entry = {'manager': manager, 'operation': operation, 'apiVersion': obj.get('apiVersion'),
                 'time': _now(), 'fieldsType': 'FieldsV1', 'fieldsV1': fields}
        if sub:
            entry['subresource'] = sub
        if index is None:
            entries.append(entry)
        else:
            entries[index] = entry
        meta['managedFields'] = entries

    @staticmethod
    def _comparable(obj: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(obj)
        out['metadata'].pop('resourceVersion', None)
        out['metadata']['managedFields'] = [{k: v for k, v in e.items() if k != 'time'}
                                            for e in out['metadata'].get('managedFields') or []]
        return out

    def _commit(self, rd: ResourceDef, old: dict[str, Any], new: dict[str, Any], *, sub: str | None,
                manager: str, operation: str, paths: set[Any], params: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
        """The common tail of PUT/PATCH/apply: isolation, validation, generation, no-op skip, store."""
        name = old['metadata']['name']
        new = copy.deepcopy(new)
        if sub == 'status':
            status = new.get('status')
            new = copy.deepcopy(old)
            if status is None:
                new.pop('status', None)
            else:
                new['status'] = status
        else:
            if rd.has_status:
                if 'status' in old:
                    new['status'] = copy.deepcopy(old['status'])
                else:
                    new.pop('status', None)
            meta = new.setdefault('metadata', {}) or {}
            new['metadata'] = meta
            for key in ('uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generation'):
                if key in old['metadata']:
                    meta[key] = old['metadata'][key]
                else:
                    meta.pop(key, None)
            meta['name'] = name
            if rd.namespaced:
                meta['namespace'] = old['metadata']['namespace']
            else:
                meta.pop('namespace', None)
            meta['managedFields'] = copy.deepcopy(old['metadata'].get('managedFields') or [])
            meta['resourceVersion'] = old['metadata']['resourceVersion']
            if old['metadata'].get('deletionTimestamp'):
                added = set(meta.get('finalizers') or []) - set(old['metadata'].get('finalizers') or [])
                if added:
                    raise _invalid(rd, name, [_schema.FieldError('metadata.finalizers', 'FieldValueForbidden',
                                   f'metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {sorted(added)!r}')])
        new['apiVersion'], new['kind'] = rd.api_version, rd.kind
        warnings = self._prepare(rd, new, old, params)
        if _spec_part(new) != _spec_part(old):
            new['metadata']['generation'] = int(old['metadata'].get('generation') or 1) + 1
        self._set_managed(new, manager, operation, sub, paths)
        if self._comparable(new) == self._comparable(old):
            return self._render(rd, old), warnings   # a no-op: no new resourceVersion, no event
        if params.get('dryRun'):
            return self._render(rd, new), warnings
        self._replace(rd, old, new)
        if new['metadata'].get('deletionTimestamp') and not new['metadata'].get('finalizers'):
            self._remove(rd, new)
        elif rd.group == 'apiextensions.k8s.io' and rd.plural == 'customresourcedefinitions' and sub != 'status':
            for r in resources_from_crd(new):
                self._register(r)
        return self._render(rd, new), warnings

    def _check_rv(self, rd: ResourceDef, old: dict[str, Any], new: Any) -> None:
        rv = ((new or {}).get('metadata') or {}).get('resourceVersion') if isinstance(new, dict) else None
        if rv and rv != old['metadata']['resourceVersion']:
            raise _conflict(rd, old['metadata']['name'])

    async def update_object(self, rd: ResourceDef, namespace: str | None, name: str, body: Any, *,
                            sub: str | None = None, manager: str = 'emulator',
                            params: dict[str, str] | None = None) -> tuple[dict[str, Any], list[str]]:
        params = params or {}
        if not isinstance(body, dict):
            raise _err(400, 'BadRequest', 'the body of the request could not be decoded as a JSON object')
        async with self._lock:
            old = self._lookup(rd, namespace, name)
            if old is None:
                raise _not_found(rd, name)
            if (body.get('metadata') or {}).get('name', name) != name:
                raise _err(400, 'BadRequest', 'the name of the object does not match the name on the URL')
            if rd.crd_name and not (body.get('metadata') or {}).get('resourceVersion'):
                raise _invalid(rd, name, [_schema.FieldError('metadata.resourceVersion', 'FieldValueInvalid',
                               'metadata.resourceVersion: Invalid value: 0x0: must be specified for an update')])
            self._check_rv(rd, old, body)
            return self._commit(rd, old, body, sub=sub, manager=manager, operation='Update',
                                paths=_patch.field_paths(_spec_part(body)), params=params)

    async def patch_object(self, rd: ResourceDef, namespace: str | None, name: str, patch: Any, ptype: str, *,
                           sub: str | None = None, manager: str = 'emulator',
                           params: dict[str, str] | None = None) -> tuple[dict[str, Any], list[str]]:
        params = params or {}
        async with self._lock:
            old = self._lookup(rd, namespace, name)
            if old is None:
                raise _not_found(rd, name)
            try:
                if ptype == 'json':
                    new = _patch.json_patch(old, patch)
                elif not isinstance(patch, dict):
                    raise _patch.PatchError('the patch body must be a JSON object', 400)
                elif ptype == 'strategic':
                    new = _patch.strategic_merge_patch(old, patch)
                else:
                    new = _patch.merge_patch(old, patch)
            except _patch.PatchError as e:
                raise _err(e.status, 'Invalid' if e.status == 422 else 'BadRequest', e.message)
            self._check_rv(rd, old, new)
            paths = _patch.field_paths(patch) if isinstance(patch, dict) else set()
            return self._commit(rd, old, new, sub=sub, manager=manager, operation='Update', paths=paths, params=params)

    async def apply_object(self, rd: ResourceDef, namespace: str | None, name: str, config: Any, *,
                           sub: str | None = None, manager: str, force: bool = False,
                           params: dict[str, str] | None = None) -> tuple[dict[str, Any], list[str], bool]:
        """Server-side apply. Returns (object, warnings, created)."""
        params = params or {}
        if not isinstance(config, dict):
            raise _err(400, 'BadRequest', 'the apply configuration must be an object')
        config = copy.deepcopy(config)
        cmeta = config.get('metadata') or {}
        if cmeta.get('name', name) != name:
            raise _err(400, 'BadRequest', 'the name of the object does not match the name on the URL')
        ignored_meta = {'name', 'namespace', 'resourceVersion', 'uid', 'creationTimestamp', 'generation', 'managedFields'}
        applied_cfg = {k: v for k, v in config.items() if k not in ('apiVersion', 'kind', 'metadata')}
        applied_cfg['metadata'] = {k: v for k, v in cmeta.items() if k not in ignored_meta}
        paths = _patch.field_paths(applied_cfg)
        if self._lookup(rd, namespace, name) is None and sub is None:
            body = dict(config, metadata=dict(cmeta, name=name))
            try:
                obj, warnings = await self.create_object(rd, namespace, body, manager=manager, params=params,
                                                         applied=paths)
                return obj, warnings, True
            except ApiError as e:
                if e.reason != 'AlreadyExists':
                    raise
        async with self._lock:
            old = self._lookup(rd, namespace, name)
            if old is None:
                raise _not_found(rd, name)
            self._check_rv(rd, old, config)
            uid = old['metadata']['uid']
            skey = sub or ''
            if not force:
                conflicts = []
                for (u, mgr, s), owned in self._applied.items():
                    if u != uid or mgr == manager or s != skey:
                        continue
                    for p in sorted(owned & paths, key=str):
                        if _patch.get_path(old, p) != _patch.get_path(applied_cfg, p):
                            conflicts.append((mgr, p))
                if conflicts:
                    text = '\n'.join(f'* {m}: .{".".join(str(x) for x in p)}' for m, p in conflicts)
                    raise _err(409, 'Conflict', f'Apply failed with {len(conflicts)} conflict{"s" if len(conflicts) > 1 else ""}: '
                               f'conflict with "{conflicts[0][0]}": {text}',
                               causes=[{'reason': 'FieldManagerConflict', 'message': f'conflict with "{m}"',
                                        'field': '.' + '.'.join(str(x) for x in p)} for m, p in conflicts])
            previous = self._applied.get((uid, manager, skey), set())
            others = set().union(*[v for (u, m, s), v in self._applied.items() if u == uid and m != manager and s == skey])
            new = copy.deepcopy(old)
            for p in sorted(previous - paths - others, key=len):   # whole list items before their leaves
                _patch.remove_path(new, p)
            new = _patch.apply_merge(new, applied_cfg)
            if force:
                for (u, m, s), owned in self._applied.items():
                    if u == uid and m != manager and s == skey:
                        owned -= paths
            obj, warnings = self._commit(rd, old, new, sub=sub, manager=manager, operation='Apply', paths=paths, params=params)
            if not params.get('dryRun') and self._lookup(rd, namespace, name) is not None:
                self._applied[(uid, manager, skey)] = paths
            return obj, warnings, False

    async def delete_object(self, rd: ResourceDef, namespace: str | None, name: str,
                            options: dict[str, Any] | None = None, params: dict[str, str] | None = None) -> dict[str, Any]:
        options = dict(options or {})
        params = params or {}
        if params.get('propagationPolicy'):
            options.setdefault('propagationPolicy', params['propagationPolicy'])
        if options.get('orphanDependents') is True:
            options.setdefault('propagationPolicy', 'Orphan')
        async with self._lock:
            obj = self._lookup(rd, namespace, name)
            if obj is None:
                raise _not_found(rd, name)
            pre = options.get('preconditions') or {}
            if pre.get('uid') and pre['uid'] != obj['metadata']['uid']:
                raise _err(409, 'Conflict', f'Operation cannot be fulfilled on {rd.qualified} "{name}": Precondition failed: '
                           f'UID in precondition: {pre["uid"]}, UID in object meta: {obj["metadata"]["uid"]}',
                           name=name, group=rd.group, kind=rd.plural)
            if pre.get('resourceVersion') and pre['resourceVersion'] != obj['metadata']['resourceVersion']:
                raise _err(409, 'Conflict', f'Operation cannot be fulfilled on {rd.qualified} "{name}": Precondition failed: '
                           f'ResourceVersion in precondition: {pre["resourceVersion"]}, ResourceVersion in object meta: '
                           f'{obj["metadata"]["resourceVersion"]}', name=name, group=rd.group, kind=rd.plural)
            if rd.plural == 'namespaces' and not rd.group and name in ('default', 'kube-system', 'kube-public'):
                raise _err(403, 'Forbidden', f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                           name=name, kind='namespaces')
            if params.get('dryRun') or options.get('dryRun'):
                return self._render(rd, obj)
            if options.get('propagationPolicy') == 'Orphan':
                self._orphaning.add(obj['metadata']['uid'])
            return self._delete(rd, obj)

    def _delete(self, rd: ResourceDef, obj: dict[str, Any]) -> dict[str, Any]:
        is_ns = rd.plural == 'namespaces' and not rd.group
        if obj['metadata'].get('finalizers') or is_ns:
            if not obj['metadata'].get('deletionTimestamp'):
                new = copy.deepcopy(obj)
                new['metadata']['deletionTimestamp'] = _now()
                new['metadata']['deletionGracePeriodSeconds'] = 0
                new['metadata']['generation'] = int(new['metadata'].get('generation') or 1) + 1
                if is_ns:
                    new.setdefault('status', {})['phase'] = 'Terminating'
                self._replace(rd, obj, new)
                obj = new
            if is_ns:
                name = obj['metadata']['name']
                for (group, plural), objs in list(self._store.items()):
                    for (ns, _), child in list(objs.items()):
                        if ns == name and self._lookup(self._kind_def(group, plural), ns, child['metadata']['name']) is child:
                            self._delete(self._kind_def(group, plural), child)
                self._maybe_finalize_namespace(name)
                return self._render(rd, self._lookup(rd, None, name) or obj)
            return self._render(rd, obj)
        self._remove(rd, obj)
        return self._render(rd, obj)

    def _remove(self, rd: ResourceDef, obj: dict[str, Any]) -> None:
        meta = obj['metadata']
        key = (meta.get('namespace') or '', meta['name'])
        if self._store[(rd.group, rd.plural)].get(key) is not obj:
            return
        del self._store[(rd.group, rd.plural)][key]
        uid = meta['uid']
        self._uids.pop(uid, None)
        for k in [k for k in self._applied if k[0] == uid]:
            del self._applied[k]
        gone = copy.deepcopy(obj)
        self._emit(rd, 'DELETED', gone)
        if rd.group == 'apiextensions.k8s.io' and rd.plural == 'customresourcedefinitions':
            spec = obj.get('spec') or {}
            store = self._store.get((spec.get('group', ''), (spec.get('names') or {}).get('plural', '')), {})
            if store:
                crd_rd = next((r for r in self._defs.values() if r.crd_name == meta['name']), None)
                for child in list(store.values()):
                    if crd_rd is not None:
                        self._remove(crd_rd, child)
            self._unregister_crd(meta['name'])
        self._collect_garbage(uid, orphan=uid in self._orphaning)
        self._orphaning.discard(uid)
        if meta.get('namespace'):
            self._maybe_finalize_namespace(meta['namespace'])

    def _collect_garbage(self, owner_uid: str, orphan: bool) -> None:
        for (group, plural), objs in list(self._store.items()):
            for child in list(objs.values()):
                refs = child['metadata'].get('ownerReferences') or []
                if not any(r.get('uid') == owner_uid for r in refs):
                    continue
                crd = self._kind_def(group, plural)
                remaining = [r for r in refs if r.get('uid') != owner_uid]
                if orphan or any(r.get('uid') in self._uids for r in remaining):
                    new = copy.deepcopy(child)
                    if remaining:
                        new['metadata']['ownerReferences'] = remaining
                    else:
                        new['metadata'].pop('ownerReferences', None)
                    self._replace(crd, child, new)
                else:
                    self._delete(crd, child)

    def _maybe_finalize_namespace(self, name: str) -> None:
        nsd = self._kind_def('', 'namespaces')
        ns = self._lookup(nsd, None, name)
        if ns is None or not ns['metadata'].get('deletionTimestamp') or ns['metadata'].get('finalizers'):
            return
        for (group, plural), objs in self._store.items():
            if any(k[0] == name for k in objs):
                return
        self._remove(nsd, ns)

    # ------------------------------------------------------------------------------------------
    # HTTP handlers (fallback reactions).

    async def _serve_discovery(self, request: rendering.Request) -> Any:
        path = request.url.path.rstrip('/') or '/'
        groups: dict[str, list[str]] = collections.defaultdict(list)
        for (g, v, _) in self._defs:
            if v not in groups[g]:
                groups[g].append(v)
        for g in groups:
            groups[g].sort(key=version_priority)
        if path == '/version':
            return {'major': '1', 'minor': '34', 'gitVersion': 'v1.34.0-sparkbook-emulator', 'gitCommit': '0' * 40,
                    'gitTreeState': 'clean', 'buildDate': '2025-01-01T00:00:00Z', 'goVersion': 'go1.24',
                    'compiler': 'gc', 'platform': 'linux/amd64'}
        if path == '/':
            paths = {'/api', '/api/v1', '/apis', '/version'}
            for g, vs in groups.items():
                if g:
                    paths.add(f'/apis/{g}')
                    paths.update(f'/apis/{g}/{v}' for v in vs)
            return {'paths': sorted(paths)}
        if path == '/api':
            return {'kind': 'APIVersions', 'versions': ['v1'],
                    'serverAddressByClientCIDRs': [{'clientCIDR': '0.0.0.0/0', 'serverAddress': request.url.host or ''}]}

        def group_info(g: str) -> dict[str, Any]:
            vs = groups[g]
            return {'name': g, 'versions': [{'groupVersion': f'{g}/{v}', 'version': v} for v in vs],
                    'preferredVersion': {'groupVersion': f'{g}/{vs[0]}', 'version': vs[0]}}

        if path == '/apis':
            return {'kind': 'APIGroupList', 'apiVersion': 'v1', 'groups': [group_info(g) for g in sorted(groups) if g]}
        api = parse_api_path(path)
        assert api is not None
        if api.version is None:
            if api.group not in groups or not api.group:
                raise _err(404, 'NotFound', 'the server could not find the requested resource')
            return dict(group_info(api.group), kind='APIGroup', apiVersion='v1')
        rds = [rd for (g, v, _), rd in sorted(self._defs.items()) if g == api.group and v == api.version]
        if not rds:
            raise _err(404, 'NotFound', 'the server could not find the requested resource')
        resources = []
        for rd in rds:
            resources.append({'name': rd.plural, 'singularName': rd.singular, 'namespaced': rd.namespaced,
                              'kind': rd.kind, 'verbs': list(rd.verbs), 'shortNames': rd.short_names,
                              'categories': rd.categories})
            for sub in rd.subresources:
                entry = {'name': f'{rd.plural}/{sub}', 'singularName': '', 'namespaced': rd.namespaced,
                         'kind': rd.kind, 'verbs': ['get', 'patch', 'update']}
                if sub == 'scale':
                    entry.update(group='autoscaling', version='v1', kind='Scale')
                elif sub == 'log':
                    entry['verbs'] = ['get']
                elif sub == 'finalize':
                    entry['verbs'] = ['update']
                resources.append(entry)
        return {'kind': 'APIResourceList', 'apiVersion': 'v1', 'groupVersion': rds[0].api_version,
                'resources': resources}

    def _wants_table(self, request: rendering.Request) -> bool:
        return 'as=Table' in (request.headers.get('Accept') or '')

    async def _serve_get(self, request: rendering.Request) -> Any:
        rd, api = self._resolve(request)
        assert api.name is not None
        obj = self._lookup(rd, api.namespace, api.name)
        if obj is None:
            raise _not_found(rd, api.name)
        if api.subresource == 'scale':
            return self._respond(self._scale(rd, obj))
        if self._wants_table(request):
            return self._respond(self._table(rd, [obj], request.params))
        return self._respond(self._render(rd, obj))

    def _scale(self, rd: ResourceDef, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj['metadata']
        sel = ((obj.get('spec') or {}).get('selector') or {}).get('matchLabels') or {}
        return {'kind': 'Scale', 'apiVersion': 'autoscaling/v1',
                'metadata': {k: meta[k] for k in ('name', 'namespace', 'uid', 'resourceVersion', 'creationTimestamp') if k in meta},
                'spec': {'replicas': (obj.get('spec') or {}).get('replicas', 1)},
                'status': {'replicas': (obj.get('status') or {}).get('replicas', 0),
                           'selector': ','.join(f'{k}={v}' for k, v in sel.items())}}

    async def _serve_list(self, request: rendering.Request) -> Any:
        if request.params.get('watch') in ('true', '1'):
            return await self._serve_watch(request)
        rd, api = self._resolve(request)
        labels = parse_label_selector(request.params.get('labelSelector'))
        fields = parse_field_selector(rd, request.params.get('fieldSelector'))
        items = [o for o in self._objects(rd, api.namespace)
                 if match_labels(labels, o['metadata'].get('labels')) and match_fields(fields, o)]
        meta: dict[str, Any] = {'resourceVersion': str(self._rv)}
        token = request.params.get('continue')
        if token:
            try:
                after = tuple(json.loads(base64.urlsafe_b64decode(token.encode())).get('start'))
            except Exception:  # noqa: BLE001
                raise _err(400, 'BadRequest', 'continue key is not valid')
            items = [o for o in items if (o['metadata'].get('namespace') or '', o['metadata']['name']) > after]
        limit = int(request.params.get('limit') or 0)
        if limit and len(items) > limit:
            last = items[limit - 1]['metadata']
            meta['continue'] = base64.urlsafe_b64encode(json.dumps(
                {'rv': self._rv, 'start': [last.get('namespace') or '', last['name']]}).encode()).decode()
            meta['remainingItemCount'] = len(items) - limit
            items = items[:limit]
        if self._wants_table(request):
            table = self._table(rd, items, request.params)
            table['metadata'] = meta
            return self._respond(table)
        rendered = [self._render(rd, o) for o in items]
        if rd.crd_name is None:
            # As kube-apiserver: the items of a built-in kind's list carry no apiVersion and kind
            # (a custom resource's, served unstructured, do); clients must not rely on them.
            rendered = [{k: v for k, v in o.items() if k not in ('apiVersion', 'kind')} for o in rendered]
        return self._respond({'apiVersion': rd.api_version, 'kind': rd.list_kind, 'metadata': meta,
                              'items': rendered})

    async def _serve_watch(self, request: rendering.Request) -> Any:
        rd, api = self._resolve(request)
        params = request.params
        watcher = _Watcher(rd=rd, namespace=api.namespace,
                           name=api.name, labels=parse_label_selector(params.get('labelSelector')),
                           fields=parse_field_selector(rd, params.get('fieldSelector')))
        if api.name is not None:
            watcher.name = api.name
        rv_param = params.get('resourceVersion')
        initial: list[dict[str, Any]] = []
        table = self._wants_table(request)
        async with self._lock:
            if not rv_param or rv_param == '0' or params.get('sendInitialEvents') == 'true':
                for o in self._objects(rd, api.namespace):
                    if watcher.matches(o):
                        initial.append({'type': 'ADDED', 'object': o})
                if params.get('sendInitialEvents') == 'true':
                    initial.append({'type': 'BOOKMARK', 'object': {
                        'kind': rd.kind, 'apiVersion': rd.api_version, 'metadata': {
                            'resourceVersion': str(self._rv), 'annotations': {'k8s.io/initial-events-end': 'true'}}}})
            else:
                try:
                    since = int(rv_param)
                except ValueError:
                    raise _err(400, 'BadRequest', f'invalid resource version: {rv_param}')
                floor = self._history[0].rv - 1 if len(self._history) == self._history.maxlen else 0
                floor = max(floor, self._compacted)
                if since < floor:
                    gone = {'type': 'ERROR', 'object': {
                        'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Failure', 'code': 410,
                        'reason': 'Expired', 'message': f'too old resource version: {since} ({floor + 1})'}}
                    return rendering.Response(status=200, headers={'Content-Type': 'application/json', 'Warning': None},
                                              payload=self._single(gone))
                for ev in self._history:
                    if ev.rv > since and ev.key == (rd.group, rd.plural):
                        watcher.queue.put_nowait(ev)
            self._watchers.add(watcher)
        timeout = float(params['timeoutSeconds']) if params.get('timeoutSeconds') else None
        bookmarks = params.get('allowWatchBookmarks') in ('true', '1')
        return rendering.Response(status=200, headers={'Content-Type': 'application/json', 'Warning': None},
                                  payload=self._stream(rd, watcher, initial, timeout, bookmarks, table, params))

    async def _single(self, event: dict[str, Any]) -> AsyncIterator[Any]:
        yield event

    def _watch_event(self, rd: ResourceDef, w: _Watcher, ev: _Event, table: bool, params: Any) -> dict[str, Any] | None:
        now_match = w.matches(ev.obj)
        etype = ev.type
        if etype == 'MODIFIED':
            was_match = w.matches(ev.old)
            if now_match and not was_match:
                etype = 'ADDED'
            elif was_match and not now_match:
                etype = 'DELETED'
            elif not now_match:
                return None
        elif not now_match:
            return None
        obj = self._table(rd, [ev.obj], params) if table else self._render(rd, ev.obj)
        return {'type': etype, 'object': obj}

    async def _stream(self, rd: ResourceDef, w: _Watcher, initial: list[dict[str, Any]], timeout: float | None,
                      bookmarks: bool, table: bool, params: Any) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        try:
            yield b''   # send the headers now (and never let kmock see an empty stream)
            for item in initial:
                if item['type'] == 'BOOKMARK':
                    yield item
                else:
                    yield {'type': 'ADDED', 'object': self._table(rd, [item['object']], params) if table
                           else self._render(rd, item['object'])}
            deadline = loop.time() + timeout if timeout else None
            next_bookmark = loop.time() + self.bookmark_interval if bookmarks else None
            while True:
                waits = [t - loop.time() for t in (deadline, next_bookmark) if t is not None]
                try:
                    ev = await asyncio.wait_for(w.queue.get(), timeout=max(0.0, min(waits)) if waits else None)
                except asyncio.TimeoutError:
                    now = loop.time()
                    if deadline is not None and now >= deadline:
                        return
                    if next_bookmark is not None and now >= next_bookmark:
                        next_bookmark = now + self.bookmark_interval
                        yield {'type': 'BOOKMARK', 'object': {'kind': rd.kind, 'apiVersion': rd.api_version,
                                                               'metadata': {'resourceVersion': str(self._rv)}}}
                    continue
                if ev is None:   # shutdown
                    return
                lag = self.watch_lag.get((rd.group, rd.plural))
                if lag:
                    await asyncio.sleep(lag)
                out = self._watch_event(rd, w, ev, table, params)
                if out is not None:
                    yield out
        finally:
            self._watchers.discard(w)

    def close_watches(self) -> None:
        for w in list(self._watchers):
            w.queue.put_nowait(None)

    def compact(self) -> int:
        """What etcd's compaction does to clients: every event up to now is forgotten and every
        watch is cut, so a watch resumed from an older resourceVersion gets 410 Gone."""
        self._compacted = self._rv
        self._history.clear()
        self.close_watches()
        return self._compacted

    def _body(self, request: rendering.Request) -> Any:
        ctype = (request.headers.get('Content-Type') or '').split(';')[0].strip()
        if 'yaml' in ctype:
            try:
                return yaml.safe_load(request.text)
            except yaml.YAMLError as e:
                raise _err(400, 'BadRequest', f'error decoding YAML: {e}')
        if request.data is None and request.body:
            raise _err(400, 'BadRequest', 'the body of the request could not be decoded as JSON')
        return request.data

    async def _serve_create(self, request: rendering.Request) -> Any:
        rd, api = self._resolve(request)
        if api.name is not None:
            raise _err(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource')
        obj, warnings = await self.create_object(rd, api.namespace, self._body(request),
                                                 manager=self._manager(request), params=request.params)
        return self._respond(obj, 201, warnings)

    async def _serve_put(self, request: rendering.Request) -> Any:
        rd, api = self._resolve(request)
        if api.name is None:
            raise _err(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource')
        body = self._body(request)
        if api.subresource == 'scale':
            replicas = ((body or {}).get('spec') or {}).get('replicas')
            obj, warnings = await self.patch_object(rd, api.namespace, api.name, {'spec': {'replicas': replicas}}, 'merge',
                                                    manager=self._manager(request), params=request.params)
            return self._respond(self._scale(rd, self._lookup(rd, api.namespace, api.name) or obj), 200, warnings)
        obj, warnings = await self.update_object(rd, api.namespace, api.name, body, sub=api.subresource,
                                                 manager=self._manager(request), params=request.params)
        return self._respond(obj, 200, warnings)

    async def _serve_patch(self, request: rendering.Request) -> Any:
        rd, api = self._resolve(request)
        assert api.name is not None
        ctype = (request.headers.get('Content-Type') or '').split(';')[0].strip()
        body = self._body(request)
        if ctype == 'application/apply-patch+yaml':
            manager = request.params.get('fieldManager')
            if not manager:
                raise _err(400, 'BadRequest', 'PATCH, application/apply-patch+yaml requires fieldManager to be set')
            obj, warnings, created = await self.apply_object(
                rd, api.namespace, api.name, body, sub=api.subresource, manager=manager,
                force=request.params.get('force') in ('true', '1'), params=request.params)
            return self._respond(obj, 201 if created else 200, warnings)
        ptype = {'application/merge-patch+json': 'merge', 'application/strategic-merge-patch+json': 'strategic',
                 'application/json-patch+json': 'json'}.get(ctype)
        if ptype is None:
            raise _err(415, 'UnsupportedMediaType', 'the body of the request was in an unknown format - accepted '
                       'media types include: application/json-patch+json, application/merge-patch+json, '
                       'application/apply-patch+yaml, application/strategic-merge-patch+json')
        if ptype == 'strategic' and rd.crd_name:
            raise _err(415, 'UnsupportedMediaType', 'strategic merge patch is not supported for custom resources')
        if api.subresource == 'scale':
            scale = _patch.merge_patch(self._scale(rd, self._lookup(rd, api.namespace, api.name) or {'metadata': {}}), body)
            replicas = (scale.get('spec') or {}).get('replicas')
            await self.patch_object(rd, api.namespace, api.name, {'spec': {'replicas': replicas}}, 'merge',
                                    manager=self._manager(request), params=request.params)
            return self._respond(self._scale(rd, self._lookup(rd, api.namespace, api.name) or {}))
        obj, warnings = await self.patch_object(rd, api.namespace, api.name, body, ptype, sub=api.subresource,
                                                manager=self._manager(request), params=request.params)
        return self._respond(obj, 200, warnings)

    async def _serve_delete(self, request: rendering.Request) -> Any:
        rd, api = self._resolve(request)
        assert api.name is not None
        options = self._body(request) if request.body else {}
        obj = await self.delete_object(rd, api.namespace, api.name, options if isinstance(options, dict) else {},
                                       request.params)
        still = self._lookup(rd, api.namespace, api.name)
        if still is not None or (rd.plural == 'pods' and not rd.group):
            return self._respond(obj)
        return self._respond({'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Success',
                              'details': {'name': api.name, 'group': rd.group, 'kind': rd.plural,
                                          'uid': obj['metadata'].get('uid')}})

    async def _serve_delete_collection(self, request: rendering.Request) -> Any:
        rd, api = self._resolve(request)
        if api.name is not None:
            raise _err(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource')
        labels = parse_label_selector(request.params.get('labelSelector'))
        fields = parse_field_selector(rd, request.params.get('fieldSelector'))
        deleted = []
        for o in self._objects(rd, api.namespace):
            if match_labels(labels, o['metadata'].get('labels')) and match_fields(fields, o):
                try:
                    deleted.append(await self.delete_object(rd, o['metadata'].get('namespace'), o['metadata']['name'],
                                                            {}, request.params))
                except ApiError:
                    pass
        return self._respond({'apiVersion': rd.api_version, 'kind': rd.list_kind,
                              'metadata': {'resourceVersion': str(self._rv)}, 'items': deleted})

    # ------------------------------------------------------------------------------------------
    # Server-side tables (kubectl get).

    _NAME_COL = {'name': 'Name', 'type': 'string', 'format': 'name', 'priority': 0,
                 'description': 'Name must be unique within a namespace.'}
    _AGE_COL = {'name': 'Age', 'type': 'date', 'format': '', 'priority': 0,
                'description': 'CreationTimestamp is a timestamp representing the server time when this object was created.'}

    def _columns(self, rd: ResourceDef) -> tuple[list[dict[str, Any]], Callable[[dict[str, Any]], list[Any]]]:
        if rd.crd_name:
            pcs = rd.printer_columns or [{'name': 'Age', 'type': 'date', 'jsonPath': '.metadata.creationTimestamp'}]
            cols = [self._NAME_COL] + [{'name': c['name'], 'type': c.get('type', 'string'), 'format': c.get('format', ''),
                                        'description': c.get('description', ''), 'priority': c.get('priority', 0)}
                                       for c in pcs]

            def cells(o: dict[str, Any]) -> list[Any]:
                row: list[Any] = [o['metadata']['name']]
                for c in pcs:
                    vals = jsonpath(o, c.get('jsonPath', ''))
                    if not vals:
                        row.append(None)
                    elif c.get('type') == 'date':
                        row.append(_age(vals[0]) if isinstance(vals[0], str) else vals[0])
                    elif c.get('type') in ('integer', 'number', 'boolean') and len(vals) == 1:
                        row.append(vals[0])
                    else:
                        row.append(','.join(v if isinstance(v, str) else json.dumps(v) for v in vals))
                return row
            return cols, cells
        if rd.plural == 'pods' and not rd.group:
            cols = [self._NAME_COL,
                    {'name': 'Ready', 'type': 'string', 'format': '', 'priority': 0, 'description': 'The aggregate readiness state of this pod for accepting traffic.'},
                    {'name': 'Status', 'type': 'string', 'format': '', 'priority': 0, 'description': 'The aggregate status of the containers in this pod.'},
                    {'name': 'Restarts', 'type': 'string', 'format': '', 'priority': 0, 'description': 'The number of times the containers in this pod have been restarted.'},
                    self._AGE_COL]

            def pod_cells(o: dict[str, Any]) -> list[Any]:
                st = o.get('status') or {}
                cs = st.get('containerStatuses') or []
                total = len((o.get('spec') or {}).get('containers') or []) or len(cs)
                ready = sum(1 for c in cs if c.get('ready'))
                phase = 'Terminating' if o['metadata'].get('deletionTimestamp') else (st.get('reason') or st.get('phase') or '')
                restarts = sum(int(c.get('restartCount') or 0) for c in cs)
                return [o['metadata']['name'], f'{ready}/{total}', phase, str(restarts),
                        _age(o['metadata'].get('creationTimestamp'))]
            return cols, pod_cells
        return [self._NAME_COL, self._AGE_COL], lambda o: [o['metadata']['name'], _age(o['metadata'].get('creationTimestamp'))]

    def _table(self, rd: ResourceDef, objs: list[dict[str, Any]], params: Any) -> dict[str, Any]:
        cols, cells = self._columns(rd)
        include = params.get('includeObject', 'Metadata')
        rows = []
        for o in objs:
            row: dict[str, Any] = {'cells': cells(o)}
            if include == 'Object':
                row['object'] = self._render(rd, o)
            elif include != 'None':
                row['object'] = {'kind': 'PartialObjectMetadata', 'apiVersion': 'meta.k8s.io/v1',
                                 'metadata': copy.deepcopy(o['metadata'])}
            rows.append(row)
        return {'kind': 'Table', 'apiVersion': 'meta.k8s.io/v1', 'metadata': {'resourceVersion': str(self._rv)},
                'columnDefinitions': cols, 'rows': rows}

    # ------------------------------------------------------------------------------------------
    # Direct (in-loop) access for tests: the same semantics as the API.

    def get(self, api_version: str, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        rd = self.find_def(api_version, plural)
        obj = self._lookup(rd, namespace if rd.namespaced else None, name)
        return None if obj is None else self._render(rd, obj)

    def list(self, api_version: str, plural: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict[str, Any]]:
        rd = self.find_def(api_version, plural)
        sel = parse_label_selector(label_selector)
        return [self._render(rd, o) for o in self._objects(rd, namespace)
                if match_labels(sel, o['metadata'].get('labels'))]

    async def create(self, obj: dict[str, Any], *, manager: str = 'emulator') -> dict[str, Any]:
        rd = self.find_def(obj.get('apiVersion', ''), obj.get('kind', ''))
        result, _ = await self.create_object(rd, (obj.get('metadata') or {}).get('namespace'), obj, manager=manager)
        return result

    async def patch(self, api_version: str, plural: str, namespace: str | None, name: str, patch: Any, *,
                    subresource: str | None = None, manager: str = 'emulator') -> dict[str, Any]:
        rd = self.find_def(api_version, plural)
        result, _ = await self.patch_object(rd, namespace, name, patch, 'merge', sub=subresource, manager=manager)
        return result

    async def patch_status(self, api_version: str, plural: str, namespace: str | None, name: str,
                           status: dict[str, Any], *, manager: str = 'emulator') -> dict[str, Any]:
        return await self.patch(api_version, plural, namespace, name, {'status': status},
                                subresource='status' if self.find_def(api_version, plural).has_status else None,
                                manager=manager)

    async def delete(self, api_version: str, plural: str, namespace: str | None, name: str, *,
                     propagation_policy: str | None = None) -> dict[str, Any]:
        rd = self.find_def(api_version, plural)
        opts = {'propagationPolicy': propagation_policy} if propagation_policy else {}
        return await self.delete_object(rd, namespace, name, opts)

    @property
    def resource_version(self) -> int:
        return self._rv


# ----------------------------------------------------------------------------------------------
# The threaded, synchronous wrapper.

def _kubeconfig(url: str) -> dict[str, Any]:
    return {'apiVersion': 'v1', 'kind': 'Config', 'current-context': 'emulator', 'preferences': {},
            'clusters': [{'name': 'emulator', 'cluster': {'server': url}}],
            'users': [{'name': 'emulator', 'user': {'token': 'emulator-token'}}],
            'contexts': [{'name': 'emulator', 'context': {'cluster': 'emulator', 'user': 'emulator',
                                                           'namespace': 'default'}}]}


async def serve(emulator: Emulator, host: str = '127.0.0.1', port: int = 0) -> tuple[aiohttp.web.BaseRunner, int]:
    """Start serving an (entered) emulator over HTTP; returns the runner (to clean up) and the port."""
    server = aiohttp.web.Server(emulator, handler_cancellation=True)
    runner = aiohttp.web.ServerRunner(server, shutdown_timeout=0.5)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, host, port)
    await site.start()
    sockets = site._server.sockets if site._server is not None else []  # type: ignore[union-attr]
    return runner, sockets[0].getsockname()[1]


class EmulatorThread:
    """Runs an :class:`Emulator` on 127.0.0.1:<random port> in a background thread with its own loop."""

    def __init__(self, crds: Iterable[Path | str | dict[str, Any]] = (), *, host: str = '127.0.0.1', port: int = 0,
                 history_size: int = 10000, bookmark_interval: float = 30.0,
                 priority_and_fairness: bool = True) -> None:
        self._crds = list(crds)
        self._host, self._port = host, port
        self._kwargs = dict(history_size=history_size, bookmark_interval=bookmark_interval,
                            priority_and_fairness=priority_and_fairness)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.emulator: Emulator | None = None
        self.port: int = 0

    def __enter__(self) -> EmulatorThread:
        self._thread = threading.Thread(target=self._run, name='k8s-emulator', daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # noqa: BLE001
            self._error = e
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.emulator = Emulator(crds=self._crds, **self._kwargs)  # type: ignore[arg-type]
        async with self.emulator:
            runner, self.port = await serve(self.emulator, self._host, self._port)
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                self.emulator.close_watches()
                await asyncio.sleep(0)
                await runner.cleanup()

    def _call(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    async def _sync(self, fn: Callable[[], Any]) -> Any:
        return fn()

    @property
    def url(self) -> str:
        return f'http://{self._host}:{self.port}'

    @property
    def handler(self) -> Emulator:
        assert self.emulator is not None
        return self.emulator

    def write_kubeconfig(self, path: Path | str) -> Path:
        path = Path(path)
        path.write_text(yaml.safe_dump(_kubeconfig(self.url)))
        return path

    def get(self, api_version: str, plural: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self._call(self._sync(lambda: self.handler.get(api_version, plural, namespace, name)))

    def list(self, api_version: str, plural: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict[str, Any]]:
        return self._call(self._sync(lambda: self.handler.list(api_version, plural, namespace, label_selector)))

    def create(self, obj: dict[str, Any], **kw: Any) -> dict[str, Any]:
        return self._call(self.handler.create(obj, **kw))

    def patch(self, api_version: str, plural: str, namespace: str | None, name: str, patch: Any, **kw: Any) -> dict[str, Any]:
        return self._call(self.handler.patch(api_version, plural, namespace, name, patch, **kw))

    def patch_status(self, api_version: str, plural: str, namespace: str | None, name: str,
                     status: dict[str, Any], **kw: Any) -> dict[str, Any]:
        return self._call(self.handler.patch_status(api_version, plural, namespace, name, status, **kw))

    def delete(self, api_version: str, plural: str, namespace: str | None, name: str, **kw: Any) -> dict[str, Any]:
        return self._call(self.handler.delete(api_version, plural, namespace, name, **kw))

    def load(self, sources: Iterable[Path | str | dict[str, Any]]) -> None:
        self._call(self.handler.load(list(sources)))

    def close_watches(self) -> None:
        """Cut every watch stream (clients resume from their last resourceVersion)."""
        self._call(self._sync(self.handler.close_watches))

    def compact(self) -> int:
        """Forget the event history and cut the watches: resumes from before now get 410 Gone."""
        return self._call(self._sync(self.handler.compact))

    @property
    def requests(self) -> list[RequestRecord]:
        return list(self.handler.records)

    def writes(self, since: int = 0, user_agent_contains: str | None = None) -> list[RequestRecord]:
        return [r for r in self.handler.records[since:]
                if r.verb in WRITE_VERBS and (user_agent_contains is None or user_agent_contains in (r.user_agent or ''))]

    @property
    def resource_version(self) -> int:
        return self.handler.resource_version


# ----------------------------------------------------------------------------------------------
# CLI.

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog='python -m sparkbook.testing.emulator',
                                     description='Serve an in-process Kubernetes API emulator until killed.')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=0)
    parser.add_argument('--crds', action='append', default=[], help='a CRD YAML file or a directory (repeatable)')
    parser.add_argument('--kubeconfig', help='write a kubeconfig pointing to the emulator here')
    parser.add_argument('--bookmark-interval', type=float, default=30.0)
    args = parser.parse_args(argv)

    async def run() -> None:
        emu = Emulator(crds=args.crds, bookmark_interval=args.bookmark_interval)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with emu:
            runner, port = await serve(emu, args.host, args.port)
            url = f'http://{args.host}:{port}'
            if args.kubeconfig:
                Path(args.kubeconfig).write_text(yaml.safe_dump(_kubeconfig(url)))
            print(f'Kubernetes API emulator serving on {url}', flush=True)
            await stop.wait()
            emu.close_watches()
            await runner.cleanup()

    asyncio.run(run())


if __name__ == '__main__':
    main()
