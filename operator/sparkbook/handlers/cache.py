"""Caches of watched objects as kopf indexes: filled before any handler runs, read without requests."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import kopf

from sparkbook import names
from sparkbook.recent import trim

MANAGED = {names.MANAGED_BY: names.MANAGED_BY_VALUE}

# (group, version, plural, kind) of every child kind the operator owns.
CHILDREN = [
    ("", "v1", "pods", "Pod"),
    ("", "v1", "services", "Service"),
    ("", "v1", "serviceaccounts", "ServiceAccount"),
    ("", "v1", "secrets", "Secret"),
    ("", "v1", "configmaps", "ConfigMap"),
    ("rbac.authorization.k8s.io", "v1", "roles", "Role"),
    ("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding"),
    ("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim"),
    ("apps", "v1", "statefulsets", "StatefulSet"),
    ("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"),
]
CHILD_RESOURCES = [(g, v, p) for g, v, p, _ in CHILDREN]

def _index_name(kind: str) -> str:
    return f"idx_{kind.lower()}"


@kopf.index(names.GROUP, names.VERSION, "sparksessions")
def idx_sparksession(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): trim(body, "SparkSession")}


@kopf.index(names.GROUP, names.VERSION, "notebookservers")
def idx_notebookserver(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): trim(body, "NotebookServer")}


@kopf.index(names.GROUP, names.VERSION, "notebookservers")
def idx_notebooks_by_session(namespace: str, name: str, spec: kopf.Spec, **_: Any) -> dict[Any, Any]:
    """Which notebooks talk to which SparkSession, to tell them when it changes."""
    spark = spec.get("spark") or {}
    if spark.get("sessionRef"):
        return {(namespace, spark["sessionRef"].get("name")): name}
    if spark.get("session") is not None:
        return {(namespace, names.NotebookNames(name).owned_session): name}
    return {}


def _make_indexer(kind: str) -> Any:
    def indexer(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
        return {(namespace, name): trim(body, kind)}

    indexer.__name__ = indexer.__qualname__ = _index_name(kind)
    return indexer


for _group, _version, _plural, _kind in CHILDREN:
    kopf.index(_group, _version, _plural, labels=MANAGED, id=_index_name(_kind))(_make_indexer(_kind))


@kopf.index("", "v1", "pods", labels={names.ROLE_LABEL: "executor", names.SESSION_LABEL: kopf.PRESENT})
def idx_executors(namespace: str, name: str, labels: dict[str, str], body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, labels[names.SESSION_LABEL]): trim(body, "Pod")}


class KopfCache:
    """The Controller's Cache over kopf's indexes (passed to the startup handler as kwargs)."""

    def __init__(self, indexes: dict[str, Any]) -> None:
        self.indexes = {k: v for k, v in indexes.items() if k.startswith("idx_")}

    def _index(self, kind: str) -> Any:
        return self.indexes[_index_name(kind)]

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        index = self._index(kind)
        key = (namespace, name)
        if key not in index:
            return None
        for value in index[key]:
            return value
        return None

    def executors(self, namespace: str, session: str) -> list[dict[str, Any]]:
        index = self.indexes["idx_executors"]
        key = (namespace, session)
        return list(index[key]) if key in index else []

    def keys(self, kind: str) -> Iterable[tuple[str, str]]:
        return list(self._index(kind))

    def notebooks_for_session(self, namespace: str, session: str) -> list[str]:
        index = self.indexes["idx_notebooks_by_session"]
        key = (namespace, session)
        return list(index[key]) if key in index else []
