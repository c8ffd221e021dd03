"""Event logs and History Server links, against the real operator process and the API emulator.

The operator runs with the chart's eventLog/historyServer settings (its environment); the test
plays the kubelet. What must hold: the driver writes its event log where the settings say, each
driver is an application with a History Server page in the session's status, ended applications
stay listed, and a notebook's Spark UI link turns into the History Server's page when the driver
is gone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sparkbook import names
from tests.api.conftest import Operator, kubelet_runs, operator_writes, settle, wait_for
from tests.api.test_sparksession import example_in, session

HS = "http://sparkbook-history.sparkbook-system.svc:18080"
NOTEBOOK = ("sparkbook.io/v1alpha1", "notebookservers")


@pytest.fixture(scope="module")
def operator(kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    op = Operator(kubeconfig, tmp_path_factory.mktemp("operator") / "operator.log", env={
        "SPARKBOOK_EVENT_LOG_ENABLED": "true",
        "SPARKBOOK_EVENT_LOG_PVC": "spark-events",
        "SPARKBOOK_HISTORY_SERVER_URL": HS,
    }).start()
    try:
        yield op
    finally:
        op.stop()


def _driver(emulator, namespace: str) -> dict:
    return wait_for(lambda: emulator.get("v1", "pods", namespace, "analytics-driver"), what="driver pod")


def test_the_operator_default_puts_every_driver_event_log_on_the_shared_claim(emulator, operator, kubectl, namespace):
    kubectl("apply", "-f", "-", input=example_in(namespace))
    pod = _driver(emulator, namespace)
    command = pod["spec"]["containers"][0]["command"]
    assert "--conf" in command and "spark.eventLog.dir=file:///spark-events" in command
    assert f"spark.app.id=spark-$({names.DRIVER_UID_ENV})" in command
    assert {"name": "event-log", "persistentVolumeClaim": {"claimName": "spark-events"}} in pod["spec"]["volumes"]
    kubelet_runs(emulator, namespace, "analytics-driver")
    app = names.application_id(pod["metadata"]["uid"])
    status = wait_for(lambda: (s := session(emulator, namespace)["status"])["phase"] == "Running"
                      and s.get("applications") and s, what="Running with an application")
    assert status["applicationId"] == app
    assert status["applications"] == [{"id": app, "startTime": status["driver"]["startTime"],
                                       "historyURL": f"{HS}/history/{app}/jobs/"}]
    assert status["endpoints"]["history"] == f"{HS}/history/{app}/jobs/"
    # Running and reconciled: another pass writes nothing.
    settle(lambda: len(operator_writes(emulator, namespace)))
    before = len(operator_writes(emulator, namespace))
    kubectl("annotate", "sparksession", "analytics", "-n", namespace, "touch=1")
    settle(lambda: len(operator_writes(emulator, namespace)))
    assert len(operator_writes(emulator, namespace)) == before


def test_suspended_and_replaced_drivers_stay_browsable(emulator, operator, kubectl, namespace):
    notebook = {"apiVersion": "sparkbook.io/v1alpha1", "kind": "NotebookServer",
                "metadata": {"name": "bob", "namespace": namespace},
                "spec": {"spark": {"sessionRef": {"name": "analytics"}}}}
    kubectl("apply", "-f", "-", input=example_in(namespace) + "---\n" + yaml.safe_dump(notebook))
    first = _driver(emulator, namespace)
    kubelet_runs(emulator, namespace, "analytics-driver")
    app1 = names.application_id(first["metadata"]["uid"])
    page1 = f"{HS}/history/{app1}/jobs/"
    wait_for(lambda: session(emulator, namespace)["status"]["phase"] == "Running", what="Running")
    nb = wait_for(lambda: (n := emulator.get(*NOTEBOOK, namespace, "bob")) and (n.get("status") or {}).get(
        "sparkHistory") and n["status"], what="notebook status with the History Server")
    assert nb["sparkUI"] == f"http://analytics-ui.{namespace}.svc:4040"  # live while the driver runs
    assert nb["sparkHistory"] == page1

    kubectl("patch", "sparksession", "analytics", "-n", namespace, "--type=merge", "-p", '{"spec": {"suspend": true}}')
    status = wait_for(lambda: (s := session(emulator, namespace)["status"])["phase"] == "Suspended"
                      and s["applications"][0].get("endTime") and s, what="the application ended")
    assert [a["id"] for a in status["applications"]] == [app1]
    assert status["endpoints"]["history"] == page1
    nb = wait_for(lambda: (n := emulator.get(*NOTEBOOK, namespace, "bob")["status"])["sparkUI"] == page1 and n,
                  what="the notebook's Spark UI link on the History Server")

    kubectl("patch", "sparksession", "analytics", "-n", namespace, "--type=merge", "-p", '{"spec": {"suspend": false}}')
    second = wait_for(lambda: (p := emulator.get("v1", "pods", namespace, "analytics-driver"))
                      and p["metadata"]["uid"] != first["metadata"]["uid"] and p, what="a new driver")
    kubelet_runs(emulator, namespace, "analytics-driver")
    app2 = names.application_id(second["metadata"]["uid"])
    status = wait_for(lambda: (s := session(emulator, namespace)["status"])["phase"] == "Running"
                      and s["applications"][0]["id"] == app2 and s, what="the second application")
    assert [a["id"] for a in status["applications"]] == [app2, app1]
    assert status["applications"][1]["endTime"] and "endTime" not in status["applications"][0]
    wait_for(lambda: emulator.get(*NOTEBOOK, namespace, "bob")["status"]["sparkUI"]
             == f"http://analytics-ui.{namespace}.svc:4040", what="the live UI again")


def test_a_session_can_turn_the_default_off(emulator, operator, kubectl, namespace):
    kubectl("apply", "-f", "-", input=example_in(namespace, eventLog={"enabled": False}))
    pod = _driver(emulator, namespace)
    assert not any("spark.eventLog" in arg for arg in pod["spec"]["containers"][0]["command"])
    assert names.EVENT_LOG_LABEL not in pod["metadata"]["labels"]
