"""Small pure helpers for comparing and patching JSON-like objects."""

from __future__ import annotations

import datetime
from typing import Any


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_rfc3339(value: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))


def is_subset(desired: Any, observed: Any) -> bool:
    """True when every field of `desired` is in `observed` with the same value.

    The API server adds defaults (a Service's clusterIP, a container's terminationMessagePath),
    so "what we want is there" is the right test for drift, not equality.
    """
    if isinstance(desired, dict):
        if not isinstance(observed, dict):
            return False
        return all(k in observed and is_subset(v, observed[k]) for k, v in desired.items())
    if isinstance(desired, list):
        if not isinstance(observed, list) or len(desired) != len(observed):
            return False
        return all(is_subset(d, o) for d, o in zip(desired, observed))
    if isinstance(desired, (int, float)) and isinstance(observed, str) and not isinstance(desired, bool):
        return str(desired) == observed
    return bool(desired == observed)


def merge_patch(old: Any, new: Any) -> Any:
    """The RFC 7386 merge patch that turns `old` into `new` (None values delete keys)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch: dict[str, Any] = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        if key not in old:
            patch[key] = value
        elif old[key] != value:
            patch[key] = merge_patch(old[key], value)
    return patch
