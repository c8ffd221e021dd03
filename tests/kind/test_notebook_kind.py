"""On kind (SPARKBOOK_E2E=kind, real containers): a NotebookServer with its own SparkSession becomes Ready, a cell run through
the Jupyter API runs a Spark job whose executors appear under dynamic allocation and go away after
their idle timeout, and deleting the NotebookServer removes everything it owned."""

from __future__ import annotations

import asyncio
import base64
import re
import subprocess
import uuid

import pytest
import yaml

from tests.api.conftest import wait_for
from tests.kind.conftest import KUBECTL, ROOT
from tests.jupyter_api import execute

pytestmark = pytest.mark.kind


def _poll(check, *, timeout: float, interval: float = 2.0, what: str):
    return wait_for(check, timeout=timeout, interval=interval, what=what)


def test_notebook_spark_job_executors_and_cleanup(kind_kubectl, kind_cluster):
    kubectl, cluster = kind_kubectl, kind_cluster
    ns = f"e2e-{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", ns)
    kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    doc = yaml.safe_load((ROOT / "examples" / "notebookserver.yaml").read_text())
    doc["metadata"]["namespace"] = ns
    doc["spec"]["resources"] = {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "1Gi"}}
    doc["spec"]["spark"]["session"].update({
        "driver": {"cores": 1, "coreRequest": "250m", "memory": "1g"},
        "executor": {"cores": 1, "coreRequest": "250m", "memory": "1g"},
        "dynamicAllocation": {"minExecutors": 0, "maxExecutors": 2, "executorIdleTimeout": "20s"},
    })
    kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))
    kubectl("wait", "--for=condition=Ready", "sparksession/alice-spark", "-n", ns, "--timeout=15m")
    kubectl("wait", "--for=condition=Ready", "notebookserver/alice", "-n", ns, "--timeout=15m")

    token = base64.b64decode(kubectl("get", "secret", "alice-token", "-n", ns, "-o",
                                     "jsonpath={.data.token}").stdout).decode()
    forward = subprocess.Popen([KUBECTL, "--context", cluster, "port-forward", "-n", ns, "svc/alice", ":8888"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = forward.stdout.readline()
        port = re.search(r"127\.0\.0\.1:(\d+)", line).group(1)
        executors = lambda: [p for p in kubectl(  # noqa: E731
            "get", "pods", "-n", ns, "-l", "spark-role=executor,sparkbook.io/session=alice-spark",
            "-o", "jsonpath={.items[*].metadata.name}").stdout.split()]

        async def job() -> str:
            code = ("print(spark.range(0, 400_000_000, numPartitions=64)"
                    ".selectExpr('sum(id % 7) AS s').collect()[0]['s'])")
            return await execute(f"http://127.0.0.1:{port}", token, code, timeout=900)

        async def run_and_watch() -> tuple[str, int]:
            task = asyncio.create_task(job())
            most = 0
            while not task.done():
                most = max(most, len(await asyncio.to_thread(executors)))
                await asyncio.sleep(2)
            return await task, most

        output, most = asyncio.run(run_and_watch())
        assert re.search(r"\d{6,}", output), output
        assert most >= 1, "no executor pod appeared under dynamic allocation"
        running = kubectl("get", "sparksession", "alice-spark", "-n", ns, "-o",
                          "jsonpath={.status.executors.running}").stdout
        assert running.isdigit()
        _poll(lambda: not executors(), timeout=300, what="executors removed after their idle timeout")
    finally:
        forward.terminate()

    kubectl("delete", "notebookserver", "alice", "-n", ns, "--wait=true", "--timeout=5m")
    for kind, name in [("statefulset", "alice"), ("service", "alice"), ("secret", "alice-token"),
                       ("sparksession", "alice-spark"), ("pod", "alice-spark-driver"), ("configmap", "alice-startup")]:
        _poll(lambda: kubectl("get", kind, name, "-n", ns, check=False).returncode != 0, timeout=300,
              what=f"{kind}/{name} deleted")
    # retainOnDelete: true keeps the user's files.
    assert kubectl("get", "pvc", "alice-home", "-n", ns, check=False).returncode == 0
    kubectl("delete", "namespace", ns, "--wait=false")
