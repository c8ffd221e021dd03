"""The real operator process (`sparkbook run`) against the in-process API emulator."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from sparkbook.testing.emulator import EmulatorThread

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")
_venv_kubectl = Path(sys.executable).parent / "kubectl"
KUBECTL = str(_venv_kubectl) if _venv_kubectl.exists() else "kubectl"


def wait_for(check: Callable[[], T], *, timeout: float = 20.0, interval: float = 0.05, what: str = "") -> T:
    """Poll until `check()` is truthy; fail with `what` and the last value otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}: last value {last!r}")


def event_seen(emulator: Any, namespace: str, match: Callable[[dict[str, Any]], bool], *,
               timeout: float = 20.0, what: str = "an Event") -> dict[str, Any]:
    """Wait for an Event in `namespace` that `match`es and return it.

    The operator writes a pass's Events after its status and its children, so a test that has
    just seen the state an Event speaks of must wait for the Event too, not read the list once."""
    return wait_for(lambda: next((e for e in emulator.list("v1", "events", namespace=namespace) if match(e)), None),
                    timeout=timeout, what=what)


def settle(check: Callable[[], T], *, quiet: float = 1.0, timeout: float = 20.0) -> T:
    """Wait until `check()` returns the same value for `quiet` seconds in a row."""
    deadline = time.monotonic() + timeout
    value, since = check(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        new = check()
        if new != value:
            value, since = new, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return value
    raise AssertionError(f"never settled: {value!r}")


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorThread]:
    with EmulatorThread(crds=sorted((ROOT / "crds").glob("*.yaml"))) as emu:
        yield emu


@pytest.fixture(scope="module")
def kubeconfig(emulator: EmulatorThread, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kube") / "config"
    emulator.write_kubeconfig(path)
    return path


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Operator:
    def __init__(self, kubeconfig: Path, log: Path, env: dict[str, str] | None = None) -> None:
        self.log_path = log
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig),
            "SPARKBOOK_RESYNC_SECONDS": "60",
            "SPARKBOOK_RESTART_BACKOFF_SECONDS": "1",
            "SPARKBOOK_RESTART_BACKOFF_MAX_SECONDS": "4",
            "SPARKBOOK_STALLED_RETRY_SECONDS": "1",
            "SPARKBOOK_IDLE_CHECK_SECONDS": "1",
            "SPARKBOOK_METRICS_PORT": str(free_port()),
            **(env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_url = f"http://127.0.0.1:{self.env['SPARKBOOK_METRICS_PORT']}/metrics"

    def start(self) -> "Operator":
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sparkbook.cli", "run", "--standalone"],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def operator(kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    op = Operator(kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log").start()
    try:
        yield op
    finally:
        op.stop()
        logs = op.logs()
        if "Traceback" in logs:
            print(logs[-20000:])


@pytest.fixture
def kubectl(kubeconfig: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [KUBECTL, *args],
            env={**os.environ, "KUBECONFIG": str(kubeconfig)},
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    return run


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the operator's log to the report of a failing test that used it."""
    outcome = yield
    report = outcome.get_result()
    op = getattr(item, "funcargs", {}).get("operator")
    if report.failed and isinstance(op, Operator):
        report.sections.append(("operator log (tail)", op.logs()[-15000:]))


@pytest.fixture
def namespace(emulator: EmulatorThread, kubectl: Callable[..., Any]) -> str:
    ns = f"t-{uuid.uuid4().hex[:8]}"
    kubectl("apply", "-f", "-", input=yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
    return ns


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for cond in ((obj or {}).get("status") or {}).get("conditions", []):
        if cond["type"] == type_:
            return cond
    return {}


def operator_writes(emulator, namespace: str) -> list[Any]:
    return [
        r for r in emulator.writes()
        if r.namespace == namespace and "kubectl" not in (r.user_agent or "")
    ]


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def kubelet_runs(emulator, namespace: str, pod_name: str, *, ip: str = "10.1.2.3") -> None:
    """What the kubelet would report for a started, ready pod."""
    now = _now()
    pod = emulator.get("v1", "pods", namespace, pod_name)
    container = pod["spec"]["containers"][0]["name"]
    emulator.patch_status(
        "v1", "pods", namespace, pod_name,
        {
            "phase": "Running",
            "podIP": ip,
            "startTime": now,
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now},
                           {"type": "PodScheduled", "status": "True", "lastTransitionTime": now}],
            "containerStatuses": [{"name": container, "ready": True, "restartCount": 0, "state": {"running": {}}}],
        },
    )


def statefulset_controller(emulator, namespace: str, name: str) -> dict[str, Any] | None:
    """One pass of what kube-controller-manager does for a StatefulSet of one: the pod `<name>-0`
    exists while replicas is 1 (made from the template, owned by the StatefulSet) and not at 0."""
    sts = emulator.get("apps/v1", "statefulsets", namespace, name)
    pod = emulator.get("v1", "pods", namespace, f"{name}-0")
    if sts is None:
        return pod
    if sts["spec"].get("replicas", 1) >= 1 and pod is None:
        template = sts["spec"]["template"]
        emulator.create({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{name}-0",
                "namespace": namespace,
                "labels": {**template["metadata"].get("labels", {}), "statefulset.kubernetes.io/pod-name": f"{name}-0"},
                "annotations": template["metadata"].get("annotations", {}),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name,
                                     "uid": sts["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}],
            },
            "spec": template["spec"],
        })
    elif sts["spec"].get("replicas", 1) == 0 and pod is not None:
        emulator.delete("v1", "pods", namespace, f"{name}-0")
    return emulator.get("v1", "pods", namespace, f"{name}-0")


