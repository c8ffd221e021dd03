"""Idle culling against real servers: a real Jupyter server and a real Spark Connect server on
loopback addresses that play the pods' IPs, probed by the real operator process."""

from __future__ import annotations

import base64
import os
import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from sparkbook import names
from tests.api.conftest import ROOT, condition, event_seen, kubelet_runs, statefulset_controller, wait_for
from tests.jupyter_server import running_jupyter

pytestmark = pytest.mark.workload

GROUP = "sparkbook.io/v1alpha1"
# The notebook pod's IP (the operator probes <pod IP>:8888), distinct per test run on this machine.
NOTEBOOK_IP = f"127.8.{(os.getpid() >> 8) & 255}.{(os.getpid() & 255) or 1}"


def annotations(obj: dict[str, Any] | None) -> dict[str, str]:
    return (obj or {}).get("metadata", {}).get("annotations") or {}


def token_of(emulator, namespace: str, secret: str) -> str:
    obj = wait_for(lambda: emulator.get("v1", "secrets", namespace, secret), what=secret)
    return base64.b64decode(obj["data"]["token"]).decode()


def test_idle_notebook_is_culled_a_busy_kernel_prevents_it_and_waking_works(
    emulator, operator, kubectl, namespace, tmp_path: Path
):
    from jupyter_client import BlockingKernelClient

    doc = {
        "apiVersion": GROUP, "kind": "NotebookServer",
        "metadata": {"name": "erin", "namespace": namespace},
        "spec": {"idleCulling": {"enabled": True, "timeout": "4s"}},
    }
    kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))
    token = token_of(emulator, namespace, "erin-token")
    nb = lambda: emulator.get(GROUP, "notebookservers", namespace, "erin")  # noqa: E731
    with running_jupyter(host=NOTEBOOK_IP, port=names.NOTEBOOK_PORT, token=token, work=tmp_path) as jupyter:
        # A kernel runs a long cell: the server is busy for longer than its idle timeout.
        request = urllib.request.Request(f"{jupyter.url}/api/kernels", data=json.dumps({"name": "python3"}).encode(),
                                         headers={**jupyter.auth, "Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=30) as resp:
            kernel_id = json.load(resp)["id"]
        client = BlockingKernelClient()
        client.load_connection_file(str(jupyter.runtime_dir / f"kernel-{kernel_id}.json"))
        client.start_channels()
        try:
            client.wait_for_ready(timeout=30)
            msg_id = client.execute("import time; time.sleep(9)")
            wait_for(lambda: statefulset_controller(emulator, namespace, "erin"), what="pod")
            kubelet_runs(emulator, namespace, "erin-0", ip=NOTEBOOK_IP)
            wait_for(lambda: (nb().get("status") or {}).get("phase") == "Running", what="Running")
            time.sleep(6.5)
            assert names.CULLED_AT not in annotations(nb()), "culled while a kernel was busy"
            reply = client.get_shell_msg(timeout=20)
            assert reply["parent_header"]["msg_id"] == msg_id
        finally:
            client.stop_channels()

        # Now nothing runs: after the timeout the server is culled, with an Event saying why.
        culled_at = wait_for(lambda: annotations(nb()).get(names.CULLED_AT), timeout=20, what="culled")
        assert emulator.get("apps/v1", "statefulsets", namespace, "erin")["spec"]["replicas"] == 0 or wait_for(
            lambda: emulator.get("apps/v1", "statefulsets", namespace, "erin")["spec"]["replicas"] == 0, what="zero")
        wait_for(lambda: statefulset_controller(emulator, namespace, "erin") is None, what="pod gone")
        status = wait_for(lambda: (nb().get("status") or {}).get("phase") == "Culled" and nb()["status"], what="Culled")
        assert status["culledAt"] == culled_at and status.get("lastActivityTime")
        assert emulator.get("v1", "persistentvolumeclaims", namespace, "erin-home") is not None
        event_seen(emulator, namespace, lambda e: e["reason"] == "Culled" and "idleCulling.timeout 4s" in e["message"])
        # The user's spec is untouched (GitOps tools would fight a controller that rewrote it).
        assert nb()["metadata"]["generation"] == 1 and not nb()["spec"].get("suspend")

        # Waking: the user removes the annotation; the server comes back and gets a full timeout.
        kubectl("annotate", "notebookserver", "erin", "-n", namespace, f"{names.CULLED_AT}-")
        wait_for(lambda: emulator.get("apps/v1", "statefulsets", namespace, "erin")["spec"]["replicas"] == 1,
                 what="scaled up")
        wait_for(lambda: statefulset_controller(emulator, namespace, "erin"), what="pod back")
        kubelet_runs(emulator, namespace, "erin-0", ip=NOTEBOOK_IP)
        woke = time.monotonic()
        wait_for(lambda: (nb().get("status") or {}).get("phase") == "Running", what="Running again")
        time.sleep(max(0.0, 2.5 - (time.monotonic() - woke)))
        assert names.CULLED_AT not in annotations(nb()), "culled again before a full timeout after waking"
        wait_for(lambda: annotations(nb()).get(names.CULLED_AT), timeout=20, what="culled again when idle")


def test_idle_session_is_suspended_and_its_notebooks_say_so(
    emulator, operator, kubectl, namespace, spark_connect_server
):
    from pyspark.sql import SparkSession

    session = yaml.safe_load((ROOT / "examples" / "sparksession.yaml").read_text())
    session["metadata"]["namespace"] = namespace
    session["spec"]["idleTimeout"] = "5s"
    kubectl("apply", "-f", "-", input=yaml.safe_dump(session))
    notebook = yaml.safe_load((ROOT / "examples" / "notebookserver-shared.yaml").read_text())
    notebook["metadata"]["namespace"] = namespace
    kubectl("apply", "-f", "-", input=yaml.safe_dump(notebook))
    wait_for(lambda: emulator.get("v1", "pods", namespace, "analytics-driver"), what="driver")
    # The real Spark Connect server plays the driver pod: its address is the pod's IP.
    kubelet_runs(emulator, namespace, "analytics-driver", ip=spark_connect_server.host)
    get = lambda: emulator.get(GROUP, "sparksessions", namespace, "analytics")  # noqa: E731
    wait_for(lambda: (get().get("status") or {}).get("phase") == "Running", what="Running")

    spark = SparkSession.builder.remote(spark_connect_server.token_url).create()
    try:
        result: dict[str, Any] = {}

        def long_query() -> None:
            result["sum"] = spark.range(0, 7_000_000_000).selectExpr("sum(id % 10) AS s").collect()[0]["s"]

        worker = threading.Thread(target=long_query)
        started = time.monotonic()
        worker.start()
        worker.join(timeout=120)
        elapsed = time.monotonic() - started
        assert result["sum"] == 31_500_000_000
        if elapsed > 6.5:  # the query outlasted the idle timeout: running work kept the session
            assert names.IDLE_SUSPENDED_AT not in annotations(get())
    finally:
        spark.stop()

    stamp = wait_for(lambda: annotations(get()).get(names.IDLE_SUSPENDED_AT), timeout=30, what="idle-suspended")
    wait_for(lambda: emulator.get("v1", "pods", namespace, "analytics-driver") is None, what="driver stopped")
    status = wait_for(lambda: (get().get("status") or {}).get("phase") == "Idle" and get()["status"], what="Idle")
    assert stamp in condition(get(), "Ready")["message"]
    assert status.get("lastActivityTime")
    assert get()["spec"].get("suspend") is False and get()["metadata"]["generation"] == 1  # spec untouched
    event_seen(emulator, namespace, lambda e: e["reason"] == "IdleSuspended")
    spark_ready = wait_for(lambda: condition(emulator.get(GROUP, "notebookservers", namespace, "bob"), "SparkReady")
                           .get("reason") == "SessionIdle"
                           and condition(emulator.get(GROUP, "notebookservers", namespace, "bob"), "SparkReady"),
                           what="notebook says the session is idle")
    assert f"{names.IDLE_SUSPENDED_AT}-" in spark_ready["message"]

    kubectl("annotate", "sparksession", "analytics", "-n", namespace, f"{names.IDLE_SUSPENDED_AT}-")
    wait_for(lambda: emulator.get("v1", "pods", namespace, "analytics-driver"), what="driver back")


def test_a_profiles_culling_timeout_culls_the_servers_made_from_it(emulator, operator, kubectl, namespace,
                                                                    tmp_path: Path):
    """The idle check reads the effective spec: the timeout comes from the profile, not the
    operator's default of an hour."""
    profile = f"quick-{namespace}"
    kubectl("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": GROUP, "kind": "NotebookProfile", "metadata": {"name": profile},
        "spec": {"displayName": "Quick", "notebook": {"idleCulling": {"enabled": True, "timeout": "3s"}}}}))
    kubectl("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": GROUP, "kind": "NotebookServer", "metadata": {"name": "hal", "namespace": namespace},
        "spec": {"profile": profile}}))
    token = token_of(emulator, namespace, "hal-token")
    nb = lambda: emulator.get(GROUP, "notebookservers", namespace, "hal")  # noqa: E731
    ip = NOTEBOOK_IP.rsplit(".", 1)[0] + "." + str((int(NOTEBOOK_IP.rsplit(".", 1)[1]) % 250) + 2)
    with running_jupyter(host=ip, port=names.NOTEBOOK_PORT, token=token, work=tmp_path):
        wait_for(lambda: statefulset_controller(emulator, namespace, "hal"), what="pod")
        kubelet_runs(emulator, namespace, "hal-0", ip=ip)
        wait_for(lambda: annotations(nb()).get(names.CULLED_AT), timeout=30, what="culled after the profile's 3s")
    event_seen(emulator, namespace, lambda e: e["reason"] == "Culled" and "idleCulling.timeout 3s" in e["message"])
    assert nb()["spec"] == {"profile": profile}  # culling marks, never rewrites
