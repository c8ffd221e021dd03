"""session_status(): observations in, the status a user and kstatus read out."""

from __future__ import annotations

from typing import Any

from sparkbook.status import SessionObservation, pod_problem, session_status

NOW = "2026-01-01T00:00:00Z"


def _pod(phase: str = "Running", ready: bool = True, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "s-driver", "uid": "d1"},
        "status": {
            "phase": phase,
            "podIP": "10.0.0.5",
            "startTime": "2026-01-01T00:00:00Z",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            **status,
        },
    }


def _executor(phase: str, app: str = "spark-abc") -> dict[str, Any]:
    return {
        "metadata": {"name": f"e-{phase}", "labels": {"spark-app-selector": app}, "ownerReferences": [{"uid": "d1"}]},
        "status": {"phase": phase},
    }


def _obs(**kw: Any) -> SessionObservation:
    return SessionObservation(name="s", namespace="ns", generation=3, now=NOW, **kw)


def _cond(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def test_running_driver_with_executors():
    status = session_status(_obs(driver=_pod(), executors=[_executor("Running"), _executor("Running"), _executor("Pending")]))
    assert status["phase"] == "Running"
    assert status["observedGeneration"] == 3
    assert status["executors"] == {"running": 2, "pending": 1, "failed": 0}
    assert status["endpoints"] == {"connect": "sc://s-connect.ns.svc:15002", "ui": "http://s-ui.ns.svc:4040"}
    assert status["driver"]["podName"] == "s-driver" and status["driver"]["podIP"] == "10.0.0.5"
    assert status["applicationId"] == "spark-abc"
    assert _cond(status, "Ready")["status"] == "True"
    assert _cond(status, "Reconciling")["status"] == "False"
    assert _cond(status, "Stalled")["status"] == "False"


def test_no_driver_yet_is_pending_and_reconciling():
    status = session_status(_obs())
    assert status["phase"] == "Pending"
    assert _cond(status, "Ready")["status"] == "False"
    assert _cond(status, "Reconciling")["status"] == "True"


def test_starting_driver_and_missing_children():
    assert session_status(_obs(driver=_pod(phase="Pending", ready=False)))["phase"] == "Starting"
    status = session_status(_obs(driver=_pod(), missing=["Service s-ui"]))
    assert status["phase"] == "Starting"
    assert "s-ui" in _cond(status, "Ready")["message"]


def test_image_pull_backoff_is_the_ready_reason():
    pod = _pod(
        phase="Pending",
        ready=False,
        containerStatuses=[
            {"name": "spark-connect", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}}
        ],
    )
    ready = _cond(session_status(_obs(driver=pod)), "Ready")
    assert ready["reason"] == "ImagePullBackOff"
    assert "not found" in ready["message"]


def test_oom_killed_and_unschedulable_are_named():
    oom = _pod(
        phase="Failed",
        ready=False,
        containerStatuses=[{"name": "c", "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}],
    )
    assert pod_problem(oom)[0] == "OOMKilled"
    pending = {
        "metadata": {"name": "p"},
        "status": {
            "phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes"}],
        },
    }
    assert pod_problem(pending) == ("Unschedulable", "pod p cannot be scheduled: 0/3 nodes")


def test_suspended_and_stalled():
    suspended = session_status(_obs(suspend=True))
    assert suspended["phase"] == "Suspended"
    assert _cond(suspended, "Reconciling")["status"] == "False"
    stalled = session_status(_obs(stalled=("NameConflict", "Service s-ui is not ours")))
    assert stalled["phase"] == "Failed"
    assert _cond(stalled, "Stalled")["status"] == "True"
    assert _cond(stalled, "Stalled")["reason"] == "NameConflict"


def test_transition_time_moves_only_on_flips():
    first = session_status(_obs(driver=_pod()))
    later = SessionObservation(name="s", namespace="ns", generation=3, now="2026-02-02T00:00:00Z",
                               driver=_pod(), previous=first)
    again = session_status(later)
    assert again == first  # nothing changed: same status, so the operator writes nothing
    flipped = session_status(SessionObservation(name="s", namespace="ns", generation=3,
                                                now="2026-02-02T00:00:00Z", previous=first))
    assert _cond(flipped, "Ready")["lastTransitionTime"] == "2026-02-02T00:00:00Z"


# --- applications and the History Server -------------------------------------------------------

HS = "http://sparkbook-history.ops.svc:18080"


def _logged_driver(uid: str = "d1", **kw: Any) -> dict[str, Any]:
    pod = _pod(**kw)
    pod["metadata"] = {"name": "s-driver", "uid": uid, "labels": {"sparkbook.io/event-log": "true"}}
    return pod


def test_a_driver_that_writes_event_logs_is_an_application_known_before_its_executors():
    status = session_status(_obs(driver=_logged_driver(), history_url=HS))
    assert status["applicationId"] == "spark-d1"
    assert status["applications"] == [{"id": "spark-d1", "startTime": "2026-01-01T00:00:00Z",
                                       "historyURL": f"{HS}/history/spark-d1/jobs/"}]
    assert status["endpoints"]["history"] == f"{HS}/history/spark-d1/jobs/"


def test_applications_end_when_their_driver_goes_and_stay_listed_newest_first():
    first = session_status(_obs(driver=_logged_driver("d1"), history_url=HS))
    gone = session_status(_obs(driver=None, suspend=True, history_url=HS, previous=first))
    (app,) = gone["applications"]
    assert app["id"] == "spark-d1" and app["endTime"] == NOW
    # Still pointing at the last application: the UI is the History Server's now.
    assert gone["endpoints"]["history"] == f"{HS}/history/spark-d1/jobs/"
    later = "2026-01-01T01:00:00Z"
    again = session_status(SessionObservation(name="s", namespace="ns", generation=3, now=later,
                                              driver=_logged_driver("d2"), history_url=HS, previous=gone))
    assert [a["id"] for a in again["applications"]] == ["spark-d2", "spark-d1"]
    assert again["applications"][1]["endTime"] == NOW  # when it was first seen gone, not now
    assert "endTime" not in again["applications"][0]
    # A pass that changes nothing writes the same status (idempotent).
    assert session_status(SessionObservation(name="s", namespace="ns", generation=3, now=later,
                                             driver=_logged_driver("d2"), history_url=HS, previous=again)) == again


def test_at_most_ten_applications_are_kept():
    previous: dict[str, Any] = {}
    for i in range(12):
        previous = session_status(_obs(driver=_logged_driver(f"d{i}"), history_url=HS, previous=previous))
    assert len(previous["applications"]) == 10
    assert previous["applications"][0]["id"] == "spark-d11"


def test_drivers_without_event_logs_leave_no_applications():
    status = session_status(_obs(driver=_pod(), executors=[_executor("Running")], history_url=HS))
    assert status["applicationId"] == "spark-abc"
    assert "applications" not in status and "history" not in status["endpoints"]


def test_without_a_history_server_applications_have_no_links():
    status = session_status(_obs(driver=_logged_driver()))
    assert status["applications"] == [{"id": "spark-d1", "startTime": "2026-01-01T00:00:00Z"}]
    assert "history" not in status["endpoints"]
