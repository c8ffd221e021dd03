"""A test kubelet for Spark's executor pods: KWOK schedules them and gives them an IP (from the
loopback range); this runs each one's container as a local process, as the Spark image's
entrypoint would (`executor` -> KubernetesExecutorBackend), with the environment Spark wrote into
the pod spec; it stops the process when the pod is deleted. So a job runs on executors that
Kubernetes created, through the API server, from the driver's requests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.conftest import Kubectl

BACKEND = "org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend"


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home, "bin", "java"), os.X_OK):
        return str(Path(home, "bin", "java"))
    found = shutil.which("java")
    assert found, "Java 17 is needed to run executors"
    return found


def _field(pod: dict[str, Any], path: str) -> str:
    node: Any = pod
    for part in path.split("."):
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return str(node) if node != {} else ""


def container_environment(pod: dict[str, Any]) -> dict[str, str]:
    """The container's environment as the kubelet resolves it (values and fieldRefs)."""
    env: dict[str, str] = {}
    for var in pod["spec"]["containers"][0].get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "fieldRef" in var.get("valueFrom", {}):
            env[var["name"]] = _field(pod, var["valueFrom"]["fieldRef"]["fieldPath"])
    return env


def executor_argv(pod: dict[str, Any], spark_home: str) -> tuple[list[str], dict[str, str]]:
    """What the Spark image's entrypoint.sh runs for `executor`, with the pod's environment."""
    container = pod["spec"]["containers"][0]
    assert container.get("args", [])[:1] == ["executor"], container.get("args")
    env = container_environment(pod)
    java_opts = [env[k] for k in sorted(k for k in env if k.startswith("SPARK_JAVA_OPT_"))]
    argv = [
        _java(), *java_opts, f"-Xms{env['SPARK_EXECUTOR_MEMORY']}", f"-Xmx{env['SPARK_EXECUTOR_MEMORY']}",
        "-cp", f"{spark_home}/jars/*", BACKEND,
        "--driver-url", env["SPARK_DRIVER_URL"], "--executor-id", env["SPARK_EXECUTOR_ID"],
        "--cores", env["SPARK_EXECUTOR_CORES"], "--app-id", env["SPARK_APPLICATION_ID"],
        "--hostname", env["SPARK_EXECUTOR_POD_IP"], "--resourceProfileId", env["SPARK_RESOURCE_PROFILE_ID"],
        "--podName", env["SPARK_EXECUTOR_POD_NAME"],
    ]
    return argv, env


@dataclass
class ExecutorKubelet:
    kubectl: Kubectl
    namespace: str
    spark_home: str
    work: Path
    selector: str = "spark-role=executor"
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> "ExecutorKubelet":
        self._thread = threading.Thread(target=self._loop, name="executor-kubelet", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(10)
        for name in list(self.processes):
            self._kill(name)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._sync()
            except Exception as e:  # noqa: BLE001 - reported by the test, never fatal to the loop
                self.errors.append(repr(e))
            self._stop.wait(0.5)

    def _sync(self) -> None:
        out = self.kubectl("get", "pods", "-n", self.namespace, "-l", self.selector, "-o", "json", check=False)
        if out.returncode != 0:
            return
        pods = {p["metadata"]["name"]: p for p in json.loads(out.stdout)["items"]}
        for name, pod in pods.items():
            running = pod.get("status", {}).get("podIP") and not pod["metadata"].get("deletionTimestamp")
            if running and name not in self.processes and name not in self.started:
                self._start(pod)
        for name in list(self.processes):
            pod = pods.get(name)
            if pod is None or pod["metadata"].get("deletionTimestamp"):
                self._kill(name)

    def _start(self, pod: dict[str, Any]) -> None:
        name = pod["metadata"]["name"]
        argv, pod_env = executor_argv(pod, self.spark_home)
        work = self.work / name
        (work / "local").mkdir(parents=True, exist_ok=True)
        (work / "conf").mkdir(exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_"))}
        env.update(pod_env, SPARK_HOME=self.spark_home, SPARK_LOCAL_DIRS=str(work / "local"),
                   SPARK_CONF_DIR=str(work / "conf"), SPARK_LOCAL_IP=pod_env["SPARK_EXECUTOR_POD_IP"])
        log = open(work / "executor.log", "wb")
        self.processes[name] = subprocess.Popen(argv, env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL)
        log.close()
        self.started.append(name)

    def _kill(self, name: str) -> None:
        proc = self.processes.pop(name)
        if proc.poll() is None:
            proc.terminate()  # SIGTERM, as the kubelet does when a pod is deleted
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.stopped.append(name)

    def logs(self, tail: int | None = None) -> str:
        return "\n".join(f"--- {p.parent.name} ---\n" + p.read_text(errors="replace")[-(tail or 0):]
                         for p in sorted(self.work.glob("*/executor.log")))

