"""Server types on the real control plane: the install's five NotebookProfiles, a NotebookServer
that names only its profile (the real API server stores just that: the CRD publishes no defaults
for it to fill in), an override beyond a bound refused naming the field, and the operator under
the install's RBAC reading the cluster-scoped profiles."""

from __future__ import annotations

import json

from tests.e2e.conftest import Kubectl, apply, condition, get, poll

CHART_PROFILES = ["distributed-training", "experiment", "parallel-experiment", "spark-dynamic", "spark-static"]


def test_the_installs_profiles_are_listed_and_valid(kubectl: Kubectl, operator) -> None:
    for name in CHART_PROFILES:
        poll(lambda: condition(get(kubectl, "notebookprofile", name), "Valid").get("status") == "True",
             timeout=60, what=f"NotebookProfile {name} Valid")
    rows = [line.split() for line in kubectl("get", "notebookprofiles").stdout.splitlines()]
    assert rows[0] == ["NAME", "DISPLAY", "NAME", "DEFAULT", "VALID", "SERVERS", "AGE"]
    assert [r[0] for r in rows[1:]] == CHART_PROFILES
    assert kubectl("get", "nbp", "spark-dynamic", "-o", "jsonpath={.spec.default}").stdout == "true"


def test_a_server_naming_only_its_profile_and_an_override_beyond_the_bound(
        kubectl: Kubectl, operator, namespace: str) -> None:
    apply(kubectl, {"apiVersion": "sparkbook.io/v1alpha1", "kind": "NotebookServer",
                    "metadata": {"name": "gus", "namespace": namespace}, "spec": {"profile": "spark-dynamic"}})
    stored = get(kubectl, "notebookserver", "gus", namespace)
    assert stored["spec"] == {"profile": "spark-dynamic"}
    session = poll(lambda: get(kubectl, "sparksession", "gus-spark", namespace), timeout=60,
                   what="the profile's SparkSession")
    assert session["spec"]["dynamicAllocation"]["enabled"] is True
    assert session["spec"]["dynamicAllocation"]["maxExecutors"] == 10
    sts = poll(lambda: get(kubectl, "statefulset", "gus", namespace), timeout=60, what="the StatefulSet")
    assert sts["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "1", "memory": "4Gi"}
    poll(lambda: (get(kubectl, "notebookprofile", "spark-dynamic").get("status") or {}).get("notebookServers", 0) >= 1,
         timeout=60, what="the profile counts the server")

    kubectl("patch", "notebookserver", "gus", "-n", namespace, "--type=merge",
            "-p", '{"spec": {"spark": {"session": {"dynamicAllocation": {"maxExecutors": 40}}}}}')
    stalled = poll(lambda: (c := condition(get(kubectl, "notebookserver", "gus", namespace), "Stalled"))
                   .get("status") == "True" and c, timeout=60, what="Stalled")
    assert stalled["reason"] == "ProfileRefused"
    assert ("spec.spark.session.dynamicAllocation.maxExecutors: 40 is more than NotebookProfile spark-dynamic "
            "allows (at most 20)") in stalled["message"]
    events = poll(lambda: [e for e in json.loads(kubectl("get", "events", "-n", namespace, "-o", "json").stdout)["items"]
                           if e["involvedObject"]["name"] == "gus" and "at most 20" in e["message"]],
                  timeout=30, what="a Warning Event naming the field")
    assert events[0]["type"] == "Warning"
    assert get(kubectl, "sparksession", "gus-spark", namespace)["spec"]["dynamicAllocation"]["maxExecutors"] == 10
    kubectl("delete", "notebookserver", "gus", "-n", namespace, "--wait=true", "--timeout=60s")
