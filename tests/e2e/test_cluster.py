"""The control plane itself: the real release, built from the pinned wrapper modules, with the
admission and authorization the product is tested against."""

from __future__ import annotations

import json

from sparkbook.testing.cluster import KUBE_VERSION, Cluster, pinned_replacements, staging_replacements
from tests.e2e.conftest import Kubectl


def test_the_wrapper_module_replaces_exactly_the_staging_modules() -> None:
    assert pinned_replacements() == staging_replacements(), "run `python -m sparkbook.testing.cluster pin`"


def test_it_is_the_real_release(kubectl: Kubectl, control_plane: Cluster) -> None:
    version = json.loads(kubectl("get", "--raw", "/version").stdout)
    assert version["gitVersion"] == KUBE_VERSION
    client = json.loads(kubectl("version", "--client", "-o", "json").stdout)["clientVersion"]
    assert client["gitVersion"] == KUBE_VERSION
    assert sorted(control_plane.running()) == sorted(
        ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"])


def test_rbac_and_pod_security_are_enforced(kubectl: Kubectl, namespace: str) -> None:
    # RBAC: a ServiceAccount with no binding may do nothing.
    kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    can = kubectl("auth", "can-i", "list", "pods", "-n", namespace,
                  f"--as=system:serviceaccount:{namespace}:nobody", check=False)
    assert can.stdout.strip() == "no"
    # PodSecurity: a privileged pod is refused in a `restricted` namespace, by admission.
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root", "namespace": namespace},
           "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": True}}]}}
    refused = kubectl("apply", "-f", "-", input=json.dumps(pod), check=False)
    assert refused.returncode != 0 and 'violates PodSecurity "restricted:latest"' in refused.stderr, refused.stderr
