"""The progress display's figures and its handler, with a fake UI and display (the real Spark
Connect server and kernel are in tests/workload/test_progress_kernel.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from sparkbook.notebook import naming, progress
from sparkbook.notebook.progress import CellProgress, Job, Stage

OP_A, OP_B = "8c1e7f38-0000-4000-8000-00000000000a", "8c1e7f38-0000-4000-8000-00000000000b"


def _tags(op: str) -> list[str]:
    return [f"SparkConnect_OperationTag_User__Session_s1_Operation_{op}", "SparkConnect_SessionTag_User__Session_s1_Tag_x",
            "spark-session-1"]


def rest_job(job_id: int, op: str, status: str = "SUCCEEDED", *, stages: int = 2, skipped_stages: int = 0,
             tasks: int = 10, skipped_tasks: int = 0, done: int | None = None) -> dict[str, Any]:
    return {"jobId": job_id, "status": status, "jobTags": _tags(op), "stageIds": list(range(stages)),
            "numSkippedStages": skipped_stages, "numTasks": tasks, "numSkippedTasks": skipped_tasks,
            "numCompletedTasks": tasks - skipped_tasks if done is None else done}


def test_jobs_are_matched_to_operations_by_their_connect_tag() -> None:
    listed = [rest_job(7, OP_B), rest_job(6, OP_A), rest_job(5, "someone-else"),
              {"jobId": 4, "status": "SUCCEEDED", "jobTags": []}]
    jobs = progress.jobs_of(listed, [OP_A, OP_B])
    assert [(j.job_id, j.operation_id) for j in jobs] == [(6, OP_A), (7, OP_B)]
    assert progress.operation_of(["spark-session-1"]) is None


def test_skipped_stages_and_tasks_are_not_counted() -> None:
    # A second action on a shuffled DataFrame reuses the map output: its map stage is skipped.
    jobs = progress.jobs_of([rest_job(1, OP_A, stages=2, skipped_stages=1, tasks=72, skipped_tasks=64)], [OP_A])
    t = progress.job_totals(jobs)
    assert (t.stages, t.tasks, t.done_tasks) == (1, 8, 8)


def test_totals_and_the_running_line() -> None:
    stages = {OP_A: {0: Stage(0, 8, 8, True), 1: Stage(1, 64, 16, False)}, OP_B: {3: Stage(3, 8, 0, False)}}
    t = progress.totals(stages)
    assert (t.stages, t.tasks, t.done_tasks, t.running_stages) == (3, 80, 24, [1, 3])
    assert progress.describe(t, 2.34, [], done=False) == "Spark 24/80 tasks (30%) · stages 1, 3 · 2.3 s"
    text = progress.as_text(progress.describe(t, 2.34, [], done=False), t, [], None, done=False)
    assert text.startswith("[#########---------------------] Spark 24/80")


def test_the_summary_names_every_job_with_its_link() -> None:
    jobs = [Job(3, "SUCCEEDED", OP_A, 2, 72, 72), Job(4, "FAILED", OP_A, 1, 8, 3)]
    t = progress.job_totals(jobs)
    line = progress.describe(t, 75.0, jobs, done=True, failed=True)
    assert line == "Spark failed · 2 jobs · 3 stages · 75/80 tasks · 1 min 15 s"
    base = "/user/ana/proxy/analytics-ui.team.svc:4040"
    markup = progress.as_html(line, t, jobs, base, done=True)
    assert f'href="{base}/jobs/job/?id=3"' in markup and ">job 4 (failed)</a>" in markup
    assert "<progress" not in markup  # the bar is gone once the cell is over
    assert progress.as_text(line, t, jobs, base, done=True).splitlines()[1:] == [
        f"  job 3 succeeded: {base}/jobs/job/?id=3", f"  job 4 failed: {base}/jobs/job/?id=4"]
    # one job, one stage, one task: singular words
    one = progress.describe(progress.Totals(stages=1, tasks=1, done_tasks=1), 0.4,
                            [Job(0, "SUCCEEDED", OP_A, 1, 1, 1)], done=True)
    assert one == "Spark · 1 job · 1 stage · 1/1 task · 0.4 s"


# --- the handler -----------------------------------------------------------------------------


@dataclass
class FakeStage:
    stage_id: int
    num_tasks: int
    num_completed_tasks: int
    done: bool
    num_bytes_read: int = 0


class FakeUI:
    def __init__(self, answers: list[list[dict[str, Any]] | None]) -> None:
        self.answers = answers
        self.requests = 0

    def jobs(self) -> list[dict[str, Any]] | None:
        self.requests += 1
        return self.answers[min(self.requests, len(self.answers)) - 1]


class FakeDisplay:
    shown: list[tuple[str, float, bool]]
    labels: list[tuple[str, str]]

    def __init__(self, *, live: bool = True) -> None:
        self.shown = []
        self.labels = []
        self.live = live
        FakeDisplay.last = self

    def show(self, text: str, markup: str, fraction: float, *, done: bool, label: str) -> None:
        self.shown.append((text, fraction, done))
        self.labels.append((markup, label))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def handler(ui: Any, clock: Clock) -> CellProgress:
    FakeDisplay.last = None
    return CellProgress(ui, "/proxy/ui:4040", clock=clock, display_factory=FakeDisplay)


@pytest.fixture(autouse=True)
def _on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(progress.PROGRESS_ENV, raising=False)
    monkeypatch.setattr(progress, "_enabled", None)
    monkeypatch.setattr(progress, "FINAL_POLL_GAP_S", 0.0)


def test_a_cell_without_spark_work_shows_nothing_and_asks_nothing() -> None:
    ui, clock = FakeUI([[]]), Clock()
    h = handler(ui, clock)
    h.pre_run_cell()
    h.post_run_cell()
    assert FakeDisplay.last is None and ui.requests == 0


def test_an_operation_without_jobs_shows_nothing() -> None:
    # e.g. CREATE TABLE through spark.sql: an ExecutePlan, no job
    ui, clock = FakeUI([[]]), Clock()
    h = handler(ui, clock)
    h.pre_run_cell()
    h(stages=[], inflight_tasks=0, operation_id=OP_A, done=True)
    h.post_run_cell()
    assert FakeDisplay.last is None and ui.requests == 1


def test_a_running_cell_is_redrawn_politely_and_ends_at_100_percent() -> None:
    ui, clock = FakeUI([[rest_job(0, OP_A, "RUNNING", done=4)], [rest_job(0, OP_A, "RUNNING")],
                        [rest_job(0, OP_A)]]), Clock()
    h = handler(ui, clock)
    h.pre_run_cell()
    for i in range(40):  # 40 reports in 2 s: 20 ms apart
        clock.now += 0.05
        h(stages=[FakeStage(0, 10, min(i // 4, 10), False)], inflight_tasks=2, operation_id=OP_A, done=False)
    shown = FakeDisplay.last.shown
    assert FakeDisplay.last.live
    markup, label = FakeDisplay.last.labels[-1]
    # One bar either way: the HTML has its own, the label beside the widget's bar has none.
    assert "<progress" in markup and "<progress" not in label and "Spark " in label
    assert 6 <= len(shown) <= 10, len(shown)  # at most one redraw per RENDER_INTERVAL_S
    assert ui.requests == 1  # one REST request while running: after a second, then every 2 s
    h.post_run_cell()
    text, fraction, done = shown[-1]
    assert done and fraction == 1.0 and text.splitlines() == [
        "Spark · 1 job · 2 stages · 10/10 tasks · 2.0 s", "  job 0 succeeded: /proxy/ui:4040/jobs/job/?id=0"]
    assert ui.requests == 3  # at the end: until the job is no longer RUNNING


def test_a_short_job_without_reports_still_gets_its_summary() -> None:
    ui, clock = FakeUI([[rest_job(0, OP_A, tasks=1, stages=1)]]), Clock()
    h = handler(ui, clock)
    h.pre_run_cell()
    h(stages=[], inflight_tasks=0, operation_id=OP_A, done=True)
    clock.now += 0.3
    h.post_run_cell()
    assert FakeDisplay.last.shown[-1][0].startswith("Spark · 1 job · 1 stage · 1/1 task · 0.3 s")
    assert not FakeDisplay.last.live  # shown only at the end: no widget to build


def test_the_end_polls_are_bounded_when_the_ui_never_answers() -> None:
    ui, clock = FakeUI([None]), Clock()
    h = handler(ui, clock)
    h.pre_run_cell()
    h(stages=[FakeStage(0, 4, 4, True)], inflight_tasks=0, operation_id=OP_A, done=True)
    h.post_run_cell()
    assert ui.requests == progress.FINAL_POLLS
    assert FakeDisplay.last.shown[-1][0] == "Spark · 1 stage · 4/4 tasks · 0.0 s"  # no job links, figures kept


def test_switched_off_it_shows_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(progress.PROGRESS_ENV, "0")
    ui, clock = FakeUI([[rest_job(0, OP_A)]]), Clock()
    h = handler(ui, clock)
    h.pre_run_cell()
    h(stages=[FakeStage(0, 4, 4, True)], inflight_tasks=0, operation_id=OP_A, done=True)
    h.post_run_cell()
    assert FakeDisplay.last is None and ui.requests == 0
    progress.set_enabled(True)  # %sparkbook progress on wins over the environment
    assert progress.enabled()


# --- job names -------------------------------------------------------------------------------


def test_job_descriptions_name_the_notebook_and_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/jovyan/work/tutorial.ipynb")
    assert naming.notebook_name() == "tutorial.ipynb"
    assert naming.job_description("tutorial.ipynb", 7, "\n  df.groupBy('k').count().show()\nmore") == (
        "tutorial.ipynb [7] df.groupBy('k').count().show()")
    long = naming.job_description(None, None, "x = " + "1 + " * 40)
    assert len(long) == naming.MAX_LINE and long.endswith("...")
    assert naming.job_description(None, None, "") == "notebook cell"
    monkeypatch.delenv("JPY_SESSION_NAME")
    assert naming.notebook_name() is None


def test_without_the_rest_api_the_end_counts_only_stages_that_ran() -> None:
    # What a real report lists at the end of an adaptive query: planned stages never run (0 of 8).
    stages = {OP_A: {21: Stage(21, 8, 8, True), 22: Stage(22, 8, 0, False), 23: Stage(23, 1, 1, True)}}
    t = progress.totals(stages, finished_only=True)
    assert (t.stages, t.tasks, t.done_tasks) == (2, 9, 9)
