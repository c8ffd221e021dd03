"""sparkmagic's "autoviz" for ``%%sql`` results: a Table view and Pie, Scatter, Line, Area and Bar
charts, with X and Y column selectors and a Y aggregation (None, Avg, Min, Max, Sum, Count).

Why not sparkmagic's own ``autovizwidget`` (0.23.0, checked with ipywidgets 8.1, plotly 7.1,
pandas 2.3, JupyterLab 4.6): it still imports and draws, but on APIs that are going away or no
longer do what it asks. It wires its controls with ``on_trait_change`` (deprecated since
traitlets 4.1) and passes ``orientation=`` and ``width=``/``height=`` keywords that ipywidgets 8
no longer has (ignored, with a traitlets warning that they will become errors). Every chart goes
through ``plotly.offline.init_notebook_mode`` and ``iplot``, which put all of plotly.js (4.9 MB)
into the widget's output each time a view is drawn, the Table view included. It shows its
controls with side-effect ``display()`` calls and returns an empty box, so a notebook run without
a front end (nbconvert, nbclient) keeps no table at all, only ``VBox(...)`` as text. And through
hdijupyterutils it pulls in the classic ``notebook`` and the ``jupyter`` meta-package.

So the same experience is built here on maintained pieces: core ipywidgets 8 controls, and
charts as plain plotly figure specs shown with the ``application/vnd.plotly.v1+json`` mime type,
which JupyterLab 4 renders with the extension that ships in the ``plotly`` wheel (no plotly.js in
the notebook, no ``plotly`` import in the kernel). The core is pure and tested on its own:
:func:`aggregate`, :func:`figure` and :func:`view` take a pandas frame and return data; the
:class:`Autoviz` object only wires the controls to them. What a %%sql cell returns is an
:class:`Autoviz`: its display bundle carries the widget *and* the pandas HTML table and text, so a
front end without widgets still shows the table. ``.frame`` is the pandas frame itself.

A ``%%local`` cell whose last value is a pandas frame shows the same widget, as in sparkmagic, where
autoviz is how the local side displays pandas frames; ``%%spark -o VAR`` only says how many rows it
copied (sparkmagic shows nothing there either: the frame is seen when a ``%%local`` cell shows it).
``SPARKBOOK_AUTOVIZ=0`` in the kernel's environment, or ``%sparkbook autoviz off``, shows plain
pandas frames instead (``on`` brings the widget back).
"""

from __future__ import annotations

import datetime as dt
import math
import numbers
import os
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

KINDS = ("Table", "Pie", "Scatter", "Line", "Area", "Bar")
AGGREGATIONS = ("None", "Avg", "Min", "Max", "Sum", "Count")
# Points a chart carries at most (after aggregation): more make a notebook heavy and slow to draw.
MAX_POINTS = 10_000
PLOTLY_MIME = "application/vnd.plotly.v1+json"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"

AUTOVIZ_ENV = "SPARKBOOK_AUTOVIZ"
_override: bool | None = None  # set by %sparkbook autoviz on|off


class NotPlottable(ValueError):
    """The chosen columns cannot be drawn; the message says why, for the user."""


# --------------------------------------------------------------------------------------------
# The setting
# --------------------------------------------------------------------------------------------
def enabled() -> bool:
    """Whether results show as the widget (the setting, else the environment variable; on by default)."""
    if _override is not None:
        return _override
    return os.environ.get(AUTOVIZ_ENV, "").strip().lower() not in ("0", "false", "no", "off")


def set_enabled(on: bool | None) -> None:
    """``%sparkbook autoviz on|off``; None goes back to the environment variable."""
    global _override
    _override = on


def status() -> str:
    if enabled():
        return "%%sql and %%local pandas results show as a table with charts (%sparkbook autoviz off: plain tables)."
    return "%%sql and %%local pandas results show as plain pandas tables (%sparkbook autoviz on: with charts)."


def shown(value: Any) -> Any:
    """What a cell shows for ``value``: a pandas frame as :class:`Autoviz` when that is on."""
    if enabled() and _is_pandas_frame(value) and len(value.columns) > 0:
        return Autoviz(value)
    return value


def _is_pandas_frame(value: Any) -> bool:
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas comes with the kernel's pyspark
        return False
    return isinstance(value, pd.DataFrame)


# --------------------------------------------------------------------------------------------
# The pure core
# --------------------------------------------------------------------------------------------
def unique_names(columns: Any) -> list[str]:
    """Column labels as distinct strings: Spark allows ``SELECT a, a``, a selector cannot."""
    names: list[str] = []
    seen: set[str] = set()
    for column in columns:
        base = name = str(column)
        n = 2
        while name in seen:
            name = f"{base} ({n})"
            n += 1
        seen.add(name)
        names.append(name)
    return names


def numeric(series: pd.Series) -> pd.Series | None:
    """``series`` as numbers, or None when it is not numeric. Spark decimals arrive as Python
    ``Decimal`` objects (an object column) and count as numbers; booleans count as 0/1."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return series.astype("float64")  # a nullable boolean's NA becomes NaN
    if pd.api.types.is_numeric_dtype(series):
        return series
    if series.dtype == object:
        missing = series.isna().tolist()
        values = [v for v, m in zip(series.tolist(), missing) if not m]
        if values and all(isinstance(v, numbers.Number) for v in values):
            floats = [math.nan if m else float(v) for v, m in zip(series.tolist(), missing)]
            return pd.Series(floats, index=series.index, dtype=float, name=series.name)
    return None


def default_encoding(frame: pd.DataFrame) -> tuple[str, str, str]:
    """(x, y, how) a chart starts with: X the first non-numeric column (else the first), Y the first
    other numeric column, summed when X repeats; with nothing numeric to plot, Count."""
    names = unique_names(frame.columns)
    kinds = [numeric(frame.iloc[:, i]) is not None for i in range(len(names))]
    x = next((n for n, is_num in zip(names, kinds) if not is_num), names[0])
    y = next((n for n, is_num in zip(names, kinds) if is_num and n != x), None)
    if y is None:
        return x, next((n for n in names if n != x), x), "Count"
    try:
        repeats = bool(frame.iloc[:, names.index(x)].duplicated().any())
    except TypeError:  # arrays or maps (Spark ARRAY, MAP columns) cannot be compared
        repeats = False
    return x, y, "Sum" if repeats else "None"


def y_label(y: str, how: str) -> str:
    """The Y axis title, as Spark SQL names the aggregate: ``sum(n)``."""
    return y if how == "None" else f"{how.lower()}({y})"


def aggregate(frame: pd.DataFrame, x: str, y: str, how: str) -> pd.DataFrame:
    """Two columns, X and the Y values to plot: Y as it is (None), or Avg/Min/Max/Sum/Count of Y
    per distinct X (in X order). Raises :class:`NotPlottable` with a sentence for the user."""
    import pandas as pd

    if how not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {how!r}: one of {', '.join(AGGREGATIONS)}")
    for column in (x, y):
        if column not in frame.columns:
            raise NotPlottable(f"There is no column named {column!r}.")
    xs = _column(frame, x)
    ys = _column(frame, y)
    if how != "Count":
        values = numeric(ys)
        if values is None:
            raise NotPlottable(
                f"Y column {y!r} is not numeric ({ys.dtype}): choose a numeric Y, or Count to count its values."
            )
        ys = values
    label = y_label(y, how)
    if how == "None":
        out = pd.DataFrame({0: xs.to_numpy(), 1: ys.to_numpy()})
    else:
        grouped = pd.DataFrame({0: xs.to_numpy(), 1: ys.to_numpy()})

        def agg(sort: bool) -> pd.Series:
            groups = grouped.groupby(0, sort=sort, dropna=False)[1]
            if how == "Sum":
                return groups.sum(min_count=1)  # as in SQL, the sum of only nulls is null, not 0
            return getattr(groups, {"Avg": "mean", "Min": "min", "Max": "max", "Count": "count"}[how])()

        try:
            try:
                result = agg(sort=True)
            except TypeError:  # X values of mixed types cannot be ordered: keep first-seen order
                result = agg(sort=False)
        except TypeError as exc:  # e.g. arrays in X, which cannot be grouped
            raise NotPlottable(f"Cannot group by X column {x!r}: {exc}.") from None
        out = result.reset_index()
    out.columns = [x, label]
    return out


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    picked = frame[name]
    return picked.iloc[:, 0] if picked.ndim == 2 else picked  # a duplicated label: its first column


def jsonable(value: Any) -> Any:
    """A (non-missing) cell value as JSON for the front end: NaN and infinities become null, dates
    ISO strings, decimals floats, anything else unusual its text."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, (numbers.Real, Decimal)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value)


def _values(series: pd.Series) -> list[Any]:
    """A column as JSON values; missing ones (None, NaN, NaT, NA) as null."""
    return [None if m else jsonable(v) for v, m in zip(series.tolist(), series.isna().tolist())]


def figure(frame: pd.DataFrame, kind: str, x: str, y: str, how: str) -> dict[str, Any] | str:
    """The plotly figure spec (``{"data", "layout", "config"}``) for a chart of ``kind``, or the
    sentence that says why there is none (no rows, a non-numeric Y, ...)."""
    if kind not in KINDS or kind == "Table":
        raise ValueError(f"unknown chart {kind!r}: one of {', '.join(KINDS[1:])}")
    if len(frame) == 0:
        return "No rows to plot."
    try:
        points = aggregate(frame, x, y, how)
    except NotPlottable as exc:
        return str(exc)
    label = y_label(y, how)
    title = f"{label} by {x}"
    if len(points) > MAX_POINTS:
        title += f" (the first {MAX_POINTS:,} of {len(points):,} points)"
        points = points.head(MAX_POINTS)
    xs, ys = _values(points.iloc[:, 0]), _values(points.iloc[:, 1])
    layout: dict[str, Any] = {"title": {"text": title}, "height": 420, "margin": {"t": 48, "b": 48}}
    if kind == "Pie":
        trace: dict[str, Any] = {"type": "pie", "labels": xs, "values": ys, "sort": False}
    else:
        trace = {"type": "bar" if kind == "Bar" else "scatter", "x": xs, "y": ys, "name": label}
        if kind == "Scatter":
            trace["mode"] = "markers"
        elif kind in ("Line", "Area"):
            trace["mode"] = "lines"
        if kind == "Area":
            trace.update(stackgroup="one", fill="tonexty")
        layout["xaxis"] = {"title": {"text": x}}
        layout["yaxis"] = {"title": {"text": label}}
    return {"data": [trace], "layout": layout, "config": {"displaylogo": False}}


def plot_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame the selectors offer: a meaningful index (``df.groupby("region").sum()`` in a
    %%local cell) becomes columns too, and every column gets a distinct name."""
    import pandas as pd

    plot = frame
    if not (isinstance(frame.index, pd.RangeIndex) and frame.index.name is None):
        try:
            plot = frame.reset_index()
        except ValueError:  # an index level named like a column: the columns alone
            plot = frame
    plot = plot.copy(deep=False)
    plot.columns = unique_names(plot.columns)
    return plot


def frame_html(frame: pd.DataFrame) -> str:
    """The HTML table pandas shows for ``frame`` (its display.max_rows bounds the rows)."""
    import pandas as pd

    shown = frame._repr_html_()
    if shown is None:  # display.notebook_repr_html is off
        shown = frame.to_html(max_rows=pd.get_option("display.max_rows"), show_dimensions=True)
    return shown


def view(frame: pd.DataFrame, kind: str, x: str, y: str, how: str) -> dict[str, Any]:
    """The display bundle for one view: the HTML table, a plotly figure, or why there is none."""
    if kind == "Table":
        return {"text/html": frame_html(frame), "text/plain": repr(frame)}
    spec = figure(frame, kind, x, y, how)
    if isinstance(spec, str):
        return {"text/plain": spec}
    return {PLOTLY_MIME: spec, "text/plain": f"{kind} chart: {spec['layout']['title']['text']}"}


# --------------------------------------------------------------------------------------------
# The widget
# --------------------------------------------------------------------------------------------
class Autoviz:
    """A result shown as the table-and-charts widget; ``.frame`` is the pandas frame.

    The widget is made when the result is first displayed. Its bundle also carries the pandas
    HTML table and text, which front ends without widgets (nbconvert, consoles) show instead.
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._plot = plot_frame(frame)
        self._widget: Any = None

    def __repr__(self) -> str:
        return repr(self.frame)

    @property
    def widget(self) -> Any:
        """The ipywidgets box: chart buttons, X / Y / Y aggregation selectors, the view."""
        if self._widget is None:
            self._widget = self._build()
        return self._widget

    def _build(self) -> Any:
        import ipywidgets as w

        names = list(self._plot.columns)
        x, y, how = default_encoding(self._plot)
        self.kind = w.ToggleButtons(options=KINDS, value="Table", tooltips=[f"{k} view" for k in KINDS],
                                    style={"button_width": "72px"})
        compact = {"style": {"description_width": "initial"}, "layout": {"width": "auto", "margin": "2px 16px 2px 4px"}}
        self.x = w.Dropdown(options=names, value=x, description="X", **compact)
        self.y = w.Dropdown(options=names, value=y, description="Y", **compact)
        self.how = w.Dropdown(options=AGGREGATIONS, value=how, description="Y aggregation", **compact)
        self.axes = w.HBox([self.x, self.y, self.how])
        self.output = w.Output()
        for control in (self.kind, self.x, self.y, self.how):
            control.observe(self._redraw, names="value")
        self._redraw()
        return w.VBox([self.kind, self.axes, self.output])

    def _redraw(self, _change: Any = None) -> None:
        self.axes.layout.display = "none" if self.kind.value == "Table" else None
        kind = self.kind.value
        # The table with the frame's own column names; charts by the selectors' distinct ones.
        try:
            bundle = view(self.frame if kind == "Table" else self._plot, kind, self.x.value, self.y.value, self.how.value)
        except Exception as exc:  # noqa: BLE001 - a callback's error would show nowhere; say it in the view
            bundle = {"text/plain": f"Cannot draw this {kind}: {type(exc).__name__}: {exc}"}
        # Set from the kernel rather than captured with `with output:`, so the view is in the
        # widget's state even with no front end listening (nbclient, a saved notebook).
        self.output.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        data = {"text/plain": repr(self.frame), "text/html": frame_html(self.frame)}
        try:
            widget = self.widget
        except ImportError:  # no ipywidgets in this kernel: the table alone
            return data
        data[WIDGET_MIME] = widget._repr_mimebundle_()[WIDGET_MIME]
        return data
