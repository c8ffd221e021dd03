"""Links that keep working after the driver: the notebook pod's env, the kernel's links, and the
notebook server's redirect decision."""

from __future__ import annotations

import pytest

from sparkbook import names
from sparkbook.api.notebookserver import NotebookServerSpec
from sparkbook.build.notebook import history_env, statefulset
from sparkbook.notebook import links, startup

OWNER = {"apiVersion": names.API_VERSION, "kind": "NotebookServer",
         "metadata": {"name": "bob", "namespace": "team-a", "uid": "u1"}}
HS = "http://sparkbook-history.ops.svc:18080"
UI_LINK = "/proxy/analytics-ui.team-a.svc:4040/jobs/"


def _env(**kw) -> dict[str, str]:
    sts = statefulset(owner=OWNER, spec=NotebookServerSpec.model_validate({"spark": {"sessionRef": {"name": "analytics"}}}),
                      image="nb:1", running=True, **kw)
    return {e["name"]: e.get("value") for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_an_in_cluster_history_server_is_linked_through_the_notebook_servers_proxy():
    env = _env(history_url=HS)
    assert env[names.HISTORY_ENV] == HS
    assert env[names.HISTORY_LINK_ENV] == "/proxy/sparkbook-history.ops.svc:18080"
    assert env[names.SPARK_LINKS_ENV] == "/sparkbook/spark-ui"


def test_an_outside_history_server_is_linked_as_it_is_and_none_changes_nothing():
    env = {e["name"]: e["value"] for e in history_env(history_url="https://spark-history.example.com/")}
    assert env[names.HISTORY_LINK_ENV] == "https://spark-history.example.com"
    plain = _env()
    assert not {names.HISTORY_ENV, names.HISTORY_LINK_ENV, names.SPARK_LINKS_ENV} & set(plain)


def test_the_kernels_links_name_the_application_when_stable_links_exist(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(startup.UI_LINK_ENV, UI_LINK)
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    monkeypatch.delenv(names.SPARK_LINKS_ENV, raising=False)
    assert startup.ui_root_link("spark-1") == "/proxy/analytics-ui.team-a.svc:4040"
    monkeypatch.setenv(names.SPARK_LINKS_ENV, "/sparkbook/spark-ui")
    assert startup.ui_root_link("spark-1") == "/sparkbook/spark-ui/spark-1"
    assert startup.ui_root_link(None) == "/proxy/analytics-ui.team-a.svc:4040"  # not connected yet
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/bob/")
    assert startup.ui_root_link("spark-1") == "/user/bob/sparkbook/spark-ui/spark-1"


def test_history_page_for_people(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    monkeypatch.delenv(names.HISTORY_LINK_ENV, raising=False)
    monkeypatch.delenv(names.HISTORY_ENV, raising=False)
    assert startup.history_page("spark-1") is None
    monkeypatch.setenv(names.HISTORY_LINK_ENV, "/proxy/sparkbook-history.ops.svc:18080")
    assert startup.history_page("spark-1") == "/proxy/sparkbook-history.ops.svc:18080/history/spark-1/jobs/"
    assert startup.history_page(None) is None


@pytest.mark.parametrize("live_apps, expected", [
    (["spark-1"], "/proxy/analytics-ui.team-a.svc:4040/jobs/job/?id=3"),
    (["spark-2"], "/proxy/h.ops.svc:18080/history/spark-1/jobs/job/?id=3"),  # a newer driver runs
    (None, "/proxy/h.ops.svc:18080/history/spark-1/jobs/job/?id=3"),  # no driver at all
])
def test_a_stable_link_goes_to_the_live_ui_only_while_it_runs_that_application(live_apps, expected):
    assert links.target("spark-1", "jobs/job/", "id=3", live_apps=live_apps, ui_link=UI_LINK,
                        history_link="/proxy/h.ops.svc:18080") == expected


def test_without_a_history_server_a_gone_application_has_nowhere_to_go():
    assert links.target("spark-1", "jobs/", "", live_apps=None, ui_link=UI_LINK, history_link=None) is None


def test_the_extension_registers_under_the_base_url():
    assert links._jupyter_server_extension_points() == [{"module": "sparkbook.notebook.links"}]
    assert links._with_base("/proxy/h:1", "/user/bob/") == "/user/bob/proxy/h:1"
    assert links._with_base("/proxy/h:1", "/") == "/proxy/h:1"
