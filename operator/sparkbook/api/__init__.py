"""pydantic v2 models of the custom resources: the single source of truth for the CRD schemas."""

from sparkbook.api.common import Condition
from sparkbook.api.sparksession import SparkSession, SparkSessionSpec, SparkSessionStatus

__all__ = ["Condition", "SparkSession", "SparkSessionSpec", "SparkSessionStatus"]
