"""How a Spark Connect server is launched as a Spark driver pod, and how clients reach it.

Everything here is a pure function of its arguments (no I/O, no pyspark import) so the
operator can render pod specs from it and the tests can start the very same command locally.

Findings this module relies on (checked against the pyspark 4.3.0 wheel):

Launch
  * ``sbin/start-connect-server.sh`` runs ``spark-daemon.sh submit <class> 1 --name "Spark
    Connect server" ...``, i.e. ``spark-submit --class
    org.apache.spark.sql.connect.service.SparkConnectServer`` with *no* primary resource.
    The launcher (``SparkSubmitCommandBuilder.specialClasses``) then fills in
    ``spark-internal`` for that class, and since Spark 4 the server classes live in
    ``jars/spark-connect_2.13-<v>.jar`` on the default classpath. We pass ``spark-internal``
    explicitly so the argv means the same without relying on that launcher special case.
  * The daemon script backgrounds the JVM (nohup + pid file); a pod's main process must stay in
    the foreground, so we call ``bin/spark-submit`` directly. It ``exec``s ``spark-class``,
    which ``exec``s ``java``: the JVM ends up as the pod's PID 1 and receives SIGTERM itself.
  * The script also exports ``SPARK_CONNECT_MODE=0``; with ``SPARK_CONNECT_MODE=1`` in the
    environment the launcher would treat the server itself as a Connect *client* app. We pin
    ``spark.api.mode=classic`` in the conf instead, which the launcher reads after the env var.

Authentication (Spark 4.3)
  * Server: ``Connect.getAuthenticateToken`` = conf ``spark.connect.authenticate.token``
    orElse env ``SPARK_CONNECT_AUTHENTICATE_TOKEN``. When set, a
    ``PreSharedKeyAuthenticationInterceptor`` requires gRPC metadata
    ``authorization: Bearer <token>`` on every call (constant-time compare) and fails calls
    with UNAUTHENTICATED otherwise. The server speaks plaintext gRPC only (no TLS option).
    So the token goes in the env var from a Secret (``valueFrom.secretKeyRef``), never in the
    conf: conf values end up in argv (``ps``, the pod spec) and in the UI's environment page.
  * Python client: ``;token=<t>`` in the ``sc://`` URL -- or, if absent, the client's own
    env ``SPARK_CONNECT_AUTHENTICATE_TOKEN`` -- makes the channel *secure*: for the host
    literally ``localhost`` it uses gRPC local credentials (loopback, no TLS); for any other
    host it uses TLS credentials, which cannot talk to the plaintext server. Hence a token
    over plaintext to a Kubernetes Service cannot use ``token=``. It can use the generic
    header mechanism instead: every unknown URL parameter becomes gRPC metadata (values are
    URL-unquoted), so ``;authorization=Bearer%20<t>`` authenticates over a plain channel.
  * Therefore the notebook pod must NOT carry ``SPARK_CONNECT_AUTHENTICATE_TOKEN`` (it would
    force TLS); it gets the token from the same Secret under :data:`CLIENT_TOKEN_ENV` and the
    kernel builds the URL with :func:`connect_url` at run time. The token crosses the
    network in clear text inside the cluster; use ``use_ssl=True`` only behind a TLS proxy.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from sparkbook.names import CONNECT_PORT, CONNECT_TOKEN_ENV, SPARK_HOME

"""Fixed ``spark.driver.blockManager.port``, for the same reason."""

CONNECT_SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
"""Main class that ``start-connect-server.sh`` submits."""
PRIMARY_RESOURCE = "spark-internal"
"""What the launcher substitutes for the Connect server's absent application jar."""

SERVER_TOKEN_ENV = CONNECT_TOKEN_ENV
"""Env var the Connect server reads its pre-shared token from (when the conf key is unset)."""
TOKEN_CONF_KEY = "spark.connect.authenticate.token"
"""Conf key for the token; refused by :func:`connect_server_command` to keep it out of argv."""
CLIENT_TOKEN_ENV = "SPARKBOOK_CONNECT_TOKEN"
"""Env var the notebook kernel reads; deliberately not SERVER_TOKEN_ENV, which forces TLS."""

KUBERNETES_ONLY_PREFIXES: tuple[str, ...] = ("spark.kubernetes.",)
"""Conf prefixes that only mean something to the Kubernetes scheduler backend."""
KUBERNETES_ONLY_KEYS: frozenset[str] = frozenset(
    {
        # Service DNS name of the driver pod; unresolvable (or wrong) anywhere else.
        "spark.driver.host",
        # Pod-IP / 0.0.0.0 binding made for the pod network.
        "spark.driver.bindAddress",
        # Fixed ports exist so executor pods can dial the driver Service; locally they
        # only make parallel servers collide.
        "spark.driver.port",
        "spark.driver.blockManager.port",
        "spark.blockManager.port",
    }
)
"""Exact conf keys that only make sense inside a Kubernetes pod (see :func:`localize_conf`)."""


def is_kubernetes_only(key: str) -> bool:
    """Tell whether a conf key must be dropped when the same conf runs outside Kubernetes."""
    return key in KUBERNETES_ONLY_KEYS or key.startswith(KUBERNETES_ONLY_PREFIXES)


def localize_conf(conf: Mapping[str, str], *, master: str = "local[2]") -> dict[str, str]:
    """Turn a pod's Spark conf into one that runs on this machine, changing as little as possible.

    Only the master and the Kubernetes-only keys change, so local tests exercise the same conf
    the operator renders. Dynamic-allocation keys are kept: Spark ignores them for a local
    master (``Utils.isDynamicAllocationEnabled`` is false unless
    ``spark.dynamicAllocation.testing``). Values that name a container variable as ``$(VAR)``
    (spark.app.id from the pod's UID) are dropped: only Kubernetes expands them.
    """
    local = {k: v for k, v in conf.items() if not is_kubernetes_only(k) and "$(" not in v}
    local["spark.master"] = master
    return local


def connect_server_command(
    *, conf: Mapping[str, str], spark_home: str = SPARK_HOME, app_name: str
) -> list[str]:
    """Return the argv that runs a Spark Connect server in the foreground as a pod's main process.

    Master and deploy mode come from ``conf`` (``spark.master``, ``spark.submit.deployMode``).
    Conf is emitted sorted so the pod spec is stable across reconciles. The auth token is
    refused here because argv is visible in the pod spec and ``ps``; pass it via
    :data:`SERVER_TOKEN_ENV` instead.
    """
    if TOKEN_CONF_KEY in conf:
        raise ValueError(
            f"{TOKEN_CONF_KEY} would be visible in the command line; "
            f"set the {SERVER_TOKEN_ENV} environment variable from a Secret instead"
        )
    api_mode = conf.get("spark.api.mode", "classic")
    if api_mode.lower() != "classic" or "spark.remote" in conf:
        raise ValueError("the Connect server itself must run in classic API mode")
    full = {**conf, "spark.api.mode": "classic"}
    argv = [f"{spark_home.rstrip('/')}/bin/spark-submit", "--class", CONNECT_SERVER_CLASS]
    argv += ["--name", app_name]
    for key in sorted(full):
        argv += ["--conf", f"{key}={full[key]}"]
    argv.append(PRIMARY_RESOURCE)
    return argv


def connect_url(
    *,
    host: str,
    port: int = CONNECT_PORT,
    token: str | None = None,
    use_ssl: bool = False,
    user_id: str | None = None,
) -> str:
    """Build the ``sc://`` URL a pyspark 4.3 client uses to reach the server.

    Without ``use_ssl`` the token travels as a raw ``authorization: Bearer`` header parameter,
    because the client's ``token=`` parameter forces TLS for every host but ``localhost`` and
    the Connect server has no TLS. With ``use_ssl`` (a TLS-terminating proxy in front) the
    standard ``token=`` parameter is used. Build it at run time from :data:`CLIENT_TOKEN_ENV`
    so the token is never written into a pod spec or notebook.
    """
    target = f"[{host}]" if ":" in host and not host.startswith("[") else host
    params: list[str] = []
    if use_ssl:
        params.append("use_ssl=true")
    if token is not None:
        if not token or not all(33 <= ord(c) <= 126 for c in token):
            raise ValueError("token must be non-empty printable ASCII without spaces")
        if use_ssl:
            params.append(f"token={quote(token, safe='')}")
        else:
            params.append(f"authorization={quote('Bearer ' + token, safe='')}")
    if user_id is not None:
        params.append(f"user_id={quote(user_id, safe='')}")
    url = f"sc://{target}:{port}"
    return f"{url}/;{';'.join(params)}" if params else url


def parse_connect_server_command(argv: list[str]) -> tuple[dict[str, str], str]:
    """The (conf, app name) that connect_server_command() put into `argv` (e.g. a pod's command)."""
    conf: dict[str, str] = {}
    app_name = ""
    it = iter(argv[1:])
    for arg in it:
        if arg == "--conf":
            key, _, value = next(it).partition("=")
            conf[key] = value
        elif arg == "--name":
            app_name = next(it)
        elif arg == "--class":
            next(it)
    return conf, app_name


def loopback_conf(
    conf: Mapping[str, str],
    *,
    master: str,
    connect_port: int,
    ui_port: int,
    warehouse_dir: str,
    host: str = "127.0.0.1",
) -> dict[str, str]:
    """A pod's conf made to run on this machine: localize_conf() plus loopback-only binding.

    Used by the workload tests and `sparkbook local`, so both run what the pod runs.
    """
    local = localize_conf(conf, master=master)
    local.update(
        {
            "spark.driver.host": host,
            "spark.connect.grpc.binding.address": host,
            "spark.connect.grpc.binding.port": str(connect_port),
            "spark.ui.port": str(ui_port),
            "spark.sql.warehouse.dir": warehouse_dir,
        }
    )
    return local


def local_server_environment(
    base: Mapping[str, str], *, spark_home: str, host: str, conf_dir: str, token: str
) -> dict[str, str]:
    """The environment of a Connect server run on this machine (tests, `sparkbook local`).

    Inherited SPARK_* / PYSPARK_* variables are dropped (a stray SPARK_HOME would pick another
    Spark), the UI binds to `host` too (SPARK_LOCAL_IP), an empty conf dir keeps the host's
    spark-defaults.conf out, and the token arrives as in the pod: by environment.
    """
    env = {k: v for k, v in base.items() if not k.startswith(("SPARK_", "PYSPARK_"))}
    env.update(SPARK_HOME=spark_home, SPARK_LOCAL_IP=host, SPARK_CONF_DIR=conf_dir, **{SERVER_TOKEN_ENV: token})
    return env
