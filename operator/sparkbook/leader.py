"""Leader election on a coordination.k8s.io Lease, so that several operator replicas can run and
exactly one of them reconciles: the others keep their watches and caches warm and take over
when the leader stops renewing (or hands the Lease back on a clean shutdown)."""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sparkbook.kube import ApiError, Kube
from sparkbook.util import parse_rfc3339

log = logging.getLogger(__name__)
LEASE = ("coordination.k8s.io/v1", "Lease")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _micro(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # MicroTime, as the Lease API wants


def lease_is_free(lease: dict[str, Any], now: datetime.datetime) -> bool:
    spec = lease.get("spec") or {}
    if not spec.get("holderIdentity"):
        return True
    renewed = spec.get("renewTime")
    if not renewed:
        return True
    return parse_rfc3339(renewed) + datetime.timedelta(seconds=spec.get("leaseDurationSeconds") or 15) < now


class LeaderElector:
    def __init__(
        self,
        kube: Kube,
        *,
        namespace: str,
        identity: str,
        name: str = "sparkbook-operator",
        lease_seconds: float = 15.0,
    ) -> None:
        self.kube, self.namespace, self.identity, self.name = kube, namespace, identity, name
        self.lease_seconds = lease_seconds
        self.renew_every = max(0.2, lease_seconds / 3)
        self.leading = False

    def _spec(self, lease: dict[str, Any] | None, now: datetime.datetime) -> dict[str, Any]:
        old = (lease or {}).get("spec") or {}
        taking_over = old.get("holderIdentity") != self.identity
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.lease_seconds)),
            "acquireTime": _micro(now) if taking_over else old.get("acquireTime", _micro(now)),
            "renewTime": _micro(now),
            "leaseTransitions": int(old.get("leaseTransitions") or 0) + (1 if taking_over and lease else 0),
        }

    async def try_acquire_or_renew(self) -> bool:
        """One round: True when we hold the Lease afterwards."""
        now = _now()
        lease = await self.kube.get(*LEASE, self.namespace, self.name)
        if lease is None:
            body = {"apiVersion": LEASE[0], "kind": LEASE[1],
                    "metadata": {"name": self.name, "namespace": self.namespace}, "spec": self._spec(None, now)}
            return await self.kube.create(body) is not None
        holder = (lease.get("spec") or {}).get("holderIdentity")
        if holder != self.identity and not lease_is_free(lease, now):
            return False
        body = {**lease, "spec": self._spec(lease, now)}
        try:
            await self.kube.replace(body)  # carries resourceVersion: a concurrent taker gets a 409
        except ApiError as e:
            if e.status == 409:
                return False
            raise
        return True

    async def release(self) -> None:
        """Hand the Lease back so a standby takes over at once."""
        if not self.leading:
            return
        try:
            lease = await self.kube.get(*LEASE, self.namespace, self.name)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                spec = {**lease["spec"], "holderIdentity": None, "renewTime": None}
                await self.kube.replace({**lease, "spec": spec})
        except ApiError as e:
            log.warning("could not release the leader Lease: %s", e)
        self.leading = False

    async def run(self, start: Callable[[], Awaitable[None]], stop: Callable[[], Awaitable[None]]) -> None:
        last_renewed = 0.0
        loop = asyncio.get_running_loop()
        while True:
            try:
                held = await self.try_acquire_or_renew()
            except ApiError as e:
                log.warning("leader election: %s", e)
                held = False
                if self.leading and loop.time() - last_renewed < self.lease_seconds:
                    held = True  # the API hiccuped; the Lease is still ours for a while
            if held:
                last_renewed = loop.time()
            if held and not self.leading:
                self.leading = True
                log.info("became the leader (%s): reconciling", self.identity)
                await start()
            elif not held and self.leading:
                self.leading = False
                log.warning("lost the leader Lease (%s): standing by", self.identity)
                await stop()
            await asyncio.sleep(self.renew_every)
