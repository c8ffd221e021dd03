"""The JupyterHub spawner's pure half: the options form from NotebookProfiles, the form's answers
as user_options, their check against the chosen profile, and the NotebookServer they make.
No JupyterHub import here, so the operator and its tests need no hub."""

from __future__ import annotations

import hashlib
import html
import re
from typing import Any

from pydantic import ValidationError

from sparkbook import names
from sparkbook.api.notebookprofile import NotebookProfileSpec
from sparkbook.profile import covering_field, refusals

# The Spark inputs the form can show, in order: the NotebookServer field each sets, its label,
# and how its text becomes a value. A profile shows one only if its overrides cover the field.
EXECUTOR_MEMORY = "spark.session.executor.memory"
EXECUTOR_CORES = "spark.session.executor.cores"
MIN_EXECUTORS = "spark.session.dynamicAllocation.minExecutors"
MAX_EXECUTORS = "spark.session.dynamicAllocation.maxExecutors"
SPARK_CONF = "spark.session.sparkConf"

SPARK_INPUTS: list[tuple[str, str, type]] = [
    (EXECUTOR_MEMORY, "Executor memory (e.g. 4g)", str),
    (EXECUTOR_CORES, "Executor cores", int),
    (MIN_EXECUTORS, "Minimum executors", int),
    (MAX_EXECUTORS, "Maximum executors", int),
]


class FormError(ValueError):
    """What the user got wrong, in a sentence the hub shows on its spawn page."""


def _covered(field: str, spec: dict[str, Any]) -> dict[str, Any] | None:
    """The override in a profile spec that lets a user set `field` (or a field above it)."""
    overrides = [o for o in spec.get("overrides") or [] if isinstance(o, dict)]
    chosen = covering_field(field, [str(o.get("field", "")) for o in overrides])
    return next((o for o in overrides if o.get("field") == chosen), None)


def shown_inputs(spec: dict[str, Any]) -> list[str]:
    """The Spark fields the form shows for a profile (its spec as a dict): only those it lets a
    user set, and none for a profile without Spark."""
    if not spec.get("spark"):
        return []
    fields = [f for f, _, _ in SPARK_INPUTS if _covered(f, spec)]
    return fields + ([SPARK_CONF] if _covered(SPARK_CONF, spec) else [])


def sorted_profiles(profiles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """NotebookProfile objects in the order users see them: spec.order, then name."""
    return sorted(profiles, key=lambda p: (p.get("spec", {}).get("order", 100), p["metadata"]["name"]))


def default_profile(profiles: list[dict[str, Any]]) -> str | None:
    """The profile preselected: the first with spec.default, else the first listed."""
    ordered = sorted_profiles(profiles)
    for p in ordered:
        if p.get("spec", {}).get("default"):
            return str(p["metadata"]["name"])
    return str(ordered[0]["metadata"]["name"]) if ordered else None


def _input_id(profile: str, field: str) -> str:
    return f"{profile}--{field}"


def render_form(profiles: list[dict[str, Any]]) -> str:
    """The options form: one radio per profile (displayName, description), the default checked,
    and under each the Spark inputs it allows, placeholders showing the profile's own values.
    Field names are `<profile>--<field>` so that only the chosen profile's inputs are read."""
    chosen = default_profile(profiles)
    esc = html.escape
    parts = ['<div class="sparkbook-profiles">']
    for p in sorted_profiles(profiles):
        name, spec = p["metadata"]["name"], p.get("spec", {})
        checked = " checked" if name == chosen else ""
        parts.append(
            f'<div class="sparkbook-profile"><label><input type="radio" name="profile" value="{esc(name)}"{checked}>'
            f' <strong>{esc(spec.get("displayName", name))}</strong></label>'
            f'<p class="help-block">{esc(spec.get("description", ""))}</p>'
        )
        for field in shown_inputs(spec):
            iid = esc(_input_id(name, field))
            bound = _covered(field, spec) or {}
            hint = ", ".join(f"{k} {bound[k]}" for k in ("min", "max") if bound.get(k) is not None)
            if field == SPARK_CONF:
                parts.append(
                    f'<label for="{iid}">Extra Spark properties, one per line: key=value or key value</label>'
                    f'<textarea class="form-control" id="{iid}" name="{iid}" rows="4"'
                    f' placeholder="spark.sql.shuffle.partitions=64"></textarea>'
                )
                continue
            label = next(lbl for f, lbl, _ in SPARK_INPUTS if f == field)
            default = _get(spec, "spark." + field.removeprefix("spark.session."))
            placeholder = "" if default is None else f' placeholder="{esc(str(default))}"'
            parts.append(
                f'<label for="{iid}">{esc(label)}{" (" + esc(hint) + ")" if hint else ""}</label>'
                f'<input class="form-control" id="{iid}" name="{iid}"{placeholder}>'
            )
        parts.append("</div>")
    parts.append("</div>")
    return "\n".join(parts)


def _get(spec: dict[str, Any], path: str) -> Any:
    node: Any = spec
    for key in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


_PROPERTY = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:=\s*|\s+)(\S.*?)\s*$")


def parse_spark_properties(text: str) -> dict[str, str]:
    """The extra-properties box: one `key=value` or `key value` a line (blank lines and lines
    starting with # are skipped). A bad line is an error naming it."""
    conf: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _PROPERTY.match(line)
        if not m:
            raise FormError(f"Extra Spark properties, line {number}: {line.strip()!r} is not "
                            "`key=value` or `key value`")
        conf[m.group(1)] = m.group(2)
    return conf


def options_from_form(form: dict[str, list[str]]) -> dict[str, Any]:
    """The posted form as user_options: {"profile": name, "spark": {field: value}}, with only
    the chosen profile's non-empty inputs. Wrong types are a FormError."""
    profile = (form.get("profile") or [""])[0].strip()
    if not profile:
        raise FormError("Choose a server type")
    spark: dict[str, Any] = {}
    for field, label, kind in SPARK_INPUTS:
        text = (form.get(_input_id(profile, field)) or [""])[0].strip()
        if not text:
            continue
        if kind is int:
            try:
                spark[field] = int(text)
            except ValueError:
                raise FormError(f"{label.split(' (')[0]}: {text!r} is not a whole number") from None
        else:
            spark[field] = text
    conf = parse_spark_properties((form.get(_input_id(profile, SPARK_CONF)) or [""])[0])
    if conf:
        spark[SPARK_CONF] = conf
    return {"profile": profile, "spark": spark}


def user_spec(options: dict[str, Any]) -> dict[str, Any]:
    """The NotebookServer spec fields the user chose (nested, camelCase), without the profile."""
    spec: dict[str, Any] = {}
    for field, value in (options.get("spark") or {}).items():
        node = spec
        *parents, last = field.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return spec


def validate(options: dict[str, Any], profiles: list[dict[str, Any]]) -> dict[str, Any]:
    """The chosen profile object, if the options are within what it allows; else a FormError
    with every problem, before anything is created."""
    by_name = {p["metadata"]["name"]: p for p in profiles}
    name = options.get("profile")
    if name not in by_name:
        raise FormError(f"There is no server type {name!r} (NotebookProfile); choose one of: "
                        f"{', '.join(sorted(by_name)) or 'none defined'}")
    profile = by_name[name]
    try:
        spec = NotebookProfileSpec.model_validate(profile.get("spec", {}))
    except ValidationError as e:
        raise FormError(f"NotebookProfile {name} is not valid; ask an administrator ({e.error_count()} errors)") from None
    shown = shown_inputs(profile.get("spec", {}))
    for field in options.get("spark") or {}:
        if field not in shown:
            raise FormError(f"{profile['spec'].get('displayName', name)} does not let you set {field}")
    problems = refusals(name, spec, user_spec(options))
    if problems:
        raise FormError("; ".join(problems))
    return profile


def dns_label(raw: str, max_length: int) -> str:
    """`raw` as a DNS-1035 label: lower case, anything else a '-', a letter first, and a stable
    hash when it had to change or is too long, so two names never become one."""
    safe = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    if not safe or not safe[0].isalpha():
        safe = "nb-" + safe
    safe = safe.rstrip("-")
    if safe != raw or len(safe) > max_length:
        digest = hashlib.sha256(raw.encode()).hexdigest()[:8]
        safe = f"{safe[: max_length - 9].rstrip('-')}-{digest}"
    return safe


def _fill(template: str, **values: str) -> str:
    """The template filled in; with no server name, what trailed {servername} ("--") goes too."""
    raw = template.format(**values)
    if not values.get("servername") and "{servername}" in template:
        raw = raw.rstrip("-_.")
    return raw


def server_name(template: str, username: str, servername: str = "") -> str:
    """The NotebookServer's name: `template` filled in ({username}, {servername}) as a DNS-1035
    label (see _label); the default server drops the separator before an empty {servername}."""
    return dns_label(_fill(template, username=username, servername=servername), names.MAX_NOTEBOOK_NAME)


def namespace_name(template: str, username: str, servername: str = "", hubnamespace: str = "") -> str:
    """The namespace a user's servers go to: `template` filled in ({username}, {servername},
    {hubnamespace}) as a namespace name."""
    return dns_label(_fill(template, username=username, servername=servername, hubnamespace=hubnamespace), 63)


def notebook_server(
    *, name: str, namespace: str, options: dict[str, Any], labels: dict[str, str]
) -> dict[str, Any]:
    """The NotebookServer the spawner applies: the profile and the user's fields, not suspended
    (applying it again resumes a stopped server)."""
    spec: dict[str, Any] = {"profile": options["profile"], **user_spec(options), "suspend": False}
    return {
        "apiVersion": names.API_VERSION,
        "kind": "NotebookServer",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": spec,
    }
