"""A kind cluster (real containers) for the tests that need a real kubelet: kind from
kind-config.yaml, the images built and loaded, the operator installed from manifests/. Collected
only with SPARKBOOK_E2E=kind (`make e2e-kind`), on a machine with Docker and kind; the e2e suite
proper runs on the control plane of tests/e2e everywhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
_venv_kubectl = Path(sys.executable).parent / "kubectl"
KUBECTL = str(_venv_kubectl) if _venv_kubectl.exists() else "kubectl"
CLUSTER = os.environ.get("SPARKBOOK_E2E_CLUSTER", "sparkbook")


def _missing_prerequisite() -> str | None:
    for tool in ("docker", "kind"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not on PATH (the kind tests need Docker, kind and kubectl)"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True)
    if info.returncode != 0:
        return f"no Docker engine answers (`docker info`: {info.stderr.strip().splitlines()[-1:]})"
    return None


@pytest.fixture(scope="session")
def kind_cluster() -> Iterator[str]:
    """The kube context of a kind cluster with Sparkbook installed (scripts/e2e-up.sh)."""
    reason = _missing_prerequisite()
    if reason:
        pytest.fail(f"SPARKBOOK_E2E=kind: {reason}", pytrace=False)
    subprocess.run([str(ROOT / "scripts" / "e2e-up.sh")], check=True, cwd=ROOT, env={**os.environ, "CLUSTER": CLUSTER})
    yield f"kind-{CLUSTER}"
    if os.environ.get("SPARKBOOK_E2E_KEEP") != "1":
        subprocess.run(["kind", "delete", "cluster", "--name", CLUSTER], check=False)


@pytest.fixture
def kind_kubectl(kind_cluster: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, input: str | None = None, check: bool = True, timeout: float = 900) -> Any:
        return subprocess.run([KUBECTL, "--context", kind_cluster, *args], input=input, capture_output=True, text=True,
                              check=check, timeout=timeout)

    return run
