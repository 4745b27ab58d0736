"""Latency and throughput summaries: pure functions of the stored records.

Shapes: each function takes the response rows of one run (dicts with the `responses` columns)
and returns plain values, so the CLI, the operator's status and the dashboard agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np


@dataclass(frozen=True)
class TargetStats:
    target: str
    requests: int
    succeeded: int
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    e2e_p50_ms: float | None
    e2e_p95_ms: float | None
    tokens_per_second: float | None  # median per-request output tokens / s
    throughput_rps: float | None  # requests completed per second of the target's wall time
    completion_tokens_mean: float | None
    prompt_tokens_mean: float | None

    @property
    def success_rate(self) -> float:
        return self.succeeded / self.requests if self.requests else 0.0


def _pct(values: Sequence[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def target_stats(target: str, rows: Sequence[Mapping]) -> TargetStats:
    ok = [r for r in rows if r["error_class"] is None]
    ttft = [r["ttft_ms"] for r in ok if r["ttft_ms"] is not None]
    e2e = [r["e2e_ms"] for r in ok if r["e2e_ms"] is not None]
    tps = [r["completion_tokens"] / (r["e2e_ms"] / 1000.0) for r in ok
           if r["completion_tokens"] and r["e2e_ms"]]
    throughput = None
    if ok:
        start = min(r["started_at"] for r in ok)
        end = max(r["started_at"] + timedelta(milliseconds=r["e2e_ms"] or 0) for r in ok)
        wall = (end - start).total_seconds()
        throughput = len(ok) / wall if wall > 0 else None
    return TargetStats(
        target=target,
        requests=len(rows),
        succeeded=len(ok),
        ttft_p50_ms=_pct(ttft, 50),
        ttft_p95_ms=_pct(ttft, 95),
        e2e_p50_ms=_pct(e2e, 50),
        e2e_p95_ms=_pct(e2e, 95),
        tokens_per_second=_pct(tps, 50),
        throughput_rps=throughput,
        completion_tokens_mean=_mean([r["completion_tokens"] for r in ok
                                      if r["completion_tokens"] is not None]),
        prompt_tokens_mean=_mean([r["prompt_tokens"] for r in ok
                                  if r["prompt_tokens"] is not None]),
    )


def summarize(rows: Iterable[Mapping], targets: Sequence[str]) -> list[TargetStats]:
    """One TargetStats per target, in the given order (targets without rows included)."""
    by_target: dict[str, list[Mapping]] = {t: [] for t in targets}
    for r in rows:
        by_target.setdefault(r["target"], []).append(r)
    return [target_stats(t, rs) for t, rs in by_target.items()]
