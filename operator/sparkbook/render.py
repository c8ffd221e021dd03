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
from sparkbook.build.spark import EventLogError, event_log_target
from sparkbook.profile import ProfileError, effective_spec
from sparkbook.settings import Settings


class RenderError(Exception):
    pass


def describe_validation_error(kind: str, name: str, error: ValidationError) -> str:
    lines = [f"{kind} {name!r} is invalid:"]
    for item in error.errors():
        where = ".".join(str(p) for p in ("spec", *item["loc"]))
        lines.append(f"  {where}: {item['msg']}")
    return "\n".join(lines)


def _pruned(value: Any) -> Any:
    """Without empty lists and maps, which say nothing."""
    if isinstance(value, dict):
        return {k: _pruned(v) for k, v in value.items() if v not in ({}, [])}
    return value


def profiles_in(docs: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The NotebookProfiles among the documents, by name."""
    return {d["metadata"]["name"]: d for d in docs
            if d and d.get("kind") == "NotebookProfile" and (d.get("metadata") or {}).get("name")}


def notebook_spec(doc: dict[str, Any], profiles: dict[str, dict[str, Any]]) -> NotebookServerSpec:
    """A NotebookServer's effective spec: its profile's defaults (the profile must be among
    `profiles`) with its own fields on top, as the operator computes it."""
    name = (doc.get("metadata") or {}).get("name", "")
    raw = doc.get("spec") or {}
    profile = raw.get("profile")
    if not profile:
        try:
            return NotebookServerSpec.model_validate(raw)
        except ValidationError as e:
            raise RenderError(describe_validation_error("NotebookServer", name, e)) from None
    if profile not in profiles:
        raise RenderError(
            f"NotebookServer {name!r} names NotebookProfile {profile!r}, which is not in the input: add it "
            f"(`kubectl get notebookprofile {profile} -o yaml`, or manifests/profiles.yaml for the chart's)")
    try:
        return effective_spec(profile, profiles[profile].get("spec") or {}, raw)
    except ProfileError as e:
        raise RenderError(f"NotebookServer {name!r} ({e.reason}): {e.message}") from None


def children_of(doc: dict[str, Any], *, settings: Settings, namespace: str,
                profiles: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
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
        try:
            event_log = event_log_target(spec.event_log, settings.event_log_defaults)
        except EventLogError as e:
            raise RenderError(f"SparkSession {name!r} (EventLogNowhere): {e}") from None
        return session_children(owner=owner, spec=spec, image=spec.image or settings.spark_image, token=None,
                                event_log=event_log)
    if kind == "NotebookServer":
        nb_spec = notebook_spec(doc, profiles or {})
        out = []
        if nb_spec.profile:  # what the profile made of it, before what is made from that
            out.append({"apiVersion": owner["apiVersion"], "kind": kind, "metadata": meta,
                        "spec": _pruned(nb_spec.model_dump(by_alias=True, exclude_none=True, mode="json"))})
        culled = bool((meta.get("annotations") or {}).get(names.CULLED_AT))
        out += notebook_children(
            owner=owner, spec=nb_spec, image=nb_spec.image or settings.notebook_image, token=None, culled=culled,
            history_url=settings.history_server_url,
        )
        # The SparkSession the notebook owns, and what the operator creates for that in turn.
        for child in list(out):
            if child["kind"] == "SparkSession" and child["metadata"]["name"] != name:
                out.extend(children_of(child, settings=settings, namespace=namespace))
        return out
    if kind == "NotebookProfile":
        return []  # it makes nothing itself: the NotebookServers naming it show what it does
    raise RenderError(f"unknown kind {kind!r} (expected SparkSession, NotebookServer or NotebookProfile)")


def render_stream(text: str, *, settings: Settings, namespace: str = "default") -> str:
    out: list[dict[str, Any]] = []
    # Other objects in the input (a Namespace, the operator's install) are not ours to render.
    docs = [d for d in yaml.safe_load_all(text) if d and d.get("apiVersion") == names.API_VERSION]
    profiles = profiles_in(docs)
    for doc in docs:
        out.extend(children_of(doc, settings=settings, namespace=namespace, profiles=profiles))
    return dump_stream(out)


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the executor pod template) as readable literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_stream(objects: Iterable[dict[str, Any]]) -> str:
    return "".join("---\n" + yaml.dump(obj, Dumper=_Dumper, sort_keys=False, width=120) for obj in objects)
