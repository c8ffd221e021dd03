"""After the driver: its event log, read back by a real Spark History Server.

The driver runs from the pod's own launch command (examples/sparksession-history.yaml rendered by
the operator) with a directory standing for the event-log claim; a client runs jobs; the server
stops the way the kubelet stops it (SIGTERM, as for idle suspension, suspend or a replaced
driver); then Spark's HistoryServer, from the same Spark distribution and with the chart's
properties, lists the application as completed, with its jobs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from sparkbook import names
from sparkbook.build.launch import SERVER_TOKEN_ENV
from sparkbook.build.notebook import STARTUP_FILE, STARTUP_PY, history_env
from sparkbook.local import spark_home
from tests.history import history_properties
from tests.jupyter_server import running_jupyter
from tests.spark_server import _free_port, connect_server

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.workload

HOST = f"127.10.{(os.getpid() >> 8) & 255}.{(os.getpid() & 255) or 1}"


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.load(resp)


def _wait(check, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (OSError, urllib.error.URLError, ValueError) as e:
            last = e
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what} ({last})")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _location(url: str, auth: dict[str, str]) -> str:
    """Where the notebook server sends a browser that follows `url` (one hop)."""
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        opener.open(urllib.request.Request(url, headers=auth), timeout=10)
    except urllib.error.HTTPError as e:
        if e.code in (301, 302, 303, 307):
            return str(e.headers["Location"])
        raise
    raise AssertionError(f"{url} did not redirect")


def _kernel_env(work: Path, remote: str, pod_env: dict[str, str]) -> dict[str, str]:
    startup_dir = work / "ipython" / "profile_default" / "startup"
    startup_dir.mkdir(parents=True)
    (startup_dir / STARTUP_FILE).write_text(STARTUP_PY)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_", "SPARKBOOK_", "JUPYTER"))}
    env.update(SPARK_REMOTE=remote, SPARKBOOK_SPARK_SESSION="reports", IPYTHONDIR=str(work / "ipython"),
               MPLBACKEND="Agg", JUPYTER_PLATFORM_DIRS="1", JUPYTER_RUNTIME_DIR=str(work / "runtime"),
               PYDEVD_DISABLE_FILE_VALIDATION="1", **pod_env)
    return env


def _outputs(cell: Any) -> str:
    parts = []
    for out in cell.outputs:
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        for kind in ("text/plain", "text/html"):
            parts.append(str((out.get("data") or {}).get(kind, "")))
        parts.extend(out.get("traceback") or [])
    return "\n".join(parts)


def test_a_stopped_application_and_its_jobs_stay_on_the_history_server(tmp_path: Path, monkeypatch) -> None:
    """The user's story: a notebook runs jobs, the driver stops, and every link the notebook
    showed (the progress display's job links, %%info) leads to the History Server's pages."""
    monkeypatch.delenv(SERVER_TOKEN_ENV, raising=False)
    events = tmp_path / "spark-events"
    events.mkdir()
    (tmp_path / "driver").mkdir()
    hs_port = _free_port()
    hs_proxy = f"/proxy/{HOST}:{hs_port}"
    # The notebook pod's env as the operator renders it for a known History Server (build/notebook.py),
    # with loopback addresses for the Services.
    pod_env = {e["name"]: e["value"] for e in history_env(history_url=f"http://{HOST}:{hs_port}")}
    pod_env[names.HISTORY_LINK_ENV] = hs_proxy  # a loopback address is not a .svc: proxied all the same here
    with connect_server(tmp_path / "driver", HOST, example="sparksession-history.yaml",
                        event_log_dir=events) as server:
        ui_proxy = f"/proxy/{server.ui_url.split('//', 1)[1]}"
        pod_env.update(SPARKBOOK_SPARK_UI=server.ui_url, SPARKBOOK_SPARK_UI_LINK=f"{ui_proxy}/jobs/")
        for key, value in pod_env.items():
            monkeypatch.setenv(key, value)  # the notebook server's own environment, as in the pod
        config = (ROOT / "images" / "notebook" / "jupyter_server_config.py").read_text() + (
            f"\n_allows = c.ServerProxy.host_allowlist\n"
            f"c.ServerProxy.host_allowlist = lambda h, host: host.split(':')[0] == {HOST!r} or _allows(h, host)\n")
        with running_jupyter(host="127.0.0.1", port=_free_port(), token="history-test-token",
                             work=tmp_path / "jupyter", config=config) as jupyter:
            origin = jupyter.url
            nb = new_notebook(cells=[
                new_code_cell("r = spark.range(1000).selectExpr('sum(id) AS s').collect()[0]['s']\n"
                              "n = spark.sql('SELECT count(*) FROM range(10) GROUP BY id % 2').count()\nprint(r, n)"),
                new_code_cell("%%info"),
                new_code_cell("%%info"),
            ])
            client = NotebookClient(nb, kernel_name="python3", timeout=180, startup_timeout=60,
                                    resources={"metadata": {"path": str(tmp_path)}})
            with client.setup_kernel(env=_kernel_env(tmp_path / "kernel", server.token_url, pod_env)):
                client.execute_cell(nb.cells[0], 0)
                ran = _outputs(nb.cells[0])
                assert "499500 2" in ran, ran
                app_id = _get(f"{server.ui_url}/api/v1/applications")[0]["id"]
                live_jobs = _get(f"{server.ui_url}/api/v1/applications/{app_id}/jobs")
                # The progress display's job links name the application, not the driver.
                job_link = f"/sparkbook/spark-ui/{app_id}/jobs/job/?id="
                assert job_link in ran, ran
                client.execute_cell(nb.cells[1], 1)
                info = _outputs(nb.cells[1])
                assert f"History Server: {hs_proxy}/history/{app_id}/jobs/" in info, info
                # While the driver runs, a job link goes to the live UI.
                first_job = min(j["jobId"] for j in live_jobs)
                assert _location(f"{origin}{job_link}{first_job}", jupyter.auth) == f"{ui_proxy}/jobs/job/?id={first_job}"

                (log_dir,) = events.iterdir()
                assert log_dir.name == f"eventlog_v2_{app_id}"
                assert any(f.name.endswith(".inprogress") for f in log_dir.iterdir())
                server.process.send_signal(signal.SIGTERM)  # what the kubelet sends a deleted pod
                assert server.process.wait(timeout=60) is not None

                files = sorted(f.name for f in log_dir.iterdir())
                # Complete: nothing in progress, the event files compressed (zstd) and numbered.
                assert not any(name.endswith(".inprogress") for name in files), files
                assert any(name.startswith("events_1_") and name.endswith(".zstd") for name in files), files

                conf = tmp_path / "history.conf"
                conf.write_text(history_properties(log_directory=events.as_uri(), port=hs_port))
                home = spark_home()
                env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_"))}
                env.update(SPARK_HOME=home, SPARK_LOCAL_IP=HOST, SPARK_CONF_DIR=str(tmp_path))
                log = (tmp_path / "history.log").open("wb")
                proc = subprocess.Popen([f"{home}/bin/spark-class", "org.apache.spark.deploy.history.HistoryServer",
                                         "--properties-file", str(conf)], env=env, stdout=log, stderr=subprocess.STDOUT)
                base = f"http://{HOST}:{hs_port}/api/v1"
                try:
                    apps = _wait(lambda: [a for a in _get(f"{base}/applications") if a["id"] == app_id], 120,
                                 f"the History Server to list {app_id}")
                    (attempt,) = apps[0]["attempts"]
                    assert attempt["completed"] is True
                    jobs = _wait(lambda: _get(f"{base}/applications/{app_id}/jobs"), 60, "the application's jobs")
                    assert len(jobs) == len(live_jobs) >= 2
                    assert {j["status"] for j in jobs} == {"SUCCEEDED"}
                    assert sorted(j["jobId"] for j in jobs) == sorted(j["jobId"] for j in live_jobs)

                    # %%info in the same kernel: the driver is gone, its application is on the History Server.
                    client.execute_cell(nb.cells[2], 2)
                    after = _outputs(nb.cells[2])
                    assert "its driver has stopped" in after and f"{hs_proxy}/history/{app_id}/jobs/" in after, after
                    # The job link the notebook showed now leads to the History Server's page of that job...
                    where = _location(f"{origin}{job_link}{first_job}", jupyter.auth)
                    assert where == f"{hs_proxy}/history/{app_id}/jobs/job/?id={first_job}", where
                    # ... which the notebook server's proxy serves.
                    req = urllib.request.Request(f"{origin}{where}", headers=jupyter.auth)
                    with urllib.request.urlopen(req, timeout=30) as page:
                        assert page.status == 200 and f"Details for Job {first_job}" in page.read().decode()
                except AssertionError:
                    print((tmp_path / "history.log").read_text(errors="replace")[-10000:])
                    raise
                finally:
                    proc.terminate()
                    proc.wait(timeout=30)
                    log.close()
