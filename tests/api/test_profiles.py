"""Server types: the chart's NotebookProfiles, a NotebookServer made from one, overrides within
bounds, and a changed profile that waits for the server's next start. The real operator process
against the API emulator; the test plays kube-controller-manager and the kubelet."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import yaml

from tests.api.conftest import ROOT, condition, kubelet_runs, operator_writes, settle, statefulset_controller, wait_for

GROUP = "sparkbook.io/v1alpha1"
CHART_PROFILES = ["spark-dynamic", "spark-static", "experiment", "parallel-experiment", "distributed-training"]


def chart_profiles() -> list[dict[str, Any]]:
    """The NotebookProfiles of manifests/profiles.yaml (the chart rendered with its default values)."""
    docs = yaml.safe_load_all((ROOT / "manifests" / "profiles.yaml").read_text())
    return [d for d in docs if d and d.get("kind") == "NotebookProfile"]


@pytest.fixture(scope="module")
def profiles(emulator, operator):
    for doc in chart_profiles():
        emulator.create(doc)
    return [d["metadata"]["name"] for d in chart_profiles()]


def nb(emulator, namespace: str, name: str) -> dict[str, Any]:
    return emulator.get(GROUP, "notebookservers", namespace, name) or {}


def session(emulator, namespace: str, name: str) -> dict[str, Any]:
    return emulator.get(GROUP, "sparksessions", namespace, name) or {}


def profile(emulator, name: str) -> dict[str, Any]:
    return emulator.get(GROUP, "notebookprofiles", None, name) or {}


def user_yaml(namespace: str, name: str = "dana", **spec: Any) -> str:
    doc = yaml.safe_load((ROOT / "examples" / "notebookserver-profile.yaml").read_text())
    doc["metadata"].update(name=name, namespace=namespace)
    if spec:
        doc["spec"] = spec
    return yaml.safe_dump(doc)


def test_kubectl_lists_the_charts_five_profiles_valid(emulator, operator, profiles, kubectl):
    assert sorted(profiles) == sorted(CHART_PROFILES)
    for name in profiles:
        wait_for(lambda: condition(profile(emulator, name), "Valid").get("status") == "True", what=f"{name} Valid")
    rows = [line.split() for line in kubectl("get", "notebookprofiles").stdout.splitlines()]
    assert rows[0] == ["NAME", "DISPLAY", "NAME", "DEFAULT", "VALID", "SERVERS", "AGE"]
    assert sorted(r[0] for r in rows[1:]) == sorted(CHART_PROFILES)
    assert next(r for r in rows if r[0] == "spark-dynamic")[1:5] == ["Spark", "(Dynamic)", "true", "True"]


def test_a_server_naming_only_the_profile_gets_its_children(emulator, operator, profiles, kubectl, namespace):
    kubectl("apply", "-f", "-", input=user_yaml(namespace, "erin", profile="spark-static"))
    owned = wait_for(lambda: session(emulator, namespace, "erin-spark"), what="the profile's SparkSession")
    assert owned["spec"]["dynamicAllocation"]["enabled"] is False
    assert (owned["spec"]["executor"]["instances"], owned["spec"]["executor"]["memory"]) == (2, "4g")
    sts = wait_for(lambda: emulator.get("apps/v1", "statefulsets", namespace, "erin"), what="StatefulSet")
    assert sts["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "1", "memory": "4Gi"}
    # The stored object is what the user wrote: no defaults filled in by the API server.
    assert nb(emulator, namespace, "erin")["spec"] == {"profile": "spark-static"}
    status = wait_for(lambda: nb(emulator, namespace, "erin").get("status", {}).get("profile"), what="status.profile")
    assert status["name"] == "spark-static" and status["spec"]["displayName"] == "Spark (Static)"
    assert condition(nb(emulator, namespace, "erin"), "PendingRestart")["status"] == "False"
    wait_for(lambda: profile(emulator, "spark-static").get("status", {}).get("notebookServers") == 1,
             what="the profile counts its server")


def test_overrides_within_bounds_apply_and_beyond_them_are_refused_naming_the_field(
        emulator, operator, profiles, kubectl, namespace):
    kubectl("apply", "-f", "-", input=user_yaml(namespace))  # examples/notebookserver-profile.yaml
    owned = wait_for(lambda: session(emulator, namespace, "dana-spark"), what="SparkSession")
    assert owned["spec"]["executor"]["memory"] == "4g"
    assert owned["spec"]["dynamicAllocation"]["maxExecutors"] == 16
    assert owned["spec"]["dynamicAllocation"]["minExecutors"] == 0  # from the profile
    kubectl("patch", "nbs", "dana", "-n", namespace, "--type=merge",
            "-p", '{"spec": {"spark": {"session": {"executor": {"memory": "32g"}}}}}')
    stalled = wait_for(lambda: condition(nb(emulator, namespace, "dana"), "Stalled").get("status") == "True"
                       and condition(nb(emulator, namespace, "dana"), "Stalled"), what="Stalled")
    assert stalled["reason"] == "ProfileRefused"
    assert "spec.spark.session.executor.memory: 32g is more than NotebookProfile spark-dynamic allows (at most 16g)" \
        in stalled["message"]
    events = wait_for(lambda: [e for e in emulator.list("v1", "events", namespace)
                               if e["involvedObject"]["name"] == "dana" and "at most 16g" in e["message"]],
                      what="an Event saying why")
    assert events[0]["type"] == "Warning"
    assert session(emulator, namespace, "dana-spark")["spec"]["executor"]["memory"] == "4g"  # untouched
    # A field the profile does not list.
    kubectl("patch", "nbs", "dana", "-n", namespace, "--type=merge",
            "-p", '{"spec": {"image": "mine:1", "spark": {"session": {"executor": {"memory": "8g"}}}}}')
    wait_for(lambda: "spec.image: NotebookProfile spark-dynamic does not let a user set this"
             in condition(nb(emulator, namespace, "dana"), "Stalled").get("message", ""), what="image refused")
    kubectl("patch", "nbs", "dana", "-n", namespace, "--type=json", "-p", '[{"op": "remove", "path": "/spec/image"}]')
    wait_for(lambda: session(emulator, namespace, "dana-spark")["spec"]["executor"]["memory"] == "8g",
             what="recovered with the new memory")
    wait_for(lambda: condition(nb(emulator, namespace, "dana"), "Stalled").get("status") == "False",
             what="no longer Stalled")


def test_a_changed_profile_waits_for_the_next_start_and_never_restarts_a_running_server(
        emulator, operator, profiles, kubectl, namespace):
    name = f"team-{uuid.uuid4().hex[:6]}"
    mine = {"apiVersion": GROUP, "kind": "NotebookProfile", "metadata": {"name": name},
            "spec": {"displayName": "Team", "notebook": {"resources": {"requests": {"cpu": "1", "memory": "2Gi"},
                                                                       "limits": {"memory": "2Gi"}}},
                     "spark": {"executor": {"memory": "2g"}}}}
    kubectl("apply", "-f", "-", input=user_yaml(namespace, "fay", profile=name))
    wait_for(lambda: condition(nb(emulator, namespace, "fay"), "Stalled").get("reason") == "ProfileNotFound",
             what="ProfileNotFound")
    kubectl("apply", "-f", "-", input=yaml.safe_dump(mine))
    wait_for(lambda: statefulset_controller(emulator, namespace, "fay"), what="the notebook's pod")
    kubelet_runs(emulator, namespace, "fay-0")
    wait_for(lambda: nb(emulator, namespace, "fay").get("status", {}).get("phase") == "Running", what="Running")
    sts_before = emulator.get("apps/v1", "statefulsets", namespace, "fay")
    session_before = session(emulator, namespace, "fay-spark")

    mine["spec"]["notebook"]["resources"]["limits"]["memory"] = "3Gi"
    mine["spec"]["spark"]["executor"]["memory"] = "3g"
    kubectl("apply", "-f", "-", input=yaml.safe_dump(mine))
    pending = wait_for(lambda: condition(nb(emulator, namespace, "fay"), "PendingRestart").get("status") == "True"
                       and condition(nb(emulator, namespace, "fay"), "PendingRestart"), what="PendingRestart")
    assert pending["reason"] == "ProfileChanged" and "generation 1 -> 2" in pending["message"]
    settle(lambda: len(operator_writes(emulator, namespace)), quiet=1.5)
    sts_after = emulator.get("apps/v1", "statefulsets", namespace, "fay")
    assert sts_after["metadata"]["resourceVersion"] == sts_before["metadata"]["resourceVersion"]
    assert session(emulator, namespace, "fay-spark")["metadata"]["resourceVersion"] == \
        session_before["metadata"]["resourceVersion"]
    # Idempotent: a pass with nothing new writes nothing.
    writes = len(operator_writes(emulator, namespace))
    kubectl("annotate", "nbs", "fay", "-n", namespace, "poke=1")
    assert settle(lambda: len(operator_writes(emulator, namespace)), quiet=1.5) == writes

    # Suspend and resume: the server starts with the profile as it is now.
    kubectl("patch", "nbs", "fay", "-n", namespace, "--type=merge", "-p", '{"spec": {"suspend": true}}')
    wait_for(lambda: nb(emulator, namespace, "fay").get("status", {}).get("phase") == "Suspended", what="Suspended")
    kubectl("patch", "nbs", "fay", "-n", namespace, "--type=merge", "-p", '{"spec": {"suspend": false}}')
    wait_for(lambda: session(emulator, namespace, "fay-spark")["spec"]["executor"]["memory"] == "3g",
             what="the session made with the new profile")
    sts = emulator.get("apps/v1", "statefulsets", namespace, "fay")
    assert sts["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"] == "3Gi"
    wait_for(lambda: condition(nb(emulator, namespace, "fay"), "PendingRestart").get("status") == "False",
             what="nothing pending")
    assert nb(emulator, namespace, "fay")["status"]["profile"]["generation"] == 2


def test_an_invalid_profile_says_why_and_its_servers_stall(emulator, operator, profiles, kubectl, namespace):
    name = f"bad-{uuid.uuid4().hex[:6]}"
    kubectl("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": GROUP, "kind": "NotebookProfile", "metadata": {"name": name},
        "spec": {"displayName": "Bad", "overrides": [{"field": "spark.session.executor.memroy", "max": "16g"}]}}))
    valid = wait_for(lambda: condition(profile(emulator, name), "Valid").get("status") == "False"
                     and condition(profile(emulator, name), "Valid"), what="Valid False")
    assert "'spark.session.executor.memroy' is not a NotebookServer spec field" in valid["message"]
    # The schema refuses what it can without the operator: a bound that is no value at all.
    bad = kubectl("apply", "-f", "-", check=False, input=yaml.safe_dump({
        "apiVersion": GROUP, "kind": "NotebookProfile", "metadata": {"name": name + "-x"},
        "spec": {"overrides": [{"field": "storage.size"}]}}))
    assert bad.returncode != 0 and "displayName" in bad.stderr
