"""Level-based reconcilers: desired children from the spec, observed ones from the caches,
one write per difference, status from one pure function, written only when it changes."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from sparkbook import names
from sparkbook.api.sparksession import SparkSessionSpec
from sparkbook.build.session import session_children
from sparkbook.kube import ApiError, Kube
from sparkbook.settings import Settings
from sparkbook.status import SessionObservation, pod_failed, pod_problem, session_status
from sparkbook.util import is_subset, merge_patch, now_rfc3339, parse_rfc3339
from sparkbook.workqueue import WorkQueue

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (kind, namespace, name)


class Cache(Protocol):
    """Read-only view of what the watches have seen (kopf indexes in the operator)."""

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    def executors(self, namespace: str, session: str) -> list[dict[str, Any]]: ...

    def keys(self, kind: str) -> Iterable[tuple[str, str]]: ...


class NameConflict(Exception):
    """A child's name is held by an object this resource does not own."""


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj.get("metadata", {}).get("ownerReferences", []) or [])


def pod_hash(pod: dict[str, Any] | None) -> str | None:
    return ((pod or {}).get("metadata", {}).get("annotations") or {}).get(names.CONFIG_HASH)


def _short_validation_error(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in ("spec", *item["loc"]))
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


@dataclass
class Outcome:
    """What a reconcile pass wants next: nothing, or another pass after `requeue` seconds."""

    requeue: float | None = None


class Controller:
    def __init__(self, kube: Kube, settings: Settings, cache: Cache) -> None:
        self.kube = kube
        self.settings = settings
        self.cache = cache
        self.queue: WorkQueue[Key] = WorkQueue()
        self._tasks: list[asyncio.Task[None]] = []
        self.reconciles = 0

    # --- running -----------------------------------------------------------------------------

    def enqueue(self, kind: str, namespace: str, name: str) -> None:
        self.queue.add((kind, namespace, name))

    async def start(self) -> None:
        for i in range(self.settings.workers):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"sparkbook-worker-{i}"))
        self._tasks.append(asyncio.create_task(self._resync(), name="sparkbook-resync"))

    async def stop(self) -> None:
        self.queue.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_seconds)
            for namespace, name in list(self.cache.keys("SparkSession")):
                self.enqueue("SparkSession", namespace, name)

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            try:
                outcome = await self.reconcile(key)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - any failure is retried with backoff, never fatal
                delay = self.queue.retry(key)
                level = logging.WARNING if isinstance(e, ApiError) else logging.ERROR
                log.log(level, "reconcile of %s/%s/%s failed (retry in %.1fs): %s", *key, delay, e,
                        exc_info=level == logging.ERROR)
            else:
                self.queue.forget(key)
                if outcome.requeue is not None:
                    self.queue.add_after(key, outcome.requeue)
            finally:
                self.queue.done(key)

    async def reconcile(self, key: Key) -> Outcome:
        kind, namespace, name = key
        self.reconciles += 1
        if kind == "SparkSession":
            return await self.reconcile_session(namespace, name)
        raise ValueError(f"unknown kind {kind}")

    # --- SparkSession ------------------------------------------------------------------------

    async def _ensure(self, child: dict[str, Any], owner_uid: str, *, create_only: bool = False) -> bool:
        """Make one child match; True when it was missing. Raises NameConflict for squatters."""
        meta = child["metadata"]
        observed = self.cache.get(child["kind"], meta["namespace"], meta["name"])
        if observed is None:
            created = await self.kube.create(child)
            if created is not None:
                return True
            # The name is taken by something our cache does not show (not labelled as ours).
            observed = await self.kube.get(child["apiVersion"], child["kind"], meta["namespace"], meta["name"])
            if observed is None:  # gone meanwhile: the next pass creates it
                return True
            if not owned_by(observed, owner_uid):
                raise NameConflict(f"{child['kind']} {meta['name']!r} already exists and is not owned by this resource")
            if not create_only:
                await self.kube.apply(child)  # ours after all (labels edited away): repair it
            return False
        if not owned_by(observed, owner_uid):
            raise NameConflict(f"{child['kind']} {meta['name']!r} already exists and is not owned by this resource")
        if not create_only and not is_subset(child, observed):
            await self.kube.apply(child)
        return False

    async def reconcile_session(self, namespace: str, name: str) -> Outcome:
        body = self.cache.get("SparkSession", namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return Outcome()  # children go with it through their ownerReferences
        meta = body["metadata"]
        uid = meta["uid"]
        previous = dict(body.get("status") or {})
        obs = SessionObservation(
            name=name, namespace=namespace, generation=meta.get("generation"), now=now_rfc3339(), previous=previous
        )
        prev_driver = previous.get("driver") or {}
        obs.restarts = int(prev_driver.get("restarts") or 0)
        obs.last_failure = prev_driver.get("lastFailure")
        obs.last_failure_time = prev_driver.get("lastFailureTime")
        outcome = Outcome()
        events: list[tuple[str, str, str]] = []

        try:
            spec = SparkSessionSpec.model_validate(body.get("spec") or {})
        except ValidationError as e:
            obs.stalled = ("InvalidSpec", _short_validation_error(e))
            return await self._finish_session(body, obs, events, outcome)

        obs.suspend = spec.suspend
        obs.image = spec.image or self.settings.spark_image
        owner = {"apiVersion": body["apiVersion"], "kind": body["kind"], "metadata": {"name": name, "namespace": namespace, "uid": uid}}
        n = names.SessionNames(name)
        has_secret = self.cache.get("Secret", namespace, n.token_secret) is not None
        token = None if has_secret else secrets.token_urlsafe(32)
        children = session_children(owner=owner, spec=spec, image=obs.image, token=token or "unused")
        desired_pod = next((c for c in children if c["kind"] == "Pod"), None)
        try:
            for child in children:
                if child["kind"] == "Pod":
                    continue
                missing = await self._ensure(child, uid, create_only=child["kind"] == "Secret")
                if missing:
                    obs.missing.append(f"{child['kind']} {child['metadata']['name']}")
            pod = self.cache.get("Pod", namespace, n.driver_pod)
            if pod is not None and not owned_by(pod, uid):
                raise NameConflict(f"Pod {n.driver_pod!r} already exists and is not owned by this resource")
            await self._reconcile_driver(spec, pod, desired_pod, obs, events, outcome)
        except NameConflict as e:
            obs.stalled = ("NameConflict", f"{e}; delete or rename it, then the operator continues")
            # The squatter is not labelled as ours, so no watch event tells us when it goes.
            outcome.requeue = self.settings.stalled_retry_seconds
        obs.driver = self.cache.get("Pod", namespace, n.driver_pod) or obs.driver
        if obs.driver is not None and obs.driver.get("metadata", {}).get("uid") and not owned_by(obs.driver, uid):
            obs.driver = None
        obs.executors = [] if spec.suspend else self.cache.executors(namespace, name)
        return await self._finish_session(body, obs, events, outcome)

    def _backoff_remaining(self, obs: SessionObservation) -> float:
        if not obs.restarts or not obs.last_failure_time:
            return 0.0
        delay = min(
            self.settings.restart_backoff_max_seconds,
            self.settings.restart_backoff_seconds * 2 ** (obs.restarts - 1),
        )
        elapsed = time.time() - parse_rfc3339(obs.last_failure_time).timestamp()
        return max(0.0, delay - elapsed)

    async def _reconcile_driver(
        self,
        spec: SparkSessionSpec,
        pod: dict[str, Any] | None,
        desired: dict[str, Any] | None,
        obs: SessionObservation,
        events: list[tuple[str, str, str]],
        outcome: Outcome,
    ) -> None:
        terminating = bool(pod and pod["metadata"].get("deletionTimestamp"))
        if spec.suspend or desired is None:
            if pod is not None and not terminating:
                await self.kube.delete("v1", "Pod", obs.namespace, pod["metadata"]["name"], uid=pod["metadata"].get("uid"))
            return
        if pod is None:
            remaining = self._backoff_remaining(obs)
            if remaining > 0:
                obs.waiting_backoff = f"replacing the failed driver in {remaining:.0f}s (restart {obs.restarts})"
                outcome.requeue = remaining
                return
            created = await self.kube.create(desired)
            if created is None:
                raise NameConflict(f"Pod {desired['metadata']['name']!r} already exists and is not owned by this resource")
            # Report the new pod now rather than after its watch event: one status write, not two.
            obs.driver = created
            return
        if terminating:
            if pod_hash(pod) != pod_hash(desired):
                obs.replacing = "the spec changed: waiting for the old driver pod to stop"
            return
        if pod_failed(pod):
            reason, message = pod_problem(pod) or ("Failed", "the driver pod failed")
            obs.restarts += 1
            obs.last_failure = reason
            obs.last_failure_time = obs.now
            events.append(("Warning", "DriverFailed", f"{message}; replacing it (restart {obs.restarts})"))
            await self.kube.delete("v1", "Pod", obs.namespace, pod["metadata"]["name"], uid=pod["metadata"].get("uid"))
            outcome.requeue = self._backoff_remaining(obs)
            return
        if pod_hash(pod) != pod_hash(desired):
            message = (
                f"the spec changed (generation {obs.generation}) in a way a running Spark driver cannot take: "
                "replacing the driver pod"
            )
            obs.replacing = message
            events.append(("Normal", "DriverReplacing", message))
            await self.kube.delete("v1", "Pod", obs.namespace, pod["metadata"]["name"], uid=pod["metadata"].get("uid"))

    async def _finish_session(
        self,
        body: dict[str, Any],
        obs: SessionObservation,
        events: list[tuple[str, str, str]],
        outcome: Outcome,
    ) -> Outcome:
        status = session_status(obs)
        previous = obs.previous
        if status != previous:
            await self.kube.patch_status(
                body["apiVersion"], body["kind"], obs.namespace, obs.name, merge_patch(previous, status)
            )
            old_phase = previous.get("phase")
            if status["phase"] != old_phase:
                ready = next(c for c in status["conditions"] if c["type"] == "Ready")
                type_ = "Warning" if status["phase"] == "Failed" else "Normal"
                events.append((type_, status["phase"], ready["message"]))
        for type_, reason, message in events:
            await self.kube.post_event(body, type_=type_, reason=reason, message=message)
        return outcome
