"""Serving runtimes. Each module builds its container (image, args, env, probes); all serve the
OpenAI-compatible chat completions API under /v1 on `spec.port`."""

from __future__ import annotations

from slam_operator.runtimes import llamacpp, sglang, tgi, vllm
from slam_operator.runtimes.base import RuntimeInput

RUNTIMES = {"tgi": tgi, "vllm": vllm, "sglang": sglang, "llamacpp": llamacpp}


def container(inp: RuntimeInput) -> dict:
    """The serving container for `inp.spec.runtime`."""
    return RUNTIMES[inp.spec.runtime].container(inp)


__all__ = ["RUNTIMES", "RuntimeInput", "container"]
