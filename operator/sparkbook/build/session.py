"""Children of a SparkSession: driver pod, Services, RBAC, token Secret, executor pod template."""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

import yaml

from sparkbook import names
from sparkbook.api.common import memory_mebibytes
from sparkbook.api.sparksession import SparkSessionSpec
from sparkbook.build.common import (
    container_security_context,
    env_list,
    metadata,
    pod_security_context,
    scheduling,
)
from sparkbook.build.launch import connect_server_command
from sparkbook.build.network import session_network_policy
from sparkbook.build.spark import EventLogTarget, spark_conf

# Spark's own default: the driver pod asks for heap + max(10% of heap, 384 MiB).
MIN_OVERHEAD_MIB = 384
OVERHEAD_FACTOR = 0.10

# Kubernetes-side role of the driver: just what Spark's scheduler backend uses in its namespace.
DRIVER_RULES = [
    {
        "apiGroups": [""],
        "resources": ["pods"],
        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "watch"],
    },
    {
        "apiGroups": [""],
        "resources": ["configmaps", "persistentvolumeclaims", "services"],
        "verbs": ["create", "delete", "deletecollection", "get", "list", "watch"],
    },
]


def _pod_memory(memory: str) -> str:
    heap = memory_mebibytes(memory)
    return f"{heap + max(MIN_OVERHEAD_MIB, int(heap * OVERHEAD_FACTOR))}Mi"


def _tmp_volumes() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Writable scratch space for a read-only root filesystem."""
    volumes = [
        {"name": "tmp", "emptyDir": {}},
        {"name": "work-dir", "emptyDir": {}},
    ]
    mounts = [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "work-dir", "mountPath": f"{names.SPARK_HOME}/work-dir"},
    ]
    return volumes, mounts


def executor_pod_template(*, name: str, spec: SparkSessionSpec) -> dict[str, Any]:
    """The pod template Spark starts executors from: restricted security, scheduling from the spec."""
    volumes, mounts = _tmp_volumes()
    container: dict[str, Any] = {
        "name": "executor",
        "securityContext": container_security_context(names.SPARK_UID),
        "volumeMounts": mounts,
    }
    if spec.executor.env:
        container["env"] = env_list(spec.executor.env)
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(names.SPARK_UID),
        "containers": [container],
        "volumes": volumes,
        **scheduling(spec.executor),
    }
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in spec.image_pull_secrets]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"labels": names.session_labels(name, "executor")},
        "spec": pod_spec,
    }


def executor_template_configmap(*, owner: dict[str, Any], spec: SparkSessionSpec) -> dict[str, Any]:
    name, namespace = owner["metadata"]["name"], owner["metadata"]["namespace"]
    template = executor_pod_template(name=name, spec=spec)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(
            name=names.SessionNames(name).executor_template,
            namespace=namespace,
            labels=names.session_labels(name, "executor-template"),
            owner=owner,
        ),
        "data": {names.EXECUTOR_TEMPLATE_KEY: _yaml_text(json.dumps(template, sort_keys=True))},
    }


@functools.lru_cache(maxsize=2048)
def _yaml_text(canonical: str) -> str:
    """The YAML of a JSON document, remembered: PyYAML's pure-Python emitter cost ~5 ms per pod
    template, most of a reconcile's CPU (bench/, a no-op reconcile of a SparkSession), and the
    template only changes with its spec. The text stays exactly what it was (a different text
    would change every driver's config hash and replace the drivers on an upgrade)."""
    return yaml.safe_dump(json.loads(canonical), sort_keys=True)


def config_hash(*objects: dict[str, Any]) -> str:
    """A short, stable digest of manifests: a driver whose hash differs must be replaced."""
    blob = json.dumps(objects, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def driver_pod(
    *, owner: dict[str, Any], spec: SparkSessionSpec, image: str, event_log: EventLogTarget | None = None
) -> dict[str, Any]:
    """The driver: a Spark Connect server in client mode against the in-cluster API server.

    With `event_log`, it writes Spark's event log there (a claim mounted at /spark-events, or an
    object store with credentials from a Secret) under the application ID spark-<pod UID>.
    """
    name, namespace = owner["metadata"]["name"], owner["metadata"]["namespace"]
    n = names.SessionNames(name)
    conf = spark_conf(name=name, namespace=namespace, spec=spec, image=image, event_log=event_log)
    volumes, mounts = _tmp_volumes()
    volumes.append({"name": "executor-template", "configMap": {"name": n.executor_template}})
    mounts.append({"name": "executor-template", "mountPath": names.EXECUTOR_TEMPLATE_DIR, "readOnly": True})
    env = [
        {
            "name": names.CONNECT_TOKEN_ENV,
            "valueFrom": {"secretKeyRef": {"name": n.token_secret, "key": names.TOKEN_KEY}},
        },
        {"name": "SPARK_LOCAL_DIRS", "value": "/tmp/spark-local"},
        {"name": "HOME", "value": "/tmp"},
    ]
    env_from: list[dict[str, Any]] = []
    if event_log is not None:
        # Defined before the command refers to it: Kubernetes expands $(VAR) in a command from
        # the container's own env only.
        env.append({"name": names.DRIVER_UID_ENV, "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}})
        if event_log.claim:
            volumes.append({"name": "event-log", "persistentVolumeClaim": {"claimName": event_log.claim}})
            mounts.append({"name": "event-log", "mountPath": names.EVENT_LOG_DIR})
        if event_log.credentials_secret:
            env_from.append({"secretRef": {"name": event_log.credentials_secret}})
    env += env_list(spec.driver.env)
    memory = _pod_memory(spec.driver.memory)
    cpu = spec.driver.core_request if spec.driver.core_request is not None else spec.driver.cores
    container = {
        "name": "spark-connect",
        "image": image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": connect_server_command(conf=conf, spark_home=names.SPARK_HOME, app_name=name),
        "env": env,
        **({"envFrom": env_from} if env_from else {}),
        "ports": [
            {"name": names.PORT_NAMES[port], "containerPort": port, "protocol": "TCP"}
            for port in (names.DRIVER_PORT, names.BLOCK_MANAGER_PORT, names.UI_PORT, names.CONNECT_PORT)
        ],
        "resources": {
            "requests": {"cpu": str(cpu), "memory": memory},
            "limits": {"memory": memory},
        },
        # Ready once Spark Connect accepts connections; a wedged JVM is restarted by the operator.
        "readinessProbe": {
            "tcpSocket": {"port": names.CONNECT_PORT},
            "periodSeconds": 5,
            "failureThreshold": 3,
        },
        "livenessProbe": {
            "httpGet": {"path": "/", "port": names.UI_PORT},
            "initialDelaySeconds": 60,
            "periodSeconds": 20,
            "failureThreshold": 6,
        },
        "securityContext": container_security_context(names.SPARK_UID),
        "volumeMounts": mounts,
    }
    labels = {**spec.driver.labels, **names.session_labels(name, "driver"), names.ROLE_LABEL: "driver"}
    if event_log is not None:
        labels[names.EVENT_LOG_LABEL] = "true"  # its application ID is spark-<pod UID>
    pod_spec: dict[str, Any] = {
        "serviceAccountName": n.service_account,
        # The driver asks the API server for executor pods, so it needs its token.
        "automountServiceAccountToken": True,
        "enableServiceLinks": False,
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 30,
        "securityContext": pod_security_context(names.SPARK_UID),
        "containers": [container],
        "volumes": volumes,
        **scheduling(spec.driver),
    }
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in spec.image_pull_secrets]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata(
            name=n.driver_pod,
            namespace=namespace,
            labels=labels,
            owner=owner,
            annotations=dict(spec.driver.annotations),
        ),
        "spec": pod_spec,
    }
    template = executor_template_configmap(owner=owner, spec=spec)
    pod["metadata"].setdefault("annotations", {})[names.CONFIG_HASH] = config_hash(pod, template["data"])
    return pod


def _service(
    *, owner: dict[str, Any], name: str, component: str, ports: list[int], while_starting: bool = False
) -> dict[str, Any]:
    """A headless Service in front of the driver pod.

    Each of a session's Services fronts exactly one pod, so a virtual IP would balance nothing. It
    would cost a cluster IP from the finite service range, kube-proxy rules on every node, and an
    allocation that the bench measured at 0.6-1.0 s per create under load. A headless Service
    (a DNS name for the pod's own IP, on the same ports) costs none of that. The ports equal the
    container ports, so no port mapping is lost.
    """
    session, namespace = owner["metadata"]["name"], owner["metadata"]["namespace"]
    spec: dict[str, Any] = {
        "type": "ClusterIP",
        "clusterIP": "None",
        "selector": {names.SESSION_LABEL: session, names.APP_COMPONENT: "driver"},
        "ports": [
            {
                "name": names.PORT_NAMES[port],
                "port": port,
                "targetPort": names.PORT_NAMES[port],
                "protocol": "TCP",
                **({"appProtocol": "kubernetes.io/h2c"} if port == names.CONNECT_PORT else {}),
                **({"appProtocol": "http"} if port == names.UI_PORT else {}),
            }
            for port in ports
        ],
    }
    if while_starting:
        # Executors must reach the driver while it is still starting up.
        spec["publishNotReadyAddresses"] = True
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(
            name=name, namespace=namespace, labels=names.session_labels(session, component), owner=owner
        ),
        "spec": spec,
    }


def driver_service(*, owner: dict[str, Any]) -> dict[str, Any]:
    n = names.SessionNames(owner["metadata"]["name"])
    return _service(
        owner=owner,
        name=n.driver_service,
        component="driver",
        ports=[names.DRIVER_PORT, names.BLOCK_MANAGER_PORT],
        while_starting=True,
    )


def connect_service(*, owner: dict[str, Any]) -> dict[str, Any]:
    n = names.SessionNames(owner["metadata"]["name"])
    return _service(owner=owner, name=n.connect_service, component="connect", ports=[names.CONNECT_PORT])


def ui_service(*, owner: dict[str, Any]) -> dict[str, Any]:
    n = names.SessionNames(owner["metadata"]["name"])
    return _service(owner=owner, name=n.ui_service, component="ui", ports=[names.UI_PORT])


def _rbac_meta(owner: dict[str, Any], name: str) -> dict[str, Any]:
    session = owner["metadata"]["name"]
    return metadata(
        name=name,
        namespace=owner["metadata"]["namespace"],
        labels=names.session_labels(session, "driver"),
        owner=owner,
    )


def service_account(*, owner: dict[str, Any]) -> dict[str, Any]:
    n = names.SessionNames(owner["metadata"]["name"])
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _rbac_meta(owner, n.service_account),
        # Only the driver pod mounts a token (it says so itself); nothing else should.
        "automountServiceAccountToken": False,
    }


def role(*, owner: dict[str, Any]) -> dict[str, Any]:
    n = names.SessionNames(owner["metadata"]["name"])
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _rbac_meta(owner, n.role),
        "rules": DRIVER_RULES,
    }


def role_binding(*, owner: dict[str, Any]) -> dict[str, Any]:
    n = names.SessionNames(owner["metadata"]["name"])
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _rbac_meta(owner, n.role_binding),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": n.role},
        "subjects": [
            {"kind": "ServiceAccount", "name": n.service_account, "namespace": owner["metadata"]["namespace"]}
        ],
    }


REDACTED = "<generated by the operator; never printed>"


def token_secret(*, owner: dict[str, Any], token: str | None) -> dict[str, Any]:
    """The Spark Connect token. Created once with a random token, never rewritten.

    `token=None` renders the Secret without its value (for `sparkbook render`).
    """
    session = owner["metadata"]["name"]
    n = names.SessionNames(session)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(
            name=n.token_secret,
            namespace=owner["metadata"]["namespace"],
            labels=names.session_labels(session, "connect"),
            owner=owner,
            annotations={names.GENERATED_SECRET: "token"},
        ),
        "type": "Opaque",
        "immutable": True,
        "stringData": {names.TOKEN_KEY: token if token is not None else REDACTED},
    }


def session_children(
    *,
    owner: dict[str, Any],
    spec: SparkSessionSpec,
    image: str,
    token: str | None,
    operator_namespace: str | None = None,
    event_log: EventLogTarget | None = None,
) -> list[dict[str, Any]]:
    """Every child in apply order; the driver pod is left out while the session is suspended."""
    children = [
        session_network_policy(owner=owner, operator_namespace=operator_namespace),
        service_account(owner=owner),
        role(owner=owner),
        role_binding(owner=owner),
        token_secret(owner=owner, token=token),
        executor_template_configmap(owner=owner, spec=spec),
        driver_service(owner=owner),
        connect_service(owner=owner),
        ui_service(owner=owner),
    ]
    if not spec.suspend:
        children.append(driver_pod(owner=owner, spec=spec, image=image, event_log=event_log))
    return children
