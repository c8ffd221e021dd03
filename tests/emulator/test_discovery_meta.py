"""Discovery, built-in kinds, CRD registration, metadata and the events API."""
from __future__ import annotations

import re
import uuid

from emu_helpers import WIDGETS, load_yaml, CRD_PATH, pod, widget

EXPECTED = {
    ('', 'v1'): {'namespaces': ('Namespace', False, ['ns']), 'pods': ('Pod', True, ['po']),
                 'services': ('Service', True, ['svc']), 'serviceaccounts': ('ServiceAccount', True, ['sa']),
                 'secrets': ('Secret', True, []), 'configmaps': ('ConfigMap', True, ['cm']),
                 'events': ('Event', True, ['ev']), 'persistentvolumeclaims': ('PersistentVolumeClaim', True, ['pvc']),
                 'endpoints': ('Endpoints', True, ['ep'])},
    ('apps', 'v1'): {'statefulsets': ('StatefulSet', True, ['sts']), 'deployments': ('Deployment', True, ['deploy'])},
    ('rbac.authorization.k8s.io', 'v1'): {'roles': ('Role', True, []), 'rolebindings': ('RoleBinding', True, []),
                                          'clusterroles': ('ClusterRole', False, []),
                                          'clusterrolebindings': ('ClusterRoleBinding', False, [])},
    ('networking.k8s.io', 'v1'): {'networkpolicies': ('NetworkPolicy', True, ['netpol']),
                                  'ingresses': ('Ingress', True, ['ing'])},
    ('coordination.k8s.io', 'v1'): {'leases': ('Lease', True, [])},
    ('events.k8s.io', 'v1'): {'events': ('Event', True, ['ev'])},
    ('policy', 'v1'): {'poddisruptionbudgets': ('PodDisruptionBudget', True, ['pdb'])},
    ('apiextensions.k8s.io', 'v1'): {'customresourcedefinitions': ('CustomResourceDefinition', False, ['crd', 'crds'])},
}


def test_builtin_discovery(api):
    status, body, headers = api.get('/api')
    assert status == 200 and body['kind'] == 'APIVersions' and body['versions'] == ['v1']
    assert headers['Content-Type'].startswith('application/json')
    _, groups, _ = api.get('/apis')
    names = {g['name'] for g in groups['groups']}
    assert {g for g, _ in EXPECTED if g} <= names
    for (group, version), resources in EXPECTED.items():
        path = f'/api/{version}' if not group else f'/apis/{group}/{version}'
        status, body, _ = api.get(path)
        assert status == 200 and body['kind'] == 'APIResourceList'
        by_name = {r['name']: r for r in body['resources']}
        for plural, (kind, namespaced, short) in resources.items():
            r = by_name[plural]
            assert (r['kind'], r['namespaced'], sorted(r['shortNames'])) == (kind, namespaced, sorted(short))
            assert {'get', 'list', 'watch', 'create', 'patch', 'update', 'delete'} <= set(r['verbs'])
    _, v1, _ = api.get('/api/v1')
    subs = {r['name'] for r in v1['resources']}
    assert {'pods/status', 'pods/log', 'namespaces/status'} <= subs
    _, apps, _ = api.get('/apis/apps/v1')
    scale = next(r for r in apps['resources'] if r['name'] == 'deployments/scale')
    assert scale['kind'] == 'Scale' and scale['group'] == 'autoscaling'
    assert 'deployments/status' in {r['name'] for r in apps['resources']}
    assert api.get('/apis/nonexistent.io/v1')[0] == 404
    assert api.get('/version')[1]['major'] == '1'


def test_crd_preloaded_and_created_via_api_and_deleted(emu, api):
    _, body, _ = api.get('/apis/example.com/v1')
    w = next(r for r in body['resources'] if r['name'] == 'widgets')
    assert w['kind'] == 'Widget' and w['shortNames'] == ['wg'] and w['categories'] == ['gadgets'] and w['namespaced']
    assert 'widgets/status' in {r['name'] for r in body['resources']}

    crd = load_yaml(CRD_PATH)
    crd['metadata']['name'] = 'gizmos.toys.io'
    crd['spec'].update(group='toys.io', scope='Cluster')
    crd['spec']['names'] = {'plural': 'gizmos', 'singular': 'gizmo', 'kind': 'Gizmo', 'shortNames': ['gz']}
    del crd['spec']['versions'][0]['subresources']
    status, created, _ = api.post('/apis/apiextensions.k8s.io/v1/customresourcedefinitions', crd)
    assert status == 201, created
    conds = {c['type']: c['status'] for c in emu.get('apiextensions.k8s.io/v1', 'customresourcedefinitions', None,
                                                       'gizmos.toys.io')['status']['conditions']}
    assert conds == {'NamesAccepted': 'True', 'Established': 'True'}
    _, body, _ = api.get('/apis/toys.io/v1')
    assert body['resources'] == [{'name': 'gizmos', 'singularName': 'gizmo', 'namespaced': False, 'kind': 'Gizmo',
                                  'verbs': body['resources'][0]['verbs'], 'shortNames': ['gz'], 'categories': []}]
    g = {'apiVersion': 'toys.io/v1', 'kind': 'Gizmo', 'metadata': {'name': 'g1'}, 'spec': {'size': 2}}
    assert api.post('/apis/toys.io/v1/gizmos', g)[0] == 201
    # no status subresource: status is stored through the main resource
    status, body, _ = api.patch('/apis/toys.io/v1/gizmos/g1', {'status': {'phase': 'Up'}})
    assert status == 200 and body['status'] == {'phase': 'Up'}
    assert api.get('/apis/toys.io/v1/gizmos/g1/status')[0] == 404

    assert api.delete('/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gizmos.toys.io')[0] == 200
    assert api.get('/apis/toys.io/v1')[0] == 404
    assert api.get('/apis/toys.io/v1/gizmos')[0] == 404
    assert 'toys.io' not in {g['name'] for g in api.get('/apis')[1]['groups']}


def test_metadata_fields_generation_and_global_rv(emu, api):
    status, w, _ = api.post(WIDGETS, widget())
    assert status == 201
    meta = w['metadata']
    uuid.UUID(meta['uid'], version=4)
    assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ', meta['creationTimestamp'])
    assert meta['generation'] == 1
    rv1 = int(meta['resourceVersion'])
    _, p, _ = api.post('/api/v1/namespaces/default/pods', pod('p1'))
    assert int(p['metadata']['resourceVersion']) == rv1 + 1   # one global counter across kinds

    _, w2, _ = api.patch(f'{WIDGETS}/w1', {'metadata': {'labels': {'a': 'b'}}})
    assert w2['metadata']['generation'] == 1 and int(w2['metadata']['resourceVersion']) > rv1 + 1
    _, w3, _ = api.patch(f'{WIDGETS}/w1/status', {'status': {'phase': 'Ready'}})
    assert w3['metadata']['generation'] == 1 and w3['status'] == {'phase': 'Ready'}
    _, w4, _ = api.patch(f'{WIDGETS}/w1', {'spec': {'size': 4}})
    assert w4['metadata']['generation'] == 2
    # a resource without a status subresource: still no bump for metadata/status-only changes
    _, cm, _ = api.post('/api/v1/namespaces/default/configmaps', {'metadata': {'name': 'c'}, 'data': {'a': '1'}})
    _, cm2, _ = api.patch('/api/v1/namespaces/default/configmaps/c', {'metadata': {'annotations': {'x': 'y'}}})
    assert cm2['metadata']['generation'] == 1
    _, cm3, _ = api.patch('/api/v1/namespaces/default/configmaps/c', {'data': {'a': '2'}})
    assert cm3['metadata']['generation'] == 2


def test_generate_name_and_namespaces(api):
    status, body, _ = api.post('/api/v1/namespaces/default/configmaps', {'metadata': {'generateName': 'cm-'}})
    assert status == 201 and re.fullmatch(r'cm-[a-z0-9]{5}', body['metadata']['name'])
    for ns in ('default', 'kube-system'):
        assert api.get(f'/api/v1/namespaces/{ns}')[0] == 200
    status, body, _ = api.post('/api/v1/namespaces/nope/configmaps', {'metadata': {'name': 'x'}})
    assert status == 404 and body['reason'] == 'NotFound' and body['message'] == 'namespaces "nope" not found'
    assert api.get('/api/v1/namespaces/nope')[0] == 404
    status, ns, _ = api.post('/api/v1/namespaces', {'metadata': {'name': 'team-a'}})
    assert status == 201 and ns['status']['phase'] == 'Active'
    assert api.post('/api/v1/namespaces/team-a/configmaps', {'metadata': {'name': 'x'}})[0] == 201


def test_events_api(api):
    ev = {'apiVersion': 'v1', 'kind': 'Event', 'metadata': {'generateName': 'kopf-event-', 'namespace': 'default'},
          'involvedObject': {'kind': 'Widget', 'name': 'w1', 'namespace': 'default', 'apiVersion': 'example.com/v1'},
          'reason': 'Logging', 'message': 'hello', 'type': 'Normal', 'source': {'component': 'kopf'}}
    status, body, _ = api.post('/api/v1/namespaces/default/events', ev)
    assert status == 201 and body['message'] == 'hello'
    _, lst, _ = api.get('/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dw1')
    assert [e['reason'] for e in lst['items']] == ['Logging']
    _, lst, _ = api.get('/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dother')
    assert lst['items'] == []
    new = {'apiVersion': 'events.k8s.io/v1', 'kind': 'Event', 'metadata': {'name': 'e2'},
           'regarding': {'kind': 'Pod', 'name': 'p'}, 'reason': 'R', 'note': 'n', 'type': 'Normal',
           'action': 'A', 'reportingController': 'c', 'reportingInstance': 'i', 'eventTime': '2025-01-01T00:00:00.000000Z'}
    assert api.post('/apis/events.k8s.io/v1/namespaces/default/events', new)[0] == 201
