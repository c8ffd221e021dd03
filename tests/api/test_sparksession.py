"""A user's story with SparkSession, against the real operator process and the API emulator.

The test plays the parts a cluster would: kubectl (the real client), the kubelet (patching pod
status) and Spark's scheduler backend (creating executor pods owned by the driver).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml

from sparkbook import names
from tests.api.conftest import ROOT, condition, event_seen, kubelet_runs, operator_writes, settle, wait_for

EXAMPLE = (ROOT / "examples" / "sparksession.yaml").read_text()
SESSION = ("sparkbook.io/v1alpha1", "sparksessions")
EXPECTED_CHILDREN = {
    ("NetworkPolicy", "analytics-network"),
    ("ServiceAccount", "analytics-spark"),
    ("Role", "analytics-spark"),
    ("RoleBinding", "analytics-spark"),
    ("Secret", "analytics-connect-token"),
    ("ConfigMap", "analytics-executor-template"),
    ("Service", "analytics-driver-svc"),
    ("Service", "analytics-connect"),
    ("Service", "analytics-ui"),
    ("Pod", "analytics-driver"),
}
CHILD_RESOURCES = [
    ("networking.k8s.io/v1", "networkpolicies", "NetworkPolicy"),
    ("v1", "serviceaccounts", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "roles", "Role"),
    ("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding"),
    ("v1", "secrets", "Secret"),
    ("v1", "configmaps", "ConfigMap"),
    ("v1", "services", "Service"),
    ("v1", "pods", "Pod"),
]


def example_in(namespace: str, **spec_changes: Any) -> str:
    doc = yaml.safe_load(EXAMPLE)
    doc["metadata"]["namespace"] = namespace
    doc["spec"].update(spec_changes)
    return yaml.safe_dump(doc)


def children(emulator, namespace: str) -> set[tuple[str, str]]:
    found = set()
    for api_version, plural, kind in CHILD_RESOURCES:
        for obj in emulator.list(api_version, plural, namespace=namespace):
            if obj["metadata"].get("labels", {}).get(names.SESSION_LABEL) == "analytics":
                found.add((kind, obj["metadata"]["name"]))
    return found


def session(emulator, namespace: str, name: str = "analytics") -> dict[str, Any] | None:
    return emulator.get(*SESSION, namespace, name)


def apply_and_converge(emulator, kubectl, namespace: str, **spec: Any) -> dict[str, Any]:
    kubectl("apply", "-f", "-", input=example_in(namespace, **spec))
    wait_for(lambda: EXPECTED_CHILDREN <= children(emulator, namespace), what="children")
    return wait_for(lambda: (session(emulator, namespace) or {}).get("status"), what="status")


def test_kubectl_apply_creates_children_and_get_shows_printer_columns(emulator, operator, kubectl, namespace):
    apply_and_converge(emulator, kubectl, namespace)
    assert children(emulator, namespace) == EXPECTED_CHILDREN
    owner_uid = session(emulator, namespace)["metadata"]["uid"]
    for kind, name in EXPECTED_CHILDREN:
        api_version, plural = next((a, p) for a, p, k in CHILD_RESOURCES if k == kind)
        obj = emulator.get(api_version, plural, namespace, name)
        (ref,) = obj["metadata"]["ownerReferences"]
        assert ref["uid"] == owner_uid and ref["controller"] is True and ref["kind"] == "SparkSession"
    out = kubectl("get", "sparksessions", "-n", namespace).stdout
    header = out.splitlines()[0].split()
    assert header == ["NAME", "PHASE", "EXECUTORS", "READY", "AGE"]
    assert out.splitlines()[1].split()[:2] == ["analytics", "Starting"]  # driver created, not ready yet
    assert "analytics" in kubectl("get", "sps", "-n", namespace).stdout


@pytest.mark.parametrize(
    "change, message",
    [
        ({"dynamicAllocation": {"minExecutors": 5, "initialExecutors": 1, "maxExecutors": 2}},
         "minExecutors <= initialExecutors <= maxExecutors"),
        ({"driver": {"cores": -1}}, "spec.driver.cores"),
        ({"executor": {"memory": "lots"}}, "spec.executor.memory"),
        ({"surprise": True}, "surprise"),
        ({"sparkConf": {"spark.master": "local[*]"}}, "sparkConf may not set keys"),
    ],
)
def test_invalid_sessions_are_rejected_naming_the_problem(emulator, kubectl, namespace, change, message):
    result = kubectl("apply", "-f", "-", input=example_in(namespace, **change), check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert session(emulator, namespace) is None


def test_kubelet_and_executors_drive_status(emulator, operator, kubectl, namespace):
    apply_and_converge(emulator, kubectl, namespace)
    driver = emulator.get("v1", "pods", namespace, "analytics-driver")
    kubelet_runs(emulator, namespace, "analytics-driver")
    status = wait_for(lambda: (session(emulator, namespace) or {}).get("status", {}).get("phase") == "Running"
                      and session(emulator, namespace)["status"], what="Running")
    assert condition(session(emulator, namespace), "Ready")["status"] == "True"
    assert status["driver"]["podIP"] == "10.1.2.3"
    assert status["endpoints"] == {
        "connect": f"sc://analytics-connect.{namespace}.svc:15002",
        "ui": f"http://analytics-ui.{namespace}.svc:4040",
    }

    # Spark's scheduler backend starts executors owned by the driver pod, with our labels.
    def executor(i: int, phase: str) -> None:
        emulator.create({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": f"analytics-exec-{i}", "namespace": namespace,
                "labels": {**names.session_labels("analytics", "executor"), "spark-role": "executor",
                           "spark-app-selector": "spark-0123"},
                "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "analytics-driver",
                                     "uid": driver["metadata"]["uid"], "controller": True}],
            },
            "spec": {"containers": [{"name": "executor", "image": "x"}]},
        })
        emulator.patch_status("v1", "pods", namespace, f"analytics-exec-{i}", {"phase": phase})

    executor(1, "Running")
    executor(2, "Running")
    executor(3, "Pending")
    wait_for(lambda: session(emulator, namespace)["status"]["executors"] == {"running": 2, "pending": 1, "failed": 0},
             what="executor counts")
    assert session(emulator, namespace)["status"]["applicationId"] == "spark-0123"
    out = kubectl("get", "sparksessions", "-n", namespace).stdout.splitlines()[1].split()
    assert out[:4] == ["analytics", "Running", "2", "True"]

    # Dynamic allocation scales down: Spark deletes idle executors.
    emulator.delete("v1", "pods", namespace, "analytics-exec-1")
    emulator.delete("v1", "pods", namespace, "analytics-exec-3")
    wait_for(lambda: session(emulator, namespace)["status"]["executors"] == {"running": 1, "pending": 0, "failed": 0},
             what="scale down")
    # Deleting the driver pod takes its executors with it (garbage collection by ownerReference).
    emulator.delete("v1", "pods", namespace, "analytics-driver")
    wait_for(lambda: emulator.get("v1", "pods", namespace, "analytics-exec-2") is None, what="executor GC")


def test_second_reconcile_writes_nothing(emulator, operator, kubectl, namespace):
    before = len(emulator.writes())
    apply_and_converge(emulator, kubectl, namespace)
    kubelet_runs(emulator, namespace, "analytics-driver")
    wait_for(lambda: session(emulator, namespace)["status"]["phase"] == "Running", what="Running")
    first = settle(lambda: len(operator_writes(emulator, namespace)), quiet=1.5)
    print(f"API writes for a first reconcile up to Running: {first}")
    assert first > 0
    # Poke the resource with a metadata-only change: the operator reconciles it and must write nothing.
    kubectl("annotate", "sparksession", "analytics", "-n", namespace, "touched=yes")
    assert settle(lambda: len(operator_writes(emulator, namespace)), quiet=1.5) == first
    assert len(emulator.writes()) > before


def test_deleted_child_is_recreated(emulator, operator, kubectl, namespace):
    apply_and_converge(emulator, kubectl, namespace)
    old_uid = emulator.get("v1", "services", namespace, "analytics-ui")["metadata"]["uid"]
    emulator.delete("v1", "services", namespace, "analytics-ui")
    recreated = wait_for(lambda: emulator.get("v1", "services", namespace, "analytics-ui"), what="UI service back")
    assert recreated["metadata"]["uid"] != old_uid


def test_edited_child_is_repaired(emulator, operator, kubectl, namespace):
    apply_and_converge(emulator, kubectl, namespace)
    kubectl("patch", "service", "analytics-connect", "-n", namespace, "--type=merge",
            "-p", '{"spec": {"selector": {"sparkbook.io/session": "someone-else"}}}')
    wait_for(lambda: emulator.get("v1", "services", namespace, "analytics-connect")["spec"]["selector"]
             .get(names.SESSION_LABEL) == "analytics", what="selector repaired")


def test_deleting_the_session_removes_every_child(emulator, operator, kubectl, namespace):
    apply_and_converge(emulator, kubectl, namespace)
    kubectl("delete", "sparksession", "analytics", "-n", namespace)
    wait_for(lambda: not children(emulator, namespace), what="children gone")


def test_no_write_for_a_deleted_session_whose_deletion_the_operator_has_not_seen(
        emulator, operator, kubectl, namespace):
    """The garbage collector's deletions of the children reach the operator before the session's
    own DELETED event (another watch, lagging): the operator must not recreate the children of a
    session that is gone (seen against an API server that plays kubelet and Spark: the whole set
    re-created within half a second of `kubectl delete`, in 3 of 7 runs)."""
    apply_and_converge(emulator, kubectl, namespace)
    settle(lambda: len(operator_writes(emulator, namespace)), quiet=1.0)
    emulator.emulator.watch_lag[("sparkbook.io", "sparksessions")] = 2.5
    try:
        since = len(emulator.requests)
        kubectl("delete", "sparksession", "analytics", "-n", namespace)
        wait_for(lambda: not children(emulator, namespace), what="children gone")
        time.sleep(4.0)  # past the lag: the operator has seen everything by now
    finally:
        emulator.emulator.watch_lag.clear()
    late = [(r.method, r.plural, r.name) for r in emulator.writes(since)
            if r.namespace == namespace and "sparkbook-operator" in (r.user_agent or "")]
    assert late == [], f"the operator wrote for a deleted session: {late}"
    assert children(emulator, namespace) == set()


def test_suspend_and_resume(emulator, operator, kubectl, namespace):
    apply_and_converge(emulator, kubectl, namespace)
    kubelet_runs(emulator, namespace, "analytics-driver")
    wait_for(lambda: session(emulator, namespace)["status"]["phase"] == "Running", what="Running")
    kubectl("patch", "sparksession", "analytics", "-n", namespace, "--type=merge", "-p", '{"spec": {"suspend": true}}')
    wait_for(lambda: emulator.get("v1", "pods", namespace, "analytics-driver") is None, what="driver removed")
    status = wait_for(lambda: session(emulator, namespace)["status"]["phase"] == "Suspended"
                      and session(emulator, namespace)["status"], what="Suspended")
    assert status["observedGeneration"] == session(emulator, namespace)["metadata"]["generation"]
    assert emulator.get("v1", "services", namespace, "analytics-connect") is not None  # endpoints stay
    kubectl("patch", "sparksession", "analytics", "-n", namespace, "--type=merge", "-p", '{"spec": {"suspend": false}}')
    wait_for(lambda: emulator.get("v1", "pods", namespace, "analytics-driver"), what="driver back")
    wait_for(lambda: session(emulator, namespace)["status"]["phase"] in ("Starting", "Pending"), what="starting again")


def test_spec_change_replaces_the_driver_and_says_so(emulator, operator, kubectl, namespace):
    apply_and_converge(emulator, kubectl, namespace)
    old = emulator.get("v1", "pods", namespace, "analytics-driver")
    kubectl("patch", "sparksession", "analytics", "-n", namespace, "--type=merge",
            "-p", '{"spec": {"executor": {"memory": "4g"}}}')
    new = wait_for(lambda: (p := emulator.get("v1", "pods", namespace, "analytics-driver"))
                   and p["metadata"]["uid"] != old["metadata"]["uid"] and p, what="new driver")
    assert "spark.executor.memory=4g" in new["spec"]["containers"][0]["command"]
    event_seen(emulator, namespace, lambda e: e["reason"] == "DriverReplacing" and "generation 2" in e["message"])


def test_failed_driver_is_replaced_with_backoff_and_counted(emulator, operator, kubectl, namespace):
    apply_and_converge(emulator, kubectl, namespace)
    old = emulator.get("v1", "pods", namespace, "analytics-driver")
    emulator.patch_status("v1", "pods", namespace, "analytics-driver", {
        "phase": "Failed",
        "containerStatuses": [{"name": "spark-connect", "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}],
    })
    status = wait_for(lambda: session(emulator, namespace)["status"]["driver"].get("restarts") == 1
                      and session(emulator, namespace)["status"], what="restart counted")
    assert status["driver"]["lastFailure"] == "OOMKilled"
    new = wait_for(lambda: (p := emulator.get("v1", "pods", namespace, "analytics-driver"))
                   and p["metadata"]["uid"] != old["metadata"]["uid"] and p, timeout=30, what="replacement")
    assert new is not None
    event_seen(emulator, namespace, lambda e: e["reason"] == "DriverFailed" and "OOMKilled" in e["message"])


def test_name_squatting_stalls_with_an_event(emulator, operator, kubectl, namespace):
    squatter = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "analytics-ui", "namespace": namespace},
                "spec": {"ports": [{"port": 80}]}}
    kubectl("apply", "-f", "-", input=yaml.safe_dump(squatter))
    kubectl("apply", "-f", "-", input=example_in(namespace))
    stalled = wait_for(lambda: condition(session(emulator, namespace), "Stalled").get("status") == "True"
                       and condition(session(emulator, namespace), "Stalled"), what="Stalled")
    assert stalled["reason"] == "NameConflict" and "analytics-ui" in stalled["message"]
    svc = emulator.get("v1", "services", namespace, "analytics-ui")
    assert svc["spec"]["ports"] == [{"port": 80}] or svc["spec"]["ports"][0]["port"] == 80
    assert not svc["metadata"].get("ownerReferences")
    event_seen(emulator, namespace, lambda e: e["type"] == "Warning" and "analytics-ui" in e["message"])
    # Once the squatter is gone, the operator continues.
    kubectl("delete", "service", "analytics-ui", "-n", namespace)
    wait_for(lambda: condition(session(emulator, namespace), "Stalled").get("status") == "False", timeout=30,
             what="unstalled")


def test_first_reconcile_write_budget(emulator, operator, kubectl, namespace):
    """One create per child, one status write, one Event: nothing more (reads come from caches)."""
    kubectl("apply", "-f", "-", input=example_in(namespace))
    wait_for(lambda: EXPECTED_CHILDREN <= children(emulator, namespace), what="children")
    writes = settle(lambda: [(r.method, r.plural, r.subresource or "") for r in operator_writes(emulator, namespace)
                             if "kubectl" not in (r.user_agent or "")], quiet=1.5)
    assert sorted(writes) == sorted(
        [("POST", plural, "") for plural in
         ("networkpolicies", "serviceaccounts", "roles", "rolebindings", "secrets", "configmaps", "services", "services", "services", "pods")]
        + [("PATCH", "sparksessions", "status"), ("POST", "events", "")]
    )
    reads = [r for r in emulator.requests if r.namespace == namespace and r.method == "GET"
             and "sparkbook-operator" in (r.user_agent or "")]
    assert reads == []


def test_operator_restart_writes_nothing(emulator, operator, kubectl, namespace):
    apply_and_converge(emulator, kubectl, namespace)
    kubelet_runs(emulator, namespace, "analytics-driver")
    wait_for(lambda: session(emulator, namespace)["status"]["phase"] == "Running", what="Running")
    settle(lambda: len(operator_writes(emulator, namespace)), quiet=1.0)
    operator.stop()
    before = len(emulator.writes())
    driver_uid = emulator.get("v1", "pods", namespace, "analytics-driver")["metadata"]["uid"]
    operator.start()
    # The restarted operator lists everything and reconciles every resource from its caches.
    wait_for(lambda: len([r for r in emulator.requests if r.verb == "watch" and r.plural == "sparksessions"]) >= 2,
             what="the new operator watching")
    assert settle(lambda: len(emulator.writes()), quiet=2.0) == before
    assert emulator.get("v1", "pods", namespace, "analytics-driver")["metadata"]["uid"] == driver_uid


def test_upgrade_turns_virtual_ip_services_headless_without_restarting_the_driver(
        emulator, operator, kubectl, namespace):
    """Services made before they were headless had a cluster IP, which may not change in place:
    the operator deletes and creates each again under its name, and touches nothing else."""
    apply_and_converge(emulator, kubectl, namespace)
    kubelet_runs(emulator, namespace, "analytics-driver")
    wait_for(lambda: session(emulator, namespace)["status"]["phase"] == "Running", what="Running")
    settle(lambda: len(operator_writes(emulator, namespace)), quiet=1.0)
    operator.stop()
    old_uids = {}
    for name in ("analytics-connect", "analytics-ui"):
        svc = emulator.get("v1", "services", namespace, name)
        emulator.delete("v1", "services", namespace, name)
        meta = {k: svc["metadata"][k] for k in ("name", "namespace", "labels", "ownerReferences")}
        spec = {k: v for k, v in svc["spec"].items() if k not in ("clusterIP", "clusterIPs")}
        old = emulator.create({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec})
        assert old["spec"]["clusterIP"] not in ("", "None")  # the emulator allocates one, like the server
        old_uids[name] = old["metadata"]["uid"]
    driver_uid = emulator.get("v1", "pods", namespace, "analytics-driver")["metadata"]["uid"]
    before = len(operator_writes(emulator, namespace))
    operator.start()
    for name, uid in old_uids.items():
        wait_for(lambda: (emulator.get("v1", "services", namespace, name) or {}).get("spec", {}).get("clusterIP")
                 == "None", what=f"{name} headless")
        assert emulator.get("v1", "services", namespace, name)["metadata"]["uid"] != uid
    writes = settle(lambda: [(r.method, r.plural) for r in operator_writes(emulator, namespace)[before:]], quiet=2.0)
    assert sorted(writes) == sorted([("DELETE", "services"), ("POST", "services")] * 2)
    assert emulator.get("v1", "pods", namespace, "analytics-driver")["metadata"]["uid"] == driver_uid


def test_cluster_ip_may_not_change_once_set(emulator, kubectl, namespace):
    svc = emulator.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "vip", "namespace": namespace},
                           "spec": {"ports": [{"port": 80}]}})
    assert svc["spec"]["clusterIPs"] == [svc["spec"]["clusterIP"]]
    out = kubectl("patch", "service", "vip", "-n", namespace, "--type=merge", "-p", '{"spec": {"clusterIP": "None"}}',
                  check=False)
    assert out.returncode != 0 and "may not change once set" in out.stderr
    # An update that leaves the field out keeps it.
    kubectl("patch", "service", "vip", "-n", namespace, "--type=merge", "-p", '{"spec": {"clusterIP": null}}')
    assert emulator.get("v1", "services", namespace, "vip")["spec"]["clusterIP"] == svc["spec"]["clusterIP"]


def test_event_logs_with_nowhere_to_go_stall_with_an_event(emulator, operator, kubectl, namespace):
    """The default operator has no event-log place: a session asking for event logs without one
    is Stalled (EventLogNowhere) and told what to set, and nothing is created for it."""
    kubectl("apply", "-f", "-", input=example_in(namespace, eventLog={"enabled": True}))
    stalled = wait_for(lambda: condition(session(emulator, namespace), "Stalled").get("status") == "True"
                       and condition(session(emulator, namespace), "Stalled"), what="Stalled")
    assert stalled["reason"] == "EventLogNowhere"
    assert "spec.eventLog.persistentVolumeClaim or spec.eventLog.url" in stalled["message"]
    assert emulator.get("v1", "pods", namespace, "analytics-driver") is None
    event_seen(emulator, namespace, lambda e: e["type"] == "Warning" and "eventLog" in e["message"])
    kubectl("patch", "sparksession", "analytics", "-n", namespace, "--type=merge",
            "-p", '{"spec": {"eventLog": {"url": "s3a://logs/spark-events"}}}')
    pod = wait_for(lambda: emulator.get("v1", "pods", namespace, "analytics-driver"), what="driver once fixed")
    assert "spark.eventLog.dir=s3a://logs/spark-events" in pod["spec"]["containers"][0]["command"]
