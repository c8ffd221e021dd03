"""Thin glue: kopf runs the process; the informers fill the caches and queue keys; the
Controller does the work."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from typing import Any

# kopf imports the `kubernetes` client whenever it is installed (kopf/_cogs/helpers/thirdparty.py
# and the default login handlers, through piggybacking.has_client()), to recognise that client's
# model objects in kopf.adopt() & co. and to log in with its config loader. This operator passes
# kopf plain dicts and logs kopf in itself (login() below), so that import would only cost some
# 30 MB of resident memory (bench/memory.py). A None in sys.modules is Python's own way to make an import fail with
# ImportError, which kopf expects when the client is absent; it only applies when nothing in this
# process has imported the client already, and only to this process (sparkbook.handlers is the
# operator's module: `sparkbook run` imports it, nothing else does).
if "kubernetes" not in sys.modules:
    sys.modules["kubernetes"] = None  # type: ignore[assignment]

import kopf  # after the guard above

from sparkbook import metrics, names
from sparkbook.controller import Controller
from sparkbook.informer import Caches
from sparkbook.kube import Kube, connection_from_environment, read_credentials
from sparkbook.leader import LeaderElector
from sparkbook.settings import Settings

log = logging.getLogger("sparkbook")


def route(controller: Controller, etype: str, kind: str, new: dict[str, Any] | None,
          old: dict[str, Any] | None) -> None:
    """Which resources look again after a change seen by a watch."""
    controller.recent.observed(kind, new if new is not None else old, deleted=etype == "DELETED")
    if etype == "DELETED" and old is not None:
        controller.child_deleted(old)  # it decides, by ownerReference, whose child that was
    same_labels = new is not None and old is not None and (
        new["metadata"].get("labels") == old["metadata"].get("labels"))
    # The echo of our own write: what the writing pass already knew. Only those who read the
    # object and did not write it (a session's notebooks, a server's profile) look again.
    echo = etype != "DELETED" and new is not None and (old is None or same_labels) \
        and controller.recent.is_echo(kind, new)
    for obj in [new] if same_labels else [o for o in (new, old) if o is not None]:
        meta = obj["metadata"]
        namespace, name = meta.get("namespace") or "", meta["name"]
        labels = meta.get("labels") or {}
        if kind == "SparkSession":
            controller.session_changed(namespace, name, itself=not echo)
        elif kind == "NotebookServer":
            if not echo:
                controller.enqueue("NotebookServer", namespace, name)
            if (obj.get("spec") or {}).get("profile"):  # its count of servers
                controller.enqueue("NotebookProfile", "", obj["spec"]["profile"])
        elif kind == "NotebookProfile":
            controller.profile_changed(name, itself=not echo)
            continue
        elif echo:
            continue
        elif kind == "Pod" and labels.get(names.ROLE_LABEL) == "executor":
            if labels.get(names.SESSION_LABEL):  # dynamic allocation: batched, not one pass per pod
                controller.executors_changed(namespace, labels[names.SESSION_LABEL])
            continue
        elif labels.get(names.SESSION_LABEL):
            # A session's own child: the session looks again. Its notebooks read only the session
            # and its token Secret, so only a change to that Secret concerns them.
            if kind == "Secret":
                controller.session_changed(namespace, labels[names.SESSION_LABEL])
            else:
                controller.enqueue("SparkSession", namespace, labels[names.SESSION_LABEL])
        if labels.get(names.NOTEBOOK_LABEL):  # a notebook's child, or the session a notebook owns
            controller.enqueue("NotebookServer", namespace, labels[names.NOTEBOOK_LABEL])


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.posting.level = logging.WARNING  # our own Events say what happened
    # kopf only runs the process here (our informers watch): it needs no scan of the cluster's
    # CRDs and namespaces, which a namespace-scoped install may not list (the real API server's
    # audit log showed those 403s on every start).
    settings.scanning.disabled = True
    config = Settings.from_env()
    kube = Kube(
        connection_from_environment(),
        qps=config.api_qps,
        burst=config.api_burst,
        user_agent=f"sparkbook-operator/{config.identity}",
    )
    kube.observe_latency = lambda method, seconds: metrics.API_SECONDS.labels(method).observe(seconds)
    await kube.__aenter__()
    memo["kube"] = kube
    caches = Caches()
    informers = caches.informers(kube, config.namespaces, lambda *change: route(controller, *change))

    async def synced() -> None:
        await asyncio.gather(*(i.synced.wait() for i in informers))

    controller = Controller(kube, config, caches, synced=synced)
    memo["controller"] = controller
    memo["informers"] = [asyncio.create_task(i.run(), name=repr(i)) for i in informers]
    if config.metrics_port:
        try:
            metrics.serve(config.metrics_port, caches, lambda: kube.requests, informers, lambda: len(controller.queue))
        except OSError as e:  # the operator still works; say loudly that nobody can scrape it
            log.error("cannot serve /metrics on port %d: %s", config.metrics_port, e)
    if config.leader_elect:
        # Every replica watches (warm caches for a quick takeover); only the leader reconciles.
        elector = LeaderElector(kube, namespace=config.operator_namespace or "default",
                                identity=config.identity, lease_seconds=config.lease_seconds)
        memo["elector"] = elector
        memo["election"] = asyncio.create_task(elector.run(controller.start, controller.stop))
    else:
        await controller.start()
    log.info("sparkbook operator started: %d workers, spark image %s", config.workers, config.spark_image)


@kopf.on.login()
def login(**_: Any) -> kopf.ConnectionInfo:
    """kopf's own credentials, from the same reading as ours (its fallbacks would read the
    kubeconfig on their own, without exec plugins or KUBECONFIG lists)."""
    creds = read_credentials()
    token = creds.bearer_token()
    return kopf.ConnectionInfo(
        server=creds.server,
        ca_path=creds.ca_file,
        ca_data=creds.ca_data,
        insecure=creds.insecure or None,
        username=creds.username,
        password=creds.password,
        scheme="Bearer" if token else None,
        token=token,
        certificate_path=creds.cert_file,
        certificate_data=creds.cert_data,
        private_key_path=creds.key_file,
        private_key_data=creds.key_data,
        default_namespace=creds.namespace,
    )


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    election: asyncio.Task[None] | None = memo.get("election")
    if election is not None:
        election.cancel()
        await asyncio.gather(election, return_exceptions=True)
    controller: Controller | None = memo.get("controller")
    if controller is not None:
        await controller.stop()
    tasks: list[asyncio.Task[None]] = memo.get("informers") or []
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    elector: LeaderElector | None = memo.get("elector")
    if elector is not None:
        await elector.release()
    kube: Kube | None = memo.get("kube")
    if kube is not None:
        await kube.__aexit__(None, None, None)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log pipelines (SPARKBOOK_LOG_FORMAT=json)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def run(
    *,
    namespaces: list[str] | None = None,
    standalone: bool = False,
    liveness: str | None = None,
    verbose: bool = False,
    log_format: str | None = None,
    leader_elect: bool = False,
) -> int:
    """`sparkbook run`: the operator in the foreground until SIGTERM."""
    handler = logging.StreamHandler()
    if (log_format or os.environ.get("SPARKBOOK_LOG_FORMAT", "text")) == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])
    if leader_elect:
        os.environ["SPARKBOOK_LEADER_ELECT"] = "true"
    settings = Settings.from_env()
    watch = namespaces or settings.namespaces
    asyncio.run(
        kopf.operator(
            standalone=standalone,
            clusterwide=not watch,
            namespaces=watch or [],
            liveness_endpoint=liveness,
        )
    )
    return 0
