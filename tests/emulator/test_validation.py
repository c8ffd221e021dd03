"""Custom-resource validation against the CRD schema: types, limits, defaults, pruning and CEL."""
from __future__ import annotations

from emu_helpers import WIDGETS, widget


def test_defaults_applied_at_any_depth(api):
    status, w, _ = api.post(WIDGETS, widget())
    assert status == 201
    assert w['spec']['mode'] == 'fast' and w['spec']['range'] == {'min': 0, 'max': 5}
    _, w, _ = api.post(WIDGETS, widget('w2', range={'max': 7}))
    assert w['spec']['range'] == {'min': 0, 'max': 7}


def test_structural_errors_are_all_collected(api):
    bad = widget('bad', size=0, mode='turbo', label='ABC', tags=['a', 'b', 'c', 'd'], note=None)
    bad['spec']['labels'] = {'k': 5}
    status, body, _ = api.post(WIDGETS, bad)
    assert status == 422 and body['kind'] == 'Status' and body['reason'] == 'Invalid'
    assert body['message'].startswith('Widget.example.com "bad" is invalid: [')
    causes = {c['field']: c for c in body['details']['causes']}
    # As kube-apiserver: a cause's message is the error without its field, which the cause holds apart.
    assert causes['spec.size']['message'] == 'Invalid value: 0: spec.size in body should be greater than or equal to 1'
    assert causes['spec.mode']['message'] == 'Unsupported value: "turbo": supported values: "fast", "slow", "frozen"'
    assert causes['spec.mode']['reason'] == 'FieldValueNotSupported'
    assert "should match '^[a-z]+$'" in causes['spec.label']['message']
    assert 'must have at most 3 items' in causes['spec.tags']['message']
    assert 'must be of type string' in causes['spec.labels.k']['message']
    assert 'spec.note' not in causes   # nullable
    assert body['details']['name'] == 'bad' and body['details']['kind'] == 'Widget'

    status, body, _ = api.post(WIDGETS, dict(widget('x'), spec={'mode': 'fast', 'size': 'big'}))
    assert status == 422 and 'spec.size: Invalid value: "string": spec.size in body must be of type integer: "string"' in body['message']
    status, body, _ = api.post(WIDGETS, dict(widget('x'), spec={'mode': 'fast'}))
    # A missing field stops every CEL rule, and kube-apiserver says so.
    assert status == 422 and body['message'] == (
        'Widget.example.com "x" is invalid: [spec.size: Required value, <nil>: Invalid value: null: some validation '
        'rules were not checked because the object was invalid; correct the existing errors to complete validation]')
    status, body, _ = api.post(WIDGETS, widget('x', size=11, label='abcdefghijklmn'))
    assert 'should be less than or equal to 10' in body['message'] and 'may not be more than 12' in body['message']


def test_int_or_string_and_preserve_unknown(api):
    assert api.post(WIDGETS, widget('a', replicas=3))[0] == 201
    assert api.post(WIDGETS, widget('b', replicas='50%'))[0] == 201
    assert api.post(WIDGETS, widget('c', replicas=[1]))[0] == 422
    _, w, _ = api.post(WIDGETS, widget('d', extra={'anything': {'goes': [1, 2]}}))
    assert w['spec']['extra'] == {'anything': {'goes': [1, 2]}}


def test_unknown_fields_pruned_warned_or_rejected(api):
    status, w, headers = api.post(WIDGETS, widget('a', foo=1))
    assert status == 201 and 'foo' not in w['spec']
    assert 'unknown field \\"spec.foo\\"' in headers.get('Warning', '')
    status, w, headers = api.post(WIDGETS + '?fieldValidation=Ignore', widget('b', foo=1))
    assert status == 201 and 'foo' not in w['spec'] and 'Warning' not in headers
    status, body, _ = api.post(WIDGETS + '?fieldValidation=Strict', widget('c', foo=1))
    assert status == 400 and body['reason'] == 'BadRequest'
    assert body['message'] == ('Widget in version "v1" cannot be handled as a Widget: strict decoding error: '
                               'unknown field "spec.foo"')
    assert api.get(f'{WIDGETS}/c')[0] == 404


def test_cel_rules_and_transition_rules(api):
    status, body, _ = api.post(WIDGETS, widget('bad', range={'min': 5, 'max': 2}))
    assert status == 422
    # kube-apiserver 1.36 shows no value for an object's rule (field.OmitValueType).
    assert body['message'] == ('Widget.example.com "bad" is invalid: spec: Invalid value: '
                               'range.min must be <= range.max')
    assert body['details']['causes'] == [{'reason': 'FieldValueInvalid', 'field': 'spec',
                                          'message': 'Invalid value: range.min must be <= range.max'}]
    # the oldSelf rule is skipped on create, enforced on update
    assert api.post(WIDGETS, widget('f', mode='frozen'))[0] == 201
    status, body, _ = api.patch(f'{WIDGETS}/f', {'spec': {'size': 4}})
    assert status == 422 and 'size cannot change while frozen' in body['message']
    assert api.patch(f'{WIDGETS}/f', {'spec': {'mode': 'slow'}})[0] == 200


def test_name_rules(api):
    status, body, _ = api.post(WIDGETS, widget('Bad_Name'))
    assert status == 422 and 'metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain' in body['message']
    svc = {'metadata': {'name': '1svc'}, 'spec': {'ports': [{'port': 80}]}}
    status, body, _ = api.post('/api/v1/namespaces/default/services', svc)
    assert status == 422 and 'DNS-1035 label' in body['message'] and body['message'].startswith('Service "1svc" is invalid')
    svc['metadata']['name'] = 's' * 64
    assert api.post('/api/v1/namespaces/default/services', svc)[0] == 422
    status, body, _ = api.post('/api/v1/namespaces/default/configmaps', {'metadata': {}})
    assert status == 422 and 'name or generateName is required' in body['message']
    assert api.post('/api/v1/namespaces/default/configmaps', {'metadata': {'name': 'ok.name-1'}})[0] == 201


def test_a_crd_whose_default_fails_its_own_rule_is_refused(api):
    """As kube-apiserver does: a default is checked against its node's CEL rules as written,
    before nested defaults fill it in (found by running our CRDs on the real server)."""
    crd = {
        'apiVersion': 'apiextensions.k8s.io/v1', 'kind': 'CustomResourceDefinition',
        'metadata': {'name': 'gadgets.example.com'},
        'spec': {'group': 'example.com', 'scope': 'Namespaced',
                 'names': {'plural': 'gadgets', 'singular': 'gadget', 'kind': 'Gadget'},
                 'versions': [{'name': 'v1', 'served': True, 'storage': True, 'schema': {'openAPIV3Schema': {
                     'type': 'object', 'properties': {'spec': {'type': 'object', 'properties': {'range': {
                         'type': 'object', 'default': {},
                         'properties': {'min': {'type': 'integer', 'default': 0}, 'max': {'type': 'integer', 'default': 5}},
                         'x-kubernetes-validations': [{'rule': 'self.min <= self.max', 'message': 'min <= max'}],
                     }}}}}}}]},
    }
    path = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions'
    status, body, _ = api.post(path, crd)
    assert status == 422, body
    assert 'spec.validation.openAPIV3Schema.properties[spec].properties[range].default' in body['message']
    crd['spec']['versions'][0]['schema']['openAPIV3Schema']['properties']['spec']['properties']['range']['default'] = {
        'min': 0, 'max': 5}
    assert api.post(path, crd)[0] == 201
