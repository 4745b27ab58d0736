"""Hugging Face text-generation-inference (the default runtime); OpenAI API via its Messages API."""

from __future__ import annotations

from slam_operator.runtimes.base import RuntimeInput, base_container, hf_env

IMAGE = "ghcr.io/huggingface/text-generation-inference:3.3.6"


def container(inp: RuntimeInput) -> dict:
    s = inp.spec
    args = [
        "--model-id", s.model.id,
        "--revision", inp.revision,
        "--hostname", "0.0.0.0",
        "--port", str(s.port),
    ]
    if s.quantization:
        args += ["--quantize", s.quantization]
    if s.max_input_tokens:
        args += ["--max-input-tokens", str(s.max_input_tokens)]
    if s.max_total_tokens:
        args += ["--max-total-tokens", str(s.max_total_tokens)]
    if s.max_concurrent_sequences:
        args += ["--max-concurrent-requests", str(s.max_concurrent_sequences)]
    if s.gpu_count > 1:
        args += ["--num-shard", str(s.gpu_count)]
    return base_container(inp, IMAGE, args, hf_env(inp))
