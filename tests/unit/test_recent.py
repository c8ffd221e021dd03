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
