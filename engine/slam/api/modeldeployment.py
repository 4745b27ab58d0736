"""ModelDeployment (slam.dev/v1alpha1): one served model."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from slam.api.common import (
    ApiModel,
    Condition,
    ProbeSpec,
    Rule,
    SecretKeyRef,
)

Runtime = Literal["tgi", "vllm", "sglang", "llamacpp"]
GPU_RUNTIMES: frozenset[str] = frozenset({"tgi", "vllm", "sglang"})

# Quantization methods by runtime. TGI's --quantize values; vLLM/SGLang --quantization values.
# llama.cpp reads the quantization from the GGUF file itself.
Quantization = Literal[
    "awq",
    "gptq",
    "bitsandbytes",
    "bitsandbytes-nf4",
    "bitsandbytes-fp4",
    "eetq",
    "fp8",
    "marlin",
    "exl2",
]
# What vLLM and SGLang take, at the pinned releases (vLLM 0.34: its get_quantization_config;
# SGLang 0.5.23: its --quantization choices); TGI takes them all. The runtimes themselves are
# asked in tests/operator/modeldeployment/test_runtime_contracts.py.
RUNTIME_QUANTIZATIONS: dict[str, tuple[str, ...]] = {
    "vllm": ("awq", "gptq", "fp8"),
    "sglang": ("awq", "gptq", "fp8", "bitsandbytes"),
}


def _quantization_rule(runtime: str, name: str) -> Rule:
    """The API takes for `runtime` only the quantizations RUNTIME_QUANTIZATIONS lists."""
    allowed = RUNTIME_QUANTIZATIONS[runtime]
    return Rule(
        cel=f"self.runtime != '{runtime}' || !has(self.quantization) || "
            f"self.quantization in {list(allowed)!r}",
        message=f"{name} takes quantization {', '.join(allowed[:-1])} or {allowed[-1]}: use one "
                "of them, or runtime tgi",
        check=lambda s: s.runtime != runtime or s.quantization is None
        or s.quantization in allowed,
        field_path=".quantization",
    )

HF_REPO_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$"
QUANTITY = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$"


class ModelSource(ApiModel):
    """Which weights to serve: a Hugging Face Hub repository at a revision."""

    id: str = Field(
        description="Hugging Face Hub repository id, e.g. mistralai/Mistral-7B-Instruct-v0.2.",
        pattern=HF_REPO_ID,
        max_length=96,
    )
    revision: str = Field(
        default="main",
        description=(
            "Branch, tag or commit. The operator resolves it to a commit SHA and pins that; a full "
            "40-character SHA deploys even when the Hub is unreachable."
        ),
        min_length=1,
        max_length=255,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$",
    )
    file: str | None = Field(
        default=None,
        description="GGUF file inside the repository (llamacpp runtime only, and required there).",
        max_length=255,
        pattern=r"^[^/].*\.gguf$",
    )
    served_name: str | None = Field(
        default=None,
        description=(
            "Model name the server answers to in the OpenAI API (`model` field). Defaults to the "
            "repository id."
        ),
        min_length=1,
        max_length=255,
    )


class ModelCacheSpec(ApiModel):
    """A PersistentVolumeClaim that keeps downloaded weights across pod restarts."""

    enabled: bool = Field(default=False, description="Create and mount the cache volume.")
    size: str = Field(
        default="50Gi", description="Requested storage, a Kubernetes quantity.", pattern=QUANTITY
    )
    storage_class_name: str | None = Field(
        default=None, description="StorageClass for the claim (cluster default when unset).",
        max_length=253,
    )


class ResourcesSpec(ApiModel):
    """CPU and memory for the serving container (GPUs are set by `gpus`)."""

    cpu: str | None = Field(default=None, description="CPU request, e.g. 4.", pattern=QUANTITY)
    memory: str | None = Field(
        default=None, description="Memory request and limit, e.g. 24Gi.", pattern=QUANTITY
    )


class ModelDeploymentSpec(ApiModel):
    """Desired state: which model, served how, on what hardware."""

    model: ModelSource = Field(description="The Hugging Face model to serve.")
    runtime: Runtime = Field(
        default="tgi",
        description=(
            "Serving runtime: tgi (text-generation-inference; in maintenance mode upstream since "
            "December 2025: prefer vllm), vllm, sglang (GPU) or llamacpp (CPU, GGUF). All serve "
            "the OpenAI-compatible chat completions API."
        ),
    )
    image: str | None = Field(
        default=None,
        description="Container image override (each runtime has a pinned default).",
        max_length=512,
    )
    quantization: Quantization | None = Field(
        default=None,
        description=(
            "Quantization the runtime applies when loading. Not for llamacpp (the GGUF file is "
            "already quantized); vllm takes awq, gptq or fp8, sglang also bitsandbytes, tgi "
            "every one listed."
        ),
    )
    gpus: int | None = Field(
        default=None,
        description=(
            "GPUs per replica (nvidia.com/gpu). Default 1 for tgi, vllm and sglang; 0 on "
            "llamacpp. 0 with vllm: vLLM's CPU backend (its CPU image; the KV cache is sized "
            "from spec.resources.memory)."
        ),
        ge=0,
        le=16,
    )
    instance_type: str | None = Field(
        default=None,
        description=(
            "EC2 instance type to schedule on (node label node.kubernetes.io/instance-type), "
            "e.g. g5.xlarge. Also sets the GPU memory available and the hourly cost."
        ),
        pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$",
        max_length=64,
    )
    replicas: int = Field(
        default=1,
        description=(
            "Number of serving pods; 0 scales the model to zero (the Service and the model cache "
            "stay). Also set by `kubectl scale`, a HorizontalPodAutoscaler or KEDA through the "
            "scale subresource. An Evaluation with `scaling` keeps it higher while it runs."
        ),
        ge=0,
        le=64,
    )
    port: int = Field(
        default=8080, description="Port the runtime listens on.", ge=1024, le=65535
    )
    max_input_tokens: int | None = Field(
        default=None, description="Longest prompt accepted, in tokens.", ge=1, le=1048576
    )
    max_total_tokens: int | None = Field(
        default=None,
        description="Longest prompt plus completion, in tokens (the context length served).",
        ge=2,
        le=1048576,
    )
    max_concurrent_sequences: int | None = Field(
        default=None,
        description=(
            "Most requests a replica serves at once (vLLM --max-num-seqs, SGLang "
            "--max-running-requests, TGI --max-concurrent-requests; not llamacpp). The GPU fit "
            "check counts the KV cache of this many sequences of maxTotalTokens (default 1, the "
            "least a server needs to start)."
        ),
        ge=1,
        le=4096,
    )
    hf_token_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description=(
            "Secret key holding a Hugging Face token, for gated or private models. Passed to the "
            "pod as an environment variable reference; never copied."
        ),
    )
    model_cache: ModelCacheSpec | None = Field(
        default=None, description="Persistent cache for downloaded weights."
    )
    resources: ResourcesSpec | None = Field(
        default=None, description="CPU and memory for the serving container."
    )
    extra_args: list[str] | None = Field(
        default=None,
        description="Extra command-line arguments appended to the runtime's own.",
        max_length=64,
        json_schema_extra={"items": {"type": "string", "maxLength": 1024}},
    )
    probe: ProbeSpec | None = Field(
        default=None, description="Continuous latency probe against this model's endpoint."
    )

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            cel="self.runtime != 'llamacpp' || has(self.model.file)",
            message="the llamacpp runtime needs spec.model.file: the GGUF file in the repository",
            check=lambda s: s.runtime != "llamacpp" or s.model.file is not None,
            field_path=".model",
        ),
        Rule(
            cel="self.runtime == 'llamacpp' || !has(self.model.file)",
            message="spec.model.file (a GGUF file) is only for the llamacpp runtime",
            check=lambda s: s.runtime == "llamacpp" or s.model.file is None,
            field_path=".model",
        ),
        Rule(
            cel="self.runtime != 'llamacpp' || !has(self.quantization)",
            message="llamacpp reads the quantization from the GGUF file: remove spec.quantization",
            check=lambda s: s.runtime != "llamacpp" or s.quantization is None,
            field_path=".quantization",
        ),
        *(_quantization_rule(runtime, name) for runtime, name in (("vllm", "vLLM"),
                                                                 ("sglang", "SGLang"))),
        Rule(
            cel="self.runtime != 'llamacpp' || !has(self.maxConcurrentSequences)",
            message="spec.maxConcurrentSequences is for tgi, vllm and sglang: the llamacpp "
                    "image serves one request at a time and queues the others",
            check=lambda s: s.runtime != "llamacpp" or s.max_concurrent_sequences is None,
            field_path=".maxConcurrentSequences",
        ),
        Rule(
            cel="self.runtime != 'llamacpp' || !has(self.gpus) || self.gpus == 0",
            message="the llamacpp runtime runs on CPU: set spec.gpus to 0 or leave it out",
            check=lambda s: s.runtime != "llamacpp" or not s.gpus,
            field_path=".gpus",
        ),
        Rule(
            cel="self.runtime in ['llamacpp', 'vllm'] || !has(self.gpus) || self.gpus >= 1",
            message="tgi and sglang need spec.gpus >= 1 (on CPU nodes use runtime vllm or "
                    "llamacpp with spec.gpus: 0)",
            check=lambda s: s.runtime in ("llamacpp", "vllm") or s.gpus is None or s.gpus >= 1,
            field_path=".gpus",
        ),
        Rule(
            cel=(
                "!has(self.maxInputTokens) || !has(self.maxTotalTokens) || "
                "self.maxInputTokens < self.maxTotalTokens"
            ),
            message="spec.maxInputTokens must be smaller than spec.maxTotalTokens",
            check=lambda s: (
                s.max_input_tokens is None
                or s.max_total_tokens is None
                or s.max_input_tokens < s.max_total_tokens
            ),
            field_path=".maxInputTokens",
        ),
    )

    @property
    def gpu_count(self) -> int:
        """GPUs per replica after defaulting."""
        if self.gpus is not None:
            return self.gpus
        return 1 if self.runtime in GPU_RUNTIMES else 0

    @property
    def on_cpu(self) -> bool:
        """Served on CPU nodes: llamacpp, or vllm with spec.gpus 0 (vLLM's CPU backend)."""
        return self.gpu_count == 0

    @property
    def served_model_name(self) -> str:
        return self.model.served_name or self.model.id


class ModelShape(ApiModel):
    """The model's attention shape (config.json)."""

    layers: int = Field(description="num_hidden_layers.", ge=1)
    kv_heads: int = Field(description="num_key_value_heads (grouped-query attention).", ge=1)
    head_dim: int = Field(description="head_dim, or hidden_size / num_attention_heads.", ge=1)
    kv_cache_bytes_per_token: int = Field(
        description="layers × kvHeads × headDim × 2 (keys and values) × 2 bytes (fp16).", ge=1)
    max_position_embeddings: int | None = Field(
        default=None, description="The context the model was trained for.", ge=1)


class ReplicaStatus(ApiModel):
    """Desired and ready serving pods."""

    desired: int = Field(
        default=0, description="Replicas asked for: spec.replicas, or more while Evaluations "
        "hold the model up for their runs (heldBy).", ge=0)
    ready: int = Field(default=0, description="Replicas passing their readiness probe.", ge=0)
    current: int = Field(
        default=0, description="Serving pods that exist, ready or not (the scale "
        "subresource's status.replicas).", ge=0)
    display: str | None = Field(
        default=None, description="ready/desired, for kubectl get.", max_length=32)
    held_by: list[Annotated[str, Field(max_length=253)]] | None = Field(
        default=None, description="Evaluations holding the model up for their runs "
        "(Evaluation spec.scaling); it goes back to spec.replicas when they end.",
        max_length=64)


class ServedStatus(ApiModel):
    """What the pods serving now run: the spec generation and configuration last rolled out
    (during a rollout, the previous one)."""

    generation: int = Field(description="metadata.generation whose spec the serving pods run.",
                            ge=0)
    revision: str | None = Field(default=None, description="The commit they serve.",
                                 max_length=64)
    image: str | None = Field(default=None, description="The server's image.", max_length=1024)
    args: list[Annotated[str, Field(max_length=1024)]] | None = Field(
        default=None, description="The server's arguments (values of key, token, secret and "
        "password flags masked).", max_length=128)


class Startup(ApiModel):
    """The start of the server pod that became Ready last (RFC 3339 times)."""

    pod: str = Field(description="The pod.", max_length=253)
    requested_at: str | None = Field(
        default=None, description="When a run's scale-up asked for it (Evaluation "
        "spec.scaling), when one did.", max_length=64)
    created: str = Field(description="Pod created.", max_length=64)
    scheduled: str = Field(description="Bound to a node.", max_length=64)
    started: str = Field(
        description="Its container running: the image pulled (or present) and the container "
                    "created.", max_length=64)
    ready: str = Field(
        description="Its readiness probe passed: the model fetched and loaded.", max_length=64)


class ModelDeploymentStatus(ApiModel):
    """Observed state, written by the operator."""

    observed_generation: int | None = Field(
        default=None, description="metadata.generation this status was computed from.", ge=0
    )
    conditions: list[Condition] | None = Field(
        default=None,
        description="ModelResolved, Fits, Available and their roll-up Ready; RolledOut "
        "(False while the latest spec is not yet running on every replica, with the reason "
        "`kubectl rollout status` and the pending pod give).",
        max_length=16,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )
    endpoint: str | None = Field(
        default=None,
        description="Base URL of the OpenAI-compatible API, e.g. http://name.ns.svc:8080/v1.",
        max_length=1024,
    )
    served_model_name: str | None = Field(
        default=None, description="Value to send as `model` in chat completion requests.",
        max_length=255,
    )
    resolved_revision: str | None = Field(
        default=None, description="Commit SHA the revision resolved to (pinned in the pods).",
        max_length=64,
    )
    parameters: int | None = Field(
        default=None, description="Parameter count, from the safetensors metadata.", ge=0
    )
    gated: bool | None = Field(default=None, description="Whether the Hub repository is gated.")
    license: str | None = Field(
        default=None, description="Licence declared by the model card.", max_length=256
    )
    estimated_gpu_memory_gib: float | None = Field(
        default=None,
        alias="estimatedGpuMemoryGiB",
        description="Estimated GPU memory per replica: weights at the quantized width + overhead.",
        ge=0,
    )
    estimated_kv_cache_gib: float | None = Field(
        default=None,
        alias="estimatedKvCacheGiB",
        description="The KV cache inside estimatedGpuMemoryGiB: spec.maxConcurrentSequences "
        "sequences of spec.maxTotalTokens (or the model's context) × modelShape's bytes per "
        "token.",
        ge=0,
    )
    model_shape: ModelShape | None = Field(
        default=None, description="What the KV cache depends on, from the model's config.json.")
    available_gpu_memory_gib: float | None = Field(
        default=None,
        alias="availableGpuMemoryGiB",
        description="GPU memory of the instance type × GPUs per replica.",
        ge=0,
    )
    kv_cache_gib: int | None = Field(
        default=None,
        alias="kvCacheGiB",
        description=(
            "vLLM on CPU: the KV cache it is given (VLLM_CPU_KVCACHE_SPACE), from "
            "spec.resources.memory less the weights and 1 GiB for the runtime."
        ),
        ge=0,
    )
    replicas: ReplicaStatus | None = Field(default=None, description="Desired and ready pods.")
    selector: str | None = Field(
        default=None, description="Label selector of the serving pods (for the scale "
        "subresource: the HorizontalPodAutoscaler and KEDA read it).", max_length=1024)
    last_startup: Startup | None = Field(
        default=None, description="How long the last server pod took to start, step by step "
        "(kept while scaled to zero).")
    served: ServedStatus | None = Field(
        default=None, description="The generation and configuration the serving pods run.")
    hourly_cost_usd: float | None = Field(
        default=None,
        alias="hourlyCostUSD",
        description="On-demand price of the instance type × replicas, USD per hour.",
        ge=0,
    )


class ModelDeployment(ApiModel):
    """A served model (the whole object, as read from a manifest)."""

    api_version: Literal["slam.dev/v1alpha1"] = Field(
        default="slam.dev/v1alpha1", description="slam.dev/v1alpha1"
    )
    kind: Literal["ModelDeployment"] = Field(default="ModelDeployment", description="Kind.")
    metadata: dict = Field(default_factory=dict, description="Standard object metadata.")
    spec: ModelDeploymentSpec = Field(description="Desired state.")
    status: ModelDeploymentStatus | None = Field(default=None, description="Observed state.")

    rules: ClassVar[tuple[Rule, ...]] = (
        Rule(
            # The name also names the Service, which must be a DNS-1035 label.
            cel=(
                "self.metadata.name.size() <= 63 && "
                "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')"
            ),
            message=(
                "metadata.name must be a DNS-1035 label (it names the Service): at most 63 "
                "characters, lower-case letters, digits and '-', starting with a letter"
            ),
            check=lambda md: bool(
                re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", str(md.metadata.get("name", "x")))
            )
            and len(str(md.metadata.get("name", ""))) <= 63,
        ),
    )
