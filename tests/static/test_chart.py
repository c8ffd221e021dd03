"""The Helm chart and the plain-YAML install generated from it (charts/sparkbook, manifests/).

Static checks: renders (default and namespace-scoped), `helm lint --strict` through
helm-python-sdk, `kubernetes-validate --strict` for Kubernetes 1.30, `checkov --framework
kubernetes` with zero failed checks, drift of the generated files. And one dynamic check: the
real operator runs against the API emulator, every request it makes is recorded, and the set of
(API group, resource, verb) it needs must be granted by the chart's RBAC, which in turn must
hold nothing that the code (or Kubernetes' RBAC escalation prevention) does not ask for.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sparkbook import chart, names
from sparkbook.build.session import DRIVER_RULES
from sparkbook.testing.emulator import EmulatorThread
from tests.api.conftest import Operator, kubelet_runs, statefulset_controller, wait_for
from tests.pod_rules import hardening_problems

helm = pytest.importorskip("helm_python", reason="helm-python-sdk is a test dependency: make venv")
kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="a test dependency: make venv")

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "charts" / "sparkbook"
KUBE_VERSION = "1.30"
NAMESPACED = {"watchNamespaces": ["team-a", "team-b"]}
# Every optional part switched on, to check what the defaults leave out.
EVERYTHING = {
    "watchNamespaces": ["team-a"],
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "image": {"digest": "sha256:" + "0" * 64},
    "imagePullSecrets": [{"name": "regcred"}],
    "priorityClassName": "system-cluster-critical",
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]}}},
    "podAnnotations": {"example.com/team": "data-platform"},
    "logLevel": "debug",
    "extraEnv": [{"name": "SPARKBOOK_WORKERS", "value": "8"}],
    "networkPolicy": {"metricsFrom": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}]},
    "jupyterhub": {"rbac": {"create": True, "namespaces": ["team-a"], "createNamespaces": True}},
}
# The JupyterHub hub's permissions in every namespace (EVERYTHING binds them in team-a only).
JUPYTERHUB = {"jupyterhub": {"rbac": {"create": True}}}
# Event logs on a shared claim for every session, and a History Server over them.
HISTORY = {"eventLog": {"enabled": True, "persistentVolumeClaim": "spark-events"}, "historyServer": {"enabled": True}}
# ... and on an object store, with credentials, an image by digest and the cleaner off.
HISTORY_S3 = {
    "eventLog": {"enabled": True, "url": "s3a://spark-logs/events", "credentialsSecret": "s3-credentials"},
    "historyServer": {"enabled": True, "image": "registry.example.com/spark-aws@sha256:" + "1" * 64,
                      "cleaner": {"enabled": False}, "retainedApplications": 20,
                      "sparkConf": {"spark.hadoop.fs.s3a.endpoint": "http://minio.storage:9000"},
                      "nodeSelector": {"kubernetes.io/os": "linux"},
                      "networkPolicy": {"extraFrom": [{"namespaceSelector": {"matchLabels": {
                          "kubernetes.io/metadata.name": "ingress-nginx"}}}]}},
}
# The claim variant with JVM metrics through the JMX exporter agent, a ServiceMonitor, and
# Prometheus in `monitoring` allowed to scrape (the operator's networkPolicy.metricsFrom).
MONITORING = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
HISTORY_METRICS = {
    **HISTORY,
    "historyServer": {"enabled": True, "javaOpts": "-XX:+ExitOnOutOfMemoryError",
                      "metrics": {"enabled": True, "serviceMonitor": {"enabled": True,
                                                                      "labels": {"release": "prometheus"}}}},
    "networkPolicy": {"metricsFrom": MONITORING},
}
# A namespace-scoped operator (team-a, team-b) with the History Server on the claim.
HISTORY_NAMESPACED = {**NAMESPACED, **HISTORY}


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    return chart.objects(chart.render(values, root=ROOT))


def find(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def the(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = find(objs, kind)
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


def manifest_docs() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / chart.INSTALL).read_text()) if d]


@pytest.fixture(scope="module")
def default_objs() -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="module")
def namespaced_objs() -> list[dict[str, Any]]:
    return render(NAMESPACED)


# --- the chart itself --------------------------------------------------------------------------


def test_chart_versions_follow_the_package():
    meta = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert meta["apiVersion"] == "v2"
    assert meta["version"] == meta["appVersion"] == version


@pytest.mark.parametrize("values", [{}, NAMESPACED, EVERYTHING, JUPYTERHUB, HISTORY, HISTORY_S3, HISTORY_METRICS,
                                    HISTORY_NAMESPACED],
                         ids=["default", "namespaced", "everything", "jupyterhub", "history", "history-s3",
                              "history-metrics", "history-namespaced"])
def test_helm_lint_strict(values):
    report = helm.lint(str(CHART_DIR), values, strict=True, kube_version=f"v{KUBE_VERSION}.0")
    # Severity 1 is INFO ("icon is recommended"); `helm lint --strict` fails on WARNING (2) and up.
    serious = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not serious, report


@pytest.mark.parametrize(
    "values",
    [{"replicaCount": 2}, {"logLevel": "trace"}, {"watchNamespaces": "team-a"}, {"watchNamespaces": ["Team_A"]},
     {"image": {"pullPolicy": "Sometimes"}}, {"serviceMonitor": {"enabled": "yes"}}, {"surprise": 1},
     {"jupyterhub": {"rbac": {"create": "yes"}}}, {"jupyterhub": {"rbac": {"namespace": "team-a"}}},
     {"jupyterhub": {"rbac": {"namespaces": "team-a"}}}, {"jupyterhub": {"rbac": {"namespaces": ["a", "a"]}}},
     {"eventLog": {"enabled": "yes"}}, {"eventLog": {"maxFileSize": "128m"}},
     {"historyServer": {"replicas": 2}}, {"historyServer": {"cleaner": {"maxNumFiles": -1}}},
     {"historyServer": {"retainedApplications": 0}}, {"historyServer": {"metrics": {"enabled": "yes"}}},
     {"historyServer": {"metrics": {"path": "/metrics"}}}, {"historyServer": {"javaOpts": ["-Xss1m"]}},
     {"historyServer": {"metrics": {"serviceMonitor": {"scrapeTimeout": "10s"}}}}],
    ids=lambda v: next(iter(v)),
)
def test_schema_rejects_bad_values(values):
    with pytest.raises(helm.HelmError):
        chart.render(values, root=ROOT)


# Values the schema refuses because Kubernetes would refuse what they become (an object name, a
# label, a resource quantity), each with the text helm's refusal must contain.
REFUSED_LATE = [
    ({"priorityClassName": "System_Critical"}, "/priorityClassName"),
    ({"serviceAccount": {"create": False, "name": "Operator SA"}}, "/serviceAccount/name"),
    ({"imagePullSecrets": [{"name": "RegCred"}]}, "/imagePullSecrets/0/name"),
    ({"imagePullSecrets": [{"name": ""}]}, "/imagePullSecrets/0/name"),
    ({"fullnameOverride": "1sparkbook"}, "/fullnameOverride"),
    ({"nameOverride": "Spark_Book"}, "/nameOverride"),
    ({"extraEnv": [{"name": "A=B", "value": "x"}]}, "/extraEnv/0/name"),
    ({"resources": {"requests": {"cpu": "-100m"}}}, "/resources/requests/cpu"),
    ({"resources": {"limits": {"memory": -1}}}, "/resources/limits/memory"),
    ({"resources": {"requests": {"gpu": 1}}}, "invalid propertyName 'gpu'"),
    ({"podLabels": {"team": "data platform"}}, "/podLabels/team"),
    ({"podLabels": {"cost center": "x"}}, "invalid propertyName 'cost center'"),
    ({"serviceMonitor": {"labels": {"release": "kube-prometheus-"}}}, "/serviceMonitor/labels/release"),
    ({"nodeSelector": {"pool": "a/b"}}, "/nodeSelector/pool"),
    ({"nodeSelector": {"Example.com/pool": "a"}}, "invalid propertyName 'Example.com/pool'"),
    ({"podAnnotations": {"-note": "x"}}, "invalid propertyName '-note'"),
    ({"serviceAccount": {"annotations": {"a/b/c": "x"}}}, "invalid propertyName 'a/b/c'"),
    ({"metrics": {"service": {"annotations": {"p" * 254 + "/x": "y"}}}}, "invalid propertyName"),
    ({"jupyterhub": {"rbac": {"namespaces": ["Team_A"]}}}, "/jupyterhub/rbac/namespaces/0"),
    ({"jupyterhub": {"rbac": {"serviceAccount": {"name": "Hub SA", "namespace": "jupyterhub"}}}},
     "/jupyterhub/rbac/serviceAccount/name"),
    ({"jupyterhub": {"rbac": {"serviceAccount": {"name": "hub", "namespace": "hub.ns"}}}},
     "/jupyterhub/rbac/serviceAccount/namespace"),
    ({"eventLog": {"persistentVolumeClaim": "Spark_Events"}}, "/eventLog/persistentVolumeClaim"),
    ({"eventLog": {"url": "/spark-events"}}, "/eventLog/url"),
    ({"eventLog": {"url": "s3a://bucket/with space"}}, "/eventLog/url"),
    ({"eventLog": {"url": "s3a://b/e", "credentialsSecret": "S3 Credentials"}}, "/eventLog/credentialsSecret"),
    ({"historyServer": {"url": "history.example.com"}}, "/historyServer/url"),
    ({"historyServer": {"updateInterval": "10 seconds"}}, "/historyServer/updateInterval"),
    ({"historyServer": {"cleaner": {"maxAge": "a week"}}}, "/historyServer/cleaner/maxAge"),
    ({"historyServer": {"daemonMemory": "1Gi"}}, "/historyServer/daemonMemory"),
    ({"historyServer": {"resources": {"limits": {"memory": "1 GB"}}}}, "/historyServer/resources/limits/memory"),
    ({"historyServer": {"sparkConf": {"fs.s3a.endpoint": "x"}}}, "invalid propertyName 'fs.s3a.endpoint'"),
    ({"historyServer": {"nodeSelector": {"pool": "a/b"}}}, "/historyServer/nodeSelector/pool"),
    ({"historyServer": {"metrics": {"port": 80}}}, "/historyServer/metrics/port"),
    ({"historyServer": {"metrics": {"port": 65536}}}, "/historyServer/metrics/port"),
    ({"historyServer": {"metrics": {"port": 18080}}}, "/historyServer/metrics/port"),
    ({"historyServer": {"metrics": {"javaagentJar": "jars/jmx_prometheus_javaagent.jar"}}},
     "/historyServer/metrics/javaagentJar"),
    ({"historyServer": {"metrics": {"javaagentJar": "/opt/agent.jar=1234"}}}, "/historyServer/metrics/javaagentJar"),
    ({"historyServer": {"metrics": {"serviceMonitor": {"interval": "30 seconds"}}}},
     "/historyServer/metrics/serviceMonitor/interval"),
    ({"historyServer": {"metrics": {"serviceMonitor": {"labels": {"release": "-x"}}}}},
     "/historyServer/metrics/serviceMonitor/labels/release"),
    ({"historyServer": {"javaOpts": "-Xss1m\n-Xmx1g"}}, "/historyServer/javaOpts"),
]


@pytest.mark.parametrize("values, text", REFUSED_LATE, ids=[t for _, t in REFUSED_LATE])
def test_schema_rejects_what_kubernetes_would_refuse_later(values, text):
    with pytest.raises(helm.HelmError) as refused:
        chart.render(values, root=ROOT)
    assert text in str(refused.value)


def test_schema_keeps_valid_names_and_quantities():
    values = {"priorityClassName": "system-cluster-critical", "serviceAccount": {"create": False, "name": "ops.sa"},
              "fullnameOverride": "spark-operator", "nameOverride": "spark", "podLabels": {"example.com/team": "data"},
              "podAnnotations": {"example.com/note": "anything goes here"}, "nodeSelector": {"pool": ""},
              "resources": {"requests": {"cpu": 0.5, "memory": "256Mi", "example.com/dongle": 1}, "limits": {}}}
    assert the(render(values), "Deployment")["spec"]["template"]["spec"]["priorityClassName"] == "system-cluster-critical"


def test_default_render(default_objs):
    kinds = sorted(o["kind"] for o in default_objs)
    assert kinds == sorted(["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service", "Deployment",
                            "NetworkPolicy", *["NotebookProfile"] * 5])
    for obj in default_objs:
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding", "NotebookProfile"):
            assert obj["metadata"]["namespace"] == chart.NAMESPACE, obj["kind"]

    deploy = the(default_objs, "Deployment")
    assert deploy["spec"]["replicas"] == 1
    assert deploy["spec"]["strategy"] == {"type": "Recreate"}  # never two standalone operators at once
    pod = deploy["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True
    assert pod["serviceAccountName"] == the(default_objs, "ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (c,) = pod["containers"]
    assert c["image"] == "ghcr.io/sparkbook/operator:0.1.0"
    assert c["imagePullPolicy"] == "Always"
    assert c["command"] == ["sparkbook"]
    assert c["args"] == ["run", "--standalone", "--liveness=http://0.0.0.0:8080/healthz"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"health": 8080, "metrics": 9090}
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert c["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert pod["volumes"][0]["name"] == "tmp" and "emptyDir" in pod["volumes"][0]
    assert set(c["resources"]) == {"requests", "limits"}
    env = {e["name"]: e for e in c["env"]}
    assert env["SPARKBOOK_SPARK_IMAGE"]["value"] == names.DEFAULT_SPARK_IMAGE
    assert env["SPARKBOOK_NOTEBOOK_IMAGE"]["value"] == names.default_notebook_image()
    assert env["SPARKBOOK_NAMESPACES"]["value"] == ""
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    for key in ("priorityClassName", "nodeSelector", "tolerations", "affinity", "imagePullSecrets"):
        assert key not in pod

    svc = the(default_objs, "Service")
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [{"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP"}]
    assert svc["spec"]["selector"] == deploy["spec"]["selector"]["matchLabels"]
    assert the(default_objs, "ServiceAccount")["automountServiceAccountToken"] is False
    binding = the(default_objs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == the(default_objs, "ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "sparkbook", "namespace": chart.NAMESPACE}]


PROFILE_RULES = {("sparkbook.io", "notebookprofiles", "list"), ("sparkbook.io", "notebookprofiles", "watch"),
                 ("sparkbook.io", "notebookprofiles/status", "patch")}


def test_namespaced_render_grants_cluster_wide_only_the_profiles(namespaced_objs):
    # NotebookProfiles are cluster-scoped: a Role cannot grant them, so one narrow ClusterRole does.
    cluster_role, cluster_binding = the(namespaced_objs, "ClusterRole"), the(namespaced_objs, "ClusterRoleBinding")
    assert cluster_role["metadata"]["name"] == "sparkbook-profiles"
    assert flatten(cluster_role["rules"]) == PROFILE_RULES
    assert cluster_binding["roleRef"]["name"] == "sparkbook-profiles"
    assert cluster_binding["subjects"] == [{"kind": "ServiceAccount", "name": "sparkbook", "namespace": chart.NAMESPACE}]
    roles = {o["metadata"]["namespace"]: o for o in find(namespaced_objs, "Role")}
    bindings = {o["metadata"]["namespace"]: o for o in find(namespaced_objs, "RoleBinding")}
    assert set(roles) == set(bindings) == {"team-a", "team-b"}
    for ns, binding in bindings.items():
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": roles[ns]["metadata"]["name"]}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "sparkbook", "namespace": chart.NAMESPACE}]
    (c,) = the(namespaced_objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["run", "--standalone", "--liveness=http://0.0.0.0:8080/healthz",
                         "--namespace=team-a", "--namespace=team-b"]
    assert {e["name"]: e.get("value") for e in c["env"]}["SPARKBOOK_NAMESPACES"] == "team-a,team-b"
    # The same rules as cluster-wide, minus kopf's cluster-scoped CRD watch and the profiles.
    cluster_rules = the(render(), "ClusterRole")["rules"]
    assert roles["team-a"]["rules"] == [r for r in cluster_rules if "apiextensions.k8s.io" not in r["apiGroups"]
                                        and not flatten([r]) <= PROFILE_RULES]


@pytest.mark.parametrize("values", [{}, {"watchNamespaces": ["team-a"]}, {"replicaCount": 2, "leaderElection": {
    "enabled": True}}], ids=["default", "namespaced", "leader-election"])
def test_the_operator_pod_passes_the_same_hardening_as_the_pods_it_makes(values):
    """tests/pod_rules.py is the one rule set for the driver, executor and notebook pods too."""
    pod = the(render(values), "Deployment")["spec"]["template"]["spec"]
    assert hardening_problems(pod, needs_api_token=True) == []


def test_optional_values(tmp_path):
    objs = render(EVERYTHING)
    pod = the(objs, "Deployment")["spec"]["template"]
    spec = pod["spec"]
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["nodeSelector"] == EVERYTHING["nodeSelector"]
    assert spec["tolerations"] == EVERYTHING["tolerations"]
    assert spec["affinity"] == EVERYTHING["affinity"]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["metadata"]["annotations"] == EVERYTHING["podAnnotations"]
    (c,) = spec["containers"]
    assert c["image"] == "ghcr.io/sparkbook/operator@sha256:" + "0" * 64
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["args"][-1] == "--verbose"
    assert {"name": "SPARKBOOK_WORKERS", "value": "8"} in c["env"]
    monitor = the(objs, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    svc = the(objs, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == svc["spec"]["ports"][0]["name"] == "metrics"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [chart.NAMESPACE]}
    # No digest: no skip of the digest check either.
    assert "CKV_K8S_43" not in json.dumps(the(objs, "Deployment")["metadata"].get("annotations", {}))
    off = render({"serviceMonitor": {"enabled": False}, "metrics": {"service": {"enabled": False}},
                  "networkPolicy": {"enabled": False}, "rbac": {"create": False},
                  "serviceAccount": {"create": False, "name": "existing"}})
    assert sorted(o["kind"] for o in off) == ["Deployment", *["NotebookProfile"] * 5]
    assert the(off, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "existing"
    # The JupyterHub hub's RBAC: a RoleBinding in team-a, namespaces made by the spawner.
    (hub_binding,) = [o for o in find(objs, "RoleBinding") if o["metadata"]["name"] == "sparkbook-jupyterhub"]
    assert hub_binding["metadata"]["namespace"] == "team-a"
    assert ("", "namespaces", "create") in flatten(find(objs, "ClusterRole", "sparkbook-jupyterhub-profiles")[0]["rules"])


# --- event logs and the History Server ----------------------------------------------------------


def history_objects(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """kind -> the History Server's object of that kind."""
    found = {o["kind"]: o for o in objs if o["metadata"]["name"] == "sparkbook-history"}
    assert len(found) == len([o for o in objs if o["metadata"]["name"] == "sparkbook-history"])
    return found


def operator_env(objs: list[dict[str, Any]]) -> dict[str, str | None]:
    (deploy,) = find(objs, "Deployment", "sparkbook")
    (c,) = deploy["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in c["env"]}


def history_conf(objs: list[dict[str, Any]]) -> dict[str, str]:
    text = history_objects(objs)["ConfigMap"]["data"]["history.conf"]
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_no_history_server_nor_event_logs_by_default(default_objs, namespaced_objs):
    for objs in (default_objs, namespaced_objs):
        assert history_objects(objs) == {}
        assert not [k for k in operator_env(objs) if "EVENT_LOG" in k or "HISTORY" in k]
    # Event logs without a History Server: the operator's default only.
    objs = render({"eventLog": {"enabled": True, "url": "s3a://b/events", "credentialsSecret": "s3"}})
    assert history_objects(objs) == {}
    env = operator_env(objs)
    assert {k: v for k, v in env.items() if "EVENT_LOG" in k or "HISTORY" in k} == {
        "SPARKBOOK_EVENT_LOG_ENABLED": "true", "SPARKBOOK_EVENT_LOG_URL": "s3a://b/events",
        "SPARKBOOK_EVENT_LOG_CREDENTIALS_SECRET": "s3"}
    # An external History Server: advertised, not deployed.
    objs = render({"historyServer": {"url": "https://history.example.com/"}})
    assert history_objects(objs) == {}
    assert operator_env(objs)["SPARKBOOK_HISTORY_SERVER_URL"] == "https://history.example.com"


def test_history_server_on_a_claim():
    objs = render(HISTORY)
    hs = history_objects(objs)
    assert sorted(hs) == ["ConfigMap", "Deployment", "NetworkPolicy", "Service", "ServiceAccount"]
    for obj in hs.values():
        assert obj["metadata"]["namespace"] == chart.NAMESPACE
        assert obj["metadata"]["labels"]["app.kubernetes.io/component"] == "history-server"
    deploy, svc = hs["Deployment"], hs["Service"]
    assert deploy["spec"]["replicas"] == 1 and deploy["spec"]["strategy"] == {"type": "Recreate"}
    pod = deploy["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == names.DEFAULT_SPARK_IMAGE and c["imagePullPolicy"] == "Always"
    assert c["command"] == [f"{names.SPARK_HOME}/bin/spark-class", "org.apache.spark.deploy.history.HistoryServer",
                            "--properties-file", "/etc/spark-history/history.conf"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["SPARK_NO_DAEMONIZE"] == "true" and env["SPARK_DAEMON_MEMORY"] == "640m"
    assert "envFrom" not in c
    assert c["ports"] == [{"name": "http", "containerPort": names.HISTORY_PORT, "protocol": "TCP"}]
    for probe in ("readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/api/v1/version", "port": "http"}
    assert set(c["resources"]) == {"requests", "limits"}
    # Restricted, as the image's own user (the drivers' too: the logs are its files).
    assert hardening_problems(pod) == []
    assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["runAsGroup"] == names.SPARK_UID
    assert pod["securityContext"]["fsGroup"] == names.SPARK_UID
    assert pod["serviceAccountName"] == hs["ServiceAccount"]["metadata"]["name"] == "sparkbook-history"
    assert hs["ServiceAccount"]["automountServiceAccountToken"] is False
    # The claim of that name in the release namespace, read-write for the cleaner; a read-only
    # root file system with emptyDirs where the JVM and Spark write.
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts[names.EVENT_LOG_DIR]["readOnly"] is False
    assert volumes[mounts[names.EVENT_LOG_DIR]["name"]]["persistentVolumeClaim"] == {
        "claimName": "spark-events", "readOnly": False}
    for path in ("/tmp", f"{names.SPARK_HOME}/work-dir"):
        assert "emptyDir" in volumes[mounts[path]["name"]]
    assert mounts["/etc/spark-history"]["readOnly"] is True
    assert volumes[mounts["/etc/spark-history"]["name"]]["configMap"]["name"] == hs["ConfigMap"]["metadata"]["name"]
    assert history_conf(objs) == {
        "spark.history.fs.logDirectory": f"file://{names.EVENT_LOG_DIR}",
        "spark.history.ui.port": str(names.HISTORY_PORT),
        "spark.history.fs.update.interval": "10s",
        "spark.history.retainedApplications": "50",
        "spark.history.fs.cleaner.enabled": "true",
        "spark.history.fs.cleaner.maxAge": "7d",
    }
    # The Service, and the operator advertising it (status and notebook links).
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["ports"] == [{"name": "http", "port": names.HISTORY_PORT, "targetPort": "http", "protocol": "TCP"}]
    assert svc["spec"]["selector"] == deploy["spec"]["selector"]["matchLabels"] == \
        deploy["spec"]["template"]["metadata"]["labels"]
    # Neither the operator's Deployment nor its Service or NetworkPolicy select the History Server's pod.
    operator = find(objs, "Deployment", "sparkbook")[0]
    assert not operator["spec"]["selector"]["matchLabels"].items() <= svc["spec"]["selector"].items()
    env = operator_env(objs)
    assert env["SPARKBOOK_HISTORY_SERVER_URL"] == f"http://sparkbook-history.{chart.NAMESPACE}.svc:{names.HISTORY_PORT}"
    assert env["SPARKBOOK_EVENT_LOG_ENABLED"] == "true" and env["SPARKBOOK_EVENT_LOG_PVC"] == "spark-events"
    assert "SPARKBOOK_EVENT_LOG_URL" not in env and "SPARKBOOK_EVENT_LOG_CREDENTIALS_SECRET" not in env
    # The notebook pods' proxy reaches it at that URL: it is an in-cluster Service address.
    from sparkbook.build.notebook import history_env
    link = {e["name"]: e["value"] for e in history_env(history_url=env["SPARKBOOK_HISTORY_SERVER_URL"])}
    assert link[names.HISTORY_LINK_ENV] == f"/proxy/sparkbook-history.{chart.NAMESPACE}.svc:{names.HISTORY_PORT}"


def test_history_server_network_policy_admits_notebooks_and_the_release_namespace():
    policy = history_objects(render(HISTORY))["NetworkPolicy"]
    deploy = history_objects(render(HISTORY))["Deployment"]
    assert policy["spec"]["podSelector"]["matchLabels"] == deploy["spec"]["selector"]["matchLabels"]
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    notebook_pod = names.notebook_labels("alice")
    (notebooks, release) = rule["from"]
    assert notebooks["namespaceSelector"] == {}
    assert notebooks["podSelector"]["matchLabels"].items() <= notebook_pod.items()
    assert release == {"podSelector": {}}
    # A driver pod is no notebook.
    assert not notebooks["podSelector"]["matchLabels"].items() <= names.session_labels("analytics", "driver").items()
    extra = history_objects(render(HISTORY_S3))["NetworkPolicy"]["spec"]["ingress"][0]["from"]
    assert extra[2:] == HISTORY_S3["historyServer"]["networkPolicy"]["extraFrom"]
    off = render({**HISTORY, "historyServer": {"enabled": True, "networkPolicy": {"enabled": False}}})
    assert "NetworkPolicy" not in history_objects(off)


def test_history_server_on_an_object_store():
    objs = render(HISTORY_S3)
    hs = history_objects(objs)
    pod = hs["Deployment"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["image"] == HISTORY_S3["historyServer"]["image"] and c["imagePullPolicy"] == "IfNotPresent"
    # The credentials Secret (of the release namespace) as the environment; no claim.
    assert c["envFrom"] == [{"secretRef": {"name": "s3-credentials"}}]
    assert names.EVENT_LOG_DIR not in {m["mountPath"] for m in c["volumeMounts"]}
    assert not [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert hardening_problems(pod) == []
    assert history_conf(objs) == {
        "spark.history.fs.logDirectory": "s3a://spark-logs/events",
        "spark.history.ui.port": str(names.HISTORY_PORT),
        "spark.history.fs.update.interval": "10s",
        "spark.history.retainedApplications": "20",
        "spark.history.fs.cleaner.enabled": "false",
        "spark.hadoop.fs.s3a.endpoint": "http://minio.storage:9000",
    }
    env = operator_env(objs)
    assert env["SPARKBOOK_EVENT_LOG_URL"] == "s3a://spark-logs/events"
    assert env["SPARKBOOK_EVENT_LOG_CREDENTIALS_SECRET"] == "s3-credentials"
    assert "SPARKBOOK_EVENT_LOG_PVC" not in env
    # A claim with the cleaner off is mounted read-only: nothing in the History Server writes there.
    ro = history_objects(render({**HISTORY, "historyServer": {"enabled": True, "cleaner": {"enabled": False}}}))
    ro_pod = ro["Deployment"]["spec"]["template"]["spec"]
    (ro_mount,) = [m for m in ro_pod["containers"][0]["volumeMounts"] if m["mountPath"] == names.EVENT_LOG_DIR]
    assert ro_mount["readOnly"] is True
    (ro_volume,) = [v for v in ro_pod["volumes"] if v["name"] == ro_mount["name"]]
    assert ro_volume["persistentVolumeClaim"] == {"claimName": "spark-events", "readOnly": True}


def test_history_server_values_flow_into_its_config():
    values = {**HISTORY, "historyServer": {"enabled": True, "updateInterval": "30s", "retainedApplications": 1000000,
                                           "cleaner": {"maxAge": "30d", "maxNumFiles": 500},
                                           "url": "https://history.example.com"}}
    objs = render(values)
    conf = history_conf(objs)
    assert conf["spark.history.fs.update.interval"] == "30s"
    assert conf["spark.history.retainedApplications"] == "1000000"
    assert conf["spark.history.fs.cleaner.maxAge"] == "30d" and conf["spark.history.fs.cleaner.maxNum"] == "500"
    # Deployed, and advertised at the given address (an ingress in front of it).
    assert "Deployment" in history_objects(objs)
    assert operator_env(objs)["SPARKBOOK_HISTORY_SERVER_URL"] == "https://history.example.com"
    # A change of history.conf changes the pod template (its checksum), so the pod rolls.
    def checksum(objs: list[dict[str, Any]]) -> str:
        return history_objects(objs)["Deployment"]["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    assert checksum(objs) != checksum(render(HISTORY)) == checksum(render(HISTORY))
    # A long release name still gives names Kubernetes takes (a Service name is a DNS-1035 label).
    long = chart.objects(chart.render(HISTORY, root=ROOT, name="a" * 60))
    (svc,) = [o for o in long if o["kind"] == "Service" and o["metadata"]["name"].endswith("-history")]
    assert len(svc["metadata"]["name"]) <= 63


def test_history_properties_of_the_workload_test_are_the_charts():
    """tests/history.py runs a real History Server (tests/workload/test_history_server.py) with
    the chart's properties; only the directory, the port and a faster scan differ."""
    from tests.history import history_properties

    tested = dict(line.split("=", 1) for line in history_properties(log_directory="file:///x", port=1).splitlines())
    shipped = history_conf(render(HISTORY))
    local = {"spark.history.fs.logDirectory", "spark.history.ui.port", "spark.history.fs.update.interval"}
    assert set(tested) == set(shipped)
    assert {k: v for k, v in tested.items() if k not in local} == {k: v for k, v in shipped.items() if k not in local}


def test_history_server_metrics_through_the_jmx_exporter_agent():
    """Spark's History Server has no metrics system (no sink, no Prometheus servlet): the JVM's
    MBeans come from a JMX exporter Java agent in its JVM, on a port of its own."""
    objs = render(HISTORY_METRICS)
    hs = history_objects(objs)
    assert sorted(hs) == ["ConfigMap", "Deployment", "NetworkPolicy", "Service", "ServiceAccount", "ServiceMonitor"]
    pod = hs["Deployment"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    # The agent's flag first (its jar in the image, its port, its config from the ConfigMap), then javaOpts.
    assert env["SPARK_DAEMON_JAVA_OPTS"] == ("-javaagent:/opt/spark/jars/jmx_prometheus_javaagent.jar="
                                             "9404:/etc/spark-history/jmx-exporter.yaml -XX:+ExitOnOutOfMemoryError")
    config = yaml.safe_load(hs["ConfigMap"]["data"]["jmx-exporter.yaml"])
    assert config["lowercaseOutputName"] is True
    assert config["includeObjectNames"] and all(n.startswith("java.lang:") for n in config["includeObjectNames"])
    assert {"java.lang:type=Memory", "java.lang:type=GarbageCollector,*", "java.lang:type=Threading"} <= set(
        config["includeObjectNames"])
    assert config["rules"] == [{"pattern": ".*"}]
    # The config is a file of the mounted ConfigMap; history.conf is unchanged by metrics.
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == "/etc/spark-history"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"] == {"name": hs["ConfigMap"]["metadata"]["name"]}
    assert history_conf(objs) == history_conf(render(HISTORY))
    annotations = hs["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert set(annotations) == {"checksum/config", "checksum/jmx-exporter"}
    # The port, on the container and the Service; the probes stay on the UI's port.
    assert c["ports"] == [{"name": "http", "containerPort": names.HISTORY_PORT, "protocol": "TCP"},
                          {"name": "metrics", "containerPort": 9404, "protocol": "TCP"}]
    assert c["readinessProbe"]["httpGet"]["port"] == c["livenessProbe"]["httpGet"]["port"] == "http"
    svc = hs["Service"]
    assert svc["spec"]["ports"][1] == {"name": "metrics", "port": 9404, "targetPort": "metrics", "protocol": "TCP"}
    assert hardening_problems(pod) == []
    # The ServiceMonitor scrapes that Service's port, in the release namespace.
    monitor = hs["ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [chart.NAMESPACE]}
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    # It selects no operator Service, and the operator's ServiceMonitor does not select this one.
    for operator_svc in find(objs, "Service"):
        if operator_svc is not svc:
            assert not monitor["spec"]["selector"]["matchLabels"].items() <= operator_svc["metadata"]["labels"].items()
    both = render({**HISTORY_METRICS, "serviceMonitor": {"enabled": True}})
    (operator_monitor,) = [m for m in find(both, "ServiceMonitor") if m["metadata"]["name"] == "sparkbook"]
    assert not operator_monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    # The NetworkPolicy: the UI's rule unchanged, the metrics port from the release namespace and
    # from where the operator's metrics may be scraped.
    (ui, metrics) = hs["NetworkPolicy"]["spec"]["ingress"]
    assert ui == history_objects(render(HISTORY))["NetworkPolicy"]["spec"]["ingress"][0]
    assert metrics == {"ports": [{"port": "metrics", "protocol": "TCP"}], "from": [{"podSelector": {}}, *MONITORING]}
    operator_policy = find(objs, "NetworkPolicy", "sparkbook")[0]
    assert operator_policy["spec"]["ingress"][1]["from"] == MONITORING
    # Without metricsFrom the operator's metrics port is open to anyone, and so is this one.
    open_ = history_objects(render({**HISTORY_METRICS, "networkPolicy": {"metricsFrom": []}}))["NetworkPolicy"]
    assert open_["spec"]["ingress"][1] == {"ports": [{"port": "metrics", "protocol": "TCP"}]}
    # Another port and jar, no ServiceMonitor.
    other = history_objects(render({**HISTORY, "historyServer": {"enabled": True, "metrics": {
        "enabled": True, "port": 19404, "javaagentJar": "/opt/jmx/agent.jar"}}}))
    (oc,) = other["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert {e["name"]: e["value"] for e in oc["env"]}["SPARK_DAEMON_JAVA_OPTS"] == \
        "-javaagent:/opt/jmx/agent.jar=19404:/etc/spark-history/jmx-exporter.yaml"
    assert oc["ports"][1]["containerPort"] == other["Service"]["spec"]["ports"][1]["port"] == 19404
    assert "ServiceMonitor" not in other


def test_history_server_without_metrics_has_no_agent_nor_port():
    hs = history_objects(render(HISTORY))
    (c,) = hs["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert "SPARK_DAEMON_JAVA_OPTS" not in {e["name"] for e in c["env"]}
    assert set(hs["ConfigMap"]["data"]) == {"history.conf"}
    assert [p["name"] for p in c["ports"]] == [p["name"] for p in hs["Service"]["spec"]["ports"]] == ["http"]
    assert len(hs["NetworkPolicy"]["spec"]["ingress"]) == 1
    assert set(hs["Deployment"]["spec"]["template"]["metadata"]["annotations"]) == {"checksum/config"}
    # javaOpts alone: the JVM options, no agent.
    tuned = history_objects(render({**HISTORY, "historyServer": {"enabled": True, "javaOpts": "-XX:+UseZGC"}}))
    (tc,) = tuned["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert {e["name"]: e["value"] for e in tc["env"]}["SPARK_DAEMON_JAVA_OPTS"] == "-XX:+UseZGC"
    # Metrics values without a History Server deploy nothing.
    assert history_objects(render({"historyServer": {"metrics": {"enabled": True, "serviceMonitor": {
        "enabled": True}}}})) == {}


def test_namespaced_install_with_the_history_server():
    """watchNamespaces [team-a, team-b] with the History Server: its objects are in the release
    namespace, the operator advertises it, and it adds no RBAC at all (it never calls the API),
    so the install stays without cluster-wide permissions beyond the profiles' ClusterRole.
    (With a claim, the History Server reads the release namespace's: sessions in team-a and
    team-b need an object store URL to show up there; docs/history-server.md, "Limits".)"""
    objs = render(HISTORY_NAMESPACED)
    hs = history_objects(objs)
    assert sorted(hs) == ["ConfigMap", "Deployment", "NetworkPolicy", "Service", "ServiceAccount"]
    for obj in hs.values():
        assert obj["metadata"]["namespace"] == chart.NAMESPACE
    volumes = hs["Deployment"]["spec"]["template"]["spec"]["volumes"]
    assert {"claimName": "spark-events", "readOnly": False} in [v.get("persistentVolumeClaim") for v in volumes]
    env = operator_env(objs)
    assert env["SPARKBOOK_HISTORY_SERVER_URL"] == f"http://sparkbook-history.{chart.NAMESPACE}.svc:{names.HISTORY_PORT}"
    assert env["SPARKBOOK_NAMESPACES"] == "team-a,team-b"
    assert env["SPARKBOOK_EVENT_LOG_ENABLED"] == "true" and env["SPARKBOOK_EVENT_LOG_PVC"] == "spark-events"
    # RBAC exactly as without the History Server: the profiles' ClusterRole and the Roles in
    # team-a and team-b, nothing bound to the History Server's ServiceAccount.
    rbac_kinds = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
    assert [o for o in objs if o["kind"] in rbac_kinds] == [o for o in render(NAMESPACED) if o["kind"] in rbac_kinds]
    assert [o["metadata"]["name"] for o in find(objs, "ClusterRole")] == ["sparkbook-profiles"]
    for binding in find(objs, "ClusterRoleBinding") + find(objs, "RoleBinding"):
        assert "sparkbook-history" not in {s["name"] for s in binding["subjects"]}
    assert hs["ServiceAccount"]["automountServiceAccountToken"] is False
    # Everything else is the namespaced install's.
    assert [o for o in objs if o["metadata"]["name"] != "sparkbook-history" and o["kind"] != "Deployment"] == \
        [o for o in render(NAMESPACED) if o["kind"] != "Deployment"]


# Event-log values that cannot work: the render fails and says what to set.
REFUSED_BY_TEMPLATE = [
    ({"eventLog": {"enabled": True}}, "eventLog.enabled=true needs eventLog.persistentVolumeClaim or eventLog.url"),
    ({"historyServer": {"enabled": True}}, "historyServer.enabled=true needs eventLog.persistentVolumeClaim or"),
    ({"eventLog": {"enabled": True, "credentialsSecret": "s3"}, "historyServer": {"enabled": True}},
     "needs eventLog.persistentVolumeClaim or eventLog.url"),
    ({"eventLog": {"persistentVolumeClaim": "spark-events", "url": "s3a://b/e"}}, "not both"),
    ({"eventLog": {"enabled": True, "persistentVolumeClaim": "spark-events", "url": "s3a://b/e"},
      "historyServer": {"enabled": True}}, "not both"),
    ({**HISTORY, "historyServer": {"enabled": True, "metrics": {"serviceMonitor": {"enabled": True}}}},
     "historyServer.metrics.serviceMonitor.enabled needs historyServer.metrics.enabled"),
]


@pytest.mark.parametrize("values, text", REFUSED_BY_TEMPLATE, ids=[str(i) for i in range(len(REFUSED_BY_TEMPLATE))])
def test_event_log_values_that_cannot_work_are_refused(values, text):
    with pytest.raises(helm.HelmError) as refused:
        chart.render(values, root=ROOT)
    assert text in str(refused.value)


# --- generated files ---------------------------------------------------------------------------


def test_generated_files_do_not_drift():
    assert chart.check(ROOT) == []


def test_check_notices_drift(tmp_path):
    copy = tmp_path / "repo"
    for part in ("crds", "charts", "manifests"):
        shutil.copytree(ROOT / part, copy / part)
    assert chart.check(copy) == []
    (copy / "charts/sparkbook/crds/sparksessions.sparkbook.io.yaml").write_text("edited\n")
    (copy / "charts/sparkbook/crds/stale.yaml").write_text("{}\n")
    (copy / "manifests/install.yaml").unlink()
    problems = chart.check(copy)
    assert len(problems) == 3, problems
    chart.write(copy)
    assert chart.check(copy) == []


def test_manifests_install_everything_in_order():
    docs = manifest_docs()
    assert docs[0] == chart.namespace_object()
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    assert crds == [yaml.safe_load(p.read_text()) for p in sorted((ROOT / "crds").glob("*.yaml"))]
    assert [d["kind"] for d in docs[1:4]] == ["CustomResourceDefinition"] * 3
    rest = docs[4:]
    # The profiles are in profiles.yaml: one apply cannot create a CRD and objects of its kind.
    assert rest == [o for o in render() if o["kind"] != "NotebookProfile"]
    profiles = [d for d in yaml.safe_load_all((ROOT / chart.PROFILES).read_text()) if d]
    assert profiles == [o for o in render() if o["kind"] == "NotebookProfile"]
    for d in rest:
        if d["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert d["metadata"]["namespace"] == chart.NAMESPACE


# --- validation --------------------------------------------------------------------------------


def test_kubernetes_validate_strict():
    """Every object, in every render and in manifests/, against the Kubernetes 1.30 schemas."""
    # The validator is really strict: an unknown field fails.
    bad = {**the(render(), "Service"), "surprise": True}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBE_VERSION, strict=True)

    checked = 0
    sources = {"default": render(), "namespaced": render(NAMESPACED), "everything": render(EVERYTHING),
               "jupyterhub": render(JUPYTERHUB), "history": render(HISTORY), "history-s3": render(HISTORY_S3),
               "history-metrics": render(HISTORY_METRICS), "history-namespaced": render(HISTORY_NAMESPACED),
               "manifests": manifest_docs()}
    for source, objs in sources.items():
        for obj in objs:
            if obj["apiVersion"] == names.API_VERSION:
                # Our own custom resources: their schema is our CRD, which the API emulator and
                # the real API server apply to them (tests/api/test_profiles.py, tests/e2e).
                assert obj["kind"] == "NotebookProfile"
                continue
            if obj["apiVersion"] == "monitoring.coreos.com/v1":
                # A Prometheus Operator CRD: no schema in kubernetes-validate (checked in
                # test_optional_values and test_history_server_metrics_through_the_jmx_exporter_agent).
                assert obj["kind"] == "ServiceMonitor"
                continue
            try:
                kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                pytest.fail(f"{source}: {obj['kind']}/{obj['metadata']['name']}: {path}: {e.message}")
            checked += 1
    assert checked >= 35


def _checkov() -> str:
    """checkov lives in its own virtualenv (make venv): its pins (packaging<24, python-dateutil<3
    through botocore) conflict with pytest 9 and kubernetes 37 in the project's."""
    for candidate in (os.environ.get("CHECKOV"), str(Path(sys.prefix) / "checkov" / "bin" / "checkov"),
                      shutil.which("checkov")):
        if candidate and Path(candidate).exists():
            return candidate
    pytest.fail("checkov is not installed: `make venv` installs it into .venv/checkov")


def test_checkov_finds_nothing(tmp_path):
    files = {
        "default.yaml": chart.render(root=ROOT),
        "namespaced.yaml": chart.render(NAMESPACED, root=ROOT),
        "everything.yaml": chart.render(EVERYTHING, root=ROOT),
        "jupyterhub.yaml": chart.render(JUPYTERHUB, root=ROOT),
        "history.yaml": chart.render(HISTORY, root=ROOT),
        "history-s3.yaml": chart.render(HISTORY_S3, root=ROOT),
        "history-metrics.yaml": chart.render(HISTORY_METRICS, root=ROOT),
        "history-namespaced.yaml": chart.render(HISTORY_NAMESPACED, root=ROOT),
    }
    for name, rendered in files.items():
        (tmp_path / name).write_text("---\n".join(doc for _, doc in chart.rendered_documents(rendered)))
    shutil.copy(ROOT / chart.INSTALL, tmp_path / "install.yaml")
    result = subprocess.run(
        [_checkov(), "--framework", "kubernetes", "--directory", str(tmp_path), "--output", "json",
         "--skip-download", "--compact"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_NO_OUTPUT_COLORS": "true"},
    )
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    assert [r["check_type"] for r in reports] == ["kubernetes"], result.stderr[-2000:]
    (report,) = reports
    failed = [(c["check_id"], c["check_name"], c["resource"], c["file_path"])
              for c in report["results"]["failed_checks"]]
    assert failed == [], failed
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["passed"] > 100
    # Every skip is an annotation, with a reason, on the object itself.
    scanned = {name: [d for d in yaml.safe_load_all((tmp_path / name).read_text()) if d]
               for name in [*files, "install.yaml"]}
    for skip in report["results"]["skipped_checks"]:
        kind, namespace, name = skip["resource"].split(".")[:3]
        (obj,) = find(scanned[skip["file_path"].lstrip("/")], kind, name)
        reasons = {v.split("=", 1)[0]: v.split("=", 1)[1] for k, v in obj["metadata"].get("annotations", {}).items()
                   if k.startswith("checkov.io/skip")}
        assert len(reasons.get(skip["check_id"], "")) > 20, (skip["check_id"], skip["resource"])
    # The operator's: CKV_K8S_38 (it mounts a token), CKV_K8S_43 (no digest before a release). The
    # History Server's: CKV_K8S_40 (the Spark image's UID 185), CKV_K8S_43 (sparkImage is a tag),
    # CKV_K8S_35 (object store credentials in the environment, where S3A reads them).
    skipped = {(s["check_id"], s["resource"].split(".")[2]) for s in report["results"]["skipped_checks"]}
    assert skipped == {("CKV_K8S_38", "sparkbook"), ("CKV_K8S_43", "sparkbook"), ("CKV_K8S_40", "sparkbook-history"),
                       ("CKV_K8S_43", "sparkbook-history"), ("CKV_K8S_35", "sparkbook-history")}, skipped
    # Skips follow the values: none for a digest, nor for credentials the History Server does not get.
    by_file = {(s["check_id"], s["resource"].split(".")[2], s["file_path"].lstrip("/"))
               for s in report["results"]["skipped_checks"]}
    assert ("CKV_K8S_43", "sparkbook-history", "history-s3.yaml") not in by_file
    assert ("CKV_K8S_35", "sparkbook-history", "history.yaml") not in by_file
    assert ("CKV_K8S_35", "sparkbook-history", "history-s3.yaml") in by_file


# --- RBAC --------------------------------------------------------------------------------------

# Every permission the chart grants, derived from the code, with the reason. (group, resource, verb).
K = "sparkbook-operator"   # sparkbook.kube.Kube (User-Agent sparkbook-operator)
INF = "informer"           # sparkbook.informer: LIST + WATCH of every kind the operator reads
ESC = "escalation"         # held only because the driver Role grants it (RBAC escalation prevention)
ADM = "admission"          # OwnerReferencesPermissionEnforcement: blockOwnerDeletion on children
WATCHED = ["pods", "services", "serviceaccounts", "secrets", "configmaps", "persistentvolumeclaims"]
DERIVED: dict[tuple[str, str, str], str] = {
    **{("", r, v): INF for r in WATCHED for v in ("list", "watch")},
    **{(g, r, v): INF for g, r in [("rbac.authorization.k8s.io", "roles"),
                                     ("rbac.authorization.k8s.io", "rolebindings"), ("apps", "statefulsets"),
                                     ("networking.k8s.io", "networkpolicies"),
                                     ("sparkbook.io", "sparksessions"), ("sparkbook.io", "notebookservers"),
                                     ("sparkbook.io", "notebookprofiles")]
       for v in ("list", "watch")},
    # Kube.create (Controller._ensure, _ensure_pvc, the driver pod) and Kube.get after a 409.
    **{(g, r, v): K for g, r in [("", "services"), ("", "serviceaccounts"), ("", "secrets"), ("", "configmaps"),
                                  ("", "persistentvolumeclaims"), ("rbac.authorization.k8s.io", "roles"),
                                  ("rbac.authorization.k8s.io", "rolebindings"), ("apps", "statefulsets"),
                                  ("networking.k8s.io", "networkpolicies"), ("sparkbook.io", "sparksessions")]
       for v in ("create", "get")},
    ("", "pods", "create"): K,
    # Kube.apply (server-side apply = PATCH) of every child but Secrets (create-only) and Pods.
    **{(g, r, "patch"): K for g, r in [("", "services"), ("", "serviceaccounts"), ("", "configmaps"),
                                        ("", "persistentvolumeclaims"), ("rbac.authorization.k8s.io", "roles"),
                                        ("rbac.authorization.k8s.io", "rolebindings"), ("apps", "statefulsets"),
                                        ("networking.k8s.io", "networkpolicies"), ("sparkbook.io", "sparksessions")]},
    ("sparkbook.io", "notebookservers", "patch"): K,        # Kube.annotate: culled-at
    ("sparkbook.io", "notebookservers", "get"): K,          # Controller._still_there after children went
    ("sparkbook.io", "sparksessions/status", "patch"): K,   # Kube.patch_status
    ("sparkbook.io", "notebookservers/status", "patch"): K,
    ("sparkbook.io", "notebookprofiles/status", "patch"): K,  # Valid, and how many servers name it
    ("", "pods", "delete"): K,                               # Kube.delete: drivers only
    ("", "events", "create"): K,                             # Kube.post_event (and kopf's warnings)
    # The driver Role (sparkbook.build.session.DRIVER_RULES) grants these; the operator must hold them.
    ("", "pods", "get"): ESC, ("", "pods", "patch"): ESC, ("", "pods", "deletecollection"): ESC,
    **{("", r, v): ESC for r in ("services", "configmaps", "persistentvolumeclaims")
       for v in ("delete", "deletecollection")},
    ("sparkbook.io", "sparksessions/finalizers", "update"): ADM,
    ("sparkbook.io", "notebookservers/finalizers", "update"): ADM,
}
# What the emulator run below does not exercise, and why.
NOT_EXERCISED = {
    ("sparkbook.io", "notebookservers", "patch"): "culling needs a real Jupyter server (tests/api/test_idle.py)",
    ("sparkbook.io", "sparksessions", "get"): "the owned SparkSession's name is never squatted here",
    ("", "persistentvolumeclaims", "get"): "the home PVC's name is never squatted here",
    **{k: "escalation prevention, not a request" for k, v in DERIVED.items() if v == ESC},
    **{k: "an admission check, not a request" for k, v in DERIVED.items() if v == ADM},
}


def flatten(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    out = set()
    for rule in rules:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule  # no resourceNames, no nonResourceURLs
        for g in rule["apiGroups"]:
            for r in rule["resources"]:
                for v in rule["verbs"]:
                    out.add((g, r, v))
    return out


def test_rbac_is_exactly_what_the_code_needs(default_objs):
    granted = flatten(the(default_objs, "ClusterRole")["rules"])
    assert granted == set(DERIVED), (
        f"granted but not derived: {sorted(granted - set(DERIVED))}; derived but not granted: "
        f"{sorted(set(DERIVED) - granted)}"
    )
    for group, resource, verb in granted:
        assert "*" not in (group, resource, verb)
        assert verb not in ("escalate", "bind", "impersonate")
    # Escalation prevention: the operator holds every permission of the Role it creates for drivers.
    for rule in DRIVER_RULES:
        for g in rule["apiGroups"]:
            for r in rule["resources"]:
                for v in rule["verbs"]:
                    assert (g, r, v) in granted, (g, r, v)


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[tuple[str, str, str, str | None]]]:
    """Run the real operator (cluster-wide, as the chart's default) against the API emulator
    through a SparkSession's and a NotebookServer's life, and collect what it asked the API for:
    (group, resource[/subresource], verb, namespace)."""
    tmp = tmp_path_factory.mktemp("rbac")
    with EmulatorThread(crds=sorted((ROOT / "crds").glob("*.yaml"))) as emu:
        kubeconfig = emu.write_kubeconfig(tmp / "kubeconfig")
        ns = f"rbac-{uuid.uuid4().hex[:6]}"
        emu.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        # A squatter on a child's name: the operator's create gets a 409, then it reads the object.
        emu.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "analytics-ui", "namespace": ns},
                    "spec": {"ports": [{"port": 80}]}})
        op = Operator(kubeconfig, tmp / "operator.log").start()
        try:
            _life(emu, ns)
        except AssertionError as e:
            op.stop()
            raise AssertionError(f"{e}\noperator log:\n{op.logs()[-8000:]}") from None
        op.stop()
        records = emu.requests
    assert "Traceback" not in op.logs(), op.logs()[-5000:]
    # Every request was the operator's: the test drives the emulator in-process, not over HTTP.
    agents = {r.user_agent or "" for r in records}
    assert all("kopf" in a or a.startswith("sparkbook-operator") for a in agents), agents
    yield {
        (r.group or "", r.plural + (f"/{r.subresource}" if r.subresource else ""), r.verb or "", r.namespace)
        for r in records
        if r.plural is not None  # discovery (/api, /apis/...) is a non-resource URL every client may read
    }


def _life(emu: EmulatorThread, ns: str) -> None:
    api = names.API_VERSION
    session = yaml.safe_load((ROOT / "examples" / "sparksession.yaml").read_text())
    session["metadata"]["namespace"] = ns
    emu.create(session)

    def stalled() -> bool:
        conditions = ((emu.get(api, "sparksessions", ns, "analytics") or {}).get("status") or {}).get("conditions", [])
        return any(c["type"] == "Stalled" and c["status"] == "True" for c in conditions)

    # The squatter stalls the session; once it is gone, the next pass creates the real Service.
    wait_for(stalled, timeout=15, what="Stalled by the squatter")
    emu.delete("v1", "services", ns, "analytics-ui")
    wait_for(lambda: emu.get("v1", "pods", ns, "analytics-driver"), what="driver pod")
    kubelet_runs(emu, ns, "analytics-driver")
    wait_for(lambda: (emu.get(api, "sparksessions", ns, "analytics") or {}).get("status", {}).get("phase") == "Running",
             what="Running")
    # Suspending deletes the driver.
    emu.patch(api, "sparksessions", ns, "analytics", {"spec": {"suspend": True}})
    wait_for(lambda: emu.get("v1", "pods", ns, "analytics-driver") is None, what="driver deleted")

    # A server type and a notebook made from it: the operator watches profiles and writes their status.
    for doc in yaml.safe_load_all((ROOT / chart.PROFILES).read_text()):
        if doc:
            emu.create(doc)
    profiled = yaml.safe_load((ROOT / "examples" / "notebookserver-profile.yaml").read_text())
    profiled["metadata"]["namespace"] = ns
    emu.create(profiled)
    wait_for(lambda: ((emu.get(api, "notebookprofiles", None, "spark-dynamic") or {}).get("status") or {})
             .get("notebookServers") == 1, what="the profile's status")

    notebook = yaml.safe_load((ROOT / "examples" / "notebookserver.yaml").read_text())
    notebook["metadata"]["namespace"] = ns
    emu.create(notebook)
    wait_for(lambda: emu.get("apps/v1", "statefulsets", ns, "alice"), timeout=15, what="notebook StatefulSet")
    wait_for(lambda: statefulset_controller(emu, ns, "alice"), what="notebook pod")
    # Ready at an address where nothing listens: the idle check reads the token Secret, then gives up.
    kubelet_runs(emu, ns, "alice-0", ip="127.0.0.9")
    wait_for(lambda: emu.get("v1", "pods", ns, "alice-spark-driver"), what="owned session's driver")
    # Waking a notebook wakes the session it owns: the operator removes this annotation.
    emu.patch(api, "sparksessions", ns, "alice-spark", {"metadata": {"annotations": {names.IDLE_SUSPENDED_AT: "x"}}})
    wait_for(lambda: names.IDLE_SUSPENDED_AT not in (
        emu.get(api, "sparksessions", ns, "alice-spark")["metadata"].get("annotations") or {}), what="woken")

    # Children that lost their labels drop out of the operator's caches: it creates (409), reads,
    # finds them its own, and server-side applies them back. Every kind the operator applies.
    kinds = [("v1", "serviceaccounts", "analytics-spark"), ("rbac.authorization.k8s.io/v1", "roles", "analytics-spark"),
             ("rbac.authorization.k8s.io/v1", "rolebindings", "analytics-spark"),
             ("v1", "configmaps", "analytics-executor-template"), ("v1", "services", "analytics-connect"),
             ("v1", "secrets", "analytics-connect-token"), ("apps/v1", "statefulsets", "alice"),
             ("networking.k8s.io/v1", "networkpolicies", "analytics-network"),
             (api, "sparksessions", "alice-spark")]
    for api_version, plural, name in kinds:
        emu.patch(api_version, plural, ns, name, {"metadata": {"labels": {names.MANAGED_BY: None}}})
    # The home PVC keeps its notebook label (else it is a squatter): another label goes, and is put back.
    emu.patch("v1", "persistentvolumeclaims", ns, "alice-home", {"metadata": {"labels": {names.APP_NAME: None}}})
    emu.patch(api, "sparksessions", ns, "analytics", {"metadata": {"annotations": {"poke": "1"}}})
    emu.patch(api, "notebookservers", ns, "alice", {"metadata": {"annotations": {"poke": "1"}}})
    for api_version, plural, name in kinds:
        if plural == "secrets":
            continue  # create-only: read, never rewritten
        wait_for(lambda: (emu.get(api_version, plural, ns, name)["metadata"].get("labels") or {}).get(names.MANAGED_BY),
                 what=f"{plural}/{name} repaired")
    wait_for(lambda: (emu.get("v1", "persistentvolumeclaims", ns, "alice-home")["metadata"].get("labels") or {})
             .get(names.APP_NAME), what="PVC repaired")


def test_rbac_covers_every_request_the_operator_makes(traffic, default_objs):
    observed = {(g, r, v) for g, r, v, _ in traffic}
    cluster = flatten(the(default_objs, "ClusterRole")["rules"])
    assert observed - cluster == set(), "requests the ClusterRole does not allow"
    # Everything granted is either seen here or explained.
    unexplained = set(DERIVED) - observed - set(NOT_EXERCISED)
    assert unexplained == set(), "granted but neither requested nor explained"
    assert observed & set(NOT_EXERCISED) <= {("sparkbook.io", "sparksessions", "get"),
                                              ("", "persistentvolumeclaims", "get")}


def test_namespaced_install_covers_the_namespaced_operator(traffic, namespaced_objs, tmp_path):
    """`watchNamespaces`: the operator (SPARKBOOK_NAMESPACES, as the chart sets it) makes only
    requests in its namespaces that the Role there allows, and at the cluster scope only those on
    the NotebookProfiles that its profiles ClusterRole allows."""
    role = flatten(the([o for o in namespaced_objs if o.get("metadata", {}).get("namespace") == "team-a"],
                       "Role")["rules"])
    profiles = flatten(the(namespaced_objs, "ClusterRole")["rules"])
    # What the cluster-wide run needed, the Role and the profiles ClusterRole grant.
    assert {(g, r, v) for g, r, v, _ in traffic} - role - profiles == set()

    with EmulatorThread(crds=sorted((ROOT / "crds").glob("*.yaml"))) as emu:
        for ns in ("team-a", "other"):
            emu.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
            session = yaml.safe_load((ROOT / "examples" / "sparksession.yaml").read_text())
            session["metadata"]["namespace"] = ns
            emu.create(session)
        op = Operator(emu.write_kubeconfig(tmp_path / "kubeconfig"), tmp_path / "operator.log",
                      env={"SPARKBOOK_NAMESPACES": "team-a"}).start()
        try:
            wait_for(lambda: emu.get("v1", "pods", "team-a", "analytics-driver"), timeout=15, what="driver pod")
            wait_for(lambda: (emu.get(names.API_VERSION, "sparksessions", "team-a", "analytics") or {}).get("status"),
                     what="status")
        finally:
            op.stop()
        records = [r for r in emu.requests if r.plural is not None]
        assert emu.get("v1", "pods", "other", "analytics-driver") is None  # not watched, not touched
    requests = {(r.group or "", r.plural + (f"/{r.subresource}" if r.subresource else ""), r.verb or "", r.namespace)
                for r in records}
    # kopf's scans of CRDs and namespaces are off (settings.scanning.disabled): cluster-wide, only profiles.
    assert {ns for *_, ns in requests} == {"team-a", None}, requests
    assert {(g, r, v) for g, r, v, ns in requests if ns == "team-a"} - role == set()
    assert {(g, r, v) for g, r, v, ns in requests if ns is None} <= profiles


def test_leader_election_allows_replicas_with_a_lease_role_only(tmp_path):
    objs = render({"replicaCount": 2, "leaderElection": {"enabled": True, "leaseSeconds": 10}})
    deployment = the(objs, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "--leader-elect" in container["args"]
    assert {"name": "SPARKBOOK_LEASE_SECONDS", "value": "10"} in container["env"]
    (role,) = [o for o in find(objs, "Role") if o["metadata"]["name"].endswith("-leader-election")]
    assert role["rules"] == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                              "verbs": ["create", "get", "update"]}]
    # The default keeps one replica, no Lease and no such Role.
    default = render()
    assert "--leader-elect" not in the(default, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [o for o in find(default, "Role") if o["metadata"]["name"].endswith("-leader-election")]


def test_more_replicas_without_leader_election_are_refused():
    import pytest

    with pytest.raises(Exception, match="leaderElection"):
        render({"replicaCount": 2})


# --- JupyterHub ---------------------------------------------------------------------------------

# What the hub's spawner (sparkbook.jupyterhub.NotebookServerSpawner) asks for, and nothing else.
HUB_RULES = {
    *{("sparkbook.io", "notebookservers", v) for v in ("get", "list", "create", "patch", "delete")},
    # The hub's JUPYTERHUB_* environment, with its API token, in a Secret per server.
    *{("", "secrets", v) for v in ("get", "create", "patch", "delete")},
    ("", "pods", "get"),      # the pod's IP is the server's URL
    ("", "events", "list"),   # progress messages
}
HUB_PROFILE_RULES = {("sparkbook.io", "notebookprofiles", "get"), ("sparkbook.io", "notebookprofiles", "list")}
HUB_SUBJECTS = [{"kind": "ServiceAccount", "name": "hub", "namespace": "jupyterhub"}]


def hub_objects(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objs if "jupyterhub" in o["metadata"]["name"]]


def test_no_jupyterhub_rbac_by_default(default_objs, namespaced_objs):
    assert hub_objects(default_objs) == hub_objects(namespaced_objs) == []
    assert hub_objects(render({"jupyterhub": {"rbac": {"namespaces": ["a"], "createNamespaces": True}}})) == []


def test_jupyterhub_rbac_cluster_wide():
    objs = hub_objects(render(JUPYTERHUB))
    assert sorted((o["kind"], o["metadata"]["name"]) for o in objs) == [
        ("ClusterRole", "sparkbook-jupyterhub"), ("ClusterRole", "sparkbook-jupyterhub-profiles"),
        ("ClusterRoleBinding", "sparkbook-jupyterhub"), ("ClusterRoleBinding", "sparkbook-jupyterhub-profiles")]
    assert flatten(find(objs, "ClusterRole", "sparkbook-jupyterhub")[0]["rules"]) == HUB_RULES
    assert flatten(find(objs, "ClusterRole", "sparkbook-jupyterhub-profiles")[0]["rules"]) == HUB_PROFILE_RULES
    for name in ("sparkbook-jupyterhub", "sparkbook-jupyterhub-profiles"):
        (binding,) = find(objs, "ClusterRoleBinding", name)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name}
        assert binding["subjects"] == HUB_SUBJECTS
    for obj in objs:
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "sparkbook"
        assert "namespace" not in obj["metadata"]
        for g, r, v in flatten(obj.get("rules", [])):
            assert "*" not in (g, r, v) and v not in ("escalate", "bind", "impersonate", "watch", "update")
    # The hub's ServiceAccount can be renamed; the operator's own RBAC does not change.
    renamed = render({"jupyterhub": {"rbac": {"create": True, "serviceAccount": {"name": "hub", "namespace": "hubs"}}}})
    assert {b["subjects"][0]["namespace"] for b in hub_objects(find(renamed, "ClusterRoleBinding"))} == {"hubs"}
    assert [o for o in render(JUPYTERHUB) if o not in objs] == render()


def test_jupyterhub_rbac_in_listed_namespaces_with_user_namespaces():
    objs = hub_objects(render({"jupyterhub": {"rbac": {"create": True, "namespaces": ["a", "b"],
                                                         "createNamespaces": True}}}))
    # The spawner's rules only in a and b, through RoleBindings to the one ClusterRole.
    assert not find(objs, "ClusterRoleBinding", "sparkbook-jupyterhub")
    assert flatten(find(objs, "ClusterRole", "sparkbook-jupyterhub")[0]["rules"]) == HUB_RULES
    bindings = find(objs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["a", "b"]
    for binding in bindings:
        assert binding["metadata"]["name"] == "sparkbook-jupyterhub"
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                      "name": "sparkbook-jupyterhub"}
        assert binding["subjects"] == HUB_SUBJECTS
    assert not find(objs, "Role")
    # Profiles are cluster-scoped, and so are namespaces: both cluster-wide.
    assert flatten(find(objs, "ClusterRole", "sparkbook-jupyterhub-profiles")[0]["rules"]) == HUB_PROFILE_RULES | {
        ("", "namespaces", "get"), ("", "namespaces", "create")}
    (binding,) = find(objs, "ClusterRoleBinding", "sparkbook-jupyterhub-profiles")
    assert binding["subjects"] == HUB_SUBJECTS


def test_profiles_can_be_switched_off_and_added():
    objs = render({"profiles": {"experiment": {"enabled": False},
                                "sql-only": {"enabled": True, "spec": {"displayName": "SQL", "spark": {
                                    "executor": {"memory": "1g"}}}}}})
    names_ = sorted(o["metadata"]["name"] for o in find(objs, "NotebookProfile"))
    assert names_ == ["distributed-training", "parallel-experiment", "spark-dynamic", "spark-static", "sql-only"]
    sql = find(objs, "NotebookProfile", "sql-only")[0]
    assert sql["spec"] == {"displayName": "SQL", "spark": {"executor": {"memory": "1g"}}}
    assert "metadata" in sql and "namespace" not in sql["metadata"]  # cluster-scoped
    with pytest.raises(helm.HelmError, match="displayName"):
        render({"profiles": {"nameless": {"enabled": True, "spec": {"description": "?"}}}})
    with pytest.raises(helm.HelmError):
        render({"profiles": {"Bad_Name": {"enabled": True, "spec": {"displayName": "x"}}}})
