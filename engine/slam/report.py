"""Exports of a run: Markdown and terminal tables (the summary), JSON (summary and every record),
CSV (every record). All of them render one `summary.EvaluationReport`."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from slam.decision import LABELS
from slam.stats import Interval
from slam.summary import EvaluationReport, TargetReport

CSV_COLUMNS = [
    "target", "prompt_id", "sample", "started_at", "attempts", "ttft_ms", "e2e_ms",
    "itl_mean_ms", "itl_p50_ms", "itl_p95_ms", "itl_max_ms", "prompt_tokens",
    "completion_tokens", "tokens_source", "finish_reason", "error_class", "error_message",
    "status_code", "text",
]


def _n(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _ci(iv: Interval | None, digits: int = 2) -> str:
    if iv is None:
        return "–"
    return f"{iv.estimate:.{digits}f} [{iv.low:.{digits}f}, {iv.high:.{digits}f}]"


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.0%}"


def _usd(x: float | None) -> str:
    if x is None:
        return "–"
    return f"${x:,.2f}" if x >= 1 else f"${x:.4f}"


def _name(t: TargetReport) -> str:
    return t.target + (" (ref)" if t.is_reference else "")


def quality_table(rep: EvaluationReport) -> tuple[list[str], list[list[str]]]:
    headers = ["rank", "target", "ok", "similarity [95% CI]", "judge win",
               "judge win, equal length", "consistent", "judge Elo [95% CI]", "judge 1-10",
               "human win", "human Elo [95% CI]"]
    rows = [[
        str(t.rank or "–"), _name(t), f"{t.succeeded}/{t.requests}", _ci(t.similarity),
        _pct(t.judge_win_rate), _pct(t.judge_win_rate_lc), _pct(t.judge_consistency),
        _ci(t.judge_elo, 0),
        _ci(t.judge_score, 1), _pct(t.human_win_rate), _ci(t.human_elo, 0),
    ] for t in rep.targets]
    return headers, rows


def latency_table(rep: EvaluationReport) -> tuple[list[str], list[list[str]]]:
    headers = ["target", "TTFT p50", "TTFT p95", "e2e p50", "e2e p95", "e2e p99", "e2e CV",
               "tok/s", "req/s"]
    rows = [[
        _name(t), _n(t.ttft and t.ttft.p50), _n(t.ttft and t.ttft.p95), _n(t.e2e and t.e2e.p50),
        _n(t.e2e and t.e2e.p95), _n(t.e2e and t.e2e.p99), _n(t.e2e and t.e2e.cv, 2),
        _n(t.tokens_per_second, 1), _n(t.throughput_rps, 2),
    ] for t in rep.targets]
    return headers, rows


def cost_table(rep: EvaluationReport) -> tuple[list[str], list[list[str]]]:
    at = " at the SLO" if rep.slo else ""
    headers = ["target", f"$/1k requests{at}", f"$/month @ {rep.requests_per_day:,}/day"
               + (" always-on" if rep.slo else ""), "$/month scale-to-zero",
               "break-even req/day", "price"]
    rows = [[
        _name(t), _usd(t.cost and t.cost.per_1k_usd), _usd(t.monthly_usd),
        _usd(t.sizing and t.sizing.scale_to_zero_monthly_usd),
        _n(t.break_even_requests_per_day), t.cost.source if t.cost else "–",
    ] for t in rep.targets]
    return headers, rows


def drop_empty_columns(headers: list[str], rows: list[list[str]]
                       ) -> tuple[list[str], list[list[str]]]:
    """Leave out columns with no figure for any target (no judge configured, no ratings yet)."""
    keep = [i for i, _ in enumerate(headers) if i < 2 or any(r[i] != "–" for r in rows)]
    return [headers[i] for i in keep], [[r[i] for i in keep] for r in rows]


TABLES = (("Quality", quality_table), ("Latency (ms, successful requests)", latency_table),
          ("Cost", cost_table))


def _md_table(headers: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


def to_markdown(rep: EvaluationReport, store: str = "",
                responses: Sequence[dict[str, Any]] = ()) -> str:
    lines = [f"# {rep.evaluation} — run {rep.run_id}", "",
             f"Reference: **{rep.reference}**." + (f" Store: `{store}`." if store else ""), ""]
    for title, fn in TABLES:
        lines += [f"## {title}", "", *_md_table(*drop_empty_columns(*fn(rep))), ""]
    if rep.rank_basis:
        lines += [f"Ranked by {rep.rank_basis}.", ""]
    if rep.criteria:
        names = sorted(rep.criteria)
        lines += ["## Per criterion (human Bradley-Terry Elo, 95% CI)", "",
                  *_md_table(["target", *names], [
                      [_name(t), *(_ci(rep.criteria[c].get(t.target), 0) for c in names)]
                      for t in rep.targets]), ""]
    lines += [f"> **Warning** — {note}" for note in rep.notes] + ([""] if rep.notes else [])
    lines += ["## Recommendation", "", f"**{rep.leader}** — {rep.reason}", ""]
    lines += decision_lines(rep)
    lines += cold_start_lines(rep) + goodput_lines(rep) + traffic_lines(rep) + spend_lines(rep)
    if rep.judge_unparseable or rep.judge_errors:
        lines += [f"Judge: {rep.judge_unparseable} unparseable verdict(s) and "
                  f"{rep.judge_errors} failed call(s), excluded from the figures above.", ""]
    errors = Counter((r["target"], r["error_class"]) for r in responses if r["error_class"])
    if errors:
        lines += ["## Failed requests", ""]
        lines += [f"- {t}: {n} × {cls}" for (t, cls), n in sorted(errors.items())] + [""]
    return "\n".join(lines)


def decision_lines(rep: EvaluationReport) -> list[str]:
    """The decision per candidate (verdict, bounds, what more would decide it), the method,
    and the plan: how many prompts each kind of evidence needs at its margin."""
    lines = ["## Decision", ""]
    for t in rep.targets:
        if t.decision is not None:
            lines.append(f"- **{t.target}**: {t.decision.why}")
            lines += [f"  - on the {LABELS[d.evidence]} (shown, not used for the recommendation):"
                      f" {d.why}" for d in t.other_decisions]
    lines += ["", f"Method: {rep.method}.", "", "Planning (prompts needed at the margins):", ""]
    lines += [f"- {row.line()}" for row in rep.plan]
    return lines + [""]


def spend_lines(rep: EvaluationReport) -> list[str]:
    """What the run itself cost, target by target, with the arithmetic."""
    spent = [t for t in rep.targets if t.run_spend is not None]
    if not spent and rep.judge_spend is None:
        return []
    lines = ["## What this run cost", ""]
    lines += [f"- {_name(t)}: {_usd(t.run_spend.usd)} = {t.run_spend.how}"
              for t in spent if t.run_spend is not None]
    if rep.judge_spend is not None:
        lines.append(f"- {rep.judge_spend_note}: {_usd(rep.judge_spend.usd)} = "
                     f"{rep.judge_spend.how}")
    elif rep.judge_spend_note:
        lines.append(f"- {rep.judge_spend_note}")
    lines += [f"- **in all: {_usd(rep.run_spend_usd)}**", ""]
    return lines


GOODPUT_METHOD = (
    "A request conforms when it succeeded and met every bound; TPOT is (e2e − TTFT) / (output "
    "tokens − 1), and a request with one output token has none, so with a TPOT bound it is left "
    "out; a failed request does not conform. A load level meets the SLO when at least {att:.0%} "
    "of its requests conform; goodput is conforming requests per second of the level's wall "
    "time — the definitions of vLLM's `bench serve --goodput` and GuideLLM's goodput profile. "
    "The search (GuideLLM's) starts at concurrency {initial}, doubles until a level fails (at "
    "most {max}), then bisects; at most {probes} levels of {n}+ requests each. Each target was "
    "searched alone after generation, with no other load from this run on its server; the "
    "prompts are the run's own.")


def goodput_lines(rep: EvaluationReport) -> list[str]:
    """Each self-hosted target's capacity search at the SLO, level by level."""
    if rep.slo is None or rep.search is None:
        return []
    searched = [t for t in rep.targets if t.kind == "self-hosted"]
    if not searched:
        return []
    lines = [f"## Goodput at the SLO: {rep.slo.describe()}", "",
             GOODPUT_METHOD.format(att=rep.slo.attainment, initial=rep.search.initial,
                                   max=rep.search.max_concurrency, probes=rep.search.max_probes,
                                   n=rep.search.requests_per_probe), ""]
    for t in searched:
        cap = t.capacity
        if cap is None:
            lines += [f"- **{_name(t)}**: not measured yet (the search runs once generation "
                      "is done)", ""]
            continue
        best = cap.best
        head = (f"goodput **{cap.goodput_per_replica:.3g} requests/s per replica** at "
                f"concurrency {best.concurrency} ({cap.replicas} replica"
                f"{'s' * (cap.replicas != 1)} served the search)" if best else
                "**does not meet the SLO** at any concurrency searched")
        lines += [f"- **{_name(t)}**: {head}; {cap.stop or 'search unfinished'}.", ""]
        lines += _md_table(
            ["concurrency", "requests", "failed", "within SLO", "goodput/s", "req/s",
             "TTFT p95", "TPOT p95", "e2e p95", "meets"],
            [[str(p.concurrency), str(p.requests), str(p.failed),
              "–" if p.attainment is None else f"{p.attainment:.0%}", _n(p.goodput_rps, 2),
              _n(p.throughput_rps, 2), _n(p.ttft_p95_ms), _n(p.tpot_p95_ms, 1),
              _n(p.e2e_p95_ms), "yes" if p.passed(rep.slo) else "no"] for p in cap.probes])
        lines.append("")
    return lines


def capacity_headlines(rep: EvaluationReport) -> list[str]:
    """One line per self-hosted target at the SLO, for the terminal (`slam run`)."""
    if rep.slo is None:
        return []
    lines = []
    for t in rep.targets:
        if t.kind != "self-hosted":
            continue
        cap, z = t.capacity, t.sizing
        if cap is None:
            lines.append(f"{t.target}: capacity at the SLO not measured yet")
            continue
        best = cap.best
        lines.append(
            f"{t.target}: goodput at the SLO ({rep.slo.describe()}): "
            + (f"{cap.goodput_per_replica:.3g} requests/s per replica at concurrency "
               f"{best.concurrency}, measured alone ({cap.stop or 'search unfinished'})"
               if best else "not met at any concurrency searched")
            + (f"; on {rep.requests_per_day:,} requests/day: always-on "
               f"{_usd(z.always_on_monthly_usd)}/month, scale-to-zero "
               f"{_usd(z.scale_to_zero_monthly_usd)}/month" if z else ""))
    return lines


def traffic_lines(rep: EvaluationReport) -> list[str]:
    """Sizing on the team's traffic, hour by hour: always-on, scale-to-zero, break-even."""
    sized = [t for t in rep.targets if t.sizing is not None]
    if not sized or rep.traffic_profile is None:
        return []
    lines = ["## Cost on your traffic", "",
             f"Traffic: {rep.traffic_profile.source}: {rep.traffic_profile.per_day:,.0f} "
             "requests/day. Replicas per hour = ⌈requests in the hour / 3600 / goodput per "
             "replica⌉. Always-on keeps the busiest hour's replicas up all month; "
             "scale-to-zero pays each hour's replicas and none in an hour without requests, "
             "and each hour that starts from zero pays a cold start, whose requests miss the "
             "SLO.", ""]
    for t in sized:
        z = t.sizing
        assert z is not None
        cold = (f"{z.cold_starts_per_day} cold start{'s' * (z.cold_starts_per_day != 1)}/day"
                + (f" of {z.cold_start_s:.0f} s: {z.missed_per_day:,.1f} requests/day miss the "
                   f"SLO ({z.scale_to_zero_attainment_loss:.2%})" if z.cold_start_s is not None
                   else " (cold start not measured: scale the target from zero for the run, "
                        "spec.scaling, to count its misses)"))
        lines += [f"- **{_name(t)}**: always-on {z.peak_replicas} replica"
                  f"{'s' * (z.peak_replicas != 1)}: {_usd(z.always_on_monthly_usd)}/month; "
                  f"scale-to-zero {sum(h.replicas for h in z.hours)} replica-hours/day: "
                  f"{_usd(z.scale_to_zero_monthly_usd)}/month, {cold}; break-even against "
                  f"{rep.reference}: "
                  + (f"{t.break_even_requests_per_day:,.0f} requests/day in this profile's shape"
                     if t.break_even_requests_per_day else "none up to 10⁹ requests/day"),
                  "  - replicas by hour: " + " ".join(str(h.replicas) for h in z.hours)]
    return [*lines, ""]


def cold_start_lines(rep: EvaluationReport) -> list[str]:
    """Each self-hosted target's server start, part by part (README "Scale to zero")."""
    started = [t for t in rep.targets if t.cold_start is not None]
    if not started:
        return []
    lines = ["## Cold start", "",
             "From the scale-up that asked for the server pod (Evaluation spec.scaling) to the "
             "run's first token, as the pod's status timed each step:", ""]
    for t in started:
        cs = t.cold_start
        assert cs is not None
        head = (f"**{_name(t)}**: {cs.total_s:.1f} s from the scale-up to the first token"
                if cs.first_token_s is not None else
                f"**{_name(t)}**: {cs.to_ready_s:.1f} s from "
                f"{'the scale-up' if cs.requested else 'pod creation'} to Ready"
                + ("" if cs.requested else " (no run scaled it up: the model was already "
                   "serving, so the run paid no cold start)"))
        lines += [f"- {head} (pod {cs.pod}): "
                  + "; ".join(f"{what} {sec:.1f} s" for what, sec in cs.parts)]
    return [*lines, ""]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def to_json(rep: EvaluationReport, responses: Sequence[dict[str, Any]]) -> str:
    doc = {
        "evaluation": rep.evaluation,
        "runId": rep.run_id,
        "reference": rep.reference,
        "recommendation": {"target": rep.recommendation, "reason": rep.reason},
        "decision": {"method": rep.method, "plan": [row.line() for row in rep.plan]},
        "criteria": {c: {t: dataclasses.asdict(iv) for t, iv in by.items()}
                     for c, by in rep.criteria.items()},
        "warnings": rep.notes,
        "assumptions": {"requestsPerDay": rep.requests_per_day,
                        "hoursPerMonth": rep.hours_per_month,
                        "slo": dataclasses.asdict(rep.slo) if rep.slo else None,
                        "trafficProfile": dataclasses.asdict(rep.traffic_profile)
                        if rep.traffic_profile else None},
        "targets": [{k: v for k, v in dataclasses.asdict(t).items() if k != "sequence"}
                    | {"success_rate": t.success_rate} for t in rep.targets],
        "responses": [{k: _jsonable(r.get(k)) for k in CSV_COLUMNS} for r in responses],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n"


def to_junit(rep: EvaluationReport, max_failure_rate: float | None = None) -> str:
    """JUnit XML for CI systems: one test case per candidate's decision (inferior: a failure,
    undecided: skipped with what would decide it) and, with `max_failure_rate`, one per target's
    failure rate."""
    from xml.etree import ElementTree as ET

    suite = ET.Element("testsuite", name=f"slam {rep.evaluation} run {rep.run_id}")
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="method", value=rep.method)
    ET.SubElement(props, "property", name="recommendation", value=rep.leader)
    cases = 0
    failures = skipped = 0
    for t in rep.targets:
        if t.decision is None:
            continue
        cases += 1
        case = ET.SubElement(suite, "testcase", classname=f"slam.{rep.evaluation}.decision",
                             name=f"{t.target} non-inferior to {rep.reference}")
        if t.decision.verdict == "inferior":
            failures += 1
            ET.SubElement(case, "failure", message=t.decision.why, type="inferior")
        elif t.decision.verdict == "undecided":
            skipped += 1
            ET.SubElement(case, "skipped", message=t.decision.why)
    if max_failure_rate is not None:
        for t in rep.targets:
            cases += 1
            case = ET.SubElement(suite, "testcase", classname=f"slam.{rep.evaluation}.requests",
                                 name=f"{t.target} failure rate <= {max_failure_rate:.1%}")
            rate = 1 - t.success_rate if t.requests else 0.0
            if rate > max_failure_rate:
                failures += 1
                ET.SubElement(case, "failure", type="failure-rate", message=(
                    f"{t.target} failed {t.requests - t.succeeded} of {t.requests} requests "
                    f"({rate:.1%})"))
    suite.set("tests", str(cases))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", str(skipped))
    ET.indent(suite)
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def to_csv(responses: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    for r in responses:
        writer.writerow({k: _jsonable(r.get(k)) for k in CSV_COLUMNS})
    return out.getvalue()
