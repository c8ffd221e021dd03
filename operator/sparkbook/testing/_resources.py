"""Resource definitions (built-in kinds and CRD-derived ones) for the API emulator."""
from __future__ import annotations

import dataclasses
import re
from typing import Any

ALL_VERBS = ('create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch')
SUB_VERBS = ('get', 'patch', 'update')


@dataclasses.dataclass
class ResourceDef:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ''
    short_names: list[str] = dataclasses.field(default_factory=list)
    categories: list[str] = dataclasses.field(default_factory=list)
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ()
    schema: dict[str, Any] | None = None          # openAPIV3Schema (CRDs only)
    printer_columns: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    crd_name: str | None = None                    # the owning CRD, if any
    list_kind: str = ''

    def __post_init__(self) -> None:
        self.singular = self.singular or self.kind.lower()
        self.list_kind = self.list_kind or f'{self.kind}List'

    @property
    def api_version(self) -> str:
        return f'{self.group}/{self.version}' if self.group else self.version

    @property
    def qualified(self) -> str:
        """`pods`, `deployments.apps`, `widgets.example.com` — as in the real error messages."""
        return f'{self.plural}.{self.group}' if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """`Pod`, `Deployment.apps`, `Widget.example.com` — as in the 'is invalid' messages."""
        return f'{self.kind}.{self.group}' if self.group else self.kind

    @property
    def has_status(self) -> bool:
        return 'status' in self.subresources


def _r(gv: str, plural: str, kind: str, namespaced: bool = True, short: tuple[str, ...] = (),
       subs: tuple[str, ...] = (), cats: tuple[str, ...] = (), verbs: tuple[str, ...] = ALL_VERBS) -> ResourceDef:
    group, _, version = gv.rpartition('/')
    return ResourceDef(group=group, version=version, plural=plural, kind=kind, namespaced=namespaced,
                       short_names=list(short), subresources=subs, categories=list(cats), verbs=verbs)


def builtin_resources() -> list[ResourceDef]:
    ns_verbs = ('create', 'delete', 'get', 'list', 'patch', 'update', 'watch')
    return [
        _r('v1', 'namespaces', 'Namespace', False, ('ns',), ('status', 'finalize'), verbs=ns_verbs),
        _r('v1', 'pods', 'Pod', True, ('po',), ('status', 'log'), ('all',)),
        _r('v1', 'services', 'Service', True, ('svc',), ('status',), ('all',)),
        _r('v1', 'serviceaccounts', 'ServiceAccount', True, ('sa',)),
        _r('v1', 'secrets', 'Secret', True),
        _r('v1', 'configmaps', 'ConfigMap', True, ('cm',)),
        _r('v1', 'events', 'Event', True, ('ev',)),
        _r('v1', 'persistentvolumeclaims', 'PersistentVolumeClaim', True, ('pvc',), ('status',)),
        _r('v1', 'endpoints', 'Endpoints', True, ('ep',)),
        _r('apps/v1', 'statefulsets', 'StatefulSet', True, ('sts',), ('status', 'scale'), ('all',)),
        _r('apps/v1', 'deployments', 'Deployment', True, ('deploy',), ('status', 'scale'), ('all',)),
        _r('rbac.authorization.k8s.io/v1', 'roles', 'Role', True),
        _r('rbac.authorization.k8s.io/v1', 'rolebindings', 'RoleBinding', True),
        _r('rbac.authorization.k8s.io/v1', 'clusterroles', 'ClusterRole', False),
        _r('rbac.authorization.k8s.io/v1', 'clusterrolebindings', 'ClusterRoleBinding', False),
        _r('networking.k8s.io/v1', 'networkpolicies', 'NetworkPolicy', True, ('netpol',)),
        _r('networking.k8s.io/v1', 'ingresses', 'Ingress', True, ('ing',), ('status',)),
        _r('coordination.k8s.io/v1', 'leases', 'Lease', True),
        _r('events.k8s.io/v1', 'events', 'Event', True, ('ev',)),
        _r('policy/v1', 'poddisruptionbudgets', 'PodDisruptionBudget', True, ('pdb',), ('status',)),
        _r('apiextensions.k8s.io/v1', 'customresourcedefinitions', 'CustomResourceDefinition', False,
           ('crd', 'crds'), ('status',)),
    ]


def resources_from_crd(crd: dict[str, Any]) -> list[ResourceDef]:
    """One ResourceDef per served version of a CRD."""
    spec = crd.get('spec') or {}
    names = spec.get('names') or {}
    result = []
    for ver in spec.get('versions') or []:
        if not ver.get('served', True):
            continue
        subs = ver.get('subresources') or {}
        schema = (ver.get('schema') or {}).get('openAPIV3Schema')
        result.append(ResourceDef(
            group=spec.get('group', ''), version=ver['name'], plural=names['plural'], kind=names['kind'],
            namespaced=spec.get('scope', 'Namespaced') == 'Namespaced',
            singular=names.get('singular') or names['kind'].lower(),
            short_names=list(names.get('shortNames') or []),
            categories=list(names.get('categories') or []),
            list_kind=names.get('listKind') or '',
            subresources=tuple(s for s in ('status', 'scale') if s in subs),
            schema=schema,
            printer_columns=list(ver.get('additionalPrinterColumns') or []),
            crd_name=(crd.get('metadata') or {}).get('name'),
        ))
    return result


_VERSION_RE = re.compile(r'^v(\d+)(?:(alpha|beta)(\d+))?$')


def version_priority(version: str) -> tuple[int, int, int, str]:
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first; others last."""
    m = _VERSION_RE.match(version)
    if not m:
        return (3, 0, 0, version)
    major, stage, minor = int(m.group(1)), m.group(2), int(m.group(3) or 0)
    rank = {None: 0, 'beta': 1, 'alpha': 2}[stage]
    return (rank, -major, -minor, version)
