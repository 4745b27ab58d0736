"""EKS instance types (GPUs, GPU memory, on-demand price) and the GPU-memory estimate.

The price table is a dated snapshot: AWS us-east-1, Linux on-demand, USD per hour, as listed in
2025 (after the June 2025 P4/P5 price cut). The cost model (a later issue) prefers the AWS Pricing
API when credentials exist; this table is the offline default and what `status.hourlyCostUSD` uses.
"""

from __future__ import annotations

from dataclasses import dataclass

PRICE_TABLE_DATE = "2025-07"
PRICE_TABLE_REGION = "us-east-1"


@dataclass(frozen=True)
class InstanceType:
    name: str
    gpu: str  # GPU model, "" for CPU-only types
    gpus: int
    gpu_memory_gib: float  # per GPU
    hourly_usd: float


def _t(name: str, gpu: str, gpus: int, mem: float, usd: float) -> InstanceType:
    return InstanceType(name, gpu, gpus, mem, usd)


INSTANCE_TYPES: dict[str, InstanceType] = {
    t.name: t
    for t in (
        _t("g4dn.xlarge", "NVIDIA T4", 1, 16, 0.526),
        _t("g4dn.2xlarge", "NVIDIA T4", 1, 16, 0.752),
        _t("g4dn.4xlarge", "NVIDIA T4", 1, 16, 1.204),
        _t("g4dn.8xlarge", "NVIDIA T4", 1, 16, 2.176),
        _t("g4dn.12xlarge", "NVIDIA T4", 4, 16, 3.912),
        _t("g5.xlarge", "NVIDIA A10G", 1, 24, 1.006),
        _t("g5.2xlarge", "NVIDIA A10G", 1, 24, 1.212),
        _t("g5.4xlarge", "NVIDIA A10G", 1, 24, 1.624),
        _t("g5.8xlarge", "NVIDIA A10G", 1, 24, 2.448),
        _t("g5.12xlarge", "NVIDIA A10G", 4, 24, 5.672),
        _t("g5.48xlarge", "NVIDIA A10G", 8, 24, 16.288),
        _t("g6.xlarge", "NVIDIA L4", 1, 24, 0.8048),
        _t("g6.2xlarge", "NVIDIA L4", 1, 24, 0.9776),
        _t("g6.4xlarge", "NVIDIA L4", 1, 24, 1.3232),
        _t("g6.12xlarge", "NVIDIA L4", 4, 24, 4.6016),
        _t("g6.48xlarge", "NVIDIA L4", 8, 24, 13.3504),
        _t("g6e.xlarge", "NVIDIA L40S", 1, 48, 1.861),
        _t("g6e.2xlarge", "NVIDIA L40S", 1, 48, 2.24208),
        _t("g6e.12xlarge", "NVIDIA L40S", 4, 48, 10.49264),
        _t("g6e.48xlarge", "NVIDIA L40S", 8, 48, 30.13118),
        _t("p3.2xlarge", "NVIDIA V100", 1, 16, 3.06),
        _t("p4d.24xlarge", "NVIDIA A100", 8, 40, 21.96),
        _t("p5.48xlarge", "NVIDIA H100", 8, 80, 55.04),
        # CPU types, for the llamacpp runtime.
        _t("m5.large", "", 0, 0, 0.096),
        _t("m5.xlarge", "", 0, 0, 0.192),
        _t("c6i.xlarge", "", 0, 0, 0.17),
        _t("c7i.xlarge", "", 0, 0, 0.1785),
    )
}

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
