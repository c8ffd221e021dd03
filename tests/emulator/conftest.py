"""Fixtures for the API emulator's own tests: a thread-served emulator, an HTTP helper, kubectl."""
from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sparkbook.testing.emulator import EmulatorThread
from emu_helpers import CRD_PATH, KUBECTL, Api


@pytest.fixture()
def emu() -> Iterator[EmulatorThread]:
    with EmulatorThread(crds=[CRD_PATH], bookmark_interval=0.3, history_size=200) as e:
        yield e
        assert not e.handler.errors, e.handler.errors   # unexpected (non-API) exceptions inside the emulator


@pytest.fixture()
def api(emu: EmulatorThread) -> Api:
    return Api(emu.url)


@pytest.fixture()
def kubeconfig(emu: EmulatorThread, tmp_path: Path) -> Path:
    return emu.write_kubeconfig(tmp_path / 'kubeconfig')


@pytest.fixture()
def kubectl(kubeconfig: Path) -> Any:
    env = {**os.environ, 'KUBECONFIG': str(kubeconfig)}

    def run(*args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        res = subprocess.run([KUBECTL, *args], env=env, capture_output=True, text=True, timeout=60, input=stdin)
        if check and res.returncode != 0:
            raise AssertionError(f'kubectl {" ".join(args)} failed: {res.stdout}\n{res.stderr}')
        return res
    return run
