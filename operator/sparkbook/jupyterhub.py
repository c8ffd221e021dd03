"""A JupyterHub spawner that makes NotebookServers: `pip install sparkbook[jupyterhub]`, then

    c.JupyterHub.spawner_class = "sparkbook.jupyterhub.NotebookServerSpawner"

Its options form lists the NotebookProfiles with the Spark inputs each allows (sparkbook.hubform,
the pure half); `start` applies the user's NotebookServer (the profile, the user's Spark fields,
`spec.jupyterhub`) and a Secret with the hub's environment for it, then waits until the operator
reports it Ready and returns the pod's URL; `stop` suspends it (the PVC keeps the files) or
deletes it; `poll` and `progress` read its status and Events. The operator does the rest, as for
a NotebookServer from `kubectl apply`: a hub is one more client of the API, not a second controller.

The hub's ServiceAccount needs only what docs/jupyterhub.md lists (the chart's
jupyterhub.rbac values make it).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from jupyterhub.spawner import Spawner
from traitlets import Bool, Dict, Enum, Float, Unicode, default

from sparkbook import hubform, names
from sparkbook.kube import ApiError, Kube, connection_from_environment
from sparkbook.profile import overlay

FIELD_MANAGER = "sparkbook-jupyterhub"
USERNAME = "hub.jupyter.org/username"  # an annotation (any user name) and a label (its DNS-safe form)
SERVERNAME = "hub.jupyter.org/servername"
CREATED_BY = {"app.kubernetes.io/created-by": "jupyterhub"}
SA_NAMESPACE_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

_clients: dict[int, Kube] = {}


async def _kube() -> Kube:
    """One API client per event loop, shared by every user's spawner."""
    loop = id(asyncio.get_running_loop())
    if loop not in _clients:
        kube = Kube(connection_from_environment(), user_agent="sparkbook-jupyterhub", field_manager=FIELD_MANAGER)
        await kube.__aenter__()
        _clients[loop] = kube
    return _clients[loop]


def _condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return {}


def _label_value(text: str) -> str:
    """A label value for a name the hub allows (anything): the DNS label of it."""
    return hubform.dns_label(text, 63)


class SpawnError(RuntimeError):
    """Why a server cannot start, as the hub shows it on the spawn page."""


class NotebookServerSpawner(Spawner):  # type: ignore[misc]
    """Spawns each user's server as a NotebookServer the Sparkbook operator reconciles."""

    namespace_template = Unicode(
        "{hubnamespace}",
        config=True,
        help="""The namespace of a user's NotebookServers: {username}, {servername} and
        {hubnamespace} are filled in ("{hubnamespace}" shares the hub's, "jupyter-{username}"
        gives each user one).""",
    )
    create_namespace = Bool(
        False, config=True, help="Create the namespace when it does not exist (needs namespaces create)."
    )
    name_template = Unicode(
        "jupyter-{username}--{servername}",
        config=True,
        help="""The NotebookServer's name ({username}, {servername}); the default server drops
        what trails an empty {servername}. Made a DNS label, with a hash when it had to change.""",
    )
    stop_action = Enum(
        ["suspend", "delete"],
        "suspend",
        config=True,
        help="""What stopping does: "suspend" scales the server to zero (its PVC, the user's files,
        stays, and the next start resumes it); "delete" deletes the NotebookServer (the PVC stays
        unless its storage.retainOnDelete is false).""",
    )
    hub_namespace = Unicode(
        config=True,
        help="""The hub's namespace, whose pods labelled hub.jupyter.org/network-access-singleuser
        may reach the servers. Default: the hub pod's own (POD_NAMESPACE, else the ServiceAccount's).""",
    )
    extra_spec = Dict(
        config=True,
        help="""NotebookServer spec fields every server of this hub gets, under what the user chose
        (e.g. {"storage": {"storageClassName": "fast"}}). With a profile, they must be fields it
        lets users set.""",
    )
    check_interval = Float(1.0, config=True, help="Seconds between looks at the server while it starts or stops.")

    @default("hub_namespace")
    def _hub_namespace_default(self) -> str:
        if os.environ.get("POD_NAMESPACE"):
            return os.environ["POD_NAMESPACE"]
        try:
            with open(SA_NAMESPACE_FILE) as f:
                return f.read().strip()
        except OSError:
            return "default"

    # The hub's own environment is not the server's: only what JupyterHub adds, and `environment`.
    @default("env_keep")
    def _env_keep_default(self) -> list[str]:
        return []

    @default("ip")
    def _ip_default(self) -> str:
        return "0.0.0.0"

    @default("port")
    def _port_default(self) -> int:
        return names.NOTEBOOK_PORT

    @default("start_timeout")
    def _start_timeout_default(self) -> int:
        return 600  # a new PVC, an image pull and a Spark driver: minutes on a real cluster

    @default("http_timeout")
    def _http_timeout_default(self) -> int:
        return 120

    # --- where the server lives -------------------------------------------------------------

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._where: dict[str, str] = {}

    @property
    def namespace(self) -> str:
        if self._where.get("namespace"):
            return self._where["namespace"]
        return hubform.namespace_name(self.namespace_template, self.user.name, self.name or "", self.hub_namespace)

    @property
    def server_name(self) -> str:
        if self._where.get("name"):
            return self._where["name"]
        return hubform.server_name(self.name_template, self.user.name, self.name or "")

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self._where = {k: state[k] for k in ("namespace", "name") if state.get(k)}

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state.update(self._where)
        return state

    def clear_state(self) -> None:
        super().clear_state()
        self._where = {}

    async def _get(self, kind: str, name: str, api_version: str = names.API_VERSION) -> dict[str, Any] | None:
        return await (await _kube()).get(api_version, kind, self.namespace, name)

    # --- the form ---------------------------------------------------------------------------

    async def _profiles(self) -> list[dict[str, Any]]:
        """The NotebookProfiles users may choose: all but those the operator found invalid."""
        found = await (await _kube()).list(names.API_VERSION, "notebookprofiles", None)
        return [p for p in found.get("items") or [] if _condition(p, "Valid").get("status") != "False"]

    async def get_options_form(self) -> str:  # type: ignore[override]
        if callable(self.options_form) or self.options_form:
            return str(await super().get_options_form())
        profiles = await self._profiles()
        return hubform.render_form(profiles) if profiles else ""

    async def run_options_from_form(self, form_data: dict[str, list[str]]) -> dict[str, Any]:  # type: ignore[override]
        """The form's answers as user_options, refused here (the form shows why) when the
        chosen profile does not allow them: nothing is created for a refused form."""
        options = hubform.options_from_form(form_data)
        hubform.validate(options, await self._profiles())
        return options

    # --- start, poll, stop ------------------------------------------------------------------

    def _desired(self, options: dict[str, Any]) -> dict[str, Any]:
        name, namespace = self.server_name, self.namespace
        labels = {**CREATED_BY, USERNAME: _label_value(self.user.name)}
        if self.name:
            labels[SERVERNAME] = _label_value(self.name)
        server = hubform.notebook_server(name=name, namespace=namespace, options=options, labels=labels)
        server["metadata"]["annotations"] = {USERNAME: self.user.name, SERVERNAME: self.name or ""}
        spec = server["spec"] = overlay(dict(self.extra_spec), server["spec"])
        spec["jupyterhub"] = {
            "secretName": names.NotebookNames(name).hub_secret,
            "baseUrl": self.server.base_url if self.server else f"/user/{self.user.name}/",
            "hubNamespace": self.hub_namespace,
        }
        return server

    def _hub_secret(self, owner: dict[str, Any]) -> dict[str, Any]:
        """The hub's environment for the server (its API token among it): in a Secret owned by the
        NotebookServer, never in the pod spec. Labelled so the operator sees it change."""
        name = owner["metadata"]["name"]
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": names.NotebookNames(name).hub_secret,
                "namespace": owner["metadata"]["namespace"],
                "labels": {**names.notebook_labels(name, "jupyterhub"), **CREATED_BY},
                "ownerReferences": [{
                    "apiVersion": names.API_VERSION, "kind": "NotebookServer", "name": name,
                    "uid": owner["metadata"]["uid"], "blockOwnerDeletion": True,
                }],
            },
            "type": "Opaque",
            "stringData": {k: str(v) for k, v in self.get_env().items()},
        }

    async def _user_options(self) -> dict[str, Any]:
        """user_options, or for a start without the form (the REST API, a named server started
        from the home page) the default profile, checked the same way."""
        options = dict(self.user_options or {})
        profiles = await self._profiles()
        if not options.get("profile"):
            chosen = hubform.default_profile(profiles)
            if chosen is None:
                return {}  # no profiles: a plain NotebookServer
            options = {"profile": chosen, "spark": options.get("spark") or {}}
        try:
            hubform.validate(options, profiles)
        except hubform.FormError as e:
            raise SpawnError(str(e)) from None
        return options

    async def _ensure_namespace(self, kube: Kube) -> None:
        if not self.create_namespace or await kube.get("v1", "Namespace", None, self.namespace) is not None:
            return
        await kube.create({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": self.namespace, "labels": dict(CREATED_BY)}})

    async def start(self) -> str:  # type: ignore[override]
        kube = await _kube()
        options = await self._user_options()
        await self._ensure_namespace(kube)
        desired = self._desired(options)
        name = desired["metadata"]["name"]
        existing = await self._get("NotebookServer", name)
        secret = None
        if existing is not None:
            owner = (existing["metadata"].get("annotations") or {}).get(USERNAME)
            if owner != self.user.name:
                raise SpawnError(f"NotebookServer {self.namespace}/{name} exists and is not {self.user.name}'s "
                                 "(it was not made by this hub for this user); an administrator can rename it")
            # This spawn's credentials before the resume, so the pod starts with them (written
            # after, the server would start with the old ones and be restarted for the new).
            secret = await kube.apply(self._hub_secret(existing))
        server = await kube.apply(desired)
        self._where = {"namespace": self.namespace, "name": name}
        if (server["metadata"].get("annotations") or {}).get(names.CULLED_AT):
            server = await kube.annotate(server, {names.CULLED_AT: None})  # wake a culled server
        if secret is None:  # a new server: the operator waits for its Secret before the StatefulSet
            secret = await kube.apply(self._hub_secret(server))
        self.log.info("NotebookServer %s/%s applied for %s", self.namespace, name, self._log_name)
        pod_ip = await self._wait_ready(name, secret["metadata"]["resourceVersion"])
        return f"http://{pod_ip}:{self.port}"

    async def _wait_ready(self, name: str, env_version: str) -> str:
        """The pod's IP once the operator says Ready, with the pod running the hub's newest
        environment (a server started for an earlier spawn is restarted by the operator first)."""
        n = names.NotebookNames(name)
        while True:
            server = await self._get("NotebookServer", name)
            if server is None:
                raise SpawnError(f"NotebookServer {self.namespace}/{name} was deleted while starting")
            status = server.get("status") or {}
            stalled = _condition(server, "Stalled")
            if stalled.get("status") == "True":
                raise SpawnError(f"NotebookServer {self.namespace}/{name} cannot start: {stalled.get('message')}")
            fresh = status.get("observedGeneration") == server["metadata"].get("generation")
            if fresh and status.get("phase") == "Running" and _condition(server, "Ready").get("status") == "True":
                pod = await self._get("Pod", n.pod, "v1")
                annotations = (pod or {}).get("metadata", {}).get("annotations") or {}
                ip = (pod or {}).get("status", {}).get("podIP")
                if ip and annotations.get(names.JUPYTERHUB_ENV_VERSION) == env_version:
                    return str(ip)
            await asyncio.sleep(self.check_interval)

    async def poll(self) -> int | None:  # type: ignore[override]
        """None while the server runs; 0 once suspended, culled (the operator's idle culling) or
        gone; 1 when it failed. An API error counts as running: a hub must not stop servers
        because the API server hiccupped."""
        try:
            server = await self._get("NotebookServer", self.server_name)
        except ApiError as e:
            self.log.warning("cannot read NotebookServer %s/%s: %s", self.namespace, self.server_name, e)
            return None
        if server is None:
            return 0
        if (server.get("spec") or {}).get("suspend") or (server["metadata"].get("annotations") or {}).get(names.CULLED_AT):
            return 0
        status = server.get("status") or {}
        if status.get("phase") == "Failed" or _condition(server, "Stalled").get("status") == "True":
            return 1
        return None

    async def stop(self, now: bool = False) -> None:  # type: ignore[override]
        kube = await _kube()
        name, n = self.server_name, names.NotebookNames(self.server_name)
        if self.stop_action == "delete":
            await kube.delete(names.API_VERSION, "NotebookServer", self.namespace, name)
        else:
            try:
                await kube.merge_patch(names.API_VERSION, "NotebookServer", self.namespace, name,
                                       {"spec": {"suspend": True}})
            except ApiError as e:
                if e.status != 404:
                    raise
        if now:
            return
        # Stopped when the pod is gone: the hub may start it again right after.
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline and await self._get("Pod", n.pod, "v1") is not None:
            await asyncio.sleep(self.check_interval)

    # --- progress ---------------------------------------------------------------------------

    async def progress(self) -> AsyncIterator[dict[str, Any]]:  # type: ignore[override]
        """The server's phase and conditions as they change, and the Events of the server and
        its pod, until the start ends (the hub stops iterating then)."""
        kube = await _kube()
        seen: set[tuple[str, int]] = set()
        said = ""
        progress = 0
        while True:
            name = self.server_name
            n = names.NotebookNames(name)
            server = await self._get("NotebookServer", name)
            if server is not None:
                status = server.get("status") or {}
                ready = _condition(server, "Ready")
                spark = _condition(server, "SparkReady")
                phase = status.get("phase", "Pending")
                text = f"NotebookServer {name}: {phase}" + (f" ({ready.get('message')})" if ready.get("message") else "")
                if spark:
                    text += f"; Spark: {spark.get('message') or spark.get('reason')}"
                step = {"Pending": 20, "Starting": 40, "Running": 90}.get(phase, progress)
                if spark.get("status") == "True":
                    step = max(step, 70)
                progress = max(progress, step)
                if text != said:
                    said = text
                    yield {"progress": progress, "message": text}
                for involved in (server["metadata"].get("uid"), None):
                    selector = (f"involvedObject.uid={involved}" if involved
                                else f"involvedObject.name={n.pod},involvedObject.kind=Pod")
                    try:
                        events = (await kube.list("v1", "events", self.namespace, field_selector=selector)).get("items") or []
                    except ApiError as e:
                        self.log.debug("cannot list events for %s: %s", name, e)
                        events = []
                    for ev in sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or ""):
                        key = (ev["metadata"].get("uid", ""), int(ev.get("count") or 1))
                        if key in seen:
                            continue
                        seen.add(key)
                        kind = ev.get("involvedObject", {}).get("kind", "")
                        yield {"progress": progress,
                               "message": f"[{ev.get('type', 'Normal')}] {kind} {ev.get('reason', '')}: {ev.get('message', '')}"}
            await asyncio.sleep(self.check_interval)
