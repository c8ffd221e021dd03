"""The NotebookServer resource: one user's Jupyter server, attached to a Spark session."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from sparkbook import names
from sparkbook.api.common import (
    Condition,
    EnvVar,
    Labels,
    Model,
    ObjectName,
    OptionalObjectName,
    PositiveDuration,
    PositiveQuantity,
    ResourceList,
    SessionName,
    crd_extra,
)
from sparkbook.api.sparksession import SparkSessionSpec


class Resources(Model):
    """CPU and memory of the notebook container, as in a Pod's resources."""

    requests: ResourceList = Field(default_factory=lambda: {"cpu": "1", "memory": "4Gi"})
    """cpu, memory, ...: 0 or more each."""
    limits: ResourceList = Field(default_factory=lambda: {"memory": "4Gi"})


class Storage(Model):
    """The PersistentVolumeClaim mounted as the user's home directory."""

    size: PositiveQuantity = "10Gi"
    """The claim's storage request: more than 0 ("10Gi")."""
    storage_class_name: OptionalObjectName | None = None
    """A StorageClass; the cluster's default one when unset or empty."""
    retain_on_delete: bool = True
    """Keep the claim (and the user's files) when the NotebookServer is deleted; a NotebookServer
    created later with the same name picks it up again."""


class SessionRef(Model):
    name: SessionName
    """A SparkSession in the same namespace (a SparkSession's name is a DNS-1035 label)."""


class SparkAttachment(Model):
    """Which Spark session `spark` in the notebook talks to."""

    model_config = Model.model_config | {
        "json_schema_extra": crd_extra(
            **{
                "x-kubernetes-validations": [
                    {
                        "rule": "!(has(self.sessionRef) && has(self.session))",
                        "message": "set either spark.sessionRef (attach to an existing SparkSession) or "
                        "spark.session (the notebook owns one), not both",
                    }
                ]
            }
        )
    }

    session_ref: SessionRef | None = None
    """Attach to an existing SparkSession in the same namespace."""
    session: SparkSessionSpec | None = None
    """Own a SparkSession named <notebook>-spark with this spec, suspended and culled with the notebook."""

    @model_validator(mode="after")
    def _one(self) -> "SparkAttachment":
        if self.session_ref is not None and self.session is not None:
            raise ValueError("set either spark.sessionRef or spark.session, not both")
        return self


class IdleCulling(Model):
    """Scale the server to zero after this long without activity (busy kernels and open terminals count)."""

    enabled: bool = True
    timeout: PositiveDuration = "1h"
    """Longer than 0 ("1h", "90m"); to keep the server running, set enabled: false."""


class JupyterHubAttachment(Model):
    """The server is one of a JupyterHub's: it runs `jupyterhub-singleuser`, so the hub's OAuth
    logs users in and the hub's proxy sends them to it. The spawner
    (sparkbook.jupyterhub.NotebookServerSpawner) sets this; a hand-written server leaves it out."""

    secret_name: ObjectName
    """A Secret in the same namespace with the hub's environment for this server (JUPYTERHUB_API_TOKEN,
    JUPYTERHUB_SERVICE_PREFIX, ...), given to the container as env. The server waits for it, and
    restarts when the hub writes new credentials into it."""
    base_url: str = Field(pattern=r"^/([A-Za-z0-9._~%!$&'()*+,;=:@-]+/)*$", max_length=512)
    """Where the hub serves this server (JUPYTERHUB_SERVICE_PREFIX, "/user/alice/"): the probes
    and the status URL use it."""
    hub_namespace: ObjectName | None = Field(None, max_length=63)
    """The namespace of the hub and its proxy: their pods labelled
    hub.jupyter.org/network-access-singleuser=true (as Zero to JupyterHub labels them) may reach
    the server. Default: the server's own namespace."""


class NotebookServerSpec(Model):
    """What the user asks for. With a profile, what the user leaves out comes from the profile."""

    profile: ObjectName | None = Field(None, max_length=63)
    """A NotebookProfile (`kubectl get notebookprofiles`): its defaults apply under the fields set
    here, and only the fields it lets a user override may be set."""

    image: str | None = Field(None, min_length=1, max_length=512)
    """Notebook image; the operator's default (Jupyter, the pyspark Connect client, the sparkbook kernel
    extension) when unset."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: list[ObjectName] = Field(default_factory=list, max_length=16)
    """Secrets (names in the same namespace) for pulling the image."""
    resources: Resources = Field(default_factory=Resources)
    storage: Storage = Field(default_factory=Storage)
    spark: SparkAttachment | None = None
    """No spark: a plain Python notebook."""
    idle_culling: IdleCulling = Field(default_factory=IdleCulling)
    suspend: bool = False
    """True: the server is scaled to zero (files kept); an owned SparkSession is suspended too."""
    env: list[EnvVar] = Field(default_factory=list, max_length=128)
    node_selector: Labels = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    affinity: dict[str, Any] | None = None
    jupyterhub: JupyterHubAttachment | None = None
    """Set by the JupyterHub spawner: the server runs jupyterhub-singleuser behind the hub."""


class AppliedProfile(Model):
    """The NotebookProfile as it was when the server was last started or changed."""

    name: str
    generation: int | None = None
    spec: dict[str, Any] = Field(default_factory=dict)
    """The profile's spec then, so that an edited profile does not restart running servers."""


NotebookPhase = Literal["Pending", "Starting", "Running", "Suspended", "Culled", "Failed"]


class NotebookServerStatus(Model):
    """What the operator observes; written only by the operator."""

    phase: NotebookPhase = "Pending"
    observed_generation: int | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra=crd_extra(**{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}),
    )
    url: str | None = None
    """The notebook inside the cluster (log in with the token from tokenSecret)."""
    token_secret: str | None = None
    """Secret holding the Jupyter token (key: token)."""
    spark_session: str | None = None
    spark_ui: str | None = Field(None, alias="sparkUI")
    """The Spark UI: the live one while the session's driver runs, else its History Server page."""
    spark_history: str | None = None
    """The History Server page of the session's current or last application (event logs on)."""
    last_activity_time: str | None = None
    culled_at: str | None = None
    profile: AppliedProfile | None = None
    """The NotebookProfile the running server was made with; a changed profile applies at the next
    start (condition PendingRestart says when one is waiting)."""


class NotebookServer(Model):
    """A user's Jupyter server (StatefulSet, Service, PVC, token Secret), attached to a Spark session."""

    KIND: ClassVar[str] = "NotebookServer"
    PLURAL: ClassVar[str] = "notebookservers"
    SINGULAR: ClassVar[str] = "notebookserver"
    SHORT_NAMES: ClassVar[list[str]] = ["nbs"]
    MAX_NAME: ClassVar[int] = names.MAX_NOTEBOOK_NAME
    # The stored object holds only what the user wrote, so that a profile's defaults can go under
    # it; the operator's models apply the same defaults when no profile is named.
    PUBLISH_DEFAULTS: ClassVar[bool] = False
    PRINTER_COLUMNS: ClassVar[list[dict[str, Any]]] = [
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
        {"name": "Spark", "type": "string", "jsonPath": ".status.sparkSession"},
        {"name": "Profile", "type": "string", "jsonPath": ".spec.profile", "priority": 1},
        {"name": "URL", "type": "string", "jsonPath": ".status.url"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]

    api_version: Literal["sparkbook.io/v1alpha1"] = names.API_VERSION
    kind: Literal["NotebookServer"] = "NotebookServer"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: NotebookServerSpec = Field(default_factory=NotebookServerSpec)
    status: NotebookServerStatus | None = None
