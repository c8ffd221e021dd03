"""Faults, conflicts, restarts and hand edits: the operator converges with nothing lost.

Faults are injected with the emulator's kmock reactions, which answer before the emulator's own
handlers: 409s, 429s and 503s, and writes that never get an answer while the operator is killed.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

import pytest
import yaml

from sparkbook import names
from tests.api.conftest import ROOT, condition, event_seen, operator_writes, settle, wait_for

GROUP = "sparkbook.io/v1alpha1"
CHILDREN = [
    ("networking.k8s.io/v1", "networkpolicies", "analytics-network"),
    ("v1", "serviceaccounts", "analytics-spark"),
    ("rbac.authorization.k8s.io/v1", "roles", "analytics-spark"),
    ("rbac.authorization.k8s.io/v1", "rolebindings", "analytics-spark"),
    ("v1", "secrets", "analytics-connect-token"),
    ("v1", "configmaps", "analytics-executor-template"),
    ("v1", "services", "analytics-driver-svc"),
    ("v1", "services", "analytics-connect"),
    ("v1", "services", "analytics-ui"),
    ("v1", "pods", "analytics-driver"),
]


def session_yaml(namespace: str, **spec: Any) -> str:
    doc = yaml.safe_load((ROOT / "examples" / "sparksession.yaml").read_text())
    doc["metadata"]["namespace"] = namespace
    doc["spec"].update(spec)
    return yaml.safe_dump(doc)


def from_operator(namespace: str, method: str, plural: str | None = None) -> Any:
    """A kmock criterion: the operator's own requests (not kubectl's) of one kind in one namespace."""
    def match(request: Any) -> bool:
        return (request.namespace == namespace and request.method == method
                and (plural is None or (request.resource is not None and request.resource.plural == plural))
                and "sparkbook-operator" in (request.headers.get("User-Agent") or ""))
    return match


def session(emulator, namespace: str) -> dict[str, Any]:
    return emulator.get(GROUP, "sparksessions", namespace, "analytics") or {}


def converged(emulator, namespace: str) -> bool:
    """Nothing lost: every child once, owned by the session, and a status for the current spec."""
    body = session(emulator, namespace)
    if not body or (body.get("status") or {}).get("observedGeneration") != body["metadata"]["generation"]:
        return False
    for api_version, plural, name in CHILDREN:
        obj = emulator.get(api_version, plural, namespace, name)
        if obj is None or [r["uid"] for r in obj["metadata"].get("ownerReferences", [])] != [body["metadata"]["uid"]]:
            return False
    return True


def only_once(emulator, namespace: str) -> None:
    for api_version, plural, _ in CHILDREN:
        names_ = [o["metadata"]["name"] for o in emulator.list(api_version, plural, namespace=namespace)
                  if o["metadata"].get("labels", {}).get(names.SESSION_LABEL) == "analytics"]
        assert len(names_) == len(set(names_)), names_
    assert len(emulator.list("v1", "pods", namespace=namespace)) == 1


def test_conflicts_on_status_writes_and_creates_are_retried_without_a_hot_loop(emulator, operator, kubectl, namespace):
    handler = emulator.handler
    status_409 = handler[from_operator(namespace, "PATCH", "sparksessions")][:3] << 409
    create_409 = handler[from_operator(namespace, "POST", "services")][:2] << 409
    kubectl("apply", "-f", "-", input=session_yaml(namespace))
    wait_for(lambda: converged(emulator, namespace), timeout=30, what="converged despite the conflicts")
    assert len(status_409) == 3 and len(create_409) == 2  # the faults did happen
    writes = settle(lambda: len(operator_writes(emulator, namespace)), quiet=2.0)
    # 10 creates + 1 status + 1 event when nothing fails; the 5 failures and their retries on top,
    # with room for one extra status write, but nothing like a hot loop.
    assert writes <= 12 + 5 + 4, writes
    only_once(emulator, namespace)


def test_a_flaky_api_server_429_503_and_slow_answers(emulator, operator, kubectl, namespace):
    handler = emulator.handler
    unavailable = handler[from_operator(namespace, "POST")][:4] << 503
    throttled = handler[from_operator(namespace, "PATCH")][:3] << 429

    async def slow(request: Any) -> None:
        await asyncio.sleep(1.5)
        raise NotImplementedError  # matched, but the emulator answers

    handler[from_operator(namespace, "POST", "pods")][:1] << slow
    kubectl("apply", "-f", "-", input=session_yaml(namespace))
    wait_for(lambda: converged(emulator, namespace), timeout=60, what="converged on a flaky API")
    assert len(unavailable) == 4 and len(throttled) == 3
    only_once(emulator, namespace)


def test_spec_flapping_ends_at_the_last_spec(emulator, operator, kubectl, namespace):
    kubectl("apply", "-f", "-", input=session_yaml(namespace))
    wait_for(lambda: converged(emulator, namespace), what="converged")
    for value in (3, 2, 3, 2, 5):
        kubectl("patch", "sparksession", "analytics", "-n", namespace, "--type=merge",
                "-p", f'{{"spec": {{"dynamicAllocation": {{"maxExecutors": {value}}}}}}}')
    def final() -> bool:
        pod = emulator.get("v1", "pods", namespace, "analytics-driver")
        return bool(pod and "spark.dynamicAllocation.maxExecutors=5" in pod["spec"]["containers"][0]["command"]
                    and not pod["metadata"].get("deletionTimestamp") and converged(emulator, namespace))
    wait_for(final, timeout=30, what="the last spec")
    assert session(emulator, namespace)["metadata"]["generation"] == 6


def test_a_hand_edited_driver_image_is_replaced(emulator, operator, kubectl, namespace):
    kubectl("apply", "-f", "-", input=session_yaml(namespace))
    wait_for(lambda: converged(emulator, namespace), what="converged")
    old = emulator.get("v1", "pods", namespace, "analytics-driver")
    kubectl("patch", "pod", "analytics-driver", "-n", namespace, "--type=json",
            "-p", '[{"op": "replace", "path": "/spec/containers/0/image", "value": "evil:latest"}]')
    new = wait_for(lambda: (p := emulator.get("v1", "pods", namespace, "analytics-driver"))
                   and p["metadata"]["uid"] != old["metadata"]["uid"] and p, what="replaced")
    assert new["spec"]["containers"][0]["image"] == names.DEFAULT_SPARK_IMAGE
    event_seen(emulator, namespace, lambda e: e["reason"] == "DriverReplacing" and "edited by hand" in e["message"])


def test_deletion_while_the_operator_is_down(emulator, operator, kubectl, namespace):
    kubectl("apply", "-f", "-", input=session_yaml(namespace))
    wait_for(lambda: converged(emulator, namespace), what="converged")
    operator.stop()
    try:
        kubectl("delete", "sparksession", "analytics", "-n", namespace)
        # Garbage collection needs no operator: the children follow their owner.
        wait_for(lambda: all(emulator.get(a, p, namespace, n) is None for a, p, n in CHILDREN), what="children gone")
    finally:
        operator.start()
    before = len(operator_writes(emulator, namespace))
    time.sleep(3)  # the restarted operator has listed everything by now
    assert len(operator_writes(emulator, namespace)) == before  # nothing recreated for a deleted resource


def test_crash_after_every_write_of_a_first_reconcile_converges(emulator, operator, kubectl, namespace):
    """Kill the operator right after its k-th write, for every k; the next one finishes the job."""
    kubectl("apply", "-f", "-", input=session_yaml(namespace))
    wait_for(lambda: converged(emulator, namespace), what="converged")
    total = len([r for r in operator_writes(emulator, namespace) if r.method in ("POST", "PATCH", "DELETE")])
    kubectl("delete", "sparksession", "analytics", "-n", namespace)
    wait_for(lambda: all(emulator.get(a, p, namespace, n) is None for a, p, n in CHILDREN), what="clean")
    assert total >= 10
    for k in range(1, total):
        seen: list[int] = []
        armed = [True]

        def after_k_writes(request: Any, k: int = k, seen: list[int] = seen, armed: list[bool] = armed) -> bool:
            if not armed[0] or request.namespace != namespace or request.method not in ("POST", "PATCH", "DELETE"):
                return False
            if "sparkbook-operator" not in (request.headers.get("User-Agent") or ""):
                return False
            seen.append(1)
            return len(seen) > k  # the (k+1)-th write and later ones never get an answer

        async def hang(request: Any) -> None:
            await asyncio.sleep(3600)

        emulator.handler[after_k_writes] << hang
        kubectl("apply", "-f", "-", input=session_yaml(namespace))
        wait_for(lambda: len(seen) > k, timeout=20, what=f"{k} writes done")
        operator.proc.kill()  # SIGKILL: no cleanup, no goodbye
        operator.proc.wait()
        operator.log.close()
        armed[0] = False  # the API server answers again
        operator.start()
        wait_for(lambda: converged(emulator, namespace), timeout=30, what=f"converged after a crash at write {k}")
        only_once(emulator, namespace)
        secret = emulator.get("v1", "secrets", namespace, "analytics-connect-token")
        assert base64.b64decode(secret["data"]["token"])  # created once, kept
        kubectl("delete", "sparksession", "analytics", "-n", namespace)
        wait_for(lambda: all(emulator.get(a, p, namespace, n) is None for a, p, n in CHILDREN), what="clean")


@pytest.mark.parametrize("stalled_kind", ["Service"])
def test_name_squatting_on_a_notebook_child(emulator, operator, kubectl, namespace, stalled_kind):
    squatter = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bob", "namespace": namespace},
                "spec": {"ports": [{"port": 80}]}}
    kubectl("apply", "-f", "-", input=yaml.safe_dump(squatter))
    doc = yaml.safe_load((ROOT / "examples" / "notebookserver-shared.yaml").read_text())
    doc["metadata"]["namespace"] = namespace
    kubectl("apply", "-f", "-", input=yaml.safe_dump(doc))
    nb = lambda: emulator.get(GROUP, "notebookservers", namespace, "bob")  # noqa: E731
    stalled = wait_for(lambda: condition(nb(), "Stalled").get("status") == "True" and condition(nb(), "Stalled"),
                       what="Stalled")
    assert stalled["reason"] == "NameConflict" and "Service 'bob'" in stalled["message"]
    assert emulator.get("v1", "services", namespace, "bob")["spec"]["ports"][0]["port"] == 80


def test_a_removed_owner_reference_is_put_back_with_one_write(emulator, operator, kubectl, namespace):
    kubectl("apply", "-f", "-", input=session_yaml(namespace))
    wait_for(lambda: converged(emulator, namespace), what="converged")
    before = settle(lambda: len(operator_writes(emulator, namespace)), quiet=1.0)
    kubectl("patch", "service", "analytics-ui", "-n", namespace, "--type=json",
            "-p", '[{"op": "remove", "path": "/metadata/ownerReferences"}]')
    wait_for(lambda: emulator.get("v1", "services", namespace, "analytics-ui")["metadata"].get("ownerReferences"),
             what="ownerReference back")
    repairs = [r for r in operator_writes(emulator, namespace)[before:] if r.plural == "services"]
    assert [(r.method, r.name) for r in repairs] == [("PATCH", "analytics-ui")]
    assert condition(session(emulator, namespace), "Stalled").get("status") == "False"


def test_deleting_the_namespace_takes_everything_and_the_operator_lets_go(emulator, operator, kubectl, namespace):
    kubectl("apply", "-f", "-", input=session_yaml(namespace))
    wait_for(lambda: converged(emulator, namespace), what="converged")
    kubectl("delete", "namespace", namespace, "--wait=false")
    wait_for(lambda: emulator.get("v1", "namespaces", None, namespace) is None, timeout=30, what="namespace gone")
    assert all(emulator.get(a, p, namespace, n) is None for a, p, n in CHILDREN)
    # A write already in flight may still land, then the operator stops: no retry loop against a
    # namespace that is gone (settle fails if the count keeps moving for 30 s).
    before = len(operator_writes(emulator, namespace))
    after = settle(lambda: len(operator_writes(emulator, namespace)), quiet=3.0, timeout=30)
    assert after - before <= 3, after - before
    assert operator.proc.poll() is None
