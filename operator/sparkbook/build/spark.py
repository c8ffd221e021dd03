"""The Spark configuration of a session's driver: one function, used by the pod and `sparkbook local`."""

from __future__ import annotations

from sparkbook import names
from sparkbook.api.common import duration_seconds
from sparkbook.api.sparksession import SparkSessionSpec


GPU_DISCOVERY_SCRIPT = "/opt/spark/examples/src/main/scripts/getGpusResources.sh"


def _seconds(duration: str) -> str:
    return f"{max(1, round(duration_seconds(duration)))}s"


def spark_conf(*, name: str, namespace: str, spec: SparkSessionSpec, image: str) -> dict[str, str]:
    """Every Spark setting of the driver, Sparkbook's first and the user's sparkConf last.

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
    conf.update(spec.spark_conf)
    return conf
