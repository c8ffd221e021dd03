"""Spark errors shown short: ``<ErrorClass>: <message>``, without the JVM stack trace."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from typing import Any

from sparkbook.notebook import startup
from sparkbook.notebook.startup import SparkbookError, mask


class SparkError(SparkbookError):
    """A Spark error, reduced to its error class and first message line."""

    def __init__(self, label: str, message: str) -> None:
        super().__init__(message)
        self.label = label


def spark_error(exc: BaseException) -> SparkbookError:
    """The short form of a pyspark error: ``AnalysisException: [CLASS] message``."""
    rpc = startup._grpc_error(exc)
    code = getattr(getattr(rpc, "code", lambda: None)(), "name", None) if rpc is not None else None
    if code in ("UNAVAILABLE", "UNAUTHENTICATED"):
        conn = startup.current_connection()
        where = conn.where if conn is not None else startup.endpoint(os.environ.get(startup.REMOTE_ENV, "sc://"))
        return startup.SparkUnavailableError(
            startup.describe_failure(exc, where=where, session=startup.session_name())
        )
    text = str(exc).strip()
    text = text.split("\nJVM stacktrace:", 1)[0]
    first = text.splitlines()[0].strip() if text else type(exc).__name__
    if len(first) > 600:
        first = first[:600] + "..."
    return SparkError(type(exc).__name__, mask(first))


def _is_spark_exception(exc: BaseException) -> bool:
    try:
        from pyspark.errors import PySparkException
    except ImportError:  # pragma: no cover
        return False
    return isinstance(exc, PySparkException)


# pyspark logs every SQL error with a query context as a JSON line, JVM stack trace included, on
# stderr; inside the magics the short error says it all.
QUERY_CONTEXT_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")


@contextlib.contextmanager
def spark_errors() -> Iterator[None]:
    """Spark calls made by a magic: pyspark errors become short :class:`SparkbookError` s."""
    __tracebackhide__ = True
    try:
        from pyspark.logger import PySparkLogger

        loggers = [PySparkLogger.getLogger(n) for n in QUERY_CONTEXT_LOGGERS]
    except ImportError:  # pragma: no cover
        loggers = []
    saved = [lg.disabled for lg in loggers]
    for lg in loggers:
        lg.disabled = True
    try:
        yield
    except Exception as exc:
        if _is_spark_exception(exc):
            raise spark_error(exc) from None
        raise
    finally:
        for lg, was in zip(loggers, saved):
            lg.disabled = was


def _short_error_handler(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> None:
    """IPython custom exception handler: ``Label: message``, no traceback, cell marked failed."""
    label = getattr(value, "label", None) or etype.__name__
    message = mask(str(value))
    stb = [f"\x1b[0;31m{label}\x1b[0m: {message}"]
    shown = type(re.sub(r"\W", "", label) or "SparkbookError", (Exception,), {})
    shell._showtraceback(shown, message, stb)
    return None
