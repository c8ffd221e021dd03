"""examples/tutorial.ipynb, the classic Jupyter-on-Spark walk-through, run as a user runs it: a real
kernel (nbclient) with the pod's start-up file against the real Spark Connect server, matplotlib
inline as in JupyterLab."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat
import pytest

from tests.workload.test_notebook_kernel import Ran, _execute, _kernel_env

if TYPE_CHECKING:
    from tests.spark_server import ConnectServer

pytestmark = pytest.mark.workload

ROOT = Path(__file__).resolve().parents[2]
TUTORIAL = ROOT / "examples" / "tutorial.ipynb"


@pytest.fixture(scope="module")
def tutorial(spark_connect_server: ConnectServer, tmp_path_factory: pytest.TempPathFactory) -> Ran:
    work = tmp_path_factory.mktemp("tutorial")
    nb = nbformat.read(TUTORIAL, as_version=4)
    ids = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            ids[cell.source] = i
    env = _kernel_env(work, spark_connect_server.token_url, ui=spark_connect_server.ui_url,
                      ui_link=f"{spark_connect_server.ui_url}/jobs/")
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # plots inline, as in JupyterLab
    env["JPY_SESSION_NAME"] = str(work / "tutorial.ipynb")
    return _execute(nb, ids, env, work)


def _cell(ran: Ran, first_line: str) -> str:
    return next(k for k in ran.ids if k.startswith(first_line))


def test_the_tutorial_is_stored_without_outputs() -> None:
    nb = nbformat.read(TUTORIAL, as_version=4)
    nbformat.validate(nb)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")


def test_the_tutorial_runs_every_step(tutorial: Ran, spark_connect_server: ConnectServer) -> None:
    for source in tutorial.ids:
        assert not tutorial.errors(source), (source, tutorial.text(source)[-3000:])
    assert "is ready as `spark`" in tutorial.text(_cell(tutorial, "spark"))  # the session in the first cell
    assert tutorial.text(_cell(tutorial, "squares")).strip().endswith("285")  # plain Python
    count = tutorial.text(_cell(tutorial, "from pyspark.sql import functions"))
    assert "20000" in count and re.search(r"Spark · \d+ jobs? · ", count)  # a Spark job, with progress
    assert "--maxrows" in tutorial.text(_cell(tutorial, "%%help"))
    shown = tutorial.text(_cell(tutorial, "by_building"))
    assert "|building|avg_actual|avg_target|readings|" in shown
    sql = tutorial.text(_cell(tutorial, "%%sql -o df --maxrows 1000"))
    assert "<table" in sql and "delta" in sql
    assert "daily: 90 rows copied to pandas for %%local" in tutorial.text(_cell(tutorial, "%%spark -o daily"))
    assert spark_connect_server.ui_url in tutorial.text(_cell(tutorial, "%%info"))


def test_the_local_plots_render(tutorial: Ran) -> None:
    plots = [c for c in tutorial.ids if c.startswith("%%local")]
    assert len(plots) == 2
    for source in plots:
        images = [o for o in tutorial.cell(source).outputs
                  if o.output_type == "display_data" and "image/png" in o.data]
        assert len(images) == 1, (source, tutorial.cell(source).outputs)
