"""vLLM's OpenAI-compatible server."""

from __future__ import annotations

from slam_operator.runtimes.base import RuntimeInput, base_container, hf_env

IMAGE = "vllm/vllm-openai:v0.11.0"


def container(inp: RuntimeInput) -> dict:
    s = inp.spec
    args = [
        "--model", s.model.id,
        "--revision", inp.revision,
        "--served-model-name", s.served_model_name,
        "--host", "0.0.0.0",
        "--port", str(s.port),
    ]
    if s.quantization:
        args += ["--quantization", s.quantization]
    if s.max_total_tokens:
        args += ["--max-model-len", str(s.max_total_tokens)]
    if s.gpu_count > 1:
        args += ["--tensor-parallel-size", str(s.gpu_count)]
    return base_container(inp, IMAGE, args, hf_env(inp))
