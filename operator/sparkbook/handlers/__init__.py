"""Thin kopf glue: watches fill the caches and queue keys; the Controller does the work."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any

import kopf

from sparkbook import metrics, names
from sparkbook.controller import Controller
from sparkbook.handlers import cache as _cache
from sparkbook.kube import Kube, connection_from_environment
from sparkbook.leader import LeaderElector
from sparkbook.settings import Settings

log = logging.getLogger("sparkbook")

MANAGED = {names.MANAGED_BY: names.MANAGED_BY_VALUE}


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    # Our own Events say what happened; kopf's per-handler chatter would only add writes.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 600
    settings.watching.client_timeout = 660
    settings.networking.request_timeout = 60
    config = Settings.from_env()
    kube = Kube(
        connection_from_environment(),
        qps=config.api_qps,
        burst=config.api_burst,
        user_agent=f"sparkbook-operator/{config.identity}",
    )
    await kube.__aenter__()
    memo["kube"] = kube
    cache = _cache.KopfCache(kwargs)
    controller = Controller(kube, config, cache)
    memo["controller"] = controller
    if config.metrics_port:
        try:
            metrics.serve(config.metrics_port, cache, lambda: kube.requests)
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


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    election: asyncio.Task[None] | None = memo.get("election")
    if election is not None:
        election.cancel()
        await asyncio.gather(election, return_exceptions=True)
    controller: Controller | None = memo.get("controller")
    if controller is not None:
        await controller.stop()
    elector: LeaderElector | None = memo.get("elector")
    if elector is not None:
        await elector.release()
    kube: Kube | None = memo.get("kube")
    if kube is not None:
        await kube.__aexit__(None, None, None)


@kopf.on.event(names.GROUP, names.VERSION, "sparksessions")
def session_event(namespace: str, name: str, labels: dict[str, str], memo: kopf.Memo, **_: Any) -> None:
    memo["controller"].session_changed(namespace, name)
    if labels.get(names.NOTEBOOK_LABEL):  # a session owned by a notebook
        memo["controller"].enqueue("NotebookServer", namespace, labels[names.NOTEBOOK_LABEL])


@kopf.on.event(names.GROUP, names.VERSION, "notebookservers")
def notebook_event(namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    memo["controller"].enqueue("NotebookServer", namespace, name)


def _owner_event(labels: dict[str, str], namespace: str, memo: kopf.Memo, **_: Any) -> None:
    if labels.get(names.SESSION_LABEL):
        memo["controller"].session_changed(namespace, labels[names.SESSION_LABEL])
    if labels.get(names.NOTEBOOK_LABEL):
        memo["controller"].enqueue("NotebookServer", namespace, labels[names.NOTEBOOK_LABEL])


for _group, _version, _plural in _cache.CHILD_RESOURCES:
    kopf.on.event(_group, _version, _plural, labels=MANAGED, id="owner-event")(_owner_event)


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
    if not verbose:
        # One line per watch event ("Handler ... succeeded") drowns what the controller reports.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
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
