"""GPU-memory estimate and fit against EKS instance types (the table lives in slam.pricing).

`status.hourlyCostUSD` uses the bundled, dated price table; the evaluation's cost model prefers
the AWS Pricing API when credentials exist (slam.pricing).
"""

from __future__ import annotations

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
# Activations, KV cache for a few sequences and allocator slack, as a share of the weights
# (the common "× 1.2" rule), plus the CUDA context and runtime that every GPU process pays.
OVERHEAD_RATIO = 0.2
RUNTIME_OVERHEAD_GIB = 1.0
GIB = 1024**3


@dataclass(frozen=True)
class MemoryEstimate:
    weights_gib: float
    total_gib: float
    bits: float


def estimate_gpu_memory(parameters: int, quantization: str | None) -> MemoryEstimate:
    """GPU memory a model needs per replica: weights × (1 + overhead ratio) + runtime overhead."""
    bits = BITS_PER_WEIGHT[quantization]
    weights = parameters * bits / 8 / GIB
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


# vLLM on CPU: the KV cache is its own allocation (VLLM_CPU_KVCACHE_SPACE, GiB), beside the
# weights, out of the container's memory. vLLM's own default when nothing is said.
CPU_DEFAULT_KV_CACHE_GIB = 4
CPU_MIN_KV_CACHE_GIB = 1


def cpu_kv_cache_gib(memory: str | None, parameters: int | None, quantization: str | None
                     ) -> int | None:
    """The KV cache a vLLM CPU pod gets: its memory (a Kubernetes quantity) less the weights
    and RUNTIME_OVERHEAD_GIB, whole GiB; vLLM's default without a memory request; None when
    the weights are not known yet or leave less than CPU_MIN_KV_CACHE_GIB."""
    if memory is None:
        return CPU_DEFAULT_KV_CACHE_GIB
    if parameters is None:
        return None
    from kubernetes.utils import parse_quantity
    free = float(parse_quantity(memory)) / GIB - parameters * BITS_PER_WEIGHT[quantization] / 8 \
        / GIB - RUNTIME_OVERHEAD_GIB
    return int(free) if free >= CPU_MIN_KV_CACHE_GIB else None
