"""Which resources a watch event sends back to the queue (handlers.route)."""

from __future__ import annotations

from typing import Any

from sparkbook import names
from sparkbook.recent import RecentWrites


class Recorder:
    """The Controller's routing surface, recording what would be queued."""

    def __init__(self, notebooks_of_session: list[str] | None = None) -> None:
        self.recent = RecentWrites()
        self.queued: list[tuple[str, str, str]] = []
        self.notebooks = notebooks_of_session or []

    def enqueue(self, kind: str, namespace: str, name: str) -> None:
        self.queued.append((kind, namespace, name))

    def session_changed(self, namespace: str, session: str, *, itself: bool = True) -> None:
        if itself:
            self.enqueue("SparkSession", namespace, session)
        for nb in self.notebooks:
            self.enqueue("NotebookServer", namespace, nb)

    def profile_changed(self, profile: str, *, itself: bool = True) -> None:
        if itself:
            self.enqueue("NotebookProfile", "", profile)

    def executors_changed(self, namespace: str, session: str) -> None:
        self.enqueue("executors", namespace, session)

    def child_deleted(self, child: dict[str, Any]) -> None:
        pass


def route(controller: Recorder, *change: Any) -> None:
    from sparkbook.handlers import route as real_route

    real_route(controller, *change)  # type: ignore[arg-type]


def child(kind: str, rv: int, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind,
            "metadata": {"name": "analytics-ui", "namespace": "ns", "resourceVersion": str(rv), "labels": labels}}


def test_a_session_child_change_queues_the_session_not_its_notebooks():
    c = Recorder(notebooks_of_session=["alice"])
    route(c, "MODIFIED", "Service", child("Service", 3, **{names.SESSION_LABEL: "analytics"}), None)
    assert c.queued == [("SparkSession", "ns", "analytics")]


def test_the_session_token_secret_concerns_its_notebooks():
    c = Recorder(notebooks_of_session=["alice"])
    route(c, "ADDED", "Secret", child("Secret", 3, **{names.SESSION_LABEL: "analytics"}), None)
    assert c.queued == [("SparkSession", "ns", "analytics"), ("NotebookServer", "ns", "alice")]


def test_the_echo_of_our_own_create_queues_nothing():
    c = Recorder(notebooks_of_session=["alice"])
    created = child("Service", 3, **{names.SESSION_LABEL: "analytics"})
    c.recent.wrote(created)
    route(c, "ADDED", "Service", created, None)
    assert c.queued == []
    # The next change is someone else's (the endpoints controller, a user): it counts.
    route(c, "MODIFIED", "Service", child("Service", 4, **{names.SESSION_LABEL: "analytics"}), created)
    assert c.queued == [("SparkSession", "ns", "analytics")]


def test_the_echo_of_a_session_status_write_still_reaches_its_notebooks():
    c = Recorder(notebooks_of_session=["alice"])
    session = {"apiVersion": names.API_VERSION, "kind": "SparkSession",
               "metadata": {"name": "analytics", "namespace": "ns", "resourceVersion": "9"}}
    c.recent.expect_echo(("SparkSession", "ns", "analytics"), session)
    route(c, "MODIFIED", "SparkSession", session, {**session, "metadata": {**session["metadata"], "resourceVersion": "8"}})
    assert c.queued == [("NotebookServer", "ns", "alice")]


def test_deletions_are_never_echoes():
    c = Recorder()
    gone = child("Service", 3, **{names.SESSION_LABEL: "analytics"})
    c.recent.wrote(gone)
    route(c, "DELETED", "Service", None, gone)
    assert c.queued == [("SparkSession", "ns", "analytics")]


def test_a_session_written_by_its_notebook_is_still_reconciled_itself():
    c = Recorder()
    owned = {"apiVersion": names.API_VERSION, "kind": "SparkSession",
             "metadata": {"name": "erin-spark", "namespace": "ns", "resourceVersion": "4",
                          "labels": {names.NOTEBOOK_LABEL: "erin"}}}
    c.recent.wrote(owned)  # the NotebookServer's create of the session it owns
    route(c, "ADDED", "SparkSession", owned, None)
    assert c.queued == [("SparkSession", "ns", "erin-spark"), ("NotebookServer", "ns", "erin")]
