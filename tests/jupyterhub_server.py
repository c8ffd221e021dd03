"""A real JupyterHub (the PyPI package, configurable-http-proxy from npm) spawning through
sparkbook.jupyterhub.NotebookServerSpawner, and a real `jupyterhub-singleuser` playing a
NotebookServer's pod on its pod IP (a loopback address), for the hub tests."""

from __future__ import annotations

import base64
import contextlib
import html
import os
import random
import re
import secrets
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from sparkbook import names
from sparkbook.build.notebook import STARTUP_PY
from tests.api.conftest import free_port, kubelet_runs, statefulset_controller
from tests.jupyter_server import stop_process, wait_until_answers

ROOT = Path(__file__).resolve().parents[1]
CHP = Path(sys.executable).parent.parent / "chp" / "node_modules" / ".bin" / "configurable-http-proxy"
HUB_NAMESPACE = "jupyterhub"


@dataclass
class Hub:
    url: str  # the proxy's public URL: what a user's browser opens
    token: str  # a service's API token with admin scopes, for the REST API and the user's server
    log_path: Path

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, f"{self.url}/hub/api{path}", headers={"Authorization": f"token {self.token}"},
                                timeout=30, **kwargs)

    def user(self, name: str) -> dict[str, Any]:
        r = self.api("GET", f"/users/{name}")
        r.raise_for_status()
        return dict(r.json())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def hub_config(*, port: int, hub_port: int, proxy_port: int, work: Path, token: str, namespace: str,
               extra: str = "") -> str:
    return f"""
c.JupyterHub.spawner_class = "sparkbook.jupyterhub.NotebookServerSpawner"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_port}"
c.ConfigurableHTTPProxy.command = [{str(CHP)!r}]
c.ConfigurableHTTPProxy.should_start = True
c.JupyterHub.db_url = "sqlite:///{work / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = {str(work / 'cookie_secret')!r}
c.JupyterHub.pid_file = {str(work / 'jupyterhub.pid')!r}
c.JupyterHub.cleanup_servers = False
c.JupyterHub.services = [{{"name": "tester", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{"name": "tester", "services": ["tester"],
                            "scopes": ["admin:users", "admin:servers", "access:servers", "read:users"]}}]
c.NotebookServerSpawner.namespace_template = {namespace!r}
c.NotebookServerSpawner.hub_namespace = {HUB_NAMESPACE!r}
c.NotebookServerSpawner.check_interval = 0.25
c.NotebookServerSpawner.start_timeout = 180
c.NotebookServerSpawner.http_timeout = 60
{extra}
"""


@contextlib.contextmanager
def running_hub(*, kubeconfig: Path, work: Path, namespace: str, extra: str = "") -> Iterator[Hub]:
    if not CHP.exists():
        pytest.fail(f"configurable-http-proxy is not at {CHP}: run `make venv` (scripts/ensure-chp.sh)", pytrace=False)
    work.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    port = free_port()
    config = work / "jupyterhub_config.py"
    config.write_text(hub_config(port=port, hub_port=free_port(), proxy_port=free_port(), work=work, token=token,
                                 namespace=namespace, extra=extra))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "CONFIGPROXY"))}
    env["KUBECONFIG"] = str(kubeconfig)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    log_path = work / "jupyterhub.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(config), "--debug"], env=env, cwd=work,
                                stdout=log, stderr=subprocess.STDOUT)
    hub = Hub(url=f"http://127.0.0.1:{port}", token=token, log_path=log_path)
    try:
        wait_until_answers(proc, f"{hub.url}/hub/api", log_path, "jupyterhub")
        yield hub
    finally:
        stop_process(proc)


class ProgressReader(threading.Thread):
    """The hub's progress stream for a user's spawn (what the spawn-pending page shows), read
    from the moment the spawn is pending until it says ready or failed."""

    def __init__(self, hub: Hub, username: str, timeout: float = 180) -> None:
        super().__init__(daemon=True)
        self.hub, self.username, self.timeout = hub, username, timeout
        self.events: list[dict[str, Any]] = []

    def run(self) -> None:
        import json

        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            try:
                r = requests.get(f"{self.hub.url}/hub/api/users/{self.username}/server/progress", stream=True,
                                 headers={"Authorization": f"token {self.hub.token}"}, timeout=self.timeout)
            except requests.RequestException:
                time.sleep(0.1)
                continue
            if r.status_code != 200:
                time.sleep(0.1)
                continue
            for line in r.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    self.events.append(json.loads(line[5:]))
            if self.events:
                return


def _xsrf(page: str) -> str:
    m = re.search(r'name="_xsrf"\s+value="([^"]+)"', page)
    assert m, f"no _xsrf in the page:\n{page[:2000]}"
    return html.unescape(m.group(1))


def log_in(hub: Hub, username: str) -> requests.Session:
    """What a browser does on the hub's login page (the Dummy authenticator takes any password)."""
    browser = requests.Session()
    page = browser.get(f"{hub.url}/hub/login", timeout=30)
    page.raise_for_status()
    r = browser.post(f"{hub.url}/hub/login", data={"username": username, "password": "pw", "_xsrf": _xsrf(page.text)},
                     timeout=30)
    r.raise_for_status()
    assert "jupyterhub-session-id" in browser.cookies or any("jupyterhub" in c.name for c in browser.cookies), r.text
    return browser


def submit_spawn_form(hub: Hub, browser: requests.Session, fields: dict[str, str]) -> str:
    """The spawn page: the form is there, the answers posted; the text of the page shown after."""
    page = browser.get(f"{hub.url}/hub/spawn", timeout=30)
    page.raise_for_status()
    assert 'class="sparkbook-profiles"' in page.text, page.text[:3000]
    # The hub puts its XSRF token in the form's action URL.
    action = re.search(r'<form[^>]*action="([^"]+)"', page.text, re.S)
    assert action and "_xsrf=" in action.group(1), page.text[:3000]
    r = browser.post(urllib.parse.urljoin(hub.url, html.unescape(action.group(1))), data=fields, timeout=60,
                     allow_redirects=False)
    assert r.status_code in (200, 302), r.text[:3000]
    return r.headers.get("Location", "") or r.text


def secret_env(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def play_singleuser(pod: dict[str, Any], *, hub_env: dict[str, str], work: Path,
                    spark_remote: str | None = None) -> subprocess.Popen[bytes]:
    """Start the pod's own command (jupyterhub-singleuser and its flags) on the pod's IP, with the
    pod's environment: its env list and, as envFrom does, the hub's Secret. Only what points
    into the cluster changes: the home directory, the bind address, and SPARK_REMOTE when given
    (the cluster's Service name for the session is not resolvable here)."""
    container = pod["spec"]["containers"][0]
    assert [s["secretRef"]["name"] for s in container.get("envFrom", [])], "the hub's env comes from its Secret"
    ip = pod["status"]["podIP"]
    home = work / "home"
    (work / "ipython" / "profile_default" / "startup").mkdir(parents=True, exist_ok=True)
    (work / "ipython" / "profile_default" / "startup" / "00-sparkbook.py").write_text(STARTUP_PY)
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "SPARK_REMOTE"))}
    env.update(hub_env)
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = e["value"]
    env.update(HOME=str(home), IPYTHONDIR=str(work / "ipython"), JUPYTER_RUNTIME_DIR=str(work / "runtime"),
               JUPYTER_CONFIG_DIR=str(work / "config"), JUPYTER_DATA_DIR=str(work / "data"), JUPYTER_PLATFORM_DIRS="1")
    if spark_remote:
        env["SPARK_REMOTE"] = spark_remote
    command = list(container["command"])
    assert command[0] == "jupyterhub-singleuser", command
    argv = [str(Path(sys.executable).parent / "jupyterhub-singleuser"), "--allow-root"]
    for arg in command[1:]:
        if arg.startswith("--ServerApp.ip="):
            arg = f"--ServerApp.ip={ip}"
        elif arg.startswith("--ServerApp.root_dir="):
            arg = f"--ServerApp.root_dir={home}"
        argv.append(arg)
    log = (work / "singleuser.log").open("ab")
    return subprocess.Popen(argv, env=env, cwd=home, stdout=log, stderr=subprocess.STDOUT)


def answers(pod_ip: str, base_url: str) -> bool:
    try:
        return requests.get(f"http://{pod_ip}:{names.NOTEBOOK_PORT}{base_url}api", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def lab_url(hub: Hub, username: str) -> str:
    return f"{hub.url}/user/{urllib.parse.quote(username)}/lab"


class PlayedPod(threading.Thread):
    """kube-controller-manager's StatefulSet controller and the kubelet for one notebook on the
    emulator: the pod is made from the template while replicas is 1; its container is a real
    jupyterhub-singleuser, started with the pod's command and environment on a loopback pod IP and
    reported Ready once it answers its readiness probe's path; scaling to 0 ends it."""

    def __init__(self, emulator: Any, namespace: str, name: str, work: Path, spark_remote: str) -> None:
        super().__init__(daemon=True)
        self.emulator, self.namespace, self.name, self.work = emulator, namespace, name, work
        self.spark_remote = spark_remote
        self.stopped = threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self.pod_uid: str | None = None
        self.starts = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stopped.is_set():
                self.step()
                time.sleep(0.2)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            stop_process(self.proc)

    def step(self) -> None:
        sts = self.emulator.get("apps/v1", "statefulsets", self.namespace, self.name)
        pod = self.emulator.get("v1", "pods", self.namespace, f"{self.name}-0")
        if sts is not None and pod is not None and (pod["metadata"].get("annotations") or {}) != (
                sts["spec"]["template"]["metadata"].get("annotations") or {}):
            # A changed template: the StatefulSet controller's rolling update replaces the pod.
            self.emulator.delete("v1", "pods", self.namespace, f"{self.name}-0")
        pod = statefulset_controller(self.emulator, self.namespace, self.name)
        if pod is None or pod["metadata"]["uid"] != self.pod_uid:
            stop_process(self.proc)
            self.proc, self.pod_uid = None, None
        if pod is None:
            return
        if self.proc is None:
            ip = f"127.{random.randint(60, 250)}.{random.randint(0, 255)}.{random.randint(2, 250)}"
            self.emulator.patch_status("v1", "pods", self.namespace, pod["metadata"]["name"],
                                       {"phase": "Running", "podIP": ip})
            pod = self.emulator.get("v1", "pods", self.namespace, pod["metadata"]["name"])
            secret_name = pod["spec"]["containers"][0]["envFrom"][0]["secretRef"]["name"]
            hub_env = secret_env(self.emulator.get("v1", "secrets", self.namespace, secret_name))
            self.proc = play_singleuser(pod, hub_env=hub_env, work=self.work, spark_remote=self.spark_remote)
            self.pod_uid = pod["metadata"]["uid"]
            self.starts += 1
            return
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])
        base_url = pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"].removesuffix("api")
        if not ready and answers(pod["status"]["podIP"], base_url):
            kubelet_runs(self.emulator, self.namespace, pod["metadata"]["name"], ip=pod["status"]["podIP"])
        if self.proc.poll() is not None:
            raise AssertionError(f"jupyterhub-singleuser exited: {(self.work / 'singleuser.log').read_text()[-5000:]}")
