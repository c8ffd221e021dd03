"""The real kubectl binary against the thread-served emulator."""
from __future__ import annotations

from emu_helpers import CRD_PATH, FIXTURES

WIDGET = FIXTURES / 'widget.yaml'


def test_kubectl_workflow(emu, kubectl):
    emu.delete('apiextensions.k8s.io/v1', 'customresourcedefinitions', None, 'widgets.example.com')  # kubectl creates it

    out = kubectl('apply', '--validate=false', '-f', str(CRD_PATH)).stdout
    assert 'customresourcedefinition.apiextensions.k8s.io/widgets.example.com created' in out
    out = kubectl('apply', '--validate=false', '-f', str(WIDGET)).stdout
    assert 'widget.example.com/w1 created' in out
    w = emu.get('example.com/v1', 'widgets', 'default', 'w1')
    assert w['spec'] == {'size': 3, 'mode': 'slow', 'range': {'min': 0, 'max': 5}}
    assert 'kubectl.kubernetes.io/last-applied-configuration' in w['metadata']['annotations']
    assert kubectl('apply', '--validate=false', '-f', str(WIDGET)).stdout.strip() == 'widget.example.com/w1 unchanged'

    emu.patch_status('example.com/v1', 'widgets', 'default', 'w1', {'conditions': [{'type': 'Ready', 'status': 'True'}]})
    lines = kubectl('get', 'widgets').stdout.splitlines()
    assert lines[0].split() == ['NAME', 'MODE', 'SIZE', 'READY', 'AGE']
    assert lines[1].split()[:4] == ['w1', 'slow', '3', 'True']
    assert kubectl('get', 'wg', 'w1', '-o', 'jsonpath={.spec.mode}').stdout == 'slow'

    kubectl('run', 'p1', '--image=busybox', '--labels=app=x')
    kubectl('run', 'p2', '--image=busybox', '--labels=app=y')
    lines = kubectl('get', 'pods', '-l', 'app=x').stdout.splitlines()
    assert lines[0].split() == ['NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE'] and len(lines) == 2
    assert lines[1].split()[:4] == ['p1', '0/1', 'Pending', '0']

    res = kubectl('apply', '--validate=false', '-f', '-', check=False,
                  stdin='{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"bad"},"spec":{"size":0}}')
    assert res.returncode != 0 and 'spec.size in body should be greater than or equal to 1' in res.stderr

    out = kubectl('delete', 'widget', 'w1').stdout
    assert 'widget.example.com "w1" deleted' in out
    assert emu.get('example.com/v1', 'widgets', 'default', 'w1') is None

    out = kubectl('apply', '--server-side', '--validate=false', '-f', str(WIDGET)).stdout
    assert 'widget.example.com/w1 serverside-applied' in out
    w = emu.get('example.com/v1', 'widgets', 'default', 'w1')
    assert [(e['manager'], e['operation']) for e in w['metadata']['managedFields']] == [('kubectl', 'Apply')]
    kubectl('delete', 'pods', '-l', 'app=x')
    assert [p['metadata']['name'] for p in emu.list('v1', 'pods')] == ['p2']
    lines = kubectl('get', 'ns').stdout.splitlines()
    assert {line.split()[0] for line in lines[1:]} >= {'default', 'kube-system'}
    assert 'widgets' in kubectl('api-resources', '--api-group=example.com').stdout


def test_plain_kubectl_apply_uses_server_side_strict_validation(emu, kubectl):
    """kubectl's default `apply -f` reads /openapi/v3, sees the server validates fields, sends Strict."""
    out = kubectl('apply', '-f', str(WIDGET)).stdout
    assert 'widget.example.com/w1 created' in out
    assert any(r.query.get('fieldValidation') == 'Strict' for r in emu.requests if r.method == 'POST')
    res = kubectl('apply', '-f', '-', check=False, stdin=(
        '{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w2"},"spec":{"size":2,"colour":"red"}}'))
    assert res.returncode != 0
    assert 'unknown field "spec.colour"' in res.stderr
    assert emu.get('example.com/v1', 'widgets', 'default', 'w2') is None
    ns = '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"plain"}}'
    assert 'namespace/plain created' in kubectl('apply', '-f', '-', stdin=ns).stdout
