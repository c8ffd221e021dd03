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
