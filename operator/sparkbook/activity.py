"""Is a notebook server or Spark Connect session in use? Ask the server itself.

The operator culls idle notebook servers and suspends idle Spark sessions. This module
probes each kind of server over HTTP for what it knows about its own activity and turns
the answer into one :class:`Activity`; :func:`idle_for` then says how long it has been idle.

* Jupyter (jupyter-server 2.x): ``/api/status``, ``/api/kernels``, ``/api/terminals``.
  Polling must not count as activity. ``/api/status`` opts out of activity tracking
  (``APIStatusHandler._track_activity = False``); every other ``APIHandler`` records
  ``api_last_activity`` on ``finish()`` unless the request carries ``no_track_activity``
  (``jupyter_server/base/handlers.py``, ``APIHandler.update_api_activity``), so every
  request here carries ``?no_track_activity=1``.
* Spark (4.3 UI REST API): the one application, its running jobs, and the Spark Connect
  sessions and operations (``/connect/sessions``, ``/connect/operations``; undocumented,
  timestamps in epoch milliseconds, 0 when unset). Without the Connect endpoints (404),
  jobs alone are used.

Parsing (``*_activity_from``) and the decision (:func:`idle_for`) are pure; only the
``probe_*`` coroutines do I/O, each request bounded by :data:`REQUEST_TIMEOUT_S`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import aiohttp

REQUEST_TIMEOUT_S = 5.0

# Spark Connect operation states (org.apache.spark.sql.connect.ui.ExecutionState) in which
# the operation has not finished yet: received, analyzed, planned and about to run/running.
# FINISHED, CANCELED, FAILED and CLOSED are over.
SPARK_RUNNING_OPERATION_STATES = frozenset({"STARTED", "COMPILED", "READY"})

_NO_TRACK = {"no_track_activity": "1"}


@dataclass(frozen=True)
class Activity:
    """What a server says about its own use."""

    last_activity: datetime | None  # newest moment of activity the server reports (UTC, tz-aware)
    busy: bool  # something is running right now (busy kernel, open terminal, running Spark job/operation)
    detail: str  # one short human sentence


class ProbeError(Exception):
    """The server could not be asked, or its answer made no sense. The message is one sentence."""


# --------------------------------------------------------------------------- time helpers


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def _parse_iso(value: Any, what: str) -> datetime:
    """Jupyter's ISO timestamps: ``2026-01-02T03:04:05.678901Z`` or ``...+00:00``."""
    if not isinstance(value, str) or not value:
        raise ProbeError(f"The server reported {what} as {value!r}, which is not a timestamp.")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return _utc(datetime.fromisoformat(text))
    except ValueError:
        raise ProbeError(f"The server reported {what} as {value!r}, which is not a timestamp.") from None


def _parse_spark_date(value: Any, what: str) -> datetime | None:
    """Spark's job dates: ``2026-01-02T03:04:05.678GMT``; absent while unset."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.endswith("GMT"):
        try:
            return _utc(datetime.fromisoformat(value[: -len("GMT")]))
        except ValueError:
            pass
    raise ProbeError(f"Spark reported {what} as {value!r}, which is not a date.")


def _parse_millis(value: Any, what: str) -> datetime | None:
    """Spark Connect's epoch-millisecond timestamps; 0 (or negative, or absent) means unset."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProbeError(f"Spark reported {what} as {value!r}, which is not an epoch-millisecond timestamp.")
    if value <= 0:
        return None
    return datetime.fromtimestamp(value / 1000, tz=timezone.utc)


def _newest(moments: Iterable[datetime | None]) -> datetime | None:
    present = [m for m in moments if m is not None]
    return max(present) if present else None


def _show(moment: datetime | None) -> str:
    if moment is None:
        return "no activity recorded"
    return "last activity " + moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _dicts(value: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ProbeError(f"The server's {what} is not a list of objects.")
    return value


# --------------------------------------------------------------------------- pure parsing


def jupyter_activity_from(
    status: dict[str, Any], kernels: list[dict[str, Any]], terminals: list[dict[str, Any]]
) -> Activity:
    """Activity from the answers of ``/api/status``, ``/api/kernels`` and ``/api/terminals``.

    Busy when any kernel's ``execution_state`` is ``busy`` or any terminal is open (a terminal
    is an interactive session that must not be killed). ``last_activity`` is the newest of the
    server's, the kernels' and the terminals' ``last_activity``.
    """
    if not isinstance(status, dict):
        raise ProbeError("The server's /api/status answer is not an object.")
    kernels = _dicts(kernels, "kernel list")
    terminals = _dicts(terminals, "terminal list")
    moments: list[datetime | None] = []
    if status.get("last_activity") is not None:
        moments.append(_parse_iso(status["last_activity"], "its last activity"))
    for kernel in kernels:
        if kernel.get("last_activity") is not None:
            moments.append(_parse_iso(kernel["last_activity"], f"kernel {kernel.get('id', '?')}'s last activity"))
    for term in terminals:
        if term.get("last_activity") is not None:
            moments.append(_parse_iso(term["last_activity"], f"terminal {term.get('name', '?')}'s last activity"))
    last = _newest(moments)

    busy_kernels = sum(1 for k in kernels if k.get("execution_state") == "busy")
    if not kernels:
        kernel_part = "no kernels"
    elif busy_kernels:
        kernel_part = f"{busy_kernels} of {_plural(len(kernels), 'kernel')} busy"
    else:
        kernel_part = f"{_plural(len(kernels), 'kernel')} idle"
    terminal_part = f"{_plural(len(terminals), 'terminal')} open" if terminals else "no terminals"
    return Activity(
        last_activity=last,
        busy=bool(busy_kernels or terminals),
        detail=f"{kernel_part}, {terminal_part}, {_show(last)}",
    )


def spark_activity_from(
    jobs: list[dict[str, Any]],
    connect_sessions: list[dict[str, Any]] | None,
    connect_operations: list[dict[str, Any]] | None,
) -> Activity:
    """Activity from a Spark application's jobs and, when available, its Spark Connect
    sessions and operations (``None`` = the server has no Connect endpoints).

    Busy when a job is ``RUNNING`` or an operation has not finished (STARTED, COMPILED, READY).
    ``last_activity`` is the newest session start, operation start/finish/close and job
    submission/completion; ``None`` when nothing ever happened. A session's finish time is
    deliberately left out: the server expires idle sessions itself, and that is not use.
    """
    jobs = _dicts(jobs, "job list")
    moments: list[datetime | None] = []
    for job in jobs:
        jid = job.get("jobId", "?")
        moments.append(_parse_spark_date(job.get("submissionTime"), f"job {jid}'s submission time"))
        moments.append(_parse_spark_date(job.get("completionTime"), f"job {jid}'s completion time"))
    running_jobs = sum(1 for j in jobs if j.get("status") == "RUNNING")

    parts: list[str] = []
    running_ops = 0
    if connect_sessions is not None:
        sessions = _dicts(connect_sessions, "Connect session list")
        for s in sessions:
            moments.append(_parse_millis(s.get("startTimestamp"), f"session {s.get('sessionId', '?')}'s start"))
        open_sessions = sum(1 for s in sessions if not s.get("finishTimestamp"))
        parts.append(f"{_plural(open_sessions, 'open session')}")
    if connect_operations is not None:
        operations = _dicts(connect_operations, "Connect operation list")
        for op in operations:
            oid = op.get("operationId", "?")
            for key in ("startTimestamp", "finishTimestamp", "closeTimestamp"):
                moments.append(_parse_millis(op.get(key), f"operation {oid}'s {key}"))
        running_ops = sum(1 for op in operations if op.get("state") in SPARK_RUNNING_OPERATION_STATES)
        parts.append(f"{_plural(running_ops, 'running operation')}")
    parts.append(f"{_plural(running_jobs, 'running job')}")
    if connect_sessions is None and connect_operations is None:
        parts.append("no Spark Connect data")
    last = _newest(moments)
    return Activity(
        last_activity=last,
        busy=bool(running_jobs or running_ops),
        detail=f"{', '.join(parts)}, {_show(last)}",
    )


# --------------------------------------------------------------------------- pure decision


def idle_for(activity: Activity, *, now: datetime, started: datetime | None) -> timedelta:
    """How long the server has been idle: zero when busy; else now - max(last_activity, started)
    (started = when the pod became ready, so a server that just woke up is never culled before
    a full timeout). Never negative; zero when nothing at all is known."""
    if activity.busy:
        return timedelta(0)
    since = _newest([activity.last_activity, started])
    if since is None:
        return timedelta(0)
    return max(timedelta(0), _utc(now) - _utc(since))


# --------------------------------------------------------------------------- I/O


async def _get_json(
    http: aiohttp.ClientSession,
    url: str,
    *,
    server: str,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    missing_ok: bool = False,
) -> Any:
    """GET a JSON document; ``None`` on 404 when ``missing_ok``; ProbeError on anything else."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    try:
        async with http.get(url, headers=headers, params=params, timeout=timeout) as resp:
            if resp.status == 404 and missing_ok:
                return None
            if resp.status in (401, 403):
                raise ProbeError(f"{server} refused our credentials for {url} (HTTP {resp.status}).")
            if resp.status != 200:
                raise ProbeError(f"{server} answered {url} with HTTP {resp.status}.")
            body = await resp.read()
    except asyncio.TimeoutError:
        raise ProbeError(f"{server} did not answer {url} within {REQUEST_TIMEOUT_S:g}s.") from None
    except aiohttp.ClientConnectorError as exc:
        reason = exc.os_error.strerror or type(exc.os_error).__name__
        raise ProbeError(f"{server} is unreachable ({reason}).") from None
    except aiohttp.ClientError as exc:
        raise ProbeError(f"{server} failed to answer {url} ({type(exc).__name__}).") from None
    try:
        return json.loads(body)
    except ValueError:
        raise ProbeError(f"{server} answered {url} with something that is not JSON.") from None


async def probe_jupyter(http: aiohttp.ClientSession, base_url: str, token: str) -> Activity:
    """Ask a Jupyter server, without the asking itself counting as activity."""
    base = base_url.rstrip("/")
    headers = {"Authorization": f"token {token}"}
    server = f"The Jupyter server at {base}"
    try:
        status = await _get_json(http, f"{base}/api/status", server=server, headers=headers, params=_NO_TRACK)
        kernels = await _get_json(http, f"{base}/api/kernels", server=server, headers=headers, params=_NO_TRACK)
        # 404 when terminals are disabled (or jupyter-server-terminals is absent): none open.
        terminals = await _get_json(
            http, f"{base}/api/terminals", server=server, headers=headers, params=_NO_TRACK, missing_ok=True
        )
        return jupyter_activity_from(status, kernels, [] if terminals is None else terminals)
    except ProbeError as exc:
        if token and token in str(exc):  # belt and braces: a token never reaches a log or a status
            raise ProbeError(str(exc).replace(token, "<token>")) from None
        raise


def _pick_application(apps: Any, server: str) -> str:
    if not isinstance(apps, list) or not all(isinstance(a, dict) and isinstance(a.get("id"), str) for a in apps):
        raise ProbeError(f"{server} listed applications in an unexpected shape.")
    if not apps:
        raise ProbeError(f"{server} lists no application.")

    def running(app: dict[str, Any]) -> bool:
        attempts = app.get("attempts") or []
        return any(isinstance(a, dict) and not a.get("completed", False) for a in attempts)

    return str(next((a for a in apps if running(a)), apps[0])["id"])


async def probe_spark(http: aiohttp.ClientSession, base_url: str) -> Activity:
    """Ask a Spark driver's UI REST API (``base_url`` = the UI root, e.g. http://10.0.0.5:4040)."""
    base = base_url.rstrip("/")
    server = f"The Spark UI at {base}"
    app_id = _pick_application(await _get_json(http, f"{base}/api/v1/applications", server=server), server)
    app = f"{base}/api/v1/applications/{quote(app_id, safe='')}"
    sessions = await _get_json(http, f"{app}/connect/sessions", server=server, missing_ok=True)
    operations = await _get_json(http, f"{app}/connect/operations", server=server, missing_ok=True)
    if sessions is None and operations is None:
        # No Spark Connect: every job counts, finished ones for when, running ones for busy.
        jobs = await _get_json(http, f"{app}/jobs", server=server)
    else:
        # Finished jobs belong to operations, whose timestamps are already in hand.
        jobs = await _get_json(http, f"{app}/jobs", server=server, params={"status": "running"})
    return spark_activity_from(jobs, sessions, operations)
