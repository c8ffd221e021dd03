"""The work queue dedupes keys, never hands one key to two workers, and backs off on failure."""

from __future__ import annotations

import asyncio

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
