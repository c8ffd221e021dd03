"""`sparkbook local`: the README's run command, started as a user would, driven through Jupyter's API."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import json
import urllib.request
from pathlib import Path

import pytest

from tests.jupyter_api import execute
from tests.sparkbook_local import free_port, start_local

ROOT = Path(__file__).resolve().parents[2]
SPARKBOOK = [sys.executable, "-m", "sparkbook.cli"]

pytestmark = pytest.mark.workload


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def test_local_runs_the_example_and_a_cell_uses_spark(tmp_path: Path):
    proc, printed, ports = start_local(tmp_path)
    try:
        m = re.search(r"Jupyter:\s+(http://\S+)", printed)
        assert m, printed
        assert re.search(r"Spark UI: http://127\.0\.0\.1:\d+", printed), printed
        url = m.group(1)
        base = url.split("/?")[0].split("/lab?")[0]
        token = url.split("token=")[1]
        output = await execute(base, token, "print(spark.range(100).filter('id % 2 = 0').count())")
        assert "50" in output, output
        # JupyterLab offers the Scala and R kernels too, on the same session.
        req = urllib.request.Request(f"{base}/api/kernelspecs", headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            specs = json.load(resp)["kernelspecs"]
        assert {"python3", "scala", "ir"} <= set(specs), sorted(specs)
        output = await execute(base, token, "cat(spark$range(100L)$count(), '\\n')", kernel_name="ir")
        assert "is ready as `spark`" in output and "100" in output, output
        # JupyterLab asks nothing about news: fetchNews is "false", not the prompting "none".
        req = urllib.request.Request(f"{base}/lab/api/settings/@jupyterlab/apputils-extension:notification",
                                     headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            settings = json.load(resp)
        # Overrides become the schema's defaults; the front end prompts while the value is "none".
        assert settings["schema"]["properties"]["fetchNews"]["default"] == "false", settings["schema"]["properties"]
        with urllib.request.urlopen(urllib.request.Request(f"{base}/lab", headers=req.headers), timeout=30) as resp:
            assert '"news": {"disabled": true}' in resp.read().decode().replace('\\"', '"')
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, rest
    assert "stopped." in rest
    logs = re.findall(r"\(log: (\S+)\)", printed)
    assert logs, printed
    for log in logs:  # the run's temporary folder is gone with it
        assert not Path(log).parent.exists(), log
    for port in ports.values():  # both servers are gone, nothing left listening
        assert _port_free(port), port


def test_local_says_clearly_when_a_port_is_taken(tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([*SPARKBOOK, "local", "-f", str(ROOT / "examples" / "notebookserver.yaml"),
                                 "--port", str(port), "--notebook-dir", str(tmp_path)],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"port {port}" in result.stderr and "--port" in result.stderr


def test_local_says_clearly_when_java_is_missing(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = str(Path(sys.executable).parent)  # the venv's tools, no java
    result = subprocess.run([*SPARKBOOK, "local", "-f", str(ROOT / "examples" / "notebookserver.yaml"),
                             "--port", str(free_port()), "--connect-port", str(free_port()),
                             "--ui-port", str(free_port())],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2
    assert "Java 17" in result.stderr


def _plan(tmp_path: Path, notebook_dir: Path | None = None):
    from sparkbook.local import plan

    text = (ROOT / "examples" / "notebookserver.yaml").read_text()
    return plan(text, workdir=tmp_path / "work", notebook_dir=notebook_dir or tmp_path / "nb")


def test_local_kernel_knows_it_is_local(tmp_path: Path):
    """%%info and friends read SPARKBOOK_LOCAL: no kubectl advice on a laptop."""
    from sparkbook.names import LOCAL_ENV

    jupyter = _plan(tmp_path).processes[-1]
    assert jupyter.name == "Jupyter server" and jupyter.env[LOCAL_ENV] == "1"


def test_notebook_dir_is_not_a_git_work_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from sparkbook import local

    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "sub").mkdir()
    plain = tmp_path / "plain"
    plain.mkdir()
    assert local.notebook_dir_for(None, cwd=repo / "sub") == (home / "sparkbook-notebooks").resolve()
    worktree = tmp_path / "wt"
    worktree.mkdir()
    (worktree / ".git").write_text("gitdir: elsewhere\n")  # `git worktree add` makes a .git file
    assert local.notebook_dir_for(None, cwd=worktree) == (home / "sparkbook-notebooks").resolve()
    assert local.notebook_dir_for(None, cwd=plain) == plain.resolve()
    assert local.notebook_dir_for(str(repo / "sub")) == (repo / "sub").resolve()  # --notebook-dir wins


def test_lab_settings_turn_the_news_prompt_off(tmp_path: Path):
    from sparkbook import local

    target = local.write_lab_settings(tmp_path / "lab-settings")
    overrides = json.loads((target / "overrides.json").read_text())
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    argv = _plan(tmp_path).processes[-1].argv
    assert f"--LabApp.app_settings_dir={tmp_path / 'work' / 'lab-settings'}" in argv
    assert "--LabApp.news_url=None" in argv
    # The notebook image ships the same settings.
    image = json.loads((ROOT / "images" / "notebook" / "overrides.json").read_text())
    assert image == local.LAB_OVERRIDES
    assert "overrides.json /usr/local/share/jupyter/lab/settings/overrides.json" in (
        ROOT / "images" / "notebook" / "Dockerfile").read_text()


def test_make_local_does_not_build_checkov():
    text = (ROOT / "Makefile").read_text()
    (rule,) = [line for line in text.splitlines() if line.startswith("local:")]
    deps = rule.split(":", 1)[1].split("##", 1)[0].split()
    assert deps == ["$(STAMP)"], rule
