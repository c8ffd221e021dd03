"""``%%configure`` planning (pure): a Livy body sorted into what applies now and what does not."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable

from sparkbook import names

# Livy session keys that map to the SparkSession's driver and executors.
LIVY_SESSION_FIELDS = {
    "driverMemory": "spec.driver.memory",
    "driverCores": "spec.driver.cores",
    "executorMemory": "spec.executor.memory",
    "executorCores": "spec.executor.cores",
    "numExecutors": "spec.executor.instances or spec.dynamicAllocation",
}
# Livy keys about Livy's own bookkeeping: meaningless here.
LIVY_IGNORED = ("kind", "name", "proxyUser", "queue", "heartbeatTimeoutInSecond", "ttl")
# Livy keys naming files for the driver: over Connect they are uploaded with spark.addArtifacts.
LIVY_ARTIFACTS = {"jars": "", "pyFiles": "pyfile=True", "files": "file=True", "archives": "archive=True"}
CONF_FIELDS = {
    "spark.driver.memory": "spec.driver.memory",
    "spark.driver.cores": "spec.driver.cores",
    "spark.executor.memory": "spec.executor.memory",
    "spark.executor.cores": "spec.executor.cores",
    "spark.executor.instances": "spec.executor.instances",
    "spark.dynamicAllocation.enabled": "spec.dynamicAllocation.enabled",
    "spark.dynamicAllocation.minExecutors": "spec.dynamicAllocation.minExecutors",
    "spark.dynamicAllocation.initialExecutors": "spec.dynamicAllocation.initialExecutors",
    "spark.dynamicAllocation.maxExecutors": "spec.dynamicAllocation.maxExecutors",
    "spark.dynamicAllocation.executorIdleTimeout": "spec.dynamicAllocation.executorIdleTimeout",
    "spark.dynamicAllocation.shuffleTracking.timeout": "spec.dynamicAllocation.shuffleTrackingTimeout",
}


def _conf_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


@dataclass
class ConfigurePlan:
    runtime: dict[str, str] = field(default_factory=dict)  # spark.conf.set now
    needs_driver: list[tuple[str, str, str]] = field(default_factory=list)  # (key, value, where to set it)
    artifacts: list[tuple[str, str]] = field(default_factory=list)  # (livy key, addArtifacts flag)
    ignored: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def plan_configure(body: dict[str, Any], is_runtime: Callable[[str], bool]) -> ConfigurePlan:
    """Sort a Livy ``%%configure`` body into what applies now and what needs a new driver."""
    plan = ConfigurePlan()
    for key, value in body.items():
        if key == "conf":
            for ckey, cvalue in (value or {}).items():
                ckey = str(ckey)
                if is_runtime(ckey):
                    plan.runtime[ckey] = _conf_value(cvalue)
                elif ckey in CONF_FIELDS:
                    plan.needs_driver.append((ckey, _conf_value(cvalue), CONF_FIELDS[ckey]))
                elif ckey in names.RESERVED_SPARK_CONF:
                    plan.needs_driver.append((ckey, _conf_value(cvalue), "set by Sparkbook itself"))
                else:
                    plan.needs_driver.append((ckey, _conf_value(cvalue), "spec.sparkConf"))
        elif key in LIVY_SESSION_FIELDS:
            plan.needs_driver.append((key, _conf_value(value), LIVY_SESSION_FIELDS[key]))
        elif key in LIVY_ARTIFACTS:
            plan.artifacts.append((key, LIVY_ARTIFACTS[key]))
        elif key in LIVY_IGNORED:
            plan.ignored.append(key)
        else:
            plan.unknown.append(key)
    return plan


def configure_message(
    plan: ConfigurePlan, *, applied: dict[str, str], session: str | None, force: bool, local: bool = False
) -> str:
    """What %%configure did and did not do, in one message."""
    lines: list[str] = []
    if applied:
        lines.append("Applied now: " + ", ".join(f"{k}={v}" for k, v in applied.items()) + ".")
    if plan.needs_driver:
        items = ", ".join(f"{k}={v} ({where})" for k, v, where in plan.needs_driver)
        if local:
            msg = (
                f"Not applied, because they need a new Spark driver: {items}. Change them in the "
                "NotebookServer file's spec.spark.session and start `sparkbook local` again."
            )
        else:
            target = f"SparkSession {session}" if session else "the SparkSession this notebook uses"
            cmd = f"kubectl edit sparksession {session}" if session else "kubectl edit sparksession <name>"
            msg = (
                f"Not applied, because they need a new Spark driver: {items}. Change them in {target} "
                f"instead (`{cmd}`); the operator then replaces the driver, and a kernel restart reconnects."
            )
        if force and not local:
            msg += (
                " -f does not restart the driver from here: the kernel has no Kubernetes credentials, "
                "and a new driver ends the Spark state of every notebook attached to the session."
            )
        lines.append(msg)
    if plan.artifacts:
        lines.append(
            "Not applied: "
            + ", ".join(k for k, _ in plan.artifacts)
            + "; upload files from the notebook with spark.addArtifacts(path, ...) "
            "(pyfile=True for pyFiles, file=True for files, archive=True for archives)."
        )
    if plan.ignored:
        lines.append("Ignored (Livy-only settings): " + ", ".join(plan.ignored) + ".")
    if plan.unknown:
        lines.append(
            "Unknown keys, ignored: " + ", ".join(plan.unknown) + " (expected driverMemory, driverCores, "
            "executorMemory, executorCores, numExecutors or conf)."
        )
    if not lines:
        lines.append("Nothing to configure.")
    return "\n".join(lines)
