"""Real Jupyter kernels against the real Spark Connect server: the kernel start-up the operator
mounts, the sparkmagic magics, and what a user sees when Spark is not there.

Each notebook runs in a fresh `python3` kernel started by nbclient, with the pod's environment
(SPARK_REMOTE carrying the token, SPARKBOOK_SPARK_SESSION, SPARKBOOK_SPARK_UI) and the
operator's STARTUP_PY installed as an IPython start-up file, exactly as the pod mounts it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from sparkbook.build.launch import SERVER_TOKEN_ENV
from sparkbook.build.notebook import STARTUP_FILE, STARTUP_PY

if TYPE_CHECKING:
    from tests.spark_server import ConnectServer

pytestmark = pytest.mark.workload

ROOT = Path(__file__).resolve().parents[2]
SESSION = "nb-spark"
UI_LINK = "/proxy/127.0.9.1:4040/"
CELL_TIMEOUT_S = 120


def _kernel_env(work: Path, remote: str, *, ui: str | None = None, ui_link: str | None = None) -> dict[str, str]:
    """The notebook pod's environment, with the start-up file where IPython looks for it."""
    ipython_dir = work / "ipython"
    startup_dir = ipython_dir / "profile_default" / "startup"
    startup_dir.mkdir(parents=True, exist_ok=True)
    (startup_dir / STARTUP_FILE).write_text(STARTUP_PY)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_", "SPARKBOOK_", "JUPYTER"))
    }
    env.pop(SERVER_TOKEN_ENV, None)  # would make the client insist on TLS
    env.update(
        SPARK_REMOTE=remote,
        SPARKBOOK_SPARK_SESSION=SESSION,
        IPYTHONDIR=str(ipython_dir),
        MPLBACKEND="Agg",
        JUPYTER_PLATFORM_DIRS="1",
        JUPYTER_RUNTIME_DIR=str(work / "runtime"),
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    if ui:
        env["SPARKBOOK_SPARK_UI"] = ui
    if ui_link:
        env["SPARKBOOK_SPARK_UI_LINK"] = ui_link
    return env


@dataclass
class Ran:
    nb: Any
    seconds: float
    ids: dict[str, int]

    def cell(self, name: str) -> Any:
        return self.nb.cells[self.ids[name]]

    def text(self, name: str) -> str:
        """Everything a cell showed, as text (streams, text/plain, text/html, error tracebacks).

        Streams read as a front end shows them: the kernel may flush one print() in several stream
        messages (even between its arguments), and JupyterLab joins consecutive ones of a stream."""
        parts: list[str] = []
        previous: Any = None
        for out in self.cell(name).outputs:
            if out.output_type == "stream":
                if previous is not None and previous.output_type == "stream" and previous.name == out.name:
                    parts[-1] += out.text
                else:
                    parts.append(out.text)
            elif out.output_type in ("display_data", "execute_result"):
                parts.extend(str(out.data.get(m, "")) for m in ("text/plain", "text/html"))
            elif out.output_type == "error":
                parts.append("\n".join(out.traceback))
            previous = out
        return "\n".join(parts)

    def stream(self, name: str, which: str) -> str:
        return "".join(o.text for o in self.cell(name).outputs if o.output_type == "stream" and o.name == which)

    def errors(self, name: str) -> list[Any]:
        return [o for o in self.cell(name).outputs if o.output_type == "error"]

    def duration(self, name: str) -> float:
        """Seconds a cell took, from nbclient's timing metadata."""
        from datetime import datetime

        timing = self.cell(name).metadata["execution"]
        start = datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))
        end = datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
        return (end - start).total_seconds()


def test_text_reads_split_stream_outputs_as_a_front_end_shows_them() -> None:
    """A kernel flushed between print()'s arguments (seen in CI): the text is still one line."""
    from nbformat.v4 import new_output

    cell = new_code_cell("print('plain', kind, n)")
    cell.outputs = [new_output("stream", name="stdout", text="plain"),
                    new_output("stream", name="stdout", text=" pyspark.sql.connect.dataframe 3\n"),
                    new_output("stream", name="stderr", text="warning\n"),
                    new_output("stream", name="stdout", text="after\n")]
    ran = Ran(nb=new_notebook(cells=[cell]), seconds=0.0, ids={"c": 0})
    assert ran.text("c") == "plain pyspark.sql.connect.dataframe 3\n\nwarning\n\nafter\n"



def _notebook(cells: list[tuple[str, str]], *, raises: tuple[str, ...] = ()) -> tuple[Any, dict[str, int]]:
    nb = new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    ids = {}
    for name, source in cells:
        cell = new_code_cell(source)
        if name in raises:
            cell.metadata["tags"] = ["raises-exception"]
        ids[name] = len(nb.cells)
        nb.cells.append(cell)
    return nb, ids


def _execute(nb: Any, ids: dict[str, int], env: dict[str, str], cwd: Path) -> Ran:
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        startup_timeout=60,
        resources={"metadata": {"path": str(cwd)}},
    )
    started = time.monotonic()
    client.execute(env=env)
    return Ran(nb=nb, seconds=time.monotonic() - started, ids=ids)


# ---------------------------------------------------------------------------------------------
# A notebook exercising the magics one by one
# ---------------------------------------------------------------------------------------------
MAGICS_CELLS = [
    ("first", (
        "from pyspark.sql import functions as F\n"
        "people = spark.createDataFrame([(1, 'ana', 10), (2, 'bo', 20), (3, 'cy', 10)], ['id', 'name', 'dept'])\n"
        "depts = spark.createDataFrame([(10, 'eng'), (20, 'ops')], ['dept', 'dname'])\n"
        "joined = people.filter(F.col('id') > 1).join(depts, 'dept').groupBy('dname').count()\n"
        "print('joined', sorted((r['dname'], r['count']) for r in joined.collect()), people.count())\n"
        "print('appid', spark.conf.get('spark.app.id'))"
    )),
    ("table", "spark.range(1000).withColumn('g', F.col('id') % 7).createOrReplaceTempView('t1000')"),
    ("sql_o", "%%sql -o top10 -n 10\nSELECT * FROM t1000 ORDER BY id"),
    ("sql_o_check", "print('top10', type(top10).__module__, len(top10), list(top10['id'][:3]))"),
    ("sample", "%%sql -o sampled -m sample -r 0.1 -q\nSELECT * FROM t1000"),
    ("sample_check", "print('sampled', len(sampled))"),
    ("quiet", "%%sql -q\nSELECT * FROM t1000"),
    ("all_rows", "%%sql -o everything -n -1 -q\nSELECT * FROM t1000"),
    ("all_rows_check", "print('everything', len(everything))"),
    ("plot_data", "%%sql -o bygroup -q\nSELECT g, count(*) AS n FROM t1000 GROUP BY g ORDER BY g"),
    ("plot", (
        "%%local\n"
        "import matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots()\n"
        "ax.bar(bygroup['g'], bygroup['n'])\n"
        "fig.savefig('bygroup.png')\n"
        "plt.close(fig)"
    )),
    ("spark_o", "%%spark -o people\npeople = people.orderBy('id')"),
    ("local_1", "%%local\nprint('local', type(people).__module__, len(people))\npeople = people[people['id'] > 1]"),
    ("local_2", "%%local\nprint('local again', type(people).__module__, len(people))"),
    ("plain_after", "print('plain', type(people).__module__, people.count())"),
    ("info", "%%info"),
    ("configure", (
        "%%configure -f\n"
        '{"driverMemory": "4g", "numExecutors": 3, "name": "x",\n'
        ' "conf": {"spark.sql.shuffle.partitions": "7", "spark.executor.memoryOverhead": "1g"}}'
    )),
    ("configure_check", "print('partitions', spark.conf.get('spark.sql.shuffle.partitions'))"),
    ("sql_error", "%%sql\nSELECT * FROM nope"),
    ("after_error", "print('still', spark.range(5).count())"),
    ("pretty", "%%pretty\nspark.range(3).withColumnRenamed('id', 'n').show()"),
    ("help", "%%help"),
    ("logs", "%%logs"),
    ("cleanup", "%%cleanup -f"),
    ("py_error", "names = spark.createDataFrame([(1, 'ana')], ['id', 'name'])\nnames.select('nope').show()"),
    ("after_py_error", "print('still', spark.range(2).count())"),
    ("tb_full", "%sparkbook traceback full"),
    ("py_error_full", "names.select('nope').show()"),
    ("tb_short", "%sparkbook traceback short"),
]


@pytest.fixture(scope="module")
def magics_run(spark_connect_server: ConnectServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ran]:
    work = tmp_path_factory.mktemp("kernel-magics")
    nb, ids = _notebook(MAGICS_CELLS, raises=("sql_error", "py_error", "py_error_full"))
    env = _kernel_env(work, spark_connect_server.token_url, ui=spark_connect_server.ui_url, ui_link=UI_LINK)
    ran = _execute(nb, ids, env, work)
    ran.work = work  # type: ignore[attr-defined]
    yield ran


def test_spark_is_ready_in_the_first_cell(magics_run: Ran) -> None:
    text = magics_run.text("first")
    assert "joined [('eng', 1), ('ops', 1)] 3" in text
    app_id = text.split("appid ", 1)[1].split()[0]
    # The one-line banner: version, application id, UI link (the proxied one when set).
    banner = next(o for o in magics_run.cell("first").outputs if o.output_type == "display_data")
    plain = banner.data["text/plain"]
    assert "Spark 4.3.0" in plain and app_id in plain and UI_LINK in plain
    assert len(plain.splitlines()) == 1
    assert not magics_run.errors("first")


def test_sql_output_is_a_pandas_frame_of_n_rows(magics_run: Ran) -> None:
    shown = [o for o in magics_run.cell("sql_o").outputs if o.output_type == "execute_result"]
    assert shown and "<table" in shown[0].data["text/html"]
    assert "top10 pandas.core.frame 10 [0, 1, 2]" in magics_run.text("sql_o_check")
    assert "everything 1000" in magics_run.text("all_rows_check")


def test_sql_sample_takes_about_the_fraction(magics_run: Ran) -> None:
    n = int(magics_run.text("sample_check").split("sampled ", 1)[1].split()[0])
    assert 40 <= n <= 180, n  # Bernoulli(0.1) over 1000 rows: 100 +- 9.5
    assert magics_run.cell("sample").outputs == []


def test_sql_quiet_shows_nothing(magics_run: Ran) -> None:
    assert magics_run.cell("quiet").outputs == []


def test_plot_from_sql_output_is_saved_as_png(magics_run: Ran) -> None:
    png = magics_run.work / "bygroup.png"  # type: ignore[attr-defined]
    assert png.is_file()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not magics_run.errors("plot")


def test_local_sees_pandas_while_plain_cells_keep_the_spark_frame(magics_run: Ran) -> None:
    assert magics_run.stream("spark_o", "stdout").strip() == "people: 3 rows copied to pandas for %%local"
    assert "local pandas.core.frame 3" in magics_run.text("local_1")
    assert "local again pandas.core.frame 2" in magics_run.text("local_2")  # the %%local side keeps its edits
    assert "plain pyspark.sql.connect.dataframe 3" in magics_run.text("plain_after")


def test_info_shows_application_and_ui_link(magics_run: Ran) -> None:
    app_id = magics_run.text("first").split("appid ", 1)[1].split()[0]
    text = magics_run.text("info")
    assert app_id in text and "4.3.0" in text
    assert UI_LINK in text and f'href="{UI_LINK}"' in text
    assert "Executors: none (local mode" in text and f"SparkSession: {SESSION}" in text
    assert f"kubectl get sparksession {SESSION}" in text  # in a cluster, where to look
    assert "1 cores" not in text and "executor 1 core /" in text


def test_local_mode_names_no_kubectl(spark_connect_server: ConnectServer, tmp_path: Path) -> None:
    """`sparkbook local` sets SPARKBOOK_LOCAL: there is no cluster to run kubectl against."""
    from sparkbook.names import LOCAL_ENV

    from sparkbook.names import LOCAL_SPARK_LOG_ENV

    nb, ids = _notebook([("info", "%%info"), ("logs", "%%logs"), ("cleanup", "%%cleanup"),
                         ("configure", '%%configure\n{"driverMemory": "4g"}')])
    env = _kernel_env(tmp_path, spark_connect_server.token_url, ui=spark_connect_server.ui_url)
    env[LOCAL_ENV] = "1"
    env[LOCAL_SPARK_LOG_ENV] = str(spark_connect_server.log_path)
    ran = _execute(nb, ids, env, tmp_path)
    text = ran.text("info")
    assert "Spark version: 4.3.0" in text and f"SparkSession: {SESSION}" in text
    assert "kubectl" not in text and "this machine" in text
    assert "1 cores" not in text
    assert str(spark_connect_server.log_path) in ran.text("logs")
    assert "Ctrl-C" in ran.text("cleanup") and "sparkbook local" in ran.text("configure")
    for name in ids:
        assert "kubectl" not in ran.text(name), (name, ran.text(name))


def test_configure_applies_runtime_conf_and_names_the_rest(magics_run: Ran) -> None:
    text = magics_run.text("configure")
    assert "Applied now: spark.sql.shuffle.partitions=7" in text
    for key in ("driverMemory=4g", "numExecutors=3", "spark.executor.memoryOverhead=1g"):
        assert key in text
    assert f"kubectl edit sparksession {SESSION}" in text
    assert "-f does not restart the driver" in text
    assert "partitions 7" in magics_run.text("configure_check")


def test_sql_error_is_one_short_message(magics_run: Ran) -> None:
    (error,) = magics_run.errors("sql_error")
    shown = "\n".join(error.traceback)
    assert error.ename == "AnalysisException"
    assert "AnalysisException" in shown and "[TABLE_OR_VIEW_NOT_FOUND]" in shown and "nope" in shown
    assert len(error.traceback) == 1 and len(shown) < 600, shown
    for noise in ("JVM stacktrace", "grpc", "_InactiveRpcError", "Traceback", "magics.py"):
        assert noise not in shown
    assert "JVM" not in magics_run.text("sql_error")  # nor pyspark's JSON error log on stderr
    assert "still 5" in magics_run.text("after_error")


def test_spark_error_in_a_plain_cell_is_short_with_the_suggestion(magics_run: Ran) -> None:
    (error,) = magics_run.errors("py_error")
    assert error.ename == "AnalysisException"
    text = magics_run.text("py_error")  # the error and anything logged to stderr
    assert len(text) < 1500, text
    assert "[UNRESOLVED_COLUMN" in text and "Did you mean one of the following?" in text and "`name`" in text
    assert "names.select('nope').show()" in text and "Cell In[" in text  # the user's own frame
    for noise in ("JVM stacktrace", "errorClass", "_InactiveRpcError", "pyspark/sql"):
        assert noise not in text
    assert "still 2" in magics_run.text("after_py_error")


def test_full_tracebacks_are_one_magic_away(magics_run: Ran) -> None:
    assert "full traceback" in magics_run.text("tb_full")
    (error,) = magics_run.errors("py_error_full")
    shown = "\n".join(error.traceback)
    assert error.ename == "AnalysisException" and "Did you mean one of the following?" in shown
    assert len(shown) > 3000 and "pyspark" in shown and "JVM stacktrace" in shown
    assert "class, message and your frames" in magics_run.text("tb_short")


def test_other_magics_answer(magics_run: Ran) -> None:
    pretty = magics_run.cell("pretty").outputs
    assert any("<td>2</td>" in o.data.get("text/html", "") for o in pretty if o.output_type == "display_data")
    help_text = magics_run.text("help")
    for magic in ("%%sql", "%%spark", "%%local", "%%send_to_spark", "%%configure", "%%info"):
        assert magic in help_text
    assert "-n|--maxrows N" in help_text and "-n/--maxrows N" in help_text
    lines = magics_run.stream("help", "stdout").splitlines()
    assert max(len(line) for line in lines) <= 100, lines
    assert f"kubectl logs {SESSION}-driver" in magics_run.text("logs")
    assert "SparkSession resources" in magics_run.text("cleanup")


def test_token_never_shown(magics_run: Ran, spark_connect_server: ConnectServer) -> None:
    assert spark_connect_server.token not in nbformat.writes(magics_run.nb)


# ---------------------------------------------------------------------------------------------
# The sparkmagic-style example, unchanged
# ---------------------------------------------------------------------------------------------
def test_sparkmagic_style_example_runs_unchanged(
    spark_connect_server: ConnectServer, tmp_path: Path
) -> None:
    nb = nbformat.read(ROOT / "examples" / "sparkmagic-style.ipynb", as_version=4)
    ids = {cell.source: i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"}
    env = _kernel_env(tmp_path, spark_connect_server.token_url, ui=spark_connect_server.ui_url)
    ran = _execute(nb, ids, env, tmp_path)

    def shown(starts: str, contains: str = "") -> str:
        (source,) = [src for src in ids if src.startswith(starts) and contains in src]
        return ran.text(source)

    for source in ids:
        assert not ran.errors(source), source
    # The %%local side sees pandas `df`; the next plain cell still sees the Spark DataFrame `df`.
    assert "<class 'pandas.core.frame.DataFrame'>" in shown("%%local", "type(df)")
    plain = shown("print(type(df))")
    assert "<class 'pyspark.sql.connect.dataframe.DataFrame'>" in plain and "|region|count|" in plain
    # %%sql -o feeds a %%local plot.
    assert "<table" in shown("%%sql -o by_region")
    assert (tmp_path / "revenue_by_region.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # %%send_to_spark: a local string and a pandas frame became Spark values.
    assert "|region|count|" in shown("%%spark", "top_sales")
    configure = shown("%%configure")
    assert "Applied now: spark.sql.shuffle.partitions=8" in configure and "executorMemory=2g" in configure
    assert spark_connect_server.ui_url in shown("%%info")
    assert spark_connect_server.token not in nbformat.writes(ran.nb)


# ---------------------------------------------------------------------------------------------
# No Spark: one sentence, bounded time, a usable kernel
# ---------------------------------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_session_is_one_sentence_and_the_kernel_stays_usable(tmp_path: Path) -> None:
    port = _closed_port()
    secret = "not-a-real-token-but-secret"
    nb, ids = _notebook(
        [
            ("first", "1 + 1"),
            ("use", "spark.range(3).count()"),
            ("sql", "%%sql\nSELECT 1"),
            ("usable", "print('usable', 6 * 7)"),
        ],
        raises=("use", "sql"),
    )
    env = _kernel_env(tmp_path, f"sc://127.0.0.1:{port}/;authorization=Bearer%20{secret}", ui="http://127.0.0.1:1")
    ran = _execute(nb, ids, env, tmp_path)
    sentence = ran.stream("first", "stderr").strip()
    assert len(sentence.splitlines()) == 1, sentence
    assert f"not reachable at sc://127.0.0.1:{port}" in sentence and "connection refused" in sentence
    assert f"kubectl get sparksession {SESSION}" in sentence
    assert ran.duration("first") < 30
    assert ran.cell("first").outputs[-1].data["text/plain"] == "2"
    for name in ("use", "sql"):
        (error,) = ran.errors(name)
        assert len(error.traceback) == 1 and "not reachable" in error.traceback[0], error.traceback
        assert ran.duration(name) < 30
    assert "usable 42" in ran.text("usable")
    assert secret not in nbformat.writes(ran.nb)
    assert ran.seconds < 60


def test_unexpanded_token_is_one_sentence(tmp_path: Path) -> None:
    nb, ids = _notebook([("first", "1 + 1"), ("use", "spark.version")], raises=("use",))
    env = _kernel_env(tmp_path, "sc://nb-spark-connect.team-a.svc:15002/;authorization=Bearer%20$(SPARKBOOK_CONNECT_TOKEN)")
    ran = _execute(nb, ids, env, tmp_path)
    sentence = ran.stream("first", "stderr").strip()
    assert len(sentence.splitlines()) == 1, sentence
    assert "$(SPARKBOOK_CONNECT_TOKEN)" in sentence and f"kubectl get sparksession {SESSION}" in sentence
    (error,) = ran.errors("use")
    assert "$(SPARKBOOK_CONNECT_TOKEN)" in error.traceback[0]
    assert ran.duration("first") < 5
