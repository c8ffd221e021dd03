"""`bench/run.py --target real`: the same phases against a real control plane on loopback.

kube-apiserver, etcd, kube-controller-manager, kube-scheduler and KWOK's fake nodes
(sparkbook.testing.cluster, built by `make cluster-build`) start for the run in its temporary
directory. What the emulator's instrumentation gave the emulator run comes here from the real
server's own interfaces:
- when children and statuses appear: this process watches every kind involved (list, then watch
  with bookmarks), timestamping each event as it arrives;
- which requests the operator sent: the API server's audit log (Metadata level for every user
  but the control plane's own components), read as it grows, by user agent;
- the control plane's CPU: its processes, by psutil.
The operator runs with the admin kubeconfig, as in the emulator run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

from run import API, NAMESPACES, ROOT, TOP, World, log

from sparkbook.kube import PLURALS, ApiError, Gone, Kube, connection_from_environment
from sparkbook.testing.cluster import NODES, Cluster, base_objects
from sparkbook.testing.emulator import WRITE_VERBS, RequestRecord

# Everything the benchmark's resources make, and they themselves: (apiVersion, plural, kind).
WATCHED = [(api, plural, kind) for (api, kind), plural in PLURALS.items()
           if kind not in ("Event", "Lease", "Namespace", "NotebookProfile")]


class AuditTail:
    """The audit log as RequestRecords, read as it grows (and across one rotation)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.inode: int | None = None
        self.records: list[RequestRecord] = []
        self._partial = b""
        self.lock = threading.Lock()

    def _read(self, path: Path, offset: int) -> int:
        with path.open("rb") as f:
            f.seek(offset)
            data = self._partial + f.read()
            end = f.tell()
        *lines, self._partial = data.split(b"\n")
        for line in lines:
            if line:
                self._add(json.loads(line))
        return end

    def _add(self, e: dict[str, Any]) -> None:
        verb = e.get("verb") or ""
        # One record per request: a watch when its stream starts, anything else when answered.
        if e.get("stage") != ("ResponseStarted" if verb == "watch" else "ResponseComplete"):
            return
        ref = e.get("objectRef") or {}
        self.records.append(RequestRecord(
            method=verb.upper(), path=e.get("requestURI", ""), verb=verb, group=ref.get("apiGroup"),
            version=ref.get("apiVersion"), plural=ref.get("resource"), namespace=ref.get("namespace"),
            name=ref.get("name"), subresource=ref.get("subresource"), user_agent=e.get("userAgent"),
            user=(e.get("user") or {}).get("username"), status=(e.get("responseStatus") or {}).get("code"),
        ))

    def refresh(self) -> list[RequestRecord]:
        with self.lock:
            if not self.path.exists():
                return self.records
            inode = self.path.stat().st_ino
            if self.inode is not None and inode != self.inode:
                # Rotated: the rest of the old file (renamed beside it), then the new one from 0.
                for old in self.path.parent.glob("audit-*.log"):
                    if old.stat().st_ino == self.inode:
                        self._read(old, self.offset)
                self.offset, self._partial = 0, b""
            self.inode = inode
            self.offset = self._read(self.path, self.offset)
            return self.records


class RealWorld(World):
    """World (bench/run.py) on a real control plane."""

    def __init__(self, workdir: Path, nodes: int = 8) -> None:  # noqa: D107 - World's own setup is the emulator's
        from run import Tracker

        self.tracker = Tracker()
        self.workdir = workdir
        started = time.monotonic()
        self.cluster = Cluster(state=workdir / "cluster").up()
        log(f"control plane up in {time.monotonic() - started:.0f} s ({self.cluster.server})")
        self.kubeconfig = self.cluster.kubeconfig
        self.cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        self.cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                             "crd/sparksessions.sparkbook.io", "crd/notebookservers.sparkbook.io")
        self.audit = AuditTail(self.cluster.audit_log)
        self.metrics_port = self._free_port()
        self.proc = None
        self.pyspy = None
        self.present = []
        self.connection = connection_from_environment({"KUBECONFIG": str(self.kubeconfig)})
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="bench-watches")
        self._thread.start()
        self.kube: Kube = self._call(self._open())
        self._statuses: dict[tuple[str, str, str], str] = {}
        self._watch_tasks = [self.watch(*w, self._saw) for w in WATCHED]
        for ns in NAMESPACES + ["bench-ceiling"]:
            self.create_namespace(ns)
        # Room for every pod the run makes (KWOK gives a node 1k CPUs and 1Ti of memory; a
        # notebook asks 4Gi): the first full run had 2,485 pods Pending after the burst, and the
        # scheduler retried them for 97 CPU s of the burst's 284 s.
        template = next(o for o in base_objects() if o["kind"] == "Node")
        more = []
        for i in range(len(NODES), nodes):
            node = json.loads(json.dumps(template))
            node["metadata"]["name"] = node["metadata"]["labels"]["kubernetes.io/hostname"] = f"kwok-node-{i}"
            more.append(node)
        if more:
            self.cluster.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": more}))
        # Pods go to KWOK's nodes only once they are Ready.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready = self.cluster.kubectl("get", "nodes", "-o",
                                         'jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}',
                                         check=False).stdout.split()
            if ready and all(r == "True" for r in ready):
                break
            time.sleep(0.5)

    @staticmethod
    def _free_port() -> int:
        from run import free_port

        return free_port()

    async def _open(self) -> Kube:
        kube = Kube(self.connection, qps=0, user_agent="sparkbook-bench")
        await kube.__aenter__()
        return kube

    def _call(self, coro: Any, timeout: float = 600) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def watch(self, api_version: str, plural: str, kind: str,
              saw: Callable[[str, str, dict[str, Any]], None]) -> concurrent.futures.Future[None]:
        """List, then watch from there on, in this world's loop: `saw(kind, type, object)` for
        every listed object (as ADDED) and event, as it arrives. Cancel the future to stop."""
        return asyncio.run_coroutine_threadsafe(self._watch(api_version, plural, kind, saw), self.loop)

    async def _watch(self, api_version: str, plural: str, kind: str,
                     saw: Callable[[str, str, dict[str, Any]], None]) -> None:
        while True:
            try:
                page = await self.kube.list(api_version, plural, None, limit=5000)
                rv = page["metadata"]["resourceVersion"]
                for obj in page.get("items") or []:
                    saw(kind, "ADDED", obj)
                while True:
                    async for event in self.kube.watch(api_version, plural, None, resource_version=rv,
                                                       timeout_seconds=240):
                        obj = event.get("object") or {}
                        rv = obj.get("metadata", {}).get("resourceVersion", rv)
                        if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                            saw(kind, event["type"], obj)
            except asyncio.CancelledError:
                raise
            except Gone:
                continue
            except (ApiError, OSError, asyncio.TimeoutError) as e:  # the server restarting, say
                if isinstance(e, ApiError) and e.status == 404:  # a kind this server lacks
                    return
                await asyncio.sleep(0.5)

    def _saw(self, kind: str, etype: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (kind, meta.get("namespace") or "", meta.get("name") or "")
        now = time.monotonic()
        tr = self.tracker
        if etype == "ADDED":
            tr.added.setdefault(key, now)
        elif etype == "DELETED":
            tr.added.pop(key, None)
            self._statuses.pop(key, None)
            return
        if kind in TOP:
            status = json.dumps(obj.get("status"), sort_keys=True) if obj.get("status") else ""
            old = self._statuses.get(key, "")
            if status and key not in tr.first_status:
                tr.first_status[key] = now
            if status != old:
                self._statuses[key] = status
                if etype == "MODIFIED":
                    tr.status_changes.append((now, key))

    # --- what the phases do to the API -------------------------------------------------------

    @property
    def load_target(self) -> str:
        return str(self.kubeconfig)

    def create_namespace(self, name: str) -> None:
        self._call(self.kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))

    def create(self, obj: dict[str, Any]) -> None:
        self._call(self.kube.create(obj))

    def get(self, api_version: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        kind = next(k for (a, k), p in PLURALS.items() if a == api_version and p == plural)
        return self._call(self.kube.get(api_version, kind, namespace, name))  # type: ignore[no-any-return]

    def delete(self, api_version: str, plural: str, namespace: str, name: str) -> None:
        kind = next(k for (a, k), p in PLURALS.items() if a == api_version and p == plural)
        self._call(self.kube.delete(api_version, kind, namespace, name))

    def annotate_all(self, keys: list[tuple[str, str, str]], annotations: dict[str, str]) -> None:
        async def touch() -> None:
            for _, ns, name in keys:
                await self.kube.merge_patch(API, "SparkSession", ns, name, {"metadata": {"annotations": annotations}})

        self._call(touch())

    def create_direct(self, docs: list[dict[str, Any]], batch: int = 20, per_second: float | None = None) -> None:
        """POSTed from this process, `batch` in flight, at most `per_second` a second when given."""
        started = time.monotonic()

        async def some(chunk: list[dict[str, Any]]) -> None:
            await asyncio.gather(*(self.kube.create(d) for d in chunk))

        for i in range(0, len(docs), batch):
            if per_second:
                wait = started + i / per_second - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            self._call(some(docs[i:i + batch]))

    def control_plane_cpu(self) -> dict[str, float]:
        import psutil

        out = {}
        for name, pid in self.cluster.running().items():
            try:
                t = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            out[name] = t.user + t.system
        return out

    # --- records: the audit log --------------------------------------------------------------

    def mark(self) -> int:
        return len(self.audit.refresh())

    def operator_requests(self, since: int, until: int | None = None) -> list[Any]:
        from run import is_operator

        return [r for r in self.audit.refresh()[since:until] if is_operator(r)]

    def writes(self, since: int, until: int | None = None) -> list[Any]:
        return [r for r in self.operator_requests(since, until) if r.verb in WRITE_VERBS]

    def all_requests(self, since: int, until: int | None = None) -> list[Any]:
        return list(self.audit.refresh()[since:until])

    def close(self) -> None:
        self.stop_operator()
        for task in self._watch_tasks:
            task.cancel()
        try:
            self._call(self.kube.__aexit__(None, None, None), timeout=10)
        except Exception:  # noqa: BLE001 - closing down
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.cluster.down(quiet=True)
