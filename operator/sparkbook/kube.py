"""The only module that talks to the Kubernetes API server, and the one that knows how to reach
it: the pod's service account, else the kubeconfig (`connection_from_environment`).

A small asyncio client over aiohttp: server-side apply with one field manager, create-only
for things that must never be rewritten, deletes with UID preconditions, status patches and
Events. Requests are rate-limited on the client side (token bucket) and retried with
exponential backoff on 429/5xx and dropped connections, honouring Retry-After.

The client-side limit follows what Kubernetes' API machinery now recommends (controller-runtime
turned its limiter off by default in 2025; Flux and cert-manager do this detection): an API
server with API Priority and Fairness (on since 1.20, GA in 1.29) protects itself and says so in
the X-Kubernetes-PF-* headers of its answers, sending 429 with Retry-After when a priority level
is saturated; then the token bucket is lifted and 429s pace the operator. Against a server
without APF the bucket stays. An explicit SPARKBOOK_API_QPS always applies.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import random
import ssl
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from sparkbook import names
from sparkbook.util import now_rfc3339

log = logging.getLogger(__name__)

# Kinds this operator touches -> (api path prefix, plural).
PLURALS: dict[tuple[str, str], str] = {
    ("v1", "Namespace"): "namespaces",
    ("v1", "Pod"): "pods",
    ("v1", "Service"): "services",
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("v1", "Secret"): "secrets",
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaims",
    ("v1", "Event"): "events",
    ("rbac.authorization.k8s.io/v1", "Role"): "roles",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rolebindings",
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies",
    ("coordination.k8s.io/v1", "Lease"): "leases",
    (names.API_VERSION, "SparkSession"): "sparksessions",
    (names.API_VERSION, "NotebookServer"): "notebookservers",
    (names.API_VERSION, "NotebookProfile"): "notebookprofiles",
}

RETRYABLE = {429, 500, 502, 503, 504}
APF_HEADER = "X-Kubernetes-PF-FlowSchema-UID"
FALLBACK_QPS = 200.0  # the automatic limit until the server shows API Priority and Fairness
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class Gone(Exception):
    """410: the resourceVersion (or continue token) is older than what the server still has."""


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body or {}


def object_path(api_version: str, kind: str, namespace: str | None, name: str | None = None) -> str:
    return plural_path(api_version, PLURALS[(api_version, kind)], namespace, name)


def plural_path(api_version: str, plural: str, namespace: str | None, name: str | None = None) -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    if namespace:
        base += f"/namespaces/{namespace}"
    base += f"/{plural}"
    return f"{base}/{name}" if name else base


class TokenBucket:
    """Client-side rate limit, like client-go's QPS/burst."""

    def __init__(
        self,
        qps: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.qps, self.burst = qps, burst
        self.clock, self.sleep = clock, sleep
        self.tokens = float(burst)
        self.stamp = clock()
        self.lock = asyncio.Lock()

    async def take(self) -> None:
        async with self.lock:
            while True:
                now = self.clock()
                self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.qps)
                self.stamp = now
                if self.tokens >= 1 - 1e-9:  # rounding must not turn a full token into an endless wait
                    self.tokens = max(0.0, self.tokens - 1)
                    return
                await self.sleep((1 - self.tokens) / self.qps)


# --- where the API server is and who we are ---------------------------------------------------
# Our own reader of the in-cluster service account and of kubeconfig files: the `kubernetes`
# client did this before, and loading it (its models, requests, oauthlib, urllib3...) was some
# 30 MB of the operator's resident memory at rest (bench/memory.py), for reading a few files.

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_REREAD_SECONDS = 60.0  # how stale a token read from a file may be (client-go: one minute)
EXEC_EXPIRY_MARGIN_SECONDS = 30.0  # an exec plugin's token is asked for again this long before it expires


class ConfigError(Exception):
    """No way to reach the API server: not in a cluster, and no usable kubeconfig."""


class TokenFile:
    """A bearer token kept in a file, read again once a minute: bound service-account tokens
    rotate (the kubelet rewrites the projected file well before they expire), as may a
    kubeconfig's tokenFile."""

    def __init__(self, path: str, *, period: float = TOKEN_REREAD_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path, self.period, self.clock = path, period, clock
        self._value: str | None = None
        self._stamp = 0.0

    def token(self) -> str:
        now = self.clock()
        if self._value is None or now - self._stamp >= self.period:
            with open(self.path) as f:
                self._value = f.read().strip()
            self._stamp = now
        return self._value


class ExecPlugin:
    """A kubeconfig `exec` user (aws eks get-token, gke-gcloud-auth-plugin, kubelogin...): the
    command prints an ExecCredential, whose token is kept until its expirationTimestamp. It runs
    in the caller's thread: once per token lifetime, the event loop waits for it."""

    def __init__(self, spec: dict[str, Any], *, base: Path, server: str,
                 clock: Callable[[], float] = time.time) -> None:
        command = str(spec.get("command") or "")
        if not command:
            raise ConfigError("a kubeconfig exec user has no command")
        # As client-go: a command with a slash in it is a path, relative to the kubeconfig.
        self.command = str(base / command) if "/" in command and not os.path.isabs(command) else command
        self.args = [str(a) for a in spec.get("args") or []]
        self.env = {str(e["name"]): str(e["value"]) for e in spec.get("env") or []}
        self.api_version = str(spec.get("apiVersion") or "client.authentication.k8s.io/v1")
        self.cluster = {"server": server} if spec.get("provideClusterInfo") else None
        self.clock = clock
        self._status: dict[str, Any] | None = None
        self._expires = 0.0

    def status(self) -> dict[str, Any]:
        """The ExecCredential's status, run again when what it said last has (nearly) expired."""
        if self._status is None or self.clock() >= self._expires - EXEC_EXPIRY_MARGIN_SECONDS:
            spec: dict[str, Any] = {"interactive": False}
            if self.cluster is not None:
                spec["cluster"] = self.cluster
            info = json.dumps({"apiVersion": self.api_version, "kind": "ExecCredential", "spec": spec})
            try:
                out = subprocess.run([self.command, *self.args], env={**os.environ, **self.env,
                                     "KUBERNETES_EXEC_INFO": info}, stdin=subprocess.DEVNULL,
                                     capture_output=True, text=True, timeout=60)
            except (OSError, subprocess.TimeoutExpired) as e:
                raise ConfigError(f"the kubeconfig's exec plugin {self.command!r} did not run: {e}") from e
            if out.returncode != 0:
                raise ConfigError(f"the kubeconfig's exec plugin {self.command!r} failed "
                                  f"({out.returncode}): {out.stderr.strip()[-500:]}")
            try:
                status = json.loads(out.stdout)["status"]
            except (ValueError, KeyError, TypeError) as e:
                raise ConfigError(f"the kubeconfig's exec plugin {self.command!r} printed no ExecCredential") from e
            expiry = status.get("expirationTimestamp")
            self._expires = _rfc3339_seconds(expiry) if expiry else float("inf")
            self._status = status
        return self._status

    def token(self) -> str:
        return str(self.status().get("token") or "")


def _rfc3339_seconds(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@dataclass
class Credentials:
    """What the in-cluster environment or a kubeconfig's current context says, file paths
    resolved and data fields decoded (PEM text)."""

    server: str
    ca_file: str | None = None
    ca_data: str | None = None
    insecure: bool = False
    cert_file: str | None = None
    cert_data: str | None = None
    key_file: str | None = None
    key_data: str | None = None
    token: str | None = None  # a fixed one
    token_file: TokenFile | None = None
    exec_plugin: ExecPlugin | None = None
    username: str | None = None
    password: str | None = None
    namespace: str | None = None

    @property
    def bearer(self) -> TokenFile | ExecPlugin | None:
        """Where a token that changes comes from, if it does."""
        return self.exec_plugin or self.token_file

    def bearer_token(self) -> str | None:
        return self.bearer.token() if self.bearer is not None else self.token

    def ssl_context(self) -> ssl.SSLContext | bool:
        if not self.server.startswith("https:"):
            return True
        # No CA named: the system's roots, as the client did.
        context = ssl.create_default_context(cafile=self.ca_file, cadata=self.ca_data)
        if self.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.cert_file or self.cert_data:
            # The ssl module loads certificates from files only: data fields go through a private
            # directory that is gone once they are loaded.
            with tempfile.TemporaryDirectory(prefix="sparkbook-tls-") as tmp:
                cert, key = self.cert_file, self.key_file
                if cert is None:
                    cert = _write_private(Path(tmp) / "client.crt", str(self.cert_data))
                if key is None and self.key_data:
                    key = _write_private(Path(tmp) / "client.key", self.key_data)
                context.load_cert_chain(cert, key)
        return context

    def connection(self) -> Connection:
        headers: dict[str, str] = {}
        if self.bearer is None and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        elif self.bearer is None and self.username and self.password:
            basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        return Connection(server=self.server, headers=headers, ssl=self.ssl_context(), bearer=self.bearer)


def _write_private(path: Path, text: str) -> str:
    path.touch(mode=0o600)
    path.write_text(text)
    return str(path)


@dataclass
class Connection:
    server: str
    headers: dict[str, str] = field(default_factory=dict)
    ssl: ssl.SSLContext | bool = True
    bearer: TokenFile | ExecPlugin | None = None  # a token asked for again on every request (it caches)


def in_cluster_credentials(environ: Mapping[str, str], directory: str = SERVICE_ACCOUNT_DIR) -> Credentials:
    """The pod's service account: the API server's Service from the environment, token, CA and
    namespace from the files the kubelet mounts."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST", ""), environ.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise ConfigError("in a cluster, but KUBERNETES_SERVICE_HOST or KUBERNETES_SERVICE_PORT is not set")
    token = os.path.join(directory, "token")
    if not os.path.isfile(token):
        raise ConfigError(f"in a cluster, but there is no service-account token at {token} "
                          "(automountServiceAccountToken: false?)")
    ca = os.path.join(directory, "ca.crt")
    namespace = None
    with suppress(OSError):
        with open(os.path.join(directory, "namespace")) as f:
            namespace = f.read().strip() or None
    return Credentials(server=f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}",
                       ca_file=ca if os.path.isfile(ca) else None, token_file=TokenFile(token), namespace=namespace)


def kubeconfig_paths(environ: Mapping[str, str]) -> list[str]:
    if environ.get("KUBECONFIG"):
        return [p for p in environ["KUBECONFIG"].split(os.pathsep) if p]
    home = environ.get("HOME") or os.path.expanduser("~")
    return [os.path.join(home, ".kube", "config")]


def kubeconfig_credentials(paths: Sequence[str], context: str | None = None) -> Credentials:
    """The current context of one or more kubeconfig files, merged as kubectl does: the first file
    to set current-context, or to name a cluster, user or context, wins; files that do not exist
    are skipped; relative paths are relative to the file that holds them."""
    current = context
    named: dict[str, dict[str, tuple[dict[str, Any], Path]]] = {"clusters": {}, "users": {}, "contexts": {}}
    found = []
    for path in paths:
        try:
            with open(path) as f:
                config = yaml.safe_load(f) or {}
        except FileNotFoundError:
            continue
        except (OSError, yaml.YAMLError) as e:
            raise ConfigError(f"cannot read the kubeconfig {path}: {e}") from e
        found.append(path)
        base = Path(path).resolve().parent
        current = current or config.get("current-context") or None
        for section, key in (("clusters", "cluster"), ("users", "user"), ("contexts", "context")):
            for entry in config.get(section) or []:
                if entry.get("name") is not None and entry["name"] not in named[section]:
                    named[section][entry["name"]] = (entry.get(key) or {}, base)
    if not found:
        raise ConfigError(f"no kubeconfig: {os.pathsep.join(paths)} does not exist")
    if not current:
        raise ConfigError(f"the kubeconfig ({os.pathsep.join(found)}) has no current-context")
    if current not in named["contexts"]:
        raise ConfigError(f"the kubeconfig ({os.pathsep.join(found)}) has no context {current!r}")
    ctx, _ = named["contexts"][current]
    if ctx.get("cluster") not in named["clusters"]:
        raise ConfigError(f"the kubeconfig's context {current!r} names no known cluster")
    cluster, cluster_base = named["clusters"][ctx["cluster"]]
    user, user_base = named["users"].get(ctx.get("user"), ({}, cluster_base))  # no user: anonymous
    server = str(cluster.get("server") or "").rstrip("/")
    if not server:
        raise ConfigError(f"the kubeconfig's cluster {ctx['cluster']!r} has no server")

    def file(entry: dict[str, Any], key: str, base: Path) -> str | None:
        return str(base / os.path.expanduser(entry[key])) if entry.get(key) else None

    def data(entry: dict[str, Any], key: str) -> str | None:
        return base64.b64decode(entry[key]).decode() if entry.get(key) else None

    creds = Credentials(
        server=server,
        ca_file=file(cluster, "certificate-authority", cluster_base),
        ca_data=data(cluster, "certificate-authority-data"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        cert_file=file(user, "client-certificate", user_base),
        cert_data=data(user, "client-certificate-data"),
        key_file=file(user, "client-key", user_base),
        key_data=data(user, "client-key-data"),
        token=user.get("token") or None,
        username=user.get("username") or None,
        password=user.get("password") or None,
        namespace=ctx.get("namespace") or None,
    )
    if creds.ca_file and creds.ca_data:
        creds.ca_file = None  # both set: the data wins, as in client-go
    if user.get("tokenFile"):
        creds.token_file = TokenFile(str(file(user, "tokenFile", user_base)))
    if user.get("exec"):
        creds.exec_plugin = ExecPlugin(user["exec"], base=user_base, server=server)
        status = creds.exec_plugin.status()  # now, so that a broken plugin stops the start
        if status.get("clientCertificateData") and not status.get("token"):
            creds.cert_file = creds.key_file = None
            creds.cert_data, creds.key_data = status["clientCertificateData"], status.get("clientKeyData")
            creds.exec_plugin = None  # a certificate is loaded once; only tokens are asked for again
    if user.get("auth-provider"):
        # kubectl's removed provider plugins (gcp, azure) or oidc: its id-token, not refreshed.
        provider_config = user["auth-provider"].get("config") or {}
        creds.token = creds.token or provider_config.get("id-token") or provider_config.get("access-token") or None
    return creds


def read_credentials(environ: Mapping[str, str] | None = None, *,
                     service_account_dir: str = SERVICE_ACCOUNT_DIR) -> Credentials:
    """In a pod (KUBERNETES_SERVICE_HOST set), its service account; else the kubeconfig
    (KUBECONFIG, a list of files, or ~/.kube/config)."""
    environ = os.environ if environ is None else environ
    if environ.get("KUBERNETES_SERVICE_HOST"):
        return in_cluster_credentials(environ, service_account_dir)
    paths = kubeconfig_paths(environ)
    if not any(os.path.exists(p) for p in paths):
        raise ConfigError("no Kubernetes API server to talk to: not in a cluster (KUBERNETES_SERVICE_HOST is not "
                          f"set) and no kubeconfig ({os.pathsep.join(paths)} does not exist)")
    return kubeconfig_credentials(paths)


def connection_from_environment(environ: Mapping[str, str] | None = None, *,
                                service_account_dir: str = SERVICE_ACCOUNT_DIR) -> Connection:
    """How to reach the API server: the operator's, the spawner's and the benchmark's one way in
    (`connection_from_environment({"KUBECONFIG": path})` for a given kubeconfig)."""
    return read_credentials(environ, service_account_dir=service_account_dir).connection()


class Kube:
    def __init__(
        self,
        connection: Connection,
        *,
        qps: float | None = None,
        burst: int = 400,
        retries: int = 6,
        backoff: float = 0.2,
        backoff_max: float = 10.0,
        user_agent: str = "sparkbook-operator",
        field_manager: str = names.FIELD_MANAGER,
    ) -> None:
        self.connection = connection
        self.field_manager = field_manager
        # None: automatic (FALLBACK_QPS until APF is seen, then none); > 0: always; <= 0: never.
        self.auto_limit = qps is None
        self.bucket: TokenBucket | None = TokenBucket(qps or FALLBACK_QPS, burst) if qps is None or qps > 0 else None
        self.retries, self.backoff, self.backoff_max = retries, backoff, backoff_max
        self.user_agent = user_agent
        self.session: aiohttp.ClientSession | None = None
        self.requests: Counter[tuple[str, str]] = Counter()  # (method, kind of call) -> count
        self.observe_latency: Callable[[str, float], None] | None = None  # (method, seconds) of each attempt

    async def __aenter__(self) -> "Kube":
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=60),
            connector=aiohttp.TCPConnector(ssl=self.connection.ssl, limit=32),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": self.user_agent, **self.connection.headers}
        if self.connection.bearer is not None:  # a token that rotates: its source caches it
            headers["Authorization"] = f"Bearer {self.connection.bearer.token()}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
        what: str = "",
    ) -> dict[str, Any]:
        assert self.session is not None, "use `async with Kube(...)`"
        data = None if body is None else json.dumps(body)
        if body is not None and content_type is None:
            content_type = "application/json"
        self.requests[(method, what or path)] += 1
        attempt = 0
        while True:
            if self.bucket is not None:
                await self.bucket.take()
            delay: float | None = None
            sent = time.monotonic()
            try:
                async with self.session.request(
                    method,
                    self.connection.server + path,
                    params=params,
                    data=data,
                    headers=self._headers(content_type),
                ) as response:
                    self._flow_control(response)
                    text = await response.text()
                    if self.observe_latency is not None:
                        self.observe_latency(method, time.monotonic() - sent)
                    if response.status < 400:
                        return json.loads(text) if text else {}
                    try:
                        payload = json.loads(text)
                    except ValueError:
                        payload = {"message": text}
                    if response.status in RETRYABLE and attempt < self.retries:
                        retry_after = response.headers.get("Retry-After")
                        delay = float(retry_after) if retry_after and retry_after.isdigit() else None
                    else:
                        raise ApiError(
                            response.status,
                            str(payload.get("reason", response.reason)),
                            str(payload.get("message", text)),
                            payload,
                        )
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as e:
                if attempt >= self.retries:
                    raise ApiError(503, "ConnectionError", str(e) or type(e).__name__) from e
            attempt += 1
            if delay is None:
                delay = min(self.backoff_max, self.backoff * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)
            log.debug("retrying %s %s in %.2fs (attempt %d)", method, path, delay, attempt)
            await asyncio.sleep(delay)

    def _flow_control(self, response: aiohttp.ClientResponse) -> None:
        if self.auto_limit and self.bucket is not None and response.headers.get(APF_HEADER):
            self.bucket = None
            log.info("the API server uses API Priority and Fairness: client-side rate limit off, "
                     "its 429 answers (with Retry-After) pace the operator")

    # --- verbs -------------------------------------------------------------------------------

    async def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return await self.request("GET", object_path(api_version, kind, namespace, name), what=f"get {kind}")
        except ApiError as e:
            if e.status == 404:
                return None
            raise

    async def create(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        """POST; None when the name is already taken (409), which the caller must look into."""
        meta = obj["metadata"]
        path = object_path(obj["apiVersion"], obj["kind"], meta.get("namespace"))
        try:
            created = await self.request(
                "POST", path, params={"fieldManager": self.field_manager}, body=obj, what=f"create {obj['kind']}"
            )
        except ApiError as e:
            if e.status == 409:
                return None
            raise
        log.info("created %s %s/%s", obj["kind"], meta.get("namespace"), meta.get("name"))
        return created

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply: create or converge the fields we own, in one request."""
        meta = obj["metadata"]
        path = object_path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"])
        log.info("applying %s %s/%s (it differs from the desired state)", obj["kind"], meta.get("namespace"), meta["name"])
        return await self.request(
            "PATCH",
            path,
            params={"fieldManager": self.field_manager, "force": "true"},
            body=obj,
            content_type="application/apply-patch+yaml",
            what=f"apply {obj['kind']}",
        )

    async def delete(
        self, api_version: str, kind: str, namespace: str | None, name: str, *, uid: str | None = None
    ) -> bool:
        """Delete (background propagation); False when it was already gone."""
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            await self.request(
                "DELETE", object_path(api_version, kind, namespace, name), body=body, what=f"delete {kind}"
            )
            log.info("deleted %s %s/%s", kind, namespace, name)
            return True
        except ApiError as e:
            if e.status == 404:
                return False
            if e.status == 409 and uid:  # a newer object holds the name now: not ours to delete
                return False
            raise

    async def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        """PUT with the object's resourceVersion: 409 when someone wrote it in between."""
        meta = obj["metadata"]
        return await self.request(
            "PUT",
            object_path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"]),
            params={"fieldManager": self.field_manager},
            body=obj,
            what=f"replace {obj['kind']}",
        )

    async def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        return await self.request(
            "PATCH",
            object_path(api_version, kind, namespace, name) + "/status",
            params={"fieldManager": self.field_manager},
            body={"status": patch},
            content_type="application/merge-patch+json",
            what=f"status {kind}",
        )

    async def merge_patch(
        self, api_version: str, kind: str, namespace: str | None, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        """A JSON merge patch (None removes a key)."""
        log.info("patching %s %s/%s", kind, namespace, name)
        return await self.request(
            "PATCH",
            object_path(api_version, kind, namespace, name),
            params={"fieldManager": self.field_manager},
            body=patch,
            content_type="application/merge-patch+json",
            what=f"patch {kind}",
        )

    async def annotate(self, obj: dict[str, Any], annotations: dict[str, str | None]) -> dict[str, Any]:
        """Merge-patch annotations (None removes one) on an object; never touches its spec."""
        meta = obj["metadata"]
        log.info("annotating %s %s/%s: %s", obj["kind"], meta.get("namespace"), meta["name"], annotations)
        return await self.request(
            "PATCH",
            object_path(obj["apiVersion"], obj["kind"], meta.get("namespace"), meta["name"]),
            params={"fieldManager": self.field_manager},
            body={"metadata": {"annotations": annotations}},
            content_type="application/merge-patch+json",
            what=f"annotate {obj['kind']}",
        )

    async def post_event(self, involved: dict[str, Any], *, type_: str, reason: str, message: str) -> None:
        """A core/v1 Event on `involved`; failures are logged, never raised (events are best effort)."""
        meta = involved["metadata"]
        now = now_rfc3339()
        # A cluster-scoped object's Events go to the default namespace (kubectl describe looks there).
        namespace = meta.get("namespace") or "default"
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": meta["name"],
                "namespace": meta.get("namespace") or "",
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": "sparkbook-operator"},
            "reportingComponent": "sparkbook.io/operator",
            "reportingInstance": os.environ.get("POD_NAME", "sparkbook-operator"),
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.request("POST", f"/api/v1/namespaces/{namespace}/events", body=event, what="event")
        except ApiError as e:
            log.warning("could not post event %s on %s/%s: %s", reason, namespace, meta["name"], e)

    # --- reading collections (the informers) ------------------------------------------------

    async def list(
        self,
        api_version: str,
        plural: str,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = 500,
        continue_: str | None = None,
    ) -> dict[str, Any]:
        """One page of a LIST; raises Gone when the continue token has expired."""
        params = {"limit": str(limit)}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if continue_:
            params["continue"] = continue_
        try:
            return await self.request("GET", plural_path(api_version, plural, namespace), params=params,
                                      what=f"list {plural}")
        except ApiError as e:
            if e.status == 410:
                raise Gone(e.message) from e
            raise

    async def watch(
        self,
        api_version: str,
        plural: str,
        namespace: str | None,
        *,
        resource_version: str,
        label_selector: str | None = None,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[dict[str, Any]]:
        """Watch events from `resource_version` on (with bookmarks) until the server ends the stream.

        Raises Gone when the server no longer has that resourceVersion (HTTP 410 or an ERROR event
        with code 410), ApiError for other refusals, and aiohttp/timeout errors when the
        connection breaks; the caller resumes or relists. One token of the rate limit per stream.
        """
        assert self.session is not None, "use `async with Kube(...)`"
        params = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        if label_selector:
            params["labelSelector"] = label_selector
        self.requests[("GET", f"watch {plural}")] += 1
        if self.bucket is not None:
            await self.bucket.take()
        async with self.session.request(
            "GET",
            self.connection.server + plural_path(api_version, plural, namespace),
            params=params,
            headers=self._headers(None),
            # No total deadline: the server ends the stream after timeoutSeconds; a silent one is dead.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=timeout_seconds + 30),
        ) as response:
            self._flow_control(response)
            if response.status >= 400:
                text = await response.text()
                try:
                    payload = json.loads(text)
                except ValueError:
                    payload = {"message": text}
                if response.status == 410:
                    raise Gone(str(payload.get("message", text)))
                raise ApiError(response.status, str(payload.get("reason", response.reason)),
                               str(payload.get("message", text)), payload)
            buffer = b""
            async for chunk in response.content.iter_any():
                *lines, buffer = (buffer + chunk).split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        if status.get("code") == 410:
                            raise Gone(str(status.get("message", "")))
                        raise ApiError(int(status.get("code") or 500), str(status.get("reason", "")),
                                       str(status.get("message", "")), status)
                    yield event
