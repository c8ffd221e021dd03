"""pydantic v2 models of the custom resources: the single source of truth for the CRD schemas."""

from sparkbook.api.common import Condition
from sparkbook.api.notebookserver import NotebookServer, NotebookServerSpec, NotebookServerStatus
from sparkbook.api.sparksession import SparkSession, SparkSessionSpec, SparkSessionStatus

__all__ = ["NotebookServer", "NotebookServerSpec", "NotebookServerStatus", "Condition", "SparkSession", "SparkSessionSpec", "SparkSessionStatus"]
