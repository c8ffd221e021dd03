"""Models -> CustomResourceDefinitions: `sparkbook crds` writes crds/, `--check` fails on drift.

pydantic's JSON Schema is turned into a *structural* OpenAPI v3 schema that a real API
server accepts: `$ref`s inlined, `anyOf: [X, null]` -> `nullable`, titles and
`additionalProperties: false` dropped (structural schemas prune and, with
fieldValidation=Strict, reject unknown fields instead), and x-kubernetes-* extras applied.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, NoDefault

from sparkbook import names
from sparkbook.api.common import Model
from sparkbook.api.notebookprofile import NotebookProfile
from sparkbook.api.notebookserver import NotebookServer
from sparkbook.api.sparksession import SparkSession

RESOURCES: list[type[Model]] = [SparkSession, NotebookServer, NotebookProfile]


def name_rule(limit: int) -> dict[str, str]:
    return {
        "rule": f"self.metadata.name.size() <= {limit} && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
        "message": f"metadata.name must be a DNS-1035 label (at most {limit} lowercase letters, digits and '-', "
        "starting with a letter) because Service names are derived from it",
    }


def _structural(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_structural(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = copy.deepcopy(defs[node.pop("$ref").rsplit("/", 1)[-1]])
        node = {**target, **node}
    if "anyOf" in node:
        options = node.pop("anyOf")
        variants = [v for v in options if v.get("type") != "null"]
        nullable = len(variants) < len(options)
        if len(variants) == 1:
            node = {**_structural(variants[0], defs), **node}
            if nullable:
                node["nullable"] = True
        elif {v.get("type") for v in variants} == {"integer", "string"}:
            node = {**node}  # int-or-string: the x-crd extra says so
            for v in variants:
                for key, value in v.items():
                    if key != "type":
                        node.setdefault(key, value)
        else:
            raise ValueError(f"cannot express this union in a structural schema: {variants}")
    extra = node.pop("x-crd", {})
    node.pop("title", None)
    node.pop("propertyNames", None)  # not part of the Kubernetes schema dialect
    if node.get("additionalProperties") is True:  # dict[str, Any]
        node.pop("additionalProperties")
        node["x-kubernetes-preserve-unknown-fields"] = True
    if node.get("additionalProperties") is False:
        node.pop("additionalProperties")
    if isinstance(node.get("exclusiveMinimum"), (int, float)) and not isinstance(node["exclusiveMinimum"], bool):
        node["minimum"], node["exclusiveMinimum"] = node["exclusiveMinimum"], True
    if isinstance(node.get("exclusiveMaximum"), (int, float)) and not isinstance(node["exclusiveMaximum"], bool):
        node["maximum"], node["exclusiveMaximum"] = node["exclusiveMaximum"], True
    if "properties" in node:
        node["properties"] = {k: _structural(v, defs) for k, v in node["properties"].items()}
    if isinstance(node.get("additionalProperties"), dict):
        sub = node["additionalProperties"]
        node["additionalProperties"] = _structural(sub, defs) if sub else {}
        if not node["additionalProperties"]:  # dict[str, Any]
            node.pop("additionalProperties")
            node["x-kubernetes-preserve-unknown-fields"] = True
    if "items" in node:
        node["items"] = _structural(node["items"], defs)
        if node["items"] == {}:
            node["items"] = {"x-kubernetes-preserve-unknown-fields": True}
    if node.get("type") == "object" and "properties" not in node and "additionalProperties" not in node:
        node["x-kubernetes-preserve-unknown-fields"] = True
    int_or_string = extra.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-int-or-string")
    if not node.get("type") and not int_or_string and "properties" not in node:
        node.setdefault("x-kubernetes-preserve-unknown-fields", True)
        node.setdefault("type", "object")
    # An object default of {} lets the server fill in the nested defaults itself.
    if isinstance(node.get("default"), dict) and "properties" in node:
        node["default"] = {}  # a nested model: the server fills in its fields' own defaults
    if node.get("default", 0) is None:
        node.pop("default")
    if int_or_string:
        node.pop("type", None)
        node.pop("x-kubernetes-preserve-unknown-fields", None)
    node.update(extra)
    # kube-apiserver checks a default against its node's CEL rules as written, before it fills in
    # the nested defaults (it refuses `{}` where a rule reads self.minExecutors): such a default
    # is published whole.
    if node.get("default") == {} and node.get("x-kubernetes-validations"):
        node["default"] = _filled(node)
    if "required" in node:
        node["required"] = sorted(node["required"])
    return node


def _filled(node: dict[str, Any]) -> dict[str, Any]:
    """What the server's defaulting makes of `{}` under `node`."""
    out = {}
    for key, sub in (node.get("properties") or {}).items():
        if "default" in sub:
            out[key] = _filled(sub) if sub["default"] == {} else sub["default"]
    return out


class _WithFactoryDefaults(GenerateJsonSchema):
    """Also publish defaults that come from a default_factory, so the API server applies them."""

    def get_default_value(self, schema: Any) -> Any:
        if "default_factory" in schema and not schema.get("default_factory_takes_data"):
            value = schema["default_factory"]()
            if isinstance(value, BaseModel):
                return {}  # the nested model's own field defaults apply inside
            if not value:  # empty lists and maps: nothing worth storing in every object
                return NoDefault
            return value
        return super().get_default_value(schema)


class _NoDefaults(GenerateJsonSchema):
    """Publish no defaults: the stored object keeps only what its author wrote."""

    def get_default_value(self, schema: Any) -> Any:
        return NoDefault


def schema_of(model: type[Model], *, defaults: bool = True) -> dict[str, Any]:
    generator = _WithFactoryDefaults if defaults else _NoDefaults
    raw = model.model_json_schema(by_alias=True, mode="validation", schema_generator=generator)
    defs = raw.pop("$defs", {})
    return _structural(raw, defs)


def crd_for(resource: Any) -> dict[str, Any]:
    spec_schema = schema_of(resource.model_fields["spec"].annotation,
                            defaults=getattr(resource, "PUBLISH_DEFAULTS", True))
    status_model = resource.model_fields["status"].annotation.__args__[0]
    status_schema = schema_of(status_model)
    if not spec_schema.get("required"):
        spec_schema["default"] = {}
    spec_schema["description"] = spec_schema.get("description", "").strip() or "What the user asks for."
    schema = {
        "type": "object",
        "description": (resource.__doc__ or "").strip(),
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema,
            "status": status_schema,
        },
        "x-kubernetes-validations": [name_rule(getattr(resource, "MAX_NAME", 63))],
    }
    if spec_schema.get("required"):
        schema["required"] = ["spec"]
    plural = resource.PLURAL
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{names.GROUP}",
            "labels": {names.APP_NAME: "sparkbook", "app.kubernetes.io/part-of": "sparkbook"},
        },
        "spec": {
            "group": names.GROUP,
            "scope": getattr(resource, "SCOPE", "Namespaced"),
            "names": {
                "kind": resource.KIND,
                "listKind": f"{resource.KIND}List",
                "plural": plural,
                "singular": resource.SINGULAR,
                "shortNames": list(resource.SHORT_NAMES),
                "categories": ["sparkbook"],
            },
            "versions": [
                {
                    "name": names.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": resource.PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


HEADER = "# GENERATED by `sparkbook crds` from operator/sparkbook/api; do not edit.\n"


def render_all() -> dict[str, str]:
    """File name -> YAML text of every CRD."""
    out = {}
    for resource in RESOURCES:
        crd = crd_for(resource)
        text = HEADER + yaml.safe_dump(crd, sort_keys=False, width=120)
        out[f"{crd['metadata']['name']}.yaml"] = text
    return out


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


def check(directory: Path) -> list[str]:
    """Differences between the files in `directory` and what the models generate."""
    problems = []
    expected = render_all()
    for name, text in expected.items():
        path = directory / name
        if not path.exists():
            problems.append(f"{path}: missing")
            continue
        actual = path.read_text()
        if actual != text:
            diff = "".join(difflib.unified_diff(actual.splitlines(True), text.splitlines(True), str(path), "generated"))
            problems.append(diff)
    for path in sorted(directory.glob("*.yaml")):
        if path.name not in expected:
            problems.append(f"{path}: not generated by any model (delete it?)")
    return problems
