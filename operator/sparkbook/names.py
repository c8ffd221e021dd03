"""Names, labels and ports: defined once, imported everywhere (builders, status, tests)."""

from __future__ import annotations

import hashlib
import re

GROUP = "sparkbook.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
FIELD_MANAGER = "sparkbook"

SPARK_VERSION = "4.3.0"
DEFAULT_SPARK_IMAGE = f"apache/spark:{SPARK_VERSION}-python3"
SPARK_UID = 185  # the `spark` user of the apache/spark images
SPARK_HOME = "/opt/spark"

# Ports, named as in the Spark operator so dashboards and NetworkPolicies read the same.
DRIVER_PORT = 7078
BLOCK_MANAGER_PORT = 7079
UI_PORT = 4040
CONNECT_PORT = 15002
PORT_NAMES = {
    DRIVER_PORT: "driver-rpc",
    BLOCK_MANAGER_PORT: "blockmanager",
    UI_PORT: "spark-ui",
    CONNECT_PORT: "spark-connect",
}

# Labels (recommended app.kubernetes.io/* plus our own selectors).
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "sparkbook"
APP_NAME = "app.kubernetes.io/name"
APP_INSTANCE = "app.kubernetes.io/instance"
APP_COMPONENT = "app.kubernetes.io/component"
SESSION_LABEL = f"{GROUP}/session"
NOTEBOOK_LABEL = f"{GROUP}/notebook"
ROLE_LABEL = "spark-role"
USES_SESSION_LABEL = f"{GROUP}/spark-session"  # on notebook pods: the session they may reach
NOTEBOOK_ACCESS_LABEL = f"{GROUP}/notebook-access"  # on pods allowed to reach notebooks (a proxy)  # what Spark itself puts on its pods: driver | executor

# Annotations.
CONFIG_HASH = f"{GROUP}/config-hash"
SPEC_GENERATION = f"{GROUP}/spec-generation"
GENERATED_SECRET = f"{GROUP}/generated"

EVENT_LOG_LABEL = f"{GROUP}/event-log"  # on driver pods whose application ID is spark-<pod UID>
EVENT_LOG_DIR = "/spark-events"  # where a claim for event logs is mounted (driver and History Server)
DRIVER_UID_ENV = "SPARKBOOK_DRIVER_UID"  # the driver pod's UID (Downward API), in spark.app.id
HISTORY_PORT = 18080  # Spark's History Server
HISTORY_ENV = "SPARKBOOK_SPARK_HISTORY"  # notebook pods: the History Server, reachable from the kernel
HISTORY_LINK_ENV = "SPARKBOOK_SPARK_HISTORY_LINK"  # ... and for browsers (through the server's proxy)
SPARK_LINKS_ENV = "SPARKBOOK_SPARK_LINKS"  # notebook pods: the stable Spark UI links' root
SPARK_LINKS_PATH = "sparkbook/spark-ui"  # under the notebook server's base URL (sparkbook.notebook.links)

TOKEN_KEY = "token"
EXECUTOR_TEMPLATE_KEY = "executor-pod-template.yaml"
EXECUTOR_TEMPLATE_DIR = "/opt/sparkbook/templates"

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME = 63


def is_dns1035_label(name: str) -> bool:
    return len(name) <= MAX_NAME and bool(_DNS1035.match(name))


def child_name(owner: str, suffix: str, *, limit: int = MAX_NAME) -> str:
    """`<owner>-<suffix>`, shortened with a stable hash when too long for a DNS label.

    Every child name is derived here so that the same owner always yields the same names
    (a restarted operator finds what it created) and Services stay valid DNS-1035 labels.
    """
    full = f"{owner}-{suffix}"
    if len(full) <= limit:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    keep = limit - len(suffix) - len(digest) - 2
    return f"{owner[:keep].rstrip('-')}-{digest}-{suffix}"


def shorten(name: str, limit: int) -> str:
    """`name` itself, or a prefix of it plus a stable hash when longer than `limit`."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - len(digest) - 1].rstrip('-')}-{digest}"


class SessionNames:
    """Every child name of one SparkSession."""

    def __init__(self, name: str) -> None:
        self.session = name
        self.driver_pod = child_name(name, "driver")
        self.driver_service = child_name(name, "driver-svc")
        self.connect_service = child_name(name, "connect")
        self.ui_service = child_name(name, "ui")
        self.service_account = child_name(name, "spark")
        self.role = child_name(name, "spark")
        self.role_binding = child_name(name, "spark")
        self.token_secret = child_name(name, "connect-token")
        self.executor_template = child_name(name, "executor-template")
        self.network_policy = child_name(name, "network")
        # Spark appends "-exec-<n>" to this; Spark requires the prefix to be short.
        self.executor_prefix = shorten(name, 40)


def session_labels(name: str, component: str | None = None) -> dict[str, str]:
    labels = {
        APP_NAME: "spark",
        APP_INSTANCE: name,
        MANAGED_BY: MANAGED_BY_VALUE,
        SESSION_LABEL: name,
    }
    if component:
        labels[APP_COMPONENT] = component
    return labels

# Spark settings that Sparkbook derives from the spec; a user's sparkConf may not set them
# (the CRD rejects them, naming the spec field to use instead).
RESERVED_SPARK_CONF = (
    "spark.master",
    "spark.submit.deployMode",
    "spark.app.name",
    "spark.kubernetes.namespace",
    "spark.kubernetes.driver.pod.name",
    "spark.kubernetes.container.image",
    "spark.kubernetes.executor.podTemplateFile",
    "spark.kubernetes.executor.podNamePrefix",
    "spark.driver.host",
    "spark.driver.bindAddress",
    "spark.driver.port",
    "spark.driver.blockManager.port",
    "spark.blockManager.port",
    "spark.ui.port",
    "spark.connect.grpc.binding.port",
    "spark.connect.authenticate.token",
    "spark.dynamicAllocation.enabled",
    "spark.dynamicAllocation.minExecutors",
    "spark.dynamicAllocation.initialExecutors",
    "spark.dynamicAllocation.maxExecutors",
    "spark.executor.instances",
)

# The Spark Connect server reads its auth token from this variable (filled from the token
# Secret), so the token never appears in a pod's args or in plain spec.
CONNECT_TOKEN_ENV = "SPARK_CONNECT_AUTHENTICATE_TOKEN"


def connect_endpoint(session: str, namespace: str) -> str:
    return f"sc://{SessionNames(session).connect_service}.{namespace}.svc:{CONNECT_PORT}"


def application_id(driver_uid: str) -> str:
    """The Spark application ID of a driver that writes event logs: stable, known before it starts."""
    return f"spark-{driver_uid}"


def history_page(history_url: str, app_id: str) -> str:
    """An application's page on a History Server (its jobs)."""
    return f"{history_url.rstrip('/')}/history/{app_id}/jobs/"


def ui_endpoint(session: str, namespace: str) -> str:
    return f"http://{SessionNames(session).ui_service}.{namespace}.svc:{UI_PORT}"

# Notebook servers.
NOTEBOOK_PORT = 8888
NOTEBOOK_UID = 1000  # jovyan, as in the Jupyter docker-stacks images
NOTEBOOK_GID = 100
NOTEBOOK_HOME = "/home/jovyan"
NOTEBOOK_STARTUP_DIR = "/etc/ipython"  # IPython reads its system-wide config here, outside the PVC
CULLED_AT = f"{GROUP}/culled-at"  # set by the operator when it culls; delete it to wake the server
IDLE_SUSPENDED_AT = f"{GROUP}/idle-suspended-at"  # same for a SparkSession stopped for inactivity
SPARK_TOKEN_UID = f"{GROUP}/spark-token-uid"
# On a JupyterHub server's pod template: the resourceVersion of the hub's Secret, so that new
# credentials from the hub restart the server instead of leaving it with a revoked token.
JUPYTERHUB_ENV_VERSION = f"{GROUP}/jupyterhub-env-version"
JUPYTERHUB_TOKEN_KEY = "JUPYTERHUB_API_TOKEN"
# Zero to JupyterHub's network-access labels: pods with the first may reach user servers (the
# hub and its proxy carry it); user servers carry the second to reach the hub's API.
HUB_ACCESS_SINGLEUSER_LABEL = "hub.jupyter.org/network-access-singleuser"
HUB_ACCESS_HUB_LABEL = "hub.jupyter.org/network-access-hub"
CLIENT_TOKEN_ENV = "SPARKBOOK_CONNECT_TOKEN"
LOCAL_ENV = "SPARKBOOK_LOCAL"  # set by `sparkbook local`: no Kubernetes behind the kernel
LOCAL_SPARK_LOG_ENV = "SPARKBOOK_SPARK_LOG"  # ... and where its Spark Connect server logs
MAX_NOTEBOOK_NAME = 52  # <name>-0 and the StatefulSet's revision labels must stay DNS labels


def default_notebook_image() -> str:
    from sparkbook import __version__

    return f"ghcr.io/sparkbook/notebook:{__version__}"


class NotebookNames:
    """Every child name of one NotebookServer."""

    def __init__(self, name: str) -> None:
        self.notebook = name
        self.statefulset = name
        self.service = name
        self.pod = f"{name}-0"
        self.pvc = child_name(name, "home")
        self.token_secret = child_name(name, "token")
        self.startup = child_name(name, "startup")
        self.owned_session = child_name(name, "spark")
        self.network_policy = child_name(name, "network")
        self.hub_secret = child_name(name, "jupyterhub")  # written by the JupyterHub spawner


def notebook_labels(name: str, component: str | None = "notebook") -> dict[str, str]:
    labels = {
        APP_NAME: "notebook",
        APP_INSTANCE: name,
        MANAGED_BY: MANAGED_BY_VALUE,
        NOTEBOOK_LABEL: name,
    }
    if component:
        labels[APP_COMPONENT] = component
    return labels
