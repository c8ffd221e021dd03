"""PURE: activity parsing and the idle decision, on answers shaped like real servers' (recorded
from jupyter-server 2.21.1 and a Spark 4.3.0 Connect server)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from sparkbook.activity import Activity, ProbeError, idle_for, jupyter_activity_from, spark_activity_from

UTC = timezone.utc


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def millis(text: str) -> int:
    return int(at(text).timestamp() * 1000)


# ---------------------------------------------------------------------------- Jupyter

STATUS = {
    "connections": 0,
    "kernels": 0,
    "last_activity": "2026-11-25T23:04:47.803112Z",
    "started": "2026-11-25T23:04:47.803112Z",
}


def kernel(state: str = "idle", last: str = "2026-11-25T23:04:50.572490Z", **extra: Any) -> dict[str, Any]:
    return {
        "id": "ba0d522e-87d0-4e64-9b4e-8c04c8622863",
        "name": "python3",
        "last_activity": last,
        "execution_state": state,
        "connections": 0,
        **extra,
    }


def terminal(last: str = "2026-11-25T23:04:50.591683Z") -> dict[str, Any]:
    return {"name": "1", "last_activity": last}


def test_fresh_jupyter_is_idle_since_start() -> None:
    a = jupyter_activity_from(STATUS, [], [])
    assert a == Activity(
        last_activity=at("2026-11-25T23:04:47.803112"),
        busy=False,
        detail="no kernels, no terminals, last activity 2026-11-25T23:04:47Z",
    )
    assert a.last_activity is not None and a.last_activity.tzinfo is not None


def test_jupyter_newest_of_status_kernels_and_terminals() -> None:
    status = {**STATUS, "last_activity": "2026-11-25T23:05:00+00:00"}
    kernels = [kernel(last="2026-11-25T23:06:00.5Z"), kernel(last="2026-11-25T23:04:00Z")]
    a = jupyter_activity_from(status, kernels, [])
    assert a.last_activity == at("2026-11-25T23:06:00.5")
    assert not a.busy
    assert a.detail == "2 kernels idle, no terminals, last activity 2026-11-25T23:06:00Z"
    a = jupyter_activity_from(status, [], [terminal("2026-11-25T23:07:00.000001Z")])
    assert a.last_activity == at("2026-11-25T23:07:00.000001")


@pytest.mark.parametrize("state", ["idle", "starting", "restarting", "dead"])
def test_non_busy_kernel_states_are_not_busy(state: str) -> None:
    assert not jupyter_activity_from(STATUS, [kernel(state)], []).busy


def test_busy_kernel_is_busy() -> None:
    a = jupyter_activity_from(STATUS, [kernel("idle"), kernel("busy")], [])
    assert a.busy
    assert a.detail.startswith("1 of 2 kernels busy, no terminals")


def test_open_terminal_is_busy() -> None:
    a = jupyter_activity_from(STATUS, [kernel("idle")], [terminal()])
    assert a.busy
    assert a.detail.startswith("1 kernel idle, 1 terminal open")


@pytest.mark.parametrize(
    "status, kernels, terminals",
    [
        ({**STATUS, "last_activity": "yesterday"}, [], []),
        (STATUS, [kernel(last="12:00")], []),
        (STATUS, [], [{"name": "1", "last_activity": 5}]),
        (STATUS, {"not": "a list"}, []),
        ([], [], []),
    ],
)
def test_jupyter_bad_answers_raise(status: Any, kernels: Any, terminals: Any) -> None:
    with pytest.raises(ProbeError):
        jupyter_activity_from(status, kernels, terminals)


# ---------------------------------------------------------------------------- Spark

SESSION_ID = "96583fcf-47d5-49c9-bb6b-ddca7fb809f0"


def session(start: str, finish: str | None = None) -> dict[str, Any]:
    return {
        "sessionId": SESSION_ID,
        "userId": "",
        "startTimestamp": millis(start),
        "finishTimestamp": millis(finish) if finish else 0,
        "totalExecution": 1,
        "totalTime": 2928,
    }


def operation(state: str, start: str, finish: str | None = None, close: str | None = None) -> dict[str, Any]:
    return {
        "jobTag": f"SparkConnect_OperationTag_User__Session_{SESSION_ID}_Operation_03e9676f",
        "operationId": "03e9676f-9aca-4680-829f-d8ca633015c4",
        "sessionId": SESSION_ID,
        "userId": "",
        "statement": "common {\n  plan_id: 1\n}\n",
        "state": state,
        "startTimestamp": millis(start),
        "finishTimestamp": millis(finish) if finish else 0,
        "closeTimestamp": millis(close) if close else 0,
        "duration": 2616,
        "executionTime": 2561,
        "sparkSessionTags": [],
        "jobIds": ["0", "1"],
        "sqlExecIds": ["0"],
        "detail": "",
    }


def job(job_id: int, status: str, submitted: str, completed: str | None = None) -> dict[str, Any]:
    j: dict[str, Any] = {
        "jobId": job_id,
        "name": 'Spark Connect - session_id: "..."',
        "submissionTime": submitted,
        "stageIds": [0],
        "jobTags": [],
        "status": status,
        "numTasks": 2,
        "numActiveTasks": 0,
    }
    if completed:
        j["completionTime"] = completed
    return j


def test_spark_with_nothing_ever_done() -> None:
    a = spark_activity_from([], [], [])
    assert a == Activity(
        last_activity=None,
        busy=False,
        detail="0 open sessions, 0 running operations, 0 running jobs, no activity recorded",
    )


def test_spark_open_session_without_operations_is_idle_since_it_opened() -> None:
    a = spark_activity_from([], [session("2026-11-25T23:04:23.571")], [])
    assert not a.busy
    assert a.last_activity == at("2026-11-25T23:04:23.571")
    assert a.detail.startswith("1 open session, 0 running operations")


def test_spark_session_finish_is_not_activity() -> None:
    # The server expires idle sessions by itself; that must not keep the session awake.
    a = spark_activity_from([], [session("2026-11-25T23:04:23.571", finish="2026-11-26T00:04:23")], [])
    assert a.last_activity == at("2026-11-25T23:04:23.571")
    assert a.detail.startswith("0 open sessions")


def test_spark_last_activity_is_newest_operation_timestamp() -> None:
    ops = [
        operation("CLOSED", "2026-11-25T23:04:23.895", "2026-11-25T23:04:26.456", "2026-11-25T23:04:26.511"),
        operation("FINISHED", "2026-11-25T23:04:27", "2026-11-25T23:04:28.25"),
    ]
    a = spark_activity_from([], [session("2026-11-25T23:04:23.571")], ops)
    assert not a.busy
    assert a.last_activity == at("2026-11-25T23:04:28.25")
    assert a.detail.endswith("last activity 2026-11-25T23:04:28Z")


@pytest.mark.parametrize("state", ["STARTED", "COMPILED", "READY"])
def test_spark_unfinished_operation_is_busy(state: str) -> None:
    a = spark_activity_from([], [session("2026-11-25T23:04:23.571")], [operation(state, "2026-11-25T23:04:27")])
    assert a.busy
    assert a.last_activity == at("2026-11-25T23:04:27")
    assert "1 running operation," in a.detail


@pytest.mark.parametrize("state", ["FINISHED", "CANCELED", "FAILED", "CLOSED"])
def test_spark_finished_operation_is_not_busy(state: str) -> None:
    op = operation(state, "2026-11-25T23:04:27", "2026-11-25T23:04:28", "2026-11-25T23:04:28.1")
    assert not spark_activity_from([], [], [op]).busy


def test_spark_running_job_is_busy() -> None:
    jobs = [job(2, "RUNNING", "2026-11-25T23:04:29.259GMT")]
    a = spark_activity_from(jobs, [], [])
    assert a.busy
    assert a.last_activity == at("2026-11-25T23:04:29.259")
    assert "1 running job" in a.detail


def test_spark_without_connect_endpoints_uses_jobs_only() -> None:
    jobs = [
        job(1, "SUCCEEDED", "2026-11-25T23:04:26.259GMT", "2026-11-25T23:04:26.455GMT"),
        job(0, "FAILED", "2026-11-25T23:04:25.680GMT", "2026-11-25T23:04:26.158GMT"),
    ]
    a = spark_activity_from(jobs, None, None)
    assert not a.busy
    assert a.last_activity == at("2026-11-25T23:04:26.455")
    assert a.detail == "0 running jobs, no Spark Connect data, last activity 2026-11-25T23:04:26Z"


@pytest.mark.parametrize(
    "jobs, sessions, operations",
    [
        ([job(0, "RUNNING", "2026-11-25 23:04")], [], []),
        ([], [{"sessionId": "x", "startTimestamp": "soon"}], []),
        ([], [], [{"state": "STARTED", "startTimestamp": True}]),
        ([], "nope", []),
    ],
)
def test_spark_bad_answers_raise(jobs: Any, sessions: Any, operations: Any) -> None:
    with pytest.raises(ProbeError):
        spark_activity_from(jobs, sessions, operations)


# ---------------------------------------------------------------------------- idle_for

NOW = at("2026-11-25T12:00:00")


def activity(last: datetime | None, busy: bool = False) -> Activity:
    return Activity(last_activity=last, busy=busy, detail="")


def test_busy_is_never_idle() -> None:
    assert idle_for(activity(NOW - timedelta(days=3), busy=True), now=NOW, started=None) == timedelta(0)


def test_idle_since_last_activity() -> None:
    a = activity(NOW - timedelta(minutes=42))
    assert idle_for(a, now=NOW, started=NOW - timedelta(hours=5)) == timedelta(minutes=42)


def test_just_woken_server_counts_from_started() -> None:
    # Old activity from before a suspend; the pod only just became ready again.
    a = activity(NOW - timedelta(days=2))
    assert idle_for(a, now=NOW, started=NOW - timedelta(minutes=3)) == timedelta(minutes=3)


def test_no_activity_counts_from_started() -> None:
    assert idle_for(activity(None), now=NOW, started=NOW - timedelta(minutes=7)) == timedelta(minutes=7)


def test_nothing_known_is_not_idle() -> None:
    assert idle_for(activity(None), now=NOW, started=None) == timedelta(0)


def test_clock_skew_never_gives_negative_idle() -> None:
    assert idle_for(activity(NOW + timedelta(seconds=30)), now=NOW, started=None) == timedelta(0)
