"""A real JupyterHub on the real control plane: the hub runs as its own ServiceAccount with only
the RBAC the chart's jupyterhub.rbac values grant (the audit log shows no refusal); the user
logs in, chooses a server type and Spark properties; the real StatefulSet controller makes the
pod, KWOK gives it a loopback IP, and a real jupyterhub-singleuser plays its container there; the
hub's proxy and OAuth take the user into JupyterLab; a kernel runs a Spark job against a real Spark
Connect server. Stopping suspends (the PVC stays Bound), starting again resumes on the same PVC.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from sparkbook.names import NotebookNames
from sparkbook.testing.cluster import Cluster, tool_path
from tests.e2e.conftest import Kubectl, audit_events, condition, forbidden, get, poll, service_account_kubeconfig
from tests.jupyter_api import execute
from tests.jupyterhub_server import (
    HUB_NAMESPACE,
    ProgressReader,
    log_in,
    play_singleuser,
    running_hub,
    secret_env,
    stop_process,
    submit_spawn_form,
)

ROOT = Path(__file__).resolve().parents[2]
HUB_USER = f"system:serviceaccount:{HUB_NAMESPACE}:hub"
pytestmark = [pytest.mark.timeout(900)]


def hub_rbac(namespace: str) -> list[dict[str, Any]]:
    """The chart's JupyterHub RBAC, as `helm template` renders it for a hub making servers in
    `namespace`."""
    out = subprocess.run(
        [str(tool_path("helm")), "template", "sparkbook", str(ROOT / "charts" / "sparkbook"), "-n", "sparkbook",
         "--set", "jupyterhub.rbac.create=true", "--set", f"jupyterhub.rbac.namespaces={{{namespace}}}",
         "--set", f"jupyterhub.rbac.serviceAccount.namespace={HUB_NAMESPACE}"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    docs = [d for d in yaml.safe_load_all(out) if d]
    return [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding", "RoleBinding")
            and "jupyterhub" in d["metadata"]["name"]]


class KwokPod(threading.Thread):
    """The container of a notebook pod the real StatefulSet controller made and KWOK "runs": a
    real jupyterhub-singleuser on the pod's IP, started when the pod appears, ended when it goes."""

    def __init__(self, kubectl: Kubectl, namespace: str, name: str, work: Path, spark_remote: str) -> None:
        super().__init__(daemon=True)
        self.kubectl, self.namespace, self.name, self.work = kubectl, namespace, name, work
        self.spark_remote = spark_remote
        self.stopped = threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self.uid: str | None = None
        self.starts = 0

    def run(self) -> None:
        try:
            while not self.stopped.is_set():
                pod = get(self.kubectl, "pod", NotebookNames(self.name).pod, self.namespace)
                live = pod and not pod["metadata"].get("deletionTimestamp") and pod.get("status", {}).get("podIP")
                if not live or pod["metadata"]["uid"] != self.uid:
                    stop_process(self.proc)
                    self.proc, self.uid = None, None
                if live and self.proc is None:
                    secret = pod["spec"]["containers"][0]["envFrom"][0]["secretRef"]["name"]
                    env = secret_env(json.loads(self.kubectl("get", "secret", secret, "-n", self.namespace,
                                                             "-o", "json").stdout))
                    self.proc = play_singleuser(pod, hub_env=env, work=self.work, spark_remote=self.spark_remote)
                    self.uid = pod["metadata"]["uid"]
                    self.starts += 1
                time.sleep(0.3)
        finally:
            stop_process(self.proc)


def test_a_hub_user_on_the_real_control_plane(control_plane: Cluster, kubectl: Kubectl, operator, namespace: str,
                                              spark_connect_server, tmp_path: Path) -> None:
    kubectl("create", "namespace", HUB_NAMESPACE, check=False)
    kubectl("create", "serviceaccount", "hub", "-n", HUB_NAMESPACE, check=False)
    kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(hub_rbac(namespace)))
    hub_kubeconfig = service_account_kubeconfig(control_plane, kubectl, HUB_NAMESPACE, "hub", tmp_path / "hub.kubeconfig")
    name = "jupyter-erin"
    n = NotebookNames(name)
    nb = lambda: get(kubectl, "notebookserver", name, namespace)  # noqa: E731
    player = KwokPod(kubectl, namespace, name, tmp_path / "pod", spark_connect_server.token_url)
    player.start()
    try:
        with running_hub(kubeconfig=hub_kubeconfig, work=tmp_path / "hub", namespace=namespace) as hub:
            browser = log_in(hub, "erin")
            started = time.monotonic()
            progress = ProgressReader(hub, "erin")  # the spawn-pending page's stream
            progress.start()
            submit_spawn_form(hub, browser, {
                "profile": "spark-dynamic",
                "spark-dynamic--spark.session.executor.memory": "3g",
                "spark-dynamic--spark.session.dynamicAllocation.maxExecutors": "6",
            })
            poll(lambda: hub.user("erin")["servers"].get("", {}).get("ready"), timeout=180, interval=0.5,
                 what=f"the hub's server ready; hub log:\n{hub.log()[-4000:]}")
            spawn_seconds = time.monotonic() - started
            progress.join(timeout=60)
            assert progress.events and progress.events[-1].get("ready") is True, progress.events
            assert any(e.get("message", "").startswith("NotebookServer jupyter-erin: ") for e in progress.events)
            server = nb()
            assert server["spec"]["profile"] == "spark-dynamic" and condition(server, "Ready")["status"] == "True"
            session = get(kubectl, "sparksession", n.owned_session, namespace)
            assert session["spec"]["executor"]["memory"] == "3g"
            assert session["spec"]["dynamicAllocation"]["maxExecutors"] == 6
            # Admitted under `restricted` (the namespace enforces it), token only in the Secret.
            pod = get(kubectl, "pod", n.pod, namespace)
            assert pod["spec"]["containers"][0]["command"][0] == "jupyterhub-singleuser"
            token = secret_env(json.loads(kubectl("get", "secret", n.hub_secret, "-n", namespace, "-o", "json").stdout))
            assert token["JUPYTERHUB_API_TOKEN"] not in json.dumps(pod)
            pvc = poll(lambda: (c := get(kubectl, "pvc", n.pvc, namespace)) and c["status"].get("phase") == "Bound"
                       and c, timeout=60, what="the PVC bound")

            lab = browser.get(f"{hub.url}/user/erin/lab", timeout=60)
            assert lab.status_code == 200 and "JupyterLab" in lab.text, lab.text[:2000]
            out = asyncio.run(execute(f"{hub.url}/user/erin", hub.token,
                                      "print(spark.range(1, 101).selectExpr('sum(id) AS s').first()['s'])"))
            assert out.strip().endswith("5050"), out

            stopped_at = time.monotonic()
            assert hub.api("DELETE", "/users/erin/server").status_code in (202, 204)
            poll(lambda: not hub.user("erin")["servers"], timeout=120, what="the hub sees it stopped")
            stop_seconds = time.monotonic() - stopped_at
            assert nb()["spec"]["suspend"] is True
            assert get(kubectl, "pod", n.pod, namespace) is None, "the real StatefulSet controller removed the pod"
            assert get(kubectl, "pvc", n.pvc, namespace)["metadata"]["uid"] == pvc["metadata"]["uid"]

            resumed_at = time.monotonic()
            assert hub.api("POST", "/users/erin/server").status_code in (201, 202)
            poll(lambda: hub.user("erin")["servers"].get("", {}).get("ready"), timeout=180, interval=0.5,
                 what="ready again")
            resume_seconds = time.monotonic() - resumed_at
            again = nb()
            assert again["metadata"]["uid"] == server["metadata"]["uid"] and again["spec"]["suspend"] is False
            assert get(kubectl, "pvc", n.pvc, namespace)["metadata"]["uid"] == pvc["metadata"]["uid"]
            assert get(kubectl, "pod", n.pod, namespace)["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == n.pvc
            assert player.starts >= 2
            out = asyncio.run(execute(f"{hub.url}/user/erin", hub.token, "print(spark.range(7).count())"))
            assert out.strip().endswith("7"), out
            print(f"\nreal control plane, through the hub: spawn {spawn_seconds:.1f}s, stop {stop_seconds:.1f}s, "
                  f"resume {resume_seconds:.1f}s", file=sys.stderr)
    finally:
        player.stopped.set()
        player.join(timeout=30)
    # The hub's requests are in the audit log under its ServiceAccount, and none was refused.
    done = {(e["verb"], e.get("objectRef", {}).get("resource")) for e in audit_events(control_plane, user=HUB_USER)
            if e.get("stage") == "ResponseComplete" and e.get("responseStatus", {}).get("code", 0) < 400}
    assert {("patch", "notebookservers"), ("patch", "secrets"), ("get", "pods"), ("list", "notebookprofiles"),
            ("list", "events")} <= done, done
    assert forbidden(control_plane, HUB_USER) == [], "the chart's hub RBAC refused the hub"
