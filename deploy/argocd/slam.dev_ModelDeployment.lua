-- Argo CD health for slam.dev/ModelDeployment, from the operator's conditions.
-- Healthy: Ready. Suspended: scaled to zero. Degraded: the model cannot be resolved, does not
-- fit the GPUs, or its server pod will not start (crash loop, image, node). Else Progressing.
local hs = {status = "Progressing", message = "waiting for the slam operator"}
if obj.status == nil then
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
local stuck = {
  CrashLoopBackOff = true, ImagePullBackOff = true, ErrImagePull = true,
  CreateContainerConfigError = true, CreateContainerError = true, InvalidImageName = true,
  RunContainerError = true, Unschedulable = true,
}
local resolved, fits, available, ready =
  conditions["ModelResolved"], conditions["Fits"], conditions["Available"], conditions["Ready"]
if resolved ~= nil and resolved.status == "False" then
  hs.status = "Degraded"
  hs.message = "ModelResolved: " .. (resolved.message or resolved.reason)
  return hs
end
if fits ~= nil and fits.status == "False" then
  hs.status = "Degraded"
  hs.message = "Fits: " .. (fits.message or fits.reason)
  return hs
end
if available ~= nil and available.status == "False" then
  if available.reason == "ScaledToZero" then
    hs.status = "Suspended"
    hs.message = "spec.replicas is 0"
    return hs
  end
  if stuck[available.reason] then
    hs.status = "Degraded"
    hs.message = "Available: " .. (available.message or available.reason)
    return hs
  end
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = "Ready" .. (obj.status.endpoint and (": " .. obj.status.endpoint) or "")
  return hs
end
if ready ~= nil then
  hs.message = ready.reason .. ": " .. (ready.message or "")
end
return hs
