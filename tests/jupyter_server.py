"""A real Jupyter server on a loopback address, for tests that need one (idle probes and culling)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

STARTUP_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Jupyter:
    url: str
    token: str
    runtime_dir: Path
    log_path: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}


def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL after 15 s; nothing if it already ended."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_until_answers(proc: subprocess.Popen[bytes], url: str, log_path: Path, what: str,
                       timeout: float = STARTUP_TIMEOUT_S) -> None:
    """Until `url` answers 200; the test fails, with the end of the log, if the process ends first
    or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{what} exited with {proc.returncode}:\n{log_path.read_text(errors='replace')[-6000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not answering after {timeout}s:\n{log_path.read_text(errors='replace')[-6000:]}")
        time.sleep(0.2)


@contextlib.contextmanager
def running_jupyter(*, host: str, port: int, token: str, work: Path, base_url: str = "/",
                    config: str | None = None) -> Iterator[Jupyter]:
    """jupyter-server as the notebook pod runs it (token from the environment), until the block ends.

    ``config``: the text of a jupyter_server_config.py (else none); ``base_url`` as JupyterHub
    gives a user's server (``/user/<name>/``)."""
    (work / "root").mkdir(parents=True, exist_ok=True)
    (work / "config").mkdir(parents=True, exist_ok=True)
    if config is not None:
        (work / "config" / "jupyter_server_config.py").write_text(config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER")}
    env.update(
        JUPYTER_TOKEN=token,  # by env, not argv, as in the pod
        JUPYTER_RUNTIME_DIR=str(work / "runtime"),  # kernel connection files land here
        JUPYTER_CONFIG_DIR=str(work / "config"),  # no host configuration
        JUPYTER_DATA_DIR=str(work / "data"),
        JUPYTER_PLATFORM_DIRS="1",
    )
    argv = [
        sys.executable, "-m", "jupyter_server", "--allow-root", "--ServerApp.open_browser=False",
        f"--ServerApp.ip={host}", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={work / 'root'}", f"--ServerApp.base_url={base_url}",
    ]  # fmt: skip
    log_path = work / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{host}:{port}{base_url.rstrip('/')}"
    try:
        wait_until_answers(proc, f"{url}/api", log_path, "jupyter-server")
        yield Jupyter(url=url, token=token, runtime_dir=work / "runtime", log_path=log_path)
    finally:
        stop_process(proc)
