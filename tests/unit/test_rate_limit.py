"""The client-side rate limit: however many requests are waiting, never more than burst at once
and qps per second after that (a fake clock makes this exact); lifted automatically only by a
server that does API Priority and Fairness."""

from __future__ import annotations

import asyncio

from sparkbook.kube import FALLBACK_QPS, Connection, Kube, TokenBucket
from sparkbook.settings import Settings
from sparkbook.testing.emulator import EmulatorThread


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


async def test_never_more_than_burst_then_qps():
    fake = FakeTime()
    bucket = TokenBucket(qps=10, burst=5, clock=fake.clock, sleep=fake.sleep)
    stamps: list[float] = []

    async def request() -> None:
        await bucket.take()
        stamps.append(fake.now)

    await asyncio.gather(*(request() for _ in range(35)))
    assert stamps[:5] == [0.0] * 5  # the burst
    for window_start in [i / 10 for i in range(0, 40)]:
        in_window = [t for t in stamps if window_start < t <= window_start + 1.0]
        assert len(in_window) <= 10 + 1, (window_start, in_window)  # qps, +1 for the window's edge
    assert abs(stamps[-1] - 3.0) < 1e-6  # 30 after the burst at 10/s


def test_the_limit_is_a_setting():
    settings = Settings.from_env({"SPARKBOOK_API_QPS": "5", "SPARKBOOK_API_BURST": "7"})
    assert (settings.api_qps, settings.api_burst) == (5.0, 7)


def test_unset_means_automatic():
    assert Settings.from_env({}).api_qps is None


async def _first_answer(emu: EmulatorThread, qps: float | None) -> Kube:
    async with Kube(Connection(server=emu.url), qps=qps, burst=3) as kube:
        await kube.get("v1", "ConfigMap", "default", "nothing")
        return kube


async def test_the_automatic_limit_is_lifted_by_priority_and_fairness():
    """A server with APF (its answers carry X-Kubernetes-PF-* headers) paces clients itself: the
    automatic token bucket goes. Without APF it stays; an explicit limit always stays."""
    with EmulatorThread() as emu:
        assert (await _first_answer(emu, None)).bucket is None
        explicit = await _first_answer(emu, 50.0)
        assert explicit.bucket is not None and explicit.bucket.qps == 50.0
        assert (await _first_answer(emu, -1)).bucket is None  # never limited
    with EmulatorThread(priority_and_fairness=False) as emu:
        kube = await _first_answer(emu, None)
        assert kube.bucket is not None and kube.bucket.qps == FALLBACK_QPS and kube.bucket.burst == 3
