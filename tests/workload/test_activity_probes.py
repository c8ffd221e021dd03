"""The activity probes against REAL servers: a jupyter-server on loopback and a Spark Connect
server of this module's own."""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web

from tests.jupyter_server import Jupyter, running_jupyter
from tests.spark_server import SPARK_PRIVATE_IP, connect_server
from sparkbook.activity import Activity, ProbeError, idle_for, probe_jupyter, probe_spark
from sparkbook.build.launch import SERVER_TOKEN_ENV

if TYPE_CHECKING:
    from tests.spark_server import ConnectServer

pytestmark = pytest.mark.workload

JUPYTER_HOST = "127.0.7.1"  # the Jupyter server's own loopback address
NOBODY_HOST = "127.0.7.2"  # nothing listens here
FAKE_HOST = "127.0.7.3"  # hand-made servers for the fallback paths


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def _until(check: Callable[[], Awaitable[Activity]], ok: Callable[[Activity], bool], timeout: float) -> Activity:
    """Probe until ``ok`` holds; the last answer either way."""
    deadline = time.monotonic() + timeout
    while True:
        a = await check()
        if ok(a) or time.monotonic() > deadline:
            return a
        await asyncio.sleep(0.2)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# ---------------------------------------------------------------------------- Jupyter


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jupyter]:
    token = secrets.token_urlsafe(24)
    work = tmp_path_factory.mktemp("jupyter")
    with running_jupyter(host=JUPYTER_HOST, port=_free_port(JUPYTER_HOST), token=token, work=work) as server:
        yield server


async def _raw_status(http: aiohttp.ClientSession, jupyter: Jupyter) -> dict[str, Any]:
    async with http.get(f"{jupyter.url}/api/status", headers=jupyter.auth) as resp:
        resp.raise_for_status()
        return dict(await resp.json())


async def test_fresh_jupyter_is_idle_and_idleness_grows(http: aiohttp.ClientSession, jupyter: Jupyter) -> None:
    a = await probe_jupyter(http, jupyter.url, jupyter.token)
    assert not a.busy, a.detail
    assert a.last_activity is not None and a.last_activity.tzinfo is not None
    assert a.detail.startswith("no kernels, no terminals"), a.detail
    first = idle_for(a, now=_now(), started=None)
    await asyncio.sleep(1.0)
    b = await probe_jupyter(http, jupyter.url, jupyter.token)
    second = idle_for(b, now=_now(), started=None)
    assert second >= first + timedelta(seconds=0.9)


async def test_polling_does_not_count_as_activity(http: aiohttp.ClientSession, jupyter: Jupyter) -> None:
    before = await probe_jupyter(http, jupyter.url, jupyter.token)
    raw_before = (await _raw_status(http, jupyter))["last_activity"]
    for _ in range(10):
        await asyncio.sleep(0.1)
        again = await probe_jupyter(http, jupyter.url, jupyter.token)
        assert again.last_activity == before.last_activity
    assert (await _raw_status(http, jupyter))["last_activity"] == raw_before
    # The check can fail: the same request without no_track_activity is activity.
    async with http.get(f"{jupyter.url}/api/kernels", headers=jupyter.auth) as resp:
        assert resp.status == 200
    after = await probe_jupyter(http, jupyter.url, jupyter.token)
    assert after.last_activity is not None and before.last_activity is not None
    assert after.last_activity > before.last_activity


async def test_kernel_running_code_is_busy(http: aiohttp.ClientSession, jupyter: Jupyter) -> None:
    from jupyter_client.asynchronous import AsyncKernelClient

    async with http.post(f"{jupyter.url}/api/kernels", headers=jupyter.auth, json={"name": "python3"}) as resp:
        assert resp.status == 201, await resp.text()
        kernel_id = (await resp.json())["id"]
    client = AsyncKernelClient()
    try:
        client.load_connection_file(str(jupyter.runtime_dir / f"kernel-{kernel_id}.json"))
        client.start_channels()
        await client.wait_for_ready(timeout=30)
        probe = lambda: probe_jupyter(http, jupyter.url, jupyter.token)  # noqa: E731
        idle = await _until(probe, lambda a: not a.busy, 5)
        assert not idle.busy and idle.detail.startswith("1 kernel idle"), idle.detail

        started = _now()
        msg_id = client.execute("import time; time.sleep(5)")
        busy = await _until(probe, lambda a: a.busy, 4)
        assert busy.busy, busy.detail
        assert busy.detail.startswith("1 of 1 kernel busy"), busy.detail
        assert idle_for(busy, now=_now(), started=None) == timedelta(0)

        reply = await client.get_shell_msg(timeout=15)
        assert reply["parent_header"]["msg_id"] == msg_id and reply["content"]["status"] == "ok"
        done = await _until(probe, lambda a: not a.busy, 5)
        assert not done.busy, done.detail
        assert done.last_activity is not None and done.last_activity >= started + timedelta(seconds=4.5)
    finally:
        client.stop_channels()
        async with http.delete(f"{jupyter.url}/api/kernels/{kernel_id}", headers=jupyter.auth) as resp:
            assert resp.status == 204


async def test_open_terminal_is_busy(http: aiohttp.ClientSession, jupyter: Jupyter) -> None:
    async with http.post(f"{jupyter.url}/api/terminals", headers=jupyter.auth) as resp:
        assert resp.status == 200, f"terminals unavailable: HTTP {resp.status} {await resp.text()}"
        name = (await resp.json())["name"]
    try:
        a = await probe_jupyter(http, jupyter.url, jupyter.token)
        assert a.busy and "1 terminal open" in a.detail, a.detail
    finally:
        async with http.delete(f"{jupyter.url}/api/terminals/{name}", headers=jupyter.auth) as resp:
            assert resp.status == 204
    a = await probe_jupyter(http, jupyter.url, jupyter.token)
    assert not a.busy and "no terminals" in a.detail, a.detail


async def test_wrong_token_is_a_clear_error_without_the_token(
    http: aiohttp.ClientSession, jupyter: Jupyter
) -> None:
    wrong = "wrong-" + secrets.token_urlsafe(16)
    with pytest.raises(ProbeError) as err:
        await probe_jupyter(http, jupyter.url, wrong)
    message = str(err.value)
    assert "refused our credentials" in message and "403" in message, message
    assert wrong not in message and jupyter.token not in message
    assert err.value.__cause__ is None


async def test_unreachable_jupyter_is_a_probe_error(http: aiohttp.ClientSession) -> None:
    url = f"http://{NOBODY_HOST}:{_free_port(NOBODY_HOST)}"
    with pytest.raises(ProbeError, match="unreachable") as err:
        await probe_jupyter(http, url, "secret-token")
    assert "secret-token" not in str(err.value)


# ---------------------------------------------------------------------------- fallbacks (hand-made servers)


async def test_fallbacks_without_terminals_or_connect_endpoints(http: aiohttp.ClientSession) -> None:
    """A Jupyter server without terminals, a Spark UI without Connect: both 404, neither fails."""
    app_id = "local-1795647835484"
    routes = {
        "/api/status": {"last_activity": "2026-11-25T23:04:47.803112Z", "started": "2026-11-25T23:04:47.803112Z",
                        "kernels": 0, "connections": 0},
        "/api/kernels": [],
        "/api/v1/applications": [{"id": app_id, "attempts": [{"completed": False}]}],
        f"/api/v1/applications/{app_id}/jobs": [
            {"jobId": 0, "status": "SUCCEEDED", "submissionTime": "2026-11-25T23:04:25.680GMT",
             "completionTime": "2026-11-25T23:04:26.158GMT"},
        ],
    }  # fmt: skip
    seen: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(request.path_qs)
        if request.path in routes:
            return web.json_response(routes[request.path])
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port(FAKE_HOST)
    await web.TCPSite(runner, FAKE_HOST, port).start()
    try:
        j = await probe_jupyter(http, f"http://{FAKE_HOST}:{port}/", "t")
        assert not j.busy and j.detail.startswith("no kernels, no terminals"), j.detail
        s = await probe_spark(http, f"http://{FAKE_HOST}:{port}")
        assert not s.busy
        assert s.last_activity == datetime(2026, 11, 25, 23, 4, 26, 158000, tzinfo=timezone.utc)
        assert "no Spark Connect data" in s.detail
        assert f"/api/v1/applications/{app_id}/jobs" in seen  # all jobs, not only running ones
    finally:
        await runner.cleanup()


# ---------------------------------------------------------------------------- Spark


@pytest.fixture(autouse=True)
def _no_client_token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The pyspark client falls back to this variable and then insists on TLS.
    monkeypatch.delenv(SERVER_TOKEN_ENV, raising=False)


@pytest.fixture(scope="module")
def spark_connect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConnectServer]:
    """Not the shared server: these tests judge the whole server's activity, and other tests'
    kernels leave their operations open there until Spark's detach timeout (the JupyterHub
    tests stop their played servers, and so their kernels, abruptly)."""
    with connect_server(tmp_path_factory.mktemp("spark-connect-private"), SPARK_PRIVATE_IP) as server:
        yield server


@pytest.fixture
def spark_client(spark_connect_server: ConnectServer) -> Iterator[Any]:
    from pyspark.sql.connect.session import SparkSession

    session = SparkSession.builder.remote(spark_connect_server.token_url).create()
    yield session
    session.stop()


async def test_spark_without_client_activity_is_idle(
    http: aiohttp.ClientSession, spark_connect_server: ConnectServer
) -> None:
    a = await probe_spark(http, spark_connect_server.ui_url)
    assert not a.busy, a.detail
    assert "0 running operations, 0 running jobs" in a.detail, a.detail


async def test_spark_query_moves_last_activity(
    http: aiohttp.ClientSession, spark_connect_server: ConnectServer, spark_client: Any
) -> None:
    before = await probe_spark(http, spark_connect_server.ui_url)
    await asyncio.sleep(0.05)  # a millisecond-resolution timestamp must be able to move
    assert await asyncio.to_thread(lambda: spark_client.range(1000).count()) == 1000
    probe = lambda: probe_spark(http, spark_connect_server.ui_url)  # noqa: E731
    # The operation of the finished query is closed a moment after the client has its answer.
    after = await _until(
        probe,
        lambda a: a.last_activity is not None and not a.busy
        and (before.last_activity is None or a.last_activity > before.last_activity),
        15,
    )
    assert after.last_activity is not None
    assert before.last_activity is None or after.last_activity > before.last_activity, (before, after)
    assert not after.busy, after.detail
    assert idle_for(after, now=_now(), started=None) < timedelta(seconds=10)


async def test_spark_long_query_is_busy(
    http: aiohttp.ClientSession, spark_connect_server: ConnectServer, spark_client: Any
) -> None:
    rows = 4_000_000_000  # a few seconds on two local cores
    result: list[Any] = []

    def run() -> None:
        try:  # the sum of id itself would overflow a long (ANSI mode): sum the last digit
            result.append(spark_client.range(0, rows).selectExpr("sum(id % 10)").collect()[0][0])
        except Exception as exc:  # reported by the assertion below, not as a thread warning
            result.append(exc)

    query = threading.Thread(target=run, daemon=True)
    started = _now()
    query.start()
    probe = lambda: probe_spark(http, spark_connect_server.ui_url)  # noqa: E731
    busy = await _until(probe, lambda a: a.busy, 15)
    assert busy.busy, f"never busy while the query ran: {busy.detail}"
    assert "1 running operation" in busy.detail, busy.detail
    assert idle_for(busy, now=_now(), started=None) == timedelta(0)
    await asyncio.to_thread(query.join, 60)
    elapsed = (_now() - started).total_seconds()
    assert result == [rows // 10 * 45], result
    print(f"long query took {elapsed:.1f}s")
    done = await _until(probe, lambda a: not a.busy, 5)
    assert not done.busy, done.detail
    assert done.last_activity is not None and done.last_activity > started
