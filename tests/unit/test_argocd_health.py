"""The Argo CD health checks (argocd/resource_customizations/sparkbook.io/*/health.lua), run in a
real Lua 5.1 over their health_test.yaml (Argo CD's own format) and over the statuses the
operator's status functions write."""

from __future__ import annotations

import itertools
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from sparkbook.status import WAITING_PROBLEMS
from tests import argocd_scenarios as sc

CASES = [
    (kind, case)
    for kind in sc.KINDS
    for case in yaml.safe_load((sc.CUSTOMIZATIONS / kind / "health_test.yaml").read_text())["tests"]
]


@pytest.fixture(scope="module", autouse=True)
def lua() -> None:
    if shutil.which(sc.LUA) is None:
        pytest.fail(
            f"{sc.LUA} (Lua 5.1, the dialect of Argo CD's health checks) is not on PATH: run scripts/ensure-lua.sh "
            "(`make venv` does) or `apt-get install lua5.1`",
            pytrace=False,
        )


def health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    return sc.run_health(sc.health_script(kind), obj)


@pytest.mark.parametrize(("kind", "case"), CASES, ids=[f"{k}-{Path(c['inputPath']).stem}" for k, c in CASES])
def test_health_test_yaml(kind: str, case: dict[str, Any]) -> None:
    """Each case of health_test.yaml, as Argo CD's TestLuaHealthScript runs it."""
    obj = sc.load_yaml((sc.CUSTOMIZATIONS / kind / case["inputPath"]).read_text())
    assert health(kind, obj) == (case["healthStatus"]["status"], case["healthStatus"]["message"])


@pytest.mark.parametrize("kind", sc.KINDS)
def test_every_fixture_has_a_case_and_covers_every_health(kind: str) -> None:
    listed = {c["inputPath"] for k, c in CASES if k == kind}
    present = {f"testdata/{p.name}" for p in (sc.CUSTOMIZATIONS / kind / "testdata").glob("*.yaml")}
    assert listed == present
    assert {c["healthStatus"]["status"] for k, c in CASES if k == kind} >= {
        "Healthy", "Progressing", "Degraded", "Suspended"
    }


def test_fixtures_are_what_the_operator_writes_today() -> None:
    problems = sc.check()
    assert not problems, "\n".join(problems) + "\nregenerate: PYTHONPATH=operator python -m tests.argocd_scenarios"


@pytest.mark.parametrize("scenario", sc.SCENARIOS, ids=[f"{s.kind}-{s.name}" for s in sc.SCENARIOS])
def test_statuses_from_the_status_functions(scenario: sc.Scenario) -> None:
    assert health(scenario.kind, scenario.obj) == scenario.expected()


def _expected(obj: dict[str, Any], *, behind: bool, stalled: tuple[str, str] | None, stopped: bool,
              serving: Any = sc.ready_message) -> tuple[str, str]:
    """The documented mapping (docs/gitops.md), from what was observed rather than from the status."""
    generation = obj["metadata"]["generation"]
    if behind:
        observed = obj["status"]["observedGeneration"]
        return "Progressing", (
            f"Waiting for the Sparkbook operator to observe generation {generation} "
            f"(the status is of generation {observed})"
        )
    if stalled:
        return "Degraded", stalled[1]
    if stopped:
        return "Suspended", sc.ready_message(obj)
    ready = sc.cond(obj, "Ready")
    if ready["status"] == "False" and ready["reason"] in sc.pod_failure_reasons():
        return "Degraded", sc.ready_message(obj)
    if ready["status"] == "True":
        return "Healthy", serving(obj)
    return "Progressing", sc.ready_message(obj)


def test_every_session_status_maps_as_documented() -> None:
    drivers = {
        "none": None,
        "starting": sc.pod(sc.DRIVER, phase="Pending", ready=False),
        "ready": sc.RUNNING_DRIVER,
        "image_pull": sc.pod(sc.DRIVER, phase="Pending", ready=False, **sc.waiting("spark-connect", "ErrImagePull")),
        "oom": sc.pod(sc.DRIVER, ready=False, **sc.waiting("spark-connect", "CrashLoopBackOff",
                                                           last={"reason": "OOMKilled", "exitCode": 137})),
        "unschedulable": sc.pod(sc.DRIVER, phase="Pending", ready=False,
                                conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]),
        "terminating": {**sc.RUNNING_DRIVER, "metadata": {**sc.RUNNING_DRIVER["metadata"], "deletionTimestamp": sc.NOW}},
    }
    seen = set()
    for stalled, suspend, idle, driver, missing, behind, backoff in itertools.product(
        (None, sc.NAME_CONFLICT), (False, True), (None, "2025-12-31T22:00:00Z"), drivers,
        ([], ["Service analytics-ui"]), (False, True), (None, sc.BACKOFF),
    ):
        obj = sc.session(
            generation=4 if behind else 3, observed=3, stalled=stalled, suspend=suspend, idle_suspended_at=idle,
            driver=drivers[driver], missing=missing, waiting_backoff=backoff,
        )
        want = _expected(obj, behind=behind, stalled=stalled, stopped=suspend or bool(idle))
        got = health("SparkSession", obj)
        assert got == want, (stalled, suspend, idle, driver, missing, behind, backoff, obj["status"])
        seen.add(got[0])
    assert seen == {"Healthy", "Progressing", "Degraded", "Suspended"}


def test_every_notebook_status_maps_as_documented() -> None:
    pods = {
        "no_statefulset": (None, None),
        "no_pod": (sc.STATEFULSET, None),
        "starting": (sc.STATEFULSET, sc.pod("alice-0", phase="Pending", ready=False)),
        "ready": (sc.STATEFULSET, sc.NOTEBOOK_POD),
        "crash": (sc.STATEFULSET, sc.pod("alice-0", ready=False, **sc.waiting("notebook", "CrashLoopBackOff"))),
    }
    sessions = {
        "no_spark": {"session_name": None},
        "missing": {"session_name": "analytics", "session": None},
        "running": {"session_name": "analytics", "session": sc.RUNNING_SESSION},
        "starting": {"session_name": "analytics", "session": sc.STARTING_SESSION},
    }
    seen = set()
    for stalled, suspend, culled, which, missing, spark, behind in itertools.product(
        (None, sc.NB_CONFLICT), (False, True), (None, "2025-12-31T22:00:00Z"), pods, ([], ["Service alice"]),
        sessions, (False, True),
    ):
        statefulset, pod = pods[which]
        obj = sc.notebook(
            generation=3 if behind else 2, observed=2, stalled=stalled, suspend=suspend, culled_at=culled,
            statefulset=statefulset, pod=pod, missing=missing, **sessions[spark],
        )
        want = _expected(obj, behind=behind, stalled=stalled, stopped=suspend or bool(culled),
                         serving=sc.serving_message)
        got = health("NotebookServer", obj)
        assert got == want, (stalled, suspend, culled, which, missing, spark, behind, obj["status"])
        seen.add(got[0])
    assert seen == {"Healthy", "Progressing", "Degraded", "Suspended"}


def _obj(kind: str, status: dict[str, Any] | None, *, generation: int | None = 3, **spec: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "x", "namespace": "ns"}
    if generation is not None:
        metadata["generation"] = generation
    obj: dict[str, Any] = {"apiVersion": "sparkbook.io/v1alpha1", "kind": kind, "metadata": metadata, "spec": spec}
    if status is not None:
        obj["status"] = status
    return obj


def _c(type_: str, status: str, message: str = "", generation: int | None = 3, reason: str = "R") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message, "observedGeneration": generation}


def _failing_pods(name: str, container: str) -> list[dict[str, Any]]:
    """A pod for each way sparkbook.status.pod_problem finds one failing."""
    pods = [sc.pod(name, ready=False, **sc.waiting(container, reason, f"{reason} for a test"))
            for reason in sorted(WAITING_PROBLEMS)]
    pods += [
        sc.pod(name, ready=False, **sc.waiting(container, "CrashLoopBackOff", last={"reason": "OOMKilled"})),
        sc.pod(name, phase="Failed", ready=False, reason="Evicted", message="The node was low on resource: memory."),
        sc.pod(name, ready=False, containerStatuses=[{"name": container, "state": {"terminated": {"exitCode": 2}}}]),
        sc.pod(name, ready=False, containerStatuses=[
            {"name": container, "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]),
        sc.pod(name, phase="Failed", ready=False),
    ]
    return pods


def _lua_pod_failures(kind: str) -> set[str]:
    table = re.search(r"local pod_failures = \{(.*?)\n\}", sc.health_script(kind).read_text(), re.S)
    assert table, f"{kind}/health.lua has no pod_failures table"
    return set(re.findall(r"(\w+) = true", table.group(1)))


@pytest.mark.parametrize("kind", sc.KINDS)
def test_every_failing_pod_reason_is_degraded(kind: str) -> None:
    """Every Ready reason sparkbook.status gives a failing pod (WAITING_PROBLEMS and pod_problem's own
    reasons, read from status.py) is Degraded with Ready's message, as Argo CD's Pod check calls such a
    pod; the script lists exactly those, so neither side can gain or lose one unnoticed."""
    reasons = sc.pod_failure_reasons()
    assert {"CrashLoopBackOff", "ImagePullBackOff", "OOMKilled", "Evicted"} <= reasons  # the derivation works
    assert _lua_pod_failures(kind) == reasons
    for reason in sorted(reasons):
        status = {"phase": "Starting", "observedGeneration": 3,
                  "conditions": [_c("Ready", "False", f"the pod is {reason}", reason=reason)]}
        assert health(kind, _obj(kind, status)) == ("Degraded", f"the pod is {reason}"), reason
        # Still behind the spec: Progressing first, whatever the old status said.
        assert health(kind, _obj(kind, status, generation=4))[0] == "Progressing", reason
        status["conditions"][0]["message"] = ""
        assert health(kind, _obj(kind, status))[0] == "Degraded", reason
    # Starting, or not scheduled yet for a moment: not a failure.
    for reason in ("Unschedulable", "ContainerCreating", "DriverStarting", "DriverRestarting", "DriverNotCreated",
                   "ServerStarting", "PodPending", "Creating", "ChildrenMissing", "R"):
        status = {"phase": "Starting", "observedGeneration": 3, "conditions": [_c("Ready", "False", "wait", reason=reason)]}
        assert health(kind, _obj(kind, status)) == ("Progressing", "wait"), reason


def test_the_status_functions_give_failing_pods_exactly_those_reasons() -> None:
    """Through the real session_status/notebook_status: each way a pod fails puts one of
    pod_failure_reasons() on Ready, all of them are reached, and both scripts say Degraded."""
    for kind, pods, make in (
        ("SparkSession", _failing_pods(sc.DRIVER, "spark-connect"), lambda p: sc.session(driver=p)),
        ("NotebookServer", _failing_pods("alice-0", "notebook"),
         lambda p: sc.notebook(statefulset=sc.STATEFULSET, pod=p, session=sc.RUNNING_SESSION)),
    ):
        seen = set()
        for pod in pods:
            obj = make(pod)
            ready = sc.cond(obj, "Ready")
            assert ready["status"] == "False" and ready["reason"] in sc.pod_failure_reasons(), (kind, ready)
            assert health(kind, obj) == ("Degraded", ready["message"]), (kind, ready)
            seen.add(ready["reason"])
        assert seen == sc.pod_failure_reasons(), kind


@pytest.mark.parametrize("kind", sc.KINDS)
def test_statuses_the_functions_do_not_write(kind: str) -> None:
    """Hand-made statuses: an empty one (the CRD defaults phase to Pending), a partial or an old one."""
    waiting = f"Waiting for the Sparkbook operator to report the {kind}'s status"
    assert health(kind, _obj(kind, {"phase": "Pending"})) == ("Progressing", waiting)
    assert health(kind, _obj(kind, {"phase": "Running", "conditions": [], "observedGeneration": 3})) == (
        "Progressing", f"The {kind} is Running"
    )
    failed = {"phase": "Failed", "observedGeneration": 3, "conditions": [_c("Ready", "False", "the spec is invalid")]}
    assert health(kind, _obj(kind, failed)) == ("Degraded", "the spec is invalid")
    # Ready's own observedGeneration is behind although status.observedGeneration is not.
    stale = {"phase": "Running", "observedGeneration": 3, "conditions": [_c("Ready", "True", "ok", generation=2)]}
    assert health(kind, _obj(kind, stale)) == (
        "Progressing", "Waiting for the Sparkbook operator to observe generation 3 (the status is of generation 2)"
    )
    no_observed = {"phase": "Running", "conditions": [_c("Ready", "True", "ok", generation=None)]}
    assert health(kind, _obj(kind, no_observed)) == (
        "Progressing", "Waiting for the Sparkbook operator to observe generation 3"
    )
    # Without metadata.generation (never so from the API server) there is nothing to compare.
    assert health(kind, _obj(kind, no_observed, generation=None)) == ("Healthy", "ok")
    # spec.suspend counts even before the phase says so.
    starting = {"phase": "Starting", "observedGeneration": 3, "conditions": [_c("Ready", "False", "stopping")]}
    assert health(kind, _obj(kind, starting, suspend=True)) == ("Suspended", "stopping")


def test_messages_pass_through_byte_for_byte() -> None:
    message = 'quote " backslash \\ tab \t newline \n é ü 数据 \\065'
    status = {"phase": "Starting", "observedGeneration": 3, "conditions": [_c("Ready", "False", message)]}
    assert health("SparkSession", _obj("SparkSession", status)) == ("Progressing", message)


def test_the_harness_refuses_what_argo_cd_refuses(tmp_path: Path) -> None:
    bad = tmp_path / "health.lua"
    bad.write_text('return {status = "Fine", message = "not a health status"}\n')
    with pytest.raises(AssertionError, match="does not know"):
        sc.run_health(bad, {})
    bad.write_text('return {status = "Healthy", message = os.date()}\n')
    with pytest.raises(AssertionError, match="os"):
        sc.run_health(bad, {})


def test_lua_literal() -> None:
    assert sc.lua_literal({"a": [1, 2.5, True], "b": None, "c": {}}) == '{["a"] = {1, 2.5, true}, ["c"] = {}}'
    with pytest.raises(ValueError):
        sc.lua_literal([1, None])


def test_the_argocd_cm_snippet_is_generated_from_the_scripts() -> None:
    """argocd/argocd-cm-patch.yaml and its copy in docs/gitops.md hold every health.lua, unchanged."""
    from sparkbook import argocd

    problems = argocd.check(sc.ROOT)
    assert not problems, "\n".join(problems) + "\nregenerate: python -m sparkbook.argocd"
    patch = yaml.safe_load((sc.ROOT / argocd.PATCH).read_text())
    assert patch["metadata"]["name"] == "argocd-cm"
    assert patch["data"] == {
        f"resource.customizations.health.sparkbook.io_{kind}": sc.health_script(kind).read_text()
        for kind in sc.KINDS
    }
    doc = (sc.ROOT / argocd.DOC).read_text()
    block = doc.split(argocd.BEGIN, 1)[1].split(argocd.END, 1)[0].strip()
    assert yaml.safe_load(block.removeprefix("```yaml").removesuffix("```")) == patch


def test_the_snippet_generator_notices_drift(tmp_path: Path) -> None:
    from sparkbook import argocd

    for rel in (argocd.DOC, *(p.relative_to(sc.ROOT) for p in (sc.ROOT / argocd.CUSTOMIZATIONS).glob("*/*/health.lua"))):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text((sc.ROOT / rel).read_text())
    assert argocd.main(["--root", str(tmp_path)]) == 0
    assert argocd.check(tmp_path) == []
    script = tmp_path / argocd.CUSTOMIZATIONS / "sparkbook.io" / "SparkSession" / "health.lua"
    script.write_text(script.read_text() + "-- changed\n")
    assert argocd.check(tmp_path) == [
        "argocd/argocd-cm-patch.yaml: out of date with the health.lua files",
        "docs/gitops.md: out of date with the health.lua files",
    ]
