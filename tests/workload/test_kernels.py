"""The Scala and R kernels (sparkbook.kernels), driven by nbclient as JupyterLab drives them, against
the real Spark Connect server with its token: the example notebooks, a collect to local data, a
ggplot2 PNG, what a user sees when Spark is not there, and an interrupt.

The kernels are the ones `make kernels` installs (`sparkbook kernels install`, into this Python's
prefix); their start-up files come from the notebook's start-up ConfigMap, as the pod mounts it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nbformat
import pytest
from jupyter_client.manager import start_new_kernel
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from sparkbook import kernels
from sparkbook.build.notebook import startup_configmap
from tests.workload.test_notebook_kernel import SESSION, Ran, _closed_port, _kernel_env

if TYPE_CHECKING:
    from tests.spark_server import ConnectServer

pytestmark = pytest.mark.workload

ROOT = Path(__file__).resolve().parents[2]
CELL_TIMEOUT_S = 240
SPECS = {"scala": {"name": "scala", "display_name": "Scala (Spark)", "language": "scala"},
         "ir": {"name": "ir", "display_name": "R (Spark)", "language": "R"}}


@pytest.fixture(scope="module", autouse=True)
def installed() -> None:
    """What `make kernels` does (a no-op when it already did: the jar and R package are stamped)."""
    kernels.install(prefix=sys.prefix)


def pod_env(work: Path, remote: str, **extra: str) -> dict[str, str]:
    """The notebook pod's environment, with the start-up ConfigMap's files where the pod has them."""
    env = _kernel_env(work, remote, **extra)
    startup = work / "ipython" / "profile_default" / "startup"
    owner = {"apiVersion": "sparkbook.io/v1alpha1", "kind": "NotebookServer",
             "metadata": {"name": "nb", "namespace": "team-a", "uid": "u1"}}
    for name, text in startup_configmap(owner=owner)["data"].items():
        (startup / name).write_text(text)
    env["SPARKBOOK_STARTUP_DIR"] = str(startup)
    return env


def execute(nb: Any, kernel: str, env: dict[str, str], cwd: Path) -> Ran:
    ids = {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            ids.setdefault(cell.metadata.get("name") or cell.source, i)
    client = NotebookClient(nb, kernel_name=kernel, timeout=CELL_TIMEOUT_S, startup_timeout=90,
                            resources={"metadata": {"path": str(cwd)}})
    started = time.monotonic()
    client.execute(env=env)
    return Ran(nb=nb, seconds=time.monotonic() - started, ids=ids)


def notebook(kernel: str, cells: list[tuple[str, str]], *, raises: tuple[str, ...] = ()) -> Any:
    nb = new_notebook(metadata={"kernelspec": SPECS[kernel]})
    for name, source in cells:
        cell = new_code_cell(source, metadata={"name": name})
        if name in raises:
            cell.metadata["tags"] = ["raises-exception"]
        nb.cells.append(cell)
    return nb


def named(ran: Ran, start: str) -> str:
    """The cell whose source starts with ``start``."""
    return next(k for k in ran.ids if k.startswith(start))


def first_cell_seconds(ran: Ran) -> float:
    first = next(c for c in ran.nb.cells if c.cell_type == "code")
    return ran.duration(first.metadata.get("name") or first.source)


def test_installing_again_rebuilds_nothing() -> None:
    """The jar, the class-data archive and the R package are stamped: `make kernels` on every
    `make test` costs nothing after the first."""
    scala_dir = kernels.kernels_dir(sys.prefix) / "scala"
    built = [scala_dir / "sparkbook-repl.jar", scala_dir / "sparkbook-repl.jsa",
             Path(sys.prefix) / "share" / "sparkbook" / "R-library" / "sparkbook" / "DESCRIPTION"]
    assert all(p.is_file() for p in built), sorted(p.name for p in scala_dir.iterdir())
    before = [p.stat().st_mtime_ns for p in built]
    kernels.install(prefix=sys.prefix)
    assert [p.stat().st_mtime_ns for p in built] == before


def test_kernelspec_list_shows_the_python_scala_and_r_kernels() -> None:
    out = subprocess.run([str(Path(sys.executable).with_name("jupyter")), "kernelspec", "list", "--json"],
                         capture_output=True, text=True, check=True)
    specs = json.loads(out.stdout)["kernelspecs"]
    assert {"python3", "scala", "ir"} <= set(specs), specs
    assert specs["scala"]["spec"]["language"] == "scala" and specs["ir"]["spec"]["language"] == "R"
    assert Path(specs["scala"]["spec"]["env"][kernels.scala.JAR_ENV]).is_file()


# ---------------------------------------------------------------------------------------------
# The example notebooks
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("example", ["scala.ipynb", "r.ipynb"])
def test_the_examples_are_stored_without_outputs(example: str) -> None:
    nb = nbformat.read(ROOT / "examples" / example, as_version=4)
    nbformat.validate(nb)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")


def run_example(server: ConnectServer, tmp_path: Path, example: str, kernel: str) -> Ran:
    """examples/<example> as the notebook pod runs it (its start-up files, the session's UI link);
    no cell may fail."""
    nb = nbformat.read(ROOT / "examples" / example, as_version=4)
    env = pod_env(tmp_path, server.token_url, ui=server.ui_url, ui_link=f"{server.ui_url}/jobs/")
    ran = execute(nb, kernel, env, tmp_path)
    for name in ran.ids:
        assert not ran.errors(name), (name, ran.text(name)[-3000:])
    print(f"{example}: first cell {first_cell_seconds(ran):.1f} s, all {ran.seconds:.1f} s")
    return ran


def test_the_scala_example_runs(spark_connect_server: ConnectServer, tmp_path: Path) -> None:
    ran = run_example(spark_connect_server, tmp_path, "scala.ipynb", "scala")
    first = ran.text("spark.range(100).count()")
    assert "Spark 4.3.0 is ready as `spark` · application " in first
    assert f"Spark UI: {spark_connect_server.ui_url}/jobs/" in first
    assert "val res" in first and "Long = 100" in first
    assert "lazy val spark" not in first  # the start-up runs quietly
    def text(start: str) -> str:
        return ran.text(named(ran, start))

    assert "Long = 20000" in text("val readings")
    assert "|building|avg_actual|avg_target|readings|" in text("val byBuilding")  # show
    assert "|building|delta|" in text("readings.createOrReplaceTempView")  # SQL
    assert "90 days; the warmest was 2026-" in text("val daily")  # collected to local data
    assert "Long = 20" in text("val cold")  # a typed Dataset of a case class
    assert "|avg_f|" in text("val fahrenheit")  # a UDF defined in a cell ran on Spark
    assert spark_connect_server.token not in nbformat.writes(ran.nb)


def test_the_r_example_runs(spark_connect_server: ConnectServer, tmp_path: Path) -> None:
    ran = run_example(spark_connect_server, tmp_path, "r.ipynb", "ir")
    first = ran.text("spark$range(100L)$count()")
    assert "Spark 4.3.0 is ready as `spark` · application " in first and "[1] 100" in first
    assert "[1] 20000" in ran.text(named(ran, "library(sparkbook)"))
    by_building = ran.cell(named(ran, "by_building")).outputs[-1].data
    assert "A data.frame: 5 × 4" in by_building["text/html"] and "1080" in by_building["text/plain"]
    first_rows = named(ran, "first <- spark_collect")
    assert "showing the first 5 rows" in ran.stream(first_rows, "stderr")  # bounded, and says so
    assert "5 obs. of  5 variables" in ran.text(first_rows) and "Date" in ran.text(first_rows)
    plots = [o for o in ran.cell(named(ran, "library(ggplot2)")).outputs
             if o.output_type == "display_data" and "image/png" in o.data]
    assert len(plots) == 1
    joined = ran.cell(named(ran, "buildings <- data.frame")).outputs[-1].data["text/plain"]
    assert "Lyon" in joined and "Oslo" in joined  # an R data.frame joined with Spark data in SQL
    assert spark_connect_server.token not in nbformat.writes(ran.nb)


def test_r_data_frames_round_trip_through_spark_with_their_types_and_nas(
        spark_connect_server: ConnectServer, tmp_path: Path) -> None:
    nb = notebook("ir", [
        ("copy", 'x <- data.frame(i = c(1L, NA, -3L), d = c(1.5, NA, 1e300), b = c(TRUE, NA, FALSE),\n'
                 '                s = c("a", NA, "ü"), day = as.Date(c("2024-02-29", NA, "1969-12-31")),\n'
                 '                at = as.POSIXct(c("2024-01-02 03:04:05", NA, "1999-12-31 23:59:59"), tz = "UTC"),\n'
                 '                stringsAsFactors = FALSE)\n'
                 'back <- spark_collect(spark_copy(x, "x"))\n'
                 'cat("same", identical(lapply(x, as.character), lapply(back, as.character)), "\\n")\n'
                 'cat("classes", vapply(back, function(c) class(c)[1], ""), "\\n")'),
        ("types", 'str(spark_collect("SELECT CAST(1 AS BIGINT) * 3000000000 AS big, CAST(2 AS SMALLINT) AS small,\n'
                  '  CAST(1.25 AS DECIMAL(10, 2)) AS dec, array(1, 2) AS arr FROM x LIMIT 1"))'),
        ("bigint", 'cat("bigint", class(spark_collect("SELECT CAST(7 AS BIGINT) AS b")$b), "\\n")'),
        ("empty", 'e <- spark_collect("SELECT * FROM x WHERE false"); cat("rows", nrow(e), "cols", ncol(e), "\\n")'),
        ("all", 'cat("all", nrow(spark_collect(spark_sql("SELECT * FROM range(2500)"), n = Inf)), "\\n")'),
    ])
    ran = execute(nb, "ir", pod_env(tmp_path, spark_connect_server.token_url), tmp_path)
    for name in ran.ids:
        assert not ran.errors(name), (name, ran.text(name))
    assert "same TRUE" in ran.text("copy"), ran.text("copy")
    assert "classes integer numeric logical character Date POSIXct" in ran.text("copy")
    types = ran.text("types")
    assert "big  : num 3e+09" in types and "small: int 2" in types and "dec  : num 1.25" in types
    assert "arr  : chr" in types
    assert "bigint numeric" in ran.text("bigint")  # a small bigint too: the type never depends on the rows
    assert "rows 0 cols 6" in ran.text("empty")
    assert "all 2500" in ran.text("all") and "showing the first" not in ran.text("all")


# ---------------------------------------------------------------------------------------------
# When Spark is not there
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kernel", ["scala", "ir"])
def test_unreachable_session_is_one_sentence_and_the_kernel_stays_usable(kernel: str, tmp_path: Path) -> None:
    port = _closed_port()
    secret = "not-a-real-token-but-secret"
    scala = kernel == "scala"
    nb = notebook(kernel, [
        ("first", "1 + 1"),
        ("use", "spark.range(3).count()" if scala else "spark$range(3L)$count()"),
        ("typo", "sprak.range(3)" if scala else "sprak$range(3L)"),
        ("usable", 'println(s"usable ${6 * 7}")' if scala else 'cat("usable", 6 * 7, "\\n")'),
    ], raises=("use", "typo"))
    env = pod_env(tmp_path, f"sc://127.0.0.1:{port}/;authorization=Bearer%20{secret}")
    env["SPARKBOOK_CONNECT_TIMEOUT"] = "10"
    ran = execute(nb, kernel, env, tmp_path)
    if scala:  # the Scala start-up connects, and says why not in the first cell
        sentence = ran.stream("first", "stdout").strip().splitlines()[0]
        assert f"not reachable at sc://127.0.0.1:{port}" in sentence or f"did not answer at sc://127.0.0.1:{port}" in sentence
        assert "Int = 2" in ran.text("first")
    else:  # R's first use of `spark` says it
        assert "[1] 2" in ran.text("first")
    (error,) = ran.errors("use")
    shown = ran.text("use").strip()
    if scala:
        assert len(shown.splitlines()) == 1, shown  # one sentence, no stack trace
    else:
        # IRkernel lists the R calls under every R error ("Traceback:" and numbered calls): the
        # error itself is one sentence, and no Python or gRPC frame shows.
        assert error.evalue.startswith(("Error: Spark is not reachable", "Error: Spark did not answer")) and len(error.evalue.strip().splitlines()) == 1
        calls = shown.split("Traceback:", 1)[1]
        assert "spark_session()" in calls and len(calls.strip().splitlines()) <= 6, calls
        assert not any(word in shown for word in ("py_call", "File \"", "grpc", "most recent call last")), shown
    assert f"sc://127.0.0.1:{port}" in shown and f"kubectl get sparksession {SESSION}" in shown, shown
    (typo,) = ran.errors("typo")  # a mistake in a cell is the language's own error, not Spark's
    if scala:
        assert (typo.ename, typo.evalue) == ("CompileError", "not found: value sprak"), typo
    else:
        assert "object 'sprak' not found" in typo.evalue, typo
    assert "usable 42" in ran.text("usable")
    assert secret not in nbformat.writes(ran.nb)


def test_scala_wrong_token_is_one_sentence(spark_connect_server: ConnectServer, tmp_path: Path) -> None:
    nb = notebook("scala", [("first", "spark.version")], raises=("first",))
    env = pod_env(tmp_path, f"{spark_connect_server.url}/;authorization=Bearer%20wrong-token-here")
    ran = execute(nb, "scala", env, tmp_path)
    (error,) = ran.errors("first")
    assert error.ename == "SparkUnavailable"
    assert "refused this notebook's token (UNAUTHENTICATED)" in error.evalue, error.evalue
    assert "wrong-token-here" not in nbformat.writes(ran.nb)


# ---------------------------------------------------------------------------------------------
# Interrupting a Scala cell
# ---------------------------------------------------------------------------------------------
def test_interrupting_a_scala_cell_cancels_its_spark_job_and_the_kernel_goes_on(
        spark_connect_server: ConnectServer, tmp_path: Path) -> None:
    env = pod_env(tmp_path, spark_connect_server.token_url)
    km, kc = start_new_kernel(kernel_name="scala", env=env, cwd=str(tmp_path), startup_timeout=90)
    try:
        def run(code: str, *, interrupt_after: float | None = None) -> tuple[dict[str, Any], str]:
            msg_id = kc.execute(code)
            if interrupt_after is not None:
                threading.Timer(interrupt_after, km.interrupt_kernel).start()
            out = []
            while True:
                msg = kc.get_iopub_msg(timeout=CELL_TIMEOUT_S)
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "stream":
                    out.append(msg["content"]["text"])
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    break
            # The reply to this request: a slow kernel start leaves more than one kernel_info_reply
            # on the shell channel (wait_for_ready asks again), so the next message may be another.
            while (reply := kc.get_shell_msg(timeout=CELL_TIMEOUT_S))["parent_header"].get("msg_id") != msg_id:
                pass
            return reply["content"], "".join(out)

        reply, text = run("spark.range(3).count()")
        assert reply["status"] == "ok" and "Long = 3" in text
        started = time.monotonic()
        # Minutes of work for the local server, cancelled a few seconds in.
        reply, text = run('spark.range(0, 40000000000L, 1, 4).selectExpr("sum(hash(id))").collect()', interrupt_after=4)
        cancelled_after = time.monotonic() - started
        assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", (reply, text)
        assert "cancel" in text.lower() or "interrupt" in text.lower(), text[-2000:]
        reply, text = run('println(s"still here ${spark.range(5).count()}")')
        assert reply["status"] == "ok" and "still here 5" in text
        print(f"interrupted job ended {cancelled_after:.1f} s after it started (interrupt sent at 4 s)")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
