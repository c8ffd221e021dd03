"""Finalizers, ownerReference garbage collection, orphaning and namespace deletion."""
from __future__ import annotations

from emu_helpers import WIDGETS, pod, widget

PODS = '/api/v1/namespaces/default/pods'
CMS = '/api/v1/namespaces/default/configmaps'


def owned(name, owner, kind='Widget', api_version='example.com/v1'):
    return {'metadata': {'name': name, 'ownerReferences': [
        {'apiVersion': api_version, 'kind': kind, 'name': owner['metadata']['name'], 'uid': owner['metadata']['uid']}]}}


def test_finalizers_block_deletion(emu, api):
    api.post(WIDGETS, dict(widget(), metadata={'name': 'w1', 'finalizers': ['example.com/f']}))
    status, w, _ = api.delete(f'{WIDGETS}/w1')
    assert status == 200 and w['metadata']['deletionTimestamp'] and w['metadata']['deletionGracePeriodSeconds'] == 0
    assert api.get(f'{WIDGETS}/w1')[0] == 200
    status, body, _ = api.patch(f'{WIDGETS}/w1', {'metadata': {'finalizers': ['example.com/f', 'new']}})
    assert status == 422 and 'no new finalizers' in body['message']
    status, _, _ = api.patch(f'{WIDGETS}/w1', {'metadata': {'finalizers': None}})
    assert status == 200
    assert api.get(f'{WIDGETS}/w1')[0] == 404
    types = [(e.type, e.obj['metadata']['name']) for e in emu.handler._history if e.key == ('example.com', 'widgets')]
    assert types[-1] == ('DELETED', 'w1')


def test_pods_are_deleted_immediately(api):
    api.post(PODS, pod('p1'))
    status, body, _ = api.delete(f'{PODS}/p1')
    assert status == 200 and body['kind'] == 'Pod'
    assert api.get(f'{PODS}/p1')[0] == 404


def test_garbage_collection_cascades_and_respects_finalizers(emu, api):
    _, w, _ = api.post(WIDGETS, widget())
    _, cm, _ = api.post(CMS, owned('child', w))
    api.post(CMS, owned('grandchild', cm, 'ConfigMap', 'v1'))
    blocked = owned('blocked', w)
    blocked['metadata']['finalizers'] = ['keep']
    api.post(CMS, blocked)
    _, other, _ = api.post(WIDGETS, widget('w2'))
    two = owned('two-owners', w)
    two['metadata']['ownerReferences'].append(owned('x', other)['metadata']['ownerReferences'][0])
    api.post(CMS, two)

    api.delete(f'{WIDGETS}/w1', {'propagationPolicy': 'Background'})
    assert api.get(f'{CMS}/child')[0] == 404
    assert api.get(f'{CMS}/grandchild')[0] == 404
    _, b, _ = api.get(f'{CMS}/blocked')
    assert b['metadata']['deletionTimestamp']
    _, t, _ = api.get(f'{CMS}/two-owners')
    assert [r['name'] for r in t['metadata']['ownerReferences']] == ['w2']
    api.patch(f'{CMS}/blocked', {'metadata': {'finalizers': []}})
    assert api.get(f'{CMS}/blocked')[0] == 404


def test_orphan_propagation(api):
    _, w, _ = api.post(WIDGETS, widget())
    api.post(CMS, owned('child', w))
    status, _, _ = api('DELETE', f'{WIDGETS}/w1?propagationPolicy=Orphan')
    assert status == 200
    _, c, _ = api.get(f'{CMS}/child')
    assert 'ownerReferences' not in c['metadata']


def test_namespace_deletion(emu, api):
    api.post('/api/v1/namespaces', {'metadata': {'name': 'tmp'}})
    api.post('/api/v1/namespaces/tmp/configmaps', {'metadata': {'name': 'c1'}})
    w = widget('w', 'tmp')
    w['metadata']['finalizers'] = ['hold']
    api.post('/apis/example.com/v1/namespaces/tmp/widgets', w)
    status, ns, _ = api.delete('/api/v1/namespaces/tmp')
    assert status == 200 and ns['status']['phase'] == 'Terminating'
    assert api.get('/api/v1/namespaces/tmp/configmaps/c1')[0] == 404
    assert api.get('/api/v1/namespaces/tmp')[1]['status']['phase'] == 'Terminating'
    status, body, _ = api.post('/api/v1/namespaces/tmp/configmaps', {'metadata': {'name': 'c2'}})
    assert status == 403 and 'being terminated' in body['message']
    api.patch('/apis/example.com/v1/namespaces/tmp/widgets/w', {'metadata': {'finalizers': None}})
    assert api.get('/api/v1/namespaces/tmp')[0] == 404
    assert emu.get('v1', 'namespaces', None, 'tmp') is None
    status, body, _ = api.delete('/api/v1/namespaces/default')
    assert status == 403 and body['message'] == 'namespaces "default" is forbidden: this namespace may not be deleted'
