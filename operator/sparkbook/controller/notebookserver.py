"""NotebookServer: its StatefulSet, Service, PVC and token Secret, attached to a SparkSession."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from pydantic import ValidationError

from sparkbook import names
from sparkbook.api.notebookserver import NotebookServerSpec
from sparkbook.build.notebook import attached_session, notebook_children
from sparkbook.controller.base import (
    Machinery,
    NameConflict,
    Outcome,
    Transient,
    gather_all,
    owned_by,
    short_validation_error,
)
from sparkbook.profile import ProfileError, applied_profile, effective_spec
from sparkbook.status import (
    NotebookObservation,
    notebook_status,
)
from sparkbook.util import is_subset, now_rfc3339

log = logging.getLogger(__name__)


class NotebookServers(Machinery):
    """The NotebookServer pass."""

    async def _ensure_pvc(self, desired: dict[str, Any], owner_uid: str, notebook: str) -> bool:
        """The home PVC: ours by label (a retained claim has no owner), created once, then only its
        labels, ownership and size are kept in line (the rest of a claim's spec is immutable)."""
        meta = desired["metadata"]
        observed = self._get("PersistentVolumeClaim", meta["namespace"], meta["name"])
        if observed is None:
            if await self._create(desired) is not None:
                return True
            observed = await self.kube.get("v1", "PersistentVolumeClaim", meta["namespace"], meta["name"])
            if observed is None:
                raise Transient(f"PersistentVolumeClaim {meta['name']} was reported both existing and missing")
        labels = observed.get("metadata", {}).get("labels") or {}
        if labels.get(names.NOTEBOOK_LABEL) != notebook:
            raise NameConflict(f"PersistentVolumeClaim {meta['name']!r} already exists and is not this notebook's")
        want_owned = bool(meta.get("ownerReferences"))
        size_ok = is_subset(desired["spec"]["resources"], observed.get("spec", {}).get("resources", {}))
        if owned_by(observed, owner_uid) != want_owned or not is_subset(meta.get("labels"), labels) or not size_ok:
            await self._apply(
                {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "metadata": meta,
                    "spec": {"resources": desired["spec"]["resources"]},
                }
            )
        return False

    def _profiled_spec(self, body: dict[str, Any], obs: NotebookObservation, previous: dict[str, Any]) -> NotebookServerSpec:
        """The effective spec of a NotebookServer that names a profile; the profile's version it
        uses (and whether a newer one waits) go to the observation."""
        meta, raw_spec = body["metadata"], body.get("spec") or {}
        profile_name = raw_spec["profile"]
        n = names.NotebookNames(meta["name"])
        current = self._get("NotebookProfile", "", profile_name)
        culled = (meta.get("annotations") or {}).get(names.CULLED_AT)
        running = (not raw_spec.get("suspend") and not culled
                   and self._get("StatefulSet", meta["namespace"], n.statefulset) is not None)
        applied, waiting = applied_profile(
            previous=previous.get("profile"), current=current, name=profile_name, running=running,
            spec_changed=previous.get("observedGeneration") != meta.get("generation"),
        )
        if applied is None:
            raise ProfileError("ProfileNotFound", f"NotebookProfile {profile_name!r} does not exist "
                               "(`kubectl get notebookprofiles` lists those there are)")
        obs.profile = applied
        obs.profile_waiting = (current or {}).get("metadata", {}).get("generation") if waiting else None
        return effective_spec(profile_name, applied["spec"], raw_spec)

    async def reconcile_notebook(self, namespace: str, name: str) -> Outcome:
        body = await self._live(("NotebookServer", namespace, name))
        if body is None:
            return Outcome()
        meta = body["metadata"]
        uid = meta["uid"]
        previous = dict(self.recent.previous_status(("NotebookServer", namespace, name), body.get("status") or {}))
        annotations = meta.get("annotations") or {}
        obs = NotebookObservation(
            name=name, namespace=namespace, generation=meta.get("generation"), now=now_rfc3339(), previous=previous
        )
        obs.last_activity = self.activity.get(("NotebookServer", namespace, name))
        outcome = Outcome()
        events: list[tuple[str, str, str]] = []
        raw_spec = body.get("spec") or {}
        try:
            if raw_spec.get("profile"):
                spec = self._profiled_spec(body, obs, previous)
            else:
                spec = NotebookServerSpec.model_validate(raw_spec)
        except ValidationError as e:
            obs.stalled = ("InvalidSpec", short_validation_error(e))
            return await self._finish(body, notebook_status(obs), previous, events, outcome)
        except ProfileError as e:
            # A fixed profile or spec is seen by the watches; nothing to retry meanwhile.
            obs.stalled = (e.reason, e.message)
            return await self._finish(body, notebook_status(obs), previous, events, outcome)
        obs.suspend = spec.suspend
        obs.base_url = spec.jupyterhub.base_url if spec.jupyterhub else "/"
        obs.culled_at = None if spec.suspend else annotations.get(names.CULLED_AT)
        obs.session_name = attached_session(name=name, spec=spec)
        n = names.NotebookNames(name)
        token_uid = None
        if obs.session_name:
            obs.session = self._get("SparkSession", namespace, obs.session_name)
            secret = self._get("Secret", namespace, names.SessionNames(obs.session_name).token_secret)
            token_uid = (secret or {}).get("metadata", {}).get("uid")
        owner = {"apiVersion": body["apiVersion"], "kind": body["kind"],
                 "metadata": {"name": name, "namespace": namespace, "uid": uid}}
        has_secret = self._get("Secret", namespace, n.token_secret) is not None
        hub_secret = self._get("Secret", namespace, spec.jupyterhub.secret_name) if spec.jupyterhub else None
        children = notebook_children(
            owner=owner,
            spec=spec,
            image=spec.image or self.settings.notebook_image,
            token=None if has_secret else secrets.token_urlsafe(32),
            culled=bool(obs.culled_at),
            spark_token_uid=token_uid,
            hub_env_version=(hub_secret or {}).get("metadata", {}).get("resourceVersion"),
            operator_namespace=self.settings.operator_namespace,
            access_namespaces=self.settings.notebook_access_namespaces,
            history_url=self.settings.history_server_url,
        )
        # A notebook that brings its own session starts once that session's token exists, so
        # the server gets SPARK_REMOTE complete instead of restarting for it a moment later.
        owned_session_pending = bool(
            obs.session_name == n.owned_session and token_uid is None and not obs.culled_at and not spec.suspend
        )
        # Behind a JupyterHub, the server starts once the hub's Secret (its credentials) exists.
        hub_pending = bool(spec.jupyterhub and hub_secret is None and not obs.culled_at and not spec.suspend)
        if (owned_session_pending or hub_pending) and self._get("StatefulSet", namespace, n.statefulset) is None:
            children = [c for c in children if c["kind"] != "StatefulSet"]
            waiting = "the SparkSession's token" if owned_session_pending else (
                f"the JupyterHub Secret {spec.jupyterhub.secret_name if spec.jupyterhub else ''}")
            obs.missing.append(f"StatefulSet {n.statefulset} (waiting for {waiting})")
        try:
            async def ensure(child: dict[str, Any]) -> bool:
                if child["kind"] == "PersistentVolumeClaim":
                    return await self._ensure_pvc(child, uid, name)
                return await self._ensure(child, uid, create_only=child["kind"] == "Secret")

            # Everything the server mounts or reaches at once, then the StatefulSet that runs it.
            first = [c for c in children if c["kind"] != "StatefulSet"]
            then = [c for c in children if c["kind"] == "StatefulSet"]
            done = await gather_all(ensure(c) for c in first)
            done += [await ensure(c) for c in then]
            for child, missing in zip(first + then, done):
                if missing:
                    obs.missing.append(f"{child['kind']} {child['metadata']['name']}")
                    if child["kind"] == "StatefulSet":
                        obs.statefulset = child
            if obs.session and obs.session_name == n.owned_session and not obs.culled_at and not spec.suspend:
                # Waking a culled notebook wakes the session it owns, whatever stopped that session.
                if (obs.session["metadata"].get("annotations") or {}).get(names.IDLE_SUSPENDED_AT):
                    await self.kube.annotate(obs.session, {names.IDLE_SUSPENDED_AT: None})
        except NameConflict as e:
            obs.stalled = ("NameConflict", f"{e}; delete or rename it, then the operator continues")
            outcome.requeue = self.settings.stalled_retry_seconds
        obs.statefulset = self._get("StatefulSet", namespace, n.statefulset) or obs.statefulset
        pod = self._get("Pod", namespace, n.pod)
        obs.pod = pod if pod and (pod.get("metadata", {}).get("labels") or {}).get(names.NOTEBOOK_LABEL) == name else None
        return await self._finish(body, notebook_status(obs), previous, events, outcome)
