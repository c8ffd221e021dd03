"""The CRDs on the real kube-apiserver: accepted and Established, and every case of the bad-input
catalogue refused there naming the field, as the API emulator refuses it (the two must agree)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sparkbook.testing.emulator import EmulatorThread
from tests.bad_input import CASES
from tests.e2e.conftest import RESTRICTED, ROOT, Kubectl

EMULATOR_KUBECTL = str(Path(sys.executable).parent / "kubectl")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The API emulator with the same CRDs, for the side-by-side verdicts."""
    with EmulatorThread(crds=sorted((ROOT / "crds").glob("*.yaml"))) as emu:
        path = tmp_path_factory.mktemp("emulator") / "config"
        emu.write_kubeconfig(path)
        namespace = json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "catalogue"}})
        subprocess.run([EMULATOR_KUBECTL, "--kubeconfig", str(path), "apply", "-f", "-"], input=namespace,
                       check=True, capture_output=True, text=True)
        yield path


def test_crds_are_established_with_their_columns(kubectl: Kubectl, installed) -> None:
    for name in ("sparksessions.sparkbook.io", "notebookservers.sparkbook.io", "notebookprofiles.sparkbook.io"):
        crd = json.loads(kubectl("get", "crd", name, "-o", "json").stdout)
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions.get("Established") == "True" and conditions.get("NamesAccepted") == "True", conditions
        # The real server found nothing to complain about in the structural schema.
        assert conditions.get("NonStructuralSchema") in (None, "False"), crd["status"]["conditions"]
    resources = kubectl("api-resources", "--api-group=sparkbook.io", "-o", "name").stdout.split()
    assert sorted(resources) == ["notebookprofiles.sparkbook.io", "notebookservers.sparkbook.io",
                                 "sparksessions.sparkbook.io"]


@pytest.fixture(scope="module")
def catalogue_namespace(kubectl: Kubectl, installed) -> str:
    kubectl("apply", "--server-side", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "catalogue", "labels": RESTRICTED}}))
    return "catalogue"


@pytest.mark.parametrize("base, change, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_real_server_and_emulator_refuse_alike(kubectl: Kubectl, catalogue_namespace: str, emulator: Path,
                                               base, change, message) -> None:
    doc = copy.deepcopy(base)
    doc["metadata"]["namespace"] = catalogue_namespace
    change(doc)
    text = yaml.safe_dump(doc)
    real = kubectl("apply", "-f", "-", input=text, check=False)
    emulated = subprocess.run([EMULATOR_KUBECTL, "--kubeconfig", str(emulator), "apply", "-f", "-"], input=text,
                              capture_output=True, text=True, timeout=60, env={**os.environ, "KUBECONFIG": str(emulator)})
    assert real.returncode != 0, f"the real API server accepted: {text}"
    assert message in real.stderr, f"the real API server's refusal does not name it: {real.stderr}"
    assert emulated.returncode != 0, f"the emulator accepted what the real server refuses: {text}"
    assert message in emulated.stderr, f"the emulator's refusal does not name it: {emulated.stderr}"


def test_the_examples_are_accepted_by_the_real_server(kubectl: Kubectl, catalogue_namespace: str) -> None:
    """The other half of agreement: what the catalogue starts from is valid on the real server."""
    for name in ("sparksession.yaml", "notebookserver.yaml", "notebookserver-shared.yaml"):
        docs = [d for d in yaml.safe_load_all((ROOT / "examples" / name).read_text()) if d]
        for doc in docs:
            doc["metadata"]["namespace"] = catalogue_namespace
        result = kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump_all(docs), check=False)
        assert result.returncode == 0, f"{name}: {result.stderr}"


def test_the_installs_own_operator_pod_is_admitted_under_restricted(kubectl: Kubectl, installed) -> None:
    """The install's namespace enforces `restricted`; its Deployment's pod is admitted there, the
    scheduler places it and a (fake) node reports it ready."""
    namespace = installed["metadata"]["namespace"]
    labels = json.loads(kubectl("get", "namespace", namespace, "-o", "json").stdout)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    kubectl("rollout", "status", f"deployment/{installed['metadata']['name']}", "-n", namespace, "--timeout=90s")
    pods = json.loads(kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)["items"]
    assert len(pods) == 1 and pods[0]["spec"]["nodeName"].startswith("kwok-node-")
