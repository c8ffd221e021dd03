"""What the notebook's Spark progress display and job naming cost a cell.

    python bench/progress.py [--cells N] [--rounds R]

A real Spark Connect server (the driver pod's command, localized as in the tests) and a real
kernel with the pod's start-up file (nbclient). The same short Spark job (a count over 4
partitions) and a cell without Spark run in rounds, each round once with progress on and once
off, so that drift on a shared machine falls on both alike; then the same with job naming
rested. Prints each block's median and 90th-percentile cell time (from the kernel's own
execute_input / execute_reply timestamps) and what was asked of Spark: REST requests per cell
with Spark work, config RPCs (job names) per cell.
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
        cells: list[tuple[str, str]] = [("warm", "spark.range(10).count()"), ("warm", SPARK_CELL)]
        # A %%local cell is never named, so reading the counters adds nothing to them.
        counters = "%%local\np = get_ipython()._sparkbook_progress; n = get_ipython()._sparkbook_namer\n" \
                   "print(p.requests, n.calls)"
        for _ in range(args.rounds):
            for block, setup in (("progress on", "%sparkbook progress on"), ("progress off", "%sparkbook progress off"),
                                 ("off, unnamed", "get_ipython()._sparkbook_namer.resting_until = float('inf')"),
                                 ("named again", "get_ipython()._sparkbook_namer.resting_until = 0.0\n"
                                                 "%sparkbook progress on")):
                cells.append(("setup", setup))
                cells.append(("count", counters))
                cells += [(f"{block}|spark", SPARK_CELL)] * args.cells
                cells += [(f"{block}|plain", PLAIN_CELL)] * args.cells
                cells.append(("count", counters))
            cells.append(("setup", "%sparkbook progress on"))
        nb = new_notebook(cells=[new_code_cell(src) for _, src in cells],
                          metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
        NotebookClient(nb, kernel_name="python3", timeout=300, startup_timeout=60).execute(
            env=kernel_env(work, remote, ui))
        times: dict[str, list[float]] = {}
        asked: dict[str, list[tuple[int, int]]] = {}
        block = None  # the block whose cells ran since the last counters
        before = (0, 0)
        for (kind, _), cell in zip(cells, nb.cells):
            if "|" in kind:
                block = kind.split("|")[0]
                times.setdefault(kind, []).append(seconds(cell))
            elif kind == "count":
                text = "".join(o.get("text", "") for o in cell.outputs)
                now = tuple(int(v) for v in text.split())
                if block is not None:
                    asked.setdefault(block, []).append((now[0] - before[0], now[1] - before[1]))
                before, block = now, None
        print(f"{args.rounds} rounds x {args.cells} cells of each kind per block; Spark job: {SPARK_CELL}")
        print(f"{'block':<16}{'cell':<8}{'median ms':>10}{'p90 ms':>9}{'REST/spark cell':>17}{'config RPC/cell':>17}")
        for key in sorted(times, key=lambda k: (k.split("|")[1], k)):
            b, kind = key.split("|")
            values = sorted(times[key])
            p90 = values[int(0.9 * (len(values) - 1))]
            rest = sum(r for r, _ in asked.get(b, [])) / (args.rounds * args.cells)
            rpc = sum(c for _, c in asked.get(b, [])) / (args.rounds * args.cells * 2)
            print(f"{b:<16}{kind:<8}{statistics.median(values) * 1000:>10.1f}{p90 * 1000:>9.1f}"
                  f"{rest if kind == 'spark' else 0:>17.2f}{rpc:>17.2f}")
        on = statistics.median(times["progress on|spark"])
        off = statistics.median(times["progress off|spark"])
        print(f"progress on / off, Spark cells (medians): {on / off:.2f}")
        named = statistics.median(times["progress off|plain"])
        unnamed = statistics.median(times["off, unnamed|plain"])
        print(f"named / unnamed, plain cells (medians): {named / unnamed:.2f} ({(named - unnamed) * 1000:+.1f} ms)")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
