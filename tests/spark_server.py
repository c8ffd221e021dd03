"""A real Spark Connect server, started exactly as the driver pod starts it, on a loopback address
of its own with the pod's own ports (so the operator can reach its UI as it would a driver pod's)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import yaml

from sparkbook import names
from sparkbook.build.launch import (
    SERVER_TOKEN_ENV,
    connect_server_command,
    connect_url,
    local_server_environment,
    loopback_conf,
    parse_connect_server_command,
)
from sparkbook.local import spark_home
from sparkbook.render import render_stream
from sparkbook.settings import Settings

STARTUP_TIMEOUT_S = 120.0
# A loopback address of its own (the pod's ports, no clash), distinct per test run on this machine.
SPARK_TEST_IP = f"127.9.{(os.getpid() >> 8) & 255}.{(os.getpid() & 255) or 1}"
# For tests that judge the whole server's activity and so need one nobody else uses.
SPARK_PRIVATE_IP = f"127.10.{(os.getpid() >> 8) & 255}.{(os.getpid() & 255) or 1}"
LOG_TAIL_CHARS = 20_000

ROOT = Path(__file__).resolve().parents[1]


def driver_container(example: str = "sparksession.yaml") -> dict[str, Any]:
    """The driver container exactly as the operator renders it for an example resource."""
    rendered = render_stream((ROOT / "examples" / example).read_text(), settings=Settings())
    pod = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "Pod")
    return pod["spec"]["containers"][0]


@dataclass(frozen=True)
class ConnectServer:
    """A running local Spark Connect server and how to reach it."""

    url: str  # sc:// URL without credentials
    host: str  # the loopback address it listens on (its "pod IP")
    token_url: str  # sc:// URL carrying the bearer token
    ui_url: str  # Spark UI / REST API base
    token: str
    grpc_port: int
    process: subprocess.Popen[bytes] = field(repr=False)
    log_path: Path
    startup_seconds: float

    def log_tail(self) -> str:
        """Last part of the server log, for failure reports."""
        try:
            return self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        except OSError as exc:
            return f"<cannot read {self.log_path}: {exc}>"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _require_java() -> None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and os.access(Path(java_home, "bin", "java"), os.X_OK):
        return
    if shutil.which("java"):
        return
    pytest.fail(
        "Java 17+ is required to run the Spark Connect server (no `java` on PATH and no "
        "usable $JAVA_HOME/bin/java); install e.g. openjdk-17-jre-headless.",
        pytrace=False,
    )


def _accepts_connections(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()  # SIGTERM: what the kubelet sends; Spark stops its context cleanly
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def spark_connect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConnectServer]:
    """The server most tests share, for the whole session."""
    with connect_server(tmp_path_factory.mktemp("spark-connect"), SPARK_TEST_IP) as server:
        yield server


@contextlib.contextmanager
def connect_server(work: Path, host: str, *, example: str = "sparksession.yaml",
                   event_log_dir: Path | None = None) -> Iterator[ConnectServer]:
    """Start the server from the driver pod's own command, localized by loopback_conf(), with token
    auth, on `host` (a loopback address: the pod's ports are fixed). With `event_log_dir`, the
    directory stands for the pod's event-log claim (mounted at /spark-events in the pod)."""
    _require_java()
    grpc_port, ui_port = names.CONNECT_PORT, names.UI_PORT
    for port in (grpc_port, ui_port):
        if _accepts_connections(port, host):
            pytest.fail(f"{host}:{port} is already taken: is another Spark test server still running?", pytrace=False)
    token = secrets.token_urlsafe(24)
    # The pod's own command and conf; only the master and the Kubernetes-only keys change.
    container = driver_container(example)
    pod_conf, app_name = parse_connect_server_command(container["command"])
    if event_log_dir is not None:
        assert pod_conf.get("spark.eventLog.dir") == f"file://{names.EVENT_LOG_DIR}", "the example writes no event log"
        pod_conf["spark.eventLog.dir"] = event_log_dir.as_uri()
    assert any(e["name"] == SERVER_TOKEN_ENV for e in container["env"]), "the pod must pass the token by env"
    conf = loopback_conf(
        pod_conf,
        master="local[2]",
        connect_port=grpc_port,
        ui_port=ui_port,
        warehouse_dir=str(work / "warehouse"),
        host=host,
    )
    home = spark_home()
    argv = connect_server_command(conf=conf, spark_home=home, app_name=app_name)
    env = local_server_environment(os.environ, spark_home=home, host=host, conf_dir=str(work / "conf"),
                                   token=token)
    (work / "conf").mkdir()
    log_path = work / "server.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = started + STARTUP_TIMEOUT_S
        while not _accepts_connections(grpc_port, host):
            if proc.poll() is not None:
                pytest.fail(
                    f"Spark Connect server exited with {proc.returncode} before listening.\n"
                    f"argv: {argv}\n--- log ---\n{log_path.read_text(errors='replace')[-LOG_TAIL_CHARS:]}",
                    pytrace=False,
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"Spark Connect server not listening on {grpc_port} after "
                    f"{STARTUP_TIMEOUT_S:.0f}s.\n--- log ---\n"
                    f"{log_path.read_text(errors='replace')[-LOG_TAIL_CHARS:]}",
                    pytrace=False,
                )
            time.sleep(0.2)
        server = ConnectServer(
            url=connect_url(host=host, port=grpc_port),
            token_url=connect_url(host=host, port=grpc_port, token=token),
            ui_url=f"http://{host}:{ui_port}",
            host=host,
            token=token,
            grpc_port=grpc_port,
            process=proc,
            log_path=log_path,
            startup_seconds=time.monotonic() - started,
        )
        yield server
    finally:
        _stop(proc)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the server log to the report of any failing test that used the server."""
    outcome = yield
    report = outcome.get_result()
    server = getattr(item, "funcargs", {}).get("spark_connect_server")
    if report.failed and isinstance(server, ConnectServer):
        report.sections.append(("Spark Connect server log (tail)", server.log_tail()))
