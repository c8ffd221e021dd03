"""The peers of `bench/run.py --target real`: other operators, at their shipped defaults, on the
same control plane in the same run, given the same number of resources as Sparkbook's burst.

- the Kubeflow Spark operator's SparkConnect controller (Go, controller-runtime), built here from
  its Go module with the Go toolchain, its CRDs applied from the same module;
- dask-kubernetes' operator (Python, kopf), installed from PyPI into a virtualenv of its own.

Each runs as its own user (a client certificate of the control plane's CA, in system:masters like
the admin Sparkbook's run uses), so the audit log tells its requests apart whatever its user agent.
What is measured for each is what the Sparkbook burst measures: time from the first create to the
last resource with all its children and a status, resources per second, the operator's writes
and requests per resource (audit log), its CPU seconds per resource and RSS (psutil), and its
requests while idle, before any resource and with them all present. A peer that cannot be built
or run is reported with the reason, never dropped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from run import log, settle, stop_process, verb_of

from sparkbook.testing.cluster import _openssl, cache_root, write_kubeconfig
from sparkbook.testing.emulator import WRITE_VERBS

SPARK_OPERATOR_MODULE = "github.com/kubeflow/spark-operator/v2"
SPARK_OPERATOR_VERSION = "v2.5.2"
DASK_KUBERNETES_VERSION = "2026.3.0"

Key = tuple[str, str, str]  # (kind, namespace, name)


class Unavailable(Exception):
    """The peer cannot be built or run here; the message says exactly why."""


def peers_cache() -> Path:
    return cache_root().parent / "peers"


def _run(argv: list[str], what: str, **kw: Any) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=1800, **kw)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise Unavailable(f"{what}: {e}") from e
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-8:]
        raise Unavailable(f"{what} failed (exit {out.returncode}): " + " | ".join(tail))
    return out.stdout


@dataclass
class Peer:
    key: str
    title: str
    api_version: str
    kind: str
    plural: str
    prefix: str  # of its namespaces
    # (apiVersion, plural, kind) of the children to watch beside the resource itself
    child_kinds: list[tuple[str, str, str]] = field(default_factory=list)
    namespaces: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.namespaces = [f"{self.prefix}-{i:02d}" for i in range(10)]

    # what each peer defines
    def prepare(self, world: Any) -> None:
        """Build or install the peer and apply its CRDs; Unavailable when it cannot."""
        raise NotImplementedError

    def command(self, kubeconfig: Path) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def doc(self, name: str, namespace: str) -> dict[str, Any]:
        raise NotImplementedError

    def children(self, name: str, namespace: str) -> list[Key]:
        """What must exist for one resource, as the keys PeerWatch records."""
        raise NotImplementedError

    def aliases(self, kind: str, obj: dict[str, Any]) -> list[Key]:
        """More keys a watched object stands for (a child whose name is not known in advance)."""
        return []

    def ready(self, obj: dict[str, Any]) -> bool:
        """Its status says what a user waits for (beyond 'a status was written')."""
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError


class SparkOperator(Peer):
    """Kubeflow Spark operator v2: `spark-operator controller start` runs the SparkApplication,
    ScheduledSparkApplication and SparkConnect controllers; a SparkConnect becomes a ConfigMap, a
    server Pod and a Service, and its status says Ready once the server pod is."""

    def __init__(self) -> None:
        super().__init__("spark-operator", f"Kubeflow Spark operator {SPARK_OPERATOR_VERSION} (Go)",
                         "sparkoperator.k8s.io/v1alpha1", "SparkConnect", "sparkconnects", "peer-spark",
                         [("v1", "configmaps", "ConfigMap"), ("v1", "pods", "Pod"), ("v1", "services", "Service")])
        self.home = peers_cache() / f"spark-operator-{SPARK_OPERATOR_VERSION}"
        self.binary = self.home / "spark-operator"

    def version(self) -> str:
        return f"{SPARK_OPERATOR_MODULE}@{SPARK_OPERATOR_VERSION}"

    def build(self) -> None:
        if self.binary.exists():
            return
        if not shutil.which("go"):
            raise Unavailable("no Go toolchain on PATH")
        env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
        info = json.loads(_run(["go", "mod", "download", "-json", f"{SPARK_OPERATOR_MODULE}@{SPARK_OPERATOR_VERSION}"],
                               "go mod download", env=env))
        if info.get("Error"):
            raise Unavailable(f"go mod download: {info['Error']}")
        # The module's go.mod has replace directives, which `go install module@version` refuses; a
        # writable copy of its source builds as its own main module, with its own go.sum.
        src = self.home / "src"
        shutil.rmtree(src, ignore_errors=True)
        shutil.copytree(info["Dir"], src)
        for path in [src, *src.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
        log(f"  building the Spark operator from {info['Dir']} (once; cached in {self.home})")
        _run(["go", "build", "-o", str(self.binary) + ".tmp", "./cmd/operator"], "go build ./cmd/operator",
             cwd=src, env=env)
        os.replace(str(self.binary) + ".tmp", self.binary)

    def prepare(self, world: Any) -> None:
        self.build()
        crds = self.home / "src" / "config" / "crd" / "bases"
        names = ["sparkconnects", "sparkapplications", "scheduledsparkapplications"]
        files = [crds / f"sparkoperator.k8s.io_{n}.yaml" for n in names]
        if not all(f.exists() for f in files):
            raise Unavailable(f"its CRDs are not in {crds}")
        for f in files:
            world.cluster.kubectl("apply", "--server-side", "-f", str(f))
        established(world, [f"{n}.sparkoperator.k8s.io" for n in names])

    def command(self, kubeconfig: Path) -> tuple[list[str], dict[str, str]]:
        # The chart's defaults (charts/spark-operator-chart values.yaml of this version): 10
        # workers, client QPS 20 / burst 30, the work queue's bucket 50/s size 500, max delay 6h,
        # the UI Service on; jobNamespaces are the peer's namespaces (the chart's default is
        # `default`). Leader election off, as Sparkbook runs --standalone here; the audit policy
        # does not record Lease requests for anyone.
        argv = [str(self.binary), "controller", "start", f"--kubeconfig={kubeconfig}",
                f"--namespaces={','.join(self.namespaces)}", "--controller-threads=10", "--enable-ui-service=true",
                "--leader-election=false", "--kube-api-qps=20", "--kube-api-burst=30",
                "--workqueue-ratelimiter-bucket-qps=50", "--workqueue-ratelimiter-bucket-size=500",
                "--workqueue-ratelimiter-max-delay=6h", "--metrics-bind-address=0",
                "--health-probe-bind-address=0", "--pprof-bind-address=0"]
        # It writes the Spark master URL into the server pod from the in-cluster environment every
        # pod has (the `kubernetes` Service's ClusterIP): what its own pod would see.
        return argv, {**os.environ, "KUBECONFIG": str(kubeconfig), "KUBERNETES_SERVICE_HOST": "10.96.0.1",
                      "KUBERNETES_SERVICE_PORT": "443"}

    def doc(self, name: str, namespace: str) -> dict[str, Any]:
        # The same shape as the benchmark's SparkSession: a 1-core 2g server, 1-core 2g executors.
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": {"name": name, "namespace": namespace},
                "spec": {"sparkVersion": "4.0.1", "image": "spark:4.0.1",
                         "server": {"cores": 1, "memory": "2g"},
                         "executor": {"instances": 1, "cores": 1, "memory": "2g"}}}

    def children(self, name: str, namespace: str) -> list[Key]:
        return [("ConfigMap", namespace, f"{name}-conf"), ("Pod", namespace, f"{name}-server"),
                ("Service", namespace, f"{name}-server")]

    def ready(self, obj: dict[str, Any]) -> bool:
        return (obj.get("status") or {}).get("state") == "Ready"


class DaskOperator(Peer):
    """dask-kubernetes' kopf operator: a DaskCluster becomes a scheduler Deployment and Service and a
    DaskWorkerGroup, which becomes one Deployment per worker; its phase goes Created, Pending,
    Running (once the scheduler Service has a status)."""

    def __init__(self) -> None:
        super().__init__("dask-kubernetes", f"dask-kubernetes {DASK_KUBERNETES_VERSION} operator (Python, kopf)",
                         "kubernetes.dask.org/v1", "DaskCluster", "daskclusters", "peer-dask",
                         [("apps/v1", "deployments", "Deployment"), ("v1", "services", "Service"),
                          ("kubernetes.dask.org/v1", "daskworkergroups", "DaskWorkerGroup")])
        self.venv = peers_cache() / f"dask-kubernetes-{DASK_KUBERNETES_VERSION}"

    def version(self) -> str:
        return f"dask-kubernetes=={DASK_KUBERNETES_VERSION} (PyPI)"

    def install(self) -> None:
        stamp = self.venv / ".installed"
        if stamp.exists():
            return
        shutil.rmtree(self.venv, ignore_errors=True)
        log(f"  installing dask-kubernetes {DASK_KUBERNETES_VERSION} into {self.venv} (once)")
        _run([sys.executable, "-m", "venv", str(self.venv)], "python -m venv")
        _run([str(self.venv / "bin" / "pip"), "install", "-q", f"dask-kubernetes=={DASK_KUBERNETES_VERSION}"],
             f"pip install dask-kubernetes=={DASK_KUBERNETES_VERSION}")
        stamp.write_text(DASK_KUBERNETES_VERSION + "\n")

    def prepare(self, world: Any) -> None:
        self.install()
        site = next((self.venv / "lib").glob("python*/site-packages"))
        crds = site / "dask_kubernetes" / "operator" / "deployment" / "helm" / "dask-kubernetes-operator" / "crds"
        files = sorted(crds.glob("*.yaml"))
        if not files:
            raise Unavailable(f"its CRDs are not in {crds}")
        for f in files:
            world.cluster.kubectl("apply", "--server-side", "-f", str(f))
        established(world, ["daskclusters.kubernetes.dask.org", "daskworkergroups.kubernetes.dask.org"])

    def command(self, kubeconfig: Path) -> tuple[list[str], dict[str, str]]:
        # The image's `kopf run -m dask_kubernetes.operator` with the chart's `--all-namespaces`;
        # --standalone as Sparkbook here (the chart installs no KopfPeering either).
        argv = [str(self.venv / "bin" / "kopf"), "run", "-m", "dask_kubernetes.operator.controller",
                "--all-namespaces", "--standalone"]
        return argv, {**os.environ, "KUBECONFIG": str(kubeconfig)}

    def doc(self, name: str, namespace: str) -> dict[str, Any]:
        container = {"name": "worker", "image": "ghcr.io/dask/dask:latest",
                     "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "2Gi"}}}
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": {"name": name, "namespace": namespace},
                "spec": {"worker": {"replicas": 1, "spec": {"containers": [
                             {**container, "args": ["dask-worker", "--name", "$(DASK_WORKER_NAME)"]}]}},
                         "scheduler": {"spec": {"containers": [
                             {**container, "name": "scheduler", "args": ["dask-scheduler"],
                              "ports": [{"name": "tcp-comm", "containerPort": 8786},
                                        {"name": "http-dashboard", "containerPort": 8787}]}]},
                             "service": {"type": "ClusterIP", "selector": {
                                 "dask.org/cluster-name": name, "dask.org/component": "scheduler"},
                                 "ports": [{"name": "tcp-comm", "protocol": "TCP", "port": 8786,
                                            "targetPort": "tcp-comm"},
                                           {"name": "http-dashboard", "protocol": "TCP", "port": 8787,
                                            "targetPort": "http-dashboard"}]}}}}

    def children(self, name: str, namespace: str) -> list[Key]:
        return [("Deployment", namespace, f"{name}-scheduler"), ("Service", namespace, f"{name}-scheduler"),
                ("DaskWorkerGroup", namespace, f"{name}-default"), ("worker Deployment", namespace, f"{name}-default")]

    def aliases(self, kind: str, obj: dict[str, Any]) -> list[Key]:
        labels = obj.get("metadata", {}).get("labels") or {}
        if kind == "Deployment" and labels.get("dask.org/component") == "worker":
            return [("worker Deployment", obj["metadata"]["namespace"], labels.get("dask.org/workergroup-name", ""))]
        return []

    def ready(self, obj: dict[str, Any]) -> bool:
        return (obj.get("status") or {}).get("phase") == "Running"


def established(world: Any, crds: list[str], timeout: float = 120) -> None:
    """Until the CRDs are Established. Not `kubectl wait`: on a busy server it can read a CRD before
    its first status and fail on the missing conditions (the first full run ended there)."""
    deadline = time.monotonic() + timeout
    path = '{.status.conditions[?(@.type=="Established")].status}'
    while time.monotonic() < deadline:
        states = [world.cluster.kubectl("get", f"crd/{c}", "-o", f"jsonpath={path}", check=False).stdout.strip()
                  for c in crds]
        if all(s == "True" for s in states):
            return
        time.sleep(1)
    raise Unavailable(f"its CRDs were not Established within {timeout:.0f} s")


PEERS: dict[str, Callable[[], Peer]] = {"spark-operator": SparkOperator, "dask-kubernetes": DaskOperator}


class PeerWatch:
    """Timestamps of the peer's resources and children, watched like RealWorld's own kinds."""

    def __init__(self, world: Any, peer: Peer) -> None:
        self.world, self.peer = world, peer
        self.added: dict[Key, float] = {}
        self.first_status: dict[Key, float] = {}
        self.ready: dict[Key, float] = {}
        kinds = [(peer.api_version, peer.plural, peer.kind), *peer.child_kinds]
        self.tasks = [world.watch(*k, self._saw) for k in kinds]

    def _saw(self, kind: str, etype: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        if etype == "DELETED":
            return
        if not (meta.get("namespace") or "").startswith(self.peer.prefix + "-"):
            return
        now = time.monotonic()
        key = (kind, meta["namespace"], meta.get("name") or "")
        self.added.setdefault(key, now)
        for alias in self.peer.aliases(kind, obj):
            self.added.setdefault(alias, now)
        if kind == self.peer.kind:
            if obj.get("status"):
                self.first_status.setdefault(key, now)
            if self.peer.ready(obj):
                self.ready.setdefault(key, now)

    def done_at(self, key: Key) -> float | None:
        _, ns, name = key
        times = [self.added.get(c) for c in self.peer.children(name, ns)] + [self.first_status.get(key)]
        return None if any(t is None for t in times) else max(times)  # type: ignore[type-var]

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()


def peer_kubeconfig(world: Any, user: str) -> Path:
    """A kubeconfig for `user`: a client certificate from the control plane's CA, in system:masters."""
    pki = world.cluster.pki
    if not (pki / f"{user}.crt").exists():
        (pki / f"{user}.ext").write_text("extendedKeyUsage=clientAuth\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{user}.key", "-out", f"{user}.csr",
                 "-subj", f"/O=system:masters/CN={user}", cwd=pki)
        _openssl("x509", "-req", "-in", f"{user}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{user}.crt", "-days", "30", "-extfile", f"{user}.ext", cwd=pki)
    return write_kubeconfig(world.workdir / f"kubeconfig-{user}", server=world.cluster.server, ca=pki / "ca.crt",
                            cert=pki / f"{user}.crt", key=pki / f"{user}.key", user=user)


def _usage(proc: subprocess.Popen[bytes]) -> tuple[float, int]:
    """CPU seconds and RSS of the peer's process and its children."""
    import psutil

    p = psutil.Process(proc.pid)
    cpu, rss = 0.0, 0
    for q in [p, *p.children(recursive=True)]:
        try:
            t = q.cpu_times()
            cpu += t.user + t.system
            rss += q.memory_info().rss
        except psutil.Error:
            pass
    return cpu, rss


def run_peer(world: Any, make: Callable[[], Peer], count: int, ceiling: float, idle_seconds: float,
             deadline_seconds: float = 1800) -> dict[str, Any]:
    """One peer: build/install, start, idle, a burst of `count` resources, idle again, stop. What
    has not converged `deadline_seconds` after the creates is counted as such (the rate is then
    the converged count over the deadline)."""
    peer = make()
    out: dict[str, Any] = {"peer": peer.key, "title": peer.title, "kind": peer.kind, "resources": count}
    try:
        out["version"] = peer.version()
        peer.prepare(world)
    except Exception as e:  # noqa: BLE001 - whatever stops a peer is its result, not the run's end
        out.update(ran=False, reason=f"{type(e).__name__}: {e}")
        log(f"  {peer.key} cannot run here: {e}")
        return out
    user = f"peer-{peer.key}"
    kubeconfig = peer_kubeconfig(world, user)
    for ns in peer.namespaces:
        world.create_namespace(ns)
    watch = PeerWatch(world, peer)
    argv, env = peer.command(kubeconfig)
    logfile = open(world.workdir / f"{peer.key}.log", "ab")
    mark0 = world.mark()
    started = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    out["command"] = " ".join(argv)

    def mine(since: int, until: int | None = None) -> list[Any]:
        return [r for r in world.audit.refresh()[since:until] if r.user == user]

    try:
        # Started: it has opened a watch on its own kind.
        deadline = time.monotonic() + 120
        while not any(r.verb == "watch" and r.plural == peer.plural for r in mine(mark0)):
            if proc.poll() is not None:
                raise Unavailable(f"it exited with {proc.returncode} at start: see {logfile.name}")
            if time.monotonic() > deadline:
                raise Unavailable("it opened no watch on its resources within 120 s")
            time.sleep(0.2)
        out["start_seconds"] = time.monotonic() - started
        time.sleep(3)
        cpu_i, rss_base = _usage(proc)
        m = world.mark()
        time.sleep(idle_seconds)
        idle = Counter(verb_of(r) for r in mine(m))
        cpu_i2, _ = _usage(proc)
        out["idle_before"] = {"seconds": idle_seconds, "requests_by_verb": dict(idle),
                              "requests_per_minute": sum(v for k, v in idle.items() if k != "watch") * 60 / idle_seconds,
                              "cpu_seconds": cpu_i2 - cpu_i}
        out["rss_mb_base"] = rss_base / 2**20

        names = [(f"p{i}", peer.namespaces[i % len(peer.namespaces)]) for i in range(count)]
        docs = [peer.doc(n, ns) for n, ns in names]
        keys = [(peer.kind, ns, n) for n, ns in names]
        path = world.workdir / f"{peer.key}-burst.json"
        path.write_text(json.dumps(docs))
        since, (cpu0, _), cp0 = world.mark(), _usage(proc), world.control_plane_cpu()
        out["client"] = world.load("create", world.load_target, str(path), "32")
        created_at = time.monotonic()
        deadline = created_at + deadline_seconds
        pending = list(keys)
        while pending and time.monotonic() < deadline and proc.poll() is None:
            pending = [k for k in pending if watch.done_at(k) is None]
            time.sleep(0.5)
        pending = [k for k in pending if watch.done_at(k) is None]  # the last ones may land in the last sleep
        # ...and the status a user waits for, a little longer (pods scheduled, started by KWOK)
        ready_deadline = time.monotonic() + (120 if not pending else 0)
        while time.monotonic() < ready_deadline and len(watch.ready) < count and proc.poll() is None:
            time.sleep(0.5)
        settle(lambda: len(mine(since)), quiet=5.0, timeout=300)
        until = world.mark()
        cpu1, rss = _usage(proc)
        cp1 = world.control_plane_cpu()
        first = min(watch.added.get(k, float("inf")) for k in keys)
        done = [t for k in keys if (t := watch.done_at(k)) is not None]
        ready = [watch.ready[k] for k in keys if k in watch.ready]
        reqs = [r for r in mine(since, until)]
        verbs = Counter(verb_of(r) for r in reqs if r.verb != "watch")
        writes = [r for r in reqs if r.verb in WRITE_VERBS]
        seconds = max(done) - first if done and not pending else deadline_seconds
        out.update(
            ran=True, converged=len(done), seconds=seconds, deadline_seconds=deadline_seconds,
            resources_per_second=len(done) / seconds if done else 0.0,
            ready=len(ready), ready_seconds=max(ready) - first if ready else None,
            writes=len(writes), writes_per_resource=len(writes) / count,
            writes_by_verb=dict(Counter(verb_of(r) for r in writes)),
            requests_per_resource=sum(verbs.values()) / count,
            requests_per_resource_by_verb={k: v / count for k, v in sorted(verbs.items())},
            cpu_seconds=cpu1 - cpu0, cpu_ms_per_resource=1000 * (cpu1 - cpu0) / count,
            cpu_ms_per_write=1000 * (cpu1 - cpu0) / max(1, len(writes)),
            rss_mb_after=rss / 2**20,
            control_plane_cpu_seconds={k: cp1[k] - cp0.get(k, 0.0) for k in sorted(cp1)},
        )
        out["fraction_of_ceiling"] = out["resources_per_second"] * out["writes_per_resource"] / ceiling
        if pending:
            out["not_converged"] = len(pending)
            out["first_not_converged"] = list(pending[0])
        if proc.poll() is not None:
            out["exited"] = proc.returncode
        m = world.mark()
        cpu_s0, _ = _usage(proc)
        time.sleep(idle_seconds)
        idle = Counter(verb_of(r) for r in mine(m))
        cpu_s1, rss_s = _usage(proc)
        out["idle_after"] = {"seconds": idle_seconds, "resources": count, "requests_by_verb": dict(idle),
                             "requests_per_minute": sum(v for k, v in idle.items() if k != "watch") * 60 / idle_seconds,
                             "cpu_seconds": cpu_s1 - cpu_s0, "rss_mb": rss_s / 2**20}
    except Unavailable as e:
        out.update(ran=False, reason=str(e))
        log(f"  {peer.key} did not run: {e}")
    finally:
        watch.close()
        stop_process(proc)
        logfile.close()
    return out


def sparkbook_row(res: dict[str, Any]) -> dict[str, Any]:
    """Sparkbook's burst in the peers' terms, for the side-by-side table."""
    b, st = res["burst"], res["steady"]
    total = 2 * b["n_each"]
    return {"peer": "sparkbook", "title": "Sparkbook (Python, kopf + own informers)", "ran": True,
            "kind": "SparkSession + NotebookServer", "resources": total, "converged": b["converged"],
            "seconds": b["seconds"], "resources_per_second": b["resources_per_second"],
            "writes_per_resource": b["writes_per_resource"],
            "requests_per_resource": sum(b["requests_per_resource_by_verb"].values()),
            "cpu_ms_per_resource": 1000 * b["cpu_seconds"] / total,
            "cpu_ms_per_write": 1000 * b["cpu_seconds"] / max(1, b["writes"]),
            "rss_mb_base": res["base"]["rss_mb"], "rss_mb_after": b["rss_mb_after"],
            "fraction_of_ceiling": res["burst_fraction_of_ceiling"],
            "idle_after": {"seconds": st["seconds"], "resources": st["resources"],
                           "requests_per_minute": sum(st["requests_by_verb"].values()) * 60 / st["seconds"]}}
