"""ModelDeployment status as pure functions of what was observed."""

from __future__ import annotations

import re
from typing import Any

from slam.api.modeldeployment import GPU_RUNTIMES, ModelDeploymentSpec
from slam_operator import pods as podstatus
from slam_operator.conditions import Cond, find, merge, parse_timestamp, roll_up
from slam_operator.modeldeployment import gpu
from slam_operator.modeldeployment.hub import FULL_SHA, HubOutcome
from slam_operator.names import SKIP_FIT_ANNOTATION

_RESOLVED_REASONS = {
    "found": ("True", "Resolved"),
    "not_found": ("False", "ModelNotFound"),
    "revision_not_found": ("False", "RevisionNotFound"),
    "gated": ("False", "GatedModel"),
    "unreachable": ("Unknown", "HubUnreachable"),
}


def model_resolved(spec: ModelDeploymentSpec, outcome: HubOutcome) -> tuple[Cond, str | None]:
    """The ModelResolved condition and the revision to deploy (None: do not touch children)."""
    status, reason = _RESOLVED_REASONS[outcome.status]
    if outcome.status == "found":
        return Cond("ModelResolved", status, reason, outcome.message), outcome.sha
    if outcome.status == "unreachable":
        if FULL_SHA.match(spec.model.revision):
            msg = f"{outcome.message}; deploying the pinned commit {spec.model.revision}"
            return Cond("ModelResolved", status, reason, msg), spec.model.revision
        msg = (f"{outcome.message}; retrying with backoff (pin spec.model.revision to a full "
               "commit SHA to deploy without the Hub)")
        return Cond("ModelResolved", status, reason, msg), None
    return Cond("ModelResolved", status, reason, outcome.message), None


def token_secret_missing(spec: ModelDeploymentSpec, namespace: str, problem: str) -> Cond:
    ref = spec.hf_token_secret_ref
    assert ref is not None
    return Cond(
        "ModelResolved", "False", "TokenSecretNotFound",
        f"spec.hfTokenSecretRef: {problem}. Create it: kubectl -n {namespace} create secret "
        f"generic {ref.name} --from-literal={ref.key}=<token>",
    )


def kv_cache_gib(spec: ModelDeploymentSpec, parameters: int | None) -> int | None:
    """vLLM on CPU: the KV cache its pods get (VLLM_CPU_KVCACHE_SPACE); None otherwise."""
    if spec.runtime != "vllm" or not spec.on_cpu:
        return None
    memory = spec.resources.memory if spec.resources else None
    return gpu.cpu_kv_cache_gib(memory, parameters, spec.quantization)


def _fits_cpu_memory(spec: ModelDeploymentSpec, parameters: int | None) -> Cond:
    """vLLM on CPU: the weights, the runtime and at least a GiB of KV cache within the
    container's memory (spec.resources.memory)."""
    memory = spec.resources.memory if spec.resources else None
    kv = kv_cache_gib(spec, parameters)
    if memory is None:
        return Cond("Fits", "True", "CPUDefaultKVCache",
                    f"vllm on CPU with vLLM's default KV cache of {kv} GiB: set "
                    "spec.resources.memory to size it (and to reserve the memory)")
    if parameters is None:
        return Cond("Fits", "Unknown", "UnknownParameterCount",
                    "the parameter count is not known yet (no safetensors metadata): the KV "
                    "cache cannot be sized from spec.resources.memory")
    est = gpu.estimate_gpu_memory(parameters, spec.quantization)
    need = (f"{parameters / 1e9:.2f}B parameters at {est.bits:g} bits = "
            f"{est.weights_gib:.1f} GiB of weights + {gpu.VLLM_CPU_OVERHEAD_GIB:g} GiB runtime")
    if kv is None:
        least = gpu.vllm_cpu_least_memory_gib(parameters, spec.quantization)
        return Cond("Fits", "False", "InsufficientMemory",
                    f"{need} leave less than {gpu.CPU_MIN_KV_CACHE_GIB} GiB of KV cache in "
                    f"spec.resources.memory {memory}: give it at least {least:.1f} GiB")
    return Cond("Fits", "True", "FitsInMemory",
                f"{need}; spec.resources.memory {memory} leaves a {kv} GiB KV cache "
                "(VLLM_CPU_KVCACHE_SPACE)")


def _fits_llamacpp_memory(spec: ModelDeploymentSpec, parameters: int | None,
                          shape: gpu.ModelShape | None) -> Cond:
    """llama.cpp: the GGUF weights, the KV cache of its context and the process within the
    container's memory (spec.resources.memory); without a memory limit, nothing to check."""
    memory = spec.resources.memory if spec.resources else None
    if memory is None:
        return Cond("Fits", "True", "CPURuntime",
                    "llamacpp runs on the CPU: set spec.resources.memory to reserve memory and "
                    "to check that the model fits it")
    bits = gpu.gguf_bits(spec.model.file)
    if parameters is None or bits is None:
        what = ("the parameter count is not known yet" if parameters is None else
                f"the quantization of {spec.model.file} is not in its name (e.g. Q4_K_M)")
        return Cond("Fits", "Unknown", "UnknownModelSize",
                    f"{what}: the memory it needs cannot be estimated")
    from kubernetes.utils import parse_quantity

    context = spec.max_total_tokens or gpu.LLAMACPP_DEFAULT_CONTEXT
    est = gpu.estimate_llamacpp_memory(
        parameters, bits, shape.kv_bytes_per_token if shape else None, context)
    have = float(parse_quantity(memory)) / gpu.GIB
    kv = (f"{est.kv_cache_gib:.2f} GiB of KV cache for {context} tokens" if shape else
          f"+{gpu.OVERHEAD_RATIO:.0%} for the KV cache")
    need = (f"needs ~{est.total_gib:.2f} GiB ({parameters / 1e9:.2f}B parameters at {bits:g} "
            f"bits = {est.weights_gib:.2f} GiB of weights; {kv}; "
            f"{gpu.LLAMACPP_OVERHEAD_GIB:g} GiB for the server)")
    if est.total_gib <= have:
        return Cond("Fits", "True", "FitsInMemory", f"{need}; spec.resources.memory {memory}")
    return Cond("Fits", "False", "InsufficientMemory",
                f"{need}; spec.resources.memory {memory} is less: give it more, or use a "
                "smaller GGUF file or a shorter spec.maxTotalTokens")


def gpu_estimate(spec: ModelDeploymentSpec, parameters: int,
                 shape: gpu.ModelShape | None) -> gpu.MemoryEstimate:
    """The GPU memory estimate for this spec: with the KV cache of spec.maxConcurrentSequences
    (default 1) sequences of spec.maxTotalTokens (default: the model's own context) when the
    model's shape is known."""
    context = spec.max_total_tokens or (shape.max_positions if shape else None)
    return gpu.estimate_gpu_memory(
        parameters, spec.quantization, shape.kv_bytes_per_token if shape else None, context,
        spec.max_concurrent_sequences or 1)


def _need(est: gpu.MemoryEstimate, parameters: int, shape: gpu.ModelShape | None) -> str:
    weights = (f"{parameters / 1e9:.2f}B parameters at {est.bits:g} bits = "
               f"{est.weights_gib:.1f} GiB of weights")
    if est.kv_cache_gib is None or shape is None:
        return (f"needs ~{est.total_gib:.1f} GiB ({weights}, +{gpu.OVERHEAD_RATIO:.0%} and "
                f"{gpu.RUNTIME_OVERHEAD_GIB:g} GiB runtime overhead)")
    seqs = f"{est.sequences} sequence{'s' if est.sequences != 1 else ''}"
    return (f"needs ~{est.total_gib:.1f} GiB ({weights}; {est.kv_cache_gib:.1f} GiB of KV "
            f"cache for {seqs} of {est.context_tokens} tokens at "
            f"{shape.kv_bytes_per_token / 1024:g} KiB per token ({shape.layers} layers × "
            f"{shape.kv_heads} KV heads × {shape.head_dim} × 2 × {gpu.KV_BYTES} bytes); "
            f"+{gpu.ACTIVATION_RATIO:.0%} and {gpu.RUNTIME_OVERHEAD_GIB:g} GiB runtime "
            "overhead)")


def fits(spec: ModelDeploymentSpec, parameters: int | None, annotations: dict[str, str],
         shape: gpu.ModelShape | None = None) -> Cond:
    if spec.runtime == "vllm" and spec.on_cpu:
        return _fits_cpu_memory(spec, parameters)
    if spec.runtime == "llamacpp":
        return _fits_llamacpp_memory(spec, parameters, shape)
    if spec.runtime not in GPU_RUNTIMES:
        return Cond("Fits", "True", "CPURuntime", f"{spec.runtime} runs on the CPU")
    if parameters is None:
        return Cond("Fits", "Unknown", "UnknownParameterCount",
                    "the parameter count is not known yet (no safetensors metadata)")
    est = gpu_estimate(spec, parameters, shape)
    available = gpu.available_gpu_memory_gib(spec.instance_type, spec.gpu_count)
    need = _need(est, parameters, shape)
    if available is None:
        where = (f"instance type {spec.instance_type!r} is not in the GPU table"
                 if spec.instance_type else "spec.instanceType is not set")
        return Cond("Fits", "Unknown", "UnknownInstanceType", f"{need}; {where}")
    it = gpu.INSTANCE_TYPES[spec.instance_type or ""]
    have = f"{spec.instance_type} offers {available:g} GiB ({spec.gpu_count}× {it.gpu})"
    if est.total_gib <= available:
        return Cond("Fits", "True", "Fits", f"{need}; {have}")
    if annotations.get(SKIP_FIT_ANNOTATION) == "true":
        return Cond("Fits", "True", "FitCheckSkipped",
                    f"{need}; {have}; deploying anyway ({SKIP_FIT_ANNOTATION})")
    better = gpu.smallest_fitting(est.total_gib, spec.gpu_count)
    fix = f"use {better}" if better else "use more GPUs"
    if est.kv_cache_gib is not None:
        fix += ", a shorter spec.maxTotalTokens, fewer spec.maxConcurrentSequences"
    return Cond("Fits", "False", "InsufficientGPUMemory",
                f"{need}; {have}. {fix} or a smaller quantization, or annotate "
                f"{SKIP_FIT_ANNOTATION}=true to deploy anyway")


def pod_problem(pods: list[dict[str, Any]]) -> Cond | None:
    """Available=False saying why the server's pods do not run, or None."""
    found = podstatus.problem(
        pods, crash_hint="check spec.extraArgs, spec.image and the resources",
        unschedulable_hint="check spec.resources, spec.gpuCount and spec.instanceType (its "
        "pods select nodes of that type), or add nodes that have room")
    return Cond("Available", "False", *found) if found else None


def available(spec: ModelDeploymentSpec, deployment: dict[str, Any] | None,
              deploying: bool, pods: list[dict[str, Any]] = ()) -> tuple[Cond, int]:
    """Available from the Deployment's status (and, when it is not, why its pods do not run),
    and the number of ready replicas."""
    if deployment is None:
        if deploying:
            return Cond("Available", "False", "Creating", "the Deployment is being created"), 0
        return Cond("Available", "False", "NotDeployed",
                    "no Deployment until the model is resolved and fits"), 0
    st = deployment.get("status") or {}
    ready = int(st.get("readyReplicas") or 0)
    updated = int(st.get("updatedReplicas") or 0)
    avail = int(st.get("availableReplicas") or 0)
    current = (st.get("observedGeneration") or 0) >= deployment["metadata"].get("generation", 0)
    want = spec.replicas
    if want == 0:
        probe = "; its latency probe (spec.probe) is paused until then" if spec.probe else ""
        return Cond("Available", "False", "ScaledToZero",
                    "spec.replicas is 0: no pod serves (the Service and the model cache stay); "
                    f"kubectl scale modeldeployment --replicas=1 or an Evaluation with scaling "
                    f"brings it up{probe}"), ready
    if avail >= want:
        # Serving, also while a new spec rolls out (or is not yet observed): the older
        # replicas answer meanwhile, as the Deployment's own Available says. RolledOut tells
        # the rollout's story; Ready must not flap on every edit (a run would see its target
        # go away).
        rolling = "" if current and updated >= want else " (a rollout is under way: see RolledOut)"
        return Cond("Available", "True", "MinimumReplicasAvailable",
                    f"{avail}/{want} replicas available{rolling}"), ready
    problem = pod_problem(list(pods))
    if problem is not None:
        return problem, ready
    # How many run the current spec matters while older replicas still serve (a rollout);
    # before any serves it would only change the message, and so the status, once more.
    rollout = f", {updated}/{want} updated" if avail and updated < want else ""
    return Cond("Available", "False", "ReplicasNotReady",
                f"{avail}/{want} replicas available{rollout}: waiting for the server to load "
                "the model and pass its health check"), ready


def rolled_out(spec: ModelDeploymentSpec, deployment: dict[str, Any] | None, applied: bool,
               pods: list[dict[str, Any]] = ()) -> Cond:
    """RolledOut: whether every replica runs the latest spec, in `kubectl rollout status`'s
    words (kubectl's DeploymentStatusViewer), with the first pod that keeps it from finishing.
    Informational: while older replicas serve, the model is Ready on the older configuration
    (status.served says which)."""
    if deployment is None:
        return Cond("RolledOut", "False", "NotDeployed", "no Deployment yet")
    name = deployment["metadata"]["name"]
    st = deployment.get("status") or {}
    if applied or (st.get("observedGeneration") or 0) < deployment["metadata"].get(
            "generation", 0):
        return Cond("RolledOut", "False", "RolloutPending",
                    f'Waiting for deployment "{name}" spec update to be observed')
    want = spec.replicas
    replicas, updated = int(st.get("replicas") or 0), int(st.get("updatedReplicas") or 0)
    avail = int(st.get("availableReplicas") or 0)
    progressing = find(st.get("conditions"), "Progressing") or {}
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        reason, message = "ProgressDeadlineExceeded", \
            f'deployment "{name}" exceeded its progress deadline'
    elif updated < want:
        reason, message = "RolloutInProgress", (
            f'Waiting for deployment "{name}" rollout to finish: {updated} out of {want} new '
            "replicas have been updated")
    elif replicas > updated:
        reason, message = "RolloutInProgress", (
            f'Waiting for deployment "{name}" rollout to finish: {replicas - updated} old '
            "replicas are pending termination")
    elif avail < updated:
        reason, message = "RolloutInProgress", (
            f'Waiting for deployment "{name}" rollout to finish: {avail} of {updated} updated '
            "replicas are available")
    else:
        return Cond("RolledOut", "True", "RolledOut", f'deployment "{name}" successfully rolled '
                    "out")
    problem = pod_problem(list(pods))
    if problem is not None:  # the rollout is stuck on that pod: its reason is the condition's
        return Cond("RolledOut", "False", problem.reason, f"{message}; {problem.message}")
    return Cond("RolledOut", "False", reason, message)


SECRET_FLAG = re.compile(r"key|token|secret|password", re.IGNORECASE)


def masked_args(args: list[str]) -> list[str]:
    """A server's arguments with the value of any key, token, secret or password flag masked
    (`--api-key X`, `--api-key=X`): they go into the status and the results store."""
    out, hide = [], False
    for a in args:
        if hide and not a.startswith("-"):
            out.append("***")
        elif a.startswith("-") and "=" in a and SECRET_FLAG.search(a.split("=", 1)[0]):
            out.append(a.split("=", 1)[0] + "=***")
        else:
            out.append(a)
        hide = a.startswith("-") and "=" not in a and bool(SECRET_FLAG.search(a))
    return out


def served(generation: int, revision: str | None, deployment: dict[str, Any] | None,
           rollout: Cond, old: dict[str, Any] | None) -> dict[str, Any] | None:
    """status.served: this generation's configuration once it is rolled out; until then, what
    was rolled out before."""
    if rollout.status != "True" or deployment is None:
        return old
    container = (deployment["spec"]["template"]["spec"].get("containers") or [{}])[0]
    out: dict[str, Any] = {"generation": generation}
    if revision:
        out["revision"] = revision
    if container.get("image"):
        out["image"] = container["image"]
    args = [*(container.get("command") or [])[1:], *(container.get("args") or [])]
    if args:
        out["args"] = masked_args([str(a) for a in args])[:128]
    return out


def compose(
    *,
    spec: ModelDeploymentSpec,
    generation: int,
    old: dict[str, Any],
    parts: list[Cond],
    endpoint: str | None,
    revision: str | None,
    parameters: int | None,
    gated: bool | None,
    license: str | None,
    ready_replicas: int,
    shape: gpu.ModelShape | None = None,
    startup: dict[str, Any] | None = None,
    now: str,
    current_replicas: int = 0,
    held_by: tuple[str, ...] = (),
    selector: str | None = None,
    rollout: Cond | None = None,
    served_config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole status. Fields that are unknown keep their previous value."""
    serving = f"serving {spec.served_model_name} at {endpoint}"
    if rollout is not None and rollout.status != "True" and served_config:
        serving += (f" (generation {served_config['generation']}; generation {generation} is "
                    "not rolled out yet: see RolledOut)")
    ready = roll_up(parts, "Ready", serving)
    informational = [rollout] if rollout is not None else []
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": merge(old.get("conditions"), [*parts, *informational, ready],
                            generation, now),
        "replicas": {"desired": spec.replicas, "ready": ready_replicas,
                     "current": current_replicas,
                     "display": f"{ready_replicas}/{spec.replicas}",
                     # Always written (empty when none): a merge patch would keep a list
                     # it does not mention.
                     "heldBy": list(held_by)},
        "servedModelName": spec.served_model_name,
    }
    if endpoint:
        status["endpoint"] = endpoint
    if selector:
        status["selector"] = selector
    if startup:
        status["lastStartup"] = startup
    if served_config:
        status["served"] = served_config
    facts = {
        "resolvedRevision": revision,
        "parameters": parameters,
        "modelShape": shape_status(shape),
        "gated": gated,
        "license": license,
    }
    for k, v in facts.items():
        if v is not None:
            status[k] = v
        elif k in old:
            status[k] = old[k]
    if (kv := kv_cache_gib(spec, status.get("parameters"))) is not None:
        status["kvCacheGiB"] = kv
    if status.get("parameters") and spec.runtime in GPU_RUNTIMES and not spec.on_cpu:
        est = gpu_estimate(spec, status["parameters"], shape_of(status))
        status["estimatedGpuMemoryGiB"] = est.total_gib
        if est.kv_cache_gib is not None:
            status["estimatedKvCacheGiB"] = est.kv_cache_gib
    avail = gpu.available_gpu_memory_gib(spec.instance_type, spec.gpu_count)
    if avail is not None:
        status["availableGpuMemoryGiB"] = avail
    cost = gpu.hourly_cost_usd(spec.instance_type, spec.replicas)
    if cost is not None:
        status["hourlyCostUSD"] = cost
    return status


def shape_status(shape: gpu.ModelShape | None) -> dict[str, int] | None:
    if shape is None:
        return None
    out = {"layers": shape.layers, "kvHeads": shape.kv_heads, "headDim": shape.head_dim,
           "kvCacheBytesPerToken": shape.kv_bytes_per_token}
    if shape.max_positions:
        out["maxPositionEmbeddings"] = shape.max_positions
    return out


def shape_of(status: dict[str, Any]) -> gpu.ModelShape | None:
    """The model's shape as an earlier reconcile wrote it in the status."""
    s = status.get("modelShape")
    if not s:
        return None
    return gpu.ModelShape(int(s["layers"]), int(s["kvHeads"]), int(s["headDim"]),
                          s.get("maxPositionEmbeddings"))


STARTUP_STEPS = ("created", "scheduled", "started", "ready")


def last_startup(pods: list[dict[str, Any]], requests: list[str],
                 old: dict[str, Any] | None) -> dict[str, Any] | None:
    """The start of the server pod that became Ready last (pods.startup: created, scheduled,
    started, ready), and `requestedAt`: the latest scale-up request before the pod was created
    (`requests`: when the runs holding the model took their holds), when one asked for it.
    The earlier record while no pod has been through all its steps (scaled to zero keeps the
    last start-up)."""
    done = [p for p in pods if all(k in (p.get("startup") or {}) for k in STARTUP_STEPS)]
    if not done:
        return old
    pod = max(done, key=lambda p: parse_timestamp(p["startup"]["ready"]))
    steps = {k: pod["startup"][k] for k in STARTUP_STEPS}
    created = parse_timestamp(steps["created"])
    asked = [r for r in requests if parse_timestamp(r) <= created]
    out: dict[str, Any] = {"pod": pod["metadata"]["name"], **steps}
    if asked:
        out["requestedAt"] = max(asked, key=parse_timestamp)
    return out
