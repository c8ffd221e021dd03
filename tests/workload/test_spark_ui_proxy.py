"""The Spark UI opened from the notebook: a real Spark UI (the Spark Connect server's) behind a
real Jupyter server's proxy (jupyter-server-proxy, with the notebook image's server config), as a
browser would walk it: every page and asset it links resolves under the proxy path, and a session
shared by two notebook servers works through each of them."""

from __future__ import annotations

import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.jupyter_server import Jupyter, running_jupyter

if TYPE_CHECKING:
    from tests.spark_server import ConnectServer

pytestmark = pytest.mark.workload

ROOT = Path(__file__).resolve().parents[2]
JUPYTER_HOST = "127.0.0.1"
MAX_PAGES = 60  # pages walked per notebook server
PER_KIND = 2  # pages of the same path (/jobs/job/?id=...) walked at most this many times
# Links that change the application (kill a job or stage) are not followed.
NOT_FOLLOWED = re.compile(r"/kill/|/threadDump|/heapHistogram")


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.pages: list[str] = []
        self.assets: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.pages.append(a["href"])
        elif tag == "link" and a.get("href"):
            self.assets.append(a["href"])
        elif tag in ("script", "img") and a.get("src"):
            self.assets.append(a["src"])
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((JUPYTER_HOST, 0))
        return int(s.getsockname()[1])


def _server_config(spark_host: str) -> str:
    """The notebook image's jupyter_server_config.py, its proxy also allowed to the test's Spark
    host (in a cluster the UI is a `.svc` name; here a loopback address)."""
    image = (ROOT / "images" / "notebook" / "jupyter_server_config.py").read_text()
    return image + f"\n_image_allows = c.ServerProxy.host_allowlist\n" \
        f"c.ServerProxy.host_allowlist = lambda handler, host: host.split(':')[0] == {spark_host!r} " \
        f"or _image_allows(handler, host)\n"


def _get(url: str, jupyter: Jupyter) -> tuple[int, str, bytes, str]:
    req = urllib.request.Request(url, headers=jupyter.auth)
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, resp.geturl(), resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        return err.code, url, err.read(), ""


def walk(jupyter: Jupyter, prefix: str) -> dict[str, Any]:
    """Breadth-first through the UI from its jobs page: what was fetched, and what went wrong."""
    origin_url = "/".join(jupyter.url.split("/", 3)[:3])
    start = f"{origin_url}{prefix}/jobs/"
    queue, seen, kinds = [start], {start}, Counter()
    problems: list[str] = []
    pages = assets = 0
    ui_roots: set[str] = set()
    checked_assets: set[str] = set()
    while queue and pages < MAX_PAGES:
        url = queue.pop(0)
        status, final, body, ctype = _get(url, jupyter)
        if status != 200:
            problems.append(f"{url}: HTTP {status}")
            continue
        if not urllib.parse.urlsplit(final).path.startswith(prefix + "/"):
            problems.append(f"{url} redirected out of the proxy path to {final}")
            continue
        pages += 1
        if "html" not in ctype:
            continue
        links = Links()
        links.feed(body.decode(errors="replace"))
        for script in links.scripts:
            ui_roots.update(re.findall(r"setUIRoot\('([^']*)'\)", script))
        for kind, refs in (("page", links.pages), ("asset", links.assets)):
            for ref in refs:
                target = urllib.parse.urljoin(final, ref).split("#", 1)[0]
                parts = urllib.parse.urlsplit(target)
                if parts.scheme not in ("http", "https") or f"{parts.scheme}://{parts.netloc}" != origin_url:
                    continue  # elsewhere (Spark's docs) or javascript:
                if not parts.path.startswith(prefix + "/"):
                    problems.append(f"{final} links {ref!r} outside the proxy path")
                    continue
                if kind == "asset":
                    if target not in checked_assets:
                        checked_assets.add(target)
                        a_status, _, a_body, _ = _get(target, jupyter)
                        assets += 1
                        if a_status != 200 or not a_body:
                            problems.append(f"asset {target}: HTTP {a_status}")
                    continue
                if target in seen or NOT_FOLLOWED.search(parts.path):
                    continue
                seen.add(target)
                if kinds[parts.path] < PER_KIND:
                    kinds[parts.path] += 1
                    queue.append(target)
    return {"pages": pages, "assets": assets, "problems": problems, "ui_roots": ui_roots, "paths": set(kinds)}


@pytest.fixture(scope="module")
def ui_with_history(spark_connect_server: ConnectServer) -> str:
    """The shared Spark UI after a few jobs, a SQL query and a cached table (so its Jobs, Stages,
    Storage, SQL and Connect pages all have something to link)."""
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.remote(spark_connect_server.token_url).getOrCreate()
    try:
        spark.range(0, 1000, 1, 4).selectExpr("id % 7 AS k").groupBy("k").count().collect()
        spark.sql("SELECT count(*) FROM range(100)").collect()
        cached = spark.range(50).cache()
        cached.count()
        return spark.conf.get("spark.app.id")
    finally:
        spark.stop()


@pytest.mark.parametrize("base_url", ["/", "/user/ana/"], ids=["plain", "jupyterhub-style"])
def test_every_page_and_asset_of_the_spark_ui_resolves_under_the_proxy_path(
        spark_connect_server: ConnectServer, ui_with_history: str, tmp_path: Path, base_url: str) -> None:
    host_port = spark_connect_server.ui_url.split("//", 1)[1]
    prefix = f"{base_url.rstrip('/')}/proxy/{host_port}"
    port = _free_port()
    origin = f"http://{JUPYTER_HOST}:{port}"
    with running_jupyter(host=JUPYTER_HOST, port=port, token="t0ken-for-the-proxy-test", work=tmp_path,
                         base_url=base_url, config=_server_config(spark_connect_server.host)) as jupyter:
        seen = walk(jupyter, prefix)
        # The UI root the pages' scripts build REST URLs on (executors, timelines) is the proxy path.
        assert seen["ui_roots"] == {prefix}, seen["ui_roots"]
        # The REST API those scripts call, through the same path.
        status, _, body, _ = _get(f"{origin}{prefix}/api/v1/applications/{ui_with_history}/executors", jupyter)
        assert status == 200 and b'"id" : "driver"' in body, body[:300]
        # The UI root itself redirects to its jobs page, inside the proxy path.
        status, final, _, _ = _get(f"{origin}{prefix}/", jupyter)
        assert status == 200 and urllib.parse.urlsplit(final).path == f"{prefix}/jobs/", final
    print(f"walked {seen['pages']} pages ({len(seen['paths'])} kinds) and {seen['assets']} assets under {prefix}")
    assert not seen["problems"], "\n".join(seen["problems"][:20])
    for tab in ("/jobs/", "/jobs/job/", "/stages/", "/stages/stage/", "/storage/", "/environment/", "/executors/",
                "/SQL/", "/SQL/execution/", "/connect/"):
        assert f"{prefix}{tab}" in seen["paths"] | {f"{prefix}/jobs/"}, (tab, sorted(seen["paths"]))
    assert seen["pages"] >= 15 and seen["assets"] >= 10, seen


def test_a_session_shared_by_two_notebook_servers_works_through_each(
        spark_connect_server: ConnectServer, ui_with_history: str, tmp_path: Path) -> None:
    host_port = spark_connect_server.ui_url.split("//", 1)[1]
    config = _server_config(spark_connect_server.host)
    with running_jupyter(host=JUPYTER_HOST, port=_free_port(), token="token-of-ana", work=tmp_path / "ana",
                         base_url="/user/ana/", config=config) as ana, \
            running_jupyter(host=JUPYTER_HOST, port=_free_port(), token="token-of-bo", work=tmp_path / "bo",
                            base_url="/user/bo/", config=config) as bo:
        for jupyter, user in ((ana, "ana"), (bo, "bo"), (ana, "ana")):  # alternately: no state kept per UI
            prefix = f"/user/{user}/proxy/{host_port}"
            port = jupyter.url.split(":")[2].split("/")[0]
            status, final, body, _ = _get(f"http://{JUPYTER_HOST}:{port}{prefix}/jobs/", jupyter)
            assert status == 200 and f"setUIRoot('{prefix}')" in body.decode(), final
            hrefs = re.findall(r'href="(/[^"]*)"', body.decode())
            assert hrefs and all(h.startswith(prefix + "/") for h in hrefs), [h for h in hrefs if not h.startswith(prefix)]
        # Each server's own token only: bo's token does not open ana's proxy.
        port = ana.url.split(":")[2].split("/")[0]
        req = urllib.request.Request(f"http://{JUPYTER_HOST}:{port}/user/ana/proxy/{host_port}/jobs/",
                                     headers=bo.auth)
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.build_opener(_NoRedirects).open(req, timeout=20)
        assert refused.value.code in (302, 401, 403)
        if refused.value.code == 302:  # to the login page, not to the UI
            assert "/user/ana/login" in refused.value.headers["Location"], refused.value.headers["Location"]
