"""Faults on the real control plane: the operator killed (-9) and restarted in the middle of a burst
of 200 SparkSessions, and kube-apiserver restarted while the operator reconciles. Everything
converges; the audit log shows that no child was created twice and nothing was lost."""

from __future__ import annotations

import collections
import copy
import time

import yaml

from sparkbook.names import SessionNames
from sparkbook.testing.cluster import Cluster
from tests.e2e.conftest import Kubectl, audit_events, example, get, items, poll

BURST = 200


def sessions(namespace: str, count: int, prefix: str) -> list[dict]:
    base = example("sparksession.yaml", namespace)
    docs = []
    for i in range(count):
        doc = copy.deepcopy(base)
        doc["metadata"]["name"] = f"{prefix}{i:03d}"
        docs.append(doc)
    return docs


def ready_count(kubectl: Kubectl, namespace: str) -> int:
    found = items(kubectl, "sparksessions", namespace)
    return sum(1 for s in found for c in (s.get("status") or {}).get("conditions", [])
               if c["type"] == "Ready" and c["status"] == "True")


def successful_creates(cluster: Cluster, namespace: str, user: str) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    for e in audit_events(cluster, user=user):
        ref = e.get("objectRef", {})
        if (e.get("verb") == "create" and ref.get("namespace") == namespace and not ref.get("subresource")
                and e.get("responseStatus", {}).get("code") == 201 and ref.get("resource") != "events"):
            counts[(ref["resource"], ref.get("name"))] += 1
    return counts


def test_operator_killed_mid_burst_converges_without_duplicates(
        control_plane: Cluster, kubectl: Kubectl, operator, namespace: str) -> None:
    docs = sessions(namespace, BURST, "s")
    kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(docs), timeout=300)
    # Mid-burst: once the first 20 driver pods exist, some sessions have all their children, some
    # a few, some none.
    poll(lambda: len(items(kubectl, "pods", namespace)) >= 20, timeout=120, interval=0.2, what="20 driver pods")
    operator.kill()
    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in items(kubectl, "pods", namespace)}
    assert len(before) < BURST, "the burst was over before the kill"
    operator.start()
    poll(lambda: ready_count(kubectl, namespace) == BURST, timeout=240, interval=2,
         what=f"all {BURST} sessions Ready after the restart")
    # Every session has exactly its children: one driver pod each, nothing extra.
    pods = items(kubectl, "pods", namespace)
    assert sorted(p["metadata"]["name"] for p in pods) == sorted(SessionNames(d["metadata"]["name"]).driver_pod
                                                               for d in docs)
    assert len(items(kubectl, "services", namespace)) == 3 * BURST
    assert len(items(kubectl, "secrets", namespace)) == BURST
    # Nothing was created twice (a replaced token Secret would break every attached notebook), and
    # the restart did not start from scratch: what the killed process made was kept.
    creates = successful_creates(control_plane, namespace, operator.user)
    twice = {k: v for k, v in creates.items() if v > 1}
    assert twice == {}, twice
    # (Counted by the pods, not by the audit log's 201s: a create in flight when the process was
    # killed can be committed and still be logged as failed, its client being gone.)
    after = {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods}
    assert {name: after[name] for name in before} == before


def test_apiserver_restart_while_reconciling(control_plane: Cluster, kubectl: Kubectl, operator,
                                             namespace: str) -> None:
    docs = sessions(namespace, 40, "r")
    kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(docs), timeout=120)
    time.sleep(1)
    control_plane.restart("kube-apiserver")
    poll(lambda: ready_count(kubectl, namespace) == len(docs), timeout=180, interval=2,
         what="all sessions Ready after the API server restart")
    # The watches resumed: a change made now is seen and acted on.
    name = SessionNames("r000").connect_service
    kubectl("delete", "service", name, "-n", namespace)
    poll(lambda: get(kubectl, "service", name, namespace), timeout=60, what="the deleted Service recreated")
    kubectl("patch", "sparksession", "r001", "-n", namespace, "--type=merge", "-p", '{"spec":{"suspend":true}}')
    poll(lambda: get(kubectl, "pod", SessionNames("r001").driver_pod, namespace) is None, timeout=60,
         what="a suspend after the restart is carried out")
    creates = successful_creates(control_plane, namespace, operator.user)
    assert {k: v for k, v in creates.items() if v > 1 and k != ("services", name)} == {}
    assert operator.proc.poll() is None, "the operator died with the API server"
