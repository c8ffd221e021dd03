"""The %%sql table-and-charts widget: its pure core (aggregation, figure specs, display bundles),
the widget's wiring, and the on/off setting, without a kernel."""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from decimal import Decimal

import pandas as pd
import plotly.graph_objects as go
import pytest
from IPython.core.error import UsageError

from sparkbook.notebook import viz

# Sales per region: east twice, so aggregations differ from the rows as they are.
SALES = pd.DataFrame({"region": ["east", "west", "east", "north"], "amount": [10, 5, 30, 7]})


def _chart(frame: pd.DataFrame, kind: str, x: str, y: str, how: str) -> dict:
    spec = viz.figure(frame, kind, x, y, how)
    assert isinstance(spec, dict), spec
    json.dumps(spec, allow_nan=False)  # what the kernel sends must be plain JSON
    go.Figure(data=spec["data"], layout=spec["layout"])  # plotly itself accepts every property
    return spec


# ---------------------------------------------------------------------------------------------
# aggregate
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("how", "column", "expected"),
    [
        ("None", "amount", [("east", 10), ("west", 5), ("east", 30), ("north", 7)]),  # rows as they are
        ("Avg", "avg(amount)", [("east", 20.0), ("north", 7.0), ("west", 5.0)]),
        ("Min", "min(amount)", [("east", 10), ("north", 7), ("west", 5)]),
        ("Max", "max(amount)", [("east", 30), ("north", 7), ("west", 5)]),
        ("Sum", "sum(amount)", [("east", 40), ("north", 7), ("west", 5)]),
        ("Count", "count(amount)", [("east", 2), ("north", 1), ("west", 1)]),
    ],
)
def test_aggregate_each_way_per_distinct_x(how: str, column: str, expected: list) -> None:
    out = viz.aggregate(SALES, "region", "amount", how)
    assert list(out.columns) == ["region", column]
    assert list(out.itertuples(index=False, name=None)) == expected


def test_count_needs_no_numbers_and_sum_of_only_nulls_is_null() -> None:
    frame = pd.DataFrame({"k": ["a", "a", "b"], "who": ["ana", None, "bo"], "v": [1.0, 2.0, None]})
    assert viz.aggregate(frame, "k", "who", "Count")["count(who)"].tolist() == [1, 1]  # nulls not counted
    sums = viz.aggregate(frame, "k", "v", "Sum")["sum(v)"].tolist()
    assert sums[0] == 3.0 and math.isnan(sums[1])  # as SQL: not 0


def test_spark_decimals_and_booleans_are_numbers() -> None:
    # toPandas() gives DecimalType columns as Python Decimal objects in an object column.
    frame = pd.DataFrame({"k": ["a", "a", "b"], "price": [Decimal("1.50"), Decimal("2.25"), None],
                          "paid": [True, False, True],
                          "maybe": pd.array([True, None, True], dtype="boolean")})
    assert viz.aggregate(frame, "k", "price", "Sum")["sum(price)"].tolist()[0] == 3.75
    assert viz.aggregate(frame, "k", "paid", "Sum")["sum(paid)"].tolist() == [1, 1]
    assert viz.aggregate(frame, "k", "maybe", "Sum")["sum(maybe)"].tolist() == [1, 1]


def test_aggregate_explains_what_cannot_be_plotted() -> None:
    with pytest.raises(viz.NotPlottable, match="'region' is not numeric.*Count"):
        viz.aggregate(SALES, "amount", "region", "Sum")
    with pytest.raises(viz.NotPlottable, match="no column named 'nope'"):
        viz.aggregate(SALES, "nope", "amount", "Sum")
    with pytest.raises(ValueError, match="unknown aggregation"):
        viz.aggregate(SALES, "region", "amount", "Median")


# ---------------------------------------------------------------------------------------------
# figure
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "trace_type", "expected"),
    [
        ("Pie", "pie", {}),
        ("Scatter", "scatter", {"mode": "markers"}),
        ("Line", "scatter", {"mode": "lines"}),
        ("Area", "scatter", {"mode": "lines", "stackgroup": "one", "fill": "tonexty"}),
        ("Bar", "bar", {}),
    ],
)
def test_each_chart_is_its_plotly_trace(kind: str, trace_type: str, expected: dict) -> None:
    spec = _chart(SALES, kind, "region", "amount", "Sum")
    (trace,) = spec["data"]
    assert trace["type"] == trace_type
    assert {k: trace.get(k) for k in expected} == expected
    if kind == "Pie":
        assert trace["labels"] == ["east", "north", "west"] and trace["values"] == [40, 7, 5]
        assert "xaxis" not in spec["layout"]
    else:
        assert trace["x"] == ["east", "north", "west"] and trace["y"] == [40, 7, 5]
        assert spec["layout"]["xaxis"]["title"]["text"] == "region"
        assert spec["layout"]["yaxis"]["title"]["text"] == "sum(amount)"
    assert spec["layout"]["title"]["text"] == "sum(amount) by region"


def test_no_rows_or_a_non_numeric_y_is_a_sentence_not_an_exception() -> None:
    for kind in viz.KINDS[1:]:
        assert viz.figure(SALES.iloc[:0], kind, "region", "amount", "Sum") == "No rows to plot."
        message = viz.figure(SALES, kind, "amount", "region", "Avg")
        assert isinstance(message, str) and "'region' is not numeric" in message
    assert viz.view(SALES.iloc[:0], "Bar", "region", "amount", "Sum") == {"text/plain": "No rows to plot."}


def test_values_become_plain_json() -> None:
    frame = pd.DataFrame({
        "day": pd.to_datetime(["2024-01-01", None, "2024-01-03"]),
        "date": [dt.date(2024, 1, 1), None, dt.date(2024, 1, 3)],
        "v": [1.5, float("nan"), float("inf")],
        "n": pd.array([1, None, 3], dtype="Int64"),
    })
    (trace,) = _chart(frame, "Line", "day", "v", "None")["data"]
    assert trace["x"] == ["2024-01-01T00:00:00", None, "2024-01-03T00:00:00"]
    assert trace["y"] == [1.5, None, None]
    (trace,) = _chart(frame, "Bar", "date", "n", "None")["data"]
    assert trace["x"] == ["2024-01-01", None, "2024-01-03"] and trace["y"] == [1, None, 3]


def test_a_chart_carries_a_bounded_number_of_points(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(viz, "MAX_POINTS", 3)
    frame = pd.DataFrame({"i": range(10), "v": range(10)})
    spec = _chart(frame, "Scatter", "i", "v", "None")
    assert spec["data"][0]["x"] == [0, 1, 2]
    assert "the first 3 of 10 points" in spec["layout"]["title"]["text"]


def test_default_encoding_is_the_first_label_and_number() -> None:
    assert viz.default_encoding(SALES) == ("region", "amount", "Sum")  # east repeats: summed
    assert viz.default_encoding(SALES.iloc[[0, 1, 3]]) == ("region", "amount", "None")
    assert viz.default_encoding(pd.DataFrame({"i": [1, 2], "v": [3, 4]})) == ("i", "v", "None")
    assert viz.default_encoding(pd.DataFrame({"who": ["a", "b"]})) == ("who", "who", "Count")


def test_arrays_and_maps_from_spark_are_shown_not_fatal() -> None:
    import numpy as np

    # toPandas() gives ARRAY columns as numpy arrays and MAP columns as lists of pairs.
    frame = pd.DataFrame({"tags": [np.array(["a", "b"]), np.array(["c"])], "attrs": [[("k", 1)], []], "n": [1, 2]})
    shown = viz.Autoviz(frame)
    assert viz.WIDGET_MIME in shown._repr_mimebundle_()
    assert (shown.x.value, shown.y.value, shown.how.value) == ("tags", "n", "None")
    shown.kind.value = "Bar"
    (trace,) = shown.output.outputs[0]["data"][viz.PLOTLY_MIME]["data"]
    assert trace["x"] == ["['a' 'b']", "['c']"] and trace["y"] == [1, 2]
    shown.how.value = "Sum"
    assert "Cannot group by X column 'tags'" in shown.output.outputs[0]["data"]["text/plain"]


# ---------------------------------------------------------------------------------------------
# The display bundle and the widget
# ---------------------------------------------------------------------------------------------
def test_the_bundle_carries_the_widget_and_the_pandas_table() -> None:
    shown = viz.Autoviz(SALES)
    bundle = shown._repr_mimebundle_()
    assert set(bundle) == {viz.WIDGET_MIME, "text/html", "text/plain"}
    assert bundle[viz.WIDGET_MIME]["model_id"] == shown.widget.model_id
    assert bundle["text/html"] == SALES._repr_html_() and "<td>north</td>" in bundle["text/html"]
    assert bundle["text/plain"] == repr(SALES) == repr(shown)
    assert shown.frame is SALES


def test_the_table_fallback_is_bounded_as_pandas_bounds_it() -> None:
    big = pd.DataFrame({"i": range(2500)})
    html = viz.Autoviz(big)._repr_mimebundle_()["text/html"]
    assert html.count("<tr>") <= pd.get_option("display.max_rows") + 2 and "2500 rows" in html


def test_without_ipywidgets_the_table_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import ipywidgets -> ImportError
    assert set(viz.Autoviz(SALES)._repr_mimebundle_()) == {"text/html", "text/plain"}


def test_the_controls_redraw_the_view() -> None:
    shown = viz.Autoviz(SALES)
    shown.widget
    assert shown.kind.options == viz.KINDS and shown.kind.value == "Table"
    assert shown.x.options == shown.y.options == ("region", "amount")
    assert shown.how.options == viz.AGGREGATIONS and (shown.x.value, shown.y.value, shown.how.value) == (
        "region", "amount", "Sum")
    (out,) = shown.output.outputs
    assert "<td>north</td>" in out["data"]["text/html"] and shown.axes.layout.display == "none"

    shown.kind.value = "Bar"
    (out,) = shown.output.outputs
    (trace,) = out["data"][viz.PLOTLY_MIME]["data"]
    assert trace["type"] == "bar" and trace["y"] == [40, 7, 5] and shown.axes.layout.display is None
    shown.how.value = "Max"
    assert shown.output.outputs[0]["data"][viz.PLOTLY_MIME]["data"][0]["y"] == [30, 7, 5]
    shown.y.value = "region"
    assert "not numeric" in shown.output.outputs[0]["data"]["text/plain"]


def test_a_view_that_fails_says_so_in_the_view(monkeypatch: pytest.MonkeyPatch) -> None:
    shown = viz.Autoviz(SALES)
    shown.widget

    def broken(*_args: object) -> dict:
        raise RuntimeError("boom")

    monkeypatch.setattr(viz, "figure", broken)
    shown.kind.value = "Pie"  # an exception in a widget callback would show nowhere
    assert shown.output.outputs[0]["data"] == {"text/plain": "Cannot draw this Pie: RuntimeError: boom"}


def test_duplicate_column_names_get_distinct_selectors() -> None:
    frame = pd.DataFrame([[1, 2], [3, 4]], columns=["a", "a"])
    shown = viz.Autoviz(frame)
    shown.widget
    assert shown.x.options == ("a", "a (2)")
    shown.kind.value = "Line"
    assert shown.output.outputs[0]["data"][viz.PLOTLY_MIME]["data"][0]["y"] == [2, 4]


def test_a_meaningful_index_can_be_plotted_too() -> None:
    totals = SALES.groupby("region").sum()  # what a %%local cell often ends with
    shown = viz.Autoviz(totals)
    shown.widget
    assert shown.x.options == ("region", "amount") and shown.x.value == "region"
    assert viz.plot_frame(SALES).columns.tolist() == ["region", "amount"]  # %%sql results: as they are
    assert viz.plot_frame(totals.rename(columns={"amount": "region"})).columns.tolist() == ["region"]


# ---------------------------------------------------------------------------------------------
# The setting
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def setting(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(viz.AUTOVIZ_ENV, raising=False)
    yield monkeypatch
    viz.set_enabled(None)


def test_autoviz_follows_the_environment_until_set(setting: pytest.MonkeyPatch) -> None:
    assert viz.enabled() and isinstance(viz.shown(SALES), viz.Autoviz)
    setting.setenv(viz.AUTOVIZ_ENV, "0")
    assert not viz.enabled() and viz.shown(SALES) is SALES
    viz.set_enabled(True)
    assert viz.enabled()
    viz.set_enabled(None)
    assert not viz.enabled()


def test_only_pandas_frames_with_columns_are_wrapped(setting: pytest.MonkeyPatch) -> None:
    for value in (None, 3, "text", SALES["amount"], pd.DataFrame()):
        assert viz.shown(value) is value


def test_sparkbook_autoviz_magic(setting: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from sparkbook.notebook.magics import SparkbookMagics

    magics = SparkbookMagics(None)
    magics.sparkbook("autoviz off")
    assert not viz.enabled() and "plain pandas tables" in capsys.readouterr().out
    magics.sparkbook("autoviz")
    assert not viz.enabled() and "%sparkbook autoviz on" in capsys.readouterr().out
    magics.sparkbook("autoviz on")
    assert viz.enabled() and "with charts" in capsys.readouterr().out
    for bad in ("autoviz maybe", "autoviz on off", "autoviz"[:4], "charts on"):
        with pytest.raises(UsageError, match=r"usage: %sparkbook traceback .* \| %sparkbook autoviz \[on\|off\]$"):
            magics.sparkbook(bad)
    assert viz.enabled()
