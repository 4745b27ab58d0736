"""Throughput and token figures of one target: pure functions of its stored records.

Latency percentiles live in `slam.stats.latency_summary`; this module adds what needs the
records' timestamps and token counts (the cost model's inputs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import numpy as np


@dataclass(frozen=True)
class TargetStats:
    target: str
    tokens_per_second: float | None  # median per-request output tokens / s
    throughput_rps: float | None  # requests completed per second of the target's wall time
    completion_tokens_mean: float | None
    prompt_tokens_mean: float | None


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def target_stats(target: str, rows: Sequence[Mapping]) -> TargetStats:
    ok = [r for r in rows if r["error_class"] is None]
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
        tokens_per_second=float(np.percentile(tps, 50)) if tps else None,
        throughput_rps=throughput,
        completion_tokens_mean=_mean([r["completion_tokens"] for r in ok
                                      if r["completion_tokens"] is not None]),
        prompt_tokens_mean=_mean([r["prompt_tokens"] for r in ok
                                  if r["prompt_tokens"] is not None]),
    )
