"""A real JupyterHub spawning NotebookServers through the real operator on the API emulator.

A user logs in (Dummy authenticator), chooses a server type and Spark properties on the spawn
page; the NotebookServer appears with the effective spec; the test plays the StatefulSet
controller and the kubelet, with a real `jupyterhub-singleuser` as the container on the pod's IP;
the hub's proxy sends the user there (OAuth with the hub), and a kernel runs a Spark job against a
real Spark Connect server. Stopping suspends (same PVC), starting again resumes.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from sparkbook import names
from sparkbook.names import NotebookNames
from tests.api.conftest import condition, wait_for
from tests.jupyter_api import execute
from tests.jupyterhub_server import PlayedPod, ProgressReader, log_in, running_hub, secret_env, submit_spawn_form

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.workload, pytest.mark.timeout(600)]


@pytest.fixture
def profiles(kubectl: Any) -> None:
    kubectl("apply", "--server-side", "-f", str(ROOT / "manifests" / "profiles.yaml"))


def test_hub_user_spawns_runs_spark_stops_and_resumes(emulator, operator, kubectl, namespace, profiles,
                                                      spark_connect_server, tmp_path, kubeconfig) -> None:
    name = "jupyter-dana"
    n = NotebookNames(name)
    nb = lambda: emulator.get(names.API_VERSION, "notebookservers", namespace, name)  # noqa: E731
    pod_player = PlayedPod(emulator, namespace, name, tmp_path / "pod", spark_connect_server.token_url)
    pod_player.start()
    with running_hub(kubeconfig=kubeconfig, work=tmp_path / "hub", namespace=namespace) as hub:
        # The spawn page lists the profiles and what each lets a user set.
        browser = log_in(hub, "dana")
        page = browser.get(f"{hub.url}/hub/spawn", timeout=30).text
        for shown in ("Spark (Dynamic)", "Spark (Static)", "Experiment", "Parallel Experiment", "Distributed Training"):
            assert shown in page
        # A bound the profile sets is refused on the form, before anything exists.
        refused = submit_spawn_form(hub, browser, {
            "profile": "spark-dynamic", "spark-dynamic--spark.session.executor.memory": "64g"})
        assert "at most 16g" in refused, refused[-3000:]
        assert nb() is None

        started = time.monotonic()
        progress = ProgressReader(hub, "dana")
        progress.start()
        submit_spawn_form(hub, browser, {
            "profile": "spark-dynamic",
            "spark-dynamic--spark.session.executor.memory": "3g",
            "spark-dynamic--spark.session.dynamicAllocation.maxExecutors": "4",
            "spark-dynamic--spark.session.sparkConf": "spark.sql.shuffle.partitions=8",
        })
        server = wait_for(nb, timeout=30, what="the NotebookServer")
        assert server["spec"]["profile"] == "spark-dynamic"
        assert server["spec"]["spark"]["session"]["executor"]["memory"] == "3g"
        assert server["spec"]["jupyterhub"] == {"secretName": n.hub_secret, "baseUrl": "/user/dana/",
                                                "hubNamespace": "jupyterhub"}
        # The effective spec: the profile's defaults under the user's fields, on the session it owns.
        session = wait_for(lambda: emulator.get(names.API_VERSION, "sparksessions", namespace, n.owned_session),
                           what="the owned SparkSession")
        assert session["spec"]["executor"] == {**session["spec"]["executor"], "memory": "3g", "cores": 1}
        assert session["spec"]["dynamicAllocation"]["maxExecutors"] == 4
        assert session["spec"]["sparkConf"]["spark.sql.shuffle.partitions"] == "8"
        # The hub's token lives in a Secret the NotebookServer owns; the pod gets it by envFrom.
        secret = emulator.get("v1", "secrets", namespace, n.hub_secret)
        assert secret["metadata"]["ownerReferences"][0]["uid"] == server["metadata"]["uid"]
        assert secret_env(secret)["JUPYTERHUB_SERVICE_PREFIX"] == "/user/dana/"
        sts = wait_for(lambda: emulator.get("apps/v1", "statefulsets", namespace, name), what="the StatefulSet")
        pod_spec = sts["spec"]["template"]["spec"]["containers"][0]
        assert pod_spec["command"][0] == "jupyterhub-singleuser"
        assert "JUPYTERHUB_API_TOKEN" not in str(sts) and secret_env(secret)["JUPYTERHUB_API_TOKEN"] not in str(sts)

        # Ready: the hub has the route; the user is sent through the proxy and OAuth into JupyterLab.
        wait_for(lambda: hub.user("dana")["servers"].get("", {}).get("ready"), timeout=120, interval=0.5,
                 what=f"the hub's server ready; hub log:\n{hub.log()[-4000:]}")
        spawn_seconds = time.monotonic() - started
        # The spawn-pending page's stream: the server's phases as the operator reports them, then ready.
        progress.join(timeout=60)
        messages = [e.get("message", "") for e in progress.events]
        assert any(m.startswith("NotebookServer jupyter-dana: ") for m in messages), progress.events
        assert progress.events[-1].get("ready") is True, progress.events
        steps = [e["progress"] for e in progress.events if "progress" in e]
        assert steps == sorted(steps), steps
        lab = browser.get(f"{hub.url}/user/dana/lab", timeout=60)
        assert lab.status_code == 200 and "JupyterLab" in lab.text, lab.text[:2000]
        assert condition(nb(), "Ready")["status"] == "True"
        pvc_uid = emulator.get("v1", "persistentvolumeclaims", namespace, n.pvc)["metadata"]["uid"]

        # A cell's Spark job, in a kernel of the user's server, through the hub's proxy.
        out = asyncio.run(execute(f"{hub.url}/user/dana", hub.token,
                                  "print(spark.range(1000).selectExpr('sum(id) AS s').first()['s'])"))
        assert out.strip().endswith("499500"), out

        # Stop (the hub's REST API, as the home page's button): suspended, the pod gone, files kept.
        assert hub.api("DELETE", "/users/dana/server").status_code in (202, 204)
        wait_for(lambda: nb()["spec"].get("suspend") is True and emulator.get("v1", "pods", namespace, n.pod) is None,
                 timeout=60, what="suspended, the pod gone")
        wait_for(lambda: not hub.user("dana")["servers"], timeout=60, what="the hub sees it stopped")
        assert (nb().get("status") or {}).get("phase") in ("Suspended", "Starting", "Running") and nb()["status"]

        # Start again: the same NotebookServer and PVC, with the options chosen before.
        assert hub.api("POST", "/users/dana/server").status_code in (201, 202)
        wait_for(lambda: hub.user("dana")["servers"].get("", {}).get("ready"), timeout=120, interval=0.5,
                 what="ready again")
        again = nb()
        assert again["metadata"]["uid"] == server["metadata"]["uid"] and again["spec"]["suspend"] is False
        assert again["spec"]["spark"]["session"]["executor"]["memory"] == "3g"
        assert emulator.get("v1", "persistentvolumeclaims", namespace, n.pvc)["metadata"]["uid"] == pvc_uid
        assert pod_player.starts >= 2  # (a kernel after resuming: tests/e2e/test_jupyterhub.py)
        # The resumed pod runs this spawn's credentials (the hub issued a new token).
        pod = emulator.get("v1", "pods", namespace, n.pod)
        assert pod["metadata"]["annotations"][names.JUPYTERHUB_ENV_VERSION] == emulator.get(
            "v1", "secrets", namespace, n.hub_secret)["metadata"]["resourceVersion"]
        print(f"spawn to ready through the hub (emulator, played pod): {spawn_seconds:.1f}s")
    pod_player.stopped.set()
    pod_player.join(timeout=30)
    assert pod_player.error is None, pod_player.error


def test_an_idle_hub_server_is_culled_the_hub_sees_it_stopped_and_a_start_wakes_it(
        emulator, operator, kubectl, namespace, profiles, spark_connect_server, tmp_path, kubeconfig) -> None:
    """The operator's idle check asks jupyterhub-singleuser with the server's hub token (there is
    no Jupyter token behind a hub); culled, the hub's poll says stopped; the next start wakes it."""
    name = "jupyter-eve"
    nb = lambda: emulator.get(names.API_VERSION, "notebookservers", namespace, name)  # noqa: E731
    player = PlayedPod(emulator, namespace, name, tmp_path / "pod", spark_connect_server.token_url)
    player.start()
    extra = ('c.NotebookServerSpawner.extra_spec = {"idleCulling": {"timeout": "4s"}}\n'
             "c.NotebookServerSpawner.poll_interval = 2\n")
    try:
        with running_hub(kubeconfig=kubeconfig, work=tmp_path / "hub", namespace=namespace, extra=extra) as hub:
            # A start without the form (the REST API, for a user an administrator added): the default profile.
            assert hub.api("POST", "/users/eve").status_code == 201
            assert hub.api("POST", "/users/eve/server").status_code in (201, 202)
            wait_for(lambda: hub.user("eve")["servers"].get("", {}).get("ready"), timeout=120, interval=0.5,
                     what=f"ready; hub log:\n{hub.log()[-3000:]}")
            assert nb()["spec"]["profile"] == "spark-dynamic"
            assert nb()["spec"]["idleCulling"] == {"timeout": "4s"}
            culled = wait_for(lambda: (nb()["metadata"].get("annotations") or {}).get(names.CULLED_AT), timeout=60,
                              what="culled by the operator's idle check")
            assert culled
            wait_for(lambda: not hub.user("eve")["servers"], timeout=90, interval=0.5,
                     what="the hub's poll sees it stopped")
            assert hub.api("POST", "/users/eve/server").status_code in (201, 202)
            wait_for(lambda: hub.user("eve")["servers"].get("", {}).get("ready"), timeout=120, interval=0.5,
                     what="woken by the next start")
            assert names.CULLED_AT not in (nb()["metadata"].get("annotations") or {})
            assert player.starts >= 2
    finally:
        player.stopped.set()
        player.join(timeout=30)
    assert player.error is None, player.error
