"""The reconcilers: one module per resource (sparksession, notebookserver, notebookprofile), the idle checks
(idle), and the pass machinery they share (base). :class:`Controller` is all of them, one object
with one work queue."""

from __future__ import annotations

from sparkbook.controller.base import Cache, Key, Machinery, NameConflict, Outcome, Transient
from sparkbook.controller.idle import IdleChecks
from sparkbook.controller.notebookprofile import NotebookProfiles
from sparkbook.controller.notebookserver import NotebookServers
from sparkbook.controller.sparksession import EXECUTOR_SETTLE_SECONDS, SparkSessions

__all__ = ["Cache", "Controller", "EXECUTOR_SETTLE_SECONDS", "Key", "NameConflict", "Outcome", "Transient"]


class Controller(SparkSessions, NotebookServers, NotebookProfiles, IdleChecks, Machinery):
    """Reconciles SparkSessions, NotebookServers and NotebookProfiles and culls idle ones."""
