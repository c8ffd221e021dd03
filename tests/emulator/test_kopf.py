"""A tiny kopf operator (in-process, KopfRunner) against the emulator: list/watch/patch/events."""
from __future__ import annotations

import time
from pathlib import Path

from kopf.testing import KopfRunner

OPERATOR = '''
import os
import kopf

@kopf.on.login()
def login(**_):
    return kopf.ConnectionInfo(server=os.environ["EMULATOR_URL"], insecure=True)

@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    settings.persistence.finalizer = "example.com/kopf-finalizer"
    settings.watching.server_timeout = 10
    settings.posting.level = 0
    settings.posting.loggers = True

@kopf.on.create("example.com", "v1", "widgets")
def created(spec, patch, logger, **_):
    logger.info("widget created")
    patch.status["phase"] = "Seen-" + spec["mode"]
    return {"size": spec["size"]}

@kopf.on.delete("example.com", "v1", "widgets")
def deleted(name, logger, **_):
    logger.info(f"widget {name} deleted")

@kopf.on.update("example.com", "v1", "widgets", field="spec.size")
def resized(new, patch, **_):
    patch.status["phase"] = f"Resized-{new}"
'''


def wait_for(fn, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError('timed out')


def test_kopf_operator_reacts(emu, tmp_path: Path, monkeypatch):
    monkeypatch.setenv('EMULATOR_URL', emu.url)
    script = tmp_path / 'op.py'
    script.write_text(OPERATOR)
    with KopfRunner(['run', '--standalone', '-A', '--verbose', str(script)], timeout=30) as runner:
        emu.create({'apiVersion': 'example.com/v1', 'kind': 'Widget',
                    'metadata': {'name': 'w1', 'namespace': 'default'}, 'spec': {'size': 2, 'mode': 'slow'}})
        w = wait_for(lambda: (o := emu.get('example.com/v1', 'widgets', 'default', 'w1'))
                     and (o.get('status') or {}).get('phase') == 'Seen-slow' and o)
        assert 'created' not in w['status']   # kopf's handler result: pruned (undeclared in the schema), as for real
        assert 'example.com/kopf-finalizer' in w['metadata']['finalizers']
        emu.patch('example.com/v1', 'widgets', 'default', 'w1', {'spec': {'size': 5}})
        wait_for(lambda: (emu.get('example.com/v1', 'widgets', 'default', 'w1').get('status') or {})
                 .get('phase') == 'Resized-5')
        events = wait_for(lambda: [e for e in emu.list('v1', 'events', 'default')
                                   if e['involvedObject']['name'] == 'w1'])
        assert any('widget created' in e['message'] for e in events)
        emu.delete('example.com/v1', 'widgets', 'default', 'w1')
        assert emu.get('example.com/v1', 'widgets', 'default', 'w1')['metadata']['deletionTimestamp']
        wait_for(lambda: emu.get('example.com/v1', 'widgets', 'default', 'w1') is None)   # kopf released it
    assert runner.exit_code == 0, runner.output
    assert runner.exception is None
    kopf_writes = emu.writes(user_agent_contains='kopf')
    assert {r.verb for r in kopf_writes} >= {'patch', 'create'}
    # kopf's patches of the widget may race its deletion: 404 (gone), 409 (changed meanwhile), 422
    # (a finalizer added to an object being deleted, as the real server refuses). kopf expects those.
    failed = [(r.path, r.status) for r in kopf_writes if not r.status or r.status >= 400]
    assert all(status in (404, 409, 422) and path.endswith("/w1") for path, status in failed), failed
    assert not emu.handler.errors
