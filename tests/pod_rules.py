"""The one pod-hardening rule set every pod Sparkbook ships is checked against: the driver, the
executor template, the notebook StatefulSet's pod, and the operator's own Deployment pod (from the
chart), so they cannot drift apart. The Pod Security Standard "restricted", plus what we add."""

from __future__ import annotations

from typing import Any


def hardening_problems(pod_spec: dict[str, Any], *, needs_api_token: bool = False) -> list[str]:
    """Every way `pod_spec` falls short; empty when it is hardened."""
    problems: list[str] = []

    def want(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    # No Service environment variables: nothing the pod needs, and a leak of the namespace's layout.
    want(pod_spec.get("enableServiceLinks") is False, "enableServiceLinks must be false")
    want(pod_spec.get("automountServiceAccountToken") is needs_api_token,
         f"automountServiceAccountToken must be {str(needs_api_token).lower()}")
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        want(not pod_spec.get(host), f"{host} must be off")
    want(not any(v.get("hostPath") for v in pod_spec.get("volumes") or []), "no hostPath volumes")
    psc = pod_spec.get("securityContext") or {}
    want(psc.get("runAsNonRoot") is True, "pod securityContext.runAsNonRoot must be true")
    want(psc.get("seccompProfile") == {"type": "RuntimeDefault"}, "pod seccompProfile must be RuntimeDefault")
    want(psc.get("runAsUser", 1) != 0, "pod runAsUser must not be 0")
    for c in [*pod_spec.get("initContainers", []), *pod_spec.get("containers", [])]:
        sc = c.get("securityContext") or {}
        name = c.get("name", "?")
        want(sc.get("allowPrivilegeEscalation") is False, f"{name}: allowPrivilegeEscalation must be false")
        want(sc.get("capabilities") == {"drop": ["ALL"]}, f"{name}: capabilities must drop ALL and add none")
        want(not sc.get("privileged"), f"{name}: must not be privileged")
        want(sc.get("runAsNonRoot") is True, f"{name}: runAsNonRoot must be true")
        want(sc.get("seccompProfile") == {"type": "RuntimeDefault"}, f"{name}: seccompProfile must be RuntimeDefault")
        want(sc.get("readOnlyRootFilesystem") is True, f"{name}: readOnlyRootFilesystem must be true")
        want(sc.get("runAsUser", 1) != 0, f"{name}: runAsUser must not be 0")
        want(not any(p.get("hostPort") for p in c.get("ports") or []), f"{name}: no hostPort")
    return problems
