"""RecentWrites: our own writes stand in for a lagging cache, and only until it catches up."""

from __future__ import annotations

from sparkbook.recent import RecentWrites


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def obj(rv: int, uid: str = "u1", **meta: object) -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "s", "namespace": "ns", "uid": uid, "resourceVersion": str(rv), **meta}}


KEY = ("Service", "ns", "s")


def test_a_created_object_shows_until_the_cache_has_it():
    clock = Clock()
    recent = RecentWrites(ttl=10, clock=clock)
    recent.wrote(obj(5))
    assert recent.view(KEY, None)["metadata"]["resourceVersion"] == "5"
    assert recent.view(KEY, obj(4))["metadata"]["resourceVersion"] == "5"  # the cache is behind
    assert recent.view(KEY, obj(6))["metadata"]["resourceVersion"] == "6"  # caught up: the cache wins
    assert len(recent) == 0


def test_memos_expire():
    clock = Clock()
    recent = RecentWrites(ttl=10, clock=clock)
    recent.wrote(obj(5))
    clock.now = 11
    assert recent.view(KEY, None) is None


def test_a_deleted_pod_is_terminating_until_the_cache_sees_it_go():
    clock = Clock()
    recent = RecentWrites(ttl=10, clock=clock)
    pod = {"kind": "Pod", "metadata": {"name": "s", "namespace": "ns", "uid": "old"}}
    recent.deleted(pod, "Service")
    assert recent.view(KEY, pod)["metadata"]["deletionTimestamp"]  # stale cache: still terminating
    new = {"metadata": {"name": "s", "namespace": "ns", "uid": "new"}}
    assert recent.view(KEY, new) is new  # a new object under the name: the cache wins
    assert recent.view(KEY, None) is None


def test_the_status_we_wrote_is_the_previous_one_until_the_cache_shows_it():
    clock = Clock()
    recent = RecentWrites(ttl=10, clock=clock)
    recent.wrote_status(KEY, {"phase": "Running"})
    assert recent.previous_status(KEY, {"phase": "Starting"}) == {"phase": "Running"}
    assert recent.previous_status(KEY, {"phase": "Running"}) == {"phase": "Running"}
    assert len(recent) == 0


def test_the_echo_of_our_own_write_is_recognised_once_and_only_by_its_resource_version():
    clock = Clock()
    recent = RecentWrites(ttl=10, clock=clock)
    recent.wrote(obj(5))
    assert not recent.is_echo("Service", obj(4))  # an older state, someone else's
    assert recent.is_echo("Service", obj(5))
    assert not recent.is_echo("Service", obj(5))  # once: a relist showing it again is a real event
    recent.wrote(obj(7))
    assert not recent.is_echo("Service", obj(8))  # changed after our write
    assert not recent.is_echo("ConfigMap", {**obj(7), "kind": "ConfigMap"})  # another kind, another key
    recent.expect_echo(("SparkSession", "ns", "s"), obj(9))  # a status patch's answer
    assert recent.is_echo("SparkSession", obj(9))


def test_echoes_expire_and_unseen_ones_are_pruned():
    clock = Clock()
    recent = RecentWrites(ttl=10, clock=clock)
    recent.wrote(obj(5))
    clock.now = 11
    assert recent.is_echo("Service", obj(5))  # late, but the same state: still ours
    recent.wrote(obj(6))
    clock.now = 22
    assert not recent.is_echo("Service", obj(7)) and not recent.is_echo("Service", obj(6))  # expired memo dropped
    for i in range(3000):  # deleted before their echo arrived: never asked about
        recent.expect_echo(("Service", "ns", f"gone-{i}"), obj(i + 10))
        clock.now += 0.01
    assert ("Service", "ns", "gone-0") not in recent._echoes and len(recent._echoes) < 2100  # of 3,000


def test_a_watch_event_that_caught_up_ends_the_memo_even_without_a_pass():
    """An echo starts no pass, so the watch itself must retire the memo: else a deletion right
    after it would be hidden by the memo until it expired."""
    clock = Clock()
    recent = RecentWrites(ttl=10, clock=clock)
    recent.wrote(obj(5))
    recent.observed("Service", obj(4))  # an older state: the memo stays
    assert recent.view(KEY, None)["metadata"]["resourceVersion"] == "5"
    recent.observed("Service", obj(6))  # the deletion's last state (a later resourceVersion)
    assert recent.view(KEY, None) is None


def test_a_status_memo_ends_when_the_watch_shows_it_or_the_object_goes():
    clock = Clock()
    recent = RecentWrites(ttl=10, clock=clock)
    key = ("SparkSession", "ns", "s")
    recent.wrote_status(key, {"phase": "Pending"})
    recent.observed("SparkSession", {**obj(3), "status": {}})  # not yet: the memo still stands in
    assert recent.previous_status(key, {}) == {"phase": "Pending"}
    recent.observed("SparkSession", {**obj(4), "status": {"phase": "Pending"}})
    assert recent.previous_status(key, {}) == {}
    recent.wrote_status(key, {"phase": "Running"})
    recent.observed("SparkSession", obj(5), deleted=True)  # a new object of that name starts afresh
    assert recent.previous_status(key, {}) == {}
