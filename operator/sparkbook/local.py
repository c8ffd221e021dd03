"""`sparkbook local -f notebookserver.yaml`: the same NotebookServer on this machine, no cluster.

A local Spark Connect server started from the very command the operator puts into the driver
pod (only the master and the Kubernetes-only settings change, see build/launch.py), and a local
Jupyter server with the same kernel start-up the pod mounts. Both stop on Ctrl-C, and the run's
temporary folder (logs, start-up file, JupyterLab settings) goes with them. Notebooks live in
--notebook-dir, else the current directory unless that is inside a git work tree
(~/sparkbook-notebooks then). JupyterLab does not ask about news or check for updates.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sparkbook import names
from sparkbook.api.sparksession import SparkSessionSpec
from sparkbook.build.launch import (
    connect_server_command,
    connect_url,
    local_server_environment,
    loopback_conf,
    parse_connect_server_command,
)
from sparkbook.build.notebook import startup_files
from sparkbook.build.session import driver_pod
from sparkbook.render import RenderError, describe_validation_error, notebook_spec, profiles_in

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 180.0
# Where notebooks live when the current directory is a git work tree (a checkout is no place for
# scratch notebooks and their spark-warehouse) and --notebook-dir is not given.
DEFAULT_NOTEBOOK_DIR = Path("~/sparkbook-notebooks")
# JupyterLab settings every user would otherwise set by hand: no "Would you like to get notified
# about official Jupyter news?" prompt (it shows while fetchNews is "none"), no update checks.
# images/notebook/overrides.json holds the same for the notebook image.
LAB_OVERRIDES: dict[str, Any] = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}


def in_git_work_tree(path: Path) -> bool:
    """Whether ``path`` is inside a git work tree (a ``.git`` directory or file above it)."""
    return any((d / ".git").exists() for d in (path, *path.parents))


def notebook_dir_for(given: str | None, cwd: Path | None = None) -> Path:
    """--notebook-dir if given; else the current directory, unless that is inside a git work tree."""
    if given:
        return Path(given).expanduser().resolve()
    cwd = (cwd or Path.cwd()).resolve()
    if in_git_work_tree(cwd):
        return DEFAULT_NOTEBOOK_DIR.expanduser().resolve()
    return cwd


def _lab_settings_dir() -> Path:
    """JupyterLab's default application settings directory (where overrides.json is read)."""
    return Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings"


def write_lab_settings(target: Path) -> Path:
    """An application settings directory: the installed overrides.json, plus :data:`LAB_OVERRIDES`."""
    target.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, Any] = {}
    installed = _lab_settings_dir()
    if installed.is_dir():
        for item in installed.iterdir():
            if item.is_file():
                shutil.copy2(item, target / item.name)
        try:
            overrides = json.loads((installed / "overrides.json").read_text())
        except (OSError, ValueError):
            overrides = {}
    for plugin, settings in LAB_OVERRIDES.items():
        overrides.setdefault(plugin, {}).update(settings)
    (target / "overrides.json").write_text(json.dumps(overrides, indent=2) + "\n")
    return target


class LocalError(Exception):
    """A problem the user can fix; the message says what and how."""


@dataclass
class Process:
    name: str
    argv: list[str]
    env: dict[str, str]
    ready_port: int
    log: Path
    ready_path: str | None = None  # an HTTP path that answers 200 once ready


@dataclass
class Plan:
    notebook: str
    session: str | None
    jupyter_url: str
    spark_ui_url: str | None
    processes: list[Process] = field(default_factory=list)


def _load(text: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    notebook = None
    sessions: dict[str, dict[str, Any]] = {}
    for doc in yaml.safe_load_all(text):
        if not doc or doc.get("apiVersion") != names.API_VERSION:
            continue
        if doc.get("kind") == "NotebookServer" and notebook is None:
            notebook = doc
        elif doc.get("kind") == "SparkSession":
            sessions[doc.get("metadata", {}).get("name", "")] = doc
    if notebook is None:
        raise LocalError("the file has no NotebookServer (apiVersion sparkbook.io/v1alpha1) to run")
    return notebook, sessions


def spark_home() -> str:
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise LocalError("pyspark is not installed here: pip install 'sparkbook[spark]'")
    return str(Path(spec.origin).parent)


def plan(
    text: str,
    *,
    workdir: Path,
    notebook_dir: Path,
    jupyter_port: int = 8888,
    connect_port: int = names.CONNECT_PORT,
    ui_port: int = names.UI_PORT,
    token: str | None = None,
    connect_token: str | None = None,
) -> Plan:
    """Everything to start, from the YAML alone (no processes, no network)."""
    doc, sessions = _load(text)
    name = doc.get("metadata", {}).get("name", "notebook")
    try:
        spec = notebook_spec(doc, profiles_in(yaml.safe_load_all(text)))  # a profile must be in the file too
    except RenderError as e:
        raise LocalError(str(e)) from None
    token = token or secrets.token_urlsafe(24)
    connect_token = connect_token or secrets.token_urlsafe(32)
    session_name: str | None = None
    session_spec: SparkSessionSpec | None = None
    if spec.spark is not None and spec.spark.session is not None:
        session_name, session_spec = names.NotebookNames(name).owned_session, spec.spark.session
    elif spec.spark is not None and spec.spark.session_ref is not None:
        session_name = spec.spark.session_ref.name
        if session_name not in sessions:
            raise LocalError(
                f"spark.sessionRef names SparkSession {session_name!r}, which is not in this file: "
                "put it in the same file (---), or use spark.session"
            )
        try:
            session_spec = SparkSessionSpec.model_validate(sessions[session_name].get("spec") or {})
        except ValidationError as e:
            raise LocalError(describe_validation_error("SparkSession", session_name, e)) from None

    result = Plan(notebook=name, session=session_name, jupyter_url=f"http://{HOST}:{jupyter_port}/lab?token={token}",
                  spark_ui_url=None)
    jupyter_env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER_TOKEN", "SPARK_REMOTE"))}
    for var in spec.env:
        if var.value is not None:
            jupyter_env[var.name] = var.value
    if session_name and session_spec is not None:
        owner = {"apiVersion": names.API_VERSION, "kind": "SparkSession",
                 "metadata": {"name": session_name, "namespace": "local", "uid": "local"}}
        # The driver pod's own command: what works here is what runs in the cluster.
        pod = driver_pod(owner=owner, spec=session_spec, image=session_spec.image or names.DEFAULT_SPARK_IMAGE)
        pod_conf, app_name = parse_connect_server_command(pod["spec"]["containers"][0]["command"])
        conf = loopback_conf(
            pod_conf,
            master="local[*]",
            connect_port=connect_port,
            ui_port=ui_port,
            warehouse_dir=str(notebook_dir / "spark-warehouse"),
            host=HOST,
        )
        home = spark_home()
        spark_env = local_server_environment(os.environ, spark_home=home, host=HOST,
                                             conf_dir=str(workdir / "spark-conf"), token=connect_token)
        for var in session_spec.driver.env:
            if var.value is not None:
                spark_env[var.name] = var.value
        result.processes.append(
            Process("Spark Connect server", connect_server_command(conf=conf, spark_home=home, app_name=app_name),
                    spark_env, connect_port, workdir / "spark.log")
        )
        result.spark_ui_url = f"http://{HOST}:{ui_port}"
        jupyter_env.update(
            SPARK_REMOTE=connect_url(host=HOST, port=connect_port, token=connect_token),
            SPARKBOOK_SPARK_SESSION=session_name,
            SPARKBOOK_SPARK_UI=result.spark_ui_url,
            SPARKBOOK_SPARK_UI_LINK=f"{result.spark_ui_url}/jobs/",
        )
        jupyter_env[names.LOCAL_SPARK_LOG_ENV] = str(workdir / "spark.log")
    jupyter_env[names.LOCAL_ENV] = "1"
    jupyter_env.update(
        JUPYTER_TOKEN=token,
        IPYTHONDIR=str(workdir / "ipython"),  # the pod's kernel start-up, without touching ~/.ipython
        # The Scala and R kernels' start-up, from the same directory as in the pod.
        SPARKBOOK_STARTUP_DIR=str(workdir / "ipython" / "profile_default" / "startup"),
        # The Scala and R kernels (`sparkbook kernels install`, done by _run into this cache).
        JUPYTER_PATH=os.pathsep.join(p for p in (str(kernels_prefix() / "share" / "jupyter"),
                                                  os.environ.get("JUPYTER_PATH")) if p),
        JUPYTER_RUNTIME_DIR=str(workdir / "runtime"),
    )
    argv = [
        sys.executable, "-m", "jupyter_server",
        f"--ServerApp.ip={HOST}", f"--ServerApp.port={jupyter_port}", "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={notebook_dir}", "--ServerApp.open_browser=False",
    ]  # fmt: skip
    if importlib.util.find_spec("jupyterlab") is not None:
        argv += ["--ServerApp.default_url=/lab", f"--LabApp.app_settings_dir={workdir / 'lab-settings'}",
                 "--LabApp.news_url=None"]
    else:
        result.jupyter_url = f"http://{HOST}:{jupyter_port}/?token={token}"
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")
    result.processes.append(Process("Jupyter server", argv, jupyter_env, jupyter_port, workdir / "jupyter.log",
                                     ready_path="/api"))
    return result


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return True
    return False


def preflight(p: Plan) -> None:
    if p.session and not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        raise LocalError(
            "Spark needs Java 17 or newer and no `java` was found: install a JDK/JRE 17+ "
            "(e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
        )
    for proc in p.processes:
        if _port_taken(proc.ready_port):
            flag = "--port" if proc.name.startswith("Jupyter") else "--connect-port"
            raise LocalError(f"port {proc.ready_port} on {HOST} is taken (needed by the {proc.name}): "
                             f"stop what uses it or choose another with {flag}")
    if p.spark_ui_url and _port_taken(int(p.spark_ui_url.rsplit(":", 1)[1])):
        raise LocalError(f"the Spark UI port of {p.spark_ui_url} is taken: choose another with --ui-port")


def _ready(proc: Process) -> bool:
    try:
        if proc.ready_path:
            with urllib.request.urlopen(f"http://{HOST}:{proc.ready_port}{proc.ready_path}", timeout=1) as r:
                return r.status == 200
        with socket.create_connection((HOST, proc.ready_port), timeout=0.5):
            return True
    except OSError:
        return False


def _stop(running: list[subprocess.Popen[bytes]]) -> None:
    for child in reversed(running):
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in reversed(running):
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=5)


def _tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-3000:]
    except OSError:
        return ""


def run(file: str, *, jupyter_port: int, connect_port: int, ui_port: int, notebook_dir: str | None) -> int:
    text = sys.stdin.read() if file == "-" else Path(file).read_text()
    workdir = Path(tempfile.mkdtemp(prefix="sparkbook-local-"))
    try:
        return _run(text, workdir, jupyter_port=jupyter_port, connect_port=connect_port, ui_port=ui_port,
                    notebook_dir=notebook_dir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # logs, start-up file, settings: this run's only


def kernels_prefix() -> Path:
    """Where `sparkbook local` keeps the Scala and R kernel specs it installs (built once, then reused)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "sparkbook" / "jupyter"


def offer_kernels() -> None:
    """Install the Scala and R kernels this machine can run into :func:`kernels_prefix`, and say
    which it cannot and why (JupyterLab then offers Python and the others)."""
    from sparkbook import kernels

    missing = kernels.missing()
    which = tuple(k for k in kernels.KERNELS if k not in missing)
    for kernel, why in missing.items():
        print(f"no {kernel.capitalize()} kernel: {why}", flush=True)
    if which:
        print(f"preparing the {' and '.join(k.capitalize() for k in which)} kernel{'s' if len(which) > 1 else ''} "
              f"(once: {kernels_prefix()})", flush=True)
        try:
            kernels.install(which, prefix=kernels_prefix())
        except (OSError, RuntimeError, subprocess.CalledProcessError) as e:
            print(f"the Scala and R kernels could not be installed ({e}); the Python kernel works", flush=True)


def _run(text: str, workdir: Path, *, jupyter_port: int, connect_port: int, ui_port: int,
         notebook_dir: str | None) -> int:
    nb_dir = notebook_dir_for(notebook_dir)
    try:
        p = plan(text, workdir=workdir, notebook_dir=nb_dir, jupyter_port=jupyter_port,
                 connect_port=connect_port, ui_port=ui_port)
        preflight(p)
    except LocalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    nb_dir.mkdir(parents=True, exist_ok=True)
    write_lab_settings(workdir / "lab-settings")
    startup = workdir / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    for name, text in startup_files().items():
        (startup / name).write_text(text)
    offer_kernels()
    (workdir / "spark-conf").mkdir()

    running: list[subprocess.Popen[bytes]] = []
    stopping = False

    def on_signal(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        for proc in p.processes:
            print(f"starting the {proc.name} (log: {proc.log})", flush=True)
            with proc.log.open("wb") as log:
                child = subprocess.Popen(proc.argv, env=proc.env, cwd=nb_dir, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
            running.append(child)
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while not _ready(proc):
                if stopping:
                    return 130
                if child.poll() is not None:
                    print(f"error: the {proc.name} exited ({child.returncode}) while starting:\n{_tail(proc.log)}",
                          file=sys.stderr)
                    return 1
                if time.monotonic() > deadline:
                    print(f"error: the {proc.name} did not come up in {STARTUP_TIMEOUT:.0f}s:\n{_tail(proc.log)}",
                          file=sys.stderr)
                    return 1
                time.sleep(0.2)
        print("", flush=True)
        print(f"NotebookServer {p.notebook} is running on this machine.")
        print(f"  Jupyter:  {p.jupyter_url}")
        if p.spark_ui_url:
            print(f"  Spark UI: {p.spark_ui_url}   (SparkSession {p.session}, master local[*])")
        print("Press Ctrl-C to stop.", flush=True)
        while not stopping:
            for proc, child in zip(p.processes, running):
                if child.poll() is not None:
                    print(f"error: the {proc.name} stopped ({child.returncode}):\n{_tail(proc.log)}", file=sys.stderr)
                    return 1
            time.sleep(0.5)
        print("stopping ...", flush=True)
        return 0
    finally:
        _stop(running)
        if not running or all(c.returncode is not None for c in running):
            print("stopped.", flush=True)
