"""The Scala and R kernels' start-up code, beside the Python kernel's (sparkbook.build.notebook).

The operator puts all three in the notebook's start-up ConfigMap, mounted where IPython reads its
start-up files, ``/etc/ipython/startup`` (IPython runs only the ``.py`` ones). The Scala and R
kernels read theirs from ``SPARKBOOK_STARTUP_DIR``, by default that same mount (``sparkbook local``
points it at its own copy), so a new operator can change what every kernel does at start without
a new image, and without touching the pod template (which would restart every notebook); without
the file, the same code built in here runs.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_ENV = "SPARKBOOK_STARTUP_DIR"
DEFAULT_DIR = "/etc/ipython/startup"  # names.NOTEBOOK_STARTUP_DIR + "/startup", where the pod mounts it
SCALA_FILE = "00-sparkbook.scala"
R_FILE = "00-sparkbook.R"

SCALA = """\
// Sparkbook Scala kernel start-up: mounted by the operator from a ConfigMap, run by every new Scala kernel.
// `spark` connects here, bounded; if Spark does not answer, this says why in one sentence and each
// later use of `spark` tries again.
lazy val spark: org.apache.spark.sql.connect.SparkSession = sparkbook.Spark.session()
import org.apache.spark.sql.functions._
import spark.implicits._
try { spark; () } catch { case e: sparkbook.SparkUnavailable => println(e.getMessage) }
"""

R = """\
# Sparkbook R kernel start-up: mounted by the operator from a ConfigMap, run by every new R kernel.
# `spark` is the pyspark session through reticulate, and the sparkbook package's spark_sql(),
# spark_table(), spark_collect() and spark_copy() are loaded.
suppressPackageStartupMessages(library(sparkbook))
spark_begin()
"""


def read(name: str, default: str) -> str:
    """The start-up file ``name`` from SPARKBOOK_STARTUP_DIR when there, else ``default``."""
    path = Path(os.environ.get(DIR_ENV) or DEFAULT_DIR) / name
    try:
        return path.read_text() if path.is_file() else default
    except OSError:
        return default
