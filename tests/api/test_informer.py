"""The informers against the API emulator: paginated LIST, WATCH with resume, 410 Gone -> relist
with the differences reported, secondary indexes, and no secret values in the cache."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import kmock
import pytest

from sparkbook import names
from sparkbook.informer import MANAGED_SELECTOR, RELIST_AFTER_FAILURES, Caches, Informer, Store
from sparkbook.kube import Connection, Kube
from sparkbook.testing.emulator import EmulatorThread
from tests.api.conftest import ROOT

NS = "default"


@pytest.fixture
def emu() -> Iterator[EmulatorThread]:
    crds = sorted((ROOT / "crds").glob("*.yaml"))
    with EmulatorThread(crds=crds, history_size=1000, bookmark_interval=0.2) as e:
        yield e


@pytest.fixture
async def kube(emu: EmulatorThread) -> AsyncIterator[Kube]:
    async with Kube(Connection(server=emu.url), qps=1000, burst=1000, user_agent="sparkbook-operator/test") as k:
        yield k


def configmap(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NS, "labels": {names.MANAGED_BY: "sparkbook", **labels}},
            "data": {"k": name}}


async def until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def __call__(self, etype: str, kind: str, new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
        self.events.append((etype, (new or old or {})["metadata"]["name"]))


def requests(emu: EmulatorThread, verb: str, plural: str) -> int:
    return sum(1 for r in emu.requests if r.verb == verb and r.plural == plural)


async def test_list_pages_then_watch(emu: EmulatorThread, kube: Kube) -> None:
    for i in range(5):
        emu.create(configmap(f"cm-{i}"))
    emu.create({**configmap("not-ours"), "metadata": {"name": "not-ours", "namespace": NS}})
    seen = Recorder()
    store = Store("ConfigMap")
    informer = Informer(kube, store, "v1", "configmaps", label_selector=MANAGED_SELECTOR, on_change=seen, page_size=2)
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.synced.wait(), 10)
        assert requests(emu, "list", "configmaps") == 3  # 2 + 2 + 1
        assert sorted(store.keys()) == [(NS, f"cm-{i}") for i in range(5)]
        assert sorted(seen.events) == [("ADDED", f"cm-{i}") for i in range(5)]
        cached = store.get(NS, "cm-0")
        assert cached is not None and "managedFields" not in cached["metadata"] and cached["data"] == {"k": "cm-0"}

        seen.events.clear()
        emu.patch("v1", "configmaps", NS, "cm-1", {"data": {"k": "changed"}})
        emu.delete("v1", "configmaps", NS, "cm-2")
        emu.create(configmap("cm-9"))
        # Losing our label is leaving the selection: a DELETED for this informer.
        emu.patch("v1", "configmaps", NS, "cm-3", {"metadata": {"labels": {names.MANAGED_BY: None}}})
        await until(lambda: len(seen.events) == 4)
        assert seen.events == [("MODIFIED", "cm-1"), ("DELETED", "cm-2"), ("ADDED", "cm-9"), ("DELETED", "cm-3")]
        assert store.get(NS, "cm-1")["data"] == {"k": "changed"}
        assert store.get(NS, "cm-2") is None and store.get(NS, "cm-3") is None
        assert requests(emu, "list", "configmaps") == 3  # events, not lists
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_dropped_watch_resumes_without_listing(emu: EmulatorThread, kube: Kube) -> None:
    seen = Recorder()
    store = Store("ConfigMap")
    informer = Informer(kube, store, "v1", "configmaps", label_selector=MANAGED_SELECTOR, on_change=seen)
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.synced.wait(), 10)
        for round_ in range(3):
            emu.close_watches()
            emu.create(configmap(f"after-cut-{round_}"))
        await until(lambda: len(store) == 3)
        assert requests(emu, "list", "configmaps") == 1
        assert requests(emu, "watch", "configmaps") >= 2
        assert [e for e, _ in seen.events] == ["ADDED"] * 3
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_gone_on_resume_relists_and_reports_what_changed_meanwhile(emu: EmulatorThread, kube: Kube) -> None:
    for name in ("keep", "edit", "drop"):
        emu.create(configmap(name))
    seen = Recorder()
    store = Store("ConfigMap")
    informer = Informer(kube, store, "v1", "configmaps", label_selector=MANAGED_SELECTOR, on_change=seen)
    task = asyncio.create_task(informer.run())
    await asyncio.wait_for(informer.synced.wait(), 10)
    await until(lambda: len(seen.events) == 3)
    # The operator is cut off while things change and the server compacts its history.
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    before = informer.resource_version
    emu.patch("v1", "configmaps", NS, "edit", {"data": {"k": "edited"}})
    emu.delete("v1", "configmaps", NS, "drop")
    emu.create(configmap("new"))
    assert emu.compact() > int(before or 0)
    seen.events.clear()
    task = asyncio.create_task(informer.run())  # resumes from `before`: 410 Gone, then a LIST
    try:
        await until(lambda: len(seen.events) == 3)
        assert sorted(seen.events) == [("ADDED", "new"), ("DELETED", "drop"), ("MODIFIED", "edit")]
        assert informer.lists == 2
        gone = [r for r in emu.requests if r.verb == "watch" and r.plural == "configmaps"
                and r.query.get("resourceVersion") == before]
        assert gone, "the resumed watch carried the old resourceVersion"
        assert sorted(store.keys()) == [(NS, "edit"), (NS, "keep"), (NS, "new")]
        assert store.get(NS, "edit")["data"] == {"k": "edited"}
        # And it watches again from the new list's version: later changes arrive as events.
        emu.delete("v1", "configmaps", NS, "keep")
        await until(lambda: ("DELETED", "keep") in seen.events)
        assert informer.lists == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_indexes_and_no_secret_values(emu: EmulatorThread, kube: Kube) -> None:
    caches = Caches()
    informers = caches.informers(kube, [NS], lambda *_: None)
    labels = {**names.session_labels("s1", "executor"), names.ROLE_LABEL: "executor"}
    for i in range(3):
        emu.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"s1-exec-{i}", "namespace": NS,
                    "labels": labels}, "spec": {"containers": [{"name": "spark", "image": "spark"}]}})
    emu.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s1-connect-token", "namespace": NS,
                "labels": names.session_labels("s1")}, "stringData": {"token": "very-secret-value"}})
    emu.create({"apiVersion": names.API_VERSION, "kind": "NotebookServer",
                "metadata": {"name": "nb", "namespace": NS}, "spec": {"spark": {"sessionRef": {"name": "s1"}}}})
    tasks = [asyncio.create_task(i.run()) for i in informers]
    try:
        await asyncio.wait_for(asyncio.gather(*(i.synced.wait() for i in informers)), 10)
        assert sorted(p["metadata"]["name"] for p in caches.executors(NS, "s1")) == [f"s1-exec-{i}" for i in range(3)]
        assert caches.notebooks_for_session(NS, "s1") == ["nb"]
        emu.delete("v1", "pods", NS, "s1-exec-1")
        emu.patch(names.API_VERSION, "notebookservers", NS, "nb", {"spec": {"spark": {"sessionRef": {"name": "s2"}}}})
        await until(lambda: len(caches.executors(NS, "s1")) == 2 and caches.notebooks_for_session(NS, "s2"))
        assert caches.notebooks_for_session(NS, "s1") == []
        secret = caches.get("Secret", NS, "s1-connect-token")
        assert secret is not None and "data" not in secret and "very-secret-value" not in repr(secret)
        assert all(b"very-secret-value" not in raw for store in caches.stores.values() for raw in store._items.values())
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_refused_list_backs_off_instead_of_spinning(emu: EmulatorThread, kube: Kube) -> None:
    """A kind the API does not serve (or RBAC forbids): retried with growing delays, never synced."""
    store = Store("Widget")
    informer = Informer(kube, store, "example.com/v1", "widgets")
    task = asyncio.create_task(informer.run())
    await asyncio.sleep(2.0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    attempts = sum(1 for r in emu.requests if r.path.startswith("/apis/example.com/v1/widgets"))
    assert 1 <= attempts <= 5, attempts  # 0.25 s doubling, jittered: a handful in 2 s, not hundreds
    assert not informer.synced.is_set()


async def test_a_watch_refused_again_and_again_falls_back_to_a_list(emu: EmulatorThread, kube: Kube) -> None:
    """Say the server keeps answering 500 to watches from our resourceVersion: after a few tries
    the informer lists again (and watches from the new version), instead of retrying forever."""
    emu.create(configmap("one"))
    store = Store("ConfigMap")
    informer = Informer(kube, store, "v1", "configmaps", label_selector=MANAGED_SELECTOR)
    refused = emu.handler["watch", kmock.resource("v1/configmaps")][:RELIST_AFTER_FAILURES] << 500
    task = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(informer.synced.wait(), 10)
        await until(lambda: informer.lists == 2, timeout=20)
        assert len(refused) == RELIST_AFTER_FAILURES
        emu.create(configmap("two"))  # and it watches again
        await until(lambda: store.get(NS, "two") is not None)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
