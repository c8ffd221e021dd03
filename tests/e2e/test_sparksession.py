"""A SparkSession on the real control plane, installed from manifests/install.yaml: children made
and owned, Ready once the (fake) node runs the driver, `kubectl get` columns, suspend and resume,
and on delete the real garbage collector removes every child; namespace deletion completes."""

from __future__ import annotations

import json

import yaml

from sparkbook.names import SessionNames
from tests.e2e.conftest import ROOT, Kubectl, apply, condition, example, get, items, poll

CHILDREN = [
    ("networkpolicy", "network_policy"), ("serviceaccount", "service_account"), ("role", "role"),
    ("rolebinding", "role_binding"), ("secret", "token_secret"), ("configmap", "executor_template"),
    ("service", "driver_service"), ("service", "connect_service"), ("service", "ui_service"), ("pod", "driver_pod"),
]


def session(kubectl: Kubectl, namespace: str, name: str = "analytics") -> dict | None:
    return get(kubectl, "sparksession", name, namespace)


def test_sparksession_lifecycle(kubectl: Kubectl, operator, namespace: str) -> None:
    apply(kubectl, example("sparksession.yaml", namespace))
    names = SessionNames("analytics")
    ready = poll(lambda: condition(session(kubectl, namespace), "Ready").get("status") == "True" and session(
        kubectl, namespace), timeout=90, what="SparkSession Ready")
    uid = ready["metadata"]["uid"]
    for kind, attr in CHILDREN:
        child = get(kubectl, kind, getattr(names, attr), namespace)
        assert child is not None, f"{kind}/{getattr(names, attr)} missing"
        owners = child["metadata"].get("ownerReferences", [])
        assert [(o["kind"], o["uid"], o.get("controller")) for o in owners] == [("SparkSession", uid, True)], owners

    # The driver pod was admitted under `restricted`, scheduled by kube-scheduler and is run by a node.
    driver = get(kubectl, "pod", names.driver_pod, namespace)
    assert driver["spec"]["nodeName"].startswith("kwok-node-")
    assert driver["status"]["podIP"].startswith("127.42.")
    status = ready["status"]
    assert status["phase"] == "Running" and status["observedGeneration"] == ready["metadata"]["generation"]
    assert status["driver"]["podName"] == names.driver_pod and status["driver"]["podIP"] == driver["status"]["podIP"]
    assert status["endpoints"]["connect"] == f"sc://{names.connect_service}.{namespace}.svc:15002"

    # The columns the CRD declares, as the real server prints them.
    crd = yaml.safe_load((ROOT / "crds" / "sparksessions.sparkbook.io.yaml").read_text())
    columns = [c["name"].upper() for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]
               if not c.get("priority")]
    table = kubectl("get", "sparksessions", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", *columns], table
    row = dict(zip(table[0].split(), table[1].split()))
    assert (row["NAME"], row["PHASE"], row["EXECUTORS"], row["READY"]) == ("analytics", "Running", "0", "True"), table

    # Suspend: the driver goes, the resource and the rest stay; resume brings a new driver.
    kubectl("patch", "sparksession", "analytics", "-n", namespace, "--type=merge", "-p", '{"spec":{"suspend":true}}')
    poll(lambda: (session(kubectl, namespace) or {}).get("status", {}).get("phase") == "Suspended", timeout=60,
         what="phase Suspended")
    poll(lambda: get(kubectl, "pod", names.driver_pod, namespace) is None, timeout=60, what="driver pod deleted")
    assert get(kubectl, "service", names.connect_service, namespace) is not None
    kubectl("patch", "sparksession", "analytics", "-n", namespace, "--type=merge", "-p", '{"spec":{"suspend":false}}')
    poll(lambda: condition(session(kubectl, namespace), "Ready").get("status") == "True", timeout=90,
         what="Ready again after resume")
    new_driver = get(kubectl, "pod", names.driver_pod, namespace)
    assert new_driver["metadata"]["uid"] != driver["metadata"]["uid"]

    # Delete: the garbage collector (kube-controller-manager) removes every child.
    kubectl("delete", "sparksession", "analytics", "-n", namespace, "--wait=true", "--timeout=60s")
    for kind, attr in CHILDREN:
        poll(lambda: get(kubectl, kind, getattr(names, attr), namespace) is None, timeout=60,
             what=f"{kind}/{getattr(names, attr)} garbage-collected")
    assert items(kubectl, "pods", namespace) == []


def test_namespace_deletion_completes(kubectl: Kubectl, operator, namespace: str) -> None:
    apply(kubectl, example("sparksession.yaml", namespace))
    poll(lambda: get(kubectl, "pod", SessionNames("analytics").driver_pod, namespace), timeout=60, what="driver pod")
    kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=120s")
    assert get(kubectl, "namespace", namespace) is None
    # Nothing of it is left anywhere (the namespace controller emptied it before it went).
    left = json.loads(kubectl("get", "sparksessions", "-A", "-o", "json").stdout)["items"]
    assert [s for s in left if s["metadata"]["namespace"] == namespace] == []
