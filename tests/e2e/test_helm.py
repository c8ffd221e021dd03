"""The chart installed with a real Helm (built from the Helm Go module) on a control plane of its
own: cluster-wide, then namespace-scoped. Each time the operator runs as the chart's
ServiceAccount with the chart's environment, reconciles a SparkSession to Ready, and the API
server's audit log shows not one request the chart's RBAC refused."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sparkbook.testing.cluster import Cluster, tool_path
from tests.e2e.conftest import (OPERATOR_TEST_ENV, RESTRICTED, ROOT, InstalledOperator, Kubectl, apply,
                                condition, example, get, make_kubectl, poll)

CHART = ROOT / "charts" / "sparkbook"


@pytest.fixture(scope="module")
def helm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Separate from the session's cluster, whose cluster-wide operator would reconcile alongside."""
    cluster = Cluster(state=tmp_path_factory.mktemp("helm-control-plane"))
    try:
        yield cluster.up()
    finally:
        cluster.down(keep_state=True)


def helm(cluster: Cluster, *args: str) -> str:
    result = subprocess.run([str(tool_path("helm")), "--kubeconfig", str(cluster.kubeconfig), *args],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"helm {' '.join(args)}: {result.stderr}"
    return result.stdout


def create_namespaces(kubectl: Kubectl, *names: str) -> None:
    apply(kubectl, *({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n, "labels": RESTRICTED}}
                     for n in names))


def ready(kubectl: Kubectl, namespace: str, name: str = "analytics") -> bool:
    return condition(get(kubectl, "sparksession", name, namespace), "Ready").get("status") == "True"


def run_operator(cluster: Cluster, kubectl: Kubectl, release_ns: str, log: Path) -> InstalledOperator:
    deployments = json.loads(kubectl("get", "deployments", "-n", release_ns, "-o", "json").stdout)["items"]
    assert len(deployments) == 1, deployments
    deployment = deployments[0]
    # `helm install --wait` returned: the Deployment's pod was admitted under `restricted` and the
    # (fake) node reports it ready.
    assert deployment["status"].get("readyReplicas") == 1, deployment["status"]
    return InstalledOperator(cluster, kubectl, deployment, log, env=OPERATOR_TEST_ENV).start()


def test_helm_install_cluster_wide_then_namespace_scoped(helm_cluster: Cluster, tmp_path: Path) -> None:
    kubectl = make_kubectl(helm_cluster.kubeconfig)
    create_namespaces(kubectl, "sparkbook", "team-a", "team-b")

    # Cluster-wide (the chart's defaults).
    helm(helm_cluster, "install", "sparkbook", str(CHART), "-n", "sparkbook", "--wait", "--timeout", "120s")
    kubectl("wait", "--for=condition=Established", "crd/sparksessions.sparkbook.io", "--timeout=60s")
    op = run_operator(helm_cluster, kubectl, "sparkbook", tmp_path / "cluster-wide.log")
    try:
        apply(kubectl, example("sparksession.yaml", "team-a"), example("sparksession.yaml", "team-b"))
        poll(lambda: ready(kubectl, "team-a") and ready(kubectl, "team-b"), timeout=90, what="both sessions Ready")
    finally:
        op.stop()
    assert op.forbidden() == [], op.forbidden()
    kubectl("delete", "sparksession", "analytics", "-n", "team-a", "--wait=true")
    kubectl("delete", "sparksession", "analytics", "-n", "team-b", "--wait=true")
    helm(helm_cluster, "uninstall", "sparkbook", "-n", "sparkbook", "--wait")
    assert get(kubectl, "clusterrole", "sparkbook") is None

    # Namespace-scoped: Roles in team-a only; cluster-wide, only reading the (cluster-scoped) profiles.
    helm(helm_cluster, "install", "sparkbook", str(CHART), "-n", "sparkbook", "--set", "watchNamespaces={team-a}",
         "--wait", "--timeout", "120s")
    ours = [b for b in json.loads(kubectl("get", "clusterrolebindings", "-o", "json").stdout)["items"]
            if "sparkbook" in b["metadata"]["name"]]
    assert [b["metadata"]["name"] for b in ours] == ["sparkbook-profiles"], ours
    rules = get(kubectl, "clusterrole", "sparkbook-profiles")["rules"]
    assert {r for rule in rules for r in rule["resources"]} == {"notebookprofiles", "notebookprofiles/status"}
    assert sorted(json.loads(kubectl("get", "notebookprofiles", "-o", "json").stdout)["items"][i]["metadata"]["name"]
                  for i in range(5)) == ["distributed-training", "experiment", "parallel-experiment",
                                         "spark-dynamic", "spark-static"]
    op = run_operator(helm_cluster, kubectl, "sparkbook", tmp_path / "namespaced.log")
    try:
        apply(kubectl, example("sparksession.yaml", "team-a"), example("sparksession.yaml", "team-b"))
        poll(lambda: ready(kubectl, "team-a"), timeout=90, what="the watched namespace's session Ready")
        # The other namespace is not the operator's: nothing was made there.
        assert get(kubectl, "pod", "analytics-driver", "team-b") is None
        assert (get(kubectl, "sparksession", "analytics", "team-b") or {}).get("status") is None
    finally:
        op.stop()
    assert op.forbidden() == [], op.forbidden()
    assert "Traceback" not in op.logs()
