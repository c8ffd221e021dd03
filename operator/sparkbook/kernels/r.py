"""The R kernel: IRkernel (Debian's package) with Sparkbook's R package, whose start-up binds
``spark`` to the pyspark Spark Connect client through reticulate (see rbridge.py and
``r/sparkbook/R/spark.R``)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).with_name("r") / "sparkbook"


def r_binary() -> str:
    found = shutil.which("R")
    if not found:
        raise RuntimeError("the R kernel needs R with IRkernel, reticulate and ggplot2 (scripts/ensure-r.sh installs Debian's)")
    return found


def ready() -> str | None:
    """None when R and the packages the kernel needs are here, else what is missing."""
    if not shutil.which("R"):
        return "R is not installed"
    check = "for (p in c('IRkernel', 'reticulate')) if (!requireNamespace(p, quietly = TRUE)) { cat(p); quit(status = 1) }"
    out = subprocess.run([r_binary(), "--slave", "-e", check], capture_output=True, text=True, check=False)
    return None if out.returncode == 0 else f"R has no {out.stdout.strip() or 'IRkernel or reticulate'} package"


def install_package(library: Path) -> None:
    """Install the R package from source into ``library``, unless this very source is there."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes())
    stamp = library / ".sparkbook.sha256"
    if (library / "sparkbook").is_dir() and stamp.exists() and stamp.read_text().strip() == digest.hexdigest():
        return
    library.mkdir(parents=True, exist_ok=True)
    subprocess.run([r_binary(), "CMD", "INSTALL", "--no-test-load", f"--library={library}", str(PACKAGE)],
                   check=True, stdout=subprocess.DEVNULL)
    stamp.write_text(digest.hexdigest() + "\n")


def kernel_spec(library: Path) -> dict[str, Any]:
    return {
        "argv": [r_binary(), "--no-save", "--no-restore", "--slave", "-e", "sparkbook:::kernel_main()",
                 "--args", "{connection_file}"],
        "display_name": "R (Spark)",
        "language": "R",
        "interrupt_mode": "signal",
        # reticulate uses this Python: the one with pyspark and sparkbook.kernels.rbridge.
        "env": {"R_LIBS": str(library), "RETICULATE_PYTHON": sys.executable},
    }


def logos() -> list[Path]:
    """IRkernel's logos, for the launcher."""
    out = subprocess.run([r_binary(), "--slave", "-e", "cat(system.file('kernelspec', package = 'IRkernel'))"],
                         capture_output=True, text=True, check=False)
    where = Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None
    return sorted(where.glob("logo-*")) if where else []
