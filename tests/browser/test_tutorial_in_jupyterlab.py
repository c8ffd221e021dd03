"""What a user sees: the tutorial opened in JupyterLab (served by `sparkbook local`) in Chromium,
every cell run from the Run menu, then the progress display, a job link into the Spark UI, the
autoviz widget switched to a bar chart, and the matplotlib and seaborn plots."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from typing import Any

import pytest

from tests.browser.conftest import ARTIFACTS, Lab, screenshots

pytestmark = pytest.mark.browser

RUN_ALL_TIMEOUT_S = 300


# Text is read with textContent, not innerText: JupyterLab skips rendering cells out of view
# (content-visibility), whose innerText is then empty. CodeMirror's lines join without newlines.
def _cell(page: Any, source_start: str) -> Any:
    """The code cell whose source starts with ``source_start``."""
    wanted = source_start.replace("\n", "")
    cells = page.locator(".jp-Notebook .jp-CodeCell")
    for i in range(cells.count()):
        cell = cells.nth(i)
        text = (cell.locator(".jp-InputArea-editor").text_content() or "").replace("\u200b", "")
        if text.lstrip().startswith(wanted):
            return cell
    raise AssertionError(f"no code cell starts with {source_start!r}")


def _prompts(page: Any) -> list[str]:
    return [(p or "").strip() for p in page.locator(".jp-Notebook .jp-CodeCell .jp-InputArea-prompt").all_text_contents()]


def _kernel_idle(lab: Lab, path: str) -> bool:
    req = urllib.request.Request(f"{lab.base}/api/sessions", headers={"Authorization": f"token {lab.token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        sessions = json.load(resp)
    return any(s["path"] == path and s["kernel"]["execution_state"] == "idle" for s in sessions)


def _open_tutorial(page: Any, lab: Lab) -> None:
    """Open it as a user does: JupyterLab starts the notebook's kernel by itself (no dialog)."""
    page.goto(f"{lab.base}/lab/tree/tutorial.ipynb?token={lab.token}", wait_until="domcontentloaded")
    page.locator(".jp-Notebook .jp-CodeCell").first.wait_for(timeout=120_000)
    deadline = time.monotonic() + 120
    while not _kernel_idle(lab, "tutorial.ipynb"):
        assert time.monotonic() < deadline, "JupyterLab started no kernel for the tutorial"
        assert not page.locator(".jp-Dialog").count(), page.locator(".jp-Dialog").inner_text()
        time.sleep(0.5)
    page.locator(".jp-NotebookPanel-toolbar [data-status='idle']").first.wait_for(timeout=60_000)


def _run_all(page: Any) -> dict[str, Any]:
    """Run ▸ Run All Cells, watching the progress display while the cells run."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    live: list[str] = []
    started = time.monotonic()
    deadline = started + RUN_ALL_TIMEOUT_S
    while time.monotonic() < deadline:
        for text in page.locator(".sparkbook-progress").all_text_contents():
            if "tasks (" in text and text not in live:
                live.append(text)
        prompts = _prompts(page)
        if prompts and all(re.fullmatch(r"\[\d+\]:", p) for p in prompts):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"cells still running after {RUN_ALL_TIMEOUT_S} s: {_prompts(page)}")
    return {"live": live, "seconds": time.monotonic() - started}


def test_the_tutorial_in_jupyterlab(lab: Lab, context: Any) -> None:
    page = context.new_page()
    _open_tutorial(page, lab)
    ran = _run_all(page)
    assert not page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                            has_text="Traceback").count()
    assert not page.locator(".jp-Notebook .jp-RenderedText[data-mime-type='application/vnd.jupyter.error']").count()

    # `spark` in the first cell: the banner with its Spark UI link.
    first = _cell(page, "spark")
    first.scroll_into_view_if_needed()
    assert "is ready as spark" in " ".join(first.locator(".jp-OutputArea-output").all_text_contents())

    # The progress display under the Spark job's cell ends as its summary with one link per job.
    job_cell = _cell(page, "from pyspark.sql import functions")
    job_cell.scroll_into_view_if_needed()
    summary = job_cell.locator(".sparkbook-progress")
    summary.first.wait_for(timeout=30_000)
    text = summary.first.text_content()
    m = re.search(r"Spark · \d+ jobs? · \d+ stages? · (\d+)/(\d+) tasks? · [\d.]+ s", text)
    assert m and m.group(1) == m.group(2), text  # it completed: every task done
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    job_cell.screenshot(path=str(ARTIFACTS / "tutorial-spark-job-progress.png"))
    links = job_cell.locator("a.sparkbook-job")
    assert links.count() >= 1
    job_id = re.search(r"id=(\d+)", links.first.get_attribute("href")).group(1)
    with context.expect_page() as opened:
        links.first.click()
    ui = opened.value
    ui.wait_for_load_state("domcontentloaded")
    assert ui.url.startswith(lab.spark_ui), ui.url
    assert f"Details for Job {job_id}" in ui.locator("body").text_content()
    # Named after the notebook and its cell, not after the Connect plan.
    assert "tutorial.ipynb [" in ui.locator("body").text_content()
    ui.close()

    # The %%sql result is the autoviz widget: a table first, then a bar chart on one click.
    sql = _cell(page, "%%sql -o df --maxrows 1000")
    sql.scroll_into_view_if_needed()
    bar = sql.locator(".widget-toggle-button", has_text=re.compile(r"^Bar$"))
    bar.wait_for(timeout=30_000)
    assert sql.locator("table").count() >= 1  # the Table view, as it opens
    bar.click()
    chart = sql.locator(".js-plotly-plot")
    chart.wait_for(timeout=30_000)
    sql.locator(".js-plotly-plot .barlayer .point").first.wait_for(timeout=30_000)
    assert sql.locator(".js-plotly-plot .barlayer .point").count() >= 1
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    sql.screenshot(path=str(ARTIFACTS / "tutorial-sql-bar-chart.png"))

    # The %%local plots: matplotlib and seaborn images, drawn.
    for start in ("%%local\nimport matplotlib", "%%local\nimport seaborn"):
        cell = _cell(page, start)
        img = cell.locator(".jp-RenderedImage img")
        img.wait_for(timeout=30_000)
        img.scroll_into_view_if_needed()
        assert img.evaluate("i => i.complete && i.naturalWidth > 100 && i.naturalHeight > 100")
        cell.screenshot(path=str(ARTIFACTS / f"tutorial-{start.split()[-1]}-plot.png"))

    # What the user saw, kept for the record (failures keep theirs through conftest).
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "tutorial-after-run-all.png"), full_page=True)
    print(f"run all: {ran['seconds']:.1f} s; live progress states seen: {ran['live'][:3]}; "
          f"screenshots: {screenshots(context, 'tutorial-final')}")
