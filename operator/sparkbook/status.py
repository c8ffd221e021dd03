"""PURE: what the operator observed -> the resource's status (phase, conditions, counts, URLs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sparkbook import names

# Waiting reasons a user would otherwise dig out of `kubectl describe pod`.
WAITING_PROBLEMS = (
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
)


def pod_ready(pod: dict[str, Any] | None) -> bool:
    if not pod:
        return False
    for cond in pod.get("status", {}).get("conditions", []) or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def pod_failed(pod: dict[str, Any] | None) -> bool:
    return bool(pod) and pod.get("status", {}).get("phase") in ("Failed", "Succeeded")


def pod_problem(pod: dict[str, Any] | None) -> tuple[str, str] | None:
    """Why a pod is not coming up or has died, as (Reason, message); None when nothing is wrong."""
    if not pod:
        return None
    status = pod.get("status", {}) or {}
    name = pod.get("metadata", {}).get("name", "?")
    if status.get("reason") == "Evicted":
        return "Evicted", f"pod {name} was evicted: {status.get('message', '').strip()}".rstrip(": ")
    for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
        state = cs.get("state", {}) or {}
        waiting = state.get("waiting") or {}
        last = (cs.get("lastState") or {}).get("terminated") or {}
        if waiting.get("reason") == "CrashLoopBackOff" and last.get("reason") == "OOMKilled":
            return "OOMKilled", (
                f"container {cs.get('name')} of pod {name} ran out of memory (OOMKilled, exit code "
                f"{last.get('exitCode', 137)}) and is restarting with back-off: give it more memory"
            )
        if waiting.get("reason") in WAITING_PROBLEMS:
            detail = waiting.get("message", "").strip()
            text = f"container {cs.get('name')} of pod {name}: {waiting['reason']}"
            return waiting["reason"], f"{text}: {detail}" if detail else text
        terminated = state.get("terminated") or {}
        if terminated and (terminated.get("exitCode", 0) != 0 or terminated.get("reason") == "OOMKilled"):
            reason = terminated.get("reason") or "Error"
            code = terminated.get("exitCode")
            return reason, f"container {cs.get('name')} of pod {name} terminated: {reason} (exit code {code})"
    for cond in status.get("conditions", []) or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and cond.get("reason"):
            return cond["reason"], f"pod {name} cannot be scheduled: {cond.get('message', '').strip()}"
    if status.get("phase") == "Failed":
        return status.get("reason") or "Failed", f"pod {name} failed: {status.get('message', '')}".rstrip(": ")
    return None


def condition(
    type_: str, ok: bool, reason: str, message: str, *, generation: int | None, previous: list[dict[str, Any]], now: str
) -> dict[str, Any]:
    """A condition whose lastTransitionTime moves only when its status flips."""
    status = "True" if ok else "False"
    since = now
    for old in previous:
        if old.get("type") == type_ and old.get("status") == status and old.get("lastTransitionTime"):
            since = old["lastTransitionTime"]
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
        "observedGeneration": generation,
    }


def progress_conditions(
    rec: tuple[bool, str, str],
    stalled: tuple[str, str] | None,
    *,
    generation: int | None,
    previous: list[dict[str, Any]],
    now: str,
) -> list[dict[str, Any]]:
    """Reconciling and Stalled, as kstatus (Flux) reads them; Argo CD through the health checks in argocd/."""
    return [
        condition("Reconciling", rec[0], rec[1], rec[2], generation=generation, previous=previous, now=now),
        condition(
            "Stalled",
            bool(stalled),
            stalled[0] if stalled else "AsExpected",
            stalled[1] if stalled else "the spec can be honoured",
            generation=generation,
            previous=previous,
            now=now,
        ),
    ]


@dataclass
class SessionObservation:
    """Everything session_status() needs, gathered by the controller from its caches."""

    name: str
    namespace: str
    generation: int | None
    now: str
    suspend: bool = False
    idle_suspended_at: str | None = None
    image: str | None = None
    stalled: tuple[str, str] | None = None
    driver: dict[str, Any] | None = None
    executors: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    replacing: str | None = None
    restarts: int = 0
    last_failure: str | None = None
    last_failure_time: str | None = None
    waiting_backoff: str | None = None
    last_activity: str | None = None
    previous: dict[str, Any] = field(default_factory=dict)
    history_url: str | None = None
    """The History Server that reads this session's event logs (None: no event log, or none known)."""


MAX_APPLICATIONS = 10


def _executor_counts(executors: list[dict[str, Any]]) -> dict[str, int]:
    counts = {"running": 0, "pending": 0, "failed": 0}
    for pod in executors:
        phase = pod.get("status", {}).get("phase", "Pending")
        if pod.get("metadata", {}).get("deletionTimestamp") and phase != "Failed":
            continue
        if phase == "Running":
            counts["running"] += 1
        elif phase == "Pending":
            counts["pending"] += 1
        elif phase == "Failed":
            counts["failed"] += 1
    return counts


def _application_id(obs: SessionObservation) -> str | None:
    meta = (obs.driver or {}).get("metadata", {})
    driver_uid = meta.get("uid")
    if driver_uid and (meta.get("labels") or {}).get(names.EVENT_LOG_LABEL) == "true":
        return names.application_id(driver_uid)  # the driver was started with spark.app.id=spark-<UID>
    for pod in obs.executors:
        owners = {ref.get("uid") for ref in pod.get("metadata", {}).get("ownerReferences", []) or []}
        app = pod.get("metadata", {}).get("labels", {}).get("spark-app-selector")
        if app and (driver_uid is None or driver_uid in owners):
            return str(app)
    previous = obs.previous.get("applicationId")
    same_driver = (obs.previous.get("driver") or {}).get("startTime") == (obs.driver or {}).get("status", {}).get(
        "startTime"
    )
    return previous if previous and obs.driver and same_driver else None


def _applications(obs: SessionObservation, current: str | None, running: bool) -> list[dict[str, Any]]:
    """This session's applications, newest first: the running one, then those that ended (the
    time the operator first saw each one's driver gone), each with its History Server page."""
    out: list[dict[str, Any]] = []
    if current:
        entry: dict[str, Any] = {"id": current}
        start = (obs.driver or {}).get("status", {}).get("startTime")
        old = next((a for a in obs.previous.get("applications") or [] if a.get("id") == current), None)
        start = start or (old or {}).get("startTime")
        if start:
            entry["startTime"] = start
        if not running:
            entry["endTime"] = (old or {}).get("endTime") or obs.now
        out.append(entry)
    for app in obs.previous.get("applications") or []:
        if app.get("id") and app.get("id") != current:
            out.append({**app, "endTime": app.get("endTime") or obs.now})
    for app in out:
        if obs.history_url:
            app["historyURL"] = names.history_page(obs.history_url, app["id"])
        else:
            app.pop("historyURL", None)
    return out[:MAX_APPLICATIONS]


def session_status(obs: SessionObservation) -> dict[str, Any]:
    """The whole status of a SparkSession, from observations only."""
    driver = obs.driver
    problem = pod_problem(driver)
    ready = pod_ready(driver) and not pod_failed(driver) and driver is not None
    terminating = bool(driver and driver.get("metadata", {}).get("deletionTimestamp"))

    if obs.stalled:
        phase, ready_reason, ready_msg = "Failed", obs.stalled[0], obs.stalled[1]
    elif obs.suspend:
        phase, ready_reason = "Suspended", "Suspended"
        ready_msg = "spec.suspend is true: the driver and its executors are stopped"
    elif obs.idle_suspended_at:
        phase, ready_reason = "Idle", "IdleSuspended"
        ready_msg = (
            f"stopped at {obs.idle_suspended_at} after spec.idleTimeout without activity; wake it with "
            f"`kubectl annotate sparksession {obs.name} -n {obs.namespace} {names.IDLE_SUSPENDED_AT}-`"
        )
    elif obs.replacing:
        phase, ready_reason, ready_msg = "Starting", "DriverReplacing", obs.replacing
    elif driver is None:
        phase = "Pending"
        if obs.waiting_backoff:
            ready_reason, ready_msg = "DriverRestarting", obs.waiting_backoff
        else:
            ready_reason, ready_msg = "DriverNotCreated", "the driver pod is being created"
    elif problem:
        phase, (ready_reason, ready_msg) = "Starting", problem
        if obs.waiting_backoff:
            ready_msg = f"{ready_msg}; {obs.waiting_backoff}"
    elif ready and not terminating:
        phase, ready_reason = "Running", "DriverReady"
        ready_msg = f"Spark Connect is serving at {names.connect_endpoint(obs.name, obs.namespace)}"
    else:
        phase, ready_reason = "Starting", "DriverStarting"
        ready_msg = "the driver pod is starting"
    if obs.missing and phase == "Running":
        phase, ready_reason = "Starting", "ChildrenMissing"
        ready_msg = f"recreating {', '.join(obs.missing)}"
    is_ready = phase == "Running"

    if obs.stalled:
        rec = (False, "Stalled", "reconciling stopped: " + obs.stalled[1])
    elif obs.suspend or obs.idle_suspended_at:
        rec = (bool(driver), "Suspending", "stopping the driver") if driver else (False, phase, ready_msg)
    elif is_ready:
        rec = (False, "Reconciled", "everything matches the spec")
    else:
        rec = (True, ready_reason, ready_msg)

    previous_conditions = list(obs.previous.get("conditions") or [])
    gen = obs.generation
    conditions = [
        condition("Ready", is_ready, ready_reason, ready_msg, generation=gen, previous=previous_conditions, now=obs.now),
        *progress_conditions(rec, obs.stalled, generation=gen, previous=previous_conditions, now=obs.now),
    ]
    driver_status: dict[str, Any] = {"restarts": obs.restarts}
    stopped = obs.suspend or bool(obs.idle_suspended_at)
    if driver is not None and not stopped:
        driver_status["podName"] = driver["metadata"]["name"]
        if driver.get("status", {}).get("podIP"):
            driver_status["podIP"] = driver["status"]["podIP"]
        if driver.get("status", {}).get("startTime"):
            driver_status["startTime"] = driver["status"]["startTime"]
    if obs.last_failure:
        driver_status["lastFailure"] = obs.last_failure
    if obs.last_failure_time:
        driver_status["lastFailureTime"] = obs.last_failure_time

    status: dict[str, Any] = {
        "phase": phase,
        "observedGeneration": gen,
        "conditions": conditions,
        "driver": driver_status,
        "executors": _executor_counts(obs.executors) if not stopped else {"running": 0, "pending": 0, "failed": 0},
        "endpoints": {
            "connect": names.connect_endpoint(obs.name, obs.namespace),
            "ui": names.ui_endpoint(obs.name, obs.namespace),
        },
    }
    if obs.image:
        status["image"] = obs.image
    app_id = _application_id(obs)
    if app_id:
        status["applicationId"] = app_id
    # Only drivers that write event logs are kept as applications: the others leave nothing to browse.
    logged = app_id if app_id and ((obs.driver or {}).get("metadata", {}).get("labels") or {}).get(
        names.EVENT_LOG_LABEL) == "true" else None
    driver_alive = driver is not None and not stopped and not pod_failed(driver) and not (
        driver.get("status", {}).get("phase") == "Succeeded")
    applications = _applications(obs, logged, driver_alive)
    if applications:
        status["applications"] = applications
        if obs.history_url:
            status["endpoints"]["history"] = applications[0].get("historyURL")
    last = obs.last_activity or obs.previous.get("lastActivityTime")
    if last:
        status["lastActivityTime"] = last
    return status


@dataclass
class NotebookObservation:
    """Everything notebook_status() needs."""

    name: str
    namespace: str
    generation: int | None
    now: str
    suspend: bool = False
    culled_at: str | None = None
    stalled: tuple[str, str] | None = None
    pod: dict[str, Any] | None = None
    statefulset: dict[str, Any] | None = None
    missing: list[str] = field(default_factory=list)
    session_name: str | None = None
    session: dict[str, Any] | None = None
    last_activity: str | None = None
    previous: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] | None = None
    """status.profile: the NotebookProfile (name, generation, spec) the server is made with."""
    profile_waiting: int | None = None
    """The generation of a changed NotebookProfile that applies at the next start, if one waits."""
    base_url: str = "/"
    """Where the server serves: / alone, a JupyterHub's prefix ("/user/alice/") behind a hub."""


def _spark_condition(obs: NotebookObservation) -> tuple[bool, str, str]:
    name = obs.session_name
    session = obs.session
    if session is None:
        return False, "NotFound", f"SparkSession {name!r} does not exist in namespace {obs.namespace}"
    status = session.get("status") or {}
    phase = status.get("phase")
    annotations = session.get("metadata", {}).get("annotations") or {}
    if phase == "Running":
        return True, "SessionRunning", f"SparkSession {name} is serving at {status.get('endpoints', {}).get('connect')}"
    if phase == "Idle" or annotations.get(names.IDLE_SUSPENDED_AT):
        return (
            False,
            "SessionIdle",
            f"SparkSession {name} was suspended for inactivity; wake it with "
            f"`kubectl annotate sparksession {name} -n {obs.namespace} {names.IDLE_SUSPENDED_AT}-`",
        )
    if phase == "Suspended":
        return False, "SessionSuspended", f"SparkSession {name} is suspended (spec.suspend is true)"
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    detail = f": {ready['message']}" if ready and ready.get("message") else ""
    return False, "NotReady", f"SparkSession {name} is {phase or 'not reconciled yet'}{detail}"


def notebook_status(obs: NotebookObservation) -> dict[str, Any]:
    """The whole status of a NotebookServer, from observations only."""
    n = names.NotebookNames(obs.name)
    pod = obs.pod
    problem = pod_problem(pod)
    ready = pod_ready(pod) and not (pod or {}).get("metadata", {}).get("deletionTimestamp")
    if obs.stalled:
        phase, reason, message = "Failed", obs.stalled[0], obs.stalled[1]
    elif obs.suspend:
        phase, reason, message = "Suspended", "Suspended", "spec.suspend is true: the server is scaled to zero"
    elif obs.culled_at:
        phase, reason = "Culled", "Culled"
        message = (
            f"culled at {obs.culled_at} after its idle timeout; wake it with "
            f"`kubectl annotate notebookserver {obs.name} -n {obs.namespace} {names.CULLED_AT}-`"
        )
    elif obs.statefulset is None:
        phase, reason, message = "Pending", "Creating", "creating the notebook's objects"
    elif problem:
        phase, (reason, message) = "Starting", problem
    elif ready:
        phase, reason, message = "Running", "ServerReady", "Jupyter is serving"
    elif pod is None:
        phase, reason, message = "Starting", "PodPending", f"waiting for pod {n.pod}"
    else:
        phase, reason, message = "Starting", "ServerStarting", "Jupyter is starting"
    if obs.missing and phase == "Running":
        phase, reason, message = "Starting", "ChildrenMissing", f"recreating {', '.join(obs.missing)}"
    is_ready = phase == "Running"
    if obs.stalled:
        rec = (False, "Stalled", "reconciling stopped: " + obs.stalled[1])
    elif phase in ("Suspended", "Culled"):
        rec = (bool(pod), "ScalingDown", "stopping the server") if pod else (False, phase, message)
    elif is_ready:
        rec = (False, "Reconciled", "everything matches the spec")
    else:
        rec = (True, reason, message)
    prev = list(obs.previous.get("conditions") or [])
    gen = obs.generation
    conditions = [
        condition("Ready", is_ready, reason, message, generation=gen, previous=prev, now=obs.now),
    ]
    if obs.session_name:
        ok, sreason, smessage = _spark_condition(obs)
        conditions.append(condition("SparkReady", ok, sreason, smessage, generation=gen, previous=prev, now=obs.now))
    if obs.profile is not None:
        conditions.append(_pending_restart(obs, prev))
    conditions += progress_conditions(rec, obs.stalled, generation=gen, previous=prev, now=obs.now)
    status: dict[str, Any] = {
        "phase": phase,
        "observedGeneration": gen,
        "conditions": conditions,
        "url": f"http://{n.service}.{obs.namespace}.svc:{names.NOTEBOOK_PORT}{obs.base_url}lab",
        "tokenSecret": n.token_secret,
    }
    if obs.session_name:
        status["sparkSession"] = obs.session_name
        status["sparkUI"] = names.ui_endpoint(obs.session_name, obs.namespace)
        session_status_ = (obs.session or {}).get("status") or {}
        history = (session_status_.get("endpoints") or {}).get("history")
        if history:
            status["sparkHistory"] = history
            if session_status_.get("phase") != "Running":
                # The live UI went with the driver: its application is on the History Server.
                status["sparkUI"] = history
    last = obs.last_activity or obs.previous.get("lastActivityTime")
    if last:
        status["lastActivityTime"] = last
    if obs.culled_at:
        status["culledAt"] = obs.culled_at
    if obs.profile is not None:
        status["profile"] = obs.profile
    return status


def _pending_restart(obs: NotebookObservation, previous: list[dict[str, Any]]) -> dict[str, Any]:
    """As Kubeflow's pendingRestart: True when the profile changed under a running server."""
    assert obs.profile is not None
    name = obs.profile["name"]
    if obs.profile_waiting is None:
        return condition("PendingRestart", False, "UpToDate",
                         f"made with NotebookProfile {name} as it is now (generation {obs.profile.get('generation')})",
                         generation=obs.generation, previous=previous, now=obs.now)
    return condition(
        "PendingRestart", True, "ProfileChanged",
        f"NotebookProfile {name} changed (generation {obs.profile.get('generation')} -> {obs.profile_waiting}); "
        f"it applies when the server starts again: suspend and resume it "
        f"(`kubectl patch notebookserver {obs.name} -n {obs.namespace} --type merge -p "
        "'{\"spec\":{\"suspend\":true}}'`, then false), or change its spec",
        generation=obs.generation, previous=previous, now=obs.now)


def profile_status(
    *,
    name: str,
    generation: int | None,
    problems: list[str],
    notebook_servers: int,
    previous: dict[str, Any],
    now: str,
) -> dict[str, Any]:
    """The status of a NotebookProfile: whether NotebookServers can use it, and how many do."""
    prev = list(previous.get("conditions") or [])
    if problems:
        valid = condition("Valid", False, "InvalidProfile",
                          f"NotebookServers naming {name} stall until this is fixed: " + "; ".join(problems),
                          generation=generation, previous=prev, now=now)
    else:
        valid = condition("Valid", True, "Valid", "its defaults make a valid NotebookServer",
                          generation=generation, previous=prev, now=now)
    return {"observedGeneration": generation, "conditions": [valid], "notebookServers": notebook_servers}
