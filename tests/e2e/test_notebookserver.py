"""NotebookServers on the real control plane: the real StatefulSet controller makes the pod, the
PVC binds (kube-controller-manager's host-path provisioner) and outlives the server with
`retainOnDelete: true`; a real Jupyter server answers on the pod's IP (KWOK hands out loopback
addresses), so idle culling and waking run as in a cluster; a second notebook attaches to a
shared session."""

from __future__ import annotations

import time
from pathlib import Path

from sparkbook import names
from sparkbook.names import NotebookNames
from tests.e2e.conftest import Kubectl, apply, condition, example, get, poll, secret_value
from tests.jupyter_server import running_jupyter


def annotations(obj: dict | None) -> dict:
    return (obj or {}).get("metadata", {}).get("annotations") or {}


def test_notebook_with_its_own_session_culled_and_woken(kubectl: Kubectl, operator, namespace: str,
                                                         tmp_path: Path) -> None:
    doc = example("notebookserver.yaml", namespace)
    doc["spec"]["idleCulling"] = {"enabled": True, "timeout": "6s"}
    apply(kubectl, doc)
    n = NotebookNames("alice")
    nb = lambda: get(kubectl, "notebookserver", "alice", namespace)  # noqa: E731

    # The StatefulSet controller made the pod, admitted under `restricted`; the PVC is bound.
    pod = poll(lambda: (p := get(kubectl, "pod", n.pod, namespace)) and p.get("status", {}).get("podIP") and p,
               timeout=90, what="the notebook pod running")
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
    pvc = poll(lambda: (c := get(kubectl, "pvc", n.pvc, namespace)) and c["status"].get("phase") == "Bound" and c,
               timeout=60, what="the PVC bound")
    assert get(kubectl, "pv", pvc["spec"]["volumeName"])["spec"]["storageClassName"] == "standard"
    session = poll(lambda: condition(get(kubectl, "sparksession", n.owned_session, namespace), "Ready")
                   .get("status") == "True", timeout=90, what="the owned SparkSession Ready")
    assert session

    # A real Jupyter server plays the pod: the operator asks it for activity at <pod IP>:8888.
    token = secret_value(kubectl, namespace, n.token_secret, "token")
    with running_jupyter(host=pod["status"]["podIP"], port=names.NOTEBOOK_PORT, token=token, work=tmp_path):
        ready = poll(lambda: condition(nb(), "Ready").get("status") == "True" and nb(), timeout=60,
                     what="NotebookServer Ready")
        assert ready["status"]["phase"] == "Running"
        assert condition(ready, "SparkReady")["status"] == "True"
        culled_at = poll(lambda: annotations(nb()).get(names.CULLED_AT), timeout=60, what="culled when idle")
    sts = poll(lambda: (s := get(kubectl, "statefulset", n.statefulset, namespace)) and s["spec"]["replicas"] == 0
               and s, timeout=30, what="scaled to zero")
    assert sts
    poll(lambda: get(kubectl, "pod", n.pod, namespace) is None, timeout=60, what="the StatefulSet controller removed the pod")
    status = poll(lambda: (nb().get("status") or {}).get("phase") == "Culled" and nb()["status"], timeout=30,
                  what="phase Culled")
    assert status["culledAt"] == culled_at
    assert nb()["metadata"]["generation"] == 1, "the user's spec was rewritten"

    # Waking: the user removes the annotation; the StatefulSet controller brings the pod back.
    kubectl("annotate", "notebookserver", "alice", "-n", namespace, f"{names.CULLED_AT}-")
    poll(lambda: (get(kubectl, "pod", n.pod, namespace) or {}).get("status", {}).get("podIP"), timeout=90,
         what="the pod back")
    poll(lambda: (nb().get("status") or {}).get("phase") in ("Running", "Starting"), timeout=30, what="awake")

    # retainOnDelete: deleting the server leaves the user's files; the real GC removes the rest.
    kubectl("delete", "notebookserver", "alice", "-n", namespace, "--wait=true", "--timeout=60s")
    for kind, name in [("statefulset", n.statefulset), ("service", n.service), ("secret", n.token_secret),
                       ("configmap", n.startup), ("sparksession", n.owned_session)]:
        poll(lambda: get(kubectl, kind, name, namespace) is None, timeout=60, what=f"{kind}/{name} garbage-collected")
    time.sleep(1)
    kept = get(kubectl, "pvc", n.pvc, namespace)
    assert kept is not None and kept["status"]["phase"] == "Bound" and not kept["metadata"].get("deletionTimestamp")
    assert not kept["metadata"].get("ownerReferences")


def test_notebook_attached_to_a_shared_session(kubectl: Kubectl, operator, namespace: str) -> None:
    apply(kubectl, example("sparksession.yaml", namespace), example("notebookserver-shared.yaml", namespace))
    nb = lambda: get(kubectl, "notebookserver", "bob", namespace)  # noqa: E731
    poll(lambda: condition(nb(), "SparkReady").get("status") == "True", timeout=90, what="SparkReady")
    pod = poll(lambda: get(kubectl, "pod", NotebookNames("bob").pod, namespace), timeout=60, what="bob's pod")
    # The session's token reaches the notebook by reference to the session's Secret, never by value.
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env[names.CLIENT_TOKEN_ENV]["valueFrom"]["secretKeyRef"]["name"] == "analytics-connect-token"
    # The notebook follows its session: suspended session, notebook says so.
    kubectl("patch", "sparksession", "analytics", "-n", namespace, "--type=merge", "-p", '{"spec":{"suspend":true}}')
    poll(lambda: condition(nb(), "SparkReady").get("reason") == "SessionSuspended", timeout=60,
         what="SparkReady says the session is suspended")
