"""The e2e suite's cluster: a real Kubernetes control plane of its own on loopback
(sparkbook.testing.cluster: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, KWOK's
fake nodes), started fresh for the run and stopped after it. (tests/kind holds what needs real
containers: `make e2e-kind` where Docker exists.)

No container runs here, so the operator process runs beside the cluster, authenticated with a token
of the ServiceAccount the install created: the install's RBAC allows or denies every request, and
the API server's audit log shows each one.
"""

from __future__ import annotations

import base64
import datetime
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sparkbook.testing.cluster import Cluster, build, free_port, tool_path, write_kubeconfig
from tests.api.conftest import Operator, wait_for

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = str(tool_path("kubectl"))  # the one built with the control plane
OPERATOR_NAMESPACE = "sparkbook-system"


# --- the control plane ---------------------------------------------------------------------------


@pytest.fixture(scope="package")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Up for tests/e2e only: stopped after its last test, so it does not load the machine under
    the timing-sensitive workload tests that follow."""
    build(quiet=True)
    cluster = Cluster(state=tmp_path_factory.mktemp("control-plane"))
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down(keep_state=True)
        assert not cluster.running(), "a control-plane process outlived the suite"


Kubectl = Callable[..., subprocess.CompletedProcess[str]]


def make_kubectl(kubeconfig: Path) -> Kubectl:
    def run(*args: str, input: str | None = None, check: bool = True, timeout: float = 120) -> Any:
        result = subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), *args], input=input,
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    return run


@pytest.fixture(scope="package")
def kubectl(control_plane: Cluster) -> Kubectl:
    """kubectl as the cluster's admin."""
    return make_kubectl(control_plane.kubeconfig)


def get(kubectl: Kubectl, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
    args = ["get", kind, name, "-o", "json"] + (["-n", namespace] if namespace else [])
    result = kubectl(*args, check=False)
    if result.returncode != 0:
        if "NotFound" in result.stderr:
            return None
        raise AssertionError(result.stderr)
    return json.loads(result.stdout)


def items(kubectl: Kubectl, kind: str, namespace: str, *selector: str) -> list[dict[str, Any]]:
    args = ["get", kind, "-n", namespace, "-o", "json", *(["-l", ",".join(selector)] if selector else [])]
    return json.loads(kubectl(*args).stdout)["items"]


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for cond in ((obj or {}).get("status") or {}).get("conditions", []):
        if cond["type"] == type_:
            return cond
    return {}


RESTRICTED = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "warn", "audit")}


@pytest.fixture
def namespace(kubectl: Kubectl) -> Iterator[str]:
    """A fresh namespace that enforces the restricted Pod Security Standard."""
    ns = f"e2e-{uuid.uuid4().hex[:6]}"
    kubectl("apply", "--server-side", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": RESTRICTED}}))
    yield ns
    kubectl("delete", "namespace", ns, "--wait=false", check=False)


def example(name: str, namespace: str) -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "examples" / name).read_text())
    doc["metadata"]["namespace"] = namespace
    return doc


def apply(kubectl: Kubectl, *docs: dict[str, Any]) -> None:
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))


# --- the install and the operator ---------------------------------------------------------------


def audit_events(cluster: Cluster, *, user: str | None = None) -> list[dict[str, Any]]:
    out = []
    for path in sorted(cluster.logs.glob("audit*.log")):
        for line in path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line being written
            if user is None or event.get("user", {}).get("username") == user:
                out.append(event)
    return out


def forbidden(cluster: Cluster, user: str, user_agent: str | None = None) -> list[str]:
    """Every request of `user` (or, unauthenticated, from `user_agent`) that the API server refused
    with 401 or 403, as `user verb resource namespace message`."""
    def ours(e: dict[str, Any]) -> bool:
        name = e.get("user", {}).get("username")
        return name == user or bool(user_agent and (e.get("userAgent") or "").startswith(user_agent))

    def restarting(e: dict[str, Any]) -> bool:
        at = datetime.datetime.fromisoformat(e["requestReceivedTimestamp"].replace("Z", "+00:00")).timestamp()
        return any(start <= at <= ready for start, ready in cluster.restarts)

    def refused(e: dict[str, Any]) -> bool:
        status = e.get("responseStatus", {})
        # NamespaceLifecycle answers 403 too, for writes into a namespace being deleted: not RBAC;
        # and a kube-apiserver that is starting refuses until its RBAC caches are filled.
        return (status.get("code") in (401, 403) and "because it is being terminated" not in status.get("message", "")
                and not restarting(e))

    return [
        f"{e.get('user', {}).get('username')} {e['verb']} {e.get('objectRef', {}).get('resource')} "
        f"{e.get('objectRef', {}).get('namespace', '')} {e.get('responseStatus', {}).get('message', '')}"
        for e in audit_events(cluster) if ours(e) and refused(e)
    ]


def service_account_kubeconfig(cluster: Cluster, kubectl: Kubectl, namespace: str, name: str, path: Path) -> Path:
    """A kubeconfig holding a token of the ServiceAccount, from the TokenRequest API."""
    token = kubectl("create", "token", name, "-n", namespace, "--duration=4h").stdout.strip()
    return write_kubeconfig(path, server=cluster.server, ca=cluster.pki / "ca.crt", token=token,
                            user=f"system:serviceaccount:{namespace}:{name}", namespace=namespace)


class InstalledOperator(Operator):
    """The operator as its Deployment would run it: the container's args and environment (fieldRefs
    filled as the kubelet would), authenticated as the Deployment's ServiceAccount."""

    def __init__(self, cluster: Cluster, kubectl: Kubectl, deployment: dict[str, Any], log: Path,
                 env: dict[str, str] | None = None) -> None:
        pod = deployment["spec"]["template"]["spec"]
        namespace = deployment["metadata"]["namespace"]
        self.service_account = pod["serviceAccountName"]
        self.user = f"system:serviceaccount:{namespace}:{self.service_account}"
        self.cluster = cluster
        kubeconfig = service_account_kubeconfig(cluster, kubectl, namespace, self.service_account,
                                                log.parent / "operator.kubeconfig")
        container = pod["containers"][0]
        field_values = {"metadata.name": f"{deployment['metadata']['name']}-e2e", "metadata.namespace": namespace}
        pod_env = {}
        for var in container.get("env", []):
            if "value" in var:
                pod_env[var["name"]] = var["value"]
            elif "fieldRef" in var.get("valueFrom", {}):
                pod_env[var["name"]] = field_values[var["valueFrom"]["fieldRef"]["fieldPath"]]
        super().__init__(kubeconfig, log, env={**pod_env, **(env or {})})
        # The container's command is `sparkbook`; its health endpoint moves to a free loopback port.
        assert container["command"] == ["sparkbook"], container["command"]
        self.args = [a if not a.startswith("--liveness=") else f"--liveness=http://127.0.0.1:{free_port()}/healthz"
                     for a in container["args"]]

    def start(self) -> "InstalledOperator":
        self.log = open(self.log_path, "ab")
        env = {k: v for k, v in self.env.items() if k != "KUBERNETES_SERVICE_HOST"}
        self.proc = subprocess.Popen([sys.executable, "-m", "sparkbook.cli", *self.args], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()

    def forbidden(self) -> list[str]:
        return forbidden(self.cluster, self.user, user_agent="sparkbook-operator")


def install_manifests(kubectl: Kubectl) -> dict[str, Any]:
    """`kubectl apply --server-side -f manifests/install.yaml`, as the README says; the CRDs then
    become Established, and manifests/profiles.yaml (the server types) follows. Returns the operator Deployment as the API server stored it."""
    kubectl("apply", "--server-side", "-f", str(ROOT / "manifests" / "install.yaml"))
    kubectl("wait", "--for=condition=Established", "crd/sparksessions.sparkbook.io",
            "crd/notebookservers.sparkbook.io", "crd/notebookprofiles.sparkbook.io", "--timeout=60s")
    kubectl("apply", "--server-side", "-f", str(ROOT / "manifests" / "profiles.yaml"))
    deployment = get(kubectl, "deployment", "sparkbook", OPERATOR_NAMESPACE)
    assert deployment is not None
    return deployment


@pytest.fixture(scope="package")
def installed(kubectl: Kubectl) -> dict[str, Any]:
    return install_manifests(kubectl)


OPERATOR_TEST_ENV = {
    "SPARKBOOK_RESYNC_SECONDS": "60",
    "SPARKBOOK_RESTART_BACKOFF_SECONDS": "1",
    "SPARKBOOK_RESTART_BACKOFF_MAX_SECONDS": "4",
    "SPARKBOOK_STALLED_RETRY_SECONDS": "1",
    "SPARKBOOK_IDLE_CHECK_SECONDS": "2",
}


@pytest.fixture(scope="package")
def operator(control_plane: Cluster, kubectl: Kubectl, installed: dict[str, Any],
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[InstalledOperator]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    op = InstalledOperator(control_plane, kubectl, installed, log, env=OPERATOR_TEST_ENV).start()
    try:
        yield op
    finally:
        op.stop()
    assert op.forbidden() == [], f"the install's RBAC refused the operator: {op.forbidden()}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failing test carries the operator's log and the control plane's logs."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    op = item.funcargs.get("operator") if hasattr(item, "funcargs") else None
    if isinstance(op, Operator):
        report.sections.append(("operator log (tail)", op.logs()[-15000:]))
    cluster = item.funcargs.get("control_plane") if hasattr(item, "funcargs") else None
    if isinstance(cluster, Cluster):
        report.sections.append(("control-plane logs", f"in {cluster.logs}"))


def poll(check: Callable[[], Any], *, timeout: float = 60, interval: float = 0.5, what: str = "") -> Any:
    return wait_for(check, timeout=timeout, interval=interval, what=what)


def secret_value(kubectl: Kubectl, namespace: str, name: str, key: str) -> str:
    data = json.loads(kubectl("get", "secret", name, "-n", namespace, "-o", "json").stdout)["data"]
    return base64.b64decode(data[key]).decode()

