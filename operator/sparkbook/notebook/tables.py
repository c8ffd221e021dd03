"""DataFrames as pandas and ``df.show()`` text as HTML tables (pure, pyspark/pandas optional)."""

from __future__ import annotations

import html
import re
from typing import Any

from sparkbook.notebook.args import PullArgs

_BORDER = re.compile(r"^\+(-+\+)+$")


def split_show_output(text: str) -> list[str | tuple[list[str], list[list[str]]]]:
    """Split printed text into plain chunks and ``df.show()`` tables (header, rows)."""
    lines = text.split("\n")
    out: list[str | tuple[list[str], list[list[str]]]] = []
    plain: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if (
            _BORDER.match(line)
            and i + 2 < len(lines)
            and lines[i + 1].startswith("|")
            and lines[i + 2].rstrip() == line
        ):
            header = [c.strip() for c in lines[i + 1].rstrip()[1:-1].split("|")]
            rows: list[list[str]] = []
            j = i + 3
            while j < len(lines) and lines[j].startswith("|"):
                rows.append([c.strip() for c in lines[j].rstrip()[1:-1].split("|")])
                j += 1
            if j < len(lines) and lines[j].rstrip() == line:
                if plain:
                    out.append("\n".join(plain))
                    plain = []
                out.append((header, rows))
                i = j + 1
                continue
        plain.append(lines[i])
        i += 1
    if plain and any(p.strip() for p in plain):
        out.append("\n".join(plain))
    return out


def table_html(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="dataframe"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'



def is_spark_dataframe(obj: Any) -> bool:
    try:
        from pyspark.sql import DataFrame
    except ImportError:  # pragma: no cover - pyspark is in the notebook image
        return False
    return isinstance(obj, DataFrame)


def is_pandas_dataframe(obj: Any) -> bool:
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover
        return False
    return isinstance(obj, pd.DataFrame)


def pull(df: Any, args: PullArgs) -> Any:
    """A Spark DataFrame as pandas: sampled (-m sample -r F) and/or limited to -n rows."""
    if args.samplemethod == "sample":
        df = df.sample(fraction=args.samplefraction)
    if args.maxrows >= 0:
        df = df.limit(args.maxrows)
    return df.toPandas()
