"""JupyterLab in a real browser: `sparkbook local` serving it, Debian's Chromium driving it through
Playwright's Python package (``executable_path``; Playwright's own browser download is never used).

A failing test leaves a screenshot of every page it had open in ``.artifacts/browser/`` (or
``$SPARKBOOK_ARTIFACTS/browser``), named after the test; the report says where.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.sparkbook_local import start_local

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("SPARKBOOK_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("SPARKBOOK_ARTIFACTS", ROOT / ".artifacts")) / "browser"
# As this machine's probe starts it: its closed network refuses Chromium's background connections.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


@dataclass(frozen=True)
class Lab:
    base: str  # http://127.0.0.1:PORT
    token: str
    spark_ui: str
    notebook_dir: Path


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """`sparkbook local -f examples/notebookserver.yaml`, as the README runs it, with the tutorial
    in its notebook directory."""
    notebooks = tmp_path_factory.mktemp("notebooks")
    shutil.copy(ROOT / "examples" / "tutorial.ipynb", notebooks / "tutorial.ipynb")
    proc, text, _ = start_local(notebooks)
    try:
        jupyter = re.search(r"Jupyter:\s+(http://\S+)", text)
        ui = re.search(r"Spark UI:\s+(http://\S+)", text)
        assert jupyter and ui, text
        url = jupyter.group(1)
        yield Lab(base=url.split("/?")[0].split("/lab?")[0], token=url.split("token=")[1],
                  spark_ui=ui.group(1).rstrip("/"), notebook_dir=notebooks)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no Chromium at {CHROMIUM}: `make venv` installs Debian's chromium (scripts/ensure-chromium.sh)",
                    pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser profile per test (its pages are photographed if the test fails)."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        yield ctx
    finally:
        ctx.close()


def screenshots(ctx: Any, name: str) -> list[str]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    saved = []
    for i, page in enumerate(ctx.pages):
        target = ARTIFACTS / f"{name}-{i}.png"
        try:
            page.screenshot(path=str(target), full_page=True)
            saved.append(str(target))
        except Exception as exc:  # noqa: BLE001 - a page that went away: say so, keep the others
            saved.append(f"{target}: {exc}")
    return saved


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failing browser test: every open page as a PNG artifact, named in the report."""
    outcome = yield
    report = outcome.get_result()
    ctx = getattr(item, "funcargs", {}).get("context")
    if report.when == "call" and report.failed and ctx is not None:
        report.sections.append(("screenshots", "\n".join(screenshots(ctx, item.name))))
