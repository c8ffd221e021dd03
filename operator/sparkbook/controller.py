"""Level-based reconcilers: desired children from the spec, observed ones from the caches,
one write per difference, status from one pure function, written only when it changes."""

from __future__ import annotations

import asyncio
import datetime
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from sparkbook import metrics, names
from sparkbook.api.common import duration_seconds
from sparkbook.api.notebookserver import NotebookServerSpec
from sparkbook.api.sparksession import SparkSessionSpec
from sparkbook.build.notebook import attached_session, notebook_children
from sparkbook.build.session import session_children
from sparkbook.kube import ApiError, Kube
from sparkbook.recent import RecentWrites
from sparkbook.settings import Settings
from sparkbook.status import (
    NotebookObservation,
    SessionObservation,
    notebook_status,
    pod_failed,
    pod_problem,
    pod_ready,
    session_status,
)
from sparkbook.util import is_subset, merge_patch, now_rfc3339, parse_rfc3339
from sparkbook.workqueue import WorkQueue

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (kind, namespace, name)


class Cache(Protocol):
    """Read-only view of what the watches have seen (sparkbook.informer.Caches in the operator)."""

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    def executors(self, namespace: str, session: str) -> list[dict[str, Any]]: ...

    def keys(self, kind: str) -> Iterable[tuple[str, str]]: ...

    def notebooks_for_session(self, namespace: str, session: str) -> list[str]: ...


# Spark asks for executors in waves a second apart (schedulerBacklogTimeout): one pass per wave.
EXECUTOR_SETTLE_SECONDS = 1.0


class NameConflict(Exception):
    """A child's name is held by an object this resource does not own."""


class Transient(Exception):
    """The API said two contradicting things in a row (409 on create, then 404): look again soon."""


def owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj.get("metadata", {}).get("ownerReferences", []) or [])


def ours_by_label(observed: dict[str, Any], desired: dict[str, Any]) -> bool:
    """A child that lost its ownerReference but still carries the labels we give it (and no other
    controller claims it): ours, edited by hand, to be repaired rather than treated as a squatter."""
    labels = observed.get("metadata", {}).get("labels") or {}
    wanted = desired["metadata"].get("labels") or {}
    owner_keys = (names.SESSION_LABEL, names.NOTEBOOK_LABEL)
    if labels.get(names.MANAGED_BY) != names.MANAGED_BY_VALUE:
        return False
    if not any(k in wanted and labels.get(k) == wanted[k] for k in owner_keys):
        return False
    return not any(r.get("controller") for r in observed.get("metadata", {}).get("ownerReferences") or [])


def pod_hash(pod: dict[str, Any] | None) -> str | None:
    return ((pod or {}).get("metadata", {}).get("annotations") or {}).get(names.CONFIG_HASH)


def pod_images(pod: dict[str, Any] | None) -> list[tuple[str, str]] | None:
    """(container, image) pairs; the one field of a running pod that can be edited and matters."""
    containers = ((pod or {}).get("spec") or {}).get("containers")
    if not containers:
        return None
    return [(c.get("name", ""), c.get("image", "")) for c in containers]


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
    def __init__(
        self,
        kube: Kube,
        settings: Settings,
        cache: Cache,
        *,
        synced: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.kube = kube
        self.synced = synced
        self.settings = settings
        self.cache = cache
        self.queue: WorkQueue[Key] = WorkQueue()
        self._tasks: list[asyncio.Task[None]] = []
        self.reconciles = 0
        # Last activity seen by the idle checks, by key; status reports it, nothing persists it.
        self.activity: dict[Key, str] = {}
        self._tokens: dict[tuple[str, str], str] = {}
        self.recent = RecentWrites()
        self._executor_pass: dict[Key, float] = {}  # when the last executor-triggered pass was due
        # Resources whose own children were seen deleted: before anything is made for them again,
        # the API server (not the cache) must say that they still exist.
        self._lost_children: set[Key] = set()
        self._gone: dict[Key, str] = {}  # ... and those the API server said were gone (by uid)

    def _get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The cache, corrected by what we wrote ourselves and it has not seen yet."""
        return self.recent.view((kind, namespace, name), self.cache.get(kind, namespace, name))

    async def _create(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        created = await self.kube.create(obj)
        self.recent.wrote(created)
        return created

    async def _apply(self, obj: dict[str, Any]) -> None:
        self.recent.wrote(await self.kube.apply(obj))

    async def _delete_pod(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        await self.kube.delete("v1", "Pod", meta["namespace"], meta["name"], uid=meta.get("uid"))
        self.recent.deleted(pod, "Pod")

    def child_deleted(self, child: dict[str, Any]) -> None:
        """A watch saw one of our children go. When its owner is being deleted, the garbage
        collector's deletions of the children may reach us before the owner's own DELETED event
        (another watch, lagging): a pass that trusted the cache would re-create every child."""
        meta = child.get("metadata") or {}
        labels = meta.get("labels") or {}
        if labels.get(names.ROLE_LABEL) == "executor":
            return  # Spark's, under dynamic allocation
        for ref in meta.get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") in ("SparkSession", "NotebookServer") \
                    and ref.get("apiVersion", "").startswith(f"{names.GROUP}/"):
                self._lost_children.add((ref["kind"], meta.get("namespace", ""), ref["name"]))

    async def _live(self, key: Key) -> dict[str, Any] | None:
        """The resource to reconcile, or None when it is gone or going. After its children were
        deleted the API server is asked (our cache may lag behind the owner's deletion)."""
        body = self.cache.get(*key)
        if body is None:
            self._gone.pop(key, None)  # the cache has caught up
            return None
        if body["metadata"].get("deletionTimestamp") or not await self._still_there(key, body):
            return None
        return body

    async def _still_there(self, key: Key, body: dict[str, Any]) -> bool:
        meta = body["metadata"]
        if self._gone.get(key) == meta.get("uid"):
            return False  # until the cache sees the deletion too (every pass meanwhile is stale)
        if key not in self._lost_children:
            return True
        fresh = await self.kube.get(body["apiVersion"], body["kind"], meta["namespace"], meta["name"])
        self._lost_children.discard(key)
        alive = (fresh is not None and fresh["metadata"].get("uid") == meta.get("uid")
                 and not fresh["metadata"].get("deletionTimestamp"))
        if not alive:
            self._gone[key] = meta.get("uid", "")
            log.info("%s %s/%s is gone or going: nothing is made for it", body["kind"], meta["namespace"], meta["name"])
        return alive

    # --- running -----------------------------------------------------------------------------

    def enqueue(self, kind: str, namespace: str, name: str) -> None:
        self.queue.add((kind, namespace, name))

    def session_changed(self, namespace: str, session: str) -> None:
        """A SparkSession or one of its children changed: it and its notebooks look again."""
        self.enqueue("SparkSession", namespace, session)
        for notebook in self.cache.notebooks_for_session(namespace, session):
            self.enqueue("NotebookServer", namespace, notebook)

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

    def _executor_write_pending(self, key: Key, status: dict[str, Any], previous: dict[str, Any]) -> bool:
        """A pass for another reason (our own status write's echo, a resync) must not write what
        executor churn changed before the paced pass for executors is due."""
        if self._executor_pass.get(key, float("-inf")) <= asyncio.get_running_loop().time():
            return False
        return {k: v for k, v in status.items() if k != "executors"} == {
            k: v for k, v in previous.items() if k != "executors"
        }

    async def start(self) -> None:
        """Start reconciling once the caches are complete (without waiting for that here)."""
        self._tasks.append(asyncio.create_task(self._run(), name="sparkbook-controller"))

    async def _run(self) -> None:
        if self.synced is not None:
            started = time.monotonic()
            await self.synced()
            log.info("caches synced in %.1fs; reconciling %d queued resources",
                     time.monotonic() - started, len(self.queue))
        for i in range(self.settings.workers):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"sparkbook-worker-{i}"))
        self._tasks.append(asyncio.create_task(self._resync(), name="sparkbook-resync"))
        self._tasks.append(asyncio.create_task(self._idle_loop(), name="sparkbook-idle"))

    async def stop(self) -> None:
        self.queue.close()
        self._executor_pass.clear()  # their timers are gone with the queue's
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _resync(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_seconds)
            for kind in ("SparkSession", "NotebookServer"):
                for namespace, name in list(self.cache.keys(kind)):
                    self.enqueue(kind, namespace, name)

    def _failed(self, key: Key, e: Exception) -> None:
        metrics.RECONCILES.labels(key[0], "error").inc()
        delay = self.queue.retry(key)
        level = logging.WARNING if isinstance(e, (ApiError, Transient)) else logging.ERROR
        log.log(level, "reconcile of %s/%s/%s failed (retry in %.1fs): %s", *key, delay, e,
                exc_info=level == logging.ERROR)

    async def _worker(self) -> None:
        while True:
            key = await self.queue.get()
            started = time.perf_counter()
            try:
                outcome = await self.reconcile(key)
            except asyncio.CancelledError:
                raise
            except ApiError as e:
                if e.status == 403 and "because it is being terminated" in e.message:
                    # NamespaceLifecycle: the namespace is going, and everything in it with it.
                    # Retrying would only be refused again, as fast as the backoff allows.
                    log.info("%s %s/%s: its namespace is being deleted; nothing more is made there", *key)
                    self.queue.forget(key)
                else:
                    self._failed(key, e)
            except Exception as e:  # noqa: BLE001 - any failure is retried with backoff, never fatal
                self._failed(key, e)
            else:
                metrics.RECONCILES.labels(key[0], "ok").inc()
                self.queue.forget(key)
                if outcome.requeue is not None:
                    self.queue.add_after(key, outcome.requeue)
            finally:
                metrics.RECONCILE_SECONDS.labels(key[0]).observe(time.perf_counter() - started)
                self.queue.done(key)

    async def reconcile(self, key: Key) -> Outcome:
        kind, namespace, name = key
        self.reconciles += 1
        if kind == "SparkSession":
            return await self.reconcile_session(namespace, name)
        if kind == "NotebookServer":
            return await self.reconcile_notebook(namespace, name)
        raise ValueError(f"unknown kind {kind}")

    # --- SparkSession ------------------------------------------------------------------------

    async def _ensure(self, child: dict[str, Any], owner_uid: str, *, create_only: bool = False) -> bool:
        """Make one child match; True when it was missing. Raises NameConflict for squatters."""
        meta = child["metadata"]
        observed = self._get(child["kind"], meta["namespace"], meta["name"])
        if observed is None:
            created = await self._create(child)
            if created is not None:
                return True
            # The name is taken by something our cache does not show (not labelled as ours).
            observed = await self.kube.get(child["apiVersion"], child["kind"], meta["namespace"], meta["name"])
            if observed is None:  # gone meanwhile: retried with backoff, not left to the next event
                raise Transient(f"{child['kind']} {meta['name']} was reported both existing and missing")
            if not owned_by(observed, owner_uid) and not ours_by_label(observed, child):
                raise NameConflict(f"{child['kind']} {meta['name']!r} already exists and is not owned by this resource")
            if not create_only:
                await self._apply(child)  # ours after all (labels or owner edited away): repair it
            return False
        if not owned_by(observed, owner_uid):
            if not ours_by_label(observed, child):
                raise NameConflict(f"{child['kind']} {meta['name']!r} already exists and is not owned by this resource")
            await self._apply(child)  # its ownerReference was removed by hand: put it back
            return False
        if not create_only and not is_subset(child, observed):
            await self._apply(child)
        return False

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
            obs.stalled = ("InvalidSpec", _short_validation_error(e))
            return await self._finish(body, session_status(obs), obs.previous, events, outcome)

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
        )
        desired_pod = next((c for c in children if c["kind"] == "Pod"), None)
        try:
            for child in children:
                if child["kind"] == "Pod":
                    continue
                missing = await self._ensure(child, uid, create_only=child["kind"] == "Secret")
                if missing:
                    obs.missing.append(f"{child['kind']} {child['metadata']['name']}")
            pod = self._get("Pod", namespace, n.driver_pod)
            if pod is not None and not owned_by(pod, uid):
                raise NameConflict(f"Pod {n.driver_pod!r} already exists and is not owned by this resource")
            await self._reconcile_driver(spec, pod, desired_pod, obs, events, outcome)
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

    async def _finish(
        self,
        body: dict[str, Any],
        status: dict[str, Any],
        previous: dict[str, Any],
        events: list[tuple[str, str, str]],
        outcome: Outcome,
    ) -> Outcome:
        """Write the status if it changed, then the Events of this pass."""
        meta = body["metadata"]
        key: Key = (body["kind"], meta["namespace"], meta["name"])
        if status != previous and self._executor_write_pending(key, status, previous):
            pass  # only executor counts differ, and the paced executor pass due soon writes them
        elif status != previous:
            await self.kube.patch_status(
                body["apiVersion"], body["kind"], meta["namespace"], meta["name"], merge_patch(previous, status)
            )
            self.recent.wrote_status(key, status)
            if status["phase"] != previous.get("phase"):
                ready = next(c for c in status["conditions"] if c["type"] == "Ready")
                type_ = "Warning" if status["phase"] == "Failed" else "Normal"
                events.append((type_, status["phase"], ready["message"]))
        for type_, reason, message in events:
            await self.kube.post_event(body, type_=type_, reason=reason, message=message)
        return outcome

    # --- NotebookServer ----------------------------------------------------------------------

    async def _ensure_pvc(self, desired: dict[str, Any], owner_uid: str, notebook: str) -> bool:
        """The home PVC: ours by label (a retained claim has no owner), created once, then only its
        labels, ownership and size are kept in line (the rest of a claim's spec is immutable)."""
        meta = desired["metadata"]
        observed = self._get("PersistentVolumeClaim", meta["namespace"], meta["name"])
        if observed is None:
            if await self._create(desired) is not None:
                return True
            observed = await self.kube.get("v1", "PersistentVolumeClaim", meta["namespace"], meta["name"])
            if observed is None:
                raise Transient(f"PersistentVolumeClaim {meta['name']} was reported both existing and missing")
        labels = observed.get("metadata", {}).get("labels") or {}
        if labels.get(names.NOTEBOOK_LABEL) != notebook:
            raise NameConflict(f"PersistentVolumeClaim {meta['name']!r} already exists and is not this notebook's")
        want_owned = bool(meta.get("ownerReferences"))
        size_ok = is_subset(desired["spec"]["resources"], observed.get("spec", {}).get("resources", {}))
        if owned_by(observed, owner_uid) != want_owned or not is_subset(meta.get("labels"), labels) or not size_ok:
            await self._apply(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": meta,
                    "spec": {"resources": desired["spec"]["resources"]},
                }
            )
        return False

    async def reconcile_notebook(self, namespace: str, name: str) -> Outcome:
        body = await self._live(("NotebookServer", namespace, name))
        if body is None:
            return Outcome()
        meta = body["metadata"]
        uid = meta["uid"]
        previous = dict(self.recent.previous_status(("NotebookServer", namespace, name), body.get("status") or {}))
        annotations = meta.get("annotations") or {}
        obs = NotebookObservation(
            name=name, namespace=namespace, generation=meta.get("generation"), now=now_rfc3339(), previous=previous
        )
        obs.last_activity = self.activity.get(("NotebookServer", namespace, name))
        outcome = Outcome()
        events: list[tuple[str, str, str]] = []
        try:
            spec = NotebookServerSpec.model_validate(body.get("spec") or {})
        except ValidationError as e:
            obs.stalled = ("InvalidSpec", _short_validation_error(e))
            return await self._finish(body, notebook_status(obs), previous, events, outcome)
        obs.suspend = spec.suspend
        obs.culled_at = None if spec.suspend else annotations.get(names.CULLED_AT)
        obs.session_name = attached_session(name=name, spec=spec)
        n = names.NotebookNames(name)
        token_uid = None
        if obs.session_name:
            obs.session = self._get("SparkSession", namespace, obs.session_name)
            secret = self._get("Secret", namespace, names.SessionNames(obs.session_name).token_secret)
            token_uid = (secret or {}).get("metadata", {}).get("uid")
        owner = {"apiVersion": body["apiVersion"], "kind": body["kind"],
                 "metadata": {"name": name, "namespace": namespace, "uid": uid}}
        has_secret = self._get("Secret", namespace, n.token_secret) is not None
        children = notebook_children(
            owner=owner,
            spec=spec,
            image=spec.image or self.settings.notebook_image,
            token=None if has_secret else secrets.token_urlsafe(32),
            culled=bool(obs.culled_at),
            spark_token_uid=token_uid,
            operator_namespace=self.settings.operator_namespace,
            access_namespaces=self.settings.notebook_access_namespaces,
        )
        # A notebook that brings its own session starts once that session's token exists, so
        # the server gets SPARK_REMOTE complete instead of restarting for it a moment later.
        owned_session_pending = bool(
            obs.session_name == n.owned_session and token_uid is None and not obs.culled_at and not spec.suspend
        )
        if owned_session_pending and self._get("StatefulSet", namespace, n.statefulset) is None:
            children = [c for c in children if c["kind"] != "StatefulSet"]
            obs.missing.append(f"StatefulSet {n.statefulset} (waiting for the SparkSession's token)")
        try:
            for child in children:
                kind, child_name = child["kind"], child["metadata"]["name"]
                if kind == "PersistentVolumeClaim":
                    missing = await self._ensure_pvc(child, uid, name)
                else:
                    missing = await self._ensure(child, uid, create_only=kind == "Secret")
                if missing:
                    obs.missing.append(f"{kind} {child_name}")
                    if kind == "StatefulSet":
                        obs.statefulset = child
            if obs.session and obs.session_name == n.owned_session and not obs.culled_at and not spec.suspend:
                # Waking a culled notebook wakes the session it owns, whatever stopped that session.
                if (obs.session["metadata"].get("annotations") or {}).get(names.IDLE_SUSPENDED_AT):
                    await self.kube.annotate(obs.session, {names.IDLE_SUSPENDED_AT: None})
        except NameConflict as e:
            obs.stalled = ("NameConflict", f"{e}; delete or rename it, then the operator continues")
            outcome.requeue = self.settings.stalled_retry_seconds
        obs.statefulset = self._get("StatefulSet", namespace, n.statefulset) or obs.statefulset
        pod = self._get("Pod", namespace, n.pod)
        obs.pod = pod if pod and (pod.get("metadata", {}).get("labels") or {}).get(names.NOTEBOOK_LABEL) == name else None
        return await self._finish(body, notebook_status(obs), previous, events, outcome)

    # --- idle culling ------------------------------------------------------------------------

    async def _idle_loop(self) -> None:
        import aiohttp

        async with aiohttp.ClientSession() as http:
            while True:
                await asyncio.sleep(self.settings.idle_check_seconds)
                try:
                    await self.check_idle(http)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - one bad pass must not stop culling for good
                    log.exception("idle check failed")

    async def check_idle(self, http: Any) -> None:
        """Ask every running notebook and idle-limited session for activity; stop what is idle."""
        checks = []
        for namespace, name in list(self.cache.keys("NotebookServer")):
            checks.append(self._check_notebook(http, namespace, name))
        for namespace, name in list(self.cache.keys("SparkSession")):
            checks.append(self._check_session(http, namespace, name))
        # Bounded fan-out: a slow server must not hold up the others, nor a thousand run at once.
        limit = asyncio.Semaphore(16)

        async def bounded(coro: Any) -> None:
            async with limit:
                await coro

        await asyncio.gather(*(bounded(c) for c in checks))

    def _ready_since(self, pod: dict[str, Any]) -> datetime.datetime | None:
        for cond in pod.get("status", {}).get("conditions") or []:
            if cond.get("type") == "Ready" and cond.get("lastTransitionTime"):
                return parse_rfc3339(cond["lastTransitionTime"])
        start = pod.get("status", {}).get("startTime")
        return parse_rfc3339(start) if start else None

    def _note_activity(self, key: Key, activity: Any) -> None:
        if activity.last_activity is None:
            return
        stamp = activity.last_activity.astimezone(datetime.timezone.utc).replace(microsecond=0)
        text = stamp.isoformat().replace("+00:00", "Z")
        if self.activity.get(key) != text:
            self.activity[key] = text
            self.queue.add(key)  # the status reports it

    async def _token(self, namespace: str, secret: str) -> str | None:
        cached = self._tokens.get((namespace, secret))
        if cached is None:
            obj = await self.kube.get("v1", "Secret", namespace, secret)
            data = (obj or {}).get("data") or {}
            if names.TOKEN_KEY in data:
                import base64

                cached = base64.b64decode(data[names.TOKEN_KEY]).decode()
                self._tokens[(namespace, secret)] = cached
        return cached

    async def _check_notebook(self, http: Any, namespace: str, name: str) -> None:
        from sparkbook.activity import ProbeError, idle_for, probe_jupyter

        body = self.cache.get("NotebookServer", namespace, name)
        if body is None or (body["metadata"].get("annotations") or {}).get(names.CULLED_AT):
            return
        try:
            spec = NotebookServerSpec.model_validate(body.get("spec") or {})
        except ValidationError:
            return
        if spec.suspend or not spec.idle_culling.enabled:
            return
        n = names.NotebookNames(name)
        pod = self.cache.get("Pod", namespace, n.pod)
        if not pod or not pod_ready(pod) or not pod.get("status", {}).get("podIP"):
            return
        token = await self._token(namespace, n.token_secret)
        if token is None:
            return
        key: Key = ("NotebookServer", namespace, name)
        try:
            activity = await probe_jupyter(http, f"http://{pod['status']['podIP']}:{names.NOTEBOOK_PORT}", token)
        except ProbeError as e:
            metrics.IDLE_PROBE_ERRORS.labels("NotebookServer").inc()
            log.warning("cannot ask notebook %s/%s for activity: %s", namespace, name, e)
            return
        self._note_activity(key, activity)
        now = datetime.datetime.now(datetime.timezone.utc)
        idle = idle_for(activity, now=now, started=self._ready_since(pod))
        timeout = duration_seconds(spec.idle_culling.timeout)
        if idle.total_seconds() < timeout:
            return
        log.info("culling notebook %s/%s: %s", namespace, name, activity.detail)
        metrics.CULLS.labels("NotebookServer").inc()
        await self.kube.annotate(body, {names.CULLED_AT: now_rfc3339()})
        await self.kube.post_event(
            body,
            type_="Normal",
            reason="Culled",
            message=f"no activity for {int(idle.total_seconds())}s (idleCulling.timeout {spec.idle_culling.timeout}): "
            f"{activity.detail}; scaled to zero, files kept",
        )

    async def _check_session(self, http: Any, namespace: str, name: str) -> None:
        from sparkbook.activity import ProbeError, idle_for, probe_spark

        body = self.cache.get("SparkSession", namespace, name)
        if body is None or (body["metadata"].get("annotations") or {}).get(names.IDLE_SUSPENDED_AT):
            return
        try:
            spec = SparkSessionSpec.model_validate(body.get("spec") or {})
        except ValidationError:
            return
        if spec.suspend or not spec.idle_timeout:
            return
        pod = self.cache.get("Pod", namespace, names.SessionNames(name).driver_pod)
        if not pod or not pod_ready(pod) or not pod.get("status", {}).get("podIP"):
            return
        key: Key = ("SparkSession", namespace, name)
        try:
            activity = await probe_spark(http, f"http://{pod['status']['podIP']}:{names.UI_PORT}")
        except ProbeError as e:
            metrics.IDLE_PROBE_ERRORS.labels("SparkSession").inc()
            log.warning("cannot ask SparkSession %s/%s for activity: %s", namespace, name, e)
            return
        self._note_activity(key, activity)
        now = datetime.datetime.now(datetime.timezone.utc)
        idle = idle_for(activity, now=now, started=self._ready_since(pod))
        if idle.total_seconds() < duration_seconds(spec.idle_timeout):
            return
        log.info("suspending idle SparkSession %s/%s: %s", namespace, name, activity.detail)
        metrics.CULLS.labels("SparkSession").inc()
        await self.kube.annotate(body, {names.IDLE_SUSPENDED_AT: now_rfc3339()})
        await self.kube.post_event(
            body,
            type_="Normal",
            reason="IdleSuspended",
            message=f"no Spark Connect activity for {int(idle.total_seconds())}s (idleTimeout {spec.idle_timeout}): "
            f"{activity.detail}; driver stopped",
        )
