"""Children of a NotebookServer: StatefulSet, Service, PVC, token Secret, start-up ConfigMap,
and the SparkSession it owns when its spec carries one."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sparkbook import names
from sparkbook.api.notebookserver import NotebookServerSpec
from sparkbook.build.common import (
    container_security_context,
    env_list,
    metadata,
    pod_security_context,
    scheduling,
)
from sparkbook.build.network import notebook_network_policy
from sparkbook.build.session import REDACTED
from sparkbook.kernels import startup as kernel_startup

# Runs in every new kernel (IPython executes /etc/ipython/startup/*.py). The notebook image's
# sparkbook.notebook package does the real work; without it, a bare `spark` is still made.
STARTUP_PY = '''\
# Sparkbook kernel start-up: mounted by the operator from a ConfigMap, run by every new kernel.
import os as _os

if _os.environ.get("SPARK_REMOTE"):
    try:
        from sparkbook.notebook import startup as _sparkbook_startup
    except ImportError:
        _sparkbook_startup = None
    if _sparkbook_startup is not None:
        _sparkbook_startup.start(globals())
    elif "$(" in _os.environ["SPARK_REMOTE"]:
        print("Spark is not ready yet: the SparkSession's token Secret does not exist. "
              "Check `kubectl get sparksessions`, then restart the kernel.")
    else:
        from pyspark.sql import SparkSession as _SparkSession

        spark = _SparkSession.builder.remote(_os.environ["SPARK_REMOTE"]).getOrCreate()
'''
STARTUP_FILE = "00-sparkbook.py"


def attached_session(*, name: str, spec: NotebookServerSpec) -> str | None:
    """Name of the SparkSession the notebook talks to, if any."""
    if spec.spark is None:
        return None
    if spec.spark.session_ref is not None:
        return spec.spark.session_ref.name
    if spec.spark.session is not None:
        return names.NotebookNames(name).owned_session
    return None


def spark_env(*, session: str, namespace: str, base_url: str = "/") -> list[dict[str, Any]]:
    """SPARK_REMOTE with the session's token, which comes from the session's Secret at container start.

    Kubernetes expands $(SPARKBOOK_CONNECT_TOKEN) from the variable defined just before it, so the
    token is never in the pod spec. The Connect server has no TLS, so the token travels as an
    `authorization` header parameter (see build/launch.py).
    """
    n = names.SessionNames(session)
    host = f"{n.connect_service}.{namespace}.svc"
    return [
        {
            "name": names.CLIENT_TOKEN_ENV,
            "valueFrom": {"secretKeyRef": {"name": n.token_secret, "key": names.TOKEN_KEY, "optional": True}},
        },
        {
            "name": "SPARK_REMOTE",
            "value": f"sc://{host}:{names.CONNECT_PORT}/;authorization=Bearer%20$({names.CLIENT_TOKEN_ENV})",
        },
        {"name": "SPARKBOOK_SPARK_SESSION", "value": session},
        {"name": "SPARKBOOK_SPARK_UI", "value": names.ui_endpoint(session, namespace)},
        # The Spark UI one click away, through the notebook server's own authenticated URL
        # (jupyter-server-proxy; it sends X-Forwarded-Context, which the Spark UI uses for its links).
        {"name": "SPARKBOOK_SPARK_UI_LINK", "value": f"{base_url}proxy/{n.ui_service}.{namespace}.svc:{names.UI_PORT}/jobs/"},
    ]


def history_env(*, history_url: str, base_url: str = "/") -> list[dict[str, Any]]:
    """Where the kernel and the notebook server find the History Server, and the stable Spark UI
    links (sparkbook.notebook.links) that go to the live UI while the driver runs and to the
    History Server once it is gone. An in-cluster History Server is reached through the notebook
    server's proxy, like the live UI; any other URL (an ingress) is linked as it is."""
    parts = urlsplit(history_url)
    host = parts.hostname or ""
    if parts.scheme == "http" and (host.endswith(".svc") or host.endswith(".svc.cluster.local")):
        link = f"{base_url}proxy/{parts.netloc}{parts.path.rstrip('/')}"
    else:
        link = history_url.rstrip("/")
    return [
        {"name": names.HISTORY_ENV, "value": history_url.rstrip("/")},
        {"name": names.HISTORY_LINK_ENV, "value": link},
        {"name": names.SPARK_LINKS_ENV, "value": f"{base_url}{names.SPARK_LINKS_PATH}"},
    ]


def _owner_meta(owner: dict[str, Any], name: str, component: str, *, owned: bool = True) -> dict[str, Any]:
    return metadata(
        name=name,
        namespace=owner["metadata"]["namespace"],
        labels=names.notebook_labels(owner["metadata"]["name"], component),
        owner=owner if owned else None,
    )


def token_secret(*, owner: dict[str, Any], token: str | None) -> dict[str, Any]:
    """The Jupyter token: generated once, immutable, never printed by `sparkbook render`."""
    n = names.NotebookNames(owner["metadata"]["name"])
    meta = _owner_meta(owner, n.token_secret, "token")
    meta["annotations"] = {names.GENERATED_SECRET: "token"}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": meta,
        "type": "Opaque",
        "immutable": True,
        "stringData": {names.TOKEN_KEY: token if token is not None else REDACTED},
    }


def startup_files() -> dict[str, str]:
    """Every kernel's start-up file by name: the start-up ConfigMap's data, and what
    `sparkbook local` writes where the pod would mount it."""
    return {STARTUP_FILE: STARTUP_PY, kernel_startup.SCALA_FILE: kernel_startup.SCALA,
            kernel_startup.R_FILE: kernel_startup.R}


def startup_configmap(*, owner: dict[str, Any]) -> dict[str, Any]:
    n = names.NotebookNames(owner["metadata"]["name"])
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _owner_meta(owner, n.startup, "startup"),
        # The Scala and R kernels' start-up beside the Python one (sparkbook.kernels.startup).
        "data": startup_files(),
    }


def service(*, owner: dict[str, Any]) -> dict[str, Any]:
    name = owner["metadata"]["name"]
    n = names.NotebookNames(name)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _owner_meta(owner, n.service, "notebook"),
        "spec": {
            # Headless: the StatefulSet's governing Service, in front of its one pod (see the
            # session's Services for why no virtual IP).
            "type": "ClusterIP",
            "clusterIP": "None",
            "selector": {names.NOTEBOOK_LABEL: name, names.APP_COMPONENT: "notebook"},
            "ports": [
                {"name": "http", "port": names.NOTEBOOK_PORT, "targetPort": "http", "protocol": "TCP", "appProtocol": "http"}
            ],
        },
    }


def pvc(*, owner: dict[str, Any], spec: NotebookServerSpec) -> dict[str, Any]:
    """The home directory. Owned (deleted with the notebook) only when retainOnDelete is false."""
    n = names.NotebookNames(owner["metadata"]["name"])
    claim: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": str(spec.storage.size)}},
    }
    if spec.storage.storage_class_name:
        claim["storageClassName"] = spec.storage.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _owner_meta(owner, n.pvc, "home", owned=not spec.storage.retain_on_delete),
        "spec": claim,
    }


def statefulset(
    *,
    owner: dict[str, Any],
    spec: NotebookServerSpec,
    image: str,
    running: bool,
    spark_token_uid: str | None = None,
    hub_env_version: str | None = None,
    history_url: str | None = None,
) -> dict[str, Any]:
    """One Jupyter server; replicas 0 while suspended or culled (the PVC keeps the files).

    Behind a JupyterHub (spec.jupyterhub) it runs jupyterhub-singleuser with the hub's Secret as
    its environment: the hub's OAuth, not the token, logs users in, under the hub's prefix."""
    name, namespace = owner["metadata"]["name"], owner["metadata"]["namespace"]
    n = names.NotebookNames(name)
    labels = names.notebook_labels(name, "notebook")
    session = attached_session(name=name, spec=spec)
    hub = spec.jupyterhub
    env: list[dict[str, Any]] = [] if hub else [
        {"name": "JUPYTER_TOKEN", "valueFrom": {"secretKeyRef": {"name": n.token_secret, "key": names.TOKEN_KEY}}},
    ]
    env += [
        {"name": "HOME", "value": names.NOTEBOOK_HOME},
        # The root filesystem is read-only: `%pip install` goes to ~/.local on the PVC and survives restarts.
        {"name": "PIP_USER", "value": "1"},
    ]
    if session:
        env += spark_env(session=session, namespace=namespace, base_url=hub.base_url if hub else "/")
        if history_url:
            env += history_env(history_url=history_url, base_url=hub.base_url if hub else "/")
    env += env_list(spec.env)
    probe_http = {"path": f"{hub.base_url if hub else '/'}api", "port": "http"}
    container: dict[str, Any] = {
        "name": "notebook",
        "image": image,
        "imagePullPolicy": spec.image_pull_policy,
        # jupyterhub-singleuser takes its base URL from JUPYTERHUB_SERVICE_PREFIX.
        "command": [
            *(["jupyterhub-singleuser"] if hub else ["jupyter", "server"]),
            "--ServerApp.ip=0.0.0.0",
            f"--ServerApp.port={names.NOTEBOOK_PORT}",
            f"--ServerApp.root_dir={names.NOTEBOOK_HOME}",
            "--ServerApp.default_url=/lab",
            "--ServerApp.allow_remote_access=True",
            "--ServerApp.open_browser=False",
        ],
        "env": env,
        **({"envFrom": [{"secretRef": {"name": hub.secret_name}}]} if hub else {}),
        "ports": [{"name": "http", "containerPort": names.NOTEBOOK_PORT, "protocol": "TCP"}],
        "resources": spec.resources.wire(),
        "startupProbe": {"httpGet": probe_http, "periodSeconds": 2, "failureThreshold": 150},
        "readinessProbe": {"httpGet": probe_http, "periodSeconds": 10, "failureThreshold": 3},
        "livenessProbe": {"httpGet": probe_http, "periodSeconds": 30, "failureThreshold": 5, "timeoutSeconds": 5},
        "securityContext": container_security_context(names.NOTEBOOK_UID) | {"runAsGroup": names.NOTEBOOK_GID},
        "volumeMounts": [
            {"name": "home", "mountPath": names.NOTEBOOK_HOME},
            {"name": "startup", "mountPath": f"{names.NOTEBOOK_STARTUP_DIR}/startup", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,  # the notebook never talks to the Kubernetes API
        "enableServiceLinks": False,
        "securityContext": pod_security_context(names.NOTEBOOK_UID)
        | {"runAsGroup": names.NOTEBOOK_GID, "fsGroup": names.NOTEBOOK_GID, "fsGroupChangePolicy": "OnRootMismatch"},
        "containers": [container],
        "volumes": [
            {"name": "home", "persistentVolumeClaim": {"claimName": n.pvc}},
            {"name": "startup", "configMap": {"name": n.startup}},
            {"name": "tmp", "emptyDir": {}},
        ],
        **scheduling(spec),
    }
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in spec.image_pull_secrets]
    annotations = {}
    if session:
        # A re-created session has a new token: restart the server so its kernels get it.
        annotations[names.SPARK_TOKEN_UID] = spark_token_uid or "none"
    if hub:
        annotations[names.JUPYTERHUB_ENV_VERSION] = hub_env_version or "none"
    pod_labels = {**labels, **({names.USES_SESSION_LABEL: session} if session else {})}
    if hub:  # Zero to JupyterHub's hub admits user servers by this label
        pod_labels[names.HUB_ACCESS_HUB_LABEL] = "true"
    template = {"metadata": {"labels": pod_labels, **({"annotations": annotations} if annotations else {})},
                "spec": pod_spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _owner_meta(owner, n.statefulset, "notebook"),
        "spec": {
            "replicas": 1 if running else 0,
            "serviceName": n.service,
            "selector": {"matchLabels": {names.NOTEBOOK_LABEL: name, names.APP_COMPONENT: "notebook"}},
            "template": template,
        },
    }


def owned_session(*, owner: dict[str, Any], spec: NotebookServerSpec, suspend: bool) -> dict[str, Any] | None:
    """The SparkSession a notebook owns (spark.session), suspended whenever the notebook is."""
    if spec.spark is None or spec.spark.session is None:
        return None
    n = names.NotebookNames(owner["metadata"]["name"])
    session_spec = spec.spark.session.wire()
    session_spec["suspend"] = bool(spec.spark.session.suspend or suspend)
    return {
        "apiVersion": names.API_VERSION,
        "kind": "SparkSession",
        "metadata": _owner_meta(owner, n.owned_session, "spark"),
        "spec": session_spec,
    }


def notebook_children(
    *,
    owner: dict[str, Any],
    spec: NotebookServerSpec,
    image: str,
    token: str | None,
    culled: bool = False,
    spark_token_uid: str | None = None,
    hub_env_version: str | None = None,
    operator_namespace: str | None = None,
    access_namespaces: list[str] | None = None,
    history_url: str | None = None,
) -> list[dict[str, Any]]:
    """Every child in apply order."""
    running = not (spec.suspend or culled)
    children = [
        notebook_network_policy(
            owner=owner, operator_namespace=operator_namespace, access_namespaces=access_namespaces,
            hub_namespace=(spec.jupyterhub.hub_namespace or owner["metadata"]["namespace"]) if spec.jupyterhub else None,
        ),
        token_secret(owner=owner, token=token),
        startup_configmap(owner=owner),
        pvc(owner=owner, spec=spec),
        service(owner=owner),
    ]
    session = owned_session(owner=owner, spec=spec, suspend=not running)
    if session is not None:
        children.append(session)
    children.append(
        statefulset(owner=owner, spec=spec, image=image, running=running, spark_token_uid=spark_token_uid,
                    hub_env_version=hub_env_version, history_url=history_url)
    )
    return children

