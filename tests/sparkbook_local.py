"""`sparkbook local` started as a user starts it (the README's command), for tests that use it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPARKBOOK = [sys.executable, "-m", "sparkbook.cli"]
READY_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_local(notebook_dir: Path, example: str = "notebookserver.yaml"
                ) -> tuple[subprocess.Popen[str], str, dict[str, int]]:
    """`sparkbook local -f examples/<example>` on free ports, read until it says how to stop it:
    the process (still running), what it printed, and the ports by flag."""
    ports = {"--port": free_port(), "--connect-port": free_port(), "--ui-port": free_port()}
    argv = [*SPARKBOOK, "local", "-f", str(ROOT / "examples" / example), "--notebook-dir", str(notebook_dir)]
    for flag, port in ports.items():
        argv += [flag, str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"})
    lines: list[str] = []
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line or line.startswith("Press Ctrl-C"):
            break
        lines.append(line)
    return proc, "".join(lines), ports
