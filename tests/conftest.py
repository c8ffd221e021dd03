"""Shared test setup: the repository root and the environment every test expects."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Spark binds to loopback only, never to whatever interface the machine has.
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


# A real Spark Connect server for the whole session (tests/spark_server.py), for any test that asks.
from tests.spark_server import pytest_runtest_makereport, spark_connect_server  # noqa: E402,F401

# tests/kind needs real containers (Docker and kind): collected only when asked for (make e2e-kind).
collect_ignore = [] if os.environ.get("SPARKBOOK_E2E") == "kind" else ["kind"]
