"""Spark's own Kubernetes backend against the real API server.

The driver is the driver pod's own command, read back from the pod the operator created, and run
on this machine the way the workload tests run it (loopback addresses, local paths), except that
`--master k8s://` stays: it is aimed at the local kube-apiserver, authenticated with a token of the
session's driver ServiceAccount, with the executor pod template from the session's ConfigMap. A
Spark Connect client asks for work; Spark creates executor pods through the Role the operator made;
a test kubelet (tests/e2e/kubelet.py) runs each executor pod as a local process, so the job really
runs on executors that Kubernetes created; dynamic allocation then removes them.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from sparkbook.build.launch import (
    SERVER_TOKEN_ENV, connect_server_command, connect_url, local_server_environment, loopback_conf,
    parse_connect_server_command)
from sparkbook.local import spark_home
from sparkbook.names import EXECUTOR_TEMPLATE_KEY, SessionNames
from sparkbook.testing.cluster import Cluster, free_port
from tests.e2e.conftest import Kubectl, apply, condition, example, forbidden, get, items, poll, secret_value
from tests.e2e.kubelet import ExecutorKubelet

pytestmark = pytest.mark.workload


def local_driver(cluster: Cluster, kubectl: Kubectl, namespace: str, names: SessionNames, work: Path,
                 ) -> tuple[list[str], dict[str, str], int]:
    """The driver pod's command and environment, made to run here against the real API server."""
    pod = get(kubectl, "pod", names.driver_pod, namespace)
    container = pod["spec"]["containers"][0]
    pod_conf, app_name = parse_connect_server_command(container["command"])
    assert pod_conf["spark.master"] == "k8s://https://kubernetes.default.svc"
    # What a pod gets mounted, as files here: the executor template, the driver's token, the CA.
    template = json.loads(kubectl("get", "configmap", names.executor_template, "-n", namespace, "-o", "json").stdout)
    (work / "template.yaml").write_text(template["data"][EXECUTOR_TEMPLATE_KEY])
    token = kubectl("create", "token", names.service_account, "-n", namespace, "--duration=1h").stdout.strip()
    (work / "token").write_text(token)
    connect_port = free_port()
    conf = loopback_conf(pod_conf, master=f"k8s://{cluster.server}", connect_port=connect_port, ui_port=free_port(),
                         warehouse_dir=str(work / "warehouse"))
    conf.update({k: v for k, v in pod_conf.items() if k.startswith("spark.kubernetes.")})
    conf.update({
        "spark.kubernetes.executor.podTemplateFile": str(work / "template.yaml"),
        # Client mode reads its API credentials under spark.kubernetes.authenticate.*; in the pod
        # they are the mounted ServiceAccount token and CA.
        "spark.kubernetes.authenticate.oauthTokenFile": str(work / "token"),
        "spark.kubernetes.authenticate.caCertFile": str(cluster.pki / "ca.crt"),
    })
    conf.pop("spark.kubernetes.authenticate.driver.serviceAccountName", None)  # cluster mode only
    home = spark_home()
    argv = connect_server_command(conf=conf, spark_home=home, app_name=app_name)
    (work / "conf").mkdir(exist_ok=True)
    session_token = secret_value(kubectl, namespace, names.token_secret, "token")
    assert any(e["name"] == SERVER_TOKEN_ENV for e in container["env"])
    env = local_server_environment(os.environ, spark_home=home, host="127.0.0.1", conf_dir=str(work / "conf"),
                                   token=session_token)
    return argv, env, connect_port


def test_spark_creates_executor_pods_through_the_drivers_role_and_a_job_runs_on_them(
        control_plane: Cluster, kubectl: Kubectl, operator, namespace: str, tmp_path: Path) -> None:
    doc = example("sparksession.yaml", namespace)
    doc["spec"]["driver"] = {"cores": 1, "memory": "1g"}
    doc["spec"]["executor"] = {"cores": 1, "memory": "512m"}
    doc["spec"]["dynamicAllocation"] = {"minExecutors": 0, "initialExecutors": 0, "maxExecutors": 2,
                                        "executorIdleTimeout": "3s", "shuffleTrackingTimeout": "3s"}
    apply(kubectl, doc)
    names = SessionNames("analytics")
    poll(lambda: condition(get(kubectl, "sparksession", "analytics", namespace), "Ready").get("status") == "True",
         timeout=90, what="SparkSession Ready")
    argv, env, connect_port = local_driver(control_plane, kubectl, namespace, names, tmp_path)
    log_path = tmp_path / "driver.log"
    with open(log_path, "wb") as log:
        driver = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    executors = lambda: items(kubectl, "pods", namespace, "spark-role=executor")  # noqa: E731
    spark = None
    try:
        with ExecutorKubelet(kubectl, namespace, spark_home(), tmp_path / "executors") as kubelet:
            from pyspark.sql import SparkSession

            url = connect_url(host="127.0.0.1", port=connect_port, token=env[SERVER_TOKEN_ENV])
            deadline = time.monotonic() + 120
            while True:
                assert driver.poll() is None, log_path.read_text(errors="replace")[-8000:]
                try:
                    spark = SparkSession.builder.remote(url).getOrCreate()
                    spark.range(1).count()  # the driver answers (no executor is needed for this plan)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(1)
            n = 3_000_000
            rows = spark.range(0, n, numPartitions=12).selectExpr("sum(id) AS s", "count(*) AS c").collect()
            assert (rows[0]["s"], rows[0]["c"]) == (n * (n - 1) // 2, n)

            pods = executors()
            assert pods and kubelet.started, "the job ran without executor pods?"
            driver_pod = get(kubectl, "pod", names.driver_pod, namespace)
            for pod in pods:
                labels = pod["metadata"]["labels"]
                assert labels["sparkbook.io/session"] == "analytics" and labels["spark-role"] == "executor"
                owner = pod["metadata"]["ownerReferences"][0]
                assert (owner["kind"], owner["name"], owner["uid"]) == ("Pod", names.driver_pod,
                                                                        driver_pod["metadata"]["uid"])
                # The session's restricted template is what Spark built on.
                spec = pod["spec"]
                assert spec["securityContext"]["runAsNonRoot"] is True and spec["automountServiceAccountToken"] is False
                assert spec["containers"][0]["securityContext"]["capabilities"]["drop"] == ["ALL"]
            # The operator counts them.
            poll(lambda: (get(kubectl, "sparksession", "analytics", namespace)["status"]["executors"]["running"]
                          >= 1), timeout=30, what="status.executors.running counts the executors")
            # Idle for executorIdleTimeout (and shuffle tracking's timeout): Spark removes them.
            poll(lambda: executors() == [], timeout=90, what="dynamic allocation removed the idle executors")
            poll(lambda: get(kubectl, "sparksession", "analytics", namespace)["status"]["executors"]["running"] == 0,
                 timeout=30, what="status follows")
            assert set(kubelet.stopped) == set(kubelet.started), (kubelet.started, kubelet.stopped)
            # The executors Kubernetes created registered with the driver and ran the job's tasks.
            logs = kubelet.logs()
            assert logs.count("Successfully registered with driver") == len(kubelet.started), logs[-6000:]
            assert "Finished task" in logs, logs[-6000:]
            assert kubelet.errors == [], kubelet.errors
    except BaseException:
        print(log_path.read_text(errors="replace")[-15000:])
        print(kubelet.logs(tail=4000) if "kubelet" in locals() else "")
        raise
    finally:
        if spark is not None:
            spark.stop()  # the client's gRPC threads would otherwise keep pytest from exiting
        driver.terminate()
        try:
            driver.wait(30)
        except subprocess.TimeoutExpired:
            driver.kill()
    # Every request of the driver went through the Role the operator made: none refused.
    assert forbidden(control_plane, f"system:serviceaccount:{namespace}:{names.service_account}") == []
