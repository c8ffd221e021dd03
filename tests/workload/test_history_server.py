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
from pyspark.sql.connect.session import SparkSession

from sparkbook.build.launch import SERVER_TOKEN_ENV
from sparkbook.local import spark_home
from tests.spark_server import _free_port, connect_server
from tests.history import history_properties

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


def test_a_stopped_application_and_its_jobs_are_on_the_history_server(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(SERVER_TOKEN_ENV, raising=False)
    events = tmp_path / "spark-events"
    events.mkdir()
    (tmp_path / "driver").mkdir()
    with connect_server(tmp_path / "driver", HOST, example="sparksession-history.yaml",
                        event_log_dir=events) as server:
        spark = SparkSession.builder.remote(server.token_url).create()
        assert spark.range(1000).selectExpr("sum(id) AS s").collect()[0]["s"] == 499500
        assert spark.sql("SELECT count(*) AS n FROM range(10) GROUP BY id % 2").count() == 2
        app_id = _get(f"{server.ui_url}/api/v1/applications")[0]["id"]
        live_jobs = _get(f"{server.ui_url}/api/v1/applications/{app_id}/jobs")
        spark.stop()
        # While it runs, its rolling log is in progress.
        (log_dir,) = events.iterdir()
        assert log_dir.name == f"eventlog_v2_{app_id}"
        assert any(f.name.endswith(".inprogress") for f in log_dir.iterdir())
        server.process.send_signal(signal.SIGTERM)  # what the kubelet sends a deleted pod
        assert server.process.wait(timeout=60) is not None
    files = sorted(f.name for f in log_dir.iterdir())
    # Complete: nothing in progress, the event files compressed (zstd) and numbered.
    assert not any(name.endswith(".inprogress") for name in files), files
    assert any(name.startswith("events_1_") and name.endswith(".zstd") for name in files), files

    port = _free_port()
    conf = tmp_path / "history.conf"
    conf.write_text(history_properties(log_directory=events.as_uri(), port=port))
    home = spark_home()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_"))}
    env.update(SPARK_HOME=home, SPARK_LOCAL_IP=HOST, SPARK_CONF_DIR=str(tmp_path))
    log = (tmp_path / "history.log").open("wb")
    proc = subprocess.Popen([f"{home}/bin/spark-class", "org.apache.spark.deploy.history.HistoryServer",
                             "--properties-file", str(conf)], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://{HOST}:{port}/api/v1"
    try:
        apps = _wait(lambda: [a for a in _get(f"{base}/applications") if a["id"] == app_id], 120,
                     f"the History Server to list {app_id}")
        (attempt,) = apps[0]["attempts"]
        assert attempt["completed"] is True
        jobs = _wait(lambda: _get(f"{base}/applications/{app_id}/jobs"), 60, "the application's jobs")
        assert len(jobs) == len(live_jobs) >= 2
        assert {j["status"] for j in jobs} == {"SUCCEEDED"}
        assert sorted(j["jobId"] for j in jobs) == sorted(j["jobId"] for j in live_jobs)
        # The page the operator's status links to.
        with urllib.request.urlopen(f"http://{HOST}:{port}/history/{app_id}/jobs/", timeout=10) as page:
            assert page.status == 200
    except AssertionError:
        print((tmp_path / "history.log").read_text(errors="replace")[-10000:])
        raise
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
