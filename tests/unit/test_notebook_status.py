"""notebook_status(): observations in, the status a user and kstatus read out."""

from __future__ import annotations

from typing import Any

from sparkbook.status import NotebookObservation, notebook_status

NOW = "2026-01-01T00:00:00Z"
STS = {"metadata": {"name": "alice"}}


def _pod(ready: bool = True, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "alice-0", "labels": {}},
            "status": {"phase": "Running" if ready else "Pending",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}], **status}}


def _obs(**kw: Any) -> NotebookObservation:
    return NotebookObservation(name="alice", namespace="team-a", generation=2, now=NOW, **kw)


def _cond(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in status["conditions"] if c["type"] == type_), None)


def test_running_notebook_with_running_session():
    session = {"metadata": {}, "status": {"phase": "Running", "endpoints": {"connect": "sc://x"}}}
    status = notebook_status(_obs(statefulset=STS, pod=_pod(), session_name="analytics", session=session))
    assert status["phase"] == "Running"
    assert status["url"] == "http://alice.team-a.svc:8888/lab"
    assert status["tokenSecret"] == "alice-token"
    assert status["sparkSession"] == "analytics"
    assert status["sparkUI"] == "http://analytics-ui.team-a.svc:4040"
    assert _cond(status, "Ready")["status"] == "True"
    assert _cond(status, "SparkReady")["status"] == "True"


def test_missing_and_unready_sessions_are_named():
    missing = notebook_status(_obs(statefulset=STS, pod=_pod(), session_name="analytics"))
    assert _cond(missing, "SparkReady")["reason"] == "NotFound"
    assert missing["phase"] == "Running"  # Jupyter works without Spark
    starting = {"metadata": {}, "status": {"phase": "Starting", "conditions": [
        {"type": "Ready", "status": "False", "message": "the driver pod is starting"}]}}
    cond = _cond(notebook_status(_obs(statefulset=STS, pod=_pod(), session_name="a", session=starting)), "SparkReady")
    assert cond["reason"] == "NotReady" and "driver pod is starting" in cond["message"]
    idle = {"metadata": {"annotations": {"sparkbook.io/idle-suspended-at": NOW}}, "status": {"phase": "Idle"}}
    cond = _cond(notebook_status(_obs(statefulset=STS, pod=_pod(), session_name="a", session=idle)), "SparkReady")
    assert cond["reason"] == "SessionIdle" and "kubectl annotate sparksession a" in cond["message"]


def test_plain_notebook_has_no_spark_condition():
    status = notebook_status(_obs(statefulset=STS, pod=_pod()))
    assert _cond(status, "SparkReady") is None and "sparkSession" not in status


def test_image_pull_backoff_and_crash_loop_are_the_ready_reason():
    for reason in ("ImagePullBackOff", "CrashLoopBackOff"):
        pod = _pod(ready=False, containerStatuses=[{"name": "notebook", "state": {"waiting": {"reason": reason}}}])
        status = notebook_status(_obs(statefulset=STS, pod=pod))
        assert status["phase"] == "Starting"
        assert _cond(status, "Ready")["reason"] == reason


def test_suspended_and_culled():
    assert notebook_status(_obs(statefulset=STS, suspend=True))["phase"] == "Suspended"
    culled = notebook_status(_obs(statefulset=STS, culled_at=NOW))
    assert culled["phase"] == "Culled" and culled["culledAt"] == NOW
    assert "sparkbook.io/culled-at-" in _cond(culled, "Ready")["message"]
    assert _cond(culled, "Reconciling")["status"] == "False"


def test_oom_kill_behind_a_crash_loop_is_named():
    pod = _pod(ready=False, containerStatuses=[{
        "name": "notebook",
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
    }])
    ready = _cond(notebook_status(_obs(statefulset=STS, pod=pod)), "Ready")
    assert ready["reason"] == "OOMKilled" and "more memory" in ready["message"]


def _undeclared(value: Any, schema: dict[str, Any], path: str = "status") -> list[str]:
    """Fields the API server would prune (not in the CRD's status schema)."""
    out: list[str] = []
    if isinstance(value, dict) and "properties" in schema:
        for key, sub in value.items():
            if key not in schema["properties"]:
                out.append(f"{path}.{key}")
            else:
                out += _undeclared(sub, schema["properties"][key], f"{path}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            out += _undeclared(item, schema["items"], f"{path}[{i}]")
    return out


def test_every_status_field_is_declared_in_the_crd():
    """A field the CRD does not declare is pruned by the server, so the operator would see a
    difference and write the status again on every pass (this happened with sparkUI)."""
    from pathlib import Path

    import yaml

    from sparkbook.status import SessionObservation, session_status

    crds = Path(__file__).resolve().parents[2] / "crds"
    def status_schema(name: str) -> dict[str, Any]:
        crd = yaml.safe_load((crds / name).read_text())
        return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]

    session = {"metadata": {}, "status": {"phase": "Running", "endpoints": {"connect": "sc://x"}}}
    nb = notebook_status(_obs(statefulset=STS, pod=_pod(), session_name="a", session=session,
                              culled_at=None, last_activity=NOW))
    assert _undeclared(nb, status_schema("notebookservers.sparkbook.io.yaml")) == []
    ss = session_status(SessionObservation(
        name="s", namespace="ns", generation=1, now=NOW, driver=_pod(), restarts=1, last_failure="OOMKilled",
        last_failure_time=NOW, last_activity=NOW,
        executors=[{"metadata": {"labels": {"spark-app-selector": "spark-1"}}, "status": {"phase": "Running"}}]))
    assert _undeclared(ss, status_schema("sparksessions.sparkbook.io.yaml")) == []


def test_spark_ui_link_goes_to_the_history_server_once_the_driver_is_gone():
    page = "http://sparkbook-history.ops.svc:18080/history/spark-d1/jobs/"
    live = {"metadata": {}, "status": {"phase": "Running", "endpoints": {"history": page}}}
    status = notebook_status(_obs(statefulset=STS, pod=_pod(), session_name="analytics", session=live))
    assert status["sparkUI"] == "http://analytics-ui.team-a.svc:4040"
    assert status["sparkHistory"] == page
    idle = {"metadata": {}, "status": {"phase": "Idle", "endpoints": {"history": page}}}
    status = notebook_status(_obs(statefulset=STS, pod=_pod(), session_name="analytics", session=idle))
    assert status["sparkUI"] == page and status["sparkHistory"] == page
    plain = {"metadata": {}, "status": {"phase": "Idle", "endpoints": {}}}
    status = notebook_status(_obs(statefulset=STS, pod=_pod(), session_name="analytics", session=plain))
    assert status["sparkUI"] == "http://analytics-ui.team-a.svc:4040" and "sparkHistory" not in status
