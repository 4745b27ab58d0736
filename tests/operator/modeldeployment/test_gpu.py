"""The GPU-memory estimator and instance table, with worked examples."""

from __future__ import annotations

import pytest

from slam_operator.modeldeployment import gpu


def test_mistral_7b_fp16_worked_example() -> None:
    # 7,241,732,096 parameters × 16 bits = 14.48e9 bytes = 13.49 GiB of weights;
    # × 1.2 = 16.19 GiB, + 1 GiB runtime = 17.19 GiB.
    est = gpu.estimate_gpu_memory(7_241_732_096, None)
    assert est.weights_gib == pytest.approx(13.49, abs=0.01)
    assert est.total_gib == pytest.approx(17.19, abs=0.01)
    assert est.total_gib > gpu.available_gpu_memory_gib("g4dn.xlarge", 1)  # T4: 16 GiB
    assert est.total_gib <= gpu.available_gpu_memory_gib("g5.xlarge", 1)  # A10G: 24 GiB


def test_mistral_7b_awq_fits_a_t4() -> None:
    # 7.24e9 × 4.125 bits / 8 = 3.73e9 bytes = 3.48 GiB; × 1.2 + 1 = 5.17 GiB.
    est = gpu.estimate_gpu_memory(7_241_732_096, "awq")
    assert est.weights_gib == pytest.approx(3.48, abs=0.01)
    assert est.total_gib == pytest.approx(5.17, abs=0.01)


def test_quantization_orders_memory() -> None:
    n = 3_000_000_000
    fp16, int8, nf4 = (gpu.estimate_gpu_memory(n, q).total_gib
                       for q in (None, "bitsandbytes", "bitsandbytes-nf4"))
    assert fp16 > int8 > nf4


def test_available_memory_uses_requested_gpus_and_caps_at_the_instance() -> None:
    assert gpu.available_gpu_memory_gib("g5.12xlarge", 2) == 48
    assert gpu.available_gpu_memory_gib("g5.12xlarge", 8) == 96
    assert gpu.available_gpu_memory_gib("m5.xlarge", 1) is None
    assert gpu.available_gpu_memory_gib("x9.huge", 1) is None


def test_hourly_cost_and_cheapest_fit() -> None:
    assert gpu.hourly_cost_usd("g5.xlarge", 3) == pytest.approx(3.018)
    assert gpu.hourly_cost_usd(None, 1) is None
    assert gpu.smallest_fitting(17.19, 1) == "g6.xlarge"  # L4 24 GiB is cheaper than A10G
    assert gpu.smallest_fitting(5.0, 1) == "g4dn.xlarge"
