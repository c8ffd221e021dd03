"""NetworkPolicies: a Spark session admits only its own pods, its notebooks and the operator;
a notebook admits only the operator (idle checks), its JupyterHub's hub and proxy, and what the
platform team allows in."""

from __future__ import annotations

from typing import Any

from sparkbook import names
from sparkbook.build.common import metadata

# How the chart labels the operator's pods.
OPERATOR_POD_LABELS = {names.APP_NAME: "sparkbook", names.APP_COMPONENT: "operator"}


def operator_peer(operator_namespace: str | None) -> dict[str, Any]:
    """The operator's pods: in its own namespace when known, else in any namespace."""
    namespaces: dict[str, Any] = (
        {"matchLabels": {"kubernetes.io/metadata.name": operator_namespace}} if operator_namespace else {}
    )
    return {"namespaceSelector": namespaces, "podSelector": {"matchLabels": dict(OPERATOR_POD_LABELS)}}


def _ports(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def session_network_policy(*, owner: dict[str, Any], operator_namespace: str | None) -> dict[str, Any]:
    session, namespace = owner["metadata"]["name"], owner["metadata"]["namespace"]
    own_pods = {"matchLabels": {names.SESSION_LABEL: session}}  # the driver and its executors
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(
            name=names.SessionNames(session).network_policy,
            namespace=namespace,
            labels=names.session_labels(session, "network"),
            owner=owner,
        ),
        "spec": {
            "podSelector": own_pods,
            "policyTypes": ["Ingress"],
            "ingress": [
                # Driver <-> executors and executors <-> executors (RPC, block manager, shuffle).
                {"from": [{"podSelector": own_pods}]},
                # Notebooks attached to this session: Spark Connect and the Spark UI.
                {
                    "from": [{"podSelector": {"matchLabels": {names.USES_SESSION_LABEL: session}}}],
                    "ports": _ports(names.CONNECT_PORT, names.UI_PORT),
                },
                # The operator asks the driver's REST API for activity (idle timeout).
                {"from": [operator_peer(operator_namespace)], "ports": _ports(names.UI_PORT)},
            ],
        },
    }


def notebook_network_policy(
    *, owner: dict[str, Any], operator_namespace: str | None, access_namespaces: list[str] | None = None,
    hub_namespace: str | None = None,
) -> dict[str, Any]:
    """`hub_namespace`: the server is a JupyterHub's, whose hub and proxy live there."""
    notebook, namespace = owner["metadata"]["name"], owner["metadata"]["namespace"]
    peers: list[dict[str, Any]] = [
        operator_peer(operator_namespace),  # idle culling asks Jupyter's API
        # A proxy the team runs next to its notebooks opts in with this label.
        {"podSelector": {"matchLabels": {names.NOTEBOOK_ACCESS_LABEL: "true"}}},
    ]
    if hub_namespace:  # the hub's proxy sends users here; the hub asks the server's API
        peers.append({
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": hub_namespace}},
            "podSelector": {"matchLabels": {names.HUB_ACCESS_SINGLEUSER_LABEL: "true"}},
        })
    for allowed in access_namespaces or []:  # e.g. the ingress controller's namespace
        peers.append({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": allowed}}})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(
            name=names.NotebookNames(notebook).network_policy,
            namespace=namespace,
            labels=names.notebook_labels(notebook, "network"),
            owner=owner,
        ),
        "spec": {
            "podSelector": {"matchLabels": {names.NOTEBOOK_LABEL: notebook, names.APP_COMPONENT: "notebook"}},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": peers, "ports": _ports(names.NOTEBOOK_PORT)}],
        },
    }
