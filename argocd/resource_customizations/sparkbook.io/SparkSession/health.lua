-- Argo CD health check for sparkbook.io/SparkSession (Lua 5.1, the dialect Argo CD runs).
-- It reads what the operator writes (sparkbook/status.py, session_status): status.phase,
-- status.observedGeneration and the conditions Ready, Reconciling and Stalled.
-- Source: argocd/resource_customizations/sparkbook.io/SparkSession/health.lua in Sparkbook.
local hs = {}

local function condition(conditions, wanted)
  for _, c in ipairs(conditions or {}) do
    if c.type == wanted then
      return c
    end
  end
  return nil
end

local function message_of(c, fallback)
  if c ~= nil and type(c.message) == "string" and c.message ~= "" then
    return c.message
  end
  return fallback
end

local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Sparkbook operator to report the SparkSession's status"
  return hs
end

-- A status written for an older spec says nothing about the current one (kstatus reads it so too).
local generation = obj.metadata ~= nil and obj.metadata.generation or nil
local ready = condition(status.conditions, "Ready")
local observed = status.observedGeneration
if observed == generation and ready ~= nil and ready.observedGeneration ~= nil then
  observed = ready.observedGeneration
end
if generation ~= nil and observed ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the Sparkbook operator to observe generation " .. tostring(generation)
  if observed ~= nil then
    hs.message = hs.message .. " (the status is of generation " .. tostring(observed) .. ")"
  end
  return hs
end

local stalled = condition(status.conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = message_of(stalled, message_of(ready, "The operator cannot reconcile this SparkSession"))
  return hs
end
if status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = message_of(ready, "The SparkSession failed")
  return hs
end

-- Stopped on purpose: by spec.suspend, or after spec.idleTimeout without activity (phase Idle).
local suspend = obj.spec ~= nil and obj.spec.suspend == true
if suspend or status.phase == "Suspended" or status.phase == "Idle" then
  hs.status = "Suspended"
  hs.message = message_of(ready, "The SparkSession is suspended")
  return hs
end

-- The driver pod is failing, not starting: Ready is False with one of the reasons
-- sparkbook.status.pod_problem gives a failing pod (a container waiting in WAITING_PROBLEMS, a crash
-- loop after OOMKilled, an eviction, a container that terminated with an error, a failed pod).
-- They mirror Argo CD's own Pod health check, which calls such a pod Degraded (a waiting reason
-- Err*, *Error or *BackOff, a failed pod, a container that terminated). A pod merely starting or
-- not scheduled yet (Unschedulable, ContainerCreating, ...) stays Progressing.
local pod_failures = {
  ImagePullBackOff = true, ErrImagePull = true, InvalidImageName = true, CrashLoopBackOff = true,
  CreateContainerConfigError = true, CreateContainerError = true, RunContainerError = true,
  OOMKilled = true, Evicted = true, Error = true, Failed = true,
}
if ready ~= nil and ready.status == "False" and pod_failures[ready.reason] then
  hs.status = "Degraded"
  hs.message = message_of(ready, "The SparkSession's driver pod is failing: " .. ready.reason)
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message_of(ready, "Spark Connect is serving")
  return hs
end

hs.status = "Progressing"
hs.message = message_of(ready, "The SparkSession is " .. tostring(status.phase or "not ready yet"))
return hs
