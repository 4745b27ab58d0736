"""One latency probe: a small streamed request, timed like every other (slam.generate).

Probes measure, they do not insist: no retries, and a timeout no longer than the interval, so a
slow or failing endpoint shows up as what it is in the latency-over-time view.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from openai import AsyncOpenAI

from slam.api.common import ProbeSpec
from slam.generate import Endpoint, GenerationParams, generate
from slam.promptsets import PromptItem


@dataclass(frozen=True)
class ProbeResult:
    target: str
    at: datetime
    ttft_ms: float | None
    e2e_ms: float | None
    completion_tokens: int | None
    error_class: str | None
    error_message: str | None


def params(spec: ProbeSpec) -> GenerationParams:
    return GenerationParams(max_tokens=spec.max_tokens, temperature=0.0, max_retries=0,
                            timeout_seconds=float(min(spec.interval_seconds, 60)))


async def probe_once(client: AsyncOpenAI, endpoint: Endpoint, spec: ProbeSpec) -> ProbeResult:
    prompt = PromptItem("probe", ({"role": "user", "content": spec.prompt},))
    r = await generate(client, endpoint, prompt, 0, params(spec))
    return ProbeResult(endpoint.target, r.started_at, r.ttft_ms, r.e2e_ms, r.completion_tokens,
                       r.error_class, r.error_message)
