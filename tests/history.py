"""The History Server's properties as the chart ships them, for tests that run the server here.

tests/static/test_chart.py checks them against the chart's rendered history.conf (the default
historyServer values): only the log directory, the port and the scan interval are the test's own.
"""

from __future__ import annotations


def history_properties(*, log_directory: str, port: int) -> str:
    """spark-defaults style properties of a History Server over `log_directory` on `port`."""
    lines = {
        "spark.history.fs.logDirectory": log_directory,
        "spark.history.ui.port": str(port),
        "spark.history.fs.update.interval": "2s",  # the chart's is 10s: a test waits less
        "spark.history.retainedApplications": "50",
        "spark.history.fs.cleaner.enabled": "true",
        "spark.history.fs.cleaner.maxAge": "7d",
    }
    return "".join(f"{k}={v}\n" for k, v in lines.items())
