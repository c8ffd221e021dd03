"""Read-your-own-writes over the watch caches.

A watch event for what the operator just wrote can arrive after the next reconcile pass starts
(the cache lags, more so under load). Without help that pass would create the child again (a 409
and a GET), count a failed driver twice, or rewrite a status it has just written. This keeps what
the API server answered to our own writes for a few seconds and lets it stand in for the cache
until the cache has caught up (its resourceVersion is at least ours) or the memo expires.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

Key = tuple[str, str, str]  # (kind, namespace, name)

META_KEYS = (
    "name", "namespace", "uid", "labels", "annotations", "ownerReferences", "deletionTimestamp", "generation",
    "resourceVersion",
)
RECONCILED_KINDS = frozenset({"SparkSession", "NotebookServer", "NotebookProfile"})
POD_STATUS_KEYS = ("phase", "podIP", "startTime", "conditions", "containerStatuses", "reason", "message")


def trim(body: Any, kind: str) -> dict[str, Any]:
    """What the reconcilers compare, without managedFields, secret values and other bulk."""
    meta = body.get("metadata", {})
    out: dict[str, Any] = {k: v for k, v in body.items() if k not in ("metadata", "status")}
    out["metadata"] = {k: meta[k] for k in META_KEYS if k in meta}
    status = body.get("status") or {}
    if kind == "Pod":
        # Pods are compared by their config hash; only the images can be edited in a running pod.
        containers = (body.get("spec") or {}).get("containers") or []
        out["spec"] = {"containers": [{"name": c.get("name"), "image": c.get("image")} for c in containers]}
        out["status"] = {k: status[k] for k in POD_STATUS_KEYS if k in status}
    elif kind == "Secret":
        out.pop("data", None)  # never keep secret values in memory longer than needed
        out.pop("stringData", None)
    elif status:
        out["status"] = dict(status)
    return dict(out)


def _rv(obj: dict[str, Any] | None) -> int | None:
    try:
        return int((obj or {}).get("metadata", {}).get("resourceVersion"))  # etcd revisions: integers
    except (TypeError, ValueError):
        return None


class RecentWrites:
    def __init__(self, ttl: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.clock = ttl, clock
        self._objects: dict[Key, tuple[float, str, dict[str, Any]]] = {}
        self._statuses: dict[Key, tuple[float, dict[str, Any]]] = {}
        self._echoes: dict[Key, tuple[float, str]] = {}
        self._echoes_pruned_at = 0

    def __len__(self) -> int:
        return len(self._objects) + len(self._statuses)

    def wrote(self, answer: dict[str, Any] | None) -> None:
        """The API's answer to a create, apply or status patch of ours."""
        if not answer or not answer.get("metadata", {}).get("name"):
            return
        kind, meta = answer["kind"], answer["metadata"]
        key = (kind, meta.get("namespace", ""), meta["name"])
        self._objects[key] = (self.clock(), "live", trim(answer, kind))
        if kind not in RECONCILED_KINDS:
            # A SparkSession a NotebookServer wrote still needs its own reconcile; only its status
            # writes (the session's own passes) are echoes to skip.
            self.expect_echo(key, answer)

    def expect_echo(self, key: Key, answer: dict[str, Any] | None) -> None:
        """The watch will show `answer` (our own write) again: that event tells us nothing new."""
        rv = ((answer or {}).get("metadata") or {}).get("resourceVersion")
        if not rv:
            return
        now = self.clock()
        self._echoes[key] = (now, rv)
        if len(self._echoes) > max(1000, 2 * self._echoes_pruned_at):  # echoes never seen (deleted meanwhile)
            self._echoes = {k: v for k, v in self._echoes.items() if now - v[0] <= self.ttl}
            self._echoes_pruned_at = len(self._echoes)

    def observed(self, kind: str, body: dict[str, Any] | None, *, deleted: bool = False) -> None:
        """A watch showed `body` (or its deletion): a memo of ours it has caught up with is done.
        (Passes also drop such memos when they read them, but an echo starts no pass: without
        this, a memo would outlive a deletion that came after it and hide it until it expired,
        or lend its status to a new object of the same name.)"""
        meta = (body or {}).get("metadata") or {}
        key = (kind, meta.get("namespace", ""), meta.get("name", ""))
        memo = self._objects.get(key)
        if memo is not None and memo[1] == "live" and (_rv(body) or 0) >= (_rv(memo[2]) or 0):
            del self._objects[key]
        status = self._statuses.get(key)
        if status is not None and (deleted or (body or {}).get("status") == status[1]):
            del self._statuses[key]

    def is_echo(self, kind: str, body: dict[str, Any]) -> bool:
        """Whether a watch event shows exactly what our last write of that object answered.

        A resourceVersion names one state of one object, so nobody else changed it in between;
        the pass that wrote it already acted on it (client-go's controllers call this their
        expectations). Anything later, by anyone, has another resourceVersion."""
        meta = body.get("metadata") or {}
        key = (kind, meta.get("namespace", ""), meta.get("name", ""))
        memo = self._echoes.get(key)
        if memo is None:
            return False
        if meta.get("resourceVersion") == memo[1] or self.clock() - memo[0] > self.ttl:
            del self._echoes[key]
            return meta.get("resourceVersion") == memo[1]
        return False

    def deleted(self, observed: dict[str, Any], kind: str) -> None:
        """We deleted `observed`: until the cache says so, it is terminating, not there to act on."""
        body = copy.deepcopy(observed)
        body.setdefault("metadata", {}).setdefault("deletionTimestamp", "deleting")
        meta = body["metadata"]
        self._objects[(kind, meta.get("namespace", ""), meta["name"])] = (self.clock(), "deleted", body)

    def view(self, key: Key, cached: dict[str, Any] | None) -> dict[str, Any] | None:
        memo = self._objects.get(key)
        if memo is None:
            return cached
        stamp, what, body = memo
        if self.clock() - stamp > self.ttl:
            del self._objects[key]
            return cached
        if what == "deleted":
            same = cached is not None and cached["metadata"].get("uid") == body["metadata"].get("uid")
            if not same:  # gone, or replaced by a new object of the same name
                del self._objects[key]
                return cached
            return cached if cached["metadata"].get("deletionTimestamp") else body
        if cached is not None and (_rv(cached) or 0) >= (_rv(body) or 0):
            del self._objects[key]  # the cache has caught up
            return cached
        return body

    def wrote_status(self, key: Key, status: dict[str, Any]) -> None:
        self._statuses[key] = (self.clock(), copy.deepcopy(status))

    def previous_status(self, key: Key, cached: dict[str, Any]) -> dict[str, Any]:
        """The status the resource has: ours if we wrote it and the cache shows an older one."""
        memo = self._statuses.get(key)
        if memo is None:
            return cached
        stamp, status = memo
        if cached == status or self.clock() - stamp > self.ttl:
            del self._statuses[key]
            return cached
        return copy.deepcopy(status)
