"""The CRDs are generated from the models, structural, and what a real API server accepts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from sparkbook import crds

ROOT = Path(__file__).resolve().parents[2]


def _walk(node: Any, path: str = ""):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def _load(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "crds" / name).read_text())


def test_crds_check_passes_on_the_committed_files():
    result = subprocess.run(
        [sys.executable, "-m", "sparkbook.cli", "crds", "--check", "--dir", str(ROOT / "crds")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_crds_check_fails_on_drift(tmp_path: Path):
    crds.write(tmp_path)
    target = tmp_path / "sparksessions.sparkbook.io.yaml"
    target.write_text(target.read_text().replace("maxExecutors", "maxExecutorz"))
    result = subprocess.run(
        [sys.executable, "-m", "sparkbook.cli", "crds", "--check", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "maxExecutorz" in result.stderr


def test_schema_is_structural():
    crd = _load("sparksessions.sparkbook.io.yaml")
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "$ref" not in node, path
        assert "anyOf" not in node, path
        assert "title" not in node, path
        assert "allOf" not in node and "oneOf" not in node, path
        if "properties" in node:
            assert "additionalProperties" not in node, path
            assert node.get("type") == "object", path
            for name, sub in node["properties"].items():
                typed = "type" in sub or sub.get("x-kubernetes-int-or-string") or sub.get(
                    "x-kubernetes-preserve-unknown-fields"
                )
                assert typed, f"{path}.{name} has no type"


def test_crd_has_status_subresource_printer_columns_short_name_and_cel():
    crd = _load("sparksessions.sparkbook.io.yaml")
    version = crd["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Phase", "Executors", "Ready", "Connect", "Age"]
    assert crd["spec"]["names"]["shortNames"] == ["sps"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    da = spec["properties"]["dynamicAllocation"]
    rules = [v["rule"] for v in da["x-kubernetes-validations"]]
    # Guarded with has(): the same rule serves a NotebookServer's session, whose defaults are not filled in.
    assert any("self.initialExecutors <= (has(self.maxExecutors) ? self.maxExecutors : 10)" in r for r in rules)
    assert da["properties"]["maxExecutors"]["default"] == 10
    assert spec["properties"]["driver"]["properties"]["coreRequest"]["x-kubernetes-int-or-string"] is True
    assert spec["properties"]["image"]["nullable"] is True


def _defaults(node, path="spec"):
    if isinstance(node, dict):
        if "default" in node and path != "spec":
            yield path
        for key, sub in (node.get("properties") or {}).items():
            yield from _defaults(sub, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            yield from _defaults(node["items"], f"{path}[]")


def test_notebookserver_and_profile_specs_publish_no_defaults_so_the_stored_object_is_what_its_author_wrote():
    for name in ("notebookservers.sparkbook.io.yaml", "notebookprofiles.sparkbook.io.yaml"):
        spec = _load(name)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        assert list(_defaults(spec)) == [], name
    session = _load("sparksessions.sparkbook.io.yaml")["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert "spec.executor.memory" in list(_defaults(session["properties"]["spec"]))  # a SparkSession keeps them


def test_notebookprofile_crd_is_cluster_scoped_with_columns_and_requires_a_display_name():
    crd = _load("notebookprofiles.sparkbook.io.yaml")
    assert crd["spec"]["scope"] == "Cluster"
    assert crd["spec"]["names"]["shortNames"] == ["nbp"]
    version = crd["spec"]["versions"][0]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == [
        "Display Name", "Default", "Valid", "Servers", "Age"]
    schema = version["schema"]["openAPIV3Schema"]
    assert schema["required"] == ["spec"]
    assert "displayName" in schema["properties"]["spec"]["required"]
    override = schema["properties"]["spec"]["properties"]["overrides"]["items"]
    assert override["properties"]["max"]["x-kubernetes-int-or-string"] is True
