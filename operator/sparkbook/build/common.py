"""Pieces every builder shares: metadata with ownership, restricted security contexts."""

from __future__ import annotations

from typing import Any

from sparkbook import names


def owner_reference(owner: dict[str, Any]) -> dict[str, Any]:
    """A controller ownerReference to `owner` (a resource body with apiVersion, kind, metadata)."""
    meta = owner.get("metadata", {})
    return {
        "apiVersion": owner.get("apiVersion", names.API_VERSION),
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta.get("uid") or "<uid>",
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(
    *,
    name: str,
    namespace: str,
    labels: dict[str, str],
    owner: dict[str, Any] | None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(sorted(labels.items()))}
    if annotations:
        meta["annotations"] = dict(sorted(annotations.items()))
    if owner is not None:
        meta["ownerReferences"] = [owner_reference(owner)]
    return meta


def pod_security_context(uid: int) -> dict[str, Any]:
    """Pod-level settings of the Pod Security Standards "restricted" profile."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context(uid: int) -> dict[str, Any]:
    """Container-level settings of the "restricted" profile, plus a read-only root filesystem."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def env_list(env: list[Any]) -> list[dict[str, Any]]:
    return [e.wire() for e in env]


def scheduling(options: Any) -> dict[str, Any]:
    """nodeSelector, tolerations and affinity of a pod, from any spec part that has them."""
    out: dict[str, Any] = {}
    if options.node_selector:
        out["nodeSelector"] = dict(options.node_selector)
    if options.tolerations:
        out["tolerations"] = list(options.tolerations)
    if options.affinity:
        out["affinity"] = dict(options.affinity)
    return out
