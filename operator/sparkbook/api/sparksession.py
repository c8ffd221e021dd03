"""The SparkSession resource: a long-lived Spark Connect server (the driver) and its executors."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from sparkbook import names
from sparkbook.api.common import (
    Condition,
    Duration,
    Memory,
    Model,
    ObjectName,
    PodOptions,
    PositiveDuration,
    Quantity,
    crd_extra,
)

_RESERVED_LIST = "[" + ", ".join(f"'{k}'" for k in names.RESERVED_SPARK_CONF) + "]"


class DriverSpec(PodOptions):
    """The driver pod: it runs the Spark Connect server that notebooks talk to."""

    cores: int = Field(1, ge=1, le=64)
    """spark.driver.cores; also the pod's CPU request unless coreRequest is set."""
    core_request: Quantity | None = None
    """CPU request of the pod when it should differ from cores (e.g. "500m"); 0 or more."""
    memory: Memory = "2g"
    """JVM heap (spark.driver.memory): "2g", "512m", "4Gi". The pod asks for this plus Spark's overhead."""


class ExecutorSpec(PodOptions):
    """Executor pods, created and deleted by Spark's Kubernetes scheduler backend."""

    cores: int = Field(1, ge=1, le=64)
    """spark.executor.cores."""
    core_request: Quantity | None = None
    """CPU request of each executor pod when it should differ from cores; 0 or more."""
    memory: Memory = "2g"
    """spark.executor.memory."""
    instances: int = Field(2, ge=0, le=1000)
    """Executors to run when dynamic allocation is off."""
    gpus: int = Field(0, ge=0, le=16)
    """GPUs per executor: the pod asks for this many of gpuResource, and Spark schedules them
    (spark.executor.resource.<name>.amount, found by Spark's GPU discovery script)."""
    gpu_resource: str = Field("nvidia.com/gpu", max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    """The extended resource the device plugin advertises: "nvidia.com/gpu", "amd.com/gpu"."""


_MIN = "(has(self.minExecutors) ? self.minExecutors : 0)"
_MAX = "(has(self.maxExecutors) ? self.maxExecutors : 10)"


class DynamicAllocation(Model):
    """Spark dynamic allocation: Spark grows and shrinks the executors, never the operator."""

    model_config = Model.model_config | {
        "json_schema_extra": crd_extra(
            **{
                "x-kubernetes-validations": [
                    {
                        # Written for objects whose defaults are not filled in (a NotebookServer's
                        # session): an absent bound means its default, 0 and 10.
                        "rule": f"{_MIN} <= {_MAX} && (!has(self.initialExecutors) || "
                        f"({_MIN} <= self.initialExecutors && self.initialExecutors <= {_MAX}))",
                        "message": "minExecutors <= initialExecutors <= maxExecutors must hold",
                    }
                ]
            }
        )
    }

    enabled: bool = True
    """Off: executor.instances executors run for the session's whole life."""
    min_executors: int = Field(0, ge=0, le=1000)
    initial_executors: int | None = Field(None, ge=0, le=1000)
    """Executors to start with; by default minExecutors, but at least one while maxExecutors allows."""
    max_executors: int = Field(10, ge=1, le=1000)
    executor_idle_timeout: Duration = "60s"
    """An executor idle this long is removed."""
    shuffle_tracking_timeout: Duration = "10m"
    """Executors holding shuffle data are kept this long (shuffle tracking is always on)."""

    @model_validator(mode="after")
    def _ordered(self) -> "DynamicAllocation":
        if not (self.min_executors <= self.effective_initial_executors <= self.max_executors):
            raise ValueError("minExecutors <= initialExecutors <= maxExecutors must hold")
        return self

    @property
    def effective_initial_executors(self) -> int:
        if self.initial_executors is not None:
            return self.initial_executors
        return min(max(self.min_executors, 1), self.max_executors)


EVENT_LOG_URL_PATTERN = r"^[a-z][a-z0-9+.-]*://\S+$"
EVENT_LOG_FILE_SIZE_PATTERN = r"^([1-9][0-9]{1,5}m|[1-9][0-9]{0,5}g)$"  # 10m at least: Spark's floor


class EventLog(Model):
    """Spark event logs, written by the driver as it runs: what a History Server shows after the
    driver is gone. Unset fields come from the operator's settings (the chart's `eventLog`)."""

    model_config = Model.model_config | {
        "json_schema_extra": crd_extra(
            **{
                "x-kubernetes-validations": [
                    {
                        "rule": "!(has(self.persistentVolumeClaim) && has(self.url))",
                        "message": "eventLog: set persistentVolumeClaim or url, not both",
                    },
                    {
                        "rule": "!has(self.credentialsSecret) || !has(self.persistentVolumeClaim)",
                        "message": "eventLog.credentialsSecret goes with url (an object store), not with persistentVolumeClaim",
                    },
                ]
            }
        )
    }

    enabled: bool = True
    """False: this session writes no event log, whatever the operator's default."""
    persistent_volume_claim: ObjectName | None = None
    """A claim in the session's namespace, shared by its sessions (ReadWriteMany, or one node):
    mounted at /spark-events in the driver pod."""
    url: str | None = Field(None, min_length=3, max_length=1024, pattern=EVENT_LOG_URL_PATTERN)
    """An object store or Hadoop file system directory: "s3a://bucket/spark-events",
    "gs://...", "abfss://...", "hdfs://...". The image must have the file system's jars."""
    credentials_secret: ObjectName | None = None
    """A Secret in the session's namespace whose keys become the driver's environment
    (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, ...), for `url`."""
    max_file_size: str = Field("128m", pattern=EVENT_LOG_FILE_SIZE_PATTERN)
    """Size at which the driver starts the next file of its rolling log (10m at least, Spark's floor)."""

    @model_validator(mode="after")
    def _one_place(self) -> "EventLog":
        if self.persistent_volume_claim and self.url:
            raise ValueError("eventLog: set persistentVolumeClaim or url, not both")
        if self.credentials_secret and self.persistent_volume_claim:
            raise ValueError("eventLog.credentialsSecret goes with url (an object store), not with persistentVolumeClaim")
        return self


class SparkSessionSpec(Model):
    """What the user asks for."""

    model_config = Model.model_config | {
        "json_schema_extra": crd_extra(
            **{
                "x-kubernetes-validations": [
                    {
                        # Iterating the constant list keeps the rule's estimated cost small and bounded.
                        "rule": f"!has(self.sparkConf) || !{_RESERVED_LIST}.exists(k, k in self.sparkConf)",
                        "message": "sparkConf may not set keys that Sparkbook derives from the spec "
                        "(spark.master, spark.driver.host, ports, spark.dynamicAllocation.{enabled,min,initial,max}Executors, "
                        "spark.executor.instances, ...): use spec.driver, spec.executor and spec.dynamicAllocation instead",
                    }
                ]
            }
        )
    }

    image: str | None = Field(None, min_length=1, max_length=512)
    """Spark image for the driver and executors; the operator's default when unset."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: list[ObjectName] = Field(default_factory=list, max_length=16)
    """Secrets (names in the same namespace) for pulling the image."""
    driver: DriverSpec = Field(default_factory=DriverSpec)
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    dynamic_allocation: DynamicAllocation = Field(default_factory=DynamicAllocation)
    spark_conf: dict[str, str] = Field(default_factory=dict, max_length=256)
    """Extra Spark settings, applied after Sparkbook's own (spark.sql.shuffle.partitions, ...)."""
    idle_timeout: PositiveDuration | None = None
    """Suspend the driver after this long without a Spark Connect session or a running job; longer than 0
    (unset: never)."""
    suspend: bool = False
    """True: the driver and its executors are removed; the resource and its Services stay."""
    event_log: EventLog | None = None
    """Spark event logs for the History Server; unset: the operator's default (off unless the chart's
    eventLog.enabled)."""

    @model_validator(mode="after")
    def _no_reserved_conf(self) -> "SparkSessionSpec":
        bad = sorted(set(self.spark_conf) & set(names.RESERVED_SPARK_CONF))
        if bad:
            raise ValueError(
                f"sparkConf may not set {', '.join(bad)}: Sparkbook derives these from the spec"
            )
        return self


Phase = Literal["Pending", "Starting", "Running", "Idle", "Suspended", "Failed"]


class DriverStatus(Model):
    pod_name: str | None = None
    pod_ip: str | None = Field(None, alias="podIP")
    start_time: str | None = None
    restarts: int = 0
    """How many times the operator replaced a failed driver pod."""
    last_failure: str | None = None
    """Why the driver last failed (OOMKilled, Error, Evicted, ...)."""
    last_failure_time: str | None = None


class ExecutorCounts(Model):
    running: int = 0
    pending: int = 0
    failed: int = 0


class Endpoints(Model):
    connect: str | None = None
    """Spark Connect address inside the cluster (sc://...)."""
    ui: str | None = None
    """Spark UI address inside the cluster."""
    history: str | None = None
    """The History Server's page of the current (or last) application, when event logs are on and
    the operator knows the History Server."""


class Application(Model):
    """One run of the driver: a Spark application, browsable in the History Server once it ends."""

    id: str
    """The Spark application ID (spark-<driver pod UID> when the session writes event logs)."""
    start_time: str | None = None
    end_time: str | None = None
    """When the operator saw the driver go; unset while it runs."""
    history_url: str | None = Field(None, alias="historyURL")


class SparkSessionStatus(Model):
    """What the operator observes; written only by the operator."""

    phase: Phase = "Pending"
    observed_generation: int | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra=crd_extra(**{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}),
    )
    driver: DriverStatus = Field(default_factory=DriverStatus)
    executors: ExecutorCounts = Field(default_factory=ExecutorCounts)
    endpoints: Endpoints = Field(default_factory=Endpoints)
    application_id: str | None = None
    applications: list[Application] = Field(default_factory=list, max_length=10)
    """The current and past applications of this session, newest first (at most 10)."""
    image: str | None = None
    last_activity_time: str | None = None


class SparkSession(Model):
    """A Spark Connect server as a driver pod, with executors under dynamic allocation."""

    KIND: ClassVar[str] = "SparkSession"
    PLURAL: ClassVar[str] = "sparksessions"
    SINGULAR: ClassVar[str] = "sparksession"
    SHORT_NAMES: ClassVar[list[str]] = ["sps"]
    PRINTER_COLUMNS: ClassVar[list[dict[str, Any]]] = [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Executors", "type": "integer", "jsonPath": ".status.executors.running"},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Connect", "type": "string", "jsonPath": ".status.endpoints.connect", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]

    api_version: Literal["sparkbook.io/v1alpha1"] = names.API_VERSION
    kind: Literal["SparkSession"] = "SparkSession"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: SparkSessionSpec = Field(default_factory=SparkSessionSpec)
    status: SparkSessionStatus | None = None
