"""SGLang's server (OpenAI-compatible)."""

from __future__ import annotations

from slam_operator.runtimes.base import RuntimeInput, base_container, hf_env

IMAGE = "lmsysorg/sglang:v0.5.23"


def container(inp: RuntimeInput) -> dict:
    s = inp.spec
    args = [
        "--model-path", s.model.id,
        "--revision", inp.revision,
        "--served-model-name", s.served_model_name,
        "--host", "0.0.0.0",
        "--port", str(s.port),
    ]
    if s.quantization:
        args += ["--quantization", s.quantization]
    if s.max_total_tokens:
        args += ["--context-length", str(s.max_total_tokens)]
    if s.max_concurrent_sequences:
        args += ["--max-running-requests", str(s.max_concurrent_sequences)]
    if s.gpu_count > 1:
        args += ["--tp-size", str(s.gpu_count)]
    c = base_container(inp, IMAGE, args, hf_env(inp))
    c["command"] = ["python3", "-m", "sglang.launch_server"]
    return c
