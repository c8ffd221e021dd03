"""Optimistic concurrency, errors, status isolation, patch flavours and server-side apply."""
from __future__ import annotations

import json

import yaml

from emu_helpers import WIDGETS, pod, widget

PODS = '/api/v1/namespaces/default/pods'


def test_conflicts_and_not_found(api):
    _, w, _ = api.post(WIDGETS, widget())
    stale = w['metadata']['resourceVersion']
    api.patch(f'{WIDGETS}/w1', {'spec': {'size': 5}})
    expected = ('Operation cannot be fulfilled on widgets.example.com "w1": the object has been modified; '
                'please apply your changes to the latest version and try again')
    status, body, _ = api.put(f'{WIDGETS}/w1', dict(w, spec={'size': 6}))
    assert (status, body['reason'], body['message']) == (409, 'Conflict', expected)
    status, body, _ = api.patch(f'{WIDGETS}/w1', {'metadata': {'resourceVersion': stale}, 'spec': {'size': 6}})
    assert (status, body['reason']) == (409, 'Conflict')
    status, body, _ = api.post(WIDGETS, widget())
    assert (status, body['reason'], body['message']) == (409, 'AlreadyExists', 'widgets.example.com "w1" already exists')
    for method in ('GET', 'PATCH', 'DELETE'):
        status, body, _ = api(method, f'{WIDGETS}/zzz', {} if method == 'PATCH' else None,
                              ctype='application/merge-patch+json')
        assert (status, body['reason'], body['message']) == (404, 'NotFound', 'widgets.example.com "zzz" not found')
    assert api.get(f'{PODS}/zzz')[1]['message'] == 'pods "zzz" not found'
    assert api.get('/apis/apps/v1/namespaces/default/deployments/zzz')[1]['message'] == 'deployments.apps "zzz" not found'
    # PUT with the current resourceVersion works
    _, cur, _ = api.get(f'{WIDGETS}/w1')
    status, body, _ = api.put(f'{WIDGETS}/w1', dict(cur, spec={'size': 7}))
    assert status == 200 and body['spec']['size'] == 7
    # deletion preconditions
    status, body, _ = api.delete(f'{WIDGETS}/w1', {'preconditions': {'uid': 'not-the-uid'}})
    assert status == 409 and 'Precondition failed' in body['message']
    status, _, _ = api.delete(f'{WIDGETS}/w1', {'preconditions': {'uid': cur['metadata']['uid']}})
    assert status == 200 and api.get(f'{WIDGETS}/w1')[0] == 404


def test_status_subresource_isolation(api):
    api.post(WIDGETS, dict(widget(), status={'phase': 'ignored-on-create'}))
    _, w, _ = api.get(f'{WIDGETS}/w1')
    assert 'status' not in w
    _, w, _ = api.patch(f'{WIDGETS}/w1', {'spec': {'size': 4}, 'status': {'phase': 'ignored'}})
    assert w['spec']['size'] == 4 and 'status' not in w
    _, w, _ = api.patch(f'{WIDGETS}/w1/status', {'spec': {'size': 9}, 'status': {'phase': 'Ready'}})
    assert w['spec']['size'] == 4 and w['status'] == {'phase': 'Ready'}
    _, w, _ = api.put(f'{WIDGETS}/w1', dict(w, status={'phase': 'other'}, spec={'size': 5}))
    assert w['status'] == {'phase': 'Ready'} and w['spec']['size'] == 5
    _, w, _ = api.put(f'{WIDGETS}/w1/status', dict(w, status={'phase': 'Done'}, spec={'size': 1}))
    assert w['status'] == {'phase': 'Done'} and w['spec']['size'] == 5
    # pods and statefulsets have it too; configmaps (no subresource) store status-like fields normally
    api.post(PODS, pod('p1'))
    _, p, _ = api.patch(f'{PODS}/p1', {'status': {'phase': 'Running'}})
    assert p['status']['phase'] == 'Pending'
    _, p, _ = api.patch(f'{PODS}/p1/status', {'status': {'phase': 'Running'}})
    assert p['status']['phase'] == 'Running'
    sts = {'apiVersion': 'apps/v1', 'kind': 'StatefulSet', 'metadata': {'name': 's'},
           'spec': {'replicas': 1, 'selector': {'matchLabels': {'a': 'b'}}, 'template': {}}}
    api.post('/apis/apps/v1/namespaces/default/statefulsets', sts)
    _, s, _ = api.patch('/apis/apps/v1/namespaces/default/statefulsets/s', {'status': {'readyReplicas': 1}})
    assert 'status' not in s
    _, s, _ = api.patch('/apis/apps/v1/namespaces/default/statefulsets/s/status', {'status': {'readyReplicas': 1}})
    assert s['status'] == {'readyReplicas': 1}
    _, sc, _ = api.get('/apis/apps/v1/namespaces/default/statefulsets/s/scale')
    assert sc['kind'] == 'Scale' and sc['spec']['replicas'] == 1
    _, sc, _ = api.patch('/apis/apps/v1/namespaces/default/statefulsets/s/scale', {'spec': {'replicas': 3}})
    assert sc['spec']['replicas'] == 3


def test_merge_strategic_and_json_patches(api):
    api.post(WIDGETS, widget(labels={'a': '1', 'b': '2'}, tags=['x', 'y']))
    _, w, _ = api.patch(f'{WIDGETS}/w1', {'spec': {'labels': {'a': None, 'c': '3'}, 'tags': ['z']}})
    assert w['spec']['labels'] == {'b': '2', 'c': '3'} and w['spec']['tags'] == ['z']

    p = pod('p1')
    p['spec']['containers'] = [{'name': 'a', 'image': 'i1', 'env': [{'name': 'X', 'value': '1'}]},
                               {'name': 'b', 'image': 'i2'}]
    api.post(PODS, p)
    smp = {'spec': {'containers': [{'name': 'a', 'image': 'i1b', 'env': [{'name': 'Y', 'value': '2'}]},
                                   {'name': 'c', 'image': 'i3'}, {'name': 'b', '$patch': 'delete'}]},
           'metadata': {'finalizers': ['f1']}}
    status, out, _ = api.patch(f'{PODS}/p1', smp, ctype='application/strategic-merge-patch+json')
    assert status == 200
    cs = {c['name']: c for c in out['spec']['containers']}
    assert set(cs) == {'a', 'c'} and cs['a']['image'] == 'i1b'
    assert cs['a']['env'] == [{'name': 'X', 'value': '1'}, {'name': 'Y', 'value': '2'}]
    _, out, _ = api.patch(f'{PODS}/p1', {'metadata': {'finalizers': ['f2']}}, ctype='application/strategic-merge-patch+json')
    assert out['metadata']['finalizers'] == ['f1', 'f2']

    ops = [{'op': 'test', 'path': '/spec/size', 'value': 3}, {'op': 'replace', 'path': '/spec/size', 'value': 4},
           {'op': 'add', 'path': '/spec/tags/-', 'value': 'q'}, {'op': 'remove', 'path': '/spec/labels/b'},
           {'op': 'add', 'path': '/metadata/labels', 'value': {'k/x': 'v'}}]
    status, w, _ = api.patch(f'{WIDGETS}/w1', ops, ctype='application/json-patch+json')
    assert status == 200, w
    assert w['spec']['size'] == 4 and w['spec']['tags'] == ['z', 'q'] and w['spec']['labels'] == {'c': '3'}
    assert w['metadata']['labels'] == {'k/x': 'v'}
    status, body, _ = api.patch(f'{WIDGETS}/w1', [{'op': 'test', 'path': '/spec/size', 'value': 99}],
                                ctype='application/json-patch+json')
    assert status == 422 and api.get(f'{WIDGETS}/w1')[1]['spec']['size'] == 4


def test_noop_patch_does_not_bump(emu, api):
    _, w, _ = api.post(WIDGETS, widget())
    n = len(emu.handler._history)
    _, w2, _ = api.patch(f'{WIDGETS}/w1', {'spec': {'size': 3}})
    assert w2['metadata']['resourceVersion'] == w['metadata']['resourceVersion']
    assert len(emu.handler._history) == n


def apply(api, path, obj, manager='mgr', force=False, as_yaml=True, extra=''):
    q = f'?fieldManager={manager}' + ('&force=true' if force else '') + extra
    raw = (yaml.safe_dump(obj) if as_yaml else json.dumps(obj)).encode()
    return api('PATCH', path + q, raw=raw, ctype='application/apply-patch+yaml')


def test_server_side_apply(emu, api):
    cfg = widget(labels={'a': '1', 'b': '2'}, mode='slow')
    cfg['metadata']['annotations'] = {'note': 'x'}
    status, w, _ = apply(api, f'{WIDGETS}/w1', cfg)
    assert status == 201 and w['spec']['labels'] == {'a': '1', 'b': '2'}
    mf = w['metadata']['managedFields']
    assert mf[0]['manager'] == 'mgr' and mf[0]['operation'] == 'Apply' and mf[0]['fieldsType'] == 'FieldsV1'
    assert 'f:spec' in mf[0]['fieldsV1'] and mf[0]['apiVersion'] == 'example.com/v1' and mf[0]['time']

    # another writer's field survives; fields this manager stopped applying are removed
    api.patch(f'{WIDGETS}/w1', {'spec': {'label': 'other'}})
    cfg2 = widget(labels={'a': '1'}, mode='slow')
    status, w, _ = apply(api, f'{WIDGETS}/w1', cfg2, as_yaml=False)
    assert status == 200
    assert w['spec']['labels'] == {'a': '1'} and w['spec']['label'] == 'other'
    assert 'annotations' not in w['metadata'] or 'note' not in w['metadata']['annotations']
    managers = {(e['manager'], e['operation']) for e in w['metadata']['managedFields']}
    assert managers == {('mgr', 'Apply'), ('emulator-tests', 'Update')}

    # a no-op apply: no new resourceVersion, no event
    n = len(emu.handler._history)
    _, w2, _ = apply(api, f'{WIDGETS}/w1', cfg2)
    assert w2['metadata']['resourceVersion'] == w['metadata']['resourceVersion'] and len(emu.handler._history) == n

    # conflicts between appliers, resolved by force
    status, body, _ = apply(api, f'{WIDGETS}/w1', widget(mode='fast'), manager='other')
    assert status == 409 and body['reason'] == 'Conflict' and 'mgr' in body['message']
    status, w, _ = apply(api, f'{WIDGETS}/w1', widget(mode='fast'), manager='other', force=True)
    assert status == 200 and w['spec']['mode'] == 'fast'

    # fieldManager is required; dryRun does not store
    assert api('PATCH', f'{WIDGETS}/w1', raw=b'{}', ctype='application/apply-patch+yaml')[0] == 400
    status, w, _ = apply(api, f'{WIDGETS}/w1', widget(size=9, mode='fast'), manager='other', extra='&dryRun=All')
    assert status == 200 and w['spec']['size'] == 9
    assert emu.get('example.com/v1', 'widgets', 'default', 'w1')['spec']['size'] == 3
    status, w, _ = api.post(WIDGETS + '?dryRun=All', widget('w2'))
    assert status == 201 and emu.get('example.com/v1', 'widgets', 'default', 'w2') is None


def test_apply_associative_lists_and_status(api):
    p = pod('p1')
    p['spec']['containers'] = [{'name': 'a', 'image': 'i1'}, {'name': 'b', 'image': 'i2'}]
    assert apply(api, f'{PODS}/p1', p)[0] == 201
    api.patch(f'{PODS}/p1', {'spec': {'containers': [{'name': 'side', 'image': 's'}]}},
              ctype='application/strategic-merge-patch+json')
    p['spec']['containers'] = [{'name': 'a', 'image': 'i1'}]
    status, out, _ = apply(api, f'{PODS}/p1', p)
    assert status == 200
    assert [c['name'] for c in out['spec']['containers']] == ['a', 'side']
    status, out, _ = apply(api, f'{PODS}/p1/status', {'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': 'p1'},
                                                      'status': {'phase': 'Running'}}, manager='kubelet')
    assert status == 200 and out['status']['phase'] == 'Running'


def test_secret_string_data_becomes_data_and_immutable_secrets_stay(emu):
    import base64

    import pytest

    emu.create({'apiVersion': 'v1', 'kind': 'Secret', 'metadata': {'name': 's1', 'namespace': 'default'},
                'immutable': True, 'stringData': {'token': 'abc'}})
    stored = emu.get('v1', 'secrets', 'default', 's1')
    assert 'stringData' not in stored
    assert base64.b64decode(stored['data']['token']) == b'abc'
    with pytest.raises(Exception, match='immutable'):
        emu.patch('v1', 'secrets', 'default', 's1', {'data': {'token': base64.b64encode(b'x').decode()}})
