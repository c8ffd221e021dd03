"""Spark UI links that outlive the driver: a Jupyter server extension of the notebook image.

A notebook keeps its outputs, and with them the links of the progress display (``job 3``) and of
``%%info``; the driver they point at does not last (idle suspension, suspend, a replaced driver).
So those links name the application instead of the driver:
``<base_url>sparkbook/spark-ui/<application id>/<path of the Spark UI>``, and this handler sends
the browser on, each time the link is followed:

* to the live Spark UI (through the server's proxy) while the session's driver runs that
  application (its REST API lists it);
* to the History Server's page of the same application otherwise, since the driver wrote its
  event log there (``SparkSession.spec.eventLog``): ``/history/<id>/<path>``.

Set up only where a History Server is known: the operator then gives the notebook pod
``SPARKBOOK_SPARK_LINKS`` (the kernel builds its links on it) and ``SPARKBOOK_SPARK_HISTORY[_LINK]``.
Standard library and Jupyter Server only: it runs in the server process.
"""

from __future__ import annotations

import json
import os
from typing import Any

from sparkbook.names import HISTORY_ENV, HISTORY_LINK_ENV, SPARK_LINKS_PATH

UI_ENV = "SPARKBOOK_SPARK_UI"  # the live UI's Service (the kernel's startup reads the same)
UI_LINK_ENV = "SPARKBOOK_SPARK_UI_LINK"
APP_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def _root(link: str | None) -> str | None:
    """The live UI's root from its link (``.../jobs/`` is the page people land on)."""
    if not link:
        return None
    link = link.rstrip("/")
    return link[: -len("/jobs")] if link.endswith("/jobs") else link


def target(app_id: str, path: str, query: str, *, live_apps: list[str] | None, ui_link: str | None,
           history_link: str | None) -> str | None:
    """Where a stable link goes now: the live UI when it runs `app_id`, else the History Server's
    page of it, else nowhere (None). `path` is the Spark UI's own (``jobs/job/``)."""
    suffix = path.lstrip("/") + (f"?{query}" if query else "")
    live = _root(ui_link)
    if live and live_apps is not None and app_id in live_apps:
        return f"{live}/{suffix}"
    if history_link:
        return f"{history_link.rstrip('/')}/history/{app_id}/{suffix}"
    return None


def _with_base(link: str | None, base_url: str) -> str | None:
    """Env links are given from the server's root (``/proxy/...``); a server under a base URL of
    its own (JupyterHub's) serves them below it."""
    if link and link.startswith("/proxy/") and base_url.rstrip("/"):
        return base_url.rstrip("/") + link
    return link


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "sparkbook.notebook.links"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from jupyter_server.base.handlers import JupyterHandler
    from jupyter_server.utils import url_path_join
    from tornado import web
    from tornado.httpclient import AsyncHTTPClient, HTTPClientError

    class SparkUILinkHandler(JupyterHandler):
        @web.authenticated
        async def get(self, app_id: str, path: str) -> None:
            if not app_id or not set(app_id) <= APP_ID_CHARS:
                raise web.HTTPError(400, "not a Spark application ID")
            live_apps: list[str] | None = None
            ui = os.environ.get(UI_ENV)
            if ui:
                try:
                    response = await AsyncHTTPClient().fetch(f"{ui.rstrip('/')}/api/v1/applications",
                                                             connect_timeout=2, request_timeout=3)
                    live_apps = [str(a.get("id")) for a in json.loads(response.body)]
                except (OSError, HTTPClientError, ValueError):
                    live_apps = None  # no driver (or not yet): the History Server's page
            base = self.settings.get("base_url", "/")
            where = target(app_id, path, self.request.query, live_apps=live_apps,
                           ui_link=_with_base(os.environ.get(UI_LINK_ENV), base),
                           history_link=_with_base(os.environ.get(HISTORY_LINK_ENV) or os.environ.get(HISTORY_ENV), base))
            if where is None:
                raise web.HTTPError(404, f"application {app_id} has no running driver and no History Server is known")
            self.redirect(where, permanent=False)

    base_url = serverapp.web_app.settings.get("base_url", "/")
    pattern = url_path_join(base_url, SPARK_LINKS_PATH, r"([^/]+)/?(.*)")
    serverapp.web_app.add_handlers(".*$", [(pattern, SparkUILinkHandler)])
    serverapp.log.info("Sparkbook: stable Spark UI links at %s", url_path_join(base_url, SPARK_LINKS_PATH))
