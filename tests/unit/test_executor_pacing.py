"""Executor pod events pace their session's passes: the first change is looked at about a second
later (a wave of executors is one pass), and then at most once per executor_batch_seconds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sparkbook.controller import sparksession as controller_module
from sparkbook.controller import Controller
from sparkbook.settings import Settings

KEY = ("SparkSession", "ns", "s1")


class NoCache:
    def get(self, *_: Any) -> None:
        return None

    def executors(self, *_: Any) -> list[Any]:
        return []

    def keys(self, *_: Any) -> list[Any]:
        return []

    def notebooks_for_session(self, *_: Any) -> list[str]:
        return []


async def passes(controller: Controller, until: float) -> list[float]:
    """When the key comes out of the queue, until `until` (loop time), marking each pass done."""
    loop = asyncio.get_running_loop()
    out = []
    while True:
        try:
            key = await asyncio.wait_for(controller.queue.get(), max(0.0, until - loop.time()))
        except asyncio.TimeoutError:
            return out
        assert key == KEY
        out.append(loop.time())
        controller.queue.done(key)


async def test_a_wave_of_executor_events_is_one_pass_and_waves_are_spaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(controller_module, "EXECUTOR_SETTLE_SECONDS", 0.1)
    controller = Controller(None, Settings(executor_batch_seconds=0.5), NoCache())  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def churn() -> None:
        for _ in range(60):  # an event every 20 ms for 1.2 s
            controller.executors_changed("ns", "s1")
            await asyncio.sleep(0.02)

    task = asyncio.create_task(churn())
    times = [t - start for t in await passes(controller, start + 2.0)]
    await task
    # 1.2 s of events: one pass at ~0.1 s, then one per 0.5 s while events keep coming, and one
    # after the last event at most 0.5 s later; never two closer than the batch interval.
    assert 0.08 <= times[0] <= 0.3, times
    assert all(b - a >= 0.5 - 0.02 for a, b in zip(times, times[1:])), times
    assert 3 <= len(times) <= 4, times
    assert times[-1] >= 1.2 - 0.02, times  # the last event is never left unseen


async def test_a_lone_executor_event_is_seen_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(controller_module, "EXECUTOR_SETTLE_SECONDS", 0.1)
    controller = Controller(None, Settings(executor_batch_seconds=5.0), NoCache())  # type: ignore[arg-type]
    start = asyncio.get_running_loop().time()
    controller.executors_changed("ns", "s1")
    (first,) = await passes(controller, start + 0.5)
    assert first - start < 0.3


async def test_other_passes_leave_executor_counts_to_the_paced_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our own status write comes back as an event and triggers a pass; that pass must not write
    executor counts that changed since, ahead of the paced pass (a write per wave, not two)."""
    monkeypatch.setattr(controller_module, "EXECUTOR_SETTLE_SECONDS", 0.1)
    controller = Controller(None, Settings(executor_batch_seconds=5.0), NoCache())  # type: ignore[arg-type]
    before = {"phase": "Running", "executors": {"running": 1, "pending": 0, "failed": 0}}
    more = {"phase": "Running", "executors": {"running": 2, "pending": 0, "failed": 0}}
    failed = {"phase": "Failed", "executors": {"running": 2, "pending": 0, "failed": 0}}
    assert not controller._write_deferred(KEY, more, before)  # nothing paced: write now
    controller.executors_changed("ns", "s1")  # a paced pass is due in 0.1 s
    assert controller._write_deferred(KEY, more, before)
    assert not controller._write_deferred(KEY, failed, before)  # anything else: at once
    await asyncio.sleep(0.15)  # the paced pass is due: it writes
    assert not controller._write_deferred(KEY, more, before)


async def test_a_deferred_write_still_gets_its_paced_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """The queue keeps the earlier of two timers for a key: when a pass was already due before
    the paced one (a requeue), the paced timer is never set. That earlier pass defers the executor
    counts, so it must bring the paced pass back (else the counts wait for a resync: an e2e run
    saw status.executors.running stay 1 for 30 s after Spark removed its executors)."""
    monkeypatch.setattr(controller_module, "EXECUTOR_SETTLE_SECONDS", 0.2)
    controller = Controller(None, Settings(executor_batch_seconds=5.0), NoCache())  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    start = loop.time()
    before = {"phase": "Running", "executors": {"running": 1, "pending": 0, "failed": 0}}
    after = {"phase": "Running", "executors": {"running": 0, "pending": 0, "failed": 0}}
    controller.queue.add_after(KEY, 0.05)  # a pass already due (a requeue)
    controller.executors_changed("ns", "s1")  # the paced one, due at 0.2 s: its timer loses to the earlier
    key = await asyncio.wait_for(controller.queue.get(), 1.0)
    assert loop.time() - start < 0.2
    assert controller._write_deferred(key, after, before)  # too early for the counts
    controller.queue.done(key)
    times = [t - start for t in await passes(controller, start + 1.0)]
    assert len(times) == 1 and times[0] >= 0.2, times
    assert not controller._write_deferred(KEY, after, before)  # now they are written
