"""A real Kubernetes control plane on loopback, built from Go modules: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler and KWOK's fake nodes (no container runs).

`python -m sparkbook.testing.cluster build|up|down|status` (`make cluster` / `make cluster-down`).
The binaries are built once from the wrapper modules in cluster/ and cached outside the work tree,
keyed by the modules' go.mod/go.sum and the Go version; the cluster's state (PKI, etcd data,
kubeconfigs, logs, pids) lives in one directory, `.cluster/` for `make cluster`, a temporary one
for the e2e suite. Standard library only, so it runs before anything else is installed.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
MODULES = ROOT / "cluster"
KUBE_VERSION = "v1.36.3"
SERVICE_CIDR = "10.96.0.0/16"  # ClusterIPs are only allocated here: nothing routes to them
# Pod and node IPs are taken from the loopback range, so whatever a test or the operator sends to a
# pod IP (the idle checks ask Jupyter and the Spark REST API there) stays on this machine.
POD_CIDR = "127.42.0.0/16"
NODE_IP = "127.41.0.1"
NODES = ("kwok-node-0", "kwok-node-1")
STORAGE_CLASS = "standard"


@dataclass(frozen=True)
class Tool:
    """One binary and the wrapper module (cluster/<module>) it is built from."""

    name: str
    module: str
    package: str
    ldflags: tuple[str, ...] = ()


def _kube_ldflags() -> tuple[str, ...]:
    major, minor = KUBE_VERSION.lstrip("v").split(".")[:2]
    out = []
    for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        out += [f"-X {pkg}.gitVersion={KUBE_VERSION}", f"-X {pkg}.gitMajor={major}", f"-X {pkg}.gitMinor={minor}",
                f"-X {pkg}.gitTreeState=clean"]
    return tuple(out)


TOOLS = (
    *(Tool(n, "kubernetes", f"k8s.io/kubernetes/cmd/{n}", _kube_ldflags())
      for n in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")),
    Tool("etcd", "etcd", "go.etcd.io/etcd/server/v3"),
    Tool("kwok", "kwok", "sigs.k8s.io/kwok/cmd/kwok"),
    Tool("helm", "helm", "helm.sh/helm/v4/cmd/helm"),
)


def _go_env() -> dict[str, str]:
    # A toolchain download is not possible here, and the pinned go.sum must be what is built.
    return {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly"}


@functools.cache
def _go_version() -> str:
    return subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True, check=True,
                          env=_go_env()).stdout.strip()


def cache_root() -> Path:
    if os.environ.get("SPARKBOOK_CLUSTER_CACHE"):
        return Path(os.environ["SPARKBOOK_CLUSTER_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "sparkbook" / "cluster"


def _module_key(module: str) -> str:
    """The wrapper module's go.mod/go.sum, the Go version and the flags: what a binary is made of."""
    digest = hashlib.sha256(_go_version().encode())
    for name in ("go.mod", "go.sum"):
        digest.update((MODULES / module / name).read_bytes())
    digest.update(repr([t for t in TOOLS if t.module == module]).encode())
    return digest.hexdigest()[:12]


def tool_path(name: str) -> Path:
    """Where the binary `name` of these exact wrapper modules and this Go version is cached."""
    tool = next(t for t in TOOLS if t.name == name)
    return cache_root() / f"{tool.module}-{_module_key(tool.module)}" / name


def module_dir(module: str, path: str) -> Path:
    """Where Go's module cache holds `path` as the wrapper module `module` pins it."""
    out = subprocess.run(["go", "list", "-m", "-f", "{{.Dir}}", path], cwd=MODULES / module, capture_output=True,
                         text=True, check=True, env=_go_env()).stdout.strip()
    return Path(out)


def build(*, quiet: bool = False) -> None:
    """Build whatever of TOOLS is missing; a warm run builds nothing."""
    missing = [t for t in TOOLS if not tool_path(t.name).exists()]
    if not missing:
        if not quiet:
            print(f"cluster binaries: cached in {cache_root()}")
        return
    started = time.monotonic()
    for tool in missing:
        t0 = time.monotonic()
        print(f"building {tool.name} from {tool.package} (cluster/{tool.module}) ...", flush=True)
        target = tool_path(tool.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{tool.name}.tmp")
        subprocess.run(
            ["go", "build", "-ldflags", " ".join(("-s", "-w", *tool.ldflags)), "-o", str(tmp), tool.package],
            cwd=MODULES / tool.module, check=True, env=_go_env(),
        )
        tmp.rename(target)
        print(f"  {tool.name}: {time.monotonic() - t0:.0f} s", flush=True)
    total = time.monotonic() - started
    print(f"cluster binaries built in {total:.0f} s ({len(missing)} of {len(TOOLS)}) into {cache_root()}", flush=True)


def staging_replacements(version: str = KUBE_VERSION) -> dict[str, str]:
    """k8s.io/kubernetes's own `replace k8s.io/<x> => ./staging/...` list, each mapped to the
    published release that matches `version` (v1.36.3 -> v0.36.3)."""
    info = json.loads(subprocess.run(["go", "mod", "download", "-json", f"k8s.io/kubernetes@{version}"],
                                     capture_output=True, text=True, check=True, env=_go_env(), cwd=MODULES).stdout)
    staging = "v0." + version.lstrip("v").split(".", 1)[1]
    out = {}
    for line in Path(info["GoMod"]).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "=>" and parts[2].startswith("./staging/"):
            out[parts[0]] = staging
    return out


def pinned_replacements() -> dict[str, str]:
    """The replace block of cluster/kubernetes/go.mod."""
    out = {}
    for line in (MODULES / "kubernetes" / "go.mod").read_text().splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[1] == "=>" and parts[0] == parts[2]:
            out[parts[0]] = parts[3]
    return out


def pin() -> None:
    """Rewrite cluster/kubernetes/go.mod for KUBE_VERSION and tidy it (go.sum too)."""
    lines = [
        "// Wrapper module: builds the Kubernetes control plane from the k8s.io/kubernetes module.",
        "// k8s.io/kubernetes points its staging modules at ./staging/..., which 'go install' refuses;",
        "// here each one is replaced by its published v0.X.Y release. Generated by",
        "// `python -m sparkbook.testing.cluster pin` from the module's own go.mod; do not edit.",
        "module sparkbook.local/cluster/kubernetes", "", "go 1.26.0", "",
        f"require k8s.io/kubernetes {KUBE_VERSION}", "", "replace (",
        *(f"\t{m} => {m} {v}" for m, v in sorted(staging_replacements().items())), ")", "", "tool (",
        *(f"\t{t.package}" for t in TOOLS if t.module == "kubernetes"), ")", "",
    ]
    (MODULES / "kubernetes" / "go.mod").write_text("\n".join(lines))
    subprocess.run(["go", "mod", "tidy"], cwd=MODULES / "kubernetes", check=True,
                   env={**_go_env(), "GOFLAGS": "-mod=mod"})


# --- running it --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _pki(pki: Path) -> None:
    """A CA, the API server's serving certificate, one client certificate per component, and the
    service-account signing key pair."""
    if (pki / "ca.crt").exists():
        return
    pki.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
             "-subj", "/CN=sparkbook-test-ca", cwd=pki)
    sans = "DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc," \
           "DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:10.96.0.1"
    certs = {
        "apiserver": ("/CN=kube-apiserver", f"subjectAltName={sans}\nextendedKeyUsage=serverAuth"),
        "admin": ("/O=system:masters/CN=kubernetes-admin", "extendedKeyUsage=clientAuth"),
        "controller-manager": ("/CN=system:kube-controller-manager", "extendedKeyUsage=clientAuth"),
        "scheduler": ("/CN=system:kube-scheduler", "extendedKeyUsage=clientAuth"),
        # KWOK plays every kubelet; as a test double it acts with an admin's rights.
        "kwok": ("/O=system:masters/CN=kwok", "extendedKeyUsage=clientAuth"),
    }
    for name, (subject, ext) in certs.items():
        (pki / f"{name}.ext").write_text(ext + "\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", subject, cwd=pki)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "3650", "-extfile", f"{name}.ext", cwd=pki)
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def write_kubeconfig(path: Path, *, server: str, ca: Path, cert: Path | None = None, key: Path | None = None,
                     token: str | None = None, user: str = "admin", namespace: str | None = None) -> Path:
    auth: dict[str, Any] = {"token": token} if token else {"client-certificate": str(cert), "client-key": str(key)}
    context: dict[str, Any] = {"cluster": "sparkbook", "user": user}
    if namespace:
        context["namespace"] = namespace
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "sparkbook",
        "clusters": [{"name": "sparkbook", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": user, "user": auth}],
        "contexts": [{"name": "sparkbook", "context": context}],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML: every client reads it
    path.chmod(0o600)
    return path


AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  userGroups: ["system:nodes"]
- level: None
  users: ["system:kube-scheduler", "system:kube-controller-manager", "system:apiserver", "kwok"]
- level: None
  resources: [{group: coordination.k8s.io, resources: [leases]}]
- level: Metadata
"""


class PortTaken(RuntimeError):
    """A component could not bind the loopback port chosen for it."""


@dataclass
class Cluster:
    """The control plane's state directory and what it started."""

    state: Path
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    # (stopped, ready again) of each restart(), as epoch seconds: while kube-apiserver starts, its
    # RBAC authorizer's caches are still empty and it refuses requests it would allow.
    restarts: list[tuple[float, float]] = field(default_factory=list)
    # What this process started, to tell how one of them ended (exit code or signal).
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    @property
    def audit_log(self) -> Path:
        return self.logs / "audit.log"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    def tool(self, name: str) -> str:
        return str(tool_path(name))

    # persistence -----------------------------------------------------------------------------

    def _save(self) -> None:
        (self.state / "state.json").write_text(json.dumps({"ports": self.ports, "pids": self.pids}, indent=2))

    @classmethod
    def load(cls, state: Path) -> "Cluster":
        cluster = cls(state=state)
        saved = state / "state.json"
        if saved.exists():
            data = json.loads(saved.read_text())
            cluster.ports, cluster.pids = data.get("ports", {}), data.get("pids", {})
        return cluster

    def running(self) -> dict[str, int]:
        """Components whose recorded process is alive and is the binary we started."""
        alive = {}
        for name, pid in self.pids.items():
            proc = self.procs.get(name)
            if proc is not None and proc.pid == pid:
                # Our own child: its exit status says. (Its /proc cmdline is no witness right after
                # the spawn: Popen's vfork returns before the kernel has set up the new argv.)
                if proc.poll() is None:
                    alive[name] = pid
                continue
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            except OSError:
                continue
            if cmdline.startswith(str(cache_root())) or Path(cmdline).name == name:
                alive[name] = pid
        return alive

    # start-up ---------------------------------------------------------------------------------

    def _spawn(self, name: str, argv: list[str]) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=self.state)
        log.close()
        self.procs[name] = proc
        self.pids[name] = proc.pid
        self._save()

    def _wait(self, what: str, check: Any, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                last = exc
            for name, pid in self.pids.items():
                if name not in self.running():
                    tail = _tail(self.logs / f"{name}.log") or "(its log is empty)"
                    error = PortTaken if "address already in use" in tail else RuntimeError
                    raise error(f"{name} (pid {pid}) {self._ended(name)} while waiting for {what}; "
                                f"see {self.logs / (name + '.log')}:\n{tail}")
            time.sleep(0.25)
        raise TimeoutError(f"{what} not ready after {timeout:.0f} s (last error: {last}); logs in {self.logs}")

    def _ended(self, name: str) -> str:
        proc = self.procs.get(name)
        code = proc.poll() if proc else None
        if code is None:
            return "exited"
        if code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def _get(self, path: str, *, cert: str = "admin") -> bytes:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / f"{cert}.crt"), str(self.pki / f"{cert}.key"))
        with urllib.request.urlopen(self.server + path, context=ctx, timeout=5) as resp:
            return resp.read()

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([self.tool("kubectl"), "--kubeconfig", str(self.kubeconfig), *args], input=input,
                                capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result

    def up(self) -> "Cluster":
        """Start whatever is not running; idempotent."""
        build(quiet=True)
        self.state.mkdir(parents=True, exist_ok=True)
        if set(self.running()) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}:
            return self
        for _ in range(3):
            try:
                return self._start()
            except PortTaken as taken:
                # A free port was taken by someone else between our choosing it and the bind.
                print(f"{taken}; starting again on other ports", file=sys.stderr)
                self.down(quiet=True)
        raise RuntimeError("the control plane could not get free loopback ports three times in a row")

    def _start(self) -> "Cluster":
        self.down(quiet=True, keep_state=True)
        _pki(self.pki)
        for name in ("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler", "kwok"):
            self.ports[name] = free_port()
        self._save()
        p = self.pki
        self._start_etcd()
        (self.state / "audit-policy.yaml").write_text(AUDIT_POLICY)
        self._spawn("kube-apiserver", self.apiserver_argv())
        self._wait("kube-apiserver", lambda: self._get("/readyz") == b"ok", timeout=180)
        write_kubeconfig(self.kubeconfig, server=self.server, ca=p / "ca.crt", cert=p / "admin.crt",
                         key=p / "admin.key")
        for component, cert in (("controller-manager", "controller-manager"), ("scheduler", "scheduler"),
                                ("kwok", "kwok")):
            write_kubeconfig(self.state / f"{component}.kubeconfig", server=self.server, ca=p / "ca.crt",
                             cert=p / f"{cert}.crt", key=p / f"{cert}.key", user=component)
        self._spawn("kube-controller-manager", self.controller_manager_argv())
        self._spawn("kube-scheduler", [
            self.tool("kube-scheduler"), "--kubeconfig", str(self.state / "scheduler.kubeconfig"),
            "--authentication-kubeconfig", str(self.state / "scheduler.kubeconfig"),
            "--authorization-kubeconfig", str(self.state / "scheduler.kubeconfig"),
            "--bind-address", "127.0.0.1", "--secure-port", str(self.ports["scheduler"]),
            "--leader-elect=false", "-v", "1",
        ])
        (self.state / "kwok.yaml").write_text(kwok_config())
        self._spawn("kwok", [
            self.tool("kwok"), "--kubeconfig", str(self.state / "kwok.kubeconfig"), "--config",
            str(self.state / "kwok.yaml"), "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--cidr", POD_CIDR, "--node-ip", NODE_IP,
            "--server-address", f"127.0.0.1:{self.ports['kwok']}",
        ])
        # Right after /readyz some API groups may still be settling: a refused first apply is retried.
        base = json.dumps({"apiVersion": "v1", "kind": "List", "items": base_objects()})
        self._wait("the fake nodes and the default StorageClass", lambda: self.kubectl(
            "apply", "--server-side", "--field-manager=sparkbook-cluster", "-f", "-", input=base) is not None,
            timeout=60)
        self._wait("nodes Ready", self._nodes_ready, timeout=120)
        self._wait("the default ServiceAccount (kube-controller-manager)",
                   lambda: self.kubectl("get", "serviceaccount", "default", "-n", "default", check=False).returncode == 0)
        return self

    def etcd_argv(self) -> list[str]:
        url = f"http://127.0.0.1:{self.ports['etcd']}"
        peer = f"http://127.0.0.1:{self.ports['etcd-peer']}"
        return [
            self.tool("etcd"), "--name", "sparkbook", "--data-dir", str(self.state / "etcd"),
            "--listen-client-urls", url, "--advertise-client-urls", url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"sparkbook={peer}", "--unsafe-no-fsync", "--log-level", "info",
        ]

    def _etcd_healthy(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ports['etcd']}/health", timeout=2) as resp:
            return json.loads(resp.read()).get("health") == "true"

    def _start_etcd(self, attempts: int = 3, timeout: float = 30) -> None:
        """etcd first, and healthy, before kube-apiserver: the API server gives up on storage after
        about 20 s. Once (CI, 2026-12-02) an etcd hung before its first log line while another one
        started in 50 ms a few seconds later; a hung one is asked for its goroutines (SIGQUIT makes
        Go print every stack into the log) and started again."""
        for attempt in range(1, attempts + 1):
            self._spawn("etcd", self.etcd_argv())
            try:
                self._wait("etcd", self._etcd_healthy, timeout=timeout)
                return
            except TimeoutError:
                pid = self.pids.pop("etcd")
                self.procs.pop("etcd", None)
                _dump_and_stop(pid)
                self._save()
                print(f"etcd (pid {pid}) not healthy after {timeout:.0f} s, attempt {attempt} of {attempts}; "
                      f"its goroutine stacks are in {self.logs / 'etcd.log'}", file=sys.stderr, flush=True)
        raise TimeoutError(f"etcd not healthy after {attempts} starts; see {self.logs / 'etcd.log'}")

    def _nodes_ready(self) -> bool:
        out = self.kubectl("get", "nodes", "-o", "jsonpath={.items[*].status.conditions[?(@.type=='Ready')].status}")
        return out.stdout.split() == ["True"] * len(NODES)

    def apiserver_argv(self) -> list[str]:
        p = self.pki
        return [
            self.tool("kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.ports['apiserver']}",
            f"--cert-dir={self.state / 'apiserver-certs'}",
            f"--tls-cert-file={p / 'apiserver.crt'}", f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={p / 'ca.crt'}",
            "--authorization-mode=Node,RBAC",
            # As kubeadm and kind run it: privileged pods are for PodSecurity to refuse, namespace by namespace.
            "--allow-privileged=true",
            # The defaults (NamespaceLifecycle, ServiceAccount, PodSecurity, DefaultStorageClass, ...)
            # plus NodeRestriction, as kubeadm runs it.
            "--enable-admission-plugins=NodeRestriction",
            f"--service-account-key-file={p / 'sa.pub'}", f"--service-account-signing-key-file={p / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--audit-policy-file={self.state / 'audit-policy.yaml'}", f"--audit-log-path={self.audit_log}",
            "--audit-log-maxsize=200", "--audit-log-maxbackup=1",
            "--profiling=false", "--v=1",
        ]

    def controller_manager_argv(self) -> list[str]:
        kc = str(self.state / "controller-manager.kubeconfig")
        return [
            self.tool("kube-controller-manager"), f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}", "--bind-address=127.0.0.1",
            f"--secure-port={self.ports['controller-manager']}",
            f"--service-account-private-key-file={self.pki / 'sa.key'}", f"--root-ca-file={self.pki / 'ca.crt'}",
            "--use-service-account-credentials=true", "--leader-elect=false",
            f"--cluster-signing-cert-file={self.pki / 'ca.crt'}", f"--cluster-signing-key-file={self.pki / 'ca.key'}",
            # PVCs bind: the in-tree host-path provisioner (for development clusters) makes their PVs.
            "--enable-hostpath-provisioner=true",
            f"--service-cluster-ip-range={SERVICE_CIDR}", "--v=1",
        ]

    def restart(self, component: str) -> None:
        """Stop one component (SIGTERM) and start it again with the same flags and ports."""
        argv = {"kube-apiserver": self.apiserver_argv, "kube-controller-manager": self.controller_manager_argv}[component]()
        stopped = time.time()
        _stop(self.pids.get(component))
        self._spawn(component, argv)
        if component == "kube-apiserver":
            self._wait("kube-apiserver", lambda: self._get("/readyz") == b"ok", timeout=180)
        self.restarts.append((stopped, time.time()))

    def down(self, *, quiet: bool = False, keep_state: bool = False) -> None:
        """Stop only the processes this state directory records."""
        alive = self.running()
        for name in ("kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
            if name in alive:
                _stop(alive[name])
                if not quiet:
                    print(f"stopped {name} (pid {alive[name]})")
        self.pids, self.procs = {}, {}
        if self.state.exists():
            self._save()
            if not keep_state:
                for sub in ("etcd", "state.json"):
                    target = self.state / sub
                    if target.is_dir():
                        subprocess.run(["rm", "-rf", str(target)], check=False)
                    elif target.exists():
                        target.unlink()

    def describe(self) -> str:
        lines = [f"{name:<24} pid {pid}  log {self.logs / (name + '.log')}" for name, pid in self.running().items()]
        return "\n".join([
            f"Kubernetes {KUBE_VERSION} control plane at {self.server}",
            *lines,
            f"kubeconfig: {self.kubeconfig}",
            f"binaries:   {cache_root()}",
            f"try:        {self.tool('kubectl')} --kubeconfig {self.kubeconfig} get nodes",
        ])


def _stop(pid: int | None, timeout: float = 15) -> None:
    if not pid:
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # Reap it when it is our child (the e2e suite); elsewhere it was adopted by init.
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _dump_and_stop(pid: int) -> None:
    """A hung Go process: SIGQUIT makes the runtime write every goroutine's stack to stderr (its
    log) and exit; whatever is left after a moment is stopped as usual."""
    try:
        os.kill(pid, signal.SIGQUIT)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.1)
    _stop(pid)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def kwok_config() -> str:
    """KWOK's node and pod stages, read from the KWOK module this build pins (its kwokctl uses the
    same ones): nodes initialise and heartbeat; pods go Running with an IP, complete, and are removed
    once deleted."""
    kwok = module_dir("kwok", "sigs.k8s.io/kwok") / "kustomize" / "stage"
    files = ["node/fast/node-initialize.yaml", "node/heartbeat/node-heartbeat.yaml",
             "pod/fast/pod-ready.yaml", "pod/fast/pod-complete.yaml", "pod/fast/pod-delete.yaml"]
    return "\n---\n".join((kwok / f).read_text() for f in files)


def base_objects() -> list[dict[str, Any]]:
    """What a fresh cluster has besides the control plane: fake nodes and a default StorageClass."""
    nodes = [{
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"},
                     "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                "kubernetes.io/arch": "amd64", "type": "kwok"}},
    } for name in NODES]
    storage = {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "kubernetes.io/host-path", "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate",
    }
    return [*nodes, storage]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sparkbook.testing.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["build", "up", "down", "status", "bin", "pin"])
    parser.add_argument("--state", type=Path, default=ROOT / ".cluster", help="state directory (default .cluster/)")
    args = parser.parse_args(argv)
    if args.command == "build":
        build()
        return 0
    if args.command == "bin":
        for tool in TOOLS:
            print(tool_path(tool.name))
        return 0
    if args.command == "pin":
        pin()
        return 0
    cluster = Cluster.load(args.state.resolve())
    if args.command == "up":
        t0 = time.monotonic()
        already = bool(cluster.running())
        cluster.up()
        print(("already running: " if already else f"started in {time.monotonic() - t0:.0f} s: ") + "\n"
              + cluster.describe())
    elif args.command == "down":
        cluster.down()
        print("no process of the cluster is left running" if not cluster.running() else "some processes remain")
    else:
        print(cluster.describe() if cluster.running() else "not running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
