"""A user's story with NotebookServer, against the real operator process and the API emulator.

The test also plays kube-controller-manager (the StatefulSet's pod) and the kubelet (pod status).
"""

from __future__ import annotations

from typing import Any

import yaml

from sparkbook import names
from tests.api.conftest import (
    ROOT,
    condition,
    kubelet_runs,
    operator_writes,
    settle,
    statefulset_controller,
    wait_for,
)

GROUP = "sparkbook.io/v1alpha1"


def example(name: str, namespace: str, **spec_changes: Any) -> str:
    doc = yaml.safe_load((ROOT / "examples" / name).read_text())
    doc["metadata"]["namespace"] = namespace
    doc["spec"].update(spec_changes)
    return yaml.safe_dump(doc)


def notebook(emulator, namespace: str, name: str) -> dict[str, Any] | None:
    return emulator.get(GROUP, "notebookservers", namespace, name)


def phase(emulator, namespace: str, name: str) -> str | None:
    return ((notebook(emulator, namespace, name) or {}).get("status") or {}).get("phase")


def owned(obj: dict[str, Any] | None, owner: dict[str, Any]) -> bool:
    return any(r["uid"] == owner["metadata"]["uid"] for r in (obj or {}).get("metadata", {}).get("ownerReferences", []))


def run_notebook(emulator, namespace: str, name: str, ip: str = "10.2.0.1") -> None:
    """The StatefulSet controller starts the pod and the kubelet reports it ready."""
    wait_for(lambda: statefulset_controller(emulator, namespace, name), what="notebook pod")
    kubelet_runs(emulator, namespace, f"{name}-0", ip=ip)


def test_inline_session_notebook(emulator, operator, kubectl, namespace):
    kubectl("apply", "-f", "-", input=example("notebookserver.yaml", namespace))
    nb = wait_for(lambda: notebook(emulator, namespace, "alice"), what="notebook")
    children = {
        ("v1", "secrets", "alice-token"),
        ("v1", "configmaps", "alice-startup"),
        ("v1", "services", "alice"),
        ("apps/v1", "statefulsets", "alice"),
        (GROUP, "sparksessions", "alice-spark"),
    }
    for api_version, plural, name in children:
        obj = wait_for(lambda: emulator.get(api_version, plural, namespace, name), what=name)
        assert owned(obj, nb), name
    # The server starts only once its session's token exists: SPARK_REMOTE is complete from the start.
    token = emulator.get("v1", "secrets", namespace, "alice-spark-connect-token")
    template = emulator.get("apps/v1", "statefulsets", namespace, "alice")["spec"]["template"]
    assert template["metadata"]["annotations"][names.SPARK_TOKEN_UID] == token["metadata"]["uid"]
    pvc = wait_for(lambda: emulator.get("v1", "persistentvolumeclaims", namespace, "alice-home"), what="pvc")
    assert not pvc["metadata"].get("ownerReferences")  # retainOnDelete: true
    # The owned SparkSession is reconciled in turn: its driver exists.
    wait_for(lambda: emulator.get("v1", "pods", namespace, "alice-spark-driver"), what="owned session's driver")
    out = kubectl("get", "notebookservers", "-n", namespace).stdout.splitlines()
    assert out[0].split() == ["NAME", "PHASE", "READY", "SPARK", "URL", "AGE"]

    run_notebook(emulator, namespace, "alice")
    wait_for(lambda: phase(emulator, namespace, "alice") == "Running", what="Running")
    status = notebook(emulator, namespace, "alice")["status"]
    assert status["url"] == f"http://alice.{namespace}.svc:8888/lab"
    assert status["tokenSecret"] == "alice-token"
    assert status["sparkSession"] == "alice-spark"
    assert condition(notebook(emulator, namespace, "alice"), "SparkReady")["status"] == "False"
    kubelet_runs(emulator, namespace, "alice-spark-driver")
    wait_for(lambda: condition(notebook(emulator, namespace, "alice"), "SparkReady").get("status") == "True",
             what="SparkReady")
    assert kubectl("get", "nbs", "alice", "-n", namespace).stdout.splitlines()[1].split()[:4] == [
        "alice", "Running", "True", "alice-spark"]

    # Its spec follows the notebook's: a change to spark.session reaches the owned SparkSession.
    kubectl("patch", "notebookserver", "alice", "-n", namespace, "--type=merge",
            "-p", '{"spec": {"spark": {"session": {"dynamicAllocation": {"maxExecutors": 7}}}}}')
    wait_for(lambda: emulator.get(GROUP, "sparksessions", namespace, "alice-spark")["spec"]["dynamicAllocation"]
             ["maxExecutors"] == 7, what="session spec synced")


def test_session_ref_waits_for_a_missing_session_and_recovers(emulator, operator, kubectl, namespace):
    kubectl("apply", "-f", "-", input=example("notebookserver-shared.yaml", namespace))
    wait_for(lambda: condition(notebook(emulator, namespace, "bob"), "SparkReady").get("reason") == "NotFound",
             what="NotFound")
    sts = emulator.get("apps/v1", "statefulsets", namespace, "bob")
    assert sts["spec"]["template"]["metadata"]["annotations"][names.SPARK_TOKEN_UID] == "none"
    session = yaml.safe_load((ROOT / "examples" / "sparksession.yaml").read_text())
    session["metadata"]["namespace"] = namespace
    kubectl("apply", "-f", "-", input=yaml.safe_dump(session))
    wait_for(lambda: condition(notebook(emulator, namespace, "bob"), "SparkReady").get("reason") == "NotReady",
             what="NotReady")
    # The session's token now exists: the notebook's pod template changes so the server gets it.
    secret = wait_for(lambda: emulator.get("v1", "secrets", namespace, "analytics-connect-token"), what="token")
    wait_for(lambda: emulator.get("apps/v1", "statefulsets", namespace, "bob")["spec"]["template"]["metadata"]
             ["annotations"][names.SPARK_TOKEN_UID] == secret["metadata"]["uid"], what="template follows the token")
    wait_for(lambda: emulator.get("v1", "pods", namespace, "analytics-driver"), what="driver")
    kubelet_runs(emulator, namespace, "analytics-driver")
    wait_for(lambda: condition(notebook(emulator, namespace, "bob"), "SparkReady").get("status") == "True",
             what="SparkReady")

    # Pointing the notebook at another session moves its Spark address with it.
    kubectl("patch", "nbs", "bob", "-n", namespace, "--type=merge",
            "-p", '{"spec": {"spark": {"sessionRef": {"name": "other"}}}}')

    def remote() -> str:
        env = emulator.get("apps/v1", "statefulsets", namespace, "bob")["spec"]["template"]["spec"]["containers"][0]["env"]
        return next(e["value"] for e in env if e["name"] == "SPARK_REMOTE")

    wait_for(lambda: remote().startswith(f"sc://other-connect.{namespace}.svc:15002/"), what="new address")
    wait_for(lambda: condition(notebook(emulator, namespace, "bob"), "SparkReady").get("reason") == "NotFound",
             what="NotFound for the new name")


def test_plain_notebook_suspend_resume_and_no_op(emulator, operator, kubectl, namespace):
    doc = yaml.safe_load(example("notebookserver-shared.yaml", namespace))
    doc["metadata"]["name"] = "carol"
    del doc["spec"]["spark"]
    kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))
    wait_for(lambda: emulator.get("apps/v1", "statefulsets", namespace, "carol"), what="sts")
    run_notebook(emulator, namespace, "carol")
    wait_for(lambda: phase(emulator, namespace, "carol") == "Running", what="Running")
    assert "sparkSession" not in notebook(emulator, namespace, "carol")["status"]
    env = emulator.get("apps/v1", "statefulsets", namespace, "carol")["spec"]["template"]["spec"]["containers"][0]["env"]
    assert "SPARK_REMOTE" not in {e["name"] for e in env}

    writes = settle(lambda: len(operator_writes(emulator, namespace)), quiet=1.5)
    kubectl("annotate", "notebookserver", "carol", "-n", namespace, "poke=1")
    assert settle(lambda: len(operator_writes(emulator, namespace)), quiet=1.5) == writes

    kubectl("patch", "nbs", "carol", "-n", namespace, "--type=merge", "-p", '{"spec": {"suspend": true}}')
    wait_for(lambda: emulator.get("apps/v1", "statefulsets", namespace, "carol")["spec"]["replicas"] == 0,
             what="scaled to zero")
    wait_for(lambda: statefulset_controller(emulator, namespace, "carol") is None, what="pod gone")
    wait_for(lambda: phase(emulator, namespace, "carol") == "Suspended", what="Suspended")
    assert emulator.get("v1", "persistentvolumeclaims", namespace, "carol-home") is not None
    kubectl("patch", "nbs", "carol", "-n", namespace, "--type=merge", "-p", '{"spec": {"suspend": false}}')
    wait_for(lambda: emulator.get("apps/v1", "statefulsets", namespace, "carol")["spec"]["replicas"] == 1,
             what="scaled up")
    run_notebook(emulator, namespace, "carol")
    wait_for(lambda: phase(emulator, namespace, "carol") == "Running", what="Running again")


def test_suspending_a_notebook_suspends_its_session(emulator, operator, kubectl, namespace):
    kubectl("apply", "-f", "-", input=example("notebookserver.yaml", namespace, suspend=True))
    session = wait_for(lambda: emulator.get(GROUP, "sparksessions", namespace, "alice-spark"), what="session")
    assert session["spec"]["suspend"] is True
    wait_for(lambda: (emulator.get(GROUP, "sparksessions", namespace, "alice-spark").get("status") or {})
             .get("phase") == "Suspended", what="session Suspended")
    assert emulator.get("v1", "pods", namespace, "alice-spark-driver") is None


def test_image_pull_backoff_shows_in_ready(emulator, operator, kubectl, namespace):
    kubectl("apply", "-f", "-", input=example("notebookserver-shared.yaml", namespace, image="example.invalid/nope:1"))
    wait_for(lambda: statefulset_controller(emulator, namespace, "bob"), what="pod")
    emulator.patch_status("v1", "pods", namespace, "bob-0", {
        "phase": "Pending",
        "containerStatuses": [{"name": "notebook", "ready": False, "state": {"waiting": {
            "reason": "ImagePullBackOff", "message": 'Back-off pulling image "example.invalid/nope:1"'}}}],
    })
    ready = wait_for(lambda: condition(notebook(emulator, namespace, "bob"), "Ready").get("reason") == "ImagePullBackOff"
                     and condition(notebook(emulator, namespace, "bob"), "Ready"), what="ImagePullBackOff")
    assert "example.invalid/nope:1" in ready["message"]


def test_deletion_keeps_or_removes_the_home_volume(emulator, operator, kubectl, namespace):
    kubectl("apply", "-f", "-", input=example("notebookserver-shared.yaml", namespace))
    doc = yaml.safe_load(example("notebookserver-shared.yaml", namespace))
    doc["metadata"]["name"] = "dave"
    doc["spec"]["storage"]["retainOnDelete"] = False
    kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))
    wait_for(lambda: emulator.get("v1", "persistentvolumeclaims", namespace, "bob-home")
             and emulator.get("v1", "persistentvolumeclaims", namespace, "dave-home"), what="pvcs")
    wait_for(lambda: emulator.get("apps/v1", "statefulsets", namespace, "dave"), what="sts")
    kubectl("delete", "notebookserver", "bob", "dave", "-n", namespace)
    wait_for(lambda: emulator.get("v1", "persistentvolumeclaims", namespace, "dave-home") is None, what="dave's pvc gone")
    for gone in ("bob", "dave"):
        wait_for(lambda: emulator.get("apps/v1", "statefulsets", namespace, gone) is None, what=f"{gone} sts gone")
        assert emulator.get("v1", "secrets", namespace, f"{gone}-token") is None
    kept = emulator.get("v1", "persistentvolumeclaims", namespace, "bob-home")
    assert kept is not None
    # Bob comes back: the operator picks his files up again instead of stalling on the old claim.
    kubectl("apply", "-f", "-", input=example("notebookserver-shared.yaml", namespace))
    wait_for(lambda: emulator.get("apps/v1", "statefulsets", namespace, "bob"), what="bob again")
    assert emulator.get("v1", "persistentvolumeclaims", namespace, "bob-home")["metadata"]["uid"] == kept["metadata"]["uid"]
    assert condition(notebook(emulator, namespace, "bob"), "Stalled").get("status") != "True"


def test_both_session_and_ref_is_rejected(emulator, kubectl, namespace):
    doc = yaml.safe_load(example("notebookserver.yaml", namespace))
    doc["spec"]["spark"]["sessionRef"] = {"name": "analytics"}
    result = kubectl("apply", "-f", "-", input=yaml.safe_dump(doc), check=False)
    assert result.returncode != 0
    assert "set either spark.sessionRef" in result.stderr


def test_no_write_for_a_deleted_notebook_whose_deletion_the_operator_has_not_seen(
        emulator, operator, kubectl, namespace):
    """As for SparkSessions: the garbage collector's deletions of a notebook's children (its
    StatefulSet, Secret, ConfigMap, Service and own SparkSession) arrive before the notebook's own
    DELETED event; none of them is made again."""
    import time

    kubectl("apply", "-f", "-", input=example("notebookserver.yaml", namespace))
    wait_for(lambda: emulator.get("apps/v1", "statefulsets", namespace, "alice")
             and emulator.get(GROUP, "sparksessions", namespace, "alice-spark"), what="children")
    settle(lambda: len(operator_writes(emulator, namespace)), quiet=1.5)
    emulator.emulator.watch_lag[("sparkbook.io", "notebookservers")] = 2.5
    try:
        since = len(emulator.requests)
        kubectl("delete", "notebookserver", "alice", "-n", namespace)
        wait_for(lambda: emulator.get("apps/v1", "statefulsets", namespace, "alice") is None, what="children gone")
        time.sleep(4.0)  # past the lag
    finally:
        emulator.emulator.watch_lag.clear()
    late = [(r.method, r.plural, r.name) for r in emulator.writes(since)
            if r.namespace == namespace and "sparkbook-operator" in (r.user_agent or "")]
    assert late == [], f"the operator wrote for a deleted notebook: {late}"
    for api_version, plural, name in [("apps/v1", "statefulsets", "alice"), ("v1", "secrets", "alice-token"),
                                      ("v1", "configmaps", "alice-startup"), (GROUP, "sparksessions", "alice-spark")]:
        assert emulator.get(api_version, plural, namespace, name) is None, f"{plural}/{name} came back"
