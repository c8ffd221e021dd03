"""`sparkbook local`: the README's run command, started as a user would, driven through Jupyter's API."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.jupyter_api import execute

ROOT = Path(__file__).resolve().parents[2]
SPARKBOOK = [sys.executable, "-m", "sparkbook.cli"]

pytestmark = pytest.mark.workload


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def test_local_runs_the_example_and_a_cell_uses_spark(tmp_path: Path):
    ports = {"--port": _free_port(), "--connect-port": _free_port(), "--ui-port": _free_port()}
    argv = [*SPARKBOOK, "local", "-f", str(ROOT / "examples" / "notebookserver.yaml"), "--notebook-dir", str(tmp_path)]
    for flag, port in ports.items():
        argv += [flag, str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"})
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line or line.startswith("Press Ctrl-C"):
                break
            lines.append(line)
        printed = "".join(lines)
        m = re.search(r"Jupyter:\s+(http://\S+)", printed)
        assert m, printed
        assert re.search(r"Spark UI: http://127\.0\.0\.1:\d+", printed), printed
        url = m.group(1)
        base = url.split("/?")[0].split("/lab?")[0]
        token = url.split("token=")[1]
        output = await execute(base, token, "print(spark.range(100).filter('id % 2 = 0').count())")
        assert "50" in output, output
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, rest
    assert "stopped." in rest
    for port in ports.values():  # both servers are gone, nothing left listening
        assert _port_free(port), port


def test_local_says_clearly_when_a_port_is_taken(tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([*SPARKBOOK, "local", "-f", str(ROOT / "examples" / "notebookserver.yaml"),
                                 "--port", str(port), "--notebook-dir", str(tmp_path)],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"port {port}" in result.stderr and "--port" in result.stderr


def test_local_says_clearly_when_java_is_missing(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = str(Path(sys.executable).parent)  # the venv's tools, no java
    result = subprocess.run([*SPARKBOOK, "local", "-f", str(ROOT / "examples" / "notebookserver.yaml"),
                             "--port", str(_free_port()), "--connect-port", str(_free_port()),
                             "--ui-port", str(_free_port())],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2
    assert "Java 17" in result.stderr


def _plan(tmp_path: Path, notebook_dir: Path | None = None):
    from sparkbook.local import plan

    text = (ROOT / "examples" / "notebookserver.yaml").read_text()
    return plan(text, workdir=tmp_path / "work", notebook_dir=notebook_dir or tmp_path / "nb")


def test_local_kernel_knows_it_is_local(tmp_path: Path):
    """%%info and friends read SPARKBOOK_LOCAL: no kubectl advice on a laptop."""
    from sparkbook.names import LOCAL_ENV

    jupyter = _plan(tmp_path).processes[-1]
    assert jupyter.name == "Jupyter server" and jupyter.env[LOCAL_ENV] == "1"
