"""The NotebookProfile resource: a server type an administrator defines ("Spark (Dynamic)",
"Experiment", ...), the defaults it gives a NotebookServer and what a user may change on top."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from sparkbook import names
from sparkbook.api.common import (
    Condition,
    EnvVar,
    Labels,
    Model,
    ObjectName,
    crd_extra,
)
from sparkbook.api.notebookserver import IdleCulling, Resources, Storage
from sparkbook.api.sparksession import SparkSessionSpec

_BOUND = Field(None, json_schema_extra=crd_extra(**{"x-kubernetes-int-or-string": True}))


class NotebookDefaults(Model):
    """NotebookServer fields the profile supplies; a field it leaves out has the operator's default."""

    image: str | None = Field(None, min_length=1, max_length=512)
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    image_pull_secrets: list[ObjectName] | None = Field(None, max_length=16)
    resources: Resources | None = None
    storage: Storage | None = None
    idle_culling: IdleCulling | None = None
    env: list[EnvVar] | None = Field(None, max_length=128)
    node_selector: Labels | None = None
    tolerations: list[dict[str, Any]] | None = None
    affinity: dict[str, Any] | None = None


class Override(Model):
    """One NotebookServer field a user may set on top of the profile, within bounds."""

    field: str = Field(min_length=1, max_length=256, pattern=r"^[a-zA-Z][a-zA-Z0-9]*(\.[a-zA-Z][a-zA-Z0-9]*)*$")
    """A path in NotebookServer.spec, as written in YAML: "spark.session.executor.memory",
    "spark.session.dynamicAllocation.maxExecutors", "spark.session.sparkConf" (extra Spark
    properties), "resources", "storage.size". A user may set it and anything under it."""
    min: int | str | None = _BOUND
    """The least value a user may give: a number, a memory size ("1g", "512Mi"), a quantity ("500m")
    or a duration ("10m"), compared as what it means."""
    max: int | str | None = _BOUND
    """The greatest value a user may give (maxExecutors at most 20: max: 20; executor memory at
    most 16g: max: 16g)."""
    values: list[str] | None = Field(None, max_length=64)
    """The only values a user may give (images, storage classes, ...)."""

    @field_validator("min", "max")
    @classmethod
    def _comparable(cls, value: int | str | None) -> int | str | None:
        from sparkbook.profile import magnitude  # the one place that knows how values compare

        if value is not None and magnitude(value) is None:
            raise ValueError(f"{value!r} is not a number, a memory size, a quantity or a duration")
        return value


class NotebookProfileSpec(Model):
    """What an administrator defines."""

    display_name: str = Field(min_length=1, max_length=128)
    """The name users see ("Spark (Dynamic)")."""
    description: str = Field("", max_length=2048)
    """A sentence or two shown under the name: what this server type is for."""
    default: bool = False
    """Preselected in the JupyterHub spawner's form. NotebookServers that name no profile get none."""
    order: int = Field(100, ge=0, le=10000)
    """Where it is listed among the profiles (lower first; then by name)."""
    notebook: NotebookDefaults = Field(default_factory=NotebookDefaults)
    spark: SparkSessionSpec | None = None
    """The SparkSession the notebook owns (spec.spark.session); without it a plain Python notebook."""
    overrides: list[Override] = Field(default_factory=list, max_length=64)
    """What a user may set on top. Every other field the user sets is refused (suspend and profile
    are always the user's)."""


class NotebookProfileStatus(Model):
    """What the operator observes; written only by the operator."""

    observed_generation: int | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra=crd_extra(**{"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}),
    )
    notebook_servers: int = 0
    """NotebookServers (in the namespaces the operator watches) that name this profile."""


class NotebookProfile(Model):
    """A server type: the defaults it gives a NotebookServer and what a user may change on top."""

    KIND: ClassVar[str] = "NotebookProfile"
    PLURAL: ClassVar[str] = "notebookprofiles"
    SINGULAR: ClassVar[str] = "notebookprofile"
    SHORT_NAMES: ClassVar[list[str]] = ["nbp"]
    SCOPE: ClassVar[str] = "Cluster"
    PUBLISH_DEFAULTS: ClassVar[bool] = False
    PRINTER_COLUMNS: ClassVar[list[dict[str, Any]]] = [
        {"name": "Display Name", "type": "string", "jsonPath": ".spec.displayName"},
        {"name": "Default", "type": "boolean", "jsonPath": ".spec.default"},
        {"name": "Valid", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Valid")].status'},
        {"name": "Servers", "type": "integer", "jsonPath": ".status.notebookServers"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]

    api_version: Literal["sparkbook.io/v1alpha1"] = names.API_VERSION
    kind: Literal["NotebookProfile"] = "NotebookProfile"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: NotebookProfileSpec
    status: NotebookProfileStatus | None = None
