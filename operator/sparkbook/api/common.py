"""Building blocks shared by the resource models: base config, quantities, durations, conditions."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict
from pydantic.alias_generators import to_camel


class Model(BaseModel):
    """Base of every API model: camelCase on the wire, unknown fields rejected, docstrings kept.

    Attribute docstrings become the CRD's field descriptions (what `kubectl explain` shows).
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        validate_default=True,
    )

    def wire(self) -> dict[str, Any]:
        """The model as it is written to the API: camelCase, no nulls."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def crd_extra(**extra: Any) -> dict[str, Any]:
    """Schema keywords that only the CRD generator understands (x-kubernetes-*)."""
    return {"x-crd": extra}


# A Kubernetes resource quantity ("500m", "2", "4Gi", 2): integer or string, as the API server takes it.
# None the spec takes can be negative (a request, a limit, a size): they admit no minus sign.
_QUANTITY_NUMBER = r"(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
_QUANTITY_NONZERO = r"(([0-9]*[1-9][0-9]*(\.[0-9]*)?)|([0-9]*\.[0-9]*[1-9][0-9]*))"  # a digit other than 0
_QUANTITY_SUFFIX = r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?"
NONNEGATIVE_QUANTITY_PATTERN = rf"^\+?{_QUANTITY_NUMBER}{_QUANTITY_SUFFIX}$"
POSITIVE_QUANTITY_PATTERN = rf"^\+?{_QUANTITY_NONZERO}{_QUANTITY_SUFFIX}$"
_INT_OR_STRING = Field(json_schema_extra=crd_extra(**{"x-kubernetes-int-or-string": True}))
# 0 or more: a CPU or memory request or limit ("0" asks for nothing in particular, as in a Pod).
# (Strict: a string is never turned into a number, "-1" is refused as the string it is.)
Quantity = Annotated[
    Annotated[int, Strict(), Field(ge=0)] | Annotated[str, Field(pattern=NONNEGATIVE_QUANTITY_PATTERN)], _INT_OR_STRING
]
# More than 0: a size (a PersistentVolumeClaim of 0 bytes is refused by the API server).
PositiveQuantity = Annotated[
    Annotated[int, Strict(), Field(ge=1)] | Annotated[str, Field(pattern=POSITIVE_QUANTITY_PATTERN)], _INT_OR_STRING
]

# JVM memory as Spark writes it ("512m", "2g") or as Kubernetes does ("512Mi", "2Gi"); both mean binary units.
MEMORY_PATTERN = r"^[1-9][0-9]{0,6}(m|g|Mi|Gi)$"
Memory = Annotated[str, Field(pattern=MEMORY_PATTERN)]

# A Go-style duration: "90s", "10m", "2h", "1h30m".
DURATION_PATTERN = r"^([0-9]+(ms|s|m|h))+$"
Duration = Annotated[str, Field(pattern=DURATION_PATTERN, max_length=32)]
# The same, longer than zero: one of its numbers has a digit other than 0 ("0s" and "0h0m" do not match).
POSITIVE_DURATION_PATTERN = r"^([0-9]+(ms|s|m|h))*0*[1-9][0-9]*(ms|s|m|h)([0-9]+(ms|s|m|h))*$"
PositiveDuration = Annotated[str, Field(pattern=POSITIVE_DURATION_PATTERN, max_length=32)]

_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_seconds(value: str) -> float:
    """Seconds in a Go-style duration ("1h30m" -> 5400.0)."""
    if not re.fullmatch(DURATION_PATTERN, value):
        raise ValueError(f"not a duration: {value!r}")
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value))


def memory_mebibytes(value: str) -> int:
    """MiB in a memory setting ("2g" -> 2048, "512Mi" -> 512)."""
    m = re.fullmatch(MEMORY_PATTERN, value)
    if not m:
        raise ValueError(f"not a memory size: {value!r}")
    number = int(value[: -len(m.group(1))])
    return number * 1024 if m.group(1) in ("g", "Gi") else number


# --- Names of other objects, label keys and values ------------------------------------------------
# What the API server requires of them, so that a wrong one is refused when the resource is written
# and not, much later, when the operator creates a pod, a claim or a StatefulSet from it.

# Secrets, ConfigMaps, StorageClasses, ...: a lowercase RFC 1123 subdomain of at most 253 characters.
DNS1123_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
ObjectName = Annotated[str, Field(pattern=DNS1123_SUBDOMAIN_PATTERN, max_length=253)]
# The same or empty, where Kubernetes gives "" a meaning of its own (a claim's storageClassName).
OptionalObjectName = Annotated[str, Field(pattern=f"^({DNS1123_SUBDOMAIN_PATTERN[1:-1]})?$", max_length=253)]
# A SparkSession: a DNS-1035 label, as the SparkSession CRD requires (its Services are named after it).
DNS1035_LABEL_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
SessionName = Annotated[str, Field(pattern=DNS1035_LABEL_PATTERN, max_length=63)]
# A container's environment variable: printable ASCII but '=' (Kubernetes 1.34+, RelaxedEnvironmentVariableValidation).
ENV_VAR_NAME_PATTERN = r"^[ -<>-~]+$"
# A key of a Secret or a ConfigMap: letters, digits, '-', '_' and '.', neither '.' nor '..' nor starting with '..'.
CONFIG_KEY_PATTERN = r"^(\.[-_a-zA-Z0-9]|[-_a-zA-Z0-9])[-._a-zA-Z0-9]*$"

# A label value: at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit, or empty.
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
LabelValue = Annotated[str, Field(pattern=LABEL_VALUE_PATTERN, max_length=63)]

# Label and annotation keys are qualified names: an optional DNS subdomain prefix (at most 253 characters) and
# '/', then a name of at most 63 characters. A structural schema cannot constrain a map's keys, so a CEL rule
# does, with these expressions (no backslash, which a CEL string would take for an escape).
_QUALIFIED_NAME = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$"
_PREFIX_LENGTH = r"^([^/]{1,253}/)?[^/]*$"
QUALIFIED_NAME_MESSAGE = (
    "keys must be qualified names: a name of at most 63 letters, digits, '-', '_' or '.' that starts and "
    "ends with a letter or digit, optionally after a DNS subdomain prefix of at most 253 characters and '/' "
    "(e.g. 'team' or 'example.com/team')"
)


def is_qualified_name(key: str) -> bool:
    return bool(re.search(_QUALIFIED_NAME, key) and re.search(_PREFIX_LENGTH, key))


def _qualified_name(key: str) -> str:
    if not is_qualified_name(key):
        raise ValueError(f"{key!r}: {QUALIFIED_NAME_MESSAGE}")
    return key


QualifiedName = Annotated[str, AfterValidator(_qualified_name)]
MAX_MAP_ENTRIES = 64  # labels, annotations, nodeSelector: bounds the CEL rule's cost on their keys
_QUALIFIED_KEYS = crd_extra(
    **{
        "x-kubernetes-validations": [
            {
                "rule": f"self.all(k, k.matches('{_QUALIFIED_NAME}') && k.matches('{_PREFIX_LENGTH}'))",
                "message": QUALIFIED_NAME_MESSAGE,
            }
        ]
    }
)
# Labels of a pod, and a nodeSelector (which the API server checks as labels).
Labels = Annotated[
    dict[QualifiedName, LabelValue], Field(max_length=MAX_MAP_ENTRIES, json_schema_extra=_QUALIFIED_KEYS)
]
Annotations = Annotated[dict[QualifiedName, str], Field(max_length=MAX_MAP_ENTRIES, json_schema_extra=_QUALIFIED_KEYS)]

# A container's resources: cpu, memory, ephemeral-storage, hugepages-<size>, or an extended resource
# with a domain prefix (nvidia.com/gpu); a pod asking for anything else is refused.
_EXTENDED_RESOURCE = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$"
_STANDARD_RESOURCES = ("cpu", "memory", "ephemeral-storage")
RESOURCE_NAME_MESSAGE = (
    "keys must be cpu, memory, ephemeral-storage, hugepages-<size> or an extended resource with a domain "
    "prefix (e.g. 'nvidia.com/gpu')"
)


def is_resource_name(key: str) -> bool:
    return key in _STANDARD_RESOURCES or key.startswith("hugepages-") or bool(re.search(_EXTENDED_RESOURCE, key))


def _resource_name(key: str) -> str:
    if not is_resource_name(key):
        raise ValueError(f"{key!r}: {RESOURCE_NAME_MESSAGE}")
    return key


ResourceName = Annotated[str, AfterValidator(_resource_name)]
_RESOURCE_KEYS = crd_extra(
    **{
        "x-kubernetes-validations": [
            {
                "rule": "self.all(k, k in ['cpu', 'memory', 'ephemeral-storage'] || k.startsWith('hugepages-') "
                f"|| k.matches('{_EXTENDED_RESOURCE}'))",
                "message": RESOURCE_NAME_MESSAGE,
            }
        ]
    }
)
ResourceList = Annotated[dict[ResourceName, Quantity], Field(max_length=16, json_schema_extra=_RESOURCE_KEYS)]


class Condition(Model):
    """A Kubernetes-style condition (metav1.Condition), as kstatus and Argo CD read it."""

    type: str
    """Ready, Reconciling, Stalled, ..."""
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    """A CamelCase word saying why."""
    message: str = ""
    """A sentence for humans."""
    last_transition_time: str | None = None
    observed_generation: int | None = None


class KeySelector(Model):
    """A key of a Secret or ConfigMap in the pod's namespace."""

    name: ObjectName
    """The Secret or ConfigMap."""
    key: str = Field(pattern=CONFIG_KEY_PATTERN, max_length=253)
    optional: bool | None = None
    """True: the pod starts without the variable when the object or the key is missing."""


class EnvVarSource(Model):
    """As in a Pod's env[].valueFrom: secretKeyRef and configMapKeyRef are checked here, the others
    (fieldRef, resourceFieldRef, fileKeyRef) are passed on as written."""

    model_config = Model.model_config | {"extra": "allow"}

    secret_key_ref: KeySelector | None = None
    config_map_key_ref: KeySelector | None = None


class EnvVar(Model):
    """An environment variable for a container (a literal value or a reference)."""

    name: str = Field(min_length=1, max_length=256, pattern=ENV_VAR_NAME_PATTERN)
    value: str | None = None
    value_from: EnvVarSource | None = None
    """As in a Pod's env[].valueFrom (secretKeyRef, configMapKeyRef, fieldRef)."""


class PodOptions(Model):
    """Where and how a pod is scheduled and labelled."""

    env: list[EnvVar] = Field(default_factory=list, max_length=128)
    labels: Labels = Field(default_factory=dict)
    annotations: Annotations = Field(default_factory=dict)
    node_selector: Labels = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    """As in a Pod's spec.tolerations."""
    affinity: dict[str, Any] | None = None
    """As in a Pod's spec.affinity."""
