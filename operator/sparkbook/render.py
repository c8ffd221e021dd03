"""`sparkbook render`: the children the operator would apply for the resources in a file."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import yaml
from pydantic import ValidationError

from sparkbook import names
from sparkbook.api.notebookserver import NotebookServer, NotebookServerSpec
from sparkbook.api.sparksession import SparkSessionSpec
from sparkbook.build.notebook import notebook_children
from sparkbook.build.session import session_children
from sparkbook.settings import Settings


class RenderError(Exception):
    pass


def describe_validation_error(kind: str, name: str, error: ValidationError) -> str:
    lines = [f"{kind} {name!r} is invalid:"]
    for item in error.errors():
        where = ".".join(str(p) for p in ("spec", *item["loc"]))
        lines.append(f"  {where}: {item['msg']}")
    return "\n".join(lines)


def children_of(doc: dict[str, Any], *, settings: Settings, namespace: str) -> list[dict[str, Any]]:
    kind = doc.get("kind")
    meta = dict(doc.get("metadata") or {})
    meta.setdefault("namespace", namespace)
    name = meta.get("name")
    if not name:
        raise RenderError(f"a {kind} without metadata.name")
    limit = NotebookServer.MAX_NAME if kind == "NotebookServer" else names.MAX_NAME
    if not names.is_dns1035_label(name) or len(name) > limit:
        raise RenderError(f"{kind} {name!r}: metadata.name must be a DNS-1035 label of at most {limit} characters")
    owner = {"apiVersion": doc.get("apiVersion", names.API_VERSION), "kind": kind, "metadata": meta}
    if kind == "SparkSession":
        try:
            spec = SparkSessionSpec.model_validate(doc.get("spec") or {})
        except ValidationError as e:
            raise RenderError(describe_validation_error(kind, name, e)) from None
        return session_children(owner=owner, spec=spec, image=spec.image or settings.spark_image, token=None)
    if kind == "NotebookServer":
        try:
            nb_spec = NotebookServerSpec.model_validate(doc.get("spec") or {})
        except ValidationError as e:
            raise RenderError(describe_validation_error(kind, name, e)) from None
        culled = bool((meta.get("annotations") or {}).get(names.CULLED_AT))
        out = notebook_children(
            owner=owner, spec=nb_spec, image=nb_spec.image or settings.notebook_image, token=None, culled=culled
        )
        # The SparkSession the notebook owns, and what the operator creates for that in turn.
        for child in list(out):
            if child["kind"] == "SparkSession":
                out.extend(children_of(child, settings=settings, namespace=namespace))
        return out
    raise RenderError(f"unknown kind {kind!r} (expected SparkSession or NotebookServer)")


def render_stream(text: str, *, settings: Settings, namespace: str = "default") -> str:
    out: list[dict[str, Any]] = []
    for doc in yaml.safe_load_all(text):
        if not doc:
            continue
        if doc.get("apiVersion") != names.API_VERSION:
            continue  # other objects in the same file (a Namespace, say) are not ours to render
        out.extend(children_of(doc, settings=settings, namespace=namespace))
    return dump_stream(out)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the executor pod template) as readable literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_stream(objects: Iterable[dict[str, Any]]) -> str:
    return "".join("---\n" + yaml.dump(obj, Dumper=_Dumper, sort_keys=False, width=120) for obj in objects)
