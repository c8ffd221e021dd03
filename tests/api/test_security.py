"""Secrets stay secret: no token value in the operator's logs, in any status, Event or rendered
manifest; every pod the operator makes passes the restricted profile; NetworkPolicies exist."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import yaml

from sparkbook import names
from tests.api.conftest import ROOT, kubelet_runs, statefulset_controller, wait_for
from tests.pod_rules import hardening_problems

GROUP = "sparkbook.io/v1alpha1"


def test_no_token_leaks_anywhere(emulator, operator, kubectl, namespace):
    for example in ("sparksession.yaml", "notebookserver.yaml", "notebookserver-shared.yaml"):
        doc = yaml.safe_load((ROOT / "examples" / example).read_text())
        doc["metadata"]["namespace"] = namespace
        kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))
    for secret in ("analytics-connect-token", "alice-spark-connect-token", "alice-token", "bob-token"):
        wait_for(lambda: emulator.get("v1", "secrets", namespace, secret), what=secret)
    for pod in ("analytics-driver", "alice-spark-driver"):
        wait_for(lambda: emulator.get("v1", "pods", namespace, pod), what=pod)
        kubelet_runs(emulator, namespace, pod)
    for nb in ("alice", "bob"):
        wait_for(lambda: statefulset_controller(emulator, namespace, nb), what=f"{nb}-0")
        kubelet_runs(emulator, namespace, f"{nb}-0", ip="127.0.0.9")  # nothing listens: idle checks fail
    wait_for(lambda: (emulator.get(GROUP, "notebookservers", namespace, "bob").get("status") or {}).get("phase")
             == "Running", what="bob Running")

    tokens = {base64.b64decode(s["data"]["token"]).decode()
              for s in emulator.list("v1", "secrets", namespace=namespace)}
    assert len(tokens) == 4 and all(len(t) >= 32 for t in tokens)

    places = {
        "operator log": operator.logs(),
        "statuses": json.dumps([o.get("status") for plural in ("sparksessions", "notebookservers")
                                for o in emulator.list(GROUP, plural, namespace=namespace)]),
        "events": json.dumps(emulator.list("v1", "events", namespace=namespace)),
        "pod specs": json.dumps([p["spec"] for p in emulator.list("v1", "pods", namespace=namespace)]),
        "statefulsets": json.dumps(emulator.list("apps/v1", "statefulsets", namespace=namespace)),
        "configmaps": json.dumps(emulator.list("v1", "configmaps", namespace=namespace)),
    }
    rendered = subprocess.run([sys.executable, "-m", "sparkbook.cli", "render", "-f",
                               str(ROOT / "examples" / "notebookserver.yaml")], capture_output=True, text=True)
    places["sparkbook render"] = rendered.stdout
    for where, text in places.items():
        for token in tokens:
            assert token not in text, f"a token appears in the {where}"
    # The pods get their tokens only by reference to the Secrets.
    sts = emulator.get("apps/v1", "statefulsets", namespace, "alice")
    env = {e["name"]: e for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["JUPYTER_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "alice-token"
    assert "$(SPARKBOOK_CONNECT_TOKEN)" in env["SPARK_REMOTE"]["value"]


def test_every_pod_is_restricted_and_every_session_and_notebook_has_a_network_policy(
    emulator, operator, kubectl, namespace
):
    doc = yaml.safe_load((ROOT / "examples" / "notebookserver.yaml").read_text())
    doc["metadata"]["namespace"] = namespace
    kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))
    wait_for(lambda: emulator.get("v1", "pods", namespace, "alice-spark-driver"), what="driver")
    sts = wait_for(lambda: emulator.get("apps/v1", "statefulsets", namespace, "alice"), what="sts")
    template = yaml.safe_load(emulator.get("v1", "configmaps", namespace, "alice-spark-executor-template")["data"]
                              [names.EXECUTOR_TEMPLATE_KEY])
    pod_specs = [emulator.get("v1", "pods", namespace, "alice-spark-driver")["spec"],
                 sts["spec"]["template"]["spec"], template["spec"]]
    driver, notebook, executor = pod_specs
    assert hardening_problems(driver, needs_api_token=True) == []
    assert hardening_problems(notebook) == [] and hardening_problems(executor) == []
    assert not any(v.get("hostPath") for spec in pod_specs for v in spec.get("volumes", []))
    services = [emulator.get("v1", "services", namespace, n) for n in ("alice-spark-connect", "alice-spark-ui", "alice")]
    assert all(s["spec"]["type"] == "ClusterIP" for s in services)
    policies = {p["metadata"]["name"] for p in emulator.list("networking.k8s.io/v1", "networkpolicies",
                                                              namespace=namespace)}
    assert {"alice-spark-network", "alice-network"} <= policies
