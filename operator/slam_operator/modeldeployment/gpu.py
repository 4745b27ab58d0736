"""GPU-memory estimate and fit against EKS instance types (the table lives in slam.pricing).

`status.hourlyCostUSD` uses the bundled, dated price table; the evaluation's cost model prefers
the AWS Pricing API when credentials exist (slam.pricing).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from slam.pricing import (  # noqa: F401 - re-exported: the operator's view of the table
    INSTANCE_TYPES,
    PRICE_TABLE_DATE,
    PRICE_TABLE_REGION,
    InstanceType,
)

# Bits per weight as stored by each quantization, scales included (group-wise 4-bit methods
# keep one fp16 scale per 128 weights: +0.125 bit; NF4/FP4 add per-block absmax: ~+0.5 bit).
BITS_PER_WEIGHT: dict[str | None, float] = {
    None: 16.0,  # fp16 / bf16
    "fp8": 8.0,
    "eetq": 8.0,
    "bitsandbytes": 8.0,
    "bitsandbytes-nf4": 4.5,
    "bitsandbytes-fp4": 4.5,
    "awq": 4.125,
    "gptq": 4.125,
    "marlin": 4.125,
    "exl2": 4.5,
}
# Without the model's shape: activations, KV cache for a few sequences and allocator slack, as
# a share of the weights (the common "× 1.2" rule), plus the CUDA context and runtime that
# every GPU process pays. With its shape (config.json), the KV cache is counted exactly and
# only activations and slack stay a share of the weights.
OVERHEAD_RATIO = 0.2
ACTIVATION_RATIO = 0.1
RUNTIME_OVERHEAD_GIB = 1.0
KV_BYTES = 2  # fp16/bf16 keys and values, what the runtimes cache by default
GIB = 1024**3


@dataclass(frozen=True)
class ModelShape:
    """What the KV cache depends on, from the model's config.json."""

    layers: int
    kv_heads: int
    head_dim: int
    max_positions: int | None = None  # the context the model was trained for

    @property
    def kv_bytes_per_token(self) -> int:
        """Keys and values of one token in every layer: layers × KV heads × head dim × 2 × 2
        bytes."""
        return self.layers * self.kv_heads * self.head_dim * 2 * KV_BYTES


def shape_from_config(config: dict) -> ModelShape | None:
    """The shape in a Hugging Face config.json (the text model's, for a multimodal one), or
    None when it does not say. Grouped-query attention: num_key_value_heads; head_dim when
    given, else hidden_size / num_attention_heads."""
    c = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    try:
        layers = int(c.get("num_hidden_layers") or c.get("n_layer") or 0)
        heads = int(c.get("num_attention_heads") or c.get("n_head") or 0)
        kv_heads = int(c.get("num_key_value_heads") or heads)
        head_dim = int(c.get("head_dim") or (int(c.get("hidden_size") or 0) // heads
                                             if heads else 0))
        max_positions = c.get("max_position_embeddings")
        max_positions = int(max_positions) if max_positions else None
    except (TypeError, ValueError):
        return None
    if min(layers, kv_heads, head_dim) <= 0:
        return None
    return ModelShape(layers, kv_heads, head_dim, max_positions)


@dataclass(frozen=True)
class MemoryEstimate:
    weights_gib: float
    total_gib: float
    bits: float
    kv_cache_gib: float | None = None  # None: inside the overhead ratio (shape unknown)
    context_tokens: int | None = None
    sequences: int = 1


def estimate_gpu_memory(parameters: int, quantization: str | None,
                        kv_bytes_per_token: int | None = None, context_tokens: int | None = None,
                        sequences: int = 1) -> MemoryEstimate:
    """GPU memory a model needs per replica. With the KV cache's size per token and the
    context served: weights × (1 + ACTIVATION_RATIO) + the KV cache of `sequences` sequences
    of `context_tokens` + the runtime. Otherwise weights × (1 + OVERHEAD_RATIO) + the runtime.
    (vLLM refuses to start when not even one sequence of the full context fits its cache.)"""
    bits = BITS_PER_WEIGHT[quantization]
    weights = parameters * bits / 8 / GIB
    if kv_bytes_per_token and context_tokens:
        kv = kv_bytes_per_token * context_tokens * sequences / GIB
        total = weights * (1 + ACTIVATION_RATIO) + kv + RUNTIME_OVERHEAD_GIB
        return MemoryEstimate(round(weights, 2), round(total, 2), bits, round(kv, 2),
                              context_tokens, sequences)
    total = weights * (1 + OVERHEAD_RATIO) + RUNTIME_OVERHEAD_GIB
    return MemoryEstimate(round(weights, 2), round(total, 2), bits)


def available_gpu_memory_gib(instance_type: str | None, gpus: int) -> float | None:
    """GPU memory that `gpus` GPUs of this instance type offer, or None when unknown."""
    it = INSTANCE_TYPES.get(instance_type or "")
    if it is None or it.gpus == 0:
        return None
    return it.gpu_memory_gib * min(gpus, it.gpus)


def hourly_cost_usd(instance_type: str | None, replicas: int) -> float | None:
    """On-demand price of the instance type × replicas (one replica per node), or None."""
    it = INSTANCE_TYPES.get(instance_type or "")
    if it is None:
        return None
    return round(it.hourly_usd * replicas, 4)


def smallest_fitting(total_gib: float, gpus: int) -> str | None:
    """The cheapest instance type in the table whose `gpus` GPUs hold `total_gib`."""
    fitting = [
        t for t in INSTANCE_TYPES.values()
        if t.gpus >= max(gpus, 1) and t.gpu_memory_gib * max(gpus, 1) >= total_gib
    ]
    return min(fitting, key=lambda t: t.hourly_usd).name if fitting else None


# llama.cpp: bits per weight of a GGUF file, by the quantization type its name carries (as
# llama.cpp's quantize reports them for a 7B model: k-quant mixes keep some tensors wider).
GGUF_BITS: dict[str, float] = {
    "F32": 32.0, "F16": 16.0, "BF16": 16.0, "Q8_0": 8.5, "Q6_K": 6.56, "Q5_K_M": 5.69,
    "Q5_K_S": 5.54, "Q5_1": 6.0, "Q5_0": 5.5, "Q4_K_M": 4.85, "Q4_K_S": 4.58, "Q4_1": 5.0,
    "Q4_0": 4.5, "IQ4_NL": 4.5, "IQ4_XS": 4.25, "Q3_K_L": 4.27, "Q3_K_M": 3.91, "Q3_K_S": 3.5,
    "IQ3_M": 3.66, "Q2_K": 3.35,
}
# llama-server's context when --ctx-size is not given (b6500), and what the process needs
# besides weights and KV cache (compute buffers, the HTTP server).
LLAMACPP_DEFAULT_CONTEXT = 4096
LLAMACPP_OVERHEAD_GIB = 0.5


def gguf_bits(filename: str | None) -> float | None:
    """Bits per weight from a GGUF file name such as SmolLM2-135M-Instruct.Q4_1.gguf."""
    if not filename:
        return None
    name = filename.upper()
    for kind in sorted(GGUF_BITS, key=len, reverse=True):
        if re.search(rf"(^|[^A-Z0-9]){kind}([^A-Z0-9]|$)", name):
            return GGUF_BITS[kind]
    return None


@dataclass(frozen=True)
class CpuEstimate:
    weights_gib: float
    kv_cache_gib: float
    total_gib: float
    bits: float
    context_tokens: int


def estimate_llamacpp_memory(parameters: int, bits: float, kv_bytes_per_token: int | None,
                             context_tokens: int) -> CpuEstimate:
    """Memory a llama-server process needs: the GGUF weights, an f16 KV cache for the whole
    context (its slots share it) — or, without the model's shape, OVERHEAD_RATIO of the
    weights — and LLAMACPP_OVERHEAD_GIB."""
    weights = parameters * bits / 8 / GIB
    kv = (kv_bytes_per_token * context_tokens / GIB if kv_bytes_per_token
          else weights * OVERHEAD_RATIO)
    total = weights + kv + LLAMACPP_OVERHEAD_GIB
    return CpuEstimate(round(weights, 2), round(kv, 2), round(total, 2), bits, context_tokens)


# vLLM on CPU: the KV cache is its own allocation (VLLM_CPU_KVCACHE_SPACE, GiB), beside the
# weights, out of the container's memory. vLLM's own default when nothing is said.
CPU_DEFAULT_KV_CACHE_GIB = 4
CPU_MIN_KV_CACHE_GIB = 1
# What vLLM's CPU backend holds besides the weights and the KV cache: its API server, engine
# and worker processes (each with PyTorch), the graph compile's workers, and the libraries they
# map. Measured with vllm-cpu 0.32 and SmolLM2-135M (0.25 GiB of bf16 weights), the container's
# memory cgroup read while vLLM warmed up and answered: RSS 5.2 GiB with a 2 GiB cache (AMD
# EPYC, AVX2; read every 2 s) and 5.3 GiB (Xeon with AVX-512 and AMX; every 0.2 s), 4.3 GiB
# with a 1 GiB cache, plus 0.15 GiB of shared memory and 0.3-0.4 GiB of mapped libraries the
# processes run from: about 3.9 GiB besides weights and cache. 3.5 GiB was too little: at
# 6 GiB (a 2 GiB cache) the pod was OOM-killed at the end of its warm-up in two full runs on
# the test node; with 4 GiB and a 2 GiB cache vLLM refused to start ("Available memory on node
# 0 (0.37/4.0 GiB) on kv cache allocation is less than requested memory for kv (2.0 GiB)").
# 4.5 GiB is that measurement with room for what a sample misses. 1 GiB (RUNTIME_OVERHEAD_GIB)
# is what a GPU server keeps in host memory, not this.
VLLM_CPU_OVERHEAD_GIB = 4.5


def cpu_kv_cache_gib(memory: str | None, parameters: int | None, quantization: str | None
                     ) -> int | None:
    """The KV cache a vLLM CPU pod gets: its memory (a Kubernetes quantity) less the weights
    and VLLM_CPU_OVERHEAD_GIB, whole GiB; vLLM's default without a memory request; None when
    the weights are not known yet or leave less than CPU_MIN_KV_CACHE_GIB."""
    if memory is None:
        return CPU_DEFAULT_KV_CACHE_GIB
    if parameters is None:
        return None
    from kubernetes.utils import parse_quantity
    free = float(parse_quantity(memory)) / GIB - _weights_gib(parameters, quantization) \
        - VLLM_CPU_OVERHEAD_GIB
    return int(free) if free >= CPU_MIN_KV_CACHE_GIB else None


def vllm_cpu_least_memory_gib(parameters: int, quantization: str | None) -> float:
    """The smallest container memory vLLM's CPU backend runs in: the weights,
    VLLM_CPU_OVERHEAD_GIB and CPU_MIN_KV_CACHE_GIB, rounded up to a tenth of a GiB."""
    return math.ceil(10 * (_weights_gib(parameters, quantization) + VLLM_CPU_OVERHEAD_GIB
                           + CPU_MIN_KV_CACHE_GIB)) / 10


def _weights_gib(parameters: int, quantization: str | None) -> float:
    return parameters * BITS_PER_WEIGHT[quantization] / 8 / GIB
