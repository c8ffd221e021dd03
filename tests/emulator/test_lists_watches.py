"""Lists (selectors, pagination), watches (replay, 410, bookmarks, timeouts) and thread safety."""
from __future__ import annotations

import asyncio
import json
import threading

import aiohttp

from emu_helpers import WIDGETS, pod, widget

PODS = '/api/v1/namespaces/default/pods'


def test_list_shape_selectors_and_pagination(emu, api):
    api.post('/api/v1/namespaces', {'metadata': {'name': 'other'}})
    labels = [{'app': 'x', 'tier': 'web'}, {'app': 'x', 'tier': 'db'}, {'app': 'y'}, {}]
    for i, lab in enumerate(labels):
        api.post(PODS, pod(f'p{i}', labels=lab))
    api.post('/api/v1/namespaces/other/pods', pod('q', 'other', labels={'app': 'x'}))
    api.patch(f'{PODS}/p1/status', {'status': {'phase': 'Running'}})

    status, body, _ = api.get(PODS)
    assert body['kind'] == 'PodList' and body['apiVersion'] == 'v1'
    assert body['metadata']['resourceVersion'] == str(emu.resource_version)
    # As kube-apiserver (checked on the real control plane): a built-in kind's list items carry
    # no kind and apiVersion; a custom resource's do.
    assert body['items'] and all('kind' not in i and 'apiVersion' not in i for i in body['items'])

    def names(query, path=PODS):
        return [i['metadata']['name'] for i in api.get(f'{path}?{query}')[1]['items']]

    assert names('labelSelector=app%3Dx') == ['p0', 'p1']
    assert names('labelSelector=app%3D%3Dx,tier!%3Dweb') == ['p1']
    assert names('labelSelector=app+in+(x,y)') == ['p0', 'p1', 'p2']
    assert names('labelSelector=app+notin+(x)') == ['p2', 'p3']
    assert names('labelSelector=tier') == ['p0', 'p1']
    assert names('labelSelector=!tier') == ['p2', 'p3']
    assert names('fieldSelector=status.phase%3DRunning') == ['p1']
    assert names('fieldSelector=status.phase!%3DRunning,metadata.name!%3Dp0') == ['p2', 'p3']
    assert names('fieldSelector=metadata.name%3Dp2') == ['p2']
    assert api.get(f'{PODS}?fieldSelector=spec.bogus%3D1')[0] == 400
    assert names('labelSelector=app%3Dx', '/api/v1/pods') == ['p0', 'p1', 'q']   # cluster-wide

    _, page1, _ = api.get(f'{PODS}?limit=3')
    assert [i['metadata']['name'] for i in page1['items']] == ['p0', 'p1', 'p2']
    assert page1['metadata']['remainingItemCount'] == 1
    _, page2, _ = api.get(f'{PODS}?limit=3&continue={page1["metadata"]["continue"]}')
    assert [i['metadata']['name'] for i in page2['items']] == ['p3'] and 'continue' not in page2['metadata']

    assert [p['metadata']['name'] for p in emu.list('v1', 'pods', label_selector='app=x')] == ['p0', 'p1', 'q']
    assert [p['metadata']['name'] for p in emu.list('v1', 'pods', namespace='other')] == ['q']


async def read_events(session, url, *, n=None, timeout=5.0, **params):
    events = []
    async with session.get(url, params=params, timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
        assert resp.status == 200
        try:
            async for line in resp.content:
                if line.strip():
                    events.append(json.loads(line))
                if n is not None and len(events) >= n:
                    break
        except asyncio.TimeoutError:
            pass
    return events


async def test_watch_initial_live_replay_and_selectors(emu, api):
    api.post(WIDGETS, widget('a'))
    rv = emu.resource_version
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(read_events(session, f'{emu.url}{WIDGETS}', n=4, watch='true'))
        sel = asyncio.create_task(read_events(session, f'{emu.url}{WIDGETS}', n=2, watch='1',
                                              labelSelector='team=red'))
        await asyncio.sleep(0.2)
        await asyncio.to_thread(api.post, WIDGETS, widget('b'))
        await asyncio.to_thread(api.patch, f'{WIDGETS}/b', {'metadata': {'labels': {'team': 'red'}}})
        await asyncio.to_thread(api.patch, f'{WIDGETS}/b', {'metadata': {'labels': {'team': 'blue'}}})
        events = await task
        assert [(e['type'], e['object']['metadata']['name']) for e in events] == [
            ('ADDED', 'a'), ('ADDED', 'b'), ('MODIFIED', 'b'), ('MODIFIED', 'b')]
        assert all(e['object']['kind'] == 'Widget' for e in events)
        # label selector transitions: appears as ADDED, leaves as DELETED
        assert [e['type'] for e in await asyncio.wait_for(sel, 5)] == ['ADDED', 'DELETED']

        replay = await read_events(session, f'{emu.url}{WIDGETS}', n=3, watch='true', resourceVersion=str(rv))
        assert [(e['type'], e['object']['metadata']['name']) for e in replay] == [
            ('ADDED', 'b'), ('MODIFIED', 'b'), ('MODIFIED', 'b')]
        rvs = [int(e['object']['metadata']['resourceVersion']) for e in replay]
        assert rvs == sorted(rvs) and rvs[0] > rv


async def test_watch_too_old_bookmarks_and_timeout(emu, api):
    for i in range(250):   # history_size=200 in the fixture
        await asyncio.to_thread(emu.create, {'apiVersion': 'v1', 'kind': 'ConfigMap',
                                             'metadata': {'name': f'c{i}', 'namespace': 'default'}})
    async with aiohttp.ClientSession() as session:
        gone = await read_events(session, f'{emu.url}/api/v1/namespaces/default/configmaps', watch='true',
                                 resourceVersion='1')
        assert len(gone) == 1 and gone[0]['type'] == 'ERROR'
        assert gone[0]['object']['code'] == 410 and 'too old resource version' in gone[0]['object']['message']

        loop = asyncio.get_running_loop()
        t0 = loop.time()
        events = await read_events(session, f'{emu.url}{WIDGETS}', watch='true', allowWatchBookmarks='true',
                                   timeoutSeconds='1', resourceVersion=str(emu.resource_version))
        assert 0.9 <= loop.time() - t0 < 3   # the server closed the stream on time
        bookmarks = [e for e in events if e['type'] == 'BOOKMARK']
        assert len(bookmarks) >= 2   # interval 0.3s in the fixture
        assert bookmarks[-1]['object']['metadata']['resourceVersion'] == str(emu.resource_version)


async def test_watch_client_close_cleans_up(emu):
    async with aiohttp.ClientSession() as session:
        await read_events(session, f'{emu.url}{WIDGETS}', watch='true', timeout=0.5)
    for _ in range(50):
        if not emu.handler._watchers:
            break
        await asyncio.sleep(0.05)
    assert not emu.handler._watchers


async def test_concurrent_watchers_see_every_event(emu, api):
    n_watchers, n_writes = 5, 40
    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.create_task(read_events(session, f'{emu.url}/api/v1/configmaps', n=n_writes,
                                                 watch='true', timeout=10)) for _ in range(n_watchers)]
        await asyncio.sleep(0.2)

        def writer(k):
            for i in range(n_writes // 4):
                emu.create({'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': f'w{k}-{i}', 'namespace': 'default'}})
        threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        await asyncio.to_thread(lambda: [t.join() for t in threads])
        results = await asyncio.gather(*tasks)
    for events in results:
        rvs = [int(e['object']['metadata']['resourceVersion']) for e in events]
        assert len(rvs) == n_writes and rvs == sorted(rvs) and len(set(rvs)) == n_writes
