"""Dropped watch streams and 410 Gone: the operator resumes its watches, relists when the server
has forgotten where it was, and misses nothing. (The informer itself: tests/api/test_informer.py.)"""

from __future__ import annotations

import contextlib

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sparkbook import informer
from sparkbook.testing.emulator import EmulatorThread
from tests.api.conftest import ROOT, Operator, wait_for

GROUP = "sparkbook.io/v1alpha1"


@pytest.fixture
def small_history(tmp_path: Path) -> Iterator[tuple[EmulatorThread, Path]]:
    """An API server that remembers only a few events, so a resuming watch gets 410 Gone."""
    with EmulatorThread(crds=sorted((ROOT / "crds").glob("*.yaml")), history_size=5) as emu:
        yield emu, emu.write_kubeconfig(tmp_path / "kubeconfig")


def max_executors_on_driver(emu: EmulatorThread) -> str | None:
    pod = emu.get("v1", "pods", "default", "analytics-driver")
    if not pod or pod["metadata"].get("deletionTimestamp"):
        return None
    for arg in pod["spec"]["containers"][0]["command"]:
        if arg.startswith("spark.dynamicAllocation.maxExecutors="):
            return arg.split("=", 1)[1]
    return None


@contextlib.contextmanager
def converged_example(emu: EmulatorThread, kubeconfig: Path, tmp_path: Path) -> Iterator[Operator]:
    """The operator running, with the example SparkSession converged (maxExecutors 10)."""
    op = Operator(kubeconfig, tmp_path / "operator.log").start()
    try:
        doc = yaml.safe_load((ROOT / "examples" / "sparksession.yaml").read_text())
        doc["metadata"]["namespace"] = "default"
        emu.create(doc)
        wait_for(lambda: max_executors_on_driver(emu) == "10", timeout=30, what="converged")
        wait_for(lambda: emu.get("v1", "services", "default", "analytics-ui"), what="UI Service")
        yield op
        assert op.proc is not None and op.proc.poll() is None
    finally:
        op.stop()


def set_max_executors(emu: EmulatorThread, value: int) -> None:
    emu.patch(GROUP, "sparksessions", "default", "analytics", {"spec": {"dynamicAllocation": {"maxExecutors": value}}})


def test_dropped_watches_are_resumed(tmp_path):
    with EmulatorThread(crds=sorted((ROOT / "crds").glob("*.yaml"))) as emu:
        _dropped_watches_are_resumed(emu, emu.write_kubeconfig(tmp_path / "kubeconfig"), tmp_path)


def _dropped_watches_are_resumed(emu: EmulatorThread, kubeconfig: Path, tmp_path: Path) -> None:
    with converged_example(emu, kubeconfig, tmp_path):
        lists = operator_lists(emu)
        # Every watch stream is cut: the informers resume from their last resourceVersion.
        emu.close_watches()
        set_max_executors(emu, 6)
        wait_for(lambda: max_executors_on_driver(emu) == "6", timeout=30, what="change seen after a dropped watch")
        assert operator_lists(emu) == lists  # resumed, not relisted


def operator_lists(emu: EmulatorThread, since: int = 0) -> int:
    return sum(1 for r in emu.requests[since:] if r.verb == "list" and "sparkbook-operator" in (r.user_agent or ""))


def test_gone_on_resume_relists_and_converges(small_history, tmp_path):
    emu, kubeconfig = small_history
    with converged_example(emu, kubeconfig, tmp_path) as op:
        # one per watched kind at start, nothing since
        assert operator_lists(emu) == len(informer.WATCHED) + len(informer.CLUSTER_WATCHED) == 13
        # The server compacts its history and cuts the watches; meanwhile a child is deleted by hand
        # and the spec changes. Resumed from before the compaction, the watches get 410 Gone.
        mark = len(emu.requests)
        emu.compact()
        emu.delete("v1", "services", "default", "analytics-ui")
        set_max_executors(emu, 6)
        wait_for(lambda: max_executors_on_driver(emu) == "6", timeout=30, what="spec change applied")
        wait_for(lambda: emu.get("v1", "services", "default", "analytics-ui"), timeout=30, what="Service back")
        assert operator_lists(emu, mark) >= 1, "no informer relisted after 410 Gone"
        gone = [r for r in emu.requests[mark:] if r.verb == "watch" and "sparkbook-operator" in (r.user_agent or "")
                and int(r.query.get("resourceVersion") or 0) < emu.handler._compacted]
        assert gone, "no watch resumed from before the compaction"
        assert "listing again" in op.logs()
