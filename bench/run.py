"""Sparkbook scale benchmark: the real operator process against the API emulator on loopback, or
(--target real, bench/real.py) against a real control plane started for the run.

    .venv/bin/python bench/run.py                        # full: N=1000 burst, 1,000 and 5,000 resources (15-25 min)
    .venv/bin/python bench/run.py --quick                # smoke run: N=100, smaller levels (~1-2 min)
    .venv/bin/python bench/run.py --target real --quick  # the same on kube-apiserver + etcd + KWOK

The emulator runs in a thread of this process, instrumented to timestamp every watch event
(ADDED children, the first status of a resource, every status change); bulk HTTP load comes from
a separate process (bench/load.py) so it does not share a GIL with the emulator. The operator is
`python -m sparkbook.cli run --standalone`, exactly as in tests/api. Figures are printed as a
table and written to bench/results/results.json and results.png (real: real.json, real.png).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
TOP = ("SparkSession", "NotebookServer")
API = "sparkbook.io/v1alpha1"
NAMESPACES = [f"bench-{i:02d}" for i in range(10)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", choices=("emulator", "real"), default="emulator",
                   help="the API emulator in this process, or a real control plane (kube-apiserver, etcd, "
                        "controllers, KWOK: make cluster-build) started for the run")
    p.add_argument("--quick", action="store_true", help="N=100, levels 300 (no 5,000), 30 s steady state")
    p.add_argument("-n", type=int, help="SparkSessions and NotebookServers each in the burst (default 1000; 100 quick)")
    p.add_argument("--levels", help="comma-separated resource counts for latency/memory (default 1000,5000; 300 quick)")
    p.add_argument("--probes", type=int, help="probe SparkSessions created one by one per level (default 200; 50 quick)")
    p.add_argument("--probe-rate", type=float, default=10.0, help="probes per second (default 10)")
    p.add_argument("--steady-seconds", type=float, help="steady-state window (default 300; 30 quick)")
    p.add_argument("--churn-seconds", type=float, help="executor churn window (default 120; 30 quick)")
    p.add_argument("--out", type=Path, default=HERE / "results", help="where results.json and results.png go")
    p.add_argument("--profile", action="store_true", help="record the operator with py-spy (needs py-spy)")
    p.add_argument("--keep-logs", type=Path, metavar="DIR",
                   help="copy the operator's log (and the control plane's) here before the run's directory goes")
    p.add_argument("--table", type=Path, metavar="RESULTS_JSON",
                   help="print the README's Performance tables (Markdown) from a results file, and exit")
    p.add_argument("--peer-deadline", type=float, default=600.0,
                   help="seconds a peer gets to converge its resources (default 600); the rest count as not converged")
    p.add_argument("--peers", default="all",
                   help="real target: the peers to run after the burst, comma-separated (spark-operator, "
                        "dask-kubernetes), 'all' (default) or 'none'")
    args = p.parse_args(argv)
    q = args.quick
    args.n = args.n or (100 if q else 1000)
    args.levels = [int(x) for x in (args.levels or ("300" if q else "1000,5000")).split(",")]
    args.probes = args.probes or (50 if q else 200)
    args.steady_seconds = args.steady_seconds if args.steady_seconds is not None else (30.0 if q else 300.0)
    args.churn_seconds = args.churn_seconds if args.churn_seconds is not None else (30.0 if q else 120.0)
    return args


# --- instrumentation of the emulator ---------------------------------------------------------------

class Tracker:
    """Timestamps (time.monotonic, this process) of the emulator's watch events."""

    def __init__(self) -> None:
        self.added: dict[tuple[str, str, str], float] = {}
        self.first_status: dict[tuple[str, str, str], float] = {}
        self.status_changes: list[tuple[float, tuple[str, str, str]]] = []

    def install(self) -> None:
        from sparkbook.testing.emulator import Emulator

        original = Emulator._emit
        tracker = self

        def _emit(emu: Any, rd: Any, etype: str, obj: dict[str, Any], old: dict[str, Any] | None = None) -> None:
            original(emu, rd, etype, obj, old)
            meta = obj["metadata"]
            key = (rd.kind, meta.get("namespace") or "", meta["name"])
            now = time.monotonic()
            if etype == "ADDED":
                tracker.added[key] = now
            elif etype == "DELETED":
                tracker.added.pop(key, None)
            elif etype == "MODIFIED" and rd.kind in TOP:
                if obj.get("status") and key not in tracker.first_status:
                    tracker.first_status[key] = now
                if (old or {}).get("status") != obj.get("status"):
                    tracker.status_changes.append((now, key))

        Emulator._emit = _emit  # type: ignore[method-assign]


class Resource:
    """A top-level resource of the benchmark and the children the operator must create for it."""

    def __init__(self, doc: dict[str, Any]) -> None:
        from sparkbook.render import children_of
        from sparkbook.settings import Settings

        self.doc = doc
        meta = doc["metadata"]
        self.key = (doc["kind"], meta["namespace"], meta["name"])
        self.children = [(c["kind"], c["metadata"].get("namespace") or meta["namespace"], c["metadata"]["name"])
                         for c in children_of(doc, settings=_SETTINGS or Settings(), namespace=meta["namespace"])]

    def created(self, tr: Tracker) -> float | None:
        return tr.added.get(self.key)

    def children_at(self, tr: Tracker) -> float | None:
        times = [tr.added.get(c) for c in self.children]
        return None if any(t is None for t in times) else max(times)  # type: ignore[type-var]

    def done_at(self, tr: Tracker) -> float | None:
        c, s = self.children_at(tr), tr.first_status.get(self.key)
        return None if c is None or s is None else max(c, s)


_SETTINGS: Any = None


def session_doc(name: str, namespace: str) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "SparkSession", "metadata": {"name": name, "namespace": namespace},
            "spec": {"driver": {"cores": 1, "memory": "2g"}, "executor": {"cores": 1, "memory": "2g"},
                     "dynamicAllocation": {"enabled": True, "minExecutors": 0, "initialExecutors": 1,
                                           "maxExecutors": 10, "executorIdleTimeout": "60s"},
                     "sparkConf": {"spark.sql.shuffle.partitions": "64"}}}


def notebook_doc(name: str, namespace: str, session: str) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "NotebookServer", "metadata": {"name": name, "namespace": namespace},
            "spec": {"resources": {"requests": {"cpu": "1", "memory": "4Gi"}, "limits": {"memory": "4Gi"}},
                     "storage": {"size": "10Gi"}, "spark": {"sessionRef": {"name": session}},
                     "idleCulling": {"enabled": True, "timeout": "1h"}}}


def pairs(prefix: str, count: int) -> list[Resource]:
    """`count` resources: SparkSessions and NotebookServers attached to them, half and half."""
    out = []
    for i in range(count):
        ns = NAMESPACES[i % len(NAMESPACES)]
        if i % 2 == 0:
            out.append(Resource(session_doc(f"{prefix}s{i // 2}", ns)))
        else:
            out.append(Resource(notebook_doc(f"{prefix}n{i // 2}", ns, f"{prefix}s{i // 2}")))
    return out


# --- the world: emulator, operator, records ----------------------------------------------------------

def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds: the operators' and the peers' way out."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def settle(count: Any, *, quiet: float, timeout: float) -> None:
    """Until `count()` (requests seen so far) stays the same for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    last, since = count(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        n = count()
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def is_operator(record: Any) -> bool:
    ua = record.user_agent or ""
    return "sparkbook-operator" in ua or ua.startswith("kopf/")


def verb_of(record: Any) -> str:
    verb = record.verb or record.method.lower()
    if record.subresource:
        verb += "/" + record.subresource
    return verb


class World:
    def __init__(self, workdir: Path) -> None:
        from sparkbook.testing.emulator import EmulatorThread

        self.tracker = Tracker()
        self.tracker.install()
        self.emu = EmulatorThread(crds=sorted((ROOT / "crds").glob("*.yaml")), history_size=200000)
        self.emu.__enter__()
        self.workdir = workdir
        self.kubeconfig = self.emu.write_kubeconfig(workdir / "kubeconfig")
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.pyspy: subprocess.Popen[bytes] | None = None
        self.present: list[Resource] = []
        for ns in NAMESPACES + ["bench-ceiling"]:
            self.emu.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    # what the phases do to the API, whatever the target
    @property
    def load_target(self) -> str:
        """What bench/load.py connects to: the emulator's URL (real: a kubeconfig)."""
        return str(self.emu.url)

    def create_namespace(self, name: str) -> None:
        self.emu.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})

    def create(self, obj: dict[str, Any]) -> None:
        self.emu.create(obj)

    def get(self, api_version: str, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self.emu.get(api_version, plural, namespace, name)  # type: ignore[no-any-return]

    def delete(self, api_version: str, plural: str, namespace: str, name: str) -> None:
        self.emu.delete(api_version, plural, namespace, name)

    def annotate_all(self, keys: list[tuple[str, str, str]], annotations: dict[str, str]) -> None:
        """Merge-patch annotations onto SparkSessions (kind, namespace, name)."""
        async def touch() -> None:
            for _, ns, name in keys:
                await self.emu.handler.patch(API, "sparksessions", ns, name,
                                             {"metadata": {"annotations": annotations}}, manager="bench")

        self.emu._call(touch())

    def control_plane_cpu(self) -> dict[str, float]:
        """CPU seconds of the API server's processes (none apart: the emulator is this process)."""
        return {}

    # records
    def mark(self) -> int:
        return len(self.emu.handler.records)

    def operator_requests(self, since: int, until: int | None = None) -> list[Any]:
        return [r for r in self.emu.handler.records[since:until] if is_operator(r)]

    def by_verb(self, since: int, until: int | None = None, *, watches: bool = False) -> Counter[str]:
        return Counter(verb_of(r) for r in self.operator_requests(since, until) if watches or r.verb != "watch")

    def writes(self, since: int, until: int | None = None) -> list[Any]:
        from sparkbook.testing.emulator import WRITE_VERBS

        return [r for r in self.operator_requests(since, until) if r.verb in WRITE_VERBS]

    def all_requests(self, since: int, until: int | None = None) -> list[Any]:
        """Everyone's requests (the operator's, the controllers', the load's)."""
        return list(self.emu.handler.records[since:until])

    # operator process
    def start_operator(self, profile: str | None = None, *, wait: bool = True) -> float:
        """Start `sparkbook run`; with `wait`, until /metrics answers and the informers watch every
        kind (2 custom + 10 children), else until /metrics answers."""
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "SPARKBOOK_METRICS_PORT": str(self.metrics_port)}
        log = open(self.workdir / "operator.log", "ab")
        self.started_mark = self.mark()
        started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "sparkbook.cli", "run", "--standalone"],
                                     env=env, stdout=log, stderr=subprocess.STDOUT)
        if profile:
            self.pyspy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "-o", profile,
                                           "-f", "raw", "-r", "50", "--pid", str(self.proc.pid)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.metrics() is not None and (not wait or self.watching()):
                return time.monotonic() - started
            if self.proc.poll() is not None:
                raise SystemExit(f"the operator exited: see {self.workdir / 'operator.log'}")
            time.sleep(0.1)
        raise SystemExit("the operator did not start within 60 s")

    def watching(self) -> bool:
        return len({r.plural for r in self.operator_requests(self.started_mark) if r.verb == "watch"}) >= 12

    def stop_operator(self) -> None:
        if self.pyspy is not None:
            self.pyspy.send_signal(signal.SIGINT)
        stop_process(self.proc)
        if self.pyspy is not None:
            self.pyspy.wait(60)
            self.pyspy = None

    def metrics(self) -> dict[str, float] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return None
        out: dict[str, float] = defaultdict(float)
        for line in text.splitlines():
            if line.startswith("sparkbook_reconciles_total{"):
                labels, value = line.rsplit(" ", 1)
                out["reconciles"] += float(value)
                out[labels[len("sparkbook_reconciles_total"):]] = float(value)
            elif line.startswith("sparkbook_cached_bytes{"):
                out["cached_bytes"] += float(line.rsplit(" ", 1)[1])
            elif line.startswith("sparkbook_cached_objects{"):
                out["cached_objects"] += float(line.rsplit(" ", 1)[1])
            else:  # the time histograms' sums and counts: where a burst's time goes
                for metric, key in (("sparkbook_api_request_duration_seconds", "api"),
                                    ("sparkbook_workqueue_wait_duration_seconds", "queue"),
                                    ("sparkbook_reconcile_duration_seconds", "reconcile")):
                    for part in ("sum", "count"):
                        if line.startswith(f"{metric}_{part}"):
                            out[f"{key}_{part}"] += float(line.rsplit(" ", 1)[1])
        return out

    def memory(self) -> dict[str, float]:
        """The operator's RSS, and how much of it the cached objects' JSON is."""
        m = self.metrics() or {}
        return {"rss_mb": self.usage()[1] / 2**20, "cached_mb": m.get("cached_bytes", 0.0) / 2**20,
                "cached_objects": m.get("cached_objects", 0.0)}

    def reconciles(self) -> float:
        return (self.metrics() or {}).get("reconciles", 0.0)

    def usage(self) -> tuple[float, int]:
        """(CPU seconds, RSS bytes) of the operator process."""
        import psutil

        assert self.proc is not None
        p = psutil.Process(self.proc.pid)
        t = p.cpu_times()
        return t.user + t.system, p.memory_info().rss

    # creating things
    def create_direct(self, docs: list[dict[str, Any]], batch: int = 20, per_second: float | None = None) -> None:
        """Straight into the emulator's store (no HTTP): how fills and probes are made, at most
        `per_second` resources a second when given."""
        handler = self.emu.handler

        async def many(chunk: list[dict[str, Any]]) -> None:
            for doc in chunk:
                await handler.create(doc, manager="bench")

        started = time.monotonic()
        for i in range(0, len(docs), batch):
            if per_second:
                wait = started + i / per_second - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
            self.emu._call(many(docs[i:i + batch]))

    def load(self, *args: str) -> dict[str, Any]:
        out = subprocess.run([sys.executable, str(HERE / "load.py"), *args], capture_output=True, text=True,
                             check=True, timeout=1800)
        return json.loads(out.stdout)

    def wait_done(self, resources: list[Resource], *, timeout: float, what: str = "status") -> dict[tuple, float]:
        """Wait until every resource has all its children (and a status); their completion times."""
        done: dict[tuple, float] = {}
        pending = list(resources)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            still = []
            for r in pending:
                t = r.done_at(self.tracker) if what == "status" else r.children_at(self.tracker)
                if t is None:
                    still.append(r)
                else:
                    done[r.key] = t
            pending = still
            if pending:
                time.sleep(0.2)
        if pending:
            print(f"  !! {len(pending)} of {len(resources)} not converged after {timeout:.0f} s "
                  f"(first: {pending[0].key})", flush=True)
        return done

    def settle(self, quiet: float = 3.0, timeout: float = 600) -> None:
        """Until the operator sends nothing for `quiet` seconds."""
        settle(lambda: len(self.operator_requests(0)), quiet=quiet, timeout=timeout)

    def settle_statuses(self, quiet: float = 15.0, timeout: float = 1200) -> float:
        """Until no SparkSession or NotebookServer status changes for `quiet` seconds; the seconds
        it took. A resource has its children and a status long before the control plane has run
        everything those ask for: on the real one, kube-controller-manager binds claims one by
        one (2,500 notebook claims took minutes), and each notebook turns Running when its pod
        is scheduled at last. Measuring the steady state, or the latency with N present, while
        that goes on counts the operator's answers to it (the first full run: 1,807 'steady'
        writes, all notebooks turning Running, and probes at 5,000 waiting 16 s behind them)."""
        started = time.monotonic()
        settle(lambda: len(self.tracker.status_changes), quiet=quiet, timeout=timeout)
        return time.monotonic() - started

    def close(self) -> None:
        self.stop_operator()
        self.emu.__exit__(None, None, None)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- the phases ------------------------------------------------------------------------------------

def ceiling(world: World, quick: bool) -> dict[str, Any]:
    count = 1000 if quick else 3000
    seq = world.load("ceiling", world.load_target, "bench-ceiling", str(count), "1")
    # Different names for the concurrent run: prefix the namespace is the same, so use a second one.
    world.create_namespace("bench-ceiling2")
    par = world.load("ceiling", world.load_target, "bench-ceiling2", str(count), "16")
    return {"sequential_per_second": seq["per_second"], "concurrent16_per_second": par["per_second"],
            "creates_per_second": max(seq["per_second"], par["per_second"]), "count": count,
            "errors": seq["errors"] + par["errors"]}


def fill(world: World, target: int, tag: str) -> dict[str, Any]:
    """Bring the resources present up to `target` (half SparkSessions, half NotebookServers)."""
    need = target - len(world.present)
    if need <= 0:
        return {"added": 0}
    resources = pairs(tag, need)
    rec0, (cpu0, _) = world.reconciles(), world.usage()
    started = time.monotonic()
    world.create_direct([r.doc for r in resources], per_second=100)
    world.present += resources
    done = world.wait_done(resources, timeout=1800)
    seconds = max(done.values(), default=started) - started
    world.settle()
    settled = world.settle_statuses()
    rec1, (cpu1, rss) = world.reconciles(), world.usage()
    return {"added": need, "converged": len(done), "seconds": seconds,
            "statuses_settled_after_s": settled, "reconciles": rec1 - rec0,
            "cpu_seconds": cpu1 - cpu0, "cpu_ms_per_reconcile": 1000 * (cpu1 - cpu0) / max(1.0, rec1 - rec0),
            "rss_mb_after": rss / 2**20}


def probe(world: World, count: int, rate: float, tag: str) -> dict[str, Any]:
    """SparkSessions created one by one at a steady pace: creation -> all children, and requests each."""
    resources = [Resource(session_doc(f"{tag}p{i}", NAMESPACES[i % len(NAMESPACES)])) for i in range(count)]
    since, rec0 = world.mark(), world.reconciles()
    start = time.monotonic()
    for i, r in enumerate(resources):
        wait = start + i / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        world.create_direct([r.doc])
    world.present += resources
    world.wait_done(resources, timeout=300)
    world.settle()
    lat_children = [1000 * (r.children_at(world.tracker) - r.created(world.tracker))  # type: ignore[operator]
                    for r in resources if r.children_at(world.tracker) is not None]
    lat_status = [1000 * (r.done_at(world.tracker) - r.created(world.tracker))  # type: ignore[operator]
                  for r in resources if r.done_at(world.tracker) is not None]
    verbs = world.by_verb(since)
    return {"probes": count, "rate_per_second": rate, "measured": len(lat_children),
            "children_ms": {"p50": pct(lat_children, 50), "p90": pct(lat_children, 90), "p99": pct(lat_children, 99),
                            "max": max(lat_children, default=float("nan"))},
            "status_ms": {"p50": pct(lat_status, 50), "p99": pct(lat_status, 99)},
            "requests_per_session_by_verb": {k: v / count for k, v in sorted(verbs.items())},
            "reconciles_per_session": (world.reconciles() - rec0) / count,
            "latencies_children_ms": sorted(lat_children)}


def burst(world: World, n: int) -> dict[str, Any]:
    resources = []
    for i in range(n):
        ns = NAMESPACES[i % len(NAMESPACES)]
        resources.append(Resource(session_doc(f"bs{i}", ns)))
        resources.append(Resource(notebook_doc(f"bn{i}", ns, f"bs{i}")))
    path = world.workdir / "burst.json"
    path.write_text(json.dumps([r.doc for r in resources]))
    since, rec0, (cpu0, _) = world.mark(), world.reconciles(), world.usage()
    m0, cp0 = world.metrics() or {}, world.control_plane_cpu()
    client = world.load("create", world.load_target, str(path), "32")
    world.present += resources
    done = world.wait_done(resources, timeout=1800)
    world.settle()
    until = world.mark()
    rec1, (cpu1, rss) = world.reconciles(), world.usage()
    m1, cp1 = world.metrics() or {}, world.control_plane_cpu()
    start = min(r.created(world.tracker) or float("inf") for r in resources)
    sessions = [done[r.key] for r in resources if r.key[0] == "SparkSession" and r.key in done]
    notebooks = [done[r.key] for r in resources if r.key[0] == "NotebookServer" and r.key in done]
    seconds = max(done.values()) - start
    verbs = world.by_verb(since, until)
    writes = world.writes(since, until)
    total = len(resources)
    # A SparkSession's own share comes from the probes (one by one); the rest is the notebooks'.
    curve = sorted(t - start for t in done.values())
    return {"n_each": n, "client": client, "converged": len(done), "seconds": seconds,
            "sessions_seconds": max(sessions) - start if sessions else float("nan"),
            "notebooks_seconds": max(notebooks) - start if notebooks else float("nan"),
            "resources_per_second": len(done) / seconds,
            "writes": len(writes), "writes_per_resource": len(writes) / total,
            "writes_by_verb": dict(Counter(verb_of(r) for r in writes)),
            "requests_per_resource_by_verb": {k: v / total for k, v in sorted(verbs.items())},
            "reconciles": rec1 - rec0, "reconciles_per_resource": (rec1 - rec0) / total,
            "cpu_seconds": cpu1 - cpu0, "cpu_ms_per_reconcile": 1000 * (cpu1 - cpu0) / max(1.0, rec1 - rec0),
            "rss_mb_after": rss / 2**20,
            "completion_curve_s": [curve[int(i * (len(curve) - 1) / 100)] for i in range(101)] if curve else [],
            "breakdown": breakdown(seconds, cpu1 - cpu0, m0, m1, cp0, cp1)}


def breakdown(seconds: float, cpu: float, m0: dict[str, float], m1: dict[str, float],
              cp0: dict[str, float], cp1: dict[str, float]) -> dict[str, Any]:
    """Where a burst's wall time went: the operator's CPU (one core is the most one asyncio
    process can use), the API's answers as the operator saw them (summed over requests, which
    overlap: divided by the wall time it is the requests in flight on average), the wait in the
    work queue, and the control plane's own CPU."""
    d = {k: m1.get(k, 0.0) - m0.get(k, 0.0) for k in ("api_sum", "api_count", "queue_sum", "queue_count",
                                                         "reconcile_sum", "reconcile_count")}
    out: dict[str, Any] = {
        "wall_seconds": seconds,
        "operator_cpu_seconds": cpu, "operator_cpu_fraction_of_one_core": cpu / seconds if seconds else None,
        "api_requests": d["api_count"], "api_seconds_summed": d["api_sum"],
        "api_mean_ms": 1000 * d["api_sum"] / d["api_count"] if d["api_count"] else None,
        "api_requests_in_flight_mean": d["api_sum"] / seconds if seconds else None,
        "queue_waits": d["queue_count"],
        "queue_wait_mean_ms": 1000 * d["queue_sum"] / d["queue_count"] if d["queue_count"] else None,
        "reconcile_mean_ms": 1000 * d["reconcile_sum"] / d["reconcile_count"] if d["reconcile_count"] else None,
    }
    for name in sorted(cp1):
        out[f"{name}_cpu_seconds"] = cp1[name] - cp0.get(name, 0.0)
    return out


def noop(world: World, count: int = 100) -> dict[str, Any]:
    """Touch an annotation nobody reads on `count` SparkSessions: each is reconciled, nothing to do."""
    sessions = [r for r in world.present if r.key[0] == "SparkSession"][:count]
    since, rec0, (cpu0, _) = world.mark(), world.reconciles(), world.usage()

    world.annotate_all([r.key for r in sessions], {"bench/touched": str(time.time())})
    deadline = time.monotonic() + 60
    while world.reconciles() - rec0 < count and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2)
    rec1, (cpu1, _) = world.reconciles(), world.usage()
    verbs = world.by_verb(since)
    reconciles = rec1 - rec0
    return {"touched": count, "reconciles": reconciles, "requests": sum(verbs.values()),
            "requests_per_reconcile_by_verb": {k: v / max(1.0, reconciles) for k, v in verbs.items()},
            "cpu_ms_per_reconcile": 1000 * (cpu1 - cpu0) / max(1.0, reconciles)}


def what(record: Any) -> str:
    """'create pods 201': a request's verb, resource and answer, for breakdowns."""
    return f"{verb_of(record)} {record.plural} {record.status}"


def steady(world: World, seconds: float) -> dict[str, Any]:
    settled = world.settle_statuses()
    since, rec0, (cpu0, _) = world.mark(), world.reconciles(), world.usage()
    time.sleep(seconds)
    rec1, (cpu1, rss) = world.reconciles(), world.usage()
    verbs = world.by_verb(since)
    writes = world.writes(since)
    # What the others (controllers, the fake kubelet) deleted or evicted in the same window: a
    # write of ours in steady state is either a bug of ours or an answer to one of these.
    others = Counter(f"{r.user} {what(r)}" for r in world.all_requests(since)
                     if not is_operator(r) and r.verb in ("delete", "deletecollection", "create")
                     and r.plural in ("pods", "services", "statefulsets", "persistentvolumeclaims", "secrets"))
    return {"seconds": seconds, "resources": len(world.present), "statuses_settled_after_s": settled,
            "writes": len(writes),
            "writes_by_request": dict(Counter(what(r) for r in writes).most_common(20)),
            "others_deletes_and_creates": dict(others.most_common(20)),
            "requests_by_verb": dict(verbs), "reconciles": rec1 - rec0, "cpu_seconds": cpu1 - cpu0,
            "rss_mb": rss / 2**20}


def restart(world: World, timeout: float) -> dict[str, Any]:
    world.stop_operator()
    since = world.mark()
    started = time.monotonic()
    world.start_operator(wait=False)
    resources = len(world.present)
    deadline = started + timeout
    first = watching = None
    while (rec := world.reconciles()) < resources and time.monotonic() < deadline:
        if rec and first is None:
            first = time.monotonic() - started
        if watching is None and world.watching():
            watching = time.monotonic() - started
        time.sleep(0.5)
    seconds = time.monotonic() - started
    finished = rec >= resources
    if finished:
        world.settle()
    return {"resources": resources, "finished": finished, "timeout": timeout, "watching_after_s": watching,
            "first_reconcile_after_s": first, "seconds_until_all_checked": seconds, "reconciles": rec,
            "requests_by_verb": dict(world.by_verb(since, watches=True)), "writes": len(world.writes(since)),
            "writes_by_verb": dict(Counter(verb_of(r) for r in world.writes(since)))}


def churn(world: World, seconds: float, sessions_n: int = 10, per_minute: float = 100.0,
          lifetime: float = 30.0) -> dict[str, Any]:
    """Executor pods created and deleted like Spark's dynamic allocation would, owned by driver pods."""
    from sparkbook import names

    sessions = [r.key for r in world.present if r.key[0] == "SparkSession"][-sessions_n:]
    drivers = {}
    for _, ns, name in sessions:
        pod = world.get("v1", "pods", ns, names.SessionNames(name).driver_pod)
        drivers[(ns, name)] = pod["metadata"]["uid"] if pod else None
    since, rec0 = world.mark(), world.reconciles()
    changes0 = len(world.tracker.status_changes)
    live: list[tuple[float, str, str]] = []
    created = deleted = 0
    start = time.monotonic()
    interval = 60.0 / per_minute
    i = 0
    while time.monotonic() - start < seconds:
        wait = start + i * interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        _, ns, name = sessions[i % len(sessions)]
        pod_name = f"{names.SessionNames(name).executor_prefix}-exec-{i}"
        labels = {**names.session_labels(name, "executor"), names.ROLE_LABEL: "executor"}
        owner = [{"apiVersion": "v1", "kind": "Pod", "name": names.SessionNames(name).driver_pod,
                  "uid": drivers[(ns, name)], "controller": True}] if drivers[(ns, name)] else []
        world.create({"apiVersion": "v1", "kind": "Pod",
                          "metadata": {"name": pod_name, "namespace": ns, "labels": labels, "ownerReferences": owner},
                          "spec": {"containers": [{"name": "spark-kubernetes-executor", "image": "spark"}]}})
        created += 1
        live.append((time.monotonic(), ns, pod_name))
        while live and time.monotonic() - live[0][0] > lifetime:
            _, dns, dname = live.pop(0)
            world.delete("v1", "pods", dns, dname)
            deleted += 1
        i += 1
    world.settle()
    verbs = world.by_verb(since)
    changes = [(t, k) for t, k in world.tracker.status_changes[changes0:] if k[0] == "SparkSession"]
    per_session: dict[Any, list[float]] = defaultdict(list)
    for t, k in changes:
        per_session[k].append(t)
    window = 5.0
    max_in_window = 0
    gaps = []
    for ts in per_session.values():
        ts.sort()
        gaps += [b - a for a, b in zip(ts, ts[1:])]
        j = 0
        for k in range(len(ts)):
            while ts[k] - ts[j] > window:
                j += 1
            max_in_window = max(max_in_window, k - j + 1)
    elapsed = time.monotonic() - start
    for _, dns, dname in live:
        world.delete("v1", "pods", dns, dname)
    # Their sessions' statuses follow after the executor batch delay: let them land here, so the
    # restart that comes next starts from a converged state.
    world.settle(quiet=5.0)
    return {"seconds": elapsed, "sessions": len(sessions), "pods_created": created, "pods_deleted": deleted,
            "pods_per_minute": created / elapsed * 60, "lists": verbs.get("list", 0), "requests_by_verb": dict(verbs),
            "status_writes": verbs.get("patch/status", 0),
            "status_writes_per_session_per_minute": verbs.get("patch/status", 0) / len(sessions) / (elapsed / 60),
            "max_status_changes_per_session_in_5s": max_in_window,
            "median_seconds_between_status_changes": statistics.median(gaps) if gaps else None,
            "min_seconds_between_status_changes": min(gaps) if gaps else None,
            "reconciles": world.reconciles() - rec0}


def run_peers(world: World, args: argparse.Namespace, ceiling: float) -> list[dict[str, Any]]:
    """The peers (bench/peers.py), one after the other, each given the burst's number of resources."""
    from peers import PEERS, run_peer

    wanted = None if args.peers == "all" else set(args.peers.split(","))
    out = []
    for peer_key, make in PEERS.items():
        if wanted is not None and peer_key not in wanted:
            continue
        log(f"peer {peer_key}: {2 * args.n} resources")
        r = run_peer(world, make, 2 * args.n, ceiling, idle_seconds=30.0, deadline_seconds=args.peer_deadline)
        log(f"  {r}")
        out.append(r)
    return out


# --- report -----------------------------------------------------------------------------------------

def real_targets(res: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """The real control plane's targets (issue 15), on 2 cores shared by everything."""
    rows: list[tuple[str, str, str, bool | None]] = []
    b, lv = res["burst"], res["levels"]
    frac = res["burst_fraction_of_ceiling"]
    rows.append((f"burst {b['n_each']}+{b['n_each']}: rate x writes / ceiling", f"{frac:.0%}", ">= 60 %", frac >= 0.6))
    p = lv[0]["probe"]["children_ms"]
    rows.append((f"creation->children p50 @{lv[0]['level']}", f"{p['p50']:.0f} ms", "< 50 ms", p["p50"] < 50))
    rows.append((f"creation->children p99 @{lv[0]['level']}", f"{p['p99']:.0f} ms", "< 250 ms", p["p99"] < 250))
    rows.append(("requests per no-op reconcile", f"{res['noop']['requests']} / {res['noop']['reconciles']:.0f}",
                 "0", res["noop"]["requests"] == 0))
    rows.append((f"writes in steady state ({res['steady']['seconds']:.0f} s)", str(res["steady"]["writes"]), "0",
                 res["steady"]["writes"] == 0))
    rs = res["restart"]
    rows.append(("writes on restart", str(rs["writes"]), "0", rs["writes"] == 0))
    limit = 30 if rs["resources"] >= 5000 else None
    rows.append((f"restart @{rs['resources']}: every resource checked",
                 f"{rs['seconds_until_all_checked']:.0f} s" + ("" if rs["finished"] else " (timed out)"),
                 "< 30 s" if limit else "finishes", rs["finished"] and (limit is None or rs["seconds_until_all_checked"] < limit)))
    base = res.get("base", {}).get("rss_mb")
    if base is not None:
        rows.append(("operator RSS before any resource", f"{base:.0f} MB", "< 60 MB", base < 60))
    for level in lv:
        cap = 120 if level["level"] <= 1000 else 250
        rows.append((f"operator RSS @{level['level']}", f"{level['rss_mb']:.0f} MB", f"< {cap} MB", level["rss_mb"] < cap))
    ours = res.get("peers_table", [{}])[0]
    for peer in res.get("peers", []):
        if not peer.get("ran"):
            rows.append((f"vs {peer['peer']}", "did not run", "runs", None))
            continue
        rows.append((f"convergence rate vs {peer['peer']}",
                     f"{ours['resources_per_second']:.1f} vs {peer['resources_per_second']:.1f}/s", "higher",
                     ours["resources_per_second"] > peer["resources_per_second"]))
        go = "Go" in peer["title"]
        ratio = ours["cpu_ms_per_resource"] / peer["cpu_ms_per_resource"] if peer["cpu_ms_per_resource"] else float("inf")
        rows.append((f"CPU per resource vs {peer['peer']}",
                     f"{ours['cpu_ms_per_resource']:.0f} vs {peer['cpu_ms_per_resource']:.0f} ms ({ratio:.2f}x)",
                     "<= 2x" if go else "below", ratio <= 2 if go else ratio < 1))
    return rows


def targets(res: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    if res.get("target") == "real":
        return real_targets(res)
    rows: list[tuple[str, str, str, bool | None]] = []
    lv = res["levels"]
    first = lv[0]
    p = first["probe"]["children_ms"]
    rows.append((f"creation->children p50 @{first['level']}", f"{p['p50']:.0f} ms", "< 100 ms", p["p50"] < 100))
    rows.append((f"creation->children p99 @{first['level']}", f"{p['p99']:.0f} ms", "< 400 ms", p["p99"] < 400))
    b = res["burst"]
    rows.append((f"{b['n_each']} SparkSessions reconciled (burst)", f"{b['sessions_seconds']:.1f} s",
                 f"< {60 * b['n_each'] / 1000:.0f} s", b["sessions_seconds"] < 60 * b["n_each"] / 1000))
    rows.append(("requests per no-op reconcile", f"{res['noop']['requests']} / {res['noop']['reconciles']:.0f}",
                 "0", res["noop"]["requests"] == 0))
    rows.append((f"writes in steady state ({res['steady']['seconds']:.0f} s)", str(res["steady"]["writes"]), "0",
                 res["steady"]["writes"] == 0))
    rs = res["restart"]
    rows.append(("writes on restart", str(rs["writes"]) + ("" if rs["finished"] else " (unfinished)"), "0",
                 None if rs["writes"] is None else rs["writes"] == 0))
    rows.append((f"restart @{rs['resources']}: every resource checked",
                 f"{rs['seconds_until_all_checked']:.0f} s" + ("" if rs["finished"] else " (timed out)"), "finishes",
                 rs["finished"]))
    for level in lv:
        limit = 150 if level["level"] <= 1000 else 350
        rows.append((f"operator RSS @{level['level']}", f"{level['rss_mb']:.0f} MB", f"< {limit} MB",
                     level["rss_mb"] < limit))
    c = res["churn"]
    rows.append(("LISTs during executor churn", str(c["lists"]), "0", c["lists"] == 0))
    gap = c.get("min_seconds_between_status_changes")
    rows.append(("closest two status changes of a session (churn)", "-" if gap is None else f"{gap:.1f} s",
                 ">= 3 s", None if gap is None else gap >= 3.0))
    rows.append(("status writes/session/min (churn)", f"{c['status_writes_per_session_per_minute']:.1f}",
                 "<= 20", c["status_writes_per_session_per_minute"] <= 20))
    return rows


def peer_cells(p: dict[str, Any]) -> list[str]:
    """One operator's figures in the side-by-side table, for the terminal and the README alike."""
    idle = p.get("idle_after", {}).get("requests_per_minute")
    return [f"{p['seconds']:.1f} s", f"{p['resources_per_second']:.1f}", f"{p['writes_per_resource']:.2f}",
            f"{p['requests_per_resource']:.2f}", f"{p['cpu_ms_per_resource']:.1f}",
            f"{p.get('cpu_ms_per_write', float('nan')):.2f}", f"{p['rss_mb_base']:.0f} / {p['rss_mb_after']:.0f}",
            "-" if idle is None else f"{idle:.1f}"]


def markdown(res: dict[str, Any]) -> str:
    """The README's Performance tables, from a results file (`bench/run.py --table FILE`)."""
    b, ce, lv = res["burst"], res["ceiling"], res["levels"]
    bd = b.get("breakdown") or {}
    out = ["| Figure | Measured | Target | |", "|---|---|---|---|"]

    def row(name: str, value: str, target: str = "", verdict: bool | None = None) -> None:
        out.append(f"| {name} | {value} | {target} | {'' if verdict is None else ('PASS' if verdict else 'MISS')} |")

    row("ceiling: ConfigMap creates/s, one client, 1 / 16 in flight",
        f"{ce['sequential_per_second']:.0f} / {ce['concurrent16_per_second']:.0f}")
    row(f"burst {b['n_each']:,} + {b['n_each']:,}: all children and a status",
        f"{b['seconds']:.1f} s, {b['resources_per_second']:.1f} resources/s, {b['writes_per_resource']:.1f} writes each")
    if bd:
        cp = ", ".join(f"{k.removesuffix('_cpu_seconds')} {v:.0f}" for k, v in bd.items()
                       if k.endswith("_cpu_seconds") and k != "operator_cpu_seconds")
        row("where the burst's time went",
            f"operator {bd['operator_cpu_seconds']:.1f} CPU s ({bd['operator_cpu_fraction_of_one_core']:.0%} of a core); "
            f"API answers {bd['api_mean_ms'] or 0:.0f} ms mean, {bd['api_requests_in_flight_mean'] or 0:.1f} in flight; "
            f"queue wait {bd['queue_wait_mean_ms'] or 0:.0f} ms mean; control plane CPU s: {cp}")
    for name, value, target, verdict in res["targets"]:
        row(name, value, target, verdict)
    st, rs, c = res["steady"], res["restart"], res["churn"]
    row(f"steady state {st['seconds']:.0f} s with {st['resources']:,} present",
        f"{sum(st['requests_by_verb'].values())} requests "
        f"({', '.join(f'{k} {v}' for k, v in st['requests_by_verb'].items()) or 'none'}), {st['writes']} writes")
    row(f"restart with {rs['resources']:,} present: requests", ", ".join(f"{k} {v}" for k, v in rs["requests_by_verb"].items()))
    row(f"executor churn, {c['pods_per_minute']:.0f} pods/min on {c['sessions']} sessions",
        f"{c['lists']} LISTs, {c['status_writes_per_session_per_minute']:.1f} status writes per session per minute")
    for level in lv:
        p = level["probe"]["children_ms"]
        row(f"creation -> all children, {level['probe']['probes']} probes at "
            f"{level['probe']['rate_per_second']:.0f}/s, {level['level']:,} present",
            f"p50 {p['p50']:.0f} ms, p99 {p['p99']:.0f} ms (max {p['max']:.0f})")
    table = res.get("peers_table") or []
    if table:
        out += ["", "| Operator (same control plane, same run) | Resources | Converged in | Resources/s | Writes / resource "
                "| Requests / resource | CPU ms / resource | CPU ms / write | RSS MB before / after | Requests/min idle |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for p in table:
            if not p.get("ran"):
                out.append(f"| {p.get('title', p['peer'])} | did not run: {p.get('reason')} | | | | | | | | |")
                continue
            out.append("| " + " | ".join([p.get("title", p["peer"]), f"{p['converged']:,} / {p['resources']:,} {p['kind']}",
                                          *peer_cells(p)]) + " |")
    return "\n".join(out)


def report(res: dict[str, Any]) -> str:
    ce, b = res["ceiling"], res["burst"]
    lines = ["", f"Sparkbook benchmark, target {res.get('target', 'emulator')}" + (" (--quick)" if res["quick"] else ""),
             "=" * 96]

    def row(name: str, value: str, target: str = "", verdict: bool | None = None) -> None:
        mark = "" if verdict is None else ("PASS" if verdict else "MISS")
        if verdict is None and target:
            mark = "n/a"
        lines.append(f"{name:<52} {value:>22}  {target:<14} {mark}")

    target = res.get("target", "emulator")
    row(f"{target} ceiling: creates/s, 1 client sequential", f"{ce['sequential_per_second']:.0f}")
    row(f"{target} ceiling: creates/s, 1 client 16 in flight", f"{ce['concurrent16_per_second']:.0f}")
    row(f"burst {b['n_each']}+{b['n_each']}: all children + status", f"{b['seconds']:.1f} s")
    row("burst: resources/s", f"{b['resources_per_second']:.1f}")
    row("burst: operator writes per resource", f"{b['writes_per_resource']:.2f}")
    row("burst: rate x writes / ceiling", f"{res['burst_fraction_of_ceiling']:.1%}")
    row("burst: reconciles per resource", f"{b['reconciles_per_resource']:.2f}")
    bd = b.get("breakdown") or {}
    if bd:
        row("burst: operator CPU / wall", f"{bd['operator_cpu_seconds']:.1f} / {bd['wall_seconds']:.1f} s")
        row("burst: API answer mean, requests in flight",
            f"{bd['api_mean_ms'] or 0:.1f} ms, {bd['api_requests_in_flight_mean'] or 0:.1f}")
        row("burst: queue wait mean, reconcile mean",
            f"{bd['queue_wait_mean_ms'] or 0:.0f} ms, {bd['reconcile_mean_ms'] or 0:.1f} ms")
        cp = ", ".join(f"{k.removesuffix('_cpu_seconds')} {v:.1f}" for k, v in bd.items() if k.endswith("_cpu_seconds")
                       and k != "operator_cpu_seconds")
        if cp:
            row("burst: control plane CPU s", cp)
    row("burst: requests per resource by verb",
        ", ".join(f"{k} {v:.2f}" for k, v in b["requests_per_resource_by_verb"].items()))
    lv0 = res["levels"][0]["probe"]
    row("first reconcile of a SparkSession: requests by verb",
        ", ".join(f"{k} {v:.2f}" for k, v in lv0["requests_per_session_by_verb"].items()))
    row("no-op reconcile: requests by verb",
        ", ".join(f"{k} {v:.2f}" for k, v in res["noop"]["requests_per_reconcile_by_verb"].items()) or "none")
    for level in res["levels"]:
        p = level["probe"]["children_ms"]
        row(f"@{level['level']}: creation->children p50/p99/max",
            f"{p['p50']:.0f}/{p['p99']:.0f}/{p['max']:.0f} ms")
        row(f"@{level['level']}: CPU ms per reconcile (fill)", f"{level['fill']['cpu_ms_per_reconcile']:.2f}")
        row(f"@{level['level']}: operator RSS", f"{level['rss_mb']:.0f} MB")
        if level.get("cached_objects"):
            row(f"@{level['level']}: cached objects / their JSON",
                f"{level['cached_objects']:.0f} / {level['cached_mb']:.1f} MB")
    st, rs, c = res["steady"], res["restart"], res["churn"]
    row(f"steady {st['seconds']:.0f} s @{st['resources']}: requests (reconciles)",
        f"{sum(st['requests_by_verb'].values())} ({st['reconciles']:.0f})")
    def secs(v: float | None) -> str:
        return "never" if v is None else f"{v:.1f} s"

    row(f"restart @{rs['resources']}: all watches open / first reconcile",
        f"{secs(rs['watching_after_s'])} / {secs(rs['first_reconcile_after_s'])}")
    row(f"restart: reconciles after {rs['seconds_until_all_checked']:.0f} s", f"{rs['reconciles']:.0f}")
    row("restart: requests by verb", ", ".join(f"{k} {v}" for k, v in rs["requests_by_verb"].items()))
    row(f"churn: {c['pods_per_minute']:.0f} executor pods/min on {c['sessions']} sessions: status writes/session/min",
        f"{c['status_writes_per_session_per_minute']:.1f}")
    if res.get("peers_table"):
        lines.append("-" * 96)
        lines.append("Side by side, same control plane, same run (each at its shipped defaults)")
        lines.append(f"{'operator':<18} {'resources':>9} {'seconds':>8} {'res/s':>7} {'writes/r':>8} {'req/r':>6} "
                     f"{'CPU ms/r':>8} {'ms/write':>8} {'RSS MB':>11} {'idle req/min':>12}")
        for p in res["peers_table"]:
            if not p.get("ran"):
                lines.append(f"{p['peer']:<18} did not run: {p.get('reason')}")
                continue
            widths = (8, 7, 8, 6, 8, 8, 11, 12)
            lines.append(f"{p['peer']:<18} {p['converged']:>4}/{p['resources']:<4} "
                         + " ".join(f"{c.removesuffix(' s'):>{w}}" for c, w in zip(peer_cells(p), widths)))
    lines.append("-" * 96)
    lines.append("Targets")
    for name, value, target, verdict in res["targets"]:
        row(name, value, target, verdict)
    return "\n".join(lines)


def plot(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = [p for p in res.get("peers_table", []) if p.get("ran")]
    fig, ax = plt.subplots(3 if table else 2, 2, figsize=(12, 12 if table else 8))
    curve = res["burst"].get("completion_curve_s") or []
    total = res["burst"]["converged"]
    if curve:
        ax[0][0].plot(curve, [i / 100 * total for i in range(len(curve))])
    else:  # results rebuilt from a log: the end points only
        ax[0][0].plot([0, res["burst"]["sessions_seconds"], res["burst"]["seconds"]], [0, total / 2, total], "o-")
    ax[0][0].axvline(60, color="grey", ls=":", label="60 s")
    ax[0][0].set(title=f"burst: {res['burst']['n_each']}+{res['burst']['n_each']} resources converged",
                 xlabel="seconds since first create", ylabel="resources with children + status")
    ax[0][0].legend()
    for level in res["levels"]:
        lat = level["probe"].get("latencies_children_ms") or []
        if lat:
            ax[0][1].plot(lat, [(i + 1) / len(lat) for i in range(len(lat))], label=f"{level['level']} present")
        else:  # results rebuilt from a log: the percentiles only
            p = level["probe"]["children_ms"]
            ax[0][1].plot([p["p50"], p["p90"], p["p99"], p["max"]], [0.5, 0.9, 0.99, 1.0], "o-",
                          label=f"{level['level']} present")
    real = res.get("target") == "real"
    ax[0][1].axvline(50 if real else 100, color="grey", ls=":")
    ax[0][1].axvline(250 if real else 400, color="grey", ls="--")
    ax[0][1].set(title="creation -> all children (CDF)", xlabel="ms", ylabel="fraction", xscale="log")
    ax[0][1].legend()
    lv = res["levels"]
    xs = [str(level["level"]) for level in lv]
    ax[1][0].bar(xs, [level["rss_mb"] for level in lv], color="tab:blue")
    caps = (120, 250) if real else (150, 350)
    for x, limit in zip(xs, [caps[0] if level["level"] <= 1000 else caps[1] for level in lv]):
        ax[1][0].plot([x], [limit], "r_", markersize=40)
    ax[1][0].set(title="operator RSS (red: target)", xlabel="resources present", ylabel="MB")
    verbs = res["levels"][0]["probe"]["requests_per_session_by_verb"]
    ax[1][1].bar(list(verbs), list(verbs.values()), color="tab:green")
    ax[1][1].set(title="API requests per new SparkSession, by verb", ylabel="requests")
    ax[1][1].tick_params(axis="x", rotation=30)
    if table:
        names = [p["peer"] for p in table]
        colors = ["tab:blue"] + ["tab:grey"] * (len(table) - 1)
        ax[2][0].bar(names, [p["resources_per_second"] for p in table], color=colors)
        ax[2][0].set(title=f"converged per second ({table[0]['resources']} resources each, same control plane)",
                     ylabel="resources/s")
        width = 0.4
        xs = range(len(table))
        ax[2][1].bar([x - width / 2 for x in xs], [p["cpu_ms_per_resource"] for p in table], width,
                     label="operator CPU ms per resource", color="tab:orange")
        ax[2][1].bar([x + width / 2 for x in xs], [p["rss_mb_after"] for p in table], width,
                     label="RSS MB after", color="tab:purple")
        ax[2][1].set_xticks(list(xs), names)
        ax[2][1].set(title="cost per resource and memory")
        ax[2][1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.table:
        print(markdown(json.loads(args.table.read_text())))
        return 0
    global _SETTINGS
    from sparkbook.settings import Settings

    _SETTINGS = Settings()
    args.out.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"quick": args.quick, "target": args.target, "machine": {"cpus": os.cpu_count()},
                           "levels": []}
    with tempfile.TemporaryDirectory(prefix="sparkbook-bench-") as tmp:
        if args.target == "real":
            from real import RealWorld

            # ~1 TiB of pod requests per 300 resources, the peers' included
            world: World = RealWorld(Path(tmp), nodes=8 if args.quick else 48)
        else:
            world = World(Path(tmp))
        try:
            log(f"{args.target} ceiling")
            res["ceiling"] = ceiling(world, args.quick)
            log(f"  {res['ceiling']}")
            log(f"operator started in {world.start_operator(str(world.workdir.parent / 'sparkbook-operator-profile.txt') if args.profile else None):.1f} s")
            time.sleep(2)
            res["base"] = world.memory()  # before any resource
            log(f"  base: {res['base']}")
            first, *rest = args.levels
            log(f"fill to {first}")
            fill0 = fill(world, first, "a")
            log(f"  {fill0}")
            log(f"probe at {len(world.present)}")
            level = {"level": first, "fill": fill0, **world.memory()}
            level["probe"] = probe(world, args.probes, args.probe_rate, "a")
            res["levels"].append(level)
            log(f"  {dict((k, v) for k, v in level['probe'].items() if k != 'latencies_children_ms')}")
            log("no-op reconciles")
            res["noop"] = noop(world)
            log(f"  {res['noop']}")
            log(f"burst {args.n}+{args.n}")
            res["burst"] = burst(world, args.n)
            log(f"  {dict((k, v) for k, v in res['burst'].items() if k != 'completion_curve_s')}")
            if args.target == "real" and args.peers != "none":
                res["peers"] = run_peers(world, args, res["ceiling"]["creates_per_second"])
            for i, target in enumerate(rest):
                log(f"fill to {target}")
                f = fill(world, target, f"f{i}")
                log(f"  {f}")
                level = {"level": target, "fill": f, **world.memory()}
                level["probe"] = probe(world, args.probes, args.probe_rate, f"f{i}")
                log(f"  {dict((k, v) for k, v in level['probe'].items() if k != 'latencies_children_ms')}")
                res["levels"].append(level)
            log(f"steady state for {args.steady_seconds:.0f} s")
            res["steady"] = steady(world, args.steady_seconds)
            log(f"  {res['steady']}")
            log(f"executor churn for {args.churn_seconds:.0f} s")
            res["churn"] = churn(world, args.churn_seconds, lifetime=min(30.0, args.churn_seconds / 3))
            log(f"  {res['churn']}")
            log("restart")
            res["restart"] = restart(world, timeout=60 if args.quick else 300)
            log(f"  {res['restart']}")
        finally:
            world.close()
            if args.keep_logs:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                for log_file in Path(tmp).rglob("*.log"):
                    if not log_file.name.startswith("audit"):
                        shutil.copy(log_file, args.keep_logs / log_file.name)
    b = res["burst"]
    res["burst_fraction_of_ceiling"] = b["resources_per_second"] * b["writes_per_resource"] / \
        res["ceiling"]["creates_per_second"]
    if "peers" in res:
        from peers import sparkbook_row

        res["peers_table"] = [sparkbook_row(res), *res["peers"]]
    res["targets"] = targets(res)
    print(report(res))
    name = ("real" if args.target == "real" else "results") + ("-quick" if args.quick else "")
    (args.out / f"{name}.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    plot(res, args.out / f"{name}.png")
    print(f"\nwrote {args.out / (name + '.json')} and {args.out / (name + '.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
