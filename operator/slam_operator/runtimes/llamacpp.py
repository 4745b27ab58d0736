"""llama.cpp's llama-server on the CPU, serving one GGUF file from a Hub repository."""

from __future__ import annotations

from slam_operator.runtimes.base import CACHE_DIR, RuntimeInput, base_container, hf_env

IMAGE = "ghcr.io/ggml-org/llama.cpp:server-b11312"


def model_url(inp: RuntimeInput) -> str:
    """The GGUF file at the pinned commit (llama-server downloads it into LLAMA_CACHE)."""
    s = inp.spec
    return f"{inp.hf_endpoint.rstrip('/')}/{s.model.id}/resolve/{inp.revision}/{s.model.file}"


def container(inp: RuntimeInput) -> dict:
    s = inp.spec
    args = [
        "--model-url", model_url(inp),
        "--alias", s.served_model_name,
        "--host", "0.0.0.0",
        "--port", str(s.port),
    ]
    if s.max_total_tokens:
        args += ["--ctx-size", str(s.max_total_tokens)]
    env = [*hf_env(inp), {"name": "LLAMA_CACHE", "value": CACHE_DIR}]
    return base_container(inp, IMAGE, args, env)
