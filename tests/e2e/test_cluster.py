"""The control plane itself: the real release, built from the pinned wrapper modules, with the
admission and authorization the product is tested against."""

from __future__ import annotations

import json
import re
import shutil

from sparkbook.testing.cluster import (KUBE_VERSION, Cluster, _dump_and_stop, free_port, pinned_replacements,
                                       staging_replacements)
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


class _HangingFirstEtcd(Cluster):
    """An etcd that hangs at its first start (as one did in CI), a real one after. The hanging one
    is `sleep` under the name etcd, so that the cluster takes it for its own process."""

    starts: int = 0

    def etcd_argv(self) -> list[str]:
        self.starts += 1
        if self.starts > 1:
            return super().etcd_argv()
        hang = self.state / "hang" / "etcd"
        hang.parent.mkdir()
        hang.symlink_to(shutil.which("sleep"))
        return [str(hang), "600"]


def test_an_etcd_that_hangs_at_start_is_started_again(tmp_path, capsys) -> None:
    cluster = _HangingFirstEtcd(state=tmp_path)
    cluster.ports = {"etcd": free_port(), "etcd-peer": free_port()}
    cluster.logs.mkdir(parents=True)
    try:
        cluster._start_etcd(timeout=3)
        hung = capsys.readouterr().err
        assert cluster.starts == 2 and "not healthy after 3 s, attempt 1 of 3" in hung, hung
        assert cluster._etcd_healthy() and list(cluster.running()) == ["etcd"]
    finally:
        cluster.down(keep_state=True)
    assert not cluster.running()


def test_a_hung_go_component_leaves_its_goroutine_stacks_in_its_log(tmp_path) -> None:
    cluster = Cluster(state=tmp_path)
    cluster.ports = {"etcd": free_port(), "etcd-peer": free_port()}
    cluster._spawn("etcd", cluster.etcd_argv())
    cluster._wait("etcd", cluster._etcd_healthy, timeout=60)
    _dump_and_stop(cluster.pids["etcd"])
    log = (cluster.logs / "etcd.log").read_text()
    assert "SIGQUIT: quit" in log and re.search(r"^goroutine 1 .*\[", log, re.M), log[-2000:]
    assert not cluster.running()
