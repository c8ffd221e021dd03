"""Prometheus metrics of the operator, served on /metrics (SPARKBOOK_METRICS_PORT, default 9090)."""

from __future__ import annotations

from collections import Counter as _Counter
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILES = Counter(
    "sparkbook_reconciles", "Reconcile passes by kind and result (ok, error).", ["kind", "result"], registry=REGISTRY
)
RECONCILE_SECONDS = Histogram(
    "sparkbook_reconcile_duration_seconds",
    "Time one reconcile pass takes, by kind.",
    ["kind"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
# As client-go's rest_client_request_duration_seconds and workqueue_queue_duration_seconds: where a
# burst's time goes (the API server's answers, waiting for a worker, the operator's own CPU).
API_SECONDS = Histogram(
    "sparkbook_api_request_duration_seconds",
    "Time from sending a request to the Kubernetes API to its answer (each attempt), by method.",
    ["method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
QUEUE_WAIT_SECONDS = Histogram(
    "sparkbook_workqueue_wait_duration_seconds",
    "Time a resource waits in the work queue before a worker takes it.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
CULLS = Counter(
    "sparkbook_culls", "Idle servers stopped: NotebookServers culled, SparkSessions idle-suspended.", ["kind"],
    registry=REGISTRY,
)
IDLE_PROBE_ERRORS = Counter(
    "sparkbook_idle_probe_errors", "Activity checks that could not reach a server.", ["kind"], registry=REGISTRY
)


class StateCollector(Collector):
    """Gauges computed at scrape time from the operator's caches: no bookkeeping to drift."""

    def __init__(
        self,
        cache: Any,
        api_requests: Callable[[], _Counter[tuple[str, str]]],
        informers: Iterable[Any] = (),
        queue_depth: Callable[[], int] | None = None,
    ) -> None:
        self.cache = cache
        self.api_requests = api_requests
        self.informers = list(informers)
        self.queue_depth = queue_depth

    def collect(self) -> Iterable[Any]:
        phases = GaugeMetricFamily("sparkbook_resources", "Resources by kind and phase.", labels=["kind", "phase"])
        executors = GaugeMetricFamily(
            "sparkbook_executors", "Executor pods per SparkSession by state.", labels=["namespace", "session", "state"]
        )
        for kind in ("SparkSession", "NotebookServer"):
            counts: _Counter[str] = _Counter()
            for namespace, name in self.cache.keys(kind):
                body = self.cache.get(kind, namespace, name) or {}
                status = body.get("status") or {}
                counts[status.get("phase") or "Unknown"] += 1
                if kind == "SparkSession":
                    for state, value in (status.get("executors") or {}).items():
                        executors.add_metric([namespace, name, state], float(value))
            for phase, value in sorted(counts.items()):
                phases.add_metric([kind, phase], float(value))
        yield phases
        yield executors
        requests = CounterMetricFamily(
            "sparkbook_api_requests", "Requests the operator sent to the Kubernetes API.", labels=["method", "call"]
        )
        for (method, call), value in sorted(self.api_requests().items()):
            requests.add_metric([method, call], float(value))
        yield requests
        yield from self._watches()

    def _watches(self) -> Iterable[Any]:
        synced = GaugeMetricFamily("sparkbook_watch_synced", "1 once every first LIST of a kind is in.", labels=["kind"])
        lists = CounterMetricFamily(
            "sparkbook_watch_lists", "Full LISTs by kind: one at start, then one per 410 Gone.", labels=["kind"]
        )
        cached = GaugeMetricFamily("sparkbook_cached_objects", "Objects in the operator's caches.", labels=["kind"])
        held = GaugeMetricFamily(
            "sparkbook_cached_bytes", "Bytes of the cached objects (compact JSON of their trimmed form).", labels=["kind"]
        )
        by_kind: dict[str, list[Any]] = {}
        for informer in self.informers:
            by_kind.setdefault(informer.kind, []).append(informer)
        for kind, informers in sorted(by_kind.items()):
            synced.add_metric([kind], float(all(i.synced.is_set() for i in informers)))
            lists.add_metric([kind], float(sum(i.lists for i in informers)))
            cached.add_metric([kind], float(len(informers[0].store)))
            held.add_metric([kind], float(informers[0].store.bytes_held()))
        yield synced
        yield lists
        yield cached
        yield held
        if self.queue_depth is not None:
            depth = GaugeMetricFamily("sparkbook_workqueue_depth", "Resources waiting for a reconcile pass.")
            depth.add_metric([], float(self.queue_depth()))
            yield depth


def serve(
    port: int,
    cache: Any,
    api_requests: Callable[[], _Counter[tuple[str, str]]],
    informers: Iterable[Any] = (),
    queue_depth: Callable[[], int] | None = None,
) -> None:
    REGISTRY.register(StateCollector(cache, api_requests, informers, queue_depth))
    start_http_server(port, registry=REGISTRY)
