"""The report shaped for the dashboard's tables and charts (pure): verdict rows, the
quality-cost points and frontier, monthly cost curves, latency probe series. The figures
themselves are computed in summary.py; nothing here decides anything."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from slam import decision, stats
from slam.summary import RANK_BASES, EvaluationReport, TargetReport


def verdicts(rep: EvaluationReport) -> list[dict[str, Any]]:
    """Per candidate, the decision at a glance: the verdict against the reference on the
    evidence that decides (`decides`), then its verdicts on every other kind of evidence with
    data; each with its estimate and bounds, what more would decide it, and the price."""
    rows = []
    for r in rep.targets:
        if r.is_reference or r.decision is None:
            continue
        for d in (r.decision, *r.other_decisions):
            rows.append({
                "candidate": r.target, "verdict": d.verdict,
                "evidence": decision.LABELS[d.evidence],
                "decides": "yes" if d is r.decision else "",
                "estimate": d.estimate, "lower bound": d.lower, "upper bound": d.upper,
                "margin": d.threshold, "prompts": d.prompts, "n": d.observations,
                "more prompts to decide": d.more_prompts,
                "$/1k requests": r.cost.per_1k_usd if r.cost else None,
                "recommended": "yes" if r.target == rep.recommendation
                and d is r.decision else "",
            })
    return rows


def quality(t: TargetReport) -> tuple[float | None, str | None]:
    """A target's headline quality figure and its name: the first of RANK_BASES it has."""
    for name, get in RANK_BASES:
        iv = get(t)
        if iv is not None:
            return iv.estimate, name
    return None, None


def break_even_note(t: TargetReport, ref: TargetReport | None) -> str:
    """The break-even against the reference in words: the traffic above which a self-hosted
    target costs less per month than the reference API, or why there is none."""
    if t.is_reference or ref is None:
        return "the reference"
    if t.break_even_requests_per_day is not None:
        return f"cheaper above {t.break_even_requests_per_day:,.0f} requests/day"
    kinds = (t.cost.kind if t.cost else None, ref.cost.kind if ref.cost else None)
    if kinds == ("api", "api"):
        return "none: both are priced per request, so the cheaper per request is cheaper at " \
               "any traffic"
    if kinds == ("self-hosted", "self-hosted"):
        return "none: both cost per hour, whatever the traffic (until a replica is added)"
    if kinds == ("api", "self-hosted"):
        return "none computed: the reference is self-hosted; read the curves below"
    return f"unknown: no price for {ref.target if kinds[1] is None else t.target}"


def quality_cost_points(rep: EvaluationReport) -> list[dict]:
    """One point per target with a known cost: $/1k requests, quality, break-even, and whether
    it is on the quality-cost frontier."""
    points = []
    ref = next((t for t in rep.targets if t.is_reference), None)
    for t in rep.targets:
        if t.cost is None or t.cost.per_1k_usd is None:
            continue
        q, basis = quality(t)
        points.append({"target": t.target, "$/1k requests": t.cost.per_1k_usd,
                       "quality": q, "quality basis": basis,
                       "break-even requests/day": t.break_even_requests_per_day,
                       "break-even": break_even_note(t, ref),
                       "kind": t.cost.kind, "price": t.cost.source})
    frontier = stats.pareto_frontier([p["quality"] for p in points],
                                     [p["$/1k requests"] for p in points])
    for p, on in zip(points, frontier, strict=True):
        p["on the frontier"] = on
    return points


def cost_curves(rep: EvaluationReport, requests_per_day: Sequence[int]) -> list[dict]:
    """Monthly cost of each priced target at each traffic level (rows: target, requests/day,
    $/month): API cost grows with traffic, a self-hosted instance's stays flat."""
    return [{"target": t.target, "requests/day": d,
             "$/month": t.cost.monthly_usd(d, rep.hours_per_month)}
            for t in rep.targets if t.cost is not None and t.cost.per_1k_usd is not None
            for d in requests_per_day]


def probe_series(samples: list[dict], names: dict[str, str], window: int = 10
                 ) -> tuple[list[dict], list[dict]]:
    """Latency probes over time. `samples`: the store's probe rows in time order; `names`: probed
    name -> target. Returns (successful samples with rolling e2e p50/p95 over the last `window`
    per target, one summary row per target: samples, errors, median, mean, std, cv)."""
    mine = [p for p in samples if p["target"] in names]
    series: list[dict] = []
    table: list[dict] = []
    for target in sorted({names[p["target"]] for p in mine}):
        rows = [p for p in mine if names[p["target"]] == target]
        ok = [p for p in rows if p["error_class"] is None and p["e2e_ms"] is not None]
        e2e = [p["e2e_ms"] for p in ok]
        p50 = stats.rolling_quantile(e2e, window, 0.5)
        p95 = stats.rolling_quantile(e2e, window, 0.95)
        series += [{"target": target, "at": p["at"], "e2e_ms": p["e2e_ms"],
                    "ttft_ms": p["ttft_ms"], "p50": float(a), "p95": float(b)}
                   for p, a, b in zip(ok, p50, p95, strict=True)]
        table.append({"target": target, "samples": len(rows), "errors": len(rows) - len(ok),
                      "median": float(np.median(e2e)) if e2e else None,
                      "mean": float(np.mean(e2e)) if e2e else None,
                      "std": float(np.std(e2e, ddof=1)) if len(e2e) > 1 else None,
                      "cv": stats.coefficient_of_variation(e2e)})
    return series, table
