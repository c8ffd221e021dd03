"""Sparkbook's Scala and R kernels, beside the Python one (ipykernel with sparkbook.notebook).

``sparkbook kernels install`` (``make kernels``; the notebook image runs it too) writes their
kernel specs under ``<prefix>/share/jupyter/kernels``: ``scala`` (sparkbook.kernels.scala) and
``ir`` (IRkernel with the R package in r/sparkbook), the names Almond and IRkernel use, so
notebooks written for those open with these.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

KERNELS = ("scala", "r")
NAMES = {"scala": "scala", "r": "ir"}


def kernels_dir(prefix: str | Path) -> Path:
    return Path(prefix) / "share" / "jupyter" / "kernels"


def missing() -> dict[str, str]:
    """The kernels this machine cannot run, and why."""
    from sparkbook.kernels import r, scala

    found = {"scala": scala.ready(), "r": r.ready()}
    return {k: why for k, why in found.items() if why}


def install(which: tuple[str, ...] = KERNELS, *, prefix: str | Path = sys.prefix) -> list[Path]:
    """Install the kernel specs; the directories written."""
    written = []
    for kernel in which:
        dest = kernels_dir(prefix) / NAMES[kernel]
        dest.mkdir(parents=True, exist_ok=True)
        if kernel == "scala":
            from sparkbook.kernels import scala

            jar = scala.build_jar(dest / scala.JAR_NAME)
            (dest / "log4j2.properties").write_text(scala.LOG4J)
            scala.build_archive(jar)
            spec = scala.kernel_spec(jar)
        elif kernel == "r":
            from sparkbook.kernels import r

            library = Path(prefix) / "share" / "sparkbook" / "R-library"
            r.install_package(library)
            spec = r.kernel_spec(library)
            for logo in r.logos():
                shutil.copy(logo, dest / logo.name)
        else:
            raise ValueError(f"no kernel {kernel!r}: {', '.join(KERNELS)}")
        (dest / "kernel.json").write_text(json.dumps(spec, indent=1) + "\n")
        written.append(dest)
    return written
