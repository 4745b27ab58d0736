-- Argo CD health for slam.dev/Evaluation, from its phase and conditions.
-- Healthy: the run Succeeded. Degraded: Failed, or Pending on a missing target, Secret,
-- ConfigMap or ServiceAccount, or a scoring pod that will not start. Else Progressing
-- (waiting for its ModelDeployments, or running).
local hs = {status = "Progressing", message = "waiting for the slam operator"}
if obj.status == nil or obj.status.phase == nil then
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "waiting for the slam operator to observe generation " .. generation
  return hs
end
local conditions = {}
for _, c in ipairs(obj.status.conditions or {}) do
  conditions[c.type] = c
end
local phase = obj.status.phase
local ready = conditions["Ready"]
local why = ready and (ready.reason .. ": " .. (ready.message or "")) or phase
if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = "run " .. (obj.status.runId or "?") .. " succeeded; leader: " ..
    (obj.status.leader or "none")
  return hs
end
if phase == "Failed" or phase == "Pending" then
  hs.status = "Degraded"
  hs.message = phase .. ": " .. why
  return hs
end
local job = conditions["JobComplete"]
local stuck = {
  CrashLoopBackOff = true, ImagePullBackOff = true, ErrImagePull = true,
  CreateContainerConfigError = true, CreateContainerError = true, InvalidImageName = true,
  RunContainerError = true, Unschedulable = true,
}
if job ~= nil and job.status == "False" and stuck[job.reason] then
  hs.status = "Degraded"
  hs.message = "JobComplete: " .. (job.message or job.reason)
  return hs
end
hs.message = phase .. ": " .. why
return hs
