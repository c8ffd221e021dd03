"""What the notebook's Spark progress display and job naming cost a cell.

    python bench/progress.py [--cells N] [--rounds R]

A real Spark Connect server (the driver pod's command, localized as in the tests) and a real
kernel with the pod's start-up file (nbclient). The same short Spark job (a count over 4
partitions) runs with progress on and off, and a cell without Spark runs with and without its
job-name RPC, interleaved cell by cell so that drift on a shared machine falls on both sides of
each pair. Prints medians and 90th percentiles of cell time (the kernel's own execute_input /
execute_reply timestamps), the median paired difference, and what was asked of Spark: REST
requests per Spark cell, config RPCs per named cell.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nbclient import NotebookClient  # noqa: E402
from nbformat.v4 import new_code_cell, new_notebook  # noqa: E402

from sparkbook import names  # noqa: E402
from sparkbook.build.launch import (  # noqa: E402
    connect_server_command,
    connect_url,
    local_server_environment,
    loopback_conf,
    parse_connect_server_command,
)
from sparkbook.build.notebook import STARTUP_FILE, STARTUP_PY  # noqa: E402
from sparkbook.local import spark_home  # noqa: E402
from tests.spark_server import driver_container  # noqa: E402

HOST = "127.9.250.1"
SPARK_CELL = "spark.range(0, 4000, 1, 4).selectExpr('id % 10 AS k').groupBy('k').count().count()"
PLAIN_CELL = "x = sum(range(1000))"


def _listening(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def start_spark(work: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    token = secrets.token_urlsafe(24)
    pod_conf, app_name = parse_connect_server_command(driver_container()["command"])
    conf = loopback_conf(pod_conf, master="local[2]", connect_port=names.CONNECT_PORT, ui_port=names.UI_PORT,
                         warehouse_dir=str(work / "warehouse"), host=HOST)
    home = spark_home()
    (work / "conf").mkdir()
    env = local_server_environment(os.environ, spark_home=home, host=HOST, conf_dir=str(work / "conf"), token=token)
    log = (work / "server.log").open("wb")
    proc = subprocess.Popen(connect_server_command(conf=conf, spark_home=home, app_name=app_name), env=env, cwd=work,
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while not _listening(names.CONNECT_PORT):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"Spark Connect server did not start; see {work / 'server.log'}")
        time.sleep(0.2)
    return proc, connect_url(host=HOST, port=names.CONNECT_PORT, token=token), f"http://{HOST}:{names.UI_PORT}"


def kernel_env(work: Path, remote: str, ui: str) -> dict[str, str]:
    startup = work / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / STARTUP_FILE).write_text(STARTUP_PY)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_", "SPARKBOOK_", "JUPYTER"))}
    env.update(SPARK_REMOTE=remote, SPARKBOOK_SPARK_SESSION="bench", SPARKBOOK_SPARK_UI=ui,
               SPARKBOOK_SPARK_UI_LINK=f"{ui}/jobs/", IPYTHONDIR=str(work / "ipython"), MPLBACKEND="Agg",
               JUPYTER_PLATFORM_DIRS="1", JUPYTER_RUNTIME_DIR=str(work / "runtime"),
               JPY_SESSION_NAME=str(work / "bench.ipynb"))
    return env


def seconds(cell: dict) -> float:
    timing = cell["metadata"]["execution"]
    start = datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
    return (end - start).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=10, help="cells of each kind per block")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sparkbook-bench-progress-"))
    proc, remote, ui = start_spark(work)
    try:
        # Interleaved cell by cell, so that a noisy neighbour falls on both sides of each pair.
        rest = "get_ipython()._sparkbook_namer.resting_until = float('inf')"
        unrest = "get_ipython()._sparkbook_namer.resting_until = 0.0"
        cells: list[tuple[str, str]] = [("warm", "spark.range(10).count()"), ("warm", SPARK_CELL)]
        for _ in range(args.rounds * args.cells):
            cells += [("switch", "%sparkbook progress on"), ("spark|progress on", SPARK_CELL),
                      ("switch", "%sparkbook progress off"), ("spark|progress off", SPARK_CELL),
                      ("plain|named", PLAIN_CELL), ("switch", rest), ("plain|unnamed", PLAIN_CELL),
                      ("switch", unrest)]
        cells.append(("count", "%%local\np = get_ipython()._sparkbook_progress; n = get_ipython()._sparkbook_namer\n"
                               "print(p.requests, n.calls)"))
        nb = new_notebook(cells=[new_code_cell(src) for _, src in cells],
                          metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
        NotebookClient(nb, kernel_name="python3", timeout=300, startup_timeout=60).execute(
            env=kernel_env(work, remote, ui))
        times: dict[str, list[float]] = {}
        for (kind, _), cell in zip(cells, nb.cells):
            if "|" in kind:
                times.setdefault(kind, []).append(seconds(cell))
        requests, calls = (int(v) for v in "".join(o.get("text", "") for o in nb.cells[-1].outputs).split())
        # Named: every cell but %%local / %sparkbook ones and the two that run while naming rests.
        named = sum(1 for kind, src in cells if not src.startswith("%") and kind != "plain|unnamed" and src != unrest)
        n = args.rounds * args.cells
        print(f"{n} pairs of each kind, interleaved; Spark job: {SPARK_CELL}")
        print(f"{'cell':<22}{'median ms':>10}{'p90 ms':>9}")
        for key in ("spark|progress on", "spark|progress off", "plain|named", "plain|unnamed"):
            values = sorted(times[key])
            print(f"{key:<22}{statistics.median(values) * 1000:>10.1f}{values[int(0.9 * (len(values) - 1))] * 1000:>9.1f}")
        pairs = [a - b for a, b in zip(times["spark|progress on"], times["spark|progress off"])]
        print(f"progress on - off, per Spark cell (median of pairs): {statistics.median(pairs) * 1000:+.1f} ms; "
              f"ratio of medians {statistics.median(times['spark|progress on']) / statistics.median(times['spark|progress off']):.2f}")
        pairs = [a - b for a, b in zip(times["plain|named"], times["plain|unnamed"])]
        print(f"named - unnamed, per plain cell (median of pairs): {statistics.median(pairs) * 1000:+.1f} ms")
        print(f"REST requests per Spark cell with progress on: {requests / n:.2f}; "
              f"config RPCs per named cell: {calls / named:.2f}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
