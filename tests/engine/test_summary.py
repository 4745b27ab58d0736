"""The report's pure parts: computed from plain rows, no store (slam.summary.compute and the
views the dashboard draws)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from slam import charts, summary

REF = "gpt4"


def rating(left: str, right: str, choice: str, prompt: str = "p1", sample: int = 0,
           rater: str = "ann", control: bool = False) -> dict:
    return {"left": left, "right": right, "choice": choice, "prompt_id": prompt,
            "sample": sample, "rater": rater, "is_control": control}


def verdicts(cand: str, prompt: str, cand_first: str, ref_first: str) -> list[dict]:
    """The judge's verdicts in both orders ("first": the answer shown first won)."""
    return [{"first": cand, "second": REF, "prompt_id": prompt, "sample": 0,
             "verdict": cand_first},
            {"first": REF, "second": cand, "prompt_id": prompt, "sample": 0,
             "verdict": ref_first}]


def test_judge_and_human_labels_are_aligned_by_item_through_the_side_randomisation() -> None:
    judgments = (verdicts("small", "p1", "first", "second")     # candidate wins both orders
                 + verdicts("small", "p2", "second", "first")   # reference wins both orders
                 + verdicts("small", "p3", "first", "first"))   # position bias: a tie
    ratings = [rating("small", REF, "left", "p1"),      # candidate shown as A, chosen
               rating(REF, "small", "left", "p2"),      # reference shown as A, chosen
               rating(REF, "small", "tie", "p3"),
               rating("small", REF, "left", "p1", control=True),  # controls do not count
               rating("small", REF, "left", "p9")]      # no verdict for p9: left out
    judge, human = summary.judge_vs_human(ratings, judgments, REF)
    assert judge == ["candidate", "reference", "tie"]
    assert human == ["candidate", "reference", "tie"]


def test_agreement_between_raters_and_with_the_judge() -> None:
    judgments = (verdicts("small", "p1", "first", "second")
                 + verdicts("small", "p2", "second", "first"))
    ratings = [rating("small", REF, "left", "p1", rater="ann"),
               rating(REF, "small", "right", "p1", rater="bob"),   # same winner, other side
               rating("small", REF, "left", "p2", rater="ann"),    # disagrees with the judge
               rating("small", REF, "right", "p2", rater="bob")]
    data = summary.RunData(SimpleNamespace(reference=REF), [], [], [], judgments, ratings)
    a = summary.agreement(data)
    assert (a.compared, a.agreement, a.multiply_rated) == (4, 0.75, 2)
    assert a.alpha is not None and a.alpha < 1.0  # the raters split on p2


def test_probe_series_bands_and_consistency() -> None:
    t0 = dt.datetime(2026, 11, 28, tzinfo=dt.UTC)
    samples = [{"target": "m1", "at": t0 + dt.timedelta(seconds=i), "e2e_ms": e, "ttft_ms": 1.0,
                "error_class": None} for i, e in enumerate([100.0, 200.0, 300.0])]
    samples.append({"target": "m1", "at": t0, "e2e_ms": None, "ttft_ms": None,
                    "error_class": "Timeout"})
    samples.append({"target": "someone-else", "at": t0, "e2e_ms": 5.0, "ttft_ms": 1.0,
                    "error_class": None})
    series, table = charts.probe_series(samples, {"m1": "small"}, window=2)
    assert [r["p50"] for r in series] == [100.0, 150.0, 250.0]
    assert table == [{"target": "small", "samples": 4, "errors": 1, "median": 200.0,
                      "mean": 200.0, "std": 100.0, "cv": 0.5}]


def test_the_break_even_is_a_traffic_or_says_why_there_is_none() -> None:
    from slam.cost import CostEstimate

    api = summary.TargetReport(REF, True, "api", cost=CostEstimate(
        REF, "api", 20.0, "table", per_request_usd=0.02))
    gpu = summary.TargetReport("mistral", False, "model_deployment", cost=CostEstimate(
        "mistral", "self-hosted", 0.5, "table", hourly_usd=1.0),
        break_even_requests_per_day=1200.0)
    unpriced = summary.TargetReport("zephyr", False, "model_deployment", cost=None)
    assert charts.break_even_note(gpu, api) == "cheaper above 1,200 requests/day"
    assert charts.break_even_note(api, api) == "the reference"
    assert charts.break_even_note(unpriced, api) == "unknown: no price for zephyr"
    hosted_ref = summary.TargetReport(REF, True, "model_deployment", cost=CostEstimate(
        REF, "self-hosted", 0.5, "table", hourly_usd=1.0))
    from dataclasses import replace
    assert charts.break_even_note(replace(gpu, break_even_requests_per_day=None), hosted_ref
                                   ).startswith("none: both cost per hour")


def test_quality_cost_points_and_curves() -> None:
    from slam.cost import CostEstimate
    from slam.stats import Interval

    def target(name: str, usd: float | None, sim: float) -> summary.TargetReport:
        per_request = usd / 1000 if usd is not None else None
        return summary.TargetReport(
            name, name == REF, "api", similarity=Interval(sim, sim, sim),
            cost=CostEstimate(name, "api", usd, "table", per_request_usd=per_request))
    rep = summary.EvaluationReport("ev", "1", REF, [
        target(REF, 27.0, 0.9), target("cheap", 0.5, 0.8), target("dear", 1.0, 0.7),
        target("unpriced", None, 0.95)], None, "")
    points = charts.quality_cost_points(rep)
    assert [(p["target"], p["on the frontier"]) for p in points] == [
        (REF, True), ("cheap", True), ("dear", False)]
    assert points[0]["quality basis"] == "similarity"
    assert [p["break-even"] for p in points] == ["the reference"] + 2 * [
        "none: both are priced per request, so the cheaper per request is cheaper at any traffic"]
    curves = charts.cost_curves(rep, [1000, 10000])
    assert {c["target"] for c in curves} == {REF, "cheap", "dear"} and len(curves) == 6
    assert curves[1]["$/month"] == pytest.approx(10 * curves[0]["$/month"])


def run_data(ratings: list[dict], prompts: int, spec: dict | None = None) -> summary.RunData:
    """A run of gpt4 (an API) and `small` (cheaper) on `prompts` prompts, with these ratings."""
    targets = [{"name": n, "kind": "external", "model": n, "is_reference": n == REF,
                "details": {"pricing": {"inputPerMTokensUSD": p, "outputPerMTokensUSD": 2 * p}}}
               for n, p in ((REF, 30.0), ("small", 1.0))]
    responses = [{"target": t["name"], "prompt_id": f"p{i:03d}", "sample": 0,
                  "error_class": None, "ttft_ms": 50.0, "e2e_ms": 200.0, "prompt_tokens": 20,
                  "completion_tokens": 10, "started_at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
                  "text": "x"} for t in targets for i in range(prompts)]
    run = SimpleNamespace(evaluation="ev", run_id="1", reference=REF, spec=spec or {})
    return summary.RunData(run, targets, responses, [], [], ratings)


def test_human_decisions_are_sequential_on_first_ratings_unless_the_spec_says_fixed() -> None:
    # ann rates every prompt first: small wins 4 in 5. bob rates each prompt again later, always
    # for gpt4: a second rating of a prompt is not a new draw, so the sequence leaves it out.
    first = [rating("small", REF, "right" if i % 5 == 0 else "left", f"p{i:03d}", rater="ann")
             for i in range(60)]
    again = [rating(REF, "small", "left", f"p{i:03d}", rater="bob") for i in range(60)]
    rep = summary.compute(run_data(first + again, 60))
    small = next(t for t in rep.targets if t.target == "small")
    d = small.decision
    assert (d.verdict, d.evidence, d.prompts, d.observations) == (
        "non-inferior", "humanWinRate", 60, 120)
    assert d.estimate == pytest.approx(0.8)
    assert d.why.startswith("non-inferior: human win rate 0.800 over the first ratings of 60 "
                            "prompts (120 ratings); decided at rating ")
    seq = small.sequence
    assert seq.decided_at == int(d.why.split("decided at rating ")[1].split(",")[0])
    assert seq.lower[seq.decided_at - 1] > 0.45 - 0.0025 > seq.lower[seq.decided_at - 2] - 0.0025
    assert "anytime-valid on the human win rate for 1 candidate(s)" in rep.method
    # Two raters and no roster: the report says who rates first can steer it, and how to fix.
    assert any("a rater who is both faster and more lenient" in n and
               "spec.humanRating.raters" in n for n in rep.notes)
    assert rep.recommendation == "small"
    # The fixed-sample test, asked for, sees every rating, each prompt's mean once: 0.4 on
    # average (200 prompts: the betting test needs more than 60 to call it).
    first = [rating("small", REF, "right" if i % 5 == 0 else "left", f"p{i:03d}", rater="ann")
             for i in range(200)]
    again = [rating(REF, "small", "left", f"p{i:03d}", rater="bob") for i in range(200)]
    fixed = summary.compute(run_data(first + again, 200, {"decision": {"sequential": False}}))
    small = next(t for t in fixed.targets if t.target == "small")
    assert small.decision.estimate == pytest.approx(0.4) and small.sequence is None
    assert small.decision.verdict == "inferior" and small.decision.prompts == 200
    assert small.decision.upper < 0.45
    assert "a betting test on the mean over prompts" in fixed.method
    assert fixed.recommendation == REF and fixed.reason.startswith(f"keep {REF}")


def test_a_judge_that_judges_itself_or_disagrees_with_the_raters_is_flagged_and_not_used(
        ) -> None:
    # The judge (the reference itself) says small wins every prompt in both orders; the raters
    # say the reference wins every one: kappa 0, below the default 0.2.
    judgments = [j | {"parse_status": "ok"} for i in range(12)
                 for j in verdicts("small", f"p{i:03d}", "first", "second")]
    ratings = [rating(REF, "small", "left", f"p{i:03d}") for i in range(12)]
    spec = {"scorers": {"judge": {"target": REF}}, "decision": {"evidence": "judgeWinRate"}}
    data = run_data(ratings, 12, spec)
    data = summary.RunData(data.run, data.targets, data.responses, [], judgments, ratings)
    rep = summary.compute(data)
    assert rep.notes[0].startswith(f"Judge bias (SelfJudging): the judge is the reference "
                                   f"target {REF}")
    assert rep.notes[1].startswith("judge not used for decisions: its agreement with the raters "
                                   "is kappa 0.00 over 12 ratings")
    small = next(t for t in rep.targets if t.target == "small")
    assert small.judge_win_rate == 1.0  # reported...
    assert (small.decision.evidence, small.decision.verdict, small.decision.prompts) == (
        "judgeWinRate", "undecided", 0)  # ...but not used
    trusting = summary.RunData(run_data(ratings, 12, {**spec, "decision": {
        "evidence": "judgeWinRate", "judgeMinKappa": -1}}).run, data.targets, data.responses,
        [], judgments, ratings)
    small = next(t for t in summary.compute(trusting).targets if t.target == "small")
    assert small.decision.verdict == "non-inferior"  # the same verdicts, trusted


def test_each_rating_criterion_gets_its_own_ranking_with_intervals() -> None:
    # Overall the reference wins every prompt; on clarity small does.
    ratings = [rating(REF, "small", "left", f"p{i:03d}") | {"criteria": {"clarity": "right",
                                                                        "likability": "tie"}}
               for i in range(20)]
    rep = summary.compute(run_data(ratings, 20))
    clarity, likability = rep.criteria["clarity"], rep.criteria["likability"]
    assert clarity["small"].low > clarity[REF].high  # separated beyond their intervals
    assert rep.targets[0].target == REF  # the overall ranking is the other way round
    assert likability["small"].estimate == pytest.approx(likability[REF].estimate, abs=1e-6)
    from slam import report
    md = report.to_markdown(rep)
    assert "## Per criterion (human Bradley-Terry Elo, 95% CI)" in md
    assert "| target | clarity | likability |" in md


def test_every_kind_of_evidence_gets_its_verdict_beside_the_one_that_decides() -> None:
    """auto decides on the human ratings once there are ten prompts of them; the similarity
    verdict (here: inferior) stays in view beside it, in the report and the verdict rows."""
    from dataclasses import replace

    from slam import report

    ratings = [rating("small", REF, "left" if i % 2 else "right", f"p{i:03d}", rater="ann")
               for i in range(40)]
    data = run_data(ratings, 40)
    sims = [{"target": t, "prompt_id": f"p{i:03d}", "sample": 0, "scorer": "similarity",
             "score": 0.9 if t == REF else 0.4} for t in (REF, "small") for i in range(40)]
    rep = summary.compute(replace(data, scores=sims))
    small = next(t for t in rep.targets if t.target == "small")
    assert small.decision.evidence == "humanWinRate" and small.decision.verdict == "undecided"
    [sim] = small.other_decisions
    assert (sim.evidence, sim.verdict) == ("similarity", "inferior")
    rows = charts.verdicts(rep)
    assert [(r["evidence"], r["verdict"], r["decides"]) for r in rows] == [
        ("human win rate", "undecided", "yes"), ("similarity difference", "inferior", "")]
    md = "\n".join(report.decision_lines(rep))
    assert "on the similarity difference (shown, not used for the recommendation): inferior:" \
        in md
