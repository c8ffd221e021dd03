"""Idle culling: notebooks and SparkSessions asked for activity, stopped when idle."""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

from pydantic import ValidationError

from sparkbook import metrics, names
from sparkbook.api.common import duration_seconds
from sparkbook.api.notebookserver import NotebookServerSpec
from sparkbook.api.sparksession import SparkSessionSpec
from sparkbook.controller.base import Key, Machinery
from sparkbook.profile import ProfileError, effective_spec
from sparkbook.status import (
    pod_ready,
)
from sparkbook.util import now_rfc3339, parse_rfc3339

log = logging.getLogger(__name__)


class IdleChecks(Machinery):
    """The idle loop and its checks."""

    async def _idle_loop(self) -> None:
        import aiohttp

        async with aiohttp.ClientSession() as http:
            while True:
                await asyncio.sleep(self.settings.idle_check_seconds)
                try:
                    await self.check_idle(http)
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - one bad pass must not stop culling for good
                    log.exception("idle check failed")

    async def check_idle(self, http: Any) -> None:
        """Ask every running notebook and idle-limited session for activity; stop what is idle."""
        checks = []
        for namespace, name in list(self.cache.keys("NotebookServer")):
            checks.append(self._check_notebook(http, namespace, name))
        for namespace, name in list(self.cache.keys("SparkSession")):
            checks.append(self._check_session(http, namespace, name))
        # Bounded fan-out: a slow server must not hold up the others, nor a thousand run at once.
        limit = asyncio.Semaphore(16)

        async def bounded(coro: Any) -> None:
            async with limit:
                await coro

        await asyncio.gather(*(bounded(c) for c in checks))

    def _ready_since(self, pod: dict[str, Any]) -> datetime.datetime | None:
        for cond in pod.get("status", {}).get("conditions") or []:
            if cond.get("type") == "Ready" and cond.get("lastTransitionTime"):
                return parse_rfc3339(cond["lastTransitionTime"])
        start = pod.get("status", {}).get("startTime")
        return parse_rfc3339(start) if start else None

    def _note_activity(self, key: Key, activity: Any) -> None:
        if activity.last_activity is None:
            return
        stamp = activity.last_activity.astimezone(datetime.timezone.utc).replace(microsecond=0)
        text = stamp.isoformat().replace("+00:00", "Z")
        if self.activity.get(key) != text:
            self.activity[key] = text
            self.queue.add(key)  # the status reports it

    async def _token(self, namespace: str, secret: str, key: str = names.TOKEN_KEY) -> str | None:
        """A token from a Secret, read from the API (the cache keeps no Secret values) once per
        version of the Secret: the hub's Secret changes at every spawn."""
        version = (self.cache.get("Secret", namespace, secret) or {}).get("metadata", {}).get("resourceVersion")
        cached = self._tokens.get((namespace, secret))
        if cached is not None and (version is None or cached[0] == version):
            return cached[1]
        obj = await self.kube.get("v1", "Secret", namespace, secret)
        data = (obj or {}).get("data") or {}
        if key not in data:
            return None
        import base64

        token = base64.b64decode(data[key]).decode()
        self._tokens[(namespace, secret)] = ((obj or {}).get("metadata", {}).get("resourceVersion"), token)
        return token

    async def _check_notebook(self, http: Any, namespace: str, name: str) -> None:
        from sparkbook.activity import ProbeError, idle_for, probe_jupyter

        body = self.cache.get("NotebookServer", namespace, name)
        if body is None or (body["metadata"].get("annotations") or {}).get(names.CULLED_AT):
            return
        raw = body.get("spec") or {}
        try:
            if raw.get("profile"):
                # The culling the running server was made with: its profile as status.profile keeps it.
                applied = (body.get("status") or {}).get("profile") or {}
                if applied.get("name") != raw["profile"]:
                    return  # not reconciled with this profile yet
                spec = effective_spec(raw["profile"], applied.get("spec") or {}, raw)
            else:
                spec = NotebookServerSpec.model_validate(raw)
        except (ValidationError, ProfileError):
            return  # a stalled server: its status says why
        if spec.suspend or not spec.idle_culling.enabled:
            return
        n = names.NotebookNames(name)
        pod = self.cache.get("Pod", namespace, n.pod)
        if not pod or not pod_ready(pod) or not pod.get("status", {}).get("podIP"):
            return
        base_url = "/"
        if spec.jupyterhub:
            # jupyterhub-singleuser takes the hub's token for this server (it holds access:servers).
            base_url = spec.jupyterhub.base_url
            token = await self._token(namespace, spec.jupyterhub.secret_name, names.JUPYTERHUB_TOKEN_KEY)
        else:
            token = await self._token(namespace, n.token_secret)
        if token is None:
            return
        key: Key = ("NotebookServer", namespace, name)
        try:
            activity = await probe_jupyter(
                http, f"http://{pod['status']['podIP']}:{names.NOTEBOOK_PORT}{base_url}", token
            )
        except ProbeError as e:
            metrics.IDLE_PROBE_ERRORS.labels("NotebookServer").inc()
            log.warning("cannot ask notebook %s/%s for activity: %s", namespace, name, e)
            return
        self._note_activity(key, activity)
        now = datetime.datetime.now(datetime.timezone.utc)
        idle = idle_for(activity, now=now, started=self._ready_since(pod))
        timeout = duration_seconds(spec.idle_culling.timeout)
        if idle.total_seconds() < timeout:
            return
        log.info("culling notebook %s/%s: %s", namespace, name, activity.detail)
        metrics.CULLS.labels("NotebookServer").inc()
        await self.kube.annotate(body, {names.CULLED_AT: now_rfc3339()})
        await self.kube.post_event(
            body,
            type_="Normal",
            reason="Culled",
            message=f"no activity for {int(idle.total_seconds())}s (idleCulling.timeout {spec.idle_culling.timeout}): "
            f"{activity.detail}; scaled to zero, files kept",
        )

    async def _check_session(self, http: Any, namespace: str, name: str) -> None:
        from sparkbook.activity import ProbeError, idle_for, probe_spark

        body = self.cache.get("SparkSession", namespace, name)
        if body is None or (body["metadata"].get("annotations") or {}).get(names.IDLE_SUSPENDED_AT):
            return
        try:
            spec = SparkSessionSpec.model_validate(body.get("spec") or {})
        except ValidationError:
            return
        if spec.suspend or not spec.idle_timeout:
            return
        pod = self.cache.get("Pod", namespace, names.SessionNames(name).driver_pod)
        if not pod or not pod_ready(pod) or not pod.get("status", {}).get("podIP"):
            return
        key: Key = ("SparkSession", namespace, name)
        try:
            activity = await probe_spark(http, f"http://{pod['status']['podIP']}:{names.UI_PORT}")
        except ProbeError as e:
            metrics.IDLE_PROBE_ERRORS.labels("SparkSession").inc()
            log.warning("cannot ask SparkSession %s/%s for activity: %s", namespace, name, e)
            return
        self._note_activity(key, activity)
        now = datetime.datetime.now(datetime.timezone.utc)
        idle = idle_for(activity, now=now, started=self._ready_since(pod))
        if idle.total_seconds() < duration_seconds(spec.idle_timeout):
            return
        log.info("suspending idle SparkSession %s/%s: %s", namespace, name, activity.detail)
        metrics.CULLS.labels("SparkSession").inc()
        await self.kube.annotate(body, {names.IDLE_SUSPENDED_AT: now_rfc3339()})
        await self.kube.post_event(
            body,
            type_="Normal",
            reason="IdleSuspended",
            message=f"no Spark Connect activity for {int(idle.total_seconds())}s (idleTimeout {spec.idle_timeout}): "
            f"{activity.detail}; driver stopped",
        )

