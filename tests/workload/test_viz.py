"""The %%sql table-and-charts widget in a real kernel against the real Spark Connect server, run by
nbclient: no front end, so what a saved or converted notebook keeps is what is checked (the
widget's view, its state, and the HTML table beside it)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.workload.test_notebook_kernel import Ran, _execute, _kernel_env, _notebook

if TYPE_CHECKING:
    from tests.spark_server import ConnectServer

pytestmark = pytest.mark.workload

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
STATE_MIME = "application/vnd.jupyter.widget-state+json"

CELLS = [
    ("setup", (
        "spark.range(12).selectExpr('id', \"element_at(array('east', 'west', 'north'), cast(id % 3 + 1 AS int))"
        " AS region\", 'id * 10 AS amount').createOrReplaceTempView('sales')"
    )),
    ("sql", "%%sql\nSELECT region, amount FROM sales ORDER BY id"),
    ("bar", "shown = _\nshown.kind.value = 'Bar'\nprint(type(shown).__name__, len(shown.frame), shown.how.value)"),
    ("quiet", "%%sql -q\nSELECT * FROM sales"),
    ("sql_o", "%%sql -o by_region\nSELECT region, sum(amount) AS total FROM sales GROUP BY region ORDER BY region"),
    ("sql_o_check", "print('by_region', type(by_region).__module__, len(by_region))"),
    ("spark_o", "%%spark -o people\npeople = spark.table('sales')"),
    ("local", "%%local\npeople"),
    ("env_off", "import os\nos.environ['SPARKBOOK_AUTOVIZ'] = '0'"),
    ("sql_env_off", "%%sql\nSELECT region, amount FROM sales ORDER BY id"),
    ("on", "%sparkbook autoviz on"),
    ("sql_on", "%%sql\nSELECT 1 AS one"),
    ("off", "%sparkbook autoviz off"),
    ("sql_off", "%%sql\nSELECT region, amount FROM sales ORDER BY id"),
    ("bad", "%sparkbook autoviz maybe"),
]


@pytest.fixture(scope="module")
def viz_run(spark_connect_server: ConnectServer, tmp_path_factory: pytest.TempPathFactory) -> Ran:
    work = tmp_path_factory.mktemp("kernel-viz")
    nb, ids = _notebook(CELLS, raises=("bad",))
    return _execute(nb, ids, _kernel_env(work, spark_connect_server.token_url), work)


def _shown(ran: Ran, name: str) -> Any:
    (result,) = [o for o in ran.cell(name).outputs if o.output_type == "execute_result"]
    return result


def _shows(ran: Ran, name: str) -> list[Any]:
    """What a cell displayed, less Spark's progress line (sparkbook.notebook.progress), which
    comes and goes with how long the cell's Spark work took."""
    return [o for o in ran.cell(name).outputs if o.output_type in ("display_data", "execute_result")
            and "sparkbook-progress" not in o.data.get("text/html", "")]


def _state(ran: Ran) -> dict[str, dict[str, Any]]:
    """Each widget's model state as nbclient saved it in the notebook, by model id."""
    return {k: v["state"] for k, v in ran.nb.metadata["widgets"][STATE_MIME]["state"].items()}


def _tree(states: dict[str, dict[str, Any]], model_id: str) -> list[dict[str, Any]]:
    """A widget and everything under it, depth first."""
    state = states[model_id]
    found = [state]
    for child in state.get("children", []):
        found += _tree(states, child.removeprefix("IPY_MODEL_"))
    return found


def test_sql_shows_the_widget_and_the_pandas_table(viz_run: Ran) -> None:
    result = _shown(viz_run, "sql")
    assert WIDGET_MIME in result.data
    html = result.data["text/html"]
    assert 'class="dataframe"' in html and "<td>east</td>" in html and "<td>110</td>" in html
    assert html.count("<tr>") == 12  # the rows (the header row has a style)
    assert "region" in result.data["text/plain"]
    assert _shows(viz_run, "sql") == [result]  # nothing else: no stray widgets or prints


def test_the_widget_state_holds_the_selectors_and_the_view(viz_run: Ran) -> None:
    states = _state(viz_run)
    widgets = _tree(states, _shown(viz_run, "sql").data[WIDGET_MIME]["model_id"])
    (kinds,) = [w for w in widgets if w["_model_name"] == "ToggleButtonsModel"]
    assert kinds["_options_labels"] == ["Table", "Pie", "Scatter", "Line", "Area", "Bar"]
    dropdowns = {w["description"]: w for w in widgets if w["_model_name"] == "DropdownModel"}
    assert dropdowns["X"]["_options_labels"] == dropdowns["Y"]["_options_labels"] == ["region", "amount"]
    assert dropdowns["Y aggregation"]["_options_labels"] == ["None", "Avg", "Min", "Max", "Sum", "Count"]
    # The next cell pressed Bar: the view is the chart, a plotly figure of amount summed per region.
    assert "Autoviz 12 Sum" in viz_run.text("bar")
    (output,) = [w for w in widgets if w["_model_name"] == "OutputModel"]
    (shown,) = output["outputs"]
    (trace,) = shown["data"][PLOTLY_MIME]["data"]
    assert trace["type"] == "bar"
    assert trace["x"] == ["east", "north", "west"] and trace["y"] == [180, 260, 220]


def test_sql_quiet_shows_nothing(viz_run: Ran) -> None:
    assert viz_run.cell("quiet").outputs == []


def test_sql_o_keeps_pandas_and_shows_the_widget(viz_run: Ran) -> None:
    result = _shown(viz_run, "sql_o")
    assert WIDGET_MIME in result.data and "<td>north</td>" in result.data["text/html"]
    assert "by_region pandas.core.frame 3" in viz_run.text("sql_o_check")


def test_spark_o_says_what_it_copied_and_local_shows_the_widget(viz_run: Ran) -> None:
    # As in sparkmagic: %%spark -o only copies; the frame is seen when a %%local cell shows it.
    assert viz_run.stream("spark_o", "stdout").strip() == "people: 12 rows copied to pandas for %%local"
    assert _shows(viz_run, "spark_o") == []
    result = _shown(viz_run, "local")
    assert WIDGET_MIME in result.data and "<td>110</td>" in result.data["text/html"]


def test_autoviz_off_shows_the_plain_pandas_table(viz_run: Ran) -> None:
    for name in ("sql_env_off", "sql_off"):
        result = _shown(viz_run, name)
        assert WIDGET_MIME not in result.data, name
        assert 'class="dataframe"' in result.data["text/html"] and "<td>110</td>" in result.data["text/html"]
    assert WIDGET_MIME in _shown(viz_run, "sql_on").data  # the setting wins over SPARKBOOK_AUTOVIZ=0
    assert "with charts" in viz_run.text("on") and "plain pandas tables" in viz_run.text("off")
    # IPython shows a UsageError as one line on stderr: the cell fails, with no error output.
    bad = viz_run.stream("bad", "stderr")
    assert "UsageError: usage: %sparkbook traceback [full|short] | " in bad and "%sparkbook autoviz [on|off]" in bad


def test_the_widget_costs_little_time(viz_run: Ran) -> None:
    assert viz_run.duration("sql") < 30 and viz_run.duration("bar") < 5, viz_run.seconds


def test_notebook_saved_without_plotly_js(viz_run: Ran, tmp_path: Path) -> None:
    import nbformat

    path = tmp_path / "viz.ipynb"
    nbformat.write(viz_run.nb, path)
    assert path.stat().st_size < 200_000  # figures are specs, not a copy of plotly.js (4.9 MB)
