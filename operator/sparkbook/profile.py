"""NotebookProfiles, as pure functions: the effective NotebookServer spec (the profile's defaults
under the user's own fields), the fields a user may not set or sets beyond a bound, and which
version of a profile a server runs with.

Everything works on the objects as stored: the NotebookServer and NotebookProfile CRDs publish no
defaults, so a field is in the stored spec only when its author wrote it."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from sparkbook.api.common import DURATION_PATTERN, MEMORY_PATTERN, duration_seconds, memory_mebibytes
from sparkbook.api.notebookprofile import NotebookProfileSpec, Override
from sparkbook.api.notebookserver import NotebookServerSpec

ALWAYS_THE_USERS = ("profile", "suspend", "jupyterhub")
"""Fields a user (or the JupyterHub spawner, for jupyterhub) sets whatever the profile says."""

_QUANTITY = re.compile(r"^([+-]?[0-9]*\.?[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}


class ProfileError(Exception):
    """A NotebookServer the profile does not allow, or a profile that cannot be used.
    `reason` is the Stalled condition's reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def magnitude(value: Any, field: str = "") -> float | None:
    """What a value means, as one number, for comparing it with a bound: memory in MiB for a
    field named memory (Spark's "2g" and Kubernetes' "2Gi" alike), seconds for a duration, and
    otherwise a number or a Kubernetes quantity ("500m" CPU is 0.5). None: not comparable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    is_memory = field.rsplit(".", 1)[-1] == "memory"
    if re.fullmatch(MEMORY_PATTERN, text) and (is_memory or not _QUANTITY.fullmatch(text)):
        return float(memory_mebibytes(text))  # Spark's "2g", "512m" (and "4Gi")
    m = _QUANTITY.fullmatch(text)
    if m:
        number, suffix = float(m.group(1)), m.group(2) or ""
        if suffix in _BINARY:
            number *= _BINARY[suffix]
        elif suffix in _DECIMAL:
            number *= _DECIMAL[suffix]
        elif suffix:
            number *= 10 ** int(suffix[1:])
        return number / 2**20 if is_memory else number  # a Kubernetes quantity; memory in MiB
    if re.fullmatch(DURATION_PATTERN, text):
        return duration_seconds(text)
    return None


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _is_map(annotation: Any) -> bool:
    if get_origin(annotation) is dict:
        return True
    return any(_is_map(a) for a in get_args(annotation))


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    """YAML name -> annotation of a model's fields."""
    return {(info.alias or name): info.annotation for name, info in model.model_fields.items()}


def known_field(path: str, model: type[BaseModel] = NotebookServerSpec) -> bool:
    """Whether `path` names a field (or a map's key) of a NotebookServer spec."""
    head, _, rest = path.partition(".")
    annotation = _fields(model).get(head)
    if annotation is None:
        return False
    if not rest:
        return True
    sub = _model_of(annotation)
    if sub is not None and not _is_map(annotation):
        return known_field(rest, sub)
    return _is_map(annotation)  # a map's key: resources.limits.memory, sparkConf.<any key>


def set_fields(spec: dict[str, Any], model: type[BaseModel] = NotebookServerSpec, prefix: str = "") -> Iterator[
        tuple[str, Any]]:
    """(path, value) of every value the author set: into models field by field, into maps key by
    key; a list or a scalar is one value."""
    for key, value in spec.items():
        path = f"{prefix}{key}"
        annotation = _fields(model).get(key)
        sub = _model_of(annotation) if annotation is not None else None
        if isinstance(value, dict) and sub is not None and not _is_map(annotation):
            yield from set_fields(value, sub, path + ".")
        elif isinstance(value, dict) and annotation is not None and _is_map(annotation) and value:
            for k, v in value.items():
                yield f"{path}.{k}", v
        else:
            yield path, value


def covering_field(path: str, fields: list[str]) -> str | None:
    """Which of the override fields lets a user set `path`: the most specific one naming it or a
    field above it (the JupyterHub form asks the same question of a profile's raw spec)."""
    best = None
    for f in fields:
        if (path == f or path.startswith(f + ".")) and (best is None or len(f) > len(best)):
            best = f
    return best


def _covering(path: str, overrides: list[Override]) -> Override | None:
    field = covering_field(path, [o.field for o in overrides])
    return next((o for o in overrides if o.field == field), None)


def refusals(profile_name: str, profile: NotebookProfileSpec, user_spec: dict[str, Any]) -> list[str]:
    """Why the user's spec is not allowed by the profile, one sentence per field (empty: allowed)."""
    problems = []
    allowed = ", ".join(o.field for o in profile.overrides) or "nothing"
    for path, value in set_fields(user_spec):
        if path.split(".")[0] in ALWAYS_THE_USERS:
            continue
        o = _covering(path, profile.overrides)
        if o is None:
            problems.append(f"spec.{path}: NotebookProfile {profile_name} does not let a user set this "
                            f"(it lets a user set: {allowed})")
            continue
        if o.values is not None and str(value) not in o.values:
            problems.append(f"spec.{path}: {value} is not one of the values NotebookProfile {profile_name} "
                            f"allows ({', '.join(o.values)})")
        if o.min is None and o.max is None:
            continue
        got = magnitude(value, path)
        if got is None:
            problems.append(f"spec.{path}: {value!r} cannot be compared with the bounds of NotebookProfile "
                            f"{profile_name}")
            continue
        if o.max is not None and got > (magnitude(o.max, path) or 0):
            problems.append(f"spec.{path}: {value} is more than NotebookProfile {profile_name} allows "
                            f"(at most {o.max})")
        if o.min is not None and got < (magnitude(o.min, path) or 0):
            problems.append(f"spec.{path}: {value} is less than NotebookProfile {profile_name} allows "
                            f"(at least {o.min})")
    return problems


def overlay(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Spec fields `top` over `base`, merged as a profile's defaults and a user's fields are."""
    return dict(_merge(base, top))


def _merge(base: Any, top: Any, path: str = "") -> Any:
    """`top` over `base`: objects and maps key by key, env by variable name, anything else replaced."""
    if isinstance(base, dict) and isinstance(top, dict):
        out = dict(base)
        for key, value in top.items():
            out[key] = _merge(base[key], value, f"{path}{key}.") if key in base else copy.deepcopy(value)
        return out
    if path.endswith("env.") and isinstance(base, list) and isinstance(top, list):
        mine = {item.get("name") for item in top if isinstance(item, dict)}
        return [item for item in base if item.get("name") not in mine] + copy.deepcopy(top)
    return copy.deepcopy(top)


def profile_defaults(profile_spec: dict[str, Any]) -> dict[str, Any]:
    """The NotebookServer spec a profile gives a user who sets nothing, as the profile wrote it."""
    base = copy.deepcopy(profile_spec.get("notebook") or {})
    if profile_spec.get("spark") is not None:
        base["spark"] = {"session": copy.deepcopy(profile_spec["spark"])}
    return base


def effective_spec(profile_name: str, profile_spec: dict[str, Any], user_spec: dict[str, Any]) -> NotebookServerSpec:
    """The NotebookServer spec that runs: the profile's defaults with the user's fields on top.
    Raises ProfileError when the profile refuses a field or the result is not a valid spec."""
    try:
        profile = NotebookProfileSpec.model_validate(profile_spec)
    except ValidationError as e:
        raise ProfileError("InvalidProfile", f"NotebookProfile {profile_name} is invalid: {_short(e)}") from None
    problems = refusals(profile_name, profile, user_spec)
    if problems:
        raise ProfileError("ProfileRefused", "; ".join(problems))
    base = profile_defaults(profile_spec)
    if (user_spec.get("spark") or {}).get("sessionRef") is not None:
        base.pop("spark", None)  # attaching to a shared session instead of owning one
    merged = _merge(base, user_spec)
    try:
        return NotebookServerSpec.model_validate(merged)
    except ValidationError as e:
        raise ProfileError("InvalidSpec", f"with NotebookProfile {profile_name}: {_short(e)}") from None


def _short(error: ValidationError) -> str:
    return "; ".join(".".join(str(p) for p in ("spec", *item["loc"])) + f": {item['msg']}"
                     for item in error.errors()[:5])


def profile_problems(profile_spec: dict[str, Any]) -> list[str]:
    """What makes a profile unusable: overrides naming no NotebookServer field, bounds on a field
    that is not a single value, defaults that do not make a valid NotebookServer."""
    try:
        profile = NotebookProfileSpec.model_validate(profile_spec)
    except ValidationError as e:
        return [_short(e)]
    problems = []
    for i, o in enumerate(profile.overrides):
        if not known_field(o.field):
            problems.append(f"spec.overrides[{i}].field: {o.field!r} is not a NotebookServer spec field")
        elif (o.min is not None or o.max is not None) and _model_of(_annotation_at(o.field)) is not None:
            problems.append(f"spec.overrides[{i}]: min and max need a field holding one value, "
                            f"not the object {o.field!r}")
    try:
        NotebookServerSpec.model_validate(profile_defaults(profile_spec))
    except ValidationError as e:
        problems.append("its defaults do not make a valid NotebookServer: " + _short(e))
    return problems


def _annotation_at(path: str, model: type[BaseModel] = NotebookServerSpec) -> Any:
    head, _, rest = path.partition(".")
    annotation = _fields(model).get(head)
    sub = _model_of(annotation) if annotation is not None else None
    if not rest or sub is None or _is_map(annotation):
        return None if rest else annotation
    return _annotation_at(rest, sub)


def applied_profile(
    *,
    previous: dict[str, Any] | None,
    current: dict[str, Any] | None,
    name: str,
    running: bool,
    spec_changed: bool,
) -> tuple[dict[str, Any] | None, bool]:
    """Which version of the profile the server is made with, and whether a newer one waits.

    `previous` is status.profile (name, generation, spec) of the last pass, `current` the
    NotebookProfile object now. A running server keeps the profile it was started with until the
    user changes the server's own spec or it starts again (after suspend or culling): an edited
    profile never restarts servers by itself."""
    fresh = None
    if current is not None:
        fresh = {"name": name, "generation": current["metadata"].get("generation"),
                 "spec": current.get("spec") or {}}
    keep = previous is not None and previous.get("name") == name and running and not spec_changed
    if not keep:
        return fresh, False
    assert previous is not None
    if fresh is None:
        return previous, False  # the profile was deleted: the running server keeps what it had
    return previous, previous.get("spec") != fresh["spec"]
