"""The work queue dedupes keys, never hands one key to two workers, and backs off on failure."""

from __future__ import annotations

import asyncio
from collections import Counter

from sparkbook.controller.base import resync_schedule
from sparkbook.util import is_subset, merge_patch
from sparkbook.workqueue import WorkQueue


async def test_dedupes_while_queued_and_requeues_after_done():
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    q.add("a")
    assert len(q) == 1
    key = await q.get()
    q.add("a")  # arrives while processing: must not be handed out concurrently
    assert q._queue.empty()
    q.done(key)
    assert await asyncio.wait_for(q.get(), 1) == "a"


async def test_retry_backs_off_exponentially_and_forget_resets():
    q: WorkQueue[str] = WorkQueue(base_delay=0.01, max_delay=0.04)
    assert [q.retry("k") for _ in range(4)] == [0.01, 0.02, 0.04, 0.04]
    q.forget("k")
    assert q.retry("k") == 0.01
    assert await asyncio.wait_for(q.get(), 1) == "k"
    q.close()


def test_subset_and_merge_patch():
    assert is_subset({"a": {"b": 1}, "l": [{"x": 1}]}, {"a": {"b": 1, "c": 2}, "l": [{"x": 1, "y": 2}]})
    assert not is_subset({"l": [1, 2]}, {"l": [1]})
    assert not is_subset({"a": 1}, {})
    assert merge_patch({"a": 1, "b": {"c": 1, "d": 2}}, {"b": {"c": 2, "d": 2}}) == {"a": None, "b": {"c": 2}}


async def test_the_wait_in_the_queue_is_observed_once_per_hand_out():
    waits: list[float] = []
    q: WorkQueue[str] = WorkQueue(observe_wait=waits.append)
    q.add("a")
    q.add("a")  # deduplicated: one wait, from the first add
    await asyncio.sleep(0.05)
    key = await q.get()
    assert len(waits) == 1 and waits[0] >= 0.04
    q.add("a")  # while processing: its wait runs until the worker is done and it is taken again
    q.done(key)
    await q.get()
    assert len(waits) == 2 and waits[1] < waits[0]


def test_a_resync_spreads_its_keys_over_the_period():
    keys = [("SparkSession", "ns", f"s{i}") for i in range(5200)]
    schedule = resync_schedule(keys, 300.0)
    assert [k for k, _ in schedule] == keys  # every key, once
    delays = [d for _, d in schedule]
    assert delays[0] == 0.0 and max(delays) < 300.0
    assert delays == sorted(delays)
    # At most ~17.3 keys in any second of the period, not 5,200 at once.
    per_second = Counter(int(d) for d in delays)
    assert max(per_second.values()) <= 18 and len(per_second) == 300
    assert resync_schedule([], 300.0) == []


async def test_a_spread_resync_lets_a_new_key_past_the_old_ones():
    """A key added after a resync started is handed out before most of the resync's keys."""
    q: WorkQueue[str] = WorkQueue()
    for key, delay in resync_schedule([f"old{i}" for i in range(100)], 10.0):
        q.add_after(key, delay)
    await asyncio.sleep(0.05)
    q.add("new")
    seen = []
    while "new" not in seen:
        key = await asyncio.wait_for(q.get(), 1)
        seen.append(key)
        q.done(key)
    assert len(seen) <= 15  # the old key due at 0 s (one more per 0.1 s of lateness), then the new one
    q.close()
