"""The notebook side of Sparkbook: what runs inside a Jupyter kernel.

- :mod:`sparkbook.notebook.startup` makes ``spark`` (a Spark Connect session built from
  ``SPARK_REMOTE``) when the kernel starts, prints a one-line banner, and loads the magics. The
  operator's kernel start-up file (``STARTUP_PY`` in ``sparkbook.build.notebook``) calls it.
- :mod:`sparkbook.notebook.magics` holds the sparkmagic-compatible cell magics (``%%sql``,
  ``%%spark``, ``%%local``, ``%%send_to_spark``, ``%%configure``, ``%%info``, ...).

``%load_ext sparkbook.notebook`` loads the magics by hand. Nothing here imports the operator
(kopf, kubernetes, the controller): this package ships in the notebook image.
"""

from __future__ import annotations

from typing import Any


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext sparkbook.notebook``: register the magics in this shell."""
    from sparkbook.notebook.magics import load_ipython_extension as _load

    _load(ip)
