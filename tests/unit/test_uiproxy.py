"""The Spark UI behind the notebook server's proxy: redirects kept inside it, and the kernel's
link under the server's base URL (the real proxy and UI: tests/workload/test_spark_ui_proxy.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sparkbook.notebook import startup, uiproxy

UI = "analytics-ui.team.svc"


@pytest.mark.parametrize("path,prefix", [
    (f"/proxy/{UI}:4040/jobs/", f"/proxy/{UI}:4040"),
    (f"/user/ana/proxy/{UI}:4040/", f"/user/ana/proxy/{UI}:4040"),
    (f"/user/ana/proxy/{UI}:4040", f"/user/ana/proxy/{UI}:4040"),
    (f"/proxy/{UI}:40400/", None),  # another port
    ("/lab/tree/x.ipynb", None),
])
def test_the_proxy_prefix_of_a_request(path: str, prefix: str | None) -> None:
    assert uiproxy.proxy_prefix(path, UI, 4040) == prefix


def _response(code: int, location: str) -> SimpleNamespace:
    return SimpleNamespace(code=code, headers={"Location": location})


def test_sparks_root_redirect_to_the_notebook_servers_host_becomes_the_backend_path() -> None:
    request = SimpleNamespace(host="hub.example.org", path=f"/user/ana/proxy/{UI}:4040/")
    response = _response(302, "http://hub.example.org/jobs/?x=1")
    uiproxy.keep_redirects_inside(response, request, UI, 4040)
    assert response.headers["Location"] == "/jobs/?x=1"  # jupyter-server-proxy then prefixes it


@pytest.mark.parametrize("location", [
    "/jobs/",  # a path: jupyter-server-proxy prefixes it itself
    "https://spark.apache.org/docs/",  # elsewhere
    f"http://hub.example.org/user/ana/proxy/{UI}:4040/jobs/",  # already inside
])
def test_other_redirects_are_left_alone(location: str) -> None:
    request = SimpleNamespace(host="hub.example.org", path=f"/user/ana/proxy/{UI}:4040/")
    response = _response(302, location)
    uiproxy.keep_redirects_inside(response, request, UI, 4040)
    assert response.headers["Location"] == location
    ok = _response(200, "http://hub.example.org/jobs/")
    uiproxy.keep_redirects_inside(ok, request, UI, 4040)
    assert ok.headers["Location"] == "http://hub.example.org/jobs/"  # not a redirect


def test_the_kernels_ui_link_is_under_the_servers_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(startup.UI_LINK_ENV, f"/proxy/{UI}:4040/jobs/")
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    assert startup.ui_link() == f"/proxy/{UI}:4040/jobs/"
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/ana/")
    assert startup.ui_link() == f"/user/ana/proxy/{UI}:4040/jobs/"
    assert startup.ui_root_link() == f"/user/ana/proxy/{UI}:4040"
    monkeypatch.setenv(startup.UI_LINK_ENV, "http://127.0.0.1:4040/jobs/")  # sparkbook local: the UI itself
    assert startup.ui_link() == "http://127.0.0.1:4040/jobs/"
