"""The bad-input catalogue: resources that can never work, each with the text its refusal must
contain (the field it names). Run through kubectl against the API emulator (tests/api) and against
the real kube-apiserver (tests/e2e), which must agree."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SESSION = yaml.safe_load((ROOT / "examples" / "sparksession.yaml").read_text())
NOTEBOOK = yaml.safe_load((ROOT / "examples" / "notebookserver.yaml").read_text())


def at(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """Set `path` (dotted, under the document) to `value`."""
    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = doc
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return change


CASES: list[tuple[str, dict[str, Any], Callable[[dict[str, Any]], None], str]] = [
    ("cores of the wrong type", SESSION, at("spec.driver.cores", "two"), "spec.driver.cores"),
    ("zero cores", SESSION, at("spec.driver.cores", 0), "spec.driver.cores in body should be greater than or equal to 1"),
    ("too many cores", SESSION, at("spec.executor.cores", 65), "spec.executor.cores in body should be less than or equal to 64"),
    ("memory in words", SESSION, at("spec.driver.memory", "lots"), "spec.driver.memory in body should match"),
    ("decimal memory units", SESSION, at("spec.executor.memory", "2G"), "spec.executor.memory in body should match"),
    ("zero memory", SESSION, at("spec.executor.memory", "0g"), "spec.executor.memory in body should match"),
    ("negative instances", SESSION, at("spec.executor.instances", -1), "spec.executor.instances"),
    ("too many instances", SESSION, at("spec.executor.instances", 1001), "spec.executor.instances"),
    ("min above max", SESSION, at("spec.dynamicAllocation", {"minExecutors": 5, "maxExecutors": 2}),
     "minExecutors <= initialExecutors <= maxExecutors"),
    ("initial above max", SESSION, at("spec.dynamicAllocation", {"initialExecutors": 20, "maxExecutors": 10}),
     "minExecutors <= initialExecutors <= maxExecutors"),
    ("no executors at all", SESSION, at("spec.dynamicAllocation.maxExecutors", 0), "spec.dynamicAllocation.maxExecutors"),
    ("a duration in words", SESSION, at("spec.dynamicAllocation.executorIdleTimeout", "1 minute"),
     "spec.dynamicAllocation.executorIdleTimeout"),
    ("a duration as a number", SESSION, at("spec.dynamicAllocation.shuffleTrackingTimeout", 10),
     "spec.dynamicAllocation.shuffleTrackingTimeout"),
    ("event logs in two places", SESSION, at("spec.eventLog", {"persistentVolumeClaim": "a", "url": "s3a://b/c"}),
     "eventLog: set persistentVolumeClaim or url, not both"),
    ("object store credentials for a claim", SESSION,
     at("spec.eventLog", {"persistentVolumeClaim": "a", "credentialsSecret": "s"}), "credentialsSecret goes with url"),
    ("an event log URL without a scheme", SESSION, at("spec.eventLog.url", "bucket/logs"), "spec.eventLog.url"),
    ("event log files below Spark's floor", SESSION, at("spec.eventLog.maxFileSize", "1m"), "spec.eventLog.maxFileSize"),
    ("a reserved Spark setting", SESSION, at("spec.sparkConf", {"spark.master": "local[*]"}), "sparkConf may not set keys"),
    ("a Spark setting as a number", SESSION, at("spec.sparkConf", {"spark.sql.shuffle.partitions": 64}),
     "spec.sparkConf.spark.sql.shuffle.partitions"),
    ("too many Spark settings", SESSION, at("spec.sparkConf", {f"spark.x{i}": "1" for i in range(300)}),
     "spec.sparkConf"),
    ("an unknown field", SESSION, at("spec.surprise", True), 'unknown field "spec.surprise"'),
    ("an unknown nested field", SESSION, at("spec.driver.gpus", 1), 'unknown field "spec.driver.gpus"'),
    ("an unknown pull policy", SESSION, at("spec.imagePullPolicy", "Sometimes"), "spec.imagePullPolicy"),
    ("an empty image", SESSION, at("spec.image", ""), "spec.image"),
    ("an idle timeout in words", SESSION, at("spec.idleTimeout", "forever"), "spec.idleTimeout"),
    ("a bad CPU quantity", SESSION, at("spec.driver.coreRequest", "lots"), "spec.driver.coreRequest"),
    ("suspend as a word", SESSION, at("spec.suspend", "yes"), "spec.suspend"),
    ("an env var without a name", SESSION, at("spec.driver.env", [{"value": "x"}]), "spec.driver.env[0].name"),
    ("an upper-case name", SESSION, at("metadata.name", "Analytics"), "Analytics"),
    ("a name too long for its Services", SESSION, at("metadata.name", "a" * 64), "metadata.name must be a DNS-1035 label"),
    ("a name that starts with a digit", SESSION, at("metadata.name", "1st"), "metadata.name must be a DNS-1035 label"),
    ("both a session and a reference", NOTEBOOK, at("spec.spark.sessionRef", {"name": "analytics"}),
     "set either spark.sessionRef"),
    ("a storage size in words", NOTEBOOK, at("spec.storage.size", "big"), "spec.storage.size"),
    ("a culling timeout in words", NOTEBOOK, at("spec.idleCulling.timeout", "1 day"), "spec.idleCulling.timeout"),
    ("a notebook name too long for its pod", NOTEBOOK, at("metadata.name", "n" * 53), "at most 52"),
    ("a negative CPU request", NOTEBOOK, at("spec.resources.requests", {"cpu": "-x"}), "spec.resources.requests.cpu"),
    ("an empty session reference", NOTEBOOK, at("spec.spark", {"sessionRef": {"name": ""}}), "spec.spark.sessionRef.name"),
    ("a notebook inline session with bad bounds", NOTEBOOK,
     at("spec.spark.session.dynamicAllocation", {"minExecutors": 9, "maxExecutors": 3}),
     "minExecutors <= initialExecutors <= maxExecutors"),

    # Quantities that can only be positive (or zero) take no minus sign, as a string or as a number.
    ("a negative driver CPU request", SESSION, at("spec.driver.coreRequest", "-500m"),
     "spec.driver.coreRequest in body should match"),
    ("a negative executor CPU request as a number", SESSION, at("spec.executor.coreRequest", -1),
     "spec.executor.coreRequest in body should be greater than or equal to 0"),
    ("a negative memory request", NOTEBOOK, at("spec.resources.requests", {"cpu": "1", "memory": "-4Gi"}),
     "spec.resources.requests.memory in body should match"),
    ("a negative CPU limit as a number", NOTEBOOK, at("spec.resources.limits", {"cpu": -2}),
     "spec.resources.limits.cpu in body should be greater than or equal to 0"),
    ("a negative storage size", NOTEBOOK, at("spec.storage.size", "-10Gi"), "spec.storage.size in body should match"),
    ("a zero storage size", NOTEBOOK, at("spec.storage.size", "0Gi"), "spec.storage.size in body should match"),
    ("a zero storage size as a number", NOTEBOOK, at("spec.storage.size", 0),
     "spec.storage.size in body should be greater than or equal to 1"),
    ("a resource Kubernetes does not know", NOTEBOOK, at("spec.resources.requests", {"cpu": "1", "gpu": 1}),
     "spec.resources.requests: Invalid value: keys must be cpu, memory, ephemeral-storage"),
    ("too many resources", NOTEBOOK, at("spec.resources.limits", {f"example.com/r{i}": 1 for i in range(17)}),
     "spec.resources.limits: Too many: 17: must have at most 16 items"),

    # Idle timeouts of zero would stop the server at once: turning it off is `enabled: false` or no timeout.
    ("a zero culling timeout", NOTEBOOK, at("spec.idleCulling.timeout", "0s"), "spec.idleCulling.timeout in body should match"),
    ("a zero culling timeout in parts", NOTEBOOK, at("spec.idleCulling.timeout", "0h0m"),
     "spec.idleCulling.timeout in body should match"),
    ("a zero session idle timeout", SESSION, at("spec.idleTimeout", "0m"), "spec.idleTimeout in body should match"),
    ("a zero idle timeout of a notebook's own session", NOTEBOOK, at("spec.spark.session.idleTimeout", "0s"),
     "spec.spark.session.idleTimeout in body should match"),

    # Names of other objects, as the API server would refuse them on the pod, the claim or the Secret.
    ("a session reference in capitals", NOTEBOOK, at("spec.spark", {"sessionRef": {"name": "Analytics"}}),
     "spec.spark.sessionRef.name in body should match"),
    ("a session reference starting with a digit", NOTEBOOK, at("spec.spark", {"sessionRef": {"name": "1st"}}),
     "spec.spark.sessionRef.name in body should match"),
    ("a session reference with a dot", NOTEBOOK, at("spec.spark", {"sessionRef": {"name": "team.analytics"}}),
     "spec.spark.sessionRef.name in body should match"),
    ("a session reference too long", NOTEBOOK, at("spec.spark", {"sessionRef": {"name": "s" * 64}}),
     "spec.spark.sessionRef.name: Too long: may not be more than 63"),
    ("a StorageClass name with an underscore", NOTEBOOK, at("spec.storage.storageClassName", "fast_ssd"),
     "spec.storage.storageClassName in body should match"),
    ("a StorageClass name too long", NOTEBOOK, at("spec.storage.storageClassName", "s" * 254),
     "spec.storage.storageClassName: Too long: may not be more than 253"),
    ("a pull Secret in capitals", SESSION, at("spec.imagePullSecrets", ["RegCred"]),
     "spec.imagePullSecrets[0] in body should match"),
    ("an empty pull Secret name", NOTEBOOK, at("spec.imagePullSecrets", [""]),
     "spec.imagePullSecrets[0] in body should match"),
    ("a pull Secret of a notebook's own session", NOTEBOOK, at("spec.spark.session.imagePullSecrets", ["a,b"]),
     "spec.spark.session.imagePullSecrets[0] in body should match"),
    ("an env var name with '='", SESSION, at("spec.driver.env", [{"name": "A=B", "value": "x"}]),
     "spec.driver.env[0].name in body should match"),
    ("a notebook env var name with a tab", NOTEBOOK, at("spec.env", [{"name": "A\tB", "value": "x"}]),
     "spec.env[0].name in body should match"),
    ("an env var from a Secret with a bad name", SESSION,
     at("spec.driver.env", [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "My_Secret", "key": "token"}}}]),
     "spec.driver.env[0].valueFrom.secretKeyRef.name in body should match"),
    ("an env var from a ConfigMap with a bad name", NOTEBOOK,
     at("spec.env", [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "-settings", "key": "mode"}}}]),
     "spec.env[0].valueFrom.configMapKeyRef.name in body should match"),
    ("an env var from a ConfigMap with a bad key", SESSION,
     at("spec.executor.env", [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "../x"}}}]),
     "spec.executor.env[0].valueFrom.configMapKeyRef.key in body should match"),
    ("an env var from a Secret without a key", NOTEBOOK,
     at("spec.env", [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "token"}}}]),
     "spec.env[0].valueFrom.secretKeyRef.key: Required value"),

    # Label keys and values, annotation keys, nodeSelector terms: as in a pod's metadata and spec.
    ("a label key with a space", SESSION, at("spec.driver.labels", {"cost center": "data"}),
     "spec.driver.labels: Invalid value: keys must be qualified names"),
    ("a label key with two slashes", SESSION, at("spec.executor.labels", {"example.com/a/b": "x"}),
     "spec.executor.labels: Invalid value: keys must be qualified names"),
    ("a label key with a capitalised prefix", SESSION, at("spec.driver.labels", {"Example.com/team": "x"}),
     "spec.driver.labels: Invalid value: keys must be qualified names"),
    ("a label key name too long", SESSION, at("spec.driver.labels", {"k" * 64: "x"}),
     "spec.driver.labels: Invalid value: keys must be qualified names"),
    ("a label key prefix too long", SESSION, at("spec.driver.labels", {"p" * 254 + "/team": "x"}),
     "spec.driver.labels: Invalid value: keys must be qualified names"),
    ("a label value with a space", SESSION, at("spec.executor.labels", {"team": "data platform"}),
     "spec.executor.labels.team in body should match"),
    ("a label value ending in a dash", SESSION, at("spec.driver.labels", {"team": "data-"}),
     "spec.driver.labels.team in body should match"),
    ("too many labels", SESSION, at("spec.driver.labels", {f"l{i}": "x" for i in range(65)}),
     "spec.driver.labels: Too many: 65: must have at most 64 items"),
    ("an annotation key with a space", SESSION, at("spec.driver.annotations", {"my note": "x"}),
     "spec.driver.annotations: Invalid value: keys must be qualified names"),
    ("an executor annotation key starting with a dot", SESSION, at("spec.executor.annotations", {".hidden": "x"}),
     "spec.executor.annotations: Invalid value: keys must be qualified names"),
    ("a nodeSelector key with a space", SESSION, at("spec.driver.nodeSelector", {"node pool": "spark"}),
     "spec.driver.nodeSelector: Invalid value: keys must be qualified names"),
    ("a nodeSelector value with a slash", SESSION, at("spec.executor.nodeSelector", {"pool": "spark/big"}),
     "spec.executor.nodeSelector.pool in body should match"),
    ("a notebook nodeSelector key with a colon", NOTEBOOK, at("spec.nodeSelector", {"pool:name": "notebooks"}),
     "spec.nodeSelector: Invalid value: keys must be qualified names"),
    ("a notebook nodeSelector value too long", NOTEBOOK, at("spec.nodeSelector", {"pool": "p" * 64}),
     "spec.nodeSelector.pool: Too long: may not be more than 63"),
    ("a label key of a notebook's own session", NOTEBOOK, at("spec.spark.session.driver.labels", {"a b": "x"}),
     "spec.spark.session.driver.labels: Invalid value: keys must be qualified names"),
]
