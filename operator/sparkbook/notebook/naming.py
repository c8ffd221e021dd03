"""Spark jobs named after the notebook and cell that ran them.

Spark Connect describes every job in the Spark UI by the text of its Connect plan
(``Spark Connect - session_id: ... plan { root { ... }``), so nobody can tell which cell ran which
job. A Connect client may set ``spark.job.description`` in its session, and the server gives
that to every job the session then runs. Before each cell, the kernel sets it to the notebook's
name, the cell's execution count and its first line: ``tutorial.ipynb [7] df.groupBy("k").count()``.

What it costs: one config RPC per cell while Spark is connected (a few milliseconds; cells of
``%%local`` and ``%%help`` skip it). It is made with a single attempt: if Spark does not answer,
the cell goes on unnamed at once rather than waiting out pyspark's retry policy, and naming rests
for :data:`REST_AFTER_FAILURE_S`.

Left alone: the SQL tab keeps the plan text. The server sets each SQL execution's description
from its own call site, which the client cannot change; each SQL query links to its jobs, which
carry the name.
"""

from __future__ import annotations

import os
import time
from typing import Any

DESCRIPTION_KEY = "spark.job.description"
MAX_LINE = 80
REST_AFTER_FAILURE_S = 60.0
_NO_SPARK = ("%%local", "%%help", "%sparkbook", "%%sparkbook")


def notebook_name() -> str | None:
    """The notebook's file name: Jupyter tells the kernel its path in ``JPY_SESSION_NAME``."""
    path = os.environ.get("JPY_SESSION_NAME", "").strip()
    return os.path.basename(path) or None


def job_description(notebook: str | None, count: int | None, source: str) -> str:
    """``tutorial.ipynb [7] first line of the cell`` (each part only when known)."""
    first = next((line.strip() for line in source.splitlines() if line.strip()), "")
    if len(first) > MAX_LINE:
        first = first[: MAX_LINE - 3] + "..."
    where = " ".join(p for p in (notebook, f"[{count}]" if count is not None else None) if p)
    return " ".join(p for p in (where, first) if p) or "notebook cell"


def cell_count(ip: Any) -> int | None:
    """The ``In [N]`` of the cell about to run, seen from ``pre_run_cell``: IPython 9.8 and later
    count the cell before that event, earlier ones after it."""
    count = getattr(ip, "execution_count", None)
    if not isinstance(count, int):
        return None
    import IPython

    return count - 1 if IPython.version_info >= (9, 8) else count


class JobNamer:
    """Sets the session's job description before each cell (IPython's ``pre_run_cell``)."""

    def __init__(self, session: Any, *, clock: Any = time.monotonic) -> None:
        self.session = session
        self.clock = clock
        self.resting_until = 0.0
        self.calls = 0

    def pre_run_cell(self, info: Any = None) -> None:
        source = getattr(info, "raw_cell", "") or ""
        if source.lstrip().startswith(_NO_SPARK) or self.clock() < self.resting_until:
            return
        from IPython import get_ipython

        self.set(job_description(notebook_name(), cell_count(get_ipython()), source))

    def set(self, description: str) -> bool:
        from pyspark.sql.connect.client.retries import DefaultPolicy

        client = self.session.client
        policies = client.get_retry_policies()
        client.set_retry_policies([DefaultPolicy(max_retries=0)])
        self.calls += 1
        try:
            self.session.conf.set(DESCRIPTION_KEY, description)
            return True
        except Exception:  # noqa: BLE001 - Spark is not answering: the cell runs unnamed
            self.resting_until = self.clock() + REST_AFTER_FAILURE_S
            return False
        finally:
            client.set_retry_policies(policies)
