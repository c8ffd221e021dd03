"""Informers: LIST then WATCH every kind the operator reads, into compact caches.

The operator's reads come from here, never from the API server: one paginated LIST per kind
and namespace at start, then one WATCH stream each, resumed from the last resourceVersion
(bookmarks keep it fresh) when the stream ends or breaks, and a fresh LIST only when the server
answers 410 Gone. `synced` is set once the first LIST is in; the controller waits for all of
them before it reconciles anything, so it never mistakes "not listed yet" for "missing".

Why not kopf's watches and indexes: measured in bench/ (README, "Performance"), kopf keeps a
worker and a readiness toggle per watched object and, with indexes, re-checks every toggle on
every change until all are filled, which is quadratic in the object count: with 5,200
resources (~47,000 watched children) a restarted operator did not finish its first pass. kopf
still runs the process (start-up, clean-up, signals, the liveness endpoint).

The cached values are the `trim`med objects (what the reconcilers compare) stored as compact
JSON: about a fifth of the memory of the same dicts, decoded on each read (tens of
microseconds; a reconcile reads about ten objects).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

import aiohttp

from sparkbook import names
from sparkbook.kube import ApiError, Gone, Kube
from sparkbook.recent import trim

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)
Indexer = Callable[[dict[str, Any]], Iterable[Key]]
OnChange = Callable[[str, str, dict[str, Any] | None, dict[str, Any] | None], None]

MANAGED_SELECTOR = f"{names.MANAGED_BY}={names.MANAGED_BY_VALUE}"
RELIST_AFTER_FAILURES = 3  # watch attempts that fail in a row before the informer lists again

# (apiVersion, plural, kind, label selector) of everything the operator watches.
WATCHED: list[tuple[str, str, str, str | None]] = [
    (names.API_VERSION, "sparksessions", "SparkSession", None),
    (names.API_VERSION, "notebookservers", "NotebookServer", None),
    ("v1", "pods", "Pod", MANAGED_SELECTOR),  # drivers, notebook pods and Spark's executors
    ("v1", "services", "Service", MANAGED_SELECTOR),
    ("v1", "serviceaccounts", "ServiceAccount", MANAGED_SELECTOR),
    ("v1", "secrets", "Secret", MANAGED_SELECTOR),
    ("v1", "configmaps", "ConfigMap", MANAGED_SELECTOR),
    ("v1", "persistentvolumeclaims", "PersistentVolumeClaim", MANAGED_SELECTOR),
    ("rbac.authorization.k8s.io/v1", "roles", "Role", MANAGED_SELECTOR),
    ("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding", MANAGED_SELECTOR),
    ("apps/v1", "statefulsets", "StatefulSet", MANAGED_SELECTOR),
    ("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy", MANAGED_SELECTOR),
]
# Cluster-scoped kinds: one watch of the whole cluster, whatever namespaces the operator serves.
CLUSTER_WATCHED: list[tuple[str, str, str, str | None]] = [
    (names.API_VERSION, "notebookprofiles", "NotebookProfile", None),
]


def _encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _key(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def _rv(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class Store:
    """One kind's cached objects by (namespace, name), with secondary indexes."""

    def __init__(self, kind: str, indexers: dict[str, Indexer] | None = None) -> None:
        self.kind = kind
        self._items: dict[Key, bytes] = {}
        self._rvs: dict[Key, str] = {}
        self._indexers = indexers or {}
        self._index: dict[str, dict[Key, set[Key]]] = {n: {} for n in self._indexers}
        self._indexed: dict[str, dict[Key, tuple[Key, ...]]] = {n: {} for n in self._indexers}

    def __len__(self) -> int:
        return len(self._items)

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        raw = self._items.get((namespace, name))
        return None if raw is None else json.loads(raw)

    def keys(self, namespace: str | None = None) -> list[Key]:
        keys = list(self._items)
        return keys if namespace is None else [k for k in keys if k[0] == namespace]

    def by_index(self, index: str, value: Key) -> list[Key]:
        return sorted(self._index[index].get(value, ()))

    def resource_version(self, key: Key) -> str | None:
        return self._rvs.get(key)

    def bytes_held(self) -> int:
        return sum(len(v) for v in self._items.values())

    def put(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """Add or replace; returns what was there."""
        key = _key(obj)
        old = self.get(*key)
        self._items[key] = _encode(obj)
        self._rvs[key] = _rv(obj)
        self._reindex(key, obj)
        return old

    def remove(self, key: Key) -> dict[str, Any] | None:
        old = self.get(*key)
        self._items.pop(key, None)
        self._rvs.pop(key, None)
        self._reindex(key, None)
        return old

    def _reindex(self, key: Key, obj: dict[str, Any] | None) -> None:
        for name, indexer in self._indexers.items():
            index, indexed = self._index[name], self._indexed[name]
            for value in indexed.pop(key, ()):
                members = index.get(value)
                if members is not None:
                    members.discard(key)
                    if not members:
                        del index[value]
            if obj is None:
                continue
            values = tuple(indexer(obj))
            if values:
                indexed[key] = values
                for value in values:
                    index.setdefault(value, set()).add(key)


class Informer:
    """LIST + WATCH of one kind (in one namespace, or all) into a Store; calls `on_change`
    (type, kind, new, old) with trimmed objects for every difference it sees."""

    def __init__(
        self,
        kube: Kube,
        store: Store,
        api_version: str,
        plural: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        on_change: OnChange | None = None,
        page_size: int = 250,
        watch_timeout: int = 300,
    ) -> None:
        self.kube, self.store = kube, store
        self.api_version, self.plural, self.kind = api_version, plural, store.kind
        self.namespace, self.label_selector = namespace, label_selector
        self.on_change = on_change or (lambda *_: None)
        self.page_size, self.watch_timeout = page_size, watch_timeout
        self.synced = asyncio.Event()
        self.lists = 0  # full relists (the first one included)
        self.resource_version: str | None = None

    def __repr__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"<Informer {self.plural}{where}>"

    def _notify(self, etype: str, new: dict[str, Any] | None, old: dict[str, Any] | None) -> None:
        try:
            self.on_change(etype, self.kind, new, old)
        except Exception:  # a bug in a handler must not stop the watch
            log.exception("handling %s %s failed", etype, self.kind)

    async def _list(self) -> tuple[list[dict[str, Any]], str]:
        """Every object, page by page; an expired continue token starts the list over."""
        for _attempt in range(5):
            items: list[dict[str, Any]] = []
            token: str | None = None
            version = ""
            try:
                while True:
                    page = await self.kube.list(
                        self.api_version, self.plural, self.namespace,
                        label_selector=self.label_selector, limit=self.page_size, continue_=token,
                    )
                    meta = page.get("metadata") or {}
                    version = version or str(meta.get("resourceVersion") or "")
                    # Trim as the pages arrive: the full objects of one page are the peak, not of all.
                    # A real API server's list items carry no apiVersion and kind (watch events
                    # do): put them back, or every child compares unequal to its desired manifest
                    # after a relist (the real control plane's restart showed 6 applies per resource).
                    items.extend(trim({"apiVersion": self.api_version, "kind": self.kind, **item}, self.kind)
                                 for item in page.get("items") or [])
                    token = meta.get("continue")
                    if not token:
                        return items, version
            except Gone:
                log.info("%r: the list's continue token expired; listing again", self)
        raise ApiError(410, "Expired", "the list kept expiring before it was complete")

    async def relist(self) -> str:
        items, version = await self._list()
        self.lists += 1
        seen: set[Key] = set()
        for obj in items:
            key = _key(obj)
            seen.add(key)
            if self.store.resource_version(key) == _rv(obj):
                continue
            old = self.store.put(obj)
            self._notify("ADDED" if old is None else "MODIFIED", obj, old)
        for key in self.store.keys(self.namespace):
            if key not in seen:  # deleted while we were not watching
                self._notify("DELETED", None, self.store.remove(key))
        return version

    def _apply(self, etype: str, raw: dict[str, Any]) -> None:
        obj = trim(raw, self.kind)
        if etype == "DELETED":
            old = self.store.remove(_key(obj))
            self._notify("DELETED", None, old or obj)
            return
        old = self.store.put(obj)
        self._notify("ADDED" if old is None else "MODIFIED", obj, old)

    async def run(self) -> None:
        """Until cancelled; run again, it resumes from the resourceVersion it had reached."""
        version = self.resource_version
        failures = 0
        while True:
            try:
                if version is None:
                    version = await self.relist()
                    self.resource_version = version
                    self.synced.set()
                started, events = time.monotonic(), 0
                async for event in self.kube.watch(
                    self.api_version, self.plural, self.namespace, resource_version=version,
                    label_selector=self.label_selector, timeout_seconds=self.watch_timeout,
                ):
                    events += 1
                    obj = event.get("object") or {}
                    if event.get("type") != "BOOKMARK":
                        self._apply(str(event.get("type")), obj)
                    version = _rv(obj) or version
                    self.resource_version = version
                # The server closed the stream (its timeout): resume where we are. A stream that
                # ends at once, again and again, is a fault and backs off like one.
                if events or time.monotonic() - started > 1:
                    failures = 0
                    continue
                failures += 1
                error: Exception | None = None
            except asyncio.CancelledError:
                raise
            except Gone as e:
                log.info("%r: resourceVersion %s is gone (%s); listing again", self, version, e)
                version = None
                continue
            except (ApiError, aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
                failures += 1
                error = e
                if failures >= RELIST_AFTER_FAILURES:
                    # A resourceVersion the server keeps refusing (too large after a restore or
                    # a failover, say) is not retried forever: start again from a LIST.
                    version = None
            delay = min(30.0, 0.25 * 2 ** min(failures, 8)) * (0.5 + random.random() / 2)
            if error is not None:
                level = logging.INFO if failures == 1 else logging.WARNING
                log.log(level, "%r: %s (retrying in %.1fs)", self, error or "stream ended", delay)
            await asyncio.sleep(delay)


def _executor_index(pod: dict[str, Any]) -> Iterable[Key]:
    labels = pod["metadata"].get("labels") or {}
    if labels.get(names.ROLE_LABEL) == "executor" and labels.get(names.SESSION_LABEL):
        yield pod["metadata"].get("namespace") or "", labels[names.SESSION_LABEL]


def _profile_index(notebook: dict[str, Any]) -> Iterable[Key]:
    """The NotebookProfile a NotebookServer names."""
    profile = (notebook.get("spec") or {}).get("profile")
    if profile:
        yield "", profile


def _session_index(notebook: dict[str, Any]) -> Iterable[Key]:
    """The SparkSession a NotebookServer talks to."""
    spark = (notebook.get("spec") or {}).get("spark") or {}
    namespace = notebook["metadata"].get("namespace") or ""
    if (spark.get("sessionRef") or {}).get("name"):
        yield namespace, spark["sessionRef"]["name"]
    elif spark.get("session") is not None:
        yield namespace, names.NotebookNames(notebook["metadata"]["name"]).owned_session


class Caches:
    """The Controller's Cache: one Store per kind, filled by the informers."""

    def __init__(self) -> None:
        self.stores: dict[str, Store] = {
            kind: Store(kind) for _, _, kind, _ in WATCHED if kind not in ("Pod", "NotebookServer")
        }
        self.stores["Pod"] = Store("Pod", {"executors": _executor_index})
        self.stores["NotebookServer"] = Store("NotebookServer", {"session": _session_index, "profile": _profile_index})
        for _, _, kind, _ in CLUSTER_WATCHED:
            self.stores[kind] = Store(kind)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.stores[kind].get(namespace, name)

    def keys(self, kind: str) -> list[Key]:
        return self.stores[kind].keys()

    def executors(self, namespace: str, session: str) -> list[dict[str, Any]]:
        pods = self.stores["Pod"]
        return [p for p in (pods.get(*k) for k in pods.by_index("executors", (namespace, session))) if p]

    def notebooks_for_session(self, namespace: str, session: str) -> list[str]:
        return [name for _, name in self.stores["NotebookServer"].by_index("session", (namespace, session))]

    def notebooks_for_profile(self, profile: str) -> list[Key]:
        return self.stores["NotebookServer"].by_index("profile", ("", profile))

    def informers(self, kube: Kube, namespaces: list[str] | None, on_change: OnChange) -> list[Informer]:
        return [
            Informer(kube, self.stores[kind], api_version, plural, namespace=namespace,
                     label_selector=selector, on_change=on_change)
            for api_version, plural, kind, selector in WATCHED
            for namespace in (namespaces or [None])
        ] + [
            Informer(kube, self.stores[kind], api_version, plural, namespace=None,
                     label_selector=selector, on_change=on_change)
            for api_version, plural, kind, selector in CLUSTER_WATCHED
        ]
