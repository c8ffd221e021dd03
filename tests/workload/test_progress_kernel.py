"""Spark progress under each cell, with a real kernel (nbclient) and the real Spark Connect server:
the live display while a multi-stage job runs, its summary with a link per job, jobs named after
their notebook and cell in the Spark UI, and nothing for cells without Spark work."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest
from nbclient import NotebookClient

from sparkbook.notebook import progress
from tests.workload.test_notebook_kernel import CELL_TIMEOUT_S, Ran, _kernel_env, _notebook

if TYPE_CHECKING:
    from tests.spark_server import ConnectServer

pytestmark = pytest.mark.workload

# Four waves of eight 0.8 s tasks on local[2] (Thread.sleep through java_method), then a shuffle
# and a sort: a few seconds and several stages, whatever the machine's speed. Grouping by s keeps
# the sleeping column in the plan (unused, the optimizer prunes it and the job takes 0.5 s).
SLOW_JOB = (
    "rows = (spark.range(0, 32, 1, 8)\n"
    "        .selectExpr(\"java_method('java.lang.Thread', 'sleep', cast(200 as bigint)) AS s\", 'id % 4 AS k')\n"
    "        .groupBy('k', 's').count().orderBy('k').collect())\n"
    "print('groups', [(r['k'], r['count']) for r in rows])"
)
CELLS = [
    ("first", "print('app', spark.conf.get('spark.app.id'))"),
    ("slow", SLOW_JOB),
    ("requests", "print('requests', get_ipython()._sparkbook_progress.requests)"),
    ("no_spark", "x = sum(range(10))\nprint('x', x)"),
    ("schema_only", "print('columns', spark.range(3).columns)"),
    ("off", "%sparkbook progress off"),
    ("while_off", "print('count', spark.range(100, numPartitions=4).count())"),
    ("on", "%sparkbook progress on"),
    ("quiet", "%%sql -o q -q\nSELECT id FROM range(10)"),
]


class RecordingClient(NotebookClient):
    """nbclient keeps only a display's last state; this also keeps every update of it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.updates: dict[int, list[dict[str, Any]]] = {}

    def process_message(self, msg: dict[str, Any], cell: Any, cell_index: int) -> Any:
        if msg["msg_type"] in ("display_data", "update_display_data"):
            self.updates.setdefault(cell_index, []).append(msg["content"]["data"])
        return super().process_message(msg, cell, cell_index)


@pytest.fixture(scope="module")
def progress_run(spark_connect_server: ConnectServer, tmp_path_factory: pytest.TempPathFactory) -> Any:
    work = tmp_path_factory.mktemp("progress")
    env = _kernel_env(work, spark_connect_server.token_url, ui=spark_connect_server.ui_url,
                      ui_link=f"{spark_connect_server.ui_url}/jobs/")
    env["JPY_SESSION_NAME"] = str(work / "progress-demo.ipynb")  # what Jupyter tells its kernels
    nb, ids = _notebook(CELLS)
    client = RecordingClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT_S, startup_timeout=60,
                             resources={"metadata": {"path": str(work)}})
    started = time.monotonic()
    client.execute(env=env)
    ran = Ran(nb=nb, seconds=time.monotonic() - started, ids=ids)
    ran.updates = {name: client.updates.get(i, []) for name, i in ids.items()}  # type: ignore[attr-defined]
    return ran


def _progress_outputs(ran: Ran, name: str) -> list[Any]:
    return [o for o in ran.cell(name).outputs
            if o.output_type == "display_data" and "sparkbook-progress" in o.data.get("text/html", "")]


def _rest(server: ConnectServer, path: str) -> Any:
    with urllib.request.urlopen(f"{server.ui_url}{path}", timeout=10) as resp:
        return json.loads(resp.read())


def test_a_multi_stage_job_shows_live_progress_that_reaches_its_summary(progress_run: Ran) -> None:
    assert "groups [(0, 8), (1, 8), (2, 8), (3, 8)]" in progress_run.text("slow")
    [shown] = _progress_outputs(progress_run, "slow")
    summary = shown.data["text/plain"].splitlines()
    m = re.fullmatch(r"Spark · \d+ jobs? · \d+ stages · (\d+)/(\d+) tasks · \d+\.\d s", summary[0])
    assert m and m.group(1) == m.group(2), summary  # every task of the cell's jobs done: 100 %
    # While it ran: the bar was redrawn with tasks done / all and the running stage(s).
    live = [u["text/plain"] for u in progress_run.updates["slow"] if "tasks (" in u.get("text/plain", "")]
    assert live, progress_run.updates["slow"]
    # Between two stages a report can find every stage so far done ("stages done").
    for text in live:
        assert re.search(r"Spark \d+/\d+ tasks \(\d+%\) · (stages? [\d, .]+|stages done) · \d+\.\d s", text), text
    # Tasks done only go forward (the percentage may drop when a later stage is planned).
    done = [int(re.search(r"Spark (\d+)/\d+ tasks", t).group(1)) for t in live]
    assert done == sorted(done), live
    assert len(progress_run.updates["slow"]) <= 4 * progress_run.duration("slow") + 3  # <= 4 redraws a second


def test_each_job_of_the_cell_is_listed_with_a_working_link(progress_run: Ran, spark_connect_server: ConnectServer) -> None:
    [shown] = _progress_outputs(progress_run, "slow")
    links = re.findall(r'href="([^"]+/jobs/job/\?id=(\d+))"', shown.data["text/html"])
    n_jobs = int(re.search(r"· (\d+) jobs? ·", shown.data["text/plain"]).group(1))
    assert len(links) == n_jobs >= 1, shown.data
    app = progress_run.text("first").split("app ", 1)[1].split()[0]
    jobs = {j["jobId"]: j for j in _rest(spark_connect_server, f"/api/v1/applications/{app}/jobs")}
    for url, job_id in links:
        assert url.startswith(spark_connect_server.ui_url)
        assert jobs[int(job_id)]["status"] == "SUCCEEDED"
        with urllib.request.urlopen(url, timeout=10) as resp:
            page = resp.read().decode()
        assert f"Details for Job {job_id}" in page
        # Named after the notebook and the cell, not after the Connect plan.
        assert jobs[int(job_id)]["description"].startswith("progress-demo.ipynb [2] rows = (spark.range(0, 32, 1, 8)")


def test_the_cost_of_showing_progress(progress_run: Ran) -> None:
    requests = int(progress_run.text("requests").split("requests ", 1)[1].split()[0])
    # At most one REST request per 2 s while the cell ran, then the ones at its end (bounded).
    assert 1 <= requests <= progress_run.duration("slow") / 2 + 1 + progress.FINAL_POLLS, requests


def test_cells_without_spark_jobs_show_nothing(progress_run: Ran) -> None:
    for name in ("first", "no_spark", "schema_only", "requests"):
        assert not _progress_outputs(progress_run, name), (name, progress_run.cell(name).outputs)


def test_progress_can_be_switched_off_and_on_and_quiet_sql_shows_nothing(progress_run: Ran) -> None:
    assert "Spark progress is off" in progress_run.text("off")
    assert "count 100" in progress_run.text("while_off") and not _progress_outputs(progress_run, "while_off")
    assert "show under each cell" in progress_run.text("on")
    assert progress_run.cell("quiet").outputs == []
