"""NotebookProfile: whether it can be used, and how many NotebookServers name it. What a profile
does to a NotebookServer is in sparkbook.profile (pure) and the NotebookServer pass."""

from __future__ import annotations

from sparkbook import names
from sparkbook.controller.base import Machinery, Outcome
from sparkbook.profile import profile_problems
from sparkbook.status import profile_status
from sparkbook.util import merge_patch, now_rfc3339


class NotebookProfiles(Machinery):
    """The NotebookProfile pass: its status, never any children."""

    async def reconcile_profile(self, name: str) -> Outcome:
        key = ("NotebookProfile", "", name)
        body = self.cache.get(*key)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return Outcome()
        previous = dict(self.recent.previous_status(key, body.get("status") or {}))
        problems = profile_problems(body.get("spec") or {})
        status = profile_status(
            name=name,
            generation=body["metadata"].get("generation"),
            problems=problems,
            notebook_servers=len(self.cache.notebooks_for_profile(name)),
            previous=previous,
            now=now_rfc3339(),
        )
        if status != previous:
            await self.kube.patch_status(names.API_VERSION, "NotebookProfile", None, name,
                                         merge_patch(previous, status))
            self.recent.wrote_status(key, status)
            was_valid = next((c.get("status") for c in previous.get("conditions") or [] if c.get("type") == "Valid"), None)
            if problems and was_valid != "False":
                await self.kube.post_event(body, type_="Warning", reason="InvalidProfile", message="; ".join(problems))
        return Outcome()
