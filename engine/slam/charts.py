"""The report shaped for the dashboard's tables and charts (pure): verdict rows, the
quality-cost points and frontier, monthly cost curves, latency probe series. The figures
themselves are computed in summary.py; nothing here decides anything."""

from __future__ import annotations

import math
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


def monthly_at(rep: EvaluationReport, requests_per_day: float) -> list[dict]:
    """Per priced target, what it costs a month at `requests_per_day`: the instances paid for
    and how busy they are (self-hosted), the monthly cost, and what 1,000 requests then really
    cost (above the kept-busy price when the instances idle); `floor`: the monthly cost is one
    instance's whatever the traffic below what that instance sustains."""
    days = rep.hours_per_month / 24.0
    rows = []
    for t in rep.targets:
        c = t.cost
        if c is None or c.per_1k_usd is None:
            continue
        monthly = c.monthly_usd(requests_per_day, rep.hours_per_month)
        hosted = c.kind == "self-hosted"
        rows.append({
            "target": t.target, "kind": c.kind,
            "instances": c.instances(requests_per_day) if hosted else None,
            "utilisation": c.utilisation(requests_per_day),
            "$/month": monthly,
            "$/1k at this traffic": (None if monthly is None or not requests_per_day
                                     else 1000.0 * monthly / (requests_per_day * days)),
            "$/1k kept busy": c.per_1k_usd,
            "floor": hosted and c.instances(requests_per_day) == c.replicas,
            "sustains requests/day": (c.capacity_rps * 86400.0 / c.replicas
                                      if hosted and c.capacity_rps else None),
        })
    return rows


def floor_sentence(row: dict, requests_per_day: float) -> str | None:
    """A self-hosted target's monthly cost in words, for a stakeholder: why it does not follow
    its $/1k price at this traffic."""
    if row["kind"] != "self-hosted" or row["$/month"] is None:
        return None
    n, busy = row["instances"], row["utilisation"] or 0.0
    paid = f"{n} instance{'s' if n != 1 else ''}"
    if row["floor"]:
        return (f"{row['target']}: at {requests_per_day:,.0f} requests/day its {paid} "
                f"{'is' if n == 1 else 'are'} {busy:.0%} busy, and ${row['$/month']:,.2f} a "
                f"month is the floor: the same up to "
                f"{row['sustains requests/day'] * n:,.0f} requests/day. Its "
                f"${row['$/1k kept busy']:,.4f} per 1,000 requests holds only when kept busy; "
                f"at this traffic 1,000 requests cost ${row['$/1k at this traffic']:,.4f}.")
    return (f"{row['target']}: {requests_per_day:,.0f} requests/day need {paid} "
            f"({busy:.0%} busy): ${row['$/month']:,.2f} a month, "
            f"${row['$/1k at this traffic']:,.4f} per 1,000 requests.")


def money_ticks(values: Sequence[float | None], marks: Sequence[float | None]
                ) -> tuple[list[float], list[str]]:
    """Ticks for a logarithmic $/month axis over `values` that a stakeholder reads without
    explanation: every power of ten in their range and the `marks` (where the lines are at the
    evaluation's traffic), each labelled in dollars. Plotly's own log ticks label the steps
    between decades as bare digits, and a range within one decade gets no labelled tick."""
    positive = [float(v) for v in values if v is not None and v > 0]
    if not positive:
        return [], []
    lo, hi = min(positive), max(positive)
    decades = [10.0 ** k for k in range(math.floor(math.log10(lo)),
                                        math.ceil(math.log10(hi)) + 1) if lo <= 10.0 ** k <= hi]
    marked = [float(m) for m in marks if m is not None and m > 0]
    kept: list[float] = []
    for v in sorted(set(decades) | set(marked)):
        if kept and v / kept[-1] <= 1.12:  # too close to read apart: the mark wins
            if v in marked:
                kept[-1] = v
            continue
        kept.append(v)
    return kept, [f"${v:,.0f}" if v >= 10 else f"${v:,.2f}" for v in kept]


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


def slo_costs(rep: EvaluationReport) -> list[dict]:
    """With spec.cost.slo: per target, the cost on the team's traffic at the SLO — a
    self-hosted target's goodput and both monthly costs (always-on, scale-to-zero with its cold
    starts as SLO misses) and break-even; an API target's monthly cost on the same traffic."""
    if rep.slo is None:
        return []
    per_day = rep.traffic_profile.per_day if rep.traffic_profile else rep.requests_per_day
    rows = []
    for t in rep.targets:
        c = t.cost
        if t.kind != "self-hosted":
            monthly = c.monthly_usd(per_day, rep.hours_per_month) if c is not None else None
            rows.append({"target": t.target, "kind": "api", "goodput/s per replica": None,
                         "at concurrency": None, "always-on $/month": monthly,
                         "scale-to-zero $/month": monthly, "cold starts/day": None,
                         "SLO misses/day": None, "break-even requests/day": None,
                         "note": "paid per request"})
            continue
        cap, z = t.capacity, t.sizing
        best = cap.best if cap else None
        note = ("capacity not measured yet" if cap is None else
                "does not meet the SLO at any concurrency searched" if best is None else
                c.source if c is not None and c.per_1k_usd is None else
                f"{z.peak_replicas} replica{'s' * (z.peak_replicas != 1)} at the busiest hour"
                if z else "")
        rows.append({
            "target": t.target, "kind": "self-hosted",
            "goodput/s per replica": cap.goodput_per_replica if best else None,
            "at concurrency": best.concurrency if best else None,
            "always-on $/month": z.always_on_monthly_usd if z else None,
            "scale-to-zero $/month": z.scale_to_zero_monthly_usd if z else None,
            "cold starts/day": z.cold_starts_per_day if z else None,
            "SLO misses/day": z.missed_per_day if z and z.cold_start_s is not None else None,
            "break-even requests/day": t.break_even_requests_per_day,
            "note": note})
    return rows


def replicas_by_hour(rep: EvaluationReport) -> list[dict]:
    """Rows (target, hour, replicas, requests) of each sized self-hosted target's day."""
    return [{"target": t.target, "hour": h.hour, "replicas": h.replicas,
             "requests": h.requests}
            for t in rep.targets if t.sizing is not None for h in t.sizing.hours]


def spend_rows(rep: EvaluationReport) -> list[dict]:
    """What the run itself cost per target, with the arithmetic."""
    rows = [{"target": t.target, "spent": t.run_spend.usd, "how": t.run_spend.how}
            for t in rep.targets if t.run_spend is not None]
    if rep.judge_spend is not None:
        rows.append({"target": rep.judge_spend_note, "spent": rep.judge_spend.usd,
                     "how": rep.judge_spend.how})
    return rows
