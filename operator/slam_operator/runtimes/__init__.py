"""Serving runtimes. Each module builds its container (image, args, env, probes); all serve the
OpenAI-compatible chat completions API under /v1 on `spec.port`."""

from __future__ import annotations

from slam_operator.runtimes import llamacpp, sglang, tgi, vllm
from slam_operator.runtimes.base import RuntimeInput

RUNTIMES = {"tgi": tgi, "vllm": vllm, "sglang": sglang, "llamacpp": llamacpp}


def container(inp: RuntimeInput) -> dict:
    """The serving container for `inp.spec.runtime`."""
    return RUNTIMES[inp.spec.runtime].container(inp)


def image_key(spec) -> str:
    """The key of the operator's configured image for this spec (settings.runtime_images):
    the runtime's name, or vllm-cpu for vLLM on CPU nodes."""
    return vllm.CPU_IMAGE_KEY if spec.runtime == "vllm" and spec.on_cpu else spec.runtime


__all__ = ["RUNTIMES", "RuntimeInput", "container", "image_key"]
