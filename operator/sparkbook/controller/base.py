"""The shared pass machinery of the reconcilers: level-based passes, desired children from the
spec, observed ones from the caches, one write per difference, status written only when it changes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from sparkbook import metrics, names
from sparkbook.kube import ApiError, Kube
from sparkbook.recent import RecentWrites
from sparkbook.settings import Settings
from sparkbook.util import is_subset, merge_patch
from sparkbook.workqueue import WorkQueue

log = logging.getLogger(__name__)

Key = tuple[str, str, str]  # (kind, namespace, name)



def resync_schedule(keys: list[Key], period: float) -> list[tuple[Key, float]]:
    """When each key's periodic pass is due within the next `period`: evenly spread, not all
    at once. Queued together, 5,200 resources put a SparkSession created at that moment behind
    every one of their passes (the real-control-plane bench: creation -> children p50 7.7 s
    with 5,000 present against 0.4 s with 1,000); spread, about 17 keys a second are queued
    and each resource is still looked at once per period."""
    step = period / len(keys) if keys else 0.0
    return [(key, i * step) for i, key in enumerate(keys)]

class Cache(Protocol):
    """Read-only view of what the watches have seen (sparkbook.informer.Caches in the operator)."""

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    def executors(self, namespace: str, session: str) -> list[dict[str, Any]]: ...

    def keys(self, kind: str) -> Iterable[tuple[str, str]]: ...

    def notebooks_for_session(self, namespace: str, session: str) -> list[str]: ...

    def notebooks_for_profile(self, profile: str) -> list[Key]: ...


class NameConflict(Exception):
    """A child's name is held by an object this resource does not own."""


class Transient(Exception):
    """The API said two contradicting things in a row (409 on create, then 404): look again soon."""


async def gather_all(coros: Any) -> list[Any]:
    """Run the coroutines at once; their results in order. All finish before the first failure
    (a NameConflict before others) is raised, so no write is left half-done in the background."""
    results = await asyncio.gather(*coros, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise next((f for f in failures if isinstance(f, NameConflict)), failures[0])
    return results


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


def unchangeable(desired: dict[str, Any], observed: dict[str, Any]) -> str | None:
    """Why `observed` cannot be turned into `desired` in place, or None when it can.

    A Service's cluster IP may not change once set: the Services that had a virtual IP before
    they became headless (sparkbook 0.x) are deleted and created again, which keeps their names."""
    if desired["kind"] == "Service":
        want = (desired.get("spec") or {}).get("clusterIP")
        have = (observed.get("spec") or {}).get("clusterIP")
        if want and have and want != have:
            return f"its clusterIP {have} cannot change to {want}"
    return None


def pod_hash(pod: dict[str, Any] | None) -> str | None:
    return ((pod or {}).get("metadata", {}).get("annotations") or {}).get(names.CONFIG_HASH)


def pod_images(pod: dict[str, Any] | None) -> list[tuple[str, str]] | None:
    """(container, image) pairs; the one field of a running pod that can be edited and matters."""
    containers = ((pod or {}).get("spec") or {}).get("containers")
    if not containers:
        return None
    return [(c.get("name", ""), c.get("image", "")) for c in containers]


def short_validation_error(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        where = ".".join(str(p) for p in ("spec", *item["loc"]))
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


@dataclass
class Outcome:
    """What a reconcile pass wants next: nothing, or another pass after `requeue` seconds."""

    requeue: float | None = None


class Machinery:
    """What every reconciler shares: the caches corrected by our own writes, the work queue and its
    workers, one child made to match, the status and Events of a pass. The resources' own passes
    are in sparksession.py and notebookserver.py, the idle checks in idle.py."""

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
        self.queue: WorkQueue[Key] = WorkQueue(observe_wait=metrics.QUEUE_WAIT_SECONDS.observe)
        self._tasks: list[asyncio.Task[None]] = []
        self.reconciles = 0
        # Last activity seen by the idle checks, by key; status reports it, nothing persists it.
        self.activity: dict[Key, str] = {}
        self._tokens: dict[tuple[str, str], tuple[str | None, str]] = {}  # (resourceVersion, token)
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

    async def _repair(self, child: dict[str, Any], observed: dict[str, Any]) -> None:
        """Make an existing child what we want: in place, or by creating it again under its name
        (which counts as present: a running session's phase does not flicker on an upgrade)."""
        why = unchangeable(child, observed)
        if why is None:
            await self._apply(child)
            return
        meta = observed["metadata"]
        log.info("replacing %s %s/%s: %s", child["kind"], meta.get("namespace"), meta["name"], why)
        await self.kube.delete(child["apiVersion"], child["kind"], meta.get("namespace"), meta["name"],
                               uid=meta.get("uid"))
        self.recent.deleted(observed, child["kind"])
        if await self._create(child) is None:  # the old one is still going: the retry creates it
            raise Transient(f"{child['kind']} {meta['name']} is being replaced ({why})")

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

    def profile_changed(self, profile: str, *, itself: bool = True) -> None:
        """A NotebookProfile changed: the NotebookServers naming it look again, and the profile
        itself unless the change was its own status write's echo."""
        if itself:
            self.enqueue("NotebookProfile", "", profile)
        for namespace, notebook in self.cache.notebooks_for_profile(profile):
            self.enqueue("NotebookServer", namespace, notebook)

    def session_changed(self, namespace: str, session: str, *, itself: bool = True) -> None:
        """A SparkSession (or the token Secret its notebooks mount) changed: its notebooks look
        again, and the session itself unless the change was its own status write's echo."""
        if itself:
            self.enqueue("SparkSession", namespace, session)
        for notebook in self.cache.notebooks_for_session(namespace, session):
            self.enqueue("NotebookServer", namespace, notebook)

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
        period = self.settings.resync_seconds
        while True:
            await asyncio.sleep(period)
            keys = [(kind, namespace, name) for kind in ("SparkSession", "NotebookServer", "NotebookProfile")
                    for namespace, name in self.cache.keys(kind)]
            for key, delay in resync_schedule(keys, period):
                self.queue.add_after(key, delay)

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
        if kind == "NotebookProfile":
            return await self.reconcile_profile(name)
        raise ValueError(f"unknown kind {kind}")

    # --- one child, and the end of a pass ---------------------------------------------------

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
                await self._repair(child, observed)  # ours after all (labels or owner edited away)
            return False
        if not owned_by(observed, owner_uid):
            if not ours_by_label(observed, child):
                raise NameConflict(f"{child['kind']} {meta['name']!r} already exists and is not owned by this resource")
            await self._repair(child, observed)  # its ownerReference was removed by hand: put it back
            return False
        if not create_only and not is_subset(child, observed):
            await self._repair(child, observed)
        return False

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
        if status != previous and self._write_deferred(key, status, previous):
            pass  # only executor counts differ, and the paced executor pass due soon writes them
        elif status != previous:
            answer = await self.kube.patch_status(
                body["apiVersion"], body["kind"], meta["namespace"], meta["name"], merge_patch(previous, status)
            )
            self.recent.wrote_status(key, status)
            self.recent.expect_echo(key, answer)
            if status["phase"] != previous.get("phase"):
                ready = next(c for c in status["conditions"] if c["type"] == "Ready")
                type_ = "Warning" if status["phase"] == "Failed" else "Normal"
                events.append((type_, status["phase"], ready["message"]))
        for type_, reason, message in events:
            await self.kube.post_event(body, type_=type_, reason=reason, message=message)
        return outcome

    def _write_deferred(self, key: Key, status: dict[str, Any], previous: dict[str, Any]) -> bool:
        """Whether this pass leaves its status write to a pass already due (see SparkSessions)."""
        return False
