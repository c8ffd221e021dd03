"""Kernel start-up: ``spark`` from ``SPARK_REMOTE``, the magics, and a one-line banner.

The operator mounts a start-up file into every notebook pod (``STARTUP_PY`` in
``sparkbook.build.notebook``) that calls :func:`start` with the user namespace.

Connecting, and bounding it
    Building a Spark Connect session makes no RPC; the first RPC does, and pyspark's default
    retry policy keeps retrying an UNAVAILABLE server for about ten minutes. :func:`start`
    therefore builds the session object at once (in the kernel's main thread, so pyspark's
    thread-local "active session" is the kernel's) and runs the first RPCs (``spark.version``,
    ``spark.conf.get("spark.app.id")``) in a daemon thread under a short retry policy
    (:data:`PROBE_RETRIES`, a few seconds of backoff). The kernel finishes starting immediately;
    the first cell the user runs waits for the probe, at most ``SPARKBOOK_CONNECT_TIMEOUT``
    seconds (default 15) counted from kernel start -- which also covers addresses that drop
    packets, where a single gRPC connect attempt can take 20 s. The banner or the failure
    sentence is printed in that first cell's output (output printed while a kernel starts
    belongs to no cell and notebook front-ends drop it). After a successful probe pyspark's own
    retry policy is restored, so a running notebook rides out a driver restart as usual; after
    a failed one the client keeps a single-attempt policy (else pyspark's exit hooks would
    retry the absent server for minutes when the kernel shuts down).

When Spark is unreachable
    ``spark`` is bound to a :class:`SparkUnavailable` placeholder rather than left undefined: a
    ``NameError`` would hide why. Using any of its attributes tries to connect again (bounded
    the same way) and, on success, rebinds ``spark`` to the real session and carries on, so a
    notebook whose Spark driver was still starting needs no kernel restart; otherwise it raises
    :class:`SparkUnavailableError` carrying the same one-sentence explanation, which the magics'
    exception handler shows without a traceback.

Secrets
    ``SPARK_REMOTE`` carries the Connect token as ``;authorization=Bearer%20<token>``. Every
    message printed here passes through :func:`mask`, and the session URL is only ever shown as
    ``sc://host:port``.

Side effect on the kernel: pyspark's ``[RETRIES_EXCEEDED]`` UserWarning is filtered out (the
sentence says more), nothing else.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
import warnings
from typing import Any
from urllib.parse import unquote

from sparkbook.names import CLIENT_TOKEN_ENV, HISTORY_ENV, HISTORY_LINK_ENV, LOCAL_ENV, SPARK_LINKS_ENV

REMOTE_ENV = "SPARK_REMOTE"
SESSION_ENV = "SPARKBOOK_SPARK_SESSION"
UI_ENV = "SPARKBOOK_SPARK_UI"  # the Spark UI Service, reachable from the kernel
UI_LINK_ENV = "SPARKBOOK_SPARK_UI_LINK"  # the same UI through the notebook server, for browsers
TIMEOUT_ENV = "SPARKBOOK_CONNECT_TIMEOUT"
DEFAULT_TIMEOUT_S = 15.0

# Retry policy for the first RPCs: 0.2 + 0.4 + 0.8 + 1.6 + 2 s of backoff, then give up.
PROBE_RETRIES = {"max_retries": 5, "initial_backoff": 200, "backoff_multiplier": 2.0, "max_backoff": 2000}

_SECRET_PARAM = re.compile(r"(?i)\b(authorization|token|x-api-key)=[^;\s'\"&>]*")
_BEARER = re.compile(r"(?i)\bBearer(\s+|%20)[^;\s'\"&>]+")


class SparkbookError(Exception):
    """An error the magics show as one short message, without a traceback."""

    label: str | None = None  # shown instead of the class name (e.g. the Spark error's class)


class SparkUnavailableError(SparkbookError):
    """``spark`` is used while the Spark Connect session cannot be reached."""

    label = "Spark unavailable"


def _known_secrets() -> list[str]:
    secrets = []
    token = os.environ.get(CLIENT_TOKEN_ENV)
    if token:
        secrets.append(token)
    for match in re.finditer(r"(?i)authorization=([^;]*)", os.environ.get(REMOTE_ENV, "")):
        value = unquote(match.group(1))
        secrets.append(value.split(" ", 1)[-1])
    return [s for s in secrets if len(s) >= 4 and "$(" not in s]


def mask(text: str) -> str:
    """``text`` with credentials replaced by ``***`` (URL parameters, Bearer values, the token)."""
    text = _SECRET_PARAM.sub(lambda m: f"{m.group(1)}=***", text)
    text = _BEARER.sub("Bearer ***", text)
    for secret in _known_secrets():
        text = text.replace(secret, "***")
    return text


def endpoint(url: str) -> str:
    """``sc://host:port`` of a Connect URL, without its parameters (so never its token)."""
    return url.split(";", 1)[0].rstrip("/") or "sc://"


def session_name() -> str | None:
    return os.environ.get(SESSION_ENV) or None


def is_local() -> bool:
    """Started by ``sparkbook local``: Spark runs on this machine, there is no kubectl to run."""
    return os.environ.get(LOCAL_ENV, "").strip().lower() in ("1", "true", "yes")


def plural(n: int | str, word: str) -> str:
    """``1 core``, ``2 cores``."""
    return f"{n} {word}" if str(n).strip() == "1" else f"{n} {word}s"


LOCAL_HINT = "the terminal that runs `sparkbook local` (is its Spark Connect server still up?)"


def kubectl_hint(session: str | None = None) -> str:
    """Where to look when Spark does not answer: the SparkSession (in a cluster), or the terminal
    of `sparkbook local` (on a laptop, where there is no kubectl to run)."""
    if is_local():
        return LOCAL_HINT
    session = session if session is not None else session_name()
    return f"`kubectl get sparksession {session}`" if session else "`kubectl get sparksessions`"


def ui_link() -> str | None:
    """The Spark UI link for people: the notebook server's proxied path if set, else the Service.

    The proxied path is given from the server's root (``/proxy/...``); a server with a base URL
    of its own (JupyterHub's ``/user/<name>/``, which it tells the server and its kernels in
    ``JUPYTERHUB_SERVICE_PREFIX``) serves it under that."""
    link = os.environ.get(UI_LINK_ENV) or os.environ.get(UI_ENV) or None
    prefix = (os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or "/").rstrip("/")
    if link and prefix and link.startswith("/proxy/"):
        link = prefix + link
    return link


def _served(link: str | None) -> str | None:
    """A path from the notebook server's root, under its base URL when it has one of its own
    (JupyterHub's ``/user/<name>/``, told in ``JUPYTERHUB_SERVICE_PREFIX``)."""
    prefix = (os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or "/").rstrip("/")
    if link and prefix and link.startswith(("/proxy/", "/sparkbook/")):
        link = prefix + link
    return link


_LAST_APP_ID: str | None = None  # the application this kernel last talked to (its driver may be gone)


def remember_app(app_id: str | None) -> None:
    global _LAST_APP_ID
    if app_id:
        _LAST_APP_ID = app_id


def last_app_id() -> str | None:
    return _LAST_APP_ID


def history_page(app_id: str | None) -> str | None:
    """The History Server's page of `app_id` for people, if the notebook knows a History Server."""
    link = _served(os.environ.get(HISTORY_LINK_ENV) or os.environ.get(HISTORY_ENV) or None)
    if not link or not app_id:
        return None
    return f"{link.rstrip('/')}/history/{app_id}/jobs/"


def ui_root_link(app_id: str | None = None) -> str | None:
    """The Spark UI's root for people's links (``.../jobs/job/?id=3`` is built on it).

    With the stable links of the notebook server (sparkbook.notebook.links, set up when a History
    Server is known) and the application known, links go through them: the live UI while the
    driver runs, the History Server's page of the same application once it is gone."""
    stable = _served(os.environ.get(SPARK_LINKS_ENV) or None)
    if stable and app_id:
        return f"{stable.rstrip('/')}/{app_id}"
    link = (ui_link() or "").rstrip("/")
    if link.endswith("/jobs"):
        link = link[: -len("/jobs")]
    return link or None


def watch_cells(conn: Connection) -> None:
    """Once connected: jobs named after their cell, and live progress with job links under every
    cell that runs Spark work (idempotent, never raises)."""
    ip = _ipython()
    if ip is None or getattr(ip, "kernel", None) is None or conn.session is None:
        return
    try:
        from sparkbook.notebook import naming, progress

        if getattr(ip, "_sparkbook_namer", None) is None:
            ip._sparkbook_namer = naming.JobNamer(conn.session)
            ip.events.register("pre_run_cell", ip._sparkbook_namer.pre_run_cell)
        progress.install(ip, conn.session, ui_base=os.environ.get(UI_ENV) or None,
                         ui_link=ui_root_link(conn.info.get("app_id")), app_id=conn.info.get("app_id"))
    except Exception as exc:  # noqa: BLE001 - a nicety; Spark itself works without it
        print(f"Sparkbook: no job names or progress display ({mask(f'{type(exc).__name__}: {exc}')})",
              file=sys.stderr)


def _timeout() -> float:
    try:
        value = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
    except ValueError:
        return DEFAULT_TIMEOUT_S
    return value if value > 0 else DEFAULT_TIMEOUT_S


def _grpc_error(exc: BaseException | None) -> Any:
    """The grpc.RpcError behind a pyspark Connect error, if any."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if hasattr(exc, "code") and hasattr(exc, "details") and callable(exc.code):
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def describe_failure(
    exc: BaseException | None, *, where: str, session: str | None, timeout: float | None = None
) -> str:
    """One sentence: what failed, where, and what to try. ``exc`` None means a timeout."""
    hint = kubectl_hint(session)
    if exc is None:
        return (
            f"Spark did not answer at {where} within {timeout:g} s; check {hint}{'' if is_local() else ' (is it Running?)'}, "
            "then use `spark` again or restart the kernel."
        )
    rpc = _grpc_error(exc)
    code = getattr(rpc.code(), "name", str(rpc.code())) if rpc is not None else None
    details = (rpc.details() or "") if rpc is not None else ""
    if code == "UNAUTHENTICATED":
        name = f"SparkSession {session}" if session else "the SparkSession"
        return (
            f"Spark at {where} refused this notebook's token (UNAUTHENTICATED): {name} may have been "
            f"re-created with a new token; check {hint}, then restart the notebook server."
        )
    if code == "UNAVAILABLE":
        low = details.lower()
        if "refused" in low:
            reason = "connection refused"
        elif "dns" in low or "resolve" in low or "not known" in low:
            reason = "host name not found"
        elif "timeout" in low or "deadline" in low:
            reason = "connection timed out"
        else:
            reason = "gRPC UNAVAILABLE"
        return (
            f"Spark is not reachable at {where} ({reason}); check {hint}{'' if is_local() else ' (is it Running?)'}, "
            "then use `spark` again or restart the kernel."
        )
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    what = f"{code}: {details}" if code else f"{type(exc).__name__}: {first}"
    return mask(
        f"Spark could not be reached at {where} ({what[:240]}); check {hint}, "
        "then use `spark` again or restart the kernel."
    )


class Connection:
    """The kernel's Spark Connect session and the (bounded) check that it answers."""

    def __init__(self, url: str | None, *, session: str | None = None, timeout: float | None = None) -> None:
        self.url = url
        self.where = endpoint(url) if url else "SPARK_REMOTE"
        self.session_name = session if session is not None else session_name()
        self.timeout = timeout if timeout is not None else _timeout()
        self.session: Any = None  # the pyspark SparkSession (built even before it answers)
        self.info: dict[str, str] = {}  # version, app_id once the server answered
        self.error: str | None = None  # the one-sentence failure, while it does not answer
        self.ok = False
        self._thread: threading.Thread | None = None
        self._default_policies: Any = None
        self._deadline = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> Connection:
        return cls(os.environ.get(REMOTE_ENV) or None)

    # -- set-up ------------------------------------------------------------------------------
    def _precheck(self) -> str | None:
        if not self.url:
            return (
                "Spark is not configured: SPARK_REMOTE is not set in this kernel's environment; attach a "
                "SparkSession to the NotebookServer (spec.spark) or build `spark` yourself with "
                "SparkSession.builder.remote(...).getOrCreate()."
            )
        if "$(" in self.url:
            name = f"SparkSession {self.session_name}" if self.session_name else "the SparkSession"
            return (
                f"Spark is not connected: SPARK_REMOTE still holds $({CLIENT_TOKEN_ENV}) because the token "
                f"Secret of {name} did not exist when this notebook server started; check "
                f"{kubectl_hint(self.session_name)}, then restart the notebook server."
            )
        return None

    def begin(self) -> None:
        """Build the session (no RPC) and start checking it in the background."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            problem = self._precheck()
            if problem is not None:
                self.error = problem
                return
            if self.session is None:
                from pyspark.sql import SparkSession

                # Built here, in the caller's thread: pyspark's active session is thread-local.
                try:
                    self.session = SparkSession.builder.remote(self.url).getOrCreate()
                except Exception as exc:  # a malformed URL: no RPC was made
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                    self.error = mask(
                        f"Spark is not connected: SPARK_REMOTE ({self.where}) is not a usable Spark Connect URL "
                        f"({first}); check the NotebookServer's spec.spark and {kubectl_hint(self.session_name)}."
                    )
                    return
            self._deadline = time.monotonic() + self.timeout
            self._thread = threading.Thread(target=self._probe, name="sparkbook-connect", daemon=True)
            self._thread.start()

    def _probe(self) -> None:
        from pyspark.sql.connect.client.retries import DefaultPolicy

        client = self.session.client
        if self._default_policies is None:
            self._default_policies = client.get_retry_policies()
        client.set_retry_policies([DefaultPolicy(**PROBE_RETRIES)])
        try:
            version = self.session.version
            app_id = self.session.conf.get("spark.app.id")
        except BaseException as exc:  # noqa: BLE001 - becomes the one-sentence message
            self.ok = False
            self.error = describe_failure(exc, where=self.where, session=self.session_name)
            # Until it answers, one attempt per call: pyspark's exit hooks (ML cache clean-up,
            # session release) would otherwise retry an absent server for minutes at shutdown.
            client.set_retry_policies([DefaultPolicy(max_retries=0)])
        else:
            self.info = {"version": str(version), "app_id": str(app_id)}
            remember_app(str(app_id))
            self.error = None
            self.ok = True
            # Connected: pyspark's own policy again, so a running notebook rides out a driver restart.
            client.set_retry_policies(self._default_policies)

    # -- waiting -----------------------------------------------------------------------------
    def wait(self) -> Any:
        """The session once it answered, else None (and :attr:`error`), within the start-up bound."""
        thread = self._thread
        if thread is not None:
            thread.join(max(0.0, self._deadline - time.monotonic()))
            if thread.is_alive():
                self.error = describe_failure(
                    None, where=self.where, session=self.session_name, timeout=self.timeout
                )
        return self.session if self.ok else None

    def retry(self) -> Any:
        """Try again (bounded) unless already connected; the session or None."""
        if self.ok:
            return self.session
        if self._thread is None or not self._thread.is_alive():
            self.begin()
        else:  # a previous attempt is still running: give it a fresh bound
            self._deadline = time.monotonic() + self.timeout
        return self.wait()

    def banner(self) -> tuple[str, str]:
        """(text, html) of the one-line start-up banner."""
        import html

        link = ui_link()
        text = f"Spark {self.info.get('version', '?')} is ready as `spark` · application {self.info.get('app_id', '?')}"
        markup = (
            f"Spark {html.escape(self.info.get('version', '?'))} is ready as <code>spark</code> · application "
            f"<code>{html.escape(self.info.get('app_id', '?'))}</code>"
        )
        if link:
            text += f" · Spark UI: {link}"
            markup += f' · <a href="{html.escape(link, quote=True)}" target="_blank">Spark UI</a>'
        return mask(text), mask(markup)


class SparkUnavailable:
    """Stands in for ``spark`` while the session cannot be reached; any use tries again.

    On success the namespace's ``spark`` becomes the real session and the attribute is returned
    from it, so ``spark.range(3)`` simply works once the driver is up. On failure it raises
    :class:`SparkUnavailableError` with the one-sentence explanation.
    """

    def __init__(self, connection: Connection, namespace: dict[str, Any]) -> None:
        object.__setattr__(self, "_sparkbook_connection", connection)
        object.__setattr__(self, "_sparkbook_namespace", namespace)

    def _sparkbook_connect(self) -> Any:
        conn: Connection = self._sparkbook_connection
        session = conn.retry()
        if session is None:
            raise SparkUnavailableError(conn.error or "Spark is not connected.")
        if self._sparkbook_namespace.get("spark") is self:
            self._sparkbook_namespace["spark"] = session
        text, _ = conn.banner()
        print(text)
        watch_cells(conn)
        return session

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # IPython/pickle/display probing: never a network round trip
            raise AttributeError(name)
        return getattr(self._sparkbook_connect(), name)

    def __dir__(self) -> list[str]:
        return []  # tab completion must not try to connect

    def __repr__(self) -> str:
        return f"<spark: not connected. {self._sparkbook_connection.error}>"

    def __bool__(self) -> bool:
        return False


_CONNECTION: Connection | None = None


def current_connection() -> Connection | None:
    """The connection :func:`start` made, if it ran in this process."""
    return _CONNECTION


def _ipython() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    return get_ipython()


def _announce(conn: Connection, namespace: dict[str, Any], *, rich: bool) -> None:
    session = conn.wait()
    if session is not None:
        text, markup = conn.banner()
        if rich:
            from IPython.display import display

            display({"text/plain": text, "text/html": markup}, raw=True)
        else:
            print(text)
        watch_cells(conn)
        return
    if namespace.get("spark") is conn.session or "spark" not in namespace:
        namespace["spark"] = SparkUnavailable(conn, namespace)
    print(mask(conn.error or "Spark is not connected."), file=sys.stderr)


def start(namespace: dict[str, Any]) -> None:
    """Put ``spark`` in ``namespace``, load the magics, and announce Spark (never raises)."""
    global _CONNECTION
    # The bounded first check ends in a RETRIES_EXCEEDED warning; the sentence says it better.
    warnings.filterwarnings("ignore", message=r"\[RETRIES_EXCEEDED\]", category=UserWarning)
    try:
        conn = Connection.from_env()
        _CONNECTION = conn
        conn.begin()
        namespace["spark"] = conn.session if conn.session is not None else SparkUnavailable(conn, namespace)
        ip = _ipython()
        if ip is not None:
            # By name, not by import: the magics import this module, and nothing imports back.
            ip.extension_manager.load_extension("sparkbook.notebook")
        if ip is not None and getattr(ip, "kernel", None) is not None:
            # In a kernel, output printed now belongs to no cell: say it in the first cell instead.
            def _first_cell(*args: Any) -> None:
                ip.events.unregister("pre_run_cell", _first_cell)
                _announce(conn, namespace, rich=True)
                # Registered during this very pre_run_cell: they join this cell by hand.
                for hook in ("_sparkbook_namer", "_sparkbook_progress"):
                    if getattr(ip, hook, None) is not None:
                        getattr(ip, hook).pre_run_cell(*args)

            ip.events.register("pre_run_cell", _first_cell)
        else:
            _announce(conn, namespace, rich=False)
    except Exception as exc:  # noqa: BLE001 - a start-up file must not break the kernel
        print(f"Sparkbook start-up failed: {mask(f'{type(exc).__name__}: {exc}')}", file=sys.stderr)
