"""Dropped watch streams: the operator resumes its watches and misses nothing.

(410 Gone on resume is the emulator's: tests/emulator/test_lists_watches.py; kopf relists on it.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sparkbook.testing.emulator import EmulatorThread
from tests.api.conftest import ROOT, Operator, wait_for

GROUP = "sparkbook.io/v1alpha1"


@pytest.fixture
def small_history(tmp_path: Path) -> Iterator[tuple[EmulatorThread, Path]]:
    """An API server that remembers only a few events, so a resuming watch gets 410 Gone."""
    with EmulatorThread(crds=sorted((ROOT / "crds").glob("*.yaml")), history_size=5) as emu:
        yield emu, emu.write_kubeconfig(tmp_path / "kubeconfig")


def drop_watches(emu: EmulatorThread) -> None:
    emu._call(emu._sync(emu.handler.close_watches))


def max_executors_on_driver(emu: EmulatorThread) -> str | None:
    pod = emu.get("v1", "pods", "default", "analytics-driver")
    if not pod or pod["metadata"].get("deletionTimestamp"):
        return None
    for arg in pod["spec"]["containers"][0]["command"]:
        if arg.startswith("spark.dynamicAllocation.maxExecutors="):
            return arg.split("=", 1)[1]
    return None


def test_dropped_watches_are_resumed(small_history, tmp_path):
    emu, kubeconfig = small_history
    op = Operator(kubeconfig, tmp_path / "operator.log").start()
    try:
        doc = yaml.safe_load((ROOT / "examples" / "sparksession.yaml").read_text())
        doc["metadata"]["namespace"] = "default"
        emu.create(doc)
        wait_for(lambda: max_executors_on_driver(emu) == "10", timeout=30, what="converged")

        # 1. Every watch stream is cut: kopf resumes from its last resourceVersion.
        drop_watches(emu)
        emu.patch(GROUP, "sparksessions", "default", "analytics", {"spec": {"dynamicAllocation": {"maxExecutors": 6}}})
        wait_for(lambda: max_executors_on_driver(emu) == "6", timeout=30, what="change seen after a dropped watch")

        assert op.proc.poll() is None
    finally:
        op.stop()
