"""SparkSession: the driver pod, its Services, RBAC, token Secret and network policy, and the pacing
of passes that executor churn asks for."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

from pydantic import ValidationError

from sparkbook import names
from sparkbook.api.sparksession import SparkSessionSpec
from sparkbook.build.session import session_children
from sparkbook.build.spark import EventLogError, event_log_target
from sparkbook.controller.base import (
    Key,
    gather_all,
    Machinery,
    NameConflict,
    Outcome,
    Transient,
    owned_by,
    pod_hash,
    pod_images,
    short_validation_error,
)
from sparkbook.status import (
    SessionObservation,
    pod_failed,
    pod_problem,
    session_status,
)
from sparkbook.util import now_rfc3339, parse_rfc3339

log = logging.getLogger(__name__)

# Spark asks for executors in waves a second apart (schedulerBacklogTimeout): one pass per wave.
EXECUTOR_SETTLE_SECONDS = 1.0


class SparkSessions(Machinery):
    """The SparkSession pass and executor pacing."""

    def executors_changed(self, namespace: str, session: str) -> None:
        """Executor pods came or went: their session looks again soon, once for the whole batch,
        and for executors at most once per `executor_batch_seconds` (Spark adds and removes them in
        waves under dynamic allocation; a status write per pod event would be churn)."""
        key: Key = ("SparkSession", namespace, session)
        now = asyncio.get_running_loop().time()
        due = self._executor_pass.get(key, float("-inf"))
        if due > now:
            return  # a pass is already due: it will see this change too
        due = max(now + EXECUTOR_SETTLE_SECONDS, due + self.settings.executor_batch_seconds)
        self._executor_pass[key] = due
        self.queue.add_after(key, due - now)

    def _write_deferred(self, key: Key, status: dict[str, Any], previous: dict[str, Any]) -> bool:
        """A pass for another reason (our own status write's echo, a resync) must not write what
        executor churn changed before the paced pass for executors is due."""
        now = asyncio.get_running_loop().time()
        due = self._executor_pass.get(key, float("-inf"))
        if due <= now:
            return False
        if {k: v for k, v in status.items() if k != "executors"} != {
                k: v for k, v in previous.items() if k != "executors"}:
            return False
        # The paced pass must come: its timer may never have been set (the queue keeps the earlier
        # of two timers for a key, and this pass may be that earlier one), and then the counts
        # would wait for the next resync.
        self.queue.add_after(key, due - now)
        return True

    async def reconcile_session(self, namespace: str, name: str) -> Outcome:
        body = await self._live(("SparkSession", namespace, name))
        if body is None:
            self._executor_pass.pop(("SparkSession", namespace, name), None)
            return Outcome()  # children go with it through their ownerReferences
        meta = body["metadata"]
        uid = meta["uid"]
        previous = dict(self.recent.previous_status(("SparkSession", namespace, name), body.get("status") or {}))
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
            obs.stalled = ("InvalidSpec", short_validation_error(e))
            return await self._finish(body, session_status(obs), obs.previous, events, outcome)

        try:
            event_log = event_log_target(spec.event_log, self.settings.event_log_defaults)
        except EventLogError as e:
            obs.stalled = ("EventLogNowhere", str(e))
            return await self._finish(body, session_status(obs), obs.previous, events, outcome)
        obs.history_url = self.settings.history_server_url  # past applications stay browsable
        obs.suspend = spec.suspend
        obs.idle_suspended_at = None if spec.suspend else (meta.get("annotations") or {}).get(names.IDLE_SUSPENDED_AT)
        obs.last_activity = self.activity.get(("SparkSession", namespace, name))
        if obs.idle_suspended_at:
            spec = spec.model_copy(update={"suspend": True})
        obs.image = spec.image or self.settings.spark_image
        owner = {"apiVersion": body["apiVersion"], "kind": body["kind"], "metadata": {"name": name, "namespace": namespace, "uid": uid}}
        n = names.SessionNames(name)
        has_secret = self._get("Secret", namespace, n.token_secret) is not None
        token = None if has_secret else secrets.token_urlsafe(32)
        children = session_children(
            owner=owner,
            spec=spec,
            image=obs.image,
            token=token or "unused",
            operator_namespace=self.settings.operator_namespace,
            event_log=event_log,
        )
        desired_pod = next((c for c in children if c["kind"] == "Pod"), None)
        try:
            # In waves, each at once: a round trip of the API's latency per wave instead of one per
            # child. The RoleBinding waits for its Role (the API server checks a binding against
            # the rules of the Role it names: without `bind`, which the operator never holds, the
            # Role must exist), and the pod for its ServiceAccount (admission wants it). The pod
            # does not wait for the RoleBinding: the driver needs it only when it asks for
            # executors, seconds after its JVM starts, and a binding that failed is made by the
            # next pass while Spark's allocator retries (one round trip less on the real server).
            first = [c for c in children if c["kind"] not in ("Pod", "RoleBinding")]
            second = [c for c in children if c["kind"] == "RoleBinding"]

            async def ensure(wave: list[dict[str, Any]]) -> None:
                for child, missing in zip(wave, await gather_all(
                        self._ensure(c, uid, create_only=c["kind"] == "Secret") for c in wave)):
                    if missing:
                        obs.missing.append(f"{child['kind']} {child['metadata']['name']}")

            async def driver() -> None:
                pod = self._get("Pod", namespace, n.driver_pod)
                if pod is not None and not owned_by(pod, uid):
                    raise NameConflict(f"Pod {n.driver_pod!r} already exists and is not owned by this resource")
                await self._reconcile_driver(spec, pod, desired_pod, obs, events, outcome)

            await ensure(first)
            await gather_all([ensure(second), driver()])
        except NameConflict as e:
            obs.stalled = ("NameConflict", f"{e}; delete or rename it, then the operator continues")
            # The squatter is not labelled as ours, so no watch event tells us when it goes.
            outcome.requeue = self.settings.stalled_retry_seconds
        obs.driver = self._get("Pod", namespace, n.driver_pod) or obs.driver
        if obs.driver is not None and obs.driver.get("metadata", {}).get("uid") and not owned_by(obs.driver, uid):
            obs.driver = None
        obs.executors = [] if spec.suspend else self.cache.executors(namespace, name)
        return await self._finish(body, session_status(obs), obs.previous, events, outcome)

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
                await self._delete_pod(pod)
            return
        if pod is None:
            remaining = self._backoff_remaining(obs)
            if remaining > 0:
                obs.waiting_backoff = f"replacing the failed driver in {remaining:.0f}s (restart {obs.restarts})"
                outcome.requeue = remaining
                return
            created = await self._create(desired)
            if created is None:
                meta = desired["metadata"]
                existing = await self.kube.get("v1", "Pod", meta["namespace"], meta["name"])
                if existing is not None and not owned_by(existing, desired["metadata"]["ownerReferences"][0]["uid"]):
                    raise NameConflict(f"Pod {meta['name']!r} already exists and is not owned by this resource")
                raise Transient(f"Pod {meta['name']} exists but the cache has not seen it yet")
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
            await self._delete_pod(pod)
            outcome.requeue = self._backoff_remaining(obs)
            return
        drifted = pod_images(pod) is not None and pod_images(pod) != pod_images(desired)
        if pod_hash(pod) != pod_hash(desired) or drifted:
            message = (
                "the driver pod was edited by hand (its image differs from the spec): replacing it"
                if drifted and pod_hash(pod) == pod_hash(desired)
                else f"the spec changed (generation {obs.generation}) in a way a running Spark driver cannot take: "
                "replacing the driver pod"
            )
            obs.replacing = message
            events.append(("Normal", "DriverReplacing", message))
            await self._delete_pod(pod)
