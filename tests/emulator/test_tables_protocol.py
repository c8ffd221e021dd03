"""Server-side tables, media types, fault injection via kmock, the async form and the CLI."""
from __future__ import annotations

import os
import subprocess
import sys

import kmock
import yaml

from sparkbook.testing._query import human_duration, jsonpath
from sparkbook.testing.emulator import Emulator
from emu_helpers import CRD_PATH, KUBECTL, WIDGETS, pod, widget

TABLE = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json'


def test_tables_for_crds_and_builtins(api):
    api.post(WIDGETS, widget(mode='slow'))
    api.patch(f'{WIDGETS}/w1/status', {'status': {'conditions': [{'type': 'Other', 'status': 'False'},
                                                                 {'type': 'Ready', 'status': 'True'}]}})
    status, t, _ = api.get(WIDGETS, headers={'Accept': TABLE})
    assert status == 200 and t['kind'] == 'Table' and t['apiVersion'] == 'meta.k8s.io/v1'
    assert [c['name'] for c in t['columnDefinitions']] == ['Name', 'Mode', 'Size', 'Ready', 'Age']
    cells = t['rows'][0]['cells']
    assert cells[:4] == ['w1', 'slow', 3, 'True'] and cells[4].endswith('s')
    assert t['rows'][0]['object']['kind'] == 'PartialObjectMetadata'
    _, t, _ = api.get(f'{WIDGETS}?includeObject=Object', headers={'Accept': TABLE})
    assert t['rows'][0]['object']['spec']['mode'] == 'slow'
    _, t, _ = api.get(f'{WIDGETS}/w1?includeObject=None', headers={'Accept': TABLE})
    assert len(t['rows']) == 1 and 'object' not in t['rows'][0]

    p = pod('p1')
    api.post('/api/v1/namespaces/default/pods', p)
    api.patch('/api/v1/namespaces/default/pods/p1/status', {'status': {'phase': 'Running', 'containerStatuses': [
        {'name': 'main', 'ready': True, 'restartCount': 2}]}})
    _, t, _ = api.get('/api/v1/namespaces/default/pods', headers={'Accept': TABLE})
    assert [c['name'] for c in t['columnDefinitions']] == ['Name', 'Ready', 'Status', 'Restarts', 'Age']
    assert t['rows'][0]['cells'][:4] == ['p1', '1/1', 'Running', '2']
    _, t, _ = api.get('/api/v1/namespaces/default/configmaps', headers={'Accept': TABLE})
    assert [c['name'] for c in t['columnDefinitions']] == ['Name', 'Age']


def test_helpers():
    assert [human_duration(s) for s in (5, 119, 150, 3600, 7500, 14700, 86400 * 3)] == ['5s', '119s', '2m30s', '60m', '125m', '4h5m', '3d']
    obj = {'status': {'conditions': [{'type': 'A', 'status': 'x'}, {'type': 'Ready', 'status': 'True'}]}, 'spec': {'a': [1, 2]}}
    assert jsonpath(obj, '.status.conditions[?(@.type=="Ready")].status') == ['True']
    assert jsonpath(obj, '.spec.a[1]') == [2] and jsonpath(obj, '.spec.missing') == []


def test_protobuf_is_unsupported_and_json_is_always_answered(api):
    status, body, _ = api('POST', '/api/v1/namespaces/default/configmaps', raw=b'k8s\x00\x0a',
                          ctype='application/vnd.kubernetes.protobuf')
    assert status == 415 and body['reason'] == 'UnsupportedMediaType'
    status, _, headers = api.get('/api/v1/namespaces/default/configmaps',
                                 headers={'Accept': 'application/vnd.kubernetes.protobuf,application/json'})
    assert status == 200 and headers['Content-Type'].startswith('application/json')
    assert api.patch('/api/v1/namespaces/default/configmaps/x', {}, ctype='text/plain')[0] in (404, 415)


def test_fault_injection_with_kmock_dsl(emu, api):
    api.post('/api/v1/namespaces/default/pods', pod('p1'))
    emu.handler['patch', kmock.resource('v1/pods')][:1] << 409
    assert api.patch('/api/v1/namespaces/default/pods/p1', {'metadata': {'labels': {'a': 'b'}}})[0] == 409
    assert api.patch('/api/v1/namespaces/default/pods/p1', {'metadata': {'labels': {'a': 'b'}}})[0] == 200  # depleted
    calls = []

    def flaky(request):
        calls.append(request.name)
        raise kmock.KubernetesError(status=500, reason='InternalError', message='injected')
    emu.handler[kmock.action.CREATE, kmock.resource('example.com/v1/widgets')][:2] << flaky
    for _ in range(2):
        status, body, _ = api.post(WIDGETS, widget())
        assert (status, body['message']) == (500, 'injected')
    assert api.post(WIDGETS, widget())[0] == 201
    assert len(calls) == 2
    recs = emu.writes()
    assert [r.status for r in recs if r.plural == 'widgets'] == [500, 500, 201]
    assert all(r.user_agent == 'emulator-tests/1.0' for r in recs)
    assert emu.writes(user_agent_contains='sparkbook') == []


async def test_async_form_with_kmock_server():
    async with Emulator(crds=[CRD_PATH]) as emu, kmock.Server(emu) as server:
        async with server.client.post(WIDGETS, json=widget()) as resp:
            assert resp.status == 201
        async with server.client.get(f'{WIDGETS}/w1') as resp:
            assert (await resp.json())['spec']['mode'] == 'fast'
        assert emu.get('example.com/v1', 'widgets', 'default', 'w1')['spec']['size'] == 3
        await emu.patch_status('example.com/v1', 'widgets', 'default', 'w1', {'phase': 'Up'})
        assert emu.get('example.com/v1', 'widgets', 'default', 'w1')['status'] == {'phase': 'Up'}


def test_cli_serves_until_killed(tmp_path):
    kc = tmp_path / 'kc'
    proc = subprocess.Popen([sys.executable, '-m', 'sparkbook.testing.emulator', '--crds', str(CRD_PATH.parent),
                             '--kubeconfig', str(kc)], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert 'serving on http://127.0.0.1:' in line
        assert yaml.safe_load(kc.read_text())['clusters'][0]['cluster']['server'] in line
        res = subprocess.run([KUBECTL, 'get', 'widgets'], env={**os.environ, 'KUBECONFIG': str(kc)},
                             capture_output=True, text=True, timeout=30)
        assert res.returncode == 0 and 'w1     slow   3' in res.stdout   # fixtures/ also holds widget.yaml
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
