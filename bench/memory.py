"""What the operator's resident memory is made of, measured rather than estimated.

    .venv/bin/python bench/memory.py                 # the tables (2-3 minutes of one core)
    .venv/bin/python bench/memory.py --json out.json --repeat 1 --no-run

Three measurements, each in fresh interpreters so nothing is shared between them:

* the RSS after each import stage, cumulative (each stage imports what the ones above did, then
  its own), so a row's "+MB" is what that stage adds; the median of --repeat runs;
* tracemalloc over the full import of the run path, each allocation put down to the package whose
  code made it (a module's own code object is put down to that module, not to its importer);
  tracemalloc sees Python's allocator only, so the gap to the RSS is shared libraries' pages, C
  libraries' own heaps (OpenSSL, libyaml...) and the interpreter's start;
* the real operator (`python -m sparkbook.cli run --standalone`) against the API emulator, its RSS
  two seconds after it has started and before any resource exists: what bench/run.py calls "base".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from run import stop_process

ROOT = Path(__file__).resolve().parents[1]
OPERATOR_SRC = ROOT / "operator"

# What `sparkbook run` does before kopf.operator() starts talking to the API server: the CLI,
# the handlers module (kopf, the controllers, the models), the settings and the connection.
RUN_PATH = (
    "import sparkbook.cli, sparkbook.handlers\n"
    "from sparkbook.settings import Settings\n"
    "from sparkbook.kube import connection_from_environment\n"
    "Settings.from_env(); connection_from_environment()\n"
)

# (label, code): cumulative, each stage runs the code of those above it first. Only
# sparkbook.handlers imports kopf, and the way it does matters (it keeps kopf from loading the
# `kubernetes` client): kopf comes in with it, as in the operator; kopf alone is a reference row.
STAGES: list[tuple[str, str]] = [
    ("python", ""),
    ("yaml", "import yaml"),
    ("aiohttp", "import aiohttp"),
    ("pydantic", "import pydantic"),
    ("prometheus_client", "import prometheus_client"),
    ("sparkbook.api (models)", "import sparkbook.api"),
    ("sparkbook controller, informer, kube", "import sparkbook.controller, sparkbook.informer, sparkbook.kube, "
                                             "sparkbook.metrics, sparkbook.leader"),
    ("sparkbook.handlers (with kopf)", "import sparkbook.handlers"),
    ("run path, before connecting", RUN_PATH),
]

# Not cumulative: a package alone, for reference.
ALONE: list[tuple[str, str]] = [
    ("kopf (alone, as installed)", "import kopf"),
    ("kubernetes (alone)", "import kubernetes"),
]

# Appended to a stage's code: read the RSS before anything else is imported for the report.
PROBE = """
import gc as _gc, sys as _sys
_gc.collect()
_status = {}
with open('/proc/self/status') as _f:
    for _line in _f:
        _k, _, _v = _line.partition(':')
        if _k in ('VmRSS', 'RssAnon', 'RssFile', 'RssShmem'):
            _status[_k] = int(_v.split()[0]) * 1024
_mods = sorted(m for m, v in _sys.modules.items() if v is not None)  # None: an import refused
import json as _json
print(_json.dumps({'status': _status, 'modules': len(_mods),
                   'kubernetes': any(m == 'kubernetes' or m.startswith('kubernetes.') for m in _mods)}))
"""

# Run before the full import under tracemalloc. Allocations made while a module's code object is
# unmarshalled, or while an extension module initialises, happen in importlib's frozen frames, and
# the first real file outside them would be the importer's: a tiny trampoline compiled under the
# imported module's file name puts them down to the module itself.
TRACE_SETUP = """
import tracemalloc as _tm
_tm.start(8)  # enough to climb out of importlib's frames
import importlib._bootstrap_external as _ext

def _under(path):
    ns = {}
    exec(compile('def run(f, *a):\\n    return f(*a)\\n', path, 'exec'), ns)
    return ns['run']

_get_code = _ext.SourceLoader.get_code
def _traced_get_code(self, fullname):
    return _under(self.get_filename(fullname))(_get_code, self, fullname)
_ext.SourceLoader.get_code = _traced_get_code

_create = _ext.ExtensionFileLoader.create_module
def _traced_create(self, spec):
    return _under(self.path)(_create, self, spec)
_ext.ExtensionFileLoader.create_module = _traced_create

# Who brought each package in: the package of the module that first imported one of its modules.
import importlib._bootstrap as _bs
_loading, _importer = [], {}

def _top(name):
    parts = name.split('.')
    return '.'.join(parts[:2]) if parts[0] == 'sparkbook' and len(parts) > 1 else parts[0]

_find_and_load = _bs._find_and_load
def _traced_find_and_load(name, import_):
    top = _top(name)
    if top not in _importer:
        _importer[top] = _top(_loading[-1]) if _loading else '(run path)'
    _loading.append(name)
    try:
        return _find_and_load(name, import_)
    finally:
        _loading.pop()
_bs._find_and_load = _traced_find_and_load
"""

TRACE_REPORT = """
import gc as _gc, os as _os, sys as _sys, sysconfig as _sysconfig
_gc.collect()
_snapshot = _tm.take_snapshot()
_tm.stop()
_bs._find_and_load = _find_and_load
_stdlib = {_os.path.realpath(_sysconfig.get_paths()[k]) for k in ('stdlib', 'platstdlib')}
_roots = sorted({_os.path.realpath(p) for p in _sys.path if p and _os.path.isdir(p)}, key=len, reverse=True)

def _package(filename):
    if filename.startswith('<'):
        return None  # frozen importlib, <string> (this harness)
    real = _os.path.realpath(filename)
    for root in _roots:
        if real.startswith(root + _os.sep):
            parts = _os.path.relpath(real, root).split(_os.sep)
            top = parts[0].split('.')[0]
            if top == 'sparkbook' and len(parts) > 1:  # ours: one level deeper
                top += '.' + parts[1].split('.')[0]
            stdlib = any(root == s or root.startswith(s + _os.sep) for s in _stdlib) and 'site-packages' not in root
            return top + ' (stdlib)' if stdlib else top
    return real

_groups = {}
for _trace in _snapshot.traces:
    _owner = '(interpreter, import machinery)'
    for _frame in reversed(_trace.traceback):  # most recent call first
        _p = _package(_frame.filename)
        if _p is not None:
            _owner = _p
            break
    _size_count = _groups.setdefault(_owner, [0, 0])
    _size_count[0] += _trace.size
    _size_count[1] += 1
import json as _json
print(_json.dumps({'groups': _groups, 'traced': sum(s for s, _ in _groups.values()), 'importer': _importer}))
"""


# The operator as `python -m sparkbook.cli run --standalone` runs it; at exit (SIGTERM: kopf stops
# cleanly) it writes the modules it has loaded, at start or since.
RUNNING = """
import atexit, json, sys
atexit.register(lambda: open({modules!r}, 'w').write(json.dumps(sorted(m for m, v in sys.modules.items() if v))))
from sparkbook.cli import main
sys.exit(main(['run', '--standalone']))
"""


def interpreter(code: str, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"a stage failed:\n{code}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_stages(env: dict[str, str], repeat: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    code = ""
    for label, stage, cumulative in [(l, c, True) for l, c in STAGES] + [(l, c, False) for l, c in ALONE]:
        stage_code = (code + "\n" + stage) if cumulative else stage
        if cumulative:
            code = stage_code
        runs = []
        for _ in range(repeat):
            try:
                runs.append(interpreter(stage_code + PROBE, env))
            except SystemExit:
                if cumulative:
                    raise
                break  # a reference package that is not installed
        if not runs:
            continue
        mb = {k: statistics.median(r["status"].get(k, 0) for r in runs) / 2**20
              for k in ("VmRSS", "RssAnon", "RssFile")}
        rows.append({"stage": label, "cumulative": cumulative, "rss_mb": mb["VmRSS"], "anon_mb": mb["RssAnon"],
                     "file_mb": mb["RssFile"], "modules": runs[0]["modules"], "kubernetes": runs[0]["kubernetes"]})
    return rows


def measure_tracemalloc(env: dict[str, str]) -> dict[str, Any]:
    code = TRACE_SETUP + "\n" + "\n".join(c for _, c in STAGES) + "\n" + TRACE_REPORT
    return interpreter(code, env)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_of(pid: int) -> dict[str, float]:
    values: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
                values[key] = int(value.split()[0]) * 1024 / 2**20
    return values


def measure_running(env: dict[str, str], settle: float) -> dict[str, Any]:
    """The operator process itself, as bench/run.py starts it, before any resource."""
    with tempfile.TemporaryDirectory(prefix="sparkbook-memory-") as tmp:
        kubeconfig = Path(tmp) / "kubeconfig"
        emulator = subprocess.Popen(
            [sys.executable, "-m", "sparkbook.testing.emulator", "--port", str(free_port()),
             "--crds", str(ROOT / "crds"), "--kubeconfig", str(kubeconfig)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        operator = None
        try:
            assert emulator.stdout is not None
            emulator.stdout.readline()  # "serving on ...": the kubeconfig is written
            log, modules_file = Path(tmp) / "operator.log", Path(tmp) / "modules.json"
            op_env = {**env, "KUBECONFIG": str(kubeconfig), "SPARKBOOK_METRICS_PORT": str(free_port())}
            with open(log, "wb") as out:
                # `python -m sparkbook.cli run --standalone`, but writing its loaded modules at exit.
                operator = subprocess.Popen([sys.executable, "-c", RUNNING.format(modules=str(modules_file))],
                                            env=op_env, stdout=out, stderr=subprocess.STDOUT)
                started = time.monotonic()
                while "sparkbook operator started" not in log.read_text(errors="replace"):
                    if operator.poll() is not None or time.monotonic() - started > 60:
                        raise SystemExit(f"the operator did not start:\n{log.read_text(errors='replace')[-4000:]}")
                    time.sleep(0.1)
                startup = time.monotonic() - started
                time.sleep(settle)
                rss = rss_of(operator.pid)
                operator.terminate()
                operator.wait(30)
            modules = json.loads(modules_file.read_text())
            return {"startup_seconds": startup, "rss_mb": rss["VmRSS"], "anon_mb": rss["RssAnon"],
                    "file_mb": rss["RssFile"], "hwm_mb": rss["VmHWM"], "modules": len(modules),
                    "kubernetes": any(m.split(".")[0] == "kubernetes" for m in modules)}
        finally:
            for proc in (operator, emulator):
                stop_process(proc, timeout=10)


def via(package: str, importer: dict[str, str]) -> str:
    """The chain of first importers of a package, up to the run path: why it is in the process."""
    chain, seen = [], {package}
    while (package := importer.get(package, "")) and package not in seen and package != "(run path)":
        chain.append(package)
        seen.add(package)
    return " < ".join(chain)


def print_tables(result: dict[str, Any], top: int) -> None:
    print("RSS after each import stage (fresh interpreter each; cumulative; median of "
          f"{result['repeat']})")
    print(f"{'stage':<38} {'RSS MB':>7} {'+MB':>6} {'anon':>6} {'file':>6} {'modules':>8}  kubernetes")
    previous = None
    for row in result["stages"]:
        delta = "" if previous is None or not row["cumulative"] else f"{row['rss_mb'] - previous:+.1f}"
        print(f"{row['stage']:<38} {row['rss_mb']:>7.1f} {delta:>6} {row['anon_mb']:>6.1f} {row['file_mb']:>6.1f} "
              f"{row['modules']:>8}  {'loaded' if row['kubernetes'] else '-'}")
        if row["cumulative"]:
            previous = row["rss_mb"]
    running = result.get("running")
    if running:
        print(f"{'operator running, no resources':<38} {running['rss_mb']:>7.1f} {'':>6} {running['anon_mb']:>6.1f} "
              f"{running['file_mb']:>6.1f} {running['modules']:>8}  {'loaded' if running['kubernetes'] else '-'}")
        print(f"  (started in {running['startup_seconds']:.1f} s, read {result['settle']:.0f} s later; "
              f"peak RSS {running['hwm_mb']:.1f} MB; modules: those loaded at its exit)")
    trace = result["tracemalloc"]
    total = trace["traced"]
    groups = sorted(trace["groups"].items(), key=lambda kv: kv[1][0], reverse=True)
    print()
    print(f"tracemalloc, full import of the run path: {total / 2**20:.1f} MB traced in Python's allocator, "
          f"by package (top {top})")
    print(f"{'package':<36} {'MB':>7} {'share':>6} {'blocks':>8}  imported via")
    for name, (size, count) in groups[:top]:
        print(f"{name[:36]:<36} {size / 2**20:>7.2f} {size / total:>6.1%} {count:>8}  "
              f"{via(name.removesuffix(' (stdlib)'), trace.get('importer', {}))}")
    rest = groups[top:]
    if rest:
        size = sum(s for _, (s, _) in rest)
        print(f"{f'({len(rest)} others)':<36} {size / 2**20:>7.2f} {size / total:>6.1%} "
              f"{sum(c for _, (_, c) in rest):>8}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeat", type=int, default=3, help="interpreters per import stage (the median is shown)")
    p.add_argument("--top", type=int, default=20, help="packages shown in the tracemalloc table")
    p.add_argument("--no-run", action="store_true", help="skip starting the operator against the emulator")
    p.add_argument("--settle", type=float, default=2.0, help="seconds after start-up before the RSS is read")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sparkbook-memory-") as tmp:
        # The run path reads a kubeconfig: one like the emulator's, pointing nowhere.
        kubeconfig = Path(tmp) / "kubeconfig"
        kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")}
        env.update(KUBECONFIG=str(kubeconfig), PYTHONDONTWRITEBYTECODE="1",
                   PYTHONPATH=os.pathsep.join(filter(None, [str(OPERATOR_SRC), env.get("PYTHONPATH")])))
        result: dict[str, Any] = {"python": sys.version.split()[0], "repeat": args.repeat, "settle": args.settle}
        result["stages"] = measure_stages(env, args.repeat)
        result["tracemalloc"] = measure_tracemalloc(env)
        if not args.no_run:
            result["running"] = measure_running(env, args.settle)
    print_tables(result, args.top)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
