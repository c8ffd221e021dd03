"""The Spark configuration of a session's driver: one function, used by the pod and `sparkbook local`."""

from __future__ import annotations

from dataclasses import dataclass

from sparkbook import names
from sparkbook.api.common import duration_seconds
from sparkbook.api.sparksession import EventLog, SparkSessionSpec


GPU_DISCOVERY_SCRIPT = "/opt/spark/examples/src/main/scripts/getGpusResources.sh"


def _seconds(duration: str) -> str:
    return f"{max(1, round(duration_seconds(duration)))}s"


def spark_conf(
    *, name: str, namespace: str, spec: SparkSessionSpec, image: str, event_log: "EventLogTarget | None" = None
) -> dict[str, str]:
    """Every Spark setting of the driver, Sparkbook's first and the user's sparkConf last
    (which may still tune the event log, or move it).

    Spark scales executors itself (dynamic allocation with shuffle tracking, as Kubernetes has
    no external shuffle service); the operator only turns the spec into these settings.
    """
    n = names.SessionNames(name)
    executor_labels = names.session_labels(name, "executor")
    conf: dict[str, str] = {
        "spark.master": "k8s://https://kubernetes.default.svc",
        "spark.submit.deployMode": "client",
        "spark.app.name": name,
        "spark.kubernetes.namespace": namespace,
        "spark.kubernetes.container.image": image,
        "spark.kubernetes.container.image.pullPolicy": spec.image_pull_policy,
        # Executors get the driver pod as owner, so deleting the driver removes them.
        "spark.kubernetes.driver.pod.name": n.driver_pod,
        "spark.kubernetes.executor.podNamePrefix": n.executor_prefix,
        "spark.kubernetes.executor.podTemplateFile": f"{names.EXECUTOR_TEMPLATE_DIR}/{names.EXECUTOR_TEMPLATE_KEY}",
        "spark.kubernetes.executor.podTemplateContainerName": "executor",
        "spark.kubernetes.executor.deleteOnTermination": "true",
        "spark.kubernetes.authenticate.driver.serviceAccountName": n.service_account,
        # Executors reach the driver through the headless Service.
        "spark.driver.host": f"{n.driver_service}.{namespace}.svc",
        "spark.driver.bindAddress": "0.0.0.0",
        "spark.driver.port": str(names.DRIVER_PORT),
        "spark.driver.blockManager.port": str(names.BLOCK_MANAGER_PORT),
        "spark.blockManager.port": str(names.BLOCK_MANAGER_PORT),
        "spark.ui.port": str(names.UI_PORT),
        "spark.connect.grpc.binding.port": str(names.CONNECT_PORT),
        "spark.driver.cores": str(spec.driver.cores),
        "spark.driver.memory": spec.driver.memory.replace("Gi", "g").replace("Mi", "m"),
        "spark.executor.cores": str(spec.executor.cores),
        "spark.executor.memory": spec.executor.memory.replace("Gi", "g").replace("Mi", "m"),
        "spark.jars.ivy": "/tmp/.ivy2",
        "spark.ui.showConsoleProgress": "false",
        # Spark Connect reports a running query's progress to the client this often (2 s by default,
        # so a job shorter than that reported nothing): the notebook's progress display.
        "spark.connect.progress.reportInterval": "500ms",
    }
    for key, value in executor_labels.items():
        conf[f"spark.kubernetes.executor.label.{key}"] = value
    for key, value in spec.executor.labels.items():
        conf[f"spark.kubernetes.executor.label.{key}"] = value
    for key, value in spec.executor.annotations.items():
        conf[f"spark.kubernetes.executor.annotation.{key}"] = value
    if spec.executor.core_request is not None:
        conf["spark.kubernetes.executor.request.cores"] = str(spec.executor.core_request)
    if spec.executor.gpus:
        # Spark asks Kubernetes for <vendor>/<name> on each executor pod and finds the devices with
        # the discovery script its image ships.
        vendor, resource = spec.executor.gpu_resource.split("/", 1)
        conf[f"spark.executor.resource.{resource}.amount"] = str(spec.executor.gpus)
        conf[f"spark.executor.resource.{resource}.vendor"] = vendor
        conf[f"spark.executor.resource.{resource}.discoveryScript"] = GPU_DISCOVERY_SCRIPT
    if spec.image_pull_secrets:
        conf["spark.kubernetes.container.image.pullSecrets"] = ",".join(spec.image_pull_secrets)
    da = spec.dynamic_allocation
    if da.enabled:
        conf.update(
            {
                "spark.dynamicAllocation.enabled": "true",
                "spark.dynamicAllocation.shuffleTracking.enabled": "true",
                "spark.dynamicAllocation.shuffleTracking.timeout": _seconds(da.shuffle_tracking_timeout),
                "spark.dynamicAllocation.minExecutors": str(da.min_executors),
                "spark.dynamicAllocation.initialExecutors": str(da.effective_initial_executors),
                "spark.dynamicAllocation.maxExecutors": str(da.max_executors),
                "spark.dynamicAllocation.executorIdleTimeout": _seconds(da.executor_idle_timeout),
            }
        )
    else:
        conf["spark.dynamicAllocation.enabled"] = "false"
        conf["spark.executor.instances"] = str(spec.executor.instances)
    if event_log is not None:
        conf.update(event_log_conf(event_log))
    conf.update(spec.spark_conf)
    return conf


@dataclass(frozen=True)
class EventLogDefaults:
    """The operator's event-log settings (the chart's eventLog values)."""

    enabled: bool = False
    persistent_volume_claim: str | None = None
    url: str | None = None
    credentials_secret: str | None = None


@dataclass(frozen=True)
class EventLogTarget:
    """Where one session's driver writes its event log, all defaults resolved."""

    directory: str
    """spark.eventLog.dir: file:///spark-events for a claim, else the object store URL."""
    claim: str | None = None
    credentials_secret: str | None = None
    max_file_size: str = "128m"


class EventLogError(ValueError):
    """Event logs are asked for and nothing says where they go."""


def event_log_target(spec: EventLog | None, defaults: EventLogDefaults) -> EventLogTarget | None:
    """The session's own eventLog over the operator's defaults; None when the session writes none.

    A session that names a place uses it (and a claim replaces the default URL, and the reverse);
    one that only says `enabled: true` gets the operator's place. Enabled with no place anywhere
    is an error the controller reports as Stalled (EventLogNowhere).
    """
    enabled = spec.enabled if spec is not None else defaults.enabled
    if not enabled:
        return None
    max_file_size = spec.max_file_size if spec is not None else "128m"
    if spec is not None and (spec.persistent_volume_claim or spec.url):
        claim, url, secret = spec.persistent_volume_claim, spec.url, spec.credentials_secret
    else:
        claim, url = defaults.persistent_volume_claim, defaults.url
        secret = (spec.credentials_secret if spec is not None else None) or defaults.credentials_secret
    if claim:
        return EventLogTarget(directory=f"file://{names.EVENT_LOG_DIR}", claim=claim, max_file_size=max_file_size)
    if url:
        return EventLogTarget(directory=url, credentials_secret=secret, max_file_size=max_file_size)
    raise EventLogError(
        "spec.eventLog asks for event logs but neither it nor the operator says where they go: set "
        "spec.eventLog.persistentVolumeClaim or spec.eventLog.url (or the chart's eventLog values)"
    )


def event_log_conf(target: EventLogTarget) -> dict[str, str]:
    """Spark 4's rolling, compressed event log, and an application ID the operator knows in advance.

    The ID is spark-<driver pod UID>: Kubernetes expands $(SPARKBOOK_DRIVER_UID) in the command
    from the pod's Downward API env, and Spark's Kubernetes backend takes spark.app.id as the
    application's ID, so status links to the History Server before (and after) the driver runs.
    """
    return {
        "spark.eventLog.enabled": "true",
        "spark.eventLog.dir": target.directory,
        # Rolling: a long-lived session's log is many files of bounded size, each readable
        # (and compactable by the History Server) while the driver still runs.
        "spark.eventLog.rolling.enabled": "true",
        "spark.eventLog.rolling.maxFileSize": target.max_file_size,
        "spark.eventLog.compress": "true",
        "spark.eventLog.compression.codec": "zstd",
        "spark.app.id": names.application_id(f"$({names.DRIVER_UID_ENV})"),
    }
