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


# Two real configs, as their config.json on the Hub gives them (the keys the estimate reads).
MISTRAL_7B_V02 = {  # mistralai/Mistral-7B-Instruct-v0.2
    "architectures": ["MistralForCausalLM"], "hidden_size": 4096, "num_attention_heads": 32,
    "num_hidden_layers": 32, "num_key_value_heads": 8, "max_position_embeddings": 32768,
    "torch_dtype": "bfloat16"}
GEMMA3_270M = {  # google/gemma-3-270m-it: the text model's head_dim is given, not derived
    "architectures": ["Gemma3ForCausalLM"], "hidden_size": 640, "head_dim": 256,
    "num_attention_heads": 4, "num_hidden_layers": 18, "num_key_value_heads": 1,
    "max_position_embeddings": 32768, "sliding_window": 512}


def test_kv_cache_worked_example_mistral_7b_at_its_full_context() -> None:
    shape = gpu.shape_from_config(MISTRAL_7B_V02)
    # head dim 4096 / 32 = 128; 32 layers × 8 KV heads × 128 × 2 (K and V) × 2 bytes
    # = 131,072 bytes = 128 KiB per token.
    assert shape == gpu.ModelShape(32, 8, 128, 32768)
    assert shape.kv_bytes_per_token == 131_072
    # One sequence of 32,768 tokens: 131,072 × 32,768 = 4 GiB of KV cache;
    # 13.49 GiB of weights × 1.1 = 14.84, + 4 + 1 runtime = 19.84 GiB: fits an A10G (24).
    one = gpu.estimate_gpu_memory(7_241_732_096, None, shape.kv_bytes_per_token, 32768, 1)
    assert one.kv_cache_gib == 4.0
    assert one.total_gib == pytest.approx(19.84, abs=0.01)
    assert one.total_gib <= gpu.available_gpu_memory_gib("g5.xlarge", 1)
    # Eight at once: 32 GiB of KV cache, 14.84 + 32 + 1 = 47.84 GiB: an L40S (48 GiB) at the
    # least, where the "× 1.2" rule (17.19 GiB) would have said an A10G.
    eight = gpu.estimate_gpu_memory(7_241_732_096, None, shape.kv_bytes_per_token, 32768, 8)
    assert eight.kv_cache_gib == 32.0
    assert eight.total_gib == pytest.approx(47.84, abs=0.01)
    assert gpu.smallest_fitting(eight.total_gib, 1) == "g6e.xlarge"
    assert gpu.estimate_gpu_memory(7_241_732_096, None).total_gib == pytest.approx(17.19, abs=0.01)


def test_kv_cache_worked_example_gemma3_270m() -> None:
    shape = gpu.shape_from_config({"text_config": GEMMA3_270M})  # multimodal layout too
    # 18 layers × 1 KV head × 256 × 2 × 2 bytes = 18,432 bytes = 18 KiB per token.
    assert shape == gpu.ModelShape(18, 1, 256, 32768)
    assert shape.kv_bytes_per_token == 18_432
    # Four sequences of 32,768 tokens: 18,432 × 131,072 = 2.25 GiB; 268,098,176 parameters ×
    # 2 bytes = 0.4994 GiB of weights, × 1.1 = 0.549, + 2.25 + 1 = 3.80 GiB.
    est = gpu.estimate_gpu_memory(268_098_176, None, shape.kv_bytes_per_token, 32768, 4)
    assert est.kv_cache_gib == 2.25
    assert est.total_gib == pytest.approx(3.80, abs=0.01)


def test_a_config_without_the_shape_gives_no_estimate_of_the_kv_cache() -> None:
    assert gpu.shape_from_config({"architectures": ["X"]}) is None
    assert gpu.shape_from_config({"num_hidden_layers": "many", "num_attention_heads": 8}) is None
    # No head_dim and no hidden_size: the head dimension is unknown.
    assert gpu.shape_from_config({"num_hidden_layers": 2, "num_attention_heads": 8}) is None
    # Multi-head attention (no num_key_value_heads): every head keeps keys and values.
    assert gpu.shape_from_config({"num_hidden_layers": 2, "num_attention_heads": 8,
                                  "hidden_size": 512}) == gpu.ModelShape(2, 8, 64)


def test_llamacpp_memory_worked_example() -> None:
    """SmolLM2-1.7B-Instruct at Q4_K_M with llama-server's default 4,096-token context:
    1,711,376,384 × 4.85 / 8 bytes = 0.97 GiB of weights; 24 layers × 32 KV heads × 64 × 2 × 2
    bytes = 192 KiB per token × 4,096 = 0.75 GiB of KV cache; + 0.5 GiB = 2.22 GiB."""
    from slam_operator.modeldeployment.gpu import (
        LLAMACPP_DEFAULT_CONTEXT,
        ModelShape,
        estimate_llamacpp_memory,
        gguf_bits,
    )

    assert gguf_bits("smollm2-1.7b-instruct-q4_k_m.gguf") == 4.85
    assert gguf_bits("SmolLM2-135M-Instruct.Q4_1.gguf") == 5.0
    assert gguf_bits("gemma-3-270m-it-Q8_0.gguf") == 8.5
    assert gguf_bits("model-IQ4_XS.gguf") == 4.25 and gguf_bits("model.gguf") is None
    shape = ModelShape(layers=24, kv_heads=32, head_dim=64, max_positions=8192)
    est = estimate_llamacpp_memory(1_711_376_384, 4.85, shape.kv_bytes_per_token,
                                   LLAMACPP_DEFAULT_CONTEXT)
    assert (est.weights_gib, est.kv_cache_gib, est.total_gib) == (0.97, 0.75, 2.22)
