"""Serving runtimes. Each module builds its container (image, args, env, probes); all serve the
OpenAI-compatible chat completions API under /v1 on `spec.port`."""

from __future__ import annotations

from collections.abc import Mapping

from slam_operator.runtimes import llamacpp, sglang, tgi, vllm
from slam_operator.runtimes.base import RuntimeInput

RUNTIMES = {"tgi": tgi, "vllm": vllm, "sglang": sglang, "llamacpp": llamacpp}


def container(inp: RuntimeInput) -> dict:
    """The serving container for `inp.spec.runtime`."""
    return RUNTIMES[inp.spec.runtime].container(inp)


def images_from(environ: Mapping[str, str]) -> dict[str, str]:
    """The operator's image per runtime, as configured in its environment
    (SLAM_TGI_IMAGE, SLAM_VLLM_IMAGE, SLAM_SGLANG_IMAGE, SLAM_LLAMACPP_IMAGE), as serving
    operators configure their engines' images; a ModelDeployment's spec.image still wins."""
    return {r: environ[f"SLAM_{r.upper()}_IMAGE"] for r in RUNTIMES
            if environ.get(f"SLAM_{r.upper()}_IMAGE")}


__all__ = ["RUNTIMES", "RuntimeInput", "container", "images_from"]
