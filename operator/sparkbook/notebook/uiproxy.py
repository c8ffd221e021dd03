"""The Spark UI through the notebook server's proxy (jupyter-server-proxy's ``/proxy/<host>:<port>/``).

How Spark's UI finds its own path there
    jupyter-server-proxy sends ``X-Forwarded-Context: <base_url>proxy/<host>:<port>`` with every
    request, and Spark's UI builds every link, asset URL and the ``uiRoot`` its scripts call the
    REST API on from that header (when ``spark.ui.proxyBase`` is not set). So the same driver
    serves correct pages to each notebook server that proxies it, whatever its base URL
    (``/user/<name>/`` under JupyterHub): ``spark.ui.proxyBase`` would pin one path for all.

The one thing that escapes
    The UI's root redirects to its jobs page with an absolute URL built from the request's Host,
    which is the notebook server's own (``Location: http://<notebook server>/jobs/``).
    jupyter-server-proxy (4.5 and later) puts the proxy path in front of a ``Location: /path``
    but leaves absolute URLs alone, so the browser would leave the proxy and land on a 404 of
    the notebook server. :func:`keep_redirects_inside` turns such a URL back into the path the
    backend meant (``/jobs/``), which the proxy then prefixes as usual; the notebook image's
    server configuration installs it as ``c.ServerProxy.non_service_rewrite_response``.
    Standard library only: it runs in the Jupyter server process.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

REDIRECTS = (301, 302, 303, 307, 308)


def proxy_prefix(request_path: str, host: str, port: Any) -> str | None:
    """``<base_url>proxy/<host>:<port>`` of a proxied request's path, if it is one."""
    marker = f"/proxy/{host}:{port}"
    at = request_path.find(marker + "/")
    if at < 0 and request_path.endswith(marker):
        at = len(request_path) - len(marker)
    return request_path[: at + len(marker)] if at >= 0 else None


def backend_path(location: str, *, request_host: str, prefix: str) -> str:
    """A redirect to the notebook server's own host outside ``prefix``, as the backend path it
    meant (``http://notebook:8888/jobs/`` -> ``/jobs/``); anything else unchanged."""
    parts = urlsplit(location)
    if not parts.netloc or parts.netloc != request_host:
        return location  # a path (the proxy prefixes it) or another host: not ours to change
    if parts.path == prefix or parts.path.startswith(prefix + "/"):
        return location  # already inside
    return urlunsplit(("", "", parts.path or "/", parts.query, parts.fragment))


def keep_redirects_inside(response: Any, request: Any, host: str, port: Any) -> None:
    """jupyter-server-proxy response rewriter: a redirect stays inside the proxy path."""
    if response.code not in REDIRECTS:
        return
    location = response.headers.get("Location")
    prefix = proxy_prefix(request.path, host, port)
    if location and prefix:
        response.headers["Location"] = backend_path(location, request_host=request.host, prefix=prefix)
