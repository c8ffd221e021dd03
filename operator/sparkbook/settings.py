"""Operator settings, read once from the environment (the Helm chart sets them)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from sparkbook import names

if TYPE_CHECKING:
    from sparkbook.build.spark import EventLogDefaults


class Settings(BaseModel):
    spark_image: str = names.DEFAULT_SPARK_IMAGE
    """Image of drivers and executors when a SparkSession names none."""
    notebook_image: str = Field(default_factory=names.default_notebook_image)
    """Image of notebook servers when a NotebookServer names none."""
    namespaces: list[str] = Field(default_factory=list)
    """Namespaces to watch; empty means the whole cluster."""
    workers: int = 16
    """Reconciles that may run at once."""
    resync_seconds: float = 300.0
    """Every resource is reconciled at least this often, even without events."""
    restart_backoff_seconds: float = 10.0
    """First delay before a failed driver is replaced; doubles up to restart_backoff_max_seconds."""
    restart_backoff_max_seconds: float = 300.0
    stalled_retry_seconds: float = 30.0
    """How often a resource stalled on something outside its own objects is looked at again."""
    executor_batch_seconds: float = 5.0
    """Executor pods come and go in waves under dynamic allocation: their session's status follows
    them about a second after a change, and at most this often (its own changes are handled at once)."""
    operator_namespace: str | None = None
    """Where the operator runs (POD_NAMESPACE); NetworkPolicies admit its pods from there only."""
    notebook_access_namespaces: list[str] = Field(default_factory=list)
    """Namespaces whose pods may reach notebooks (an ingress controller's, say)."""
    api_qps: float | None = None
    """Client-side limit on requests per second (a token bucket, like client-go). Unset: 200 until
    the API server shows API Priority and Fairness, then none (its 429s pace the operator); a
    positive number: always that; 0 or negative: never."""
    api_burst: int = 400
    leader_elect: bool = False
    """Run several replicas: only the holder of the Lease `sparkbook-operator` reconciles."""
    lease_seconds: float = 15.0
    identity: str = ""
    """This replica's name in the Lease (POD_NAME; host and PID otherwise)."""
    metrics_port: int = 9090
    """Prometheus /metrics; 0 turns it off."""
    idle_check_seconds: float = 60.0
    """How often running notebooks and idle-limited sessions are asked for activity."""
    event_log_enabled: bool = False
    """Sessions write Spark event logs unless their spec.eventLog says otherwise (chart: eventLog.enabled)."""
    event_log_pvc: str | None = None
    """Default place of event logs: a PersistentVolumeClaim of this name in each session's namespace..."""
    event_log_url: str | None = None
    """... or an object store URL ("s3a://bucket/spark-events")."""
    event_log_credentials_secret: str | None = None
    """A Secret (in each session's namespace) with the object store's credentials, for event_log_url."""
    history_server_url: str | None = None
    """Where users reach the History Server that reads those logs: status and notebook links go there."""

    @property
    def event_log_defaults(self) -> "EventLogDefaults":
        from sparkbook.build.spark import EventLogDefaults

        return EventLogDefaults(enabled=self.event_log_enabled, persistent_volume_claim=self.event_log_pvc,
                                url=self.event_log_url, credentials_secret=self.event_log_credentials_secret)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        values: dict[str, object] = {}
        if env.get("SPARKBOOK_SPARK_IMAGE"):
            values["spark_image"] = env["SPARKBOOK_SPARK_IMAGE"]
        if env.get("POD_NAME"):
            values["identity"] = env["POD_NAME"]
        if env.get("SPARKBOOK_LEADER_ELECT", "").lower() in ("1", "true", "yes"):
            values["leader_elect"] = True
        if env.get("POD_NAMESPACE"):
            values["operator_namespace"] = env["POD_NAMESPACE"]
        if env.get("SPARKBOOK_NOTEBOOK_ACCESS_NAMESPACES"):
            values["notebook_access_namespaces"] = [
                n.strip() for n in env["SPARKBOOK_NOTEBOOK_ACCESS_NAMESPACES"].split(",") if n.strip()
            ]
        if env.get("SPARKBOOK_NOTEBOOK_IMAGE"):
            values["notebook_image"] = env["SPARKBOOK_NOTEBOOK_IMAGE"]
        if env.get("SPARKBOOK_EVENT_LOG_ENABLED", "").lower() in ("1", "true", "yes"):
            values["event_log_enabled"] = True
        for key, field in (
            ("SPARKBOOK_EVENT_LOG_PVC", "event_log_pvc"),
            ("SPARKBOOK_EVENT_LOG_URL", "event_log_url"),
            ("SPARKBOOK_EVENT_LOG_CREDENTIALS_SECRET", "event_log_credentials_secret"),
            ("SPARKBOOK_HISTORY_SERVER_URL", "history_server_url"),
        ):
            if env.get(key):
                values[field] = env[key].strip()
        if env.get("SPARKBOOK_NAMESPACES"):
            values["namespaces"] = [n.strip() for n in env["SPARKBOOK_NAMESPACES"].split(",") if n.strip()]
        for key, field in (
            ("SPARKBOOK_WORKERS", "workers"),
            ("SPARKBOOK_RESYNC_SECONDS", "resync_seconds"),
            ("SPARKBOOK_RESTART_BACKOFF_SECONDS", "restart_backoff_seconds"),
            ("SPARKBOOK_RESTART_BACKOFF_MAX_SECONDS", "restart_backoff_max_seconds"),
            ("SPARKBOOK_STALLED_RETRY_SECONDS", "stalled_retry_seconds"),
            ("SPARKBOOK_EXECUTOR_BATCH_SECONDS", "executor_batch_seconds"),
            ("SPARKBOOK_IDLE_CHECK_SECONDS", "idle_check_seconds"),
            ("SPARKBOOK_METRICS_PORT", "metrics_port"),
            ("SPARKBOOK_LEASE_SECONDS", "lease_seconds"),
            ("SPARKBOOK_API_QPS", "api_qps"),
            ("SPARKBOOK_API_BURST", "api_burst"),
        ):
            if env.get(key):
                values[field] = env[key]
        settings = cls.model_validate(values)
        if not settings.identity:
            import socket

            settings.identity = f"{socket.gethostname()}-{os.getpid()}"
        return settings
