"""Two operator replicas: exactly one reconciles, the other takes over when the first dies."""

from __future__ import annotations

import uuid

import pytest
import yaml

from tests.api.conftest import ROOT, Operator, wait_for

GROUP = "sparkbook.io/v1alpha1"


def lease_holder(emulator) -> str | None:
    lease = emulator.get("coordination.k8s.io/v1", "leases", "default", "sparkbook-operator")
    return ((lease or {}).get("spec") or {}).get("holderIdentity")


def running_session(emulator, kubectl, name: str) -> str:
    ns = f"t-{uuid.uuid4().hex[:8]}"
    kubectl("apply", "-f", "-", input=yaml.safe_dump({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
    doc = yaml.safe_load((ROOT / "examples" / "sparksession.yaml").read_text())
    doc["metadata"].update(namespace=ns, name=name)
    kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))
    wait_for(lambda: ((emulator.get(GROUP, "sparksessions", ns, name) or {}).get("status") or {}).get("phase"),
             timeout=30, what=f"{name} reconciled")
    return ns


def writers(emulator, ns: str) -> set[str]:
    return {r.user_agent for r in emulator.writes() if r.namespace == ns and "sparkbook-operator" in (r.user_agent or "")}


@pytest.fixture
def replicas(kubeconfig, tmp_path):
    ops = [Operator(kubeconfig, tmp_path / f"{n}.log", env={
        "SPARKBOOK_LEADER_ELECT": "true", "POD_NAME": n, "SPARKBOOK_LEASE_SECONDS": "3"}).start()
        for n in ("op-a", "op-b")]
    yield ops
    for op in ops:
        op.stop()


def test_exactly_one_replica_reconciles_and_the_other_takes_over(emulator, kubectl, replicas):
    leader_name = wait_for(lambda: lease_holder(emulator), timeout=30, what="a leader")
    ns = running_session(emulator, kubectl, "first")
    assert writers(emulator, ns) == {f"sparkbook-operator/{leader_name}"}  # no double writes

    leader = next(op for op in replicas if op.env["POD_NAME"] == leader_name)
    leader.proc.kill()  # no goodbye: the Lease must expire
    leader.proc.wait()
    other = wait_for(lambda: (h := lease_holder(emulator)) not in (None, leader_name) and h, timeout=30,
                     what="the standby holding the Lease")
    ns2 = running_session(emulator, kubectl, "second")
    assert writers(emulator, ns2) == {f"sparkbook-operator/{other}"}
    lease = emulator.get("coordination.k8s.io/v1", "leases", "default", "sparkbook-operator")
    assert lease["spec"]["leaseTransitions"] >= 1
    # A clean shutdown hands the Lease back at once, so a standby need not wait for it to expire.
    survivor = next(op for op in replicas if op.env["POD_NAME"] == other)
    survivor.stop()
    assert lease_holder(emulator) is None
