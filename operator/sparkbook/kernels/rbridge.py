"""The Python half of the R kernel's ``spark``: what the R package ``sparkbook`` calls through reticulate.

R drives the same pyspark Spark Connect client as the Python kernel (SparkR has no Connect client
and is deprecated since Spark 4.0; sparklyr's Connect support works this way too), with the same
connection: :class:`sparkbook.notebook.startup.Connection`, its bounded first contact and its
one-sentence failures.

Data crosses between R and Python as plain lists, one per column, each with a missing-value mask,
never as NumPy arrays: reticulate converts homogeneous Python lists to R vectors (and back) by
itself, whatever NumPy is installed (reticulate before 1.38 cannot read NumPy 2 arrays at all), and
R's NA has no single Python spelling across types.
"""

from __future__ import annotations

import datetime
from typing import Any

from sparkbook.notebook.startup import Connection, SparkUnavailableError, mask

DEFAULT_ROWS = 1000  # spark_collect's n, like %%sql's --maxrows

_connection: Connection | None = None
_announced = False


def begin() -> None:
    """Start connecting in the background (the kernel's start-up calls this)."""
    global _connection
    if _connection is None:
        _connection = Connection.from_env()
        _connection.begin()


def session() -> Any:
    """The SparkSession once it answers (bounded), else :class:`SparkUnavailableError`."""
    begin()
    assert _connection is not None
    found = _connection.retry()  # the session if connected; else waits for (or makes) a bounded attempt
    if found is None:
        raise SparkUnavailableError(mask(_connection.error or "Spark is not connected."))
    return found


def banner_once() -> str | None:
    """The start-up banner, the first time it is asked for after connecting (then None)."""
    global _announced
    if _announced or _connection is None or not _connection.ok:
        return None
    _announced = True
    return _connection.banner()[0]


# -- Spark -> R ----------------------------------------------------------------------------------
def _r_column(arrow_type: Any, values: list[Any]) -> tuple[str, list[Any], list[bool]]:
    """(R type, values with NAs replaced by a placeholder of the type, NA mask) of one column."""
    import pyarrow as pa

    na = [v is None for v in values]
    t = arrow_type
    if pa.types.is_boolean(t):
        return "logical", [bool(v) if v is not None else False for v in values], na
    if pa.types.is_integer(t):
        # R's integer is 32-bit (and -2^31 is its NA): bigint is always double, as in sparklyr, so a
        # column's R type never depends on the rows a query happened to return.
        if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_int32(t) or pa.types.is_uint8(t) or pa.types.is_uint16(t):
            return "integer", [int(v) if v is not None else 0 for v in values], na
        return "double", [float(v) if v is not None else 0.0 for v in values], na
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "double", [float(v) if v is not None else 0.0 for v in values], na
    if pa.types.is_date(t):
        return "Date", [v.isoformat() if v is not None else "1970-01-01" for v in values], na
    if pa.types.is_timestamp(t):
        def seconds(v: datetime.datetime) -> float:
            if v.tzinfo is None:  # TIMESTAMP_NTZ, or a session time zone dropped: read as UTC
                v = v.replace(tzinfo=datetime.timezone.utc)
            return v.timestamp()

        return "POSIXct", [seconds(v) if v is not None else 0.0 for v in values], na
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "character", [v if v is not None else "" for v in values], na
    # Arrays, maps, structs, binary, intervals: their text, as Spark's show() would give it.
    return "character", [str(v) if v is not None else "" for v in values], na


def collect(df: Any, n: int | float | None = DEFAULT_ROWS) -> dict[str, Any]:
    """At most ``n`` rows of a Spark DataFrame as columns for R, and whether there were more.

    ``n`` None (R's NULL or Inf) collects everything: the caller asked for it."""
    limit = None if n is None or n == float("inf") else int(n)
    table = (df.limit(limit + 1) if limit is not None else df).toArrow()
    truncated = limit is not None and table.num_rows > limit
    if truncated:
        table = table.slice(0, limit)
    columns = []
    for field, column in zip(table.schema, table.columns):
        kind, values, na = _r_column(field.type, column.to_pylist())
        columns.append({"name": field.name, "type": kind, "values": values, "na": na})
    return {"columns": columns, "rows": table.num_rows, "truncated": truncated, "limit": limit}


# -- R -> Spark ----------------------------------------------------------------------------------
def _listed(values: Any) -> list[Any]:
    """reticulate hands a length-1 R vector over as a scalar, a longer one as a list."""
    if values is None:
        return []
    return list(values) if isinstance(values, (list, tuple)) else [values]


def to_spark(columns: list[dict[str, Any]], name: str | None = None) -> Any:
    """A Spark DataFrame of R's columns (see the R package's spark_copy); registered as the temporary
    view ``name`` when given."""
    import pyarrow as pa

    arrays, names = [], []
    for col in _listed(columns):
        kind = col["type"]
        values = _listed(col["values"])
        na = [bool(x) for x in _listed(col["na"])]
        if len(na) != len(values):
            raise ValueError(f"column {col['name']!r}: {len(values)} values but {len(na)} NA flags")
        present = [None if missing else v for v, missing in zip(values, na)]
        if kind == "integer":
            arr = pa.array([None if v is None else int(v) for v in present], pa.int32())
        elif kind == "double":
            arr = pa.array([None if v is None else float(v) for v in present], pa.float64())
        elif kind == "logical":
            arr = pa.array([None if v is None else bool(v) for v in present], pa.bool_())
        elif kind == "Date":
            arr = pa.array([None if v is None else datetime.date.fromisoformat(v) for v in present], pa.date32())
        elif kind == "POSIXct":
            arr = pa.array([None if v is None else int(round(float(v) * 1_000_000)) for v in present],
                           pa.timestamp("us", tz="UTC"))
        elif kind == "character":
            arr = pa.array([None if v is None else str(v) for v in present], pa.string())
        else:
            raise ValueError(f"column {col['name']!r}: no Spark type for R's {kind!r}")
        arrays.append(arr)
        names.append(str(col["name"]))
    df = session().createDataFrame(pa.table(arrays, names=names))
    if name:
        df.createOrReplaceTempView(name)
    return df
