"""The History Server's properties as the chart ships them, for tests that run the server here."""

from __future__ import annotations


def history_properties(*, log_directory: str, port: int) -> str:
    """spark-defaults style properties of a History Server over `log_directory` on `port`."""
    lines = {
        "spark.history.fs.logDirectory": log_directory,
        "spark.history.ui.port": str(port),
        "spark.history.fs.update.interval": "2s",
        "spark.history.fs.cleaner.enabled": "true",
        "spark.history.fs.cleaner.maxAge": "7d",
        "spark.history.fs.cleaner.maxNum": "1000",
    }
    return "".join(f"{k}={v}\n" for k, v in lines.items())
