"""The only module that talks to the Kubernetes API server.

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
import json
import logging
import os
import random
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

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


@dataclass
class Connection:
    server: str
    headers: dict[str, str] = field(default_factory=dict)
    ssl: ssl.SSLContext | bool = True
    token_file: str | None = None


def connection_from_environment() -> Connection:
    """In-cluster service account, else the kubeconfig (KUBECONFIG or ~/.kube/config)."""
    from kubernetes import client, config  # imported late: it reads KUBECONFIG when imported

    cfg = client.Configuration()
    token_file = None
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=cfg)
        token_file = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    else:
        config.load_kube_config(client_configuration=cfg)
    # The client's own view of its credentials: a kubeconfig token (or an exec/OIDC plugin's) is
    # under the key "BearerToken" in kubernetes>=30, not "authorization" (a token kubeconfig sent
    # nothing until the real API server answered as system:anonymous).
    headers = {
        setting["key"].title(): setting["value"]
        for setting in cfg.auth_settings().values()
        if setting.get("in") == "header" and setting.get("value")
    }
    context: ssl.SSLContext | bool = True
    if cfg.host.startswith("https"):
        context = ssl.create_default_context(cafile=cfg.ssl_ca_cert) if cfg.ssl_ca_cert else ssl.create_default_context()
        if not cfg.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if cfg.cert_file:
            context.load_cert_chain(cfg.cert_file, cfg.key_file)
    if cfg.username and cfg.password:
        headers["Authorization"] = aiohttp.BasicAuth(cfg.username, cfg.password).encode()
    return Connection(server=cfg.host.rstrip("/"), headers=headers, ssl=context, token_file=token_file)


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
        self._token: tuple[float, str] | None = None

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
        if self.connection.token_file:  # projected tokens rotate: re-read them now and then
            stamp, token = self._token or (0.0, "")
            if time.monotonic() - stamp > 60:
                with open(self.connection.token_file) as f:
                    token = f.read().strip()
                self._token = (time.monotonic(), token)
            headers["Authorization"] = f"Bearer {token}"
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
