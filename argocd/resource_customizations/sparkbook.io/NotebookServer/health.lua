-- Argo CD health check for sparkbook.io/NotebookServer (Lua 5.1, the dialect Argo CD runs).
-- It reads what the operator writes (sparkbook/status.py, notebook_status): status.phase,
-- status.observedGeneration and the conditions Ready, SparkReady, Reconciling and Stalled.
-- Source: argocd/resource_customizations/sparkbook.io/NotebookServer/health.lua in Sparkbook.
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
  hs.message = "Waiting for the Sparkbook operator to report the NotebookServer's status"
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
  hs.message = message_of(stalled, message_of(ready, "The operator cannot reconcile this NotebookServer"))
  return hs
end
if status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = message_of(ready, "The NotebookServer failed")
  return hs
end

-- Stopped on purpose: by spec.suspend, or culled after its idle timeout (phase Culled).
local suspend = obj.spec ~= nil and obj.spec.suspend == true
if suspend or status.phase == "Suspended" or status.phase == "Culled" then
  hs.status = "Suspended"
  hs.message = message_of(ready, "The NotebookServer is suspended")
  return hs
end

-- The Jupyter pod is failing, not starting: Ready is False with one of the reasons
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
  hs.message = message_of(ready, "The NotebookServer's pod is failing: " .. ready.reason)
  return hs
end

if ready ~= nil and ready.status == "True" then
  -- Jupyter works without Spark: a SparkSession that is not ready is named, not held against it.
  hs.status = "Healthy"
  hs.message = message_of(ready, "Jupyter is serving")
  local spark = condition(status.conditions, "SparkReady")
  if spark ~= nil and spark.status ~= "True" then
    hs.message = hs.message .. "; " .. message_of(spark, "its SparkSession is not ready")
  end
  return hs
end

hs.status = "Progressing"
hs.message = message_of(ready, "The NotebookServer is " .. tostring(status.phase or "not ready yet"))
return hs
