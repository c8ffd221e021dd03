"""Spark errors shown short: ``<ErrorClass>: <message>``, without the JVM stack trace.

This applies to every cell, not only the magics: a pyspark exception escaping a plain cell is
shown as its error class, the one useful message line (which holds Spark's "Did you mean one of
the following?" suggestion) and the user's own frames. The full traceback, and pyspark's JSON
log record of the error, are one setting away: ``SPARKBOOK_FULL_TRACEBACKS=1`` in the kernel's
environment, or ``%sparkbook traceback full`` (``short`` turns it back) in the notebook.
"""

from __future__ import annotations

import contextlib
import linecache
import os
import re
import sys
import traceback
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


FULL_TRACEBACKS_ENV = "SPARKBOOK_FULL_TRACEBACKS"
_full_override: bool | None = None  # set by %sparkbook traceback full|short


def full_tracebacks() -> bool:
    """Whether Spark errors are shown in full (the setting, else the environment variable)."""
    if _full_override is not None:
        return _full_override
    return os.environ.get(FULL_TRACEBACKS_ENV, "").strip().lower() in ("1", "true", "yes", "on", "full")


def set_full_tracebacks(full: bool | None) -> None:
    """``%sparkbook traceback full|short``; None goes back to the environment variable."""
    global _full_override
    _full_override = full
    quiet_query_context_logs(not full_tracebacks())


def _query_context_loggers() -> list[Any]:
    try:
        from pyspark.logger import PySparkLogger
    except ImportError:  # pragma: no cover
        return []
    return [PySparkLogger.getLogger(n) for n in QUERY_CONTEXT_LOGGERS]


def quiet_query_context_logs(quiet: bool) -> None:
    """Silence (or restore) pyspark's JSON log record of each error with a query context."""
    for lg in _query_context_loggers():
        lg.disabled = quiet


@contextlib.contextmanager
def spark_errors() -> Iterator[None]:
    """Spark calls made by a magic: pyspark errors become short :class:`SparkbookError` s."""
    __tracebackhide__ = True
    full = full_tracebacks()
    loggers = [] if full else _query_context_loggers()
    saved = [lg.disabled for lg in loggers]
    for lg in loggers:
        lg.disabled = True
    try:
        yield
    except Exception as exc:
        if _is_spark_exception(exc):
            short = spark_error(exc)
            if full and not isinstance(short, startup.SparkUnavailableError):
                raise
            raise short from None
        raise
    finally:
        for lg, was in zip(loggers, saved):
            lg.disabled = was


def spark_exception_types() -> tuple[type[BaseException], ...]:
    try:
        from pyspark.errors import PySparkException
    except ImportError:  # pragma: no cover
        return ()
    return (PySparkException,)


def _library_dirs() -> tuple[str, ...]:
    """Where frames that are not the user's own come from."""
    dirs = [os.path.dirname(os.path.abspath(__file__)) + os.sep]
    for name in ("pyspark", "grpc", "IPython", "ipykernel", "pandas", "pyarrow"):
        mod = sys.modules.get(name)
        path = getattr(mod, "__file__", None)
        if path:
            dirs.append(os.path.dirname(os.path.abspath(path)) + os.sep)
    return tuple(dirs)


def user_frames(shell: Any, tb: Any, *, limit: int = 3) -> list[str]:
    """The traceback's frames in the user's cells and modules, IPython-style (``Cell In[3], line 1``)."""
    skip = _library_dirs()
    names = getattr(getattr(shell, "compile", None), "format_code_name", None)
    out: list[str] = []
    for frame, lineno in traceback.walk_tb(tb):
        filename = frame.f_code.co_filename
        if frame.f_locals.get("__tracebackhide__") or os.path.abspath(filename).startswith(skip):
            continue
        cell = names(filename) if names is not None else None
        where = f"{cell[0]} {cell[1]}, line {lineno}" if cell else f'File "{filename}", line {lineno}'
        if frame.f_code.co_name != "<module>":
            where += f", in {frame.f_code.co_name}"
        source = linecache.getline(filename, lineno).strip()
        out.append(where + (f"\n    {source}" if source else ""))
    return out[-limit:]


def _short_error_handler(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> None:
    """IPython custom exception handler: ``Label: message``, no traceback, cell marked failed."""
    label = getattr(value, "label", None) or etype.__name__
    message = mask(str(value))
    stb = [f"\x1b[0;31m{label}\x1b[0m: {message}"]
    shown = type(re.sub(r"\W", "", label) or "SparkbookError", (Exception,), {})
    shell._showtraceback(shown, message, stb)
    return None


def _spark_exception_handler(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> None:
    """A pyspark exception from any cell: short (class, message, the user's frames) unless full."""
    if isinstance(value, SparkbookError):
        return _short_error_handler(shell, etype, value, tb, tb_offset)
    if full_tracebacks():
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        return None
    short = spark_error(value)
    label = getattr(short, "label", None) or type(short).__name__
    message = mask(str(short))
    stb = [f"\x1b[0;31m{label}\x1b[0m: {message}"]
    stb.extend(mask(f) for f in user_frames(shell, tb))
    stb.append(f"(full traceback: %sparkbook traceback full, or {FULL_TRACEBACKS_ENV}=1)")
    shown = type(re.sub(r"\W", "", label) or "SparkError", (Exception,), {})
    shell._showtraceback(shown, message, stb)
    return None


def install(shell: Any) -> None:
    """Short errors in every cell: SparkbookError and pyspark's exceptions (unless another
    extension already owns IPython's custom exception handler)."""
    custom = tuple(getattr(shell, "custom_exceptions", ()) or ())
    ours = (SparkbookError, *spark_exception_types())
    if not custom or custom == (SparkbookError,) or custom == ours:
        shell.set_custom_exc(ours, _spark_exception_handler)
    quiet_query_context_logs(not full_tracebacks())
