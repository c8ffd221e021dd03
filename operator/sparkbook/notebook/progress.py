"""Live Spark progress under each cell, and a link to every Spark job the cell ran.

What the user sees
    While a cell runs Spark work through Spark Connect, a line under the cell: a bar of tasks
    done out of all tasks, the stages still running and the time so far. When the cell ends the
    line becomes its summary (``3 jobs · 4 stages · 210 tasks · 2.4 s``) followed by one link per
    job to its page in the Spark UI (``/jobs/job/?id=N``). A cell with no Spark work shows nothing.

Where the figures come from
    pyspark's Spark Connect client reports execution progress to every handler registered with
    ``spark.registerProgressHandler``: per operation (one ``ExecutePlan`` RPC), its stages with
    tasks done / total, every ``spark.connect.progress.reportInterval`` (the driver sets it, see
    ``build/launch.py``). Job ids are not in those reports. The Connect server tags every job of
    an operation with ``SparkConnect_OperationTag_..._Operation_<operation id>``, and the Spark
    UI's REST API lists jobs with their tags (``/api/v1/applications/<app>/jobs``): that maps the
    cell's operations to its job ids.

Cost, and politeness
    Nothing runs while the kernel is idle, and a cell that makes no ``ExecutePlan`` RPC costs
    nothing. While a cell's Spark work runs, the REST API is asked at most once every
    :data:`POLL_INTERVAL_S` (from the first report after a second's work), and the display is
    redrawn at most every :data:`RENDER_INTERVAL_S`. When a cell with Spark operations ends, the
    REST API is asked once, and again (every :data:`FINAL_POLL_GAP_S`, at most
    :data:`FINAL_POLLS` times in all) only while one of its jobs is still listed as running or is
    not listed yet: Spark's status store is fed by an asynchronous listener bus. The job list is
    bounded by ``spark.ui.retainedJobs`` (1000 by default). :attr:`CellProgress.requests` counts
    the requests.

Front ends
    In JupyterLab an ipywidgets bar (``application/vnd.jupyter.widget-view+json``); every update
    also carries ``text/html`` and ``text/plain``, so nbconvert, a console or a front end without
    widgets shows the same figures as text. Without ipywidgets installed the display is HTML and
    text only.

Switches
    ``SPARKBOOK_PROGRESS=0`` in the kernel's environment, or ``%sparkbook progress off`` in a cell
    (``on`` again), turns it off.
"""

from __future__ import annotations

import html
import json
import os
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Iterable

PROGRESS_ENV = "SPARKBOOK_PROGRESS"
POLL_INTERVAL_S = 2.0  # REST requests while a cell runs: at most one per this many seconds
FINAL_POLLS = 15  # at the end of a cell: until its jobs are all there and finished (1.5 s at most)
FINAL_POLL_GAP_S = 0.1
RENDER_INTERVAL_S = 0.25  # display updates while a cell runs: at most four a second
REST_TIMEOUT_S = 2.0
OPERATION_TAG = "_Operation_"

_enabled: bool | None = None


def enabled() -> bool:
    if _enabled is not None:
        return _enabled
    return os.environ.get(PROGRESS_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def set_enabled(on: bool) -> None:
    global _enabled
    _enabled = on


# --- pure: figures from progress reports and REST job lists ---------------------------------


@dataclass
class Stage:
    stage_id: int
    tasks: int
    done_tasks: int
    done: bool


@dataclass
class Totals:
    stages: int = 0
    running_stages: list[int] = field(default_factory=list)
    tasks: int = 0
    done_tasks: int = 0

    @property
    def fraction(self) -> float:
        return self.done_tasks / self.tasks if self.tasks else 0.0


def totals(stages_by_operation: dict[str, dict[int, Stage]], *, finished_only: bool = False) -> Totals:
    """What the cell's operations did so far: stages (each counted once), tasks done / all.

    ``finished_only``: the stages that ran to the end. A report lists the stages a job planned,
    and adaptive execution or a reused shuffle leaves some of them never run (0 of N tasks)."""
    out = Totals()
    for stages in stages_by_operation.values():
        for stage in stages.values():
            if finished_only and not stage.done:
                continue
            out.stages += 1
            out.tasks += stage.tasks
            out.done_tasks += min(stage.done_tasks, stage.tasks)
            if not stage.done:
                out.running_stages.append(stage.stage_id)
    out.running_stages.sort()
    return out


@dataclass(frozen=True)
class Job:
    """One Spark job as the UI's REST API reports it."""

    job_id: int
    status: str  # RUNNING, SUCCEEDED, FAILED, UNKNOWN
    operation_id: str
    stages: int = 0  # run, not skipped (a reused shuffle skips its map stage)
    tasks: int = 0
    done_tasks: int = 0


def operation_of(tags: Iterable[str]) -> str | None:
    """The Connect operation id in a job's tags, if any."""
    for tag in tags:
        if tag.startswith("SparkConnect_OperationTag_") and OPERATION_TAG in tag:
            return tag.rsplit(OPERATION_TAG, 1)[1]
    return None


def jobs_of(rest_jobs: list[dict[str, Any]], operations: Iterable[str]) -> list[Job]:
    """The jobs (from ``/api/v1/applications/<app>/jobs``) that ``operations`` ran, by job id."""
    wanted = set(operations)
    out = []
    for job in rest_jobs:
        op = operation_of(job.get("jobTags") or [])
        if op in wanted:
            skipped_tasks = int(job.get("numSkippedTasks") or 0)
            out.append(Job(
                job_id=int(job["jobId"]), status=str(job.get("status", "UNKNOWN")), operation_id=op,
                stages=len(job.get("stageIds") or []) - int(job.get("numSkippedStages") or 0),
                tasks=int(job.get("numTasks") or 0) - skipped_tasks,
                done_tasks=int(job.get("numCompletedTasks") or 0),
            ))
    return sorted(out, key=lambda j: j.job_id)


def job_totals(jobs: list[Job]) -> Totals:
    """The same figures from the REST API's jobs: what a cell did when it is over (progress
    reports come every reportInterval, so a short job may have sent none)."""
    return Totals(stages=sum(j.stages for j in jobs), tasks=sum(j.tasks for j in jobs),
                  done_tasks=sum(min(j.done_tasks, j.tasks) for j in jobs))


def _seconds(elapsed: float) -> str:
    if elapsed < 60:
        return f"{elapsed:.1f} s"
    minutes, seconds = divmod(int(elapsed), 60)
    return f"{minutes} min {seconds:02d} s"


def _n(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def job_url(ui_base: str, job_id: int) -> str:
    return f"{ui_base.rstrip('/')}/jobs/job/?id={job_id}"


def describe(t: Totals, elapsed: float, jobs: list[Job], *, done: bool, failed: bool = False) -> str:
    """The one line under the cell, as text."""
    if done:
        head = "Spark failed" if failed else "Spark"
        parts = [head, _n(len(jobs), "job") if jobs else None, _n(t.stages, "stage"),
                 f"{t.done_tasks}/{_n(t.tasks, 'task')}",
                 _seconds(elapsed)]
        return " · ".join(p for p in parts if p)
    running = ", ".join(str(s) for s in t.running_stages[:4]) + (" ..." if len(t.running_stages) > 4 else "")
    stage_part = f"stage {running}" if len(t.running_stages) == 1 else f"stages {running}" if running else "stages done"
    return f"Spark {t.done_tasks}/{t.tasks} tasks ({t.fraction:.0%}) · {stage_part} · {_seconds(elapsed)}"


def bar(fraction: float, width: int = 30) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def as_text(line: str, t: Totals, jobs: list[Job], ui_base: str | None, *, done: bool) -> str:
    out = [line if done else f"{bar(t.fraction)} {line}"]
    for job in jobs:
        where = f": {job_url(ui_base, job.job_id)}" if ui_base else ""
        out.append(f"  job {job.job_id} {job.status.lower()}{where}")
    return "\n".join(out)


def as_html(line: str, t: Totals, jobs: list[Job], ui_base: str | None, *, done: bool, bar: bool = True) -> str:
    """The line as HTML; ``bar``: with an HTML progress bar while it runs (the widget draws its own)."""
    parts = []
    if bar and not done:
        parts.append(f'<progress max="{max(t.tasks, 1)}" value="{t.done_tasks}" style="width: 16em"></progress> ')
    parts.append(f"<span>{html.escape(line)}</span>")
    if jobs:
        links = []
        for job in jobs:
            label = f"job {job.job_id}" + ("" if job.status == "SUCCEEDED" else f" ({job.status.lower()})")
            if ui_base:
                href = html.escape(job_url(ui_base, job.job_id), quote=True)
                links.append(f'<a href="{href}" target="_blank" class="sparkbook-job">{html.escape(label)}</a>')
            else:
                links.append(html.escape(label))
        parts.append(" · " + ", ".join(links))
    return f'<div class="sparkbook-progress">{"".join(parts)}</div>'


# --- the Spark UI's REST API ------------------------------------------------------------------


class SparkUI:
    """Reads jobs from the Spark UI's REST API (as the kernel reaches it) and counts requests."""

    def __init__(self, base: str, app_id: str) -> None:
        self.base = base.rstrip("/")
        self.app_id = app_id
        self.requests = 0

    def jobs(self) -> list[dict[str, Any]] | None:
        url = f"{self.base}/api/v1/applications/{self.app_id}/jobs"
        self.requests += 1
        try:
            with urllib.request.urlopen(url, timeout=REST_TIMEOUT_S) as resp:
                data = json.loads(resp.read())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, list) else None


# --- the handler ------------------------------------------------------------------------------


class _Display:
    """The display under the running cell: a widget where ipywidgets is installed, and always
    HTML and text in the same bundle, updated in place (``display_id``)."""

    def __init__(self, *, live: bool = True) -> None:
        from IPython.display import display

        self._widgets: Any = None
        self._bar: Any = None
        self._label: Any = None
        try:
            if live:  # a summary shown only at the end needs no widget: HTML says it all
                import ipywidgets as widgets

                self._bar = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, layout={"width": "16em"})
                self._label = widgets.HTML()
                self._widgets = widgets.HBox([self._bar, self._label])
        except ImportError:
            pass
        self._handle = display(self._bundle("", ""), raw=True, display_id=True)

    def _bundle(self, text: str, markup: str) -> dict[str, Any]:
        bundle: dict[str, Any] = {"text/plain": text, "text/html": markup}
        if self._widgets is not None:
            bundle["application/vnd.jupyter.widget-view+json"] = {
                "model_id": self._widgets.model_id, "version_major": 2, "version_minor": 0}
        return bundle

    def show(self, text: str, markup: str, fraction: float, *, done: bool, label: str) -> None:
        """``markup`` for front ends without widgets (its own bar); ``label`` beside the widget's bar."""
        if self._widgets is not None:
            self._bar.value = fraction
            self._label.value = label
            if done:
                self._bar.layout.display = "none"
        self._handle.update(self._bundle(text, markup), raw=True)


class CellProgress:
    """The Spark Connect progress handler of one kernel; follows cells through IPython's events.

    pyspark calls it from the thread running the RPC (the cell's, for ordinary code) with the
    operation's stages so far; :meth:`pre_run_cell` and :meth:`post_run_cell` bracket the cell.
    """

    def __init__(self, ui: SparkUI | None, ui_link: str | None, *, clock: Any = time.monotonic,
                 display_factory: Any = _Display) -> None:
        self.ui = ui
        self.ui_link = ui_link  # the UI base for people's links (the notebook server's proxy path)
        self.clock = clock
        self.display_factory = display_factory
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.stages: dict[str, dict[int, Stage]] = {}
        self.jobs: list[Job] = []
        self.started = self.clock()
        self._display: Any = None
        self._last_render = 0.0
        self._last_poll = 0.0
        self._in_cell = False
        self.quiet = False  # %%sql -q: this cell shows nothing, its progress neither

    @property
    def requests(self) -> int:
        return self.ui.requests if self.ui else 0

    # pyspark's ProgressHandler protocol
    def __call__(self, stages: Iterable[Any] | None, inflight_tasks: int, operation_id: str | None,
                 done: bool) -> None:
        if not enabled() or operation_id is None or self.quiet:
            return
        with self._lock:
            known = self.stages.setdefault(operation_id, {})
            for s in stages or ():
                known[s.stage_id] = Stage(s.stage_id, s.num_tasks, s.num_completed_tasks, s.done)
            if not known:
                return  # no stage yet (or a short operation): nothing to show while it runs
            now = self.clock()
            if self.ui is not None and now - self._last_poll >= POLL_INTERVAL_S and now - self.started >= 1.0:
                self._last_poll = now
                listed = self.ui.jobs()
                if listed is not None:
                    self.jobs = jobs_of(listed, self.stages)
            if self._display is None or now - self._last_render >= RENDER_INTERVAL_S:
                self._render(done=False)

    def _render(self, *, done: bool, failed: bool = False) -> None:
        t = totals(self.stages, finished_only=done)
        if done and self.jobs:
            t = job_totals(self.jobs)
        line = describe(t, self.clock() - self.started, self.jobs, done=done, failed=failed)
        if self._display is None:
            self._display = self.display_factory(live=not done)
        self._display.show(as_text(line, t, self.jobs, self.ui_link, done=done),
                           as_html(line, t, self.jobs, self.ui_link, done=done),
                           t.fraction if not done else 1.0, done=done,
                           label=as_html(line, t, self.jobs, self.ui_link, done=done, bar=False))
        self._last_render = self.clock()

    # IPython events
    def pre_run_cell(self, *_args: Any) -> None:
        with self._lock:
            self._reset()
            self._in_cell = True

    def post_run_cell(self, result: Any = None) -> None:
        with self._lock:
            if not self._in_cell:
                return
            self._in_cell = False
            if not enabled() or not self.stages or self.quiet:
                return  # no Spark operation ran (or -q): nothing to show, nothing asked
            self._collect_jobs()
            if not self.jobs and not any(self.stages.values()):
                return  # operations without jobs (DDL, a cached result): nothing to show
            failed = bool(getattr(result, "error_in_exec", None)) or any(j.status == "FAILED" for j in self.jobs)
            self._render(done=True, failed=failed)

    def _collect_jobs(self) -> None:
        """Every job of the cell's operations, once the UI has recorded them finished. Spark's
        status store is fed by an asynchronous listener bus, so the last job may appear (or
        finish) a moment after the client has its result."""
        if self.ui is None:
            return
        for attempt in range(FINAL_POLLS):
            listed = self.ui.jobs()
            if listed is not None:
                self.jobs = jobs_of(listed, self.stages)
                seen = {j.operation_id for j in self.jobs}
                if seen >= {op for op, st in self.stages.items() if st} and all(
                        j.status != "RUNNING" for j in self.jobs):
                    return
            if attempt + 1 < FINAL_POLLS:
                time.sleep(FINAL_POLL_GAP_S)


def hush(ip: Any) -> None:
    """The running cell shows no progress (``%%sql -q``)."""
    handler = getattr(ip, "_sparkbook_progress", None)
    if handler is not None:
        handler.quiet = True


def install(ip: Any, session: Any, *, ui_base: str | None, ui_link: str | None, app_id: str | None) -> CellProgress:
    """Register one :class:`CellProgress` for ``session`` and the shell's cells (idempotent)."""
    existing = getattr(ip, "_sparkbook_progress", None)
    if existing is not None:
        return existing
    ui = SparkUI(ui_base, app_id) if ui_base and app_id else None
    handler = CellProgress(ui, ui_link)
    session.registerProgressHandler(handler)
    ip.events.register("pre_run_cell", handler.pre_run_cell)
    ip.events.register("post_run_cell", handler.post_run_cell)
    ip._sparkbook_progress = handler
    return handler
