"""Everything a stakeholder reads about one run, computed from the store alone.

Latency, quality (similarity, judge, human ratings), rankings with intervals, cost, and the
recommendation. Used by `slam run`/`slam report`, the operator's status and the dashboard, so they
all say the same thing. Bootstraps are seeded: the same store gives the same report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from slam import cost, pricing, stats
from slam.scoring import judge as judging
from slam.scoring.pipeline import JUDGE_GRADE, SIMILARITY
from slam.stats import Battles, Interval, LatencySummary, NonInferiority
from slam.store import Store

ALPHA = 0.05
MIN_DECISIVE = 10
TESTS = {
    "human ratings": "one-sided sign test on decisive human choices vs the reference",
    "judge verdicts": "one-sided sign test on decisive judge verdicts vs the reference "
                      "(both orders; a flip is a tie)",
    "similarity": "one-sided Wilcoxon signed-rank test on paired similarity to the hand-written "
                  "reference answers",
}
TEST_NAME = (f"evidence in order human ratings > judge verdicts > similarity; alpha {ALPHA}, "
             f"at least {MIN_DECISIVE} decisive comparisons; ties excluded")


@dataclass
class TargetReport:
    target: str
    is_reference: bool
    kind: str
    rank: int | None = None
    requests: int = 0
    succeeded: int = 0
    ttft: LatencySummary | None = None
    e2e: LatencySummary | None = None
    tokens_per_second: float | None = None
    throughput_rps: float | None = None
    similarity: Interval | None = None
    judge_score: Interval | None = None
    judge_win_rate: float | None = None  # vs the reference, ties half
    judge_consistency: float | None = None  # share of pairs with the same verdict in both orders
    judge_pairs: int = 0
    judge_test: NonInferiority | None = None
    judge_elo: Interval | None = None
    human_win_rate: float | None = None
    human_elo: Interval | None = None
    human_test: NonInferiority | None = None
    similarity_test: NonInferiority | None = None  # paired, vs the reference (hand-written refs)
    cost: cost.CostEstimate | None = None
    monthly_usd: float | None = None
    break_even_requests_per_day: float | None = None

    @property
    def success_rate(self) -> float:
        return self.succeeded / self.requests if self.requests else 0.0


@dataclass
class EvaluationReport:
    evaluation: str
    run_id: str
    reference: str
    targets: list[TargetReport]
    recommendation: str | None
    reason: str
    requests_per_day: int = 10000
    hours_per_month: float = 730.0
    judge_unparseable: int = 0
    judge_errors: int = 0
    rank_basis: str | None = None  # which quality figure orders `targets`
    notes: list[str] = field(default_factory=list)

    @property
    def leader(self) -> str:
        return self.recommendation or "none"


def _battles(pairs: list[tuple[str, str, float]], names: list[str]) -> Battles:
    index = {n: i for i, n in enumerate(names)}
    return Battles.from_lists([index[a] for a, _, _ in pairs], [index[b] for _, b, _ in pairs],
                              [o for _, _, o in pairs], len(names))


def _elo(pairs: list[tuple[str, str, float]], names: list[str],
         rng: np.random.Generator) -> dict[str, Interval]:
    if not pairs:
        return {}
    battles = _battles(pairs, names)
    theta, low, high = stats.bootstrap_bradley_terry(battles, rng, rounds=300, prior=0.5)
    met = set(battles.a.tolist()) | set(battles.b.tolist())
    elo, lo, hi = stats.to_elo(theta), stats.to_elo(low), stats.to_elo(high)
    return {n: Interval(float(elo[i]), float(lo[i]), float(hi[i]))
            for i, n in enumerate(names) if i in met}


def judge_outcomes_by_item(judgments: list[dict], reference: str
                           ) -> dict[tuple[str, str, int], tuple[float, bool]]:
    """(candidate, prompt, sample) -> (outcome for the candidate, consistent), for every item
    judged against the reference with a verdict in both orders."""
    verdicts: dict[tuple[str, str, int], dict[str, str | None]] = {}
    for j in judgments:
        if reference not in (j["first"], j["second"]):
            continue
        cand = j["second"] if j["first"] == reference else j["first"]
        order = "reference_first" if j["first"] == reference else "candidate_first"
        verdicts.setdefault((cand, j["prompt_id"], j["sample"]), {})[order] = j["verdict"]
    out: dict[tuple[str, str, int], tuple[float, bool]] = {}
    for key, v in verdicts.items():
        combined = judging.combine(v.get("candidate_first"), v.get("reference_first"))
        if combined is not None:
            out[key] = combined
    return out


def judge_outcomes(judgments: list[dict], reference: str
                   ) -> dict[str, list[tuple[float, bool]]]:
    """candidate -> [(outcome, consistent)] over (prompt, sample) with both orders parsed."""
    out: dict[str, list[tuple[float, bool]]] = {}
    for (cand, _, _), combined in judge_outcomes_by_item(judgments, reference).items():
        out.setdefault(cand, []).append(combined)
    return out


def human_pairs(ratings: list[dict]) -> list[tuple[str, str, float]]:
    value = {"left": 1.0, "right": 0.0, "tie": 0.5, "both_bad": 0.5}
    return [(r["left"], r["right"], value[r["choice"]]) for r in ratings
            if not r.get("is_control")]


def target_cost(t: dict, stats_row, pricing_client: Any = None) -> cost.CostEstimate:
    details = t.get("details") or {}
    if t["kind"] == "external":
        price = pricing.token_price(t["model"], details.get("pricing"))
        return cost.api_cost(t["name"], price, stats_row.prompt_tokens_mean,
                             stats_row.completion_tokens_mean)
    instance = details.get("instanceType")
    hourly = pricing.instance_hourly_usd(instance, client=pricing_client) if instance else None
    return cost.self_hosted_cost(t["name"], hourly, details.get("replicas") or 1,
                                 stats_row.throughput_rps, instance)


def build(store: Store, run_pk: int, *, seed: int = 0, pricing_client: Any = None
          ) -> EvaluationReport:
    from slam import metrics

    run = next(r for r in store.runs() if r.id == run_pk)
    spec = run.spec or {}
    cost_spec = spec.get("cost") or {}
    rpd = int(cost_spec.get("requestsPerDay", 10000))
    hpm = float(cost_spec.get("hoursPerMonth", 730.0))
    targets = sorted(store.targets(run_pk), key=lambda t: (not t["is_reference"], t["name"]))
    names = [t["name"] for t in targets]
    responses = store.responses(run_pk)
    rng = np.random.default_rng(seed)
    by_target: dict[str, list[dict]] = {n: [] for n in names}
    for r in responses:
        by_target.setdefault(r["target"], []).append(r)
    sims: dict[str, list[float]] = {}
    grades: dict[str, list[float]] = {}
    sim_by_key: dict[tuple[str, str, int], float] = {}
    for s in store.scores(run_pk):
        if s["score"] is None:
            continue
        if s["scorer"] == SIMILARITY:
            sim_by_key[(s["target"], s["prompt_id"], s["sample"])] = s["score"]
        bucket = sims if s["scorer"] == SIMILARITY else grades if s["scorer"] == JUDGE_GRADE \
            else None
        if bucket is not None:
            bucket.setdefault(s["target"], []).append(s["score"])
    judgments = store.judgments(run_pk)
    outcomes = judge_outcomes(judgments, run.reference)
    judge_elo = _elo([(c, run.reference, o) for c, os in outcomes.items() for o, _ in os],
                     names, rng)
    ratings = store.ratings(run_pk)
    hpairs = human_pairs(ratings)
    human_elo = _elo(hpairs, names, rng)

    reports: list[TargetReport] = []
    for t in targets:
        name = t["name"]
        rows = by_target.get(name, [])
        ok = [r for r in rows if r["error_class"] is None]
        m = metrics.target_stats(name, rows)
        rep = TargetReport(
            target=name, is_reference=t["is_reference"],
            kind="api" if t["kind"] == "external" else "self-hosted",
            requests=len(rows), succeeded=len(ok),
            ttft=stats.latency_summary([r["ttft_ms"] for r in ok]),
            e2e=stats.latency_summary([r["e2e_ms"] for r in ok]),
            tokens_per_second=m.tokens_per_second, throughput_rps=m.throughput_rps,
            similarity=stats.bootstrap_mean(sims.get(name, []), rng),
            judge_score=stats.bootstrap_mean(grades.get(name, []), rng),
            judge_elo=judge_elo.get(name), human_elo=human_elo.get(name),
        )
        if name in outcomes:
            values = [o for o, _ in outcomes[name]]
            rep.judge_pairs = len(values)
            rep.judge_win_rate = stats.win_rate(values)
            rep.judge_consistency = float(np.mean([c for _, c in outcomes[name]]))
            rep.judge_test = stats.sign_test(values, alpha=ALPHA, min_decisive=MIN_DECISIVE)
        mine = [o if a == name else 1.0 - o for a, b, o in hpairs
                if {a, b} == {name, run.reference} and name != run.reference]
        if mine:
            rep.human_win_rate = stats.win_rate(mine)
            rep.human_test = stats.sign_test(mine, alpha=ALPHA, min_decisive=MIN_DECISIVE)
        if name != run.reference:
            keys = [(p, smp) for (tg, p, smp) in sim_by_key if tg == name
                    and (run.reference, p, smp) in sim_by_key]
            if keys:
                rep.similarity_test = stats.paired_test(
                    [sim_by_key[(name, p, smp)] for p, smp in keys],
                    [sim_by_key[(run.reference, p, smp)] for p, smp in keys],
                    alpha=ALPHA, min_pairs=MIN_DECISIVE)
        rep.cost = target_cost(t, m)
        rep.monthly_usd = rep.cost.monthly_usd(rpd, hpm)
        reports.append(rep)
    ref = next((r for r in reports if r.is_reference), None)
    for rep in reports:
        if ref and rep is not ref and rep.cost and ref.cost:
            rep.break_even_requests_per_day = cost.break_even_requests_per_day(
                rep.cost, ref.cost, hpm)
    target, reason = recommend(reports, run.reference)
    basis = rank(reports)
    return EvaluationReport(
        run.evaluation, run.run_id, run.reference, reports, target, reason, rpd, hpm,
        judge_unparseable=sum(j["parse_status"] == "unparseable" for j in judgments),
        judge_errors=sum(j["parse_status"] == "error" for j in judgments),
        rank_basis=basis,
    )


RANK_BASES = (("human Elo", lambda t: t.human_elo), ("judge Elo", lambda t: t.judge_elo),
              ("similarity", lambda t: t.similarity), ("judge 1-10", lambda t: t.judge_score))


def rank(reports: list[TargetReport]) -> str | None:
    """Order the targets best first by the first quality figure every target has; returns its
    name (None, and the order left alone, when no figure covers them all)."""
    for name, get in RANK_BASES:
        if all(get(t) is not None for t in reports):
            reports.sort(key=lambda t: -get(t).estimate)
            for i, t in enumerate(reports, start=1):
                t.rank = i
            return name
    return None


def _money(x: float | None) -> str:
    return "unknown" if x is None else f"${x:,.4g}"


def recommend(reports: list[TargetReport], reference: str) -> tuple[str | None, str]:
    """The cheapest target not significantly worse than the reference, or None with the reason."""
    ref = next((r for r in reports if r.target == reference), None)
    if ref is None:
        return None, f"the reference {reference} has no results"
    eligible: list[TargetReport] = []
    notes: list[str] = []
    tested = False
    for r in reports:
        if r is ref:
            continue
        evidence = [(r.human_test, "human ratings"), (r.judge_test, "judge verdicts"),
                    (r.similarity_test, "similarity")]
        usable = [(t, src) for t, src in evidence if t and t.significantly_worse is not None]
        test, source = usable[0] if usable else next(
            ((t, src) for t, src in evidence if t), (None, ""))
        if test is None:
            notes.append(f"{r.target}: no comparisons with the reference (no parseable judge "
                         "verdicts, human ratings or hand-written reference answers)")
            continue
        if test.significantly_worse is None:
            notes.append(f"{r.target}: only {test.wins + test.losses} decisive {source}")
            continue
        tested = True
        if test.significantly_worse:
            notes.append(f"{r.target}: significantly worse ({TESTS[source]}: {test.wins} "
                         f"better, {test.losses} worse, {test.ties} ties, "
                         f"p={test.p_value:.3g})")
            continue
        if r.cost is None or r.cost.per_1k_usd is None:
            notes.append(f"{r.target}: not worse, but cost unknown ({r.cost.source})")
            continue
        eligible.append(r)
        notes.append(f"{r.target}: not significantly worse ({TESTS[source]}: {test.wins} "
                     f"better, {test.losses} worse, {test.ties} ties, p={test.p_value:.3g}), "
                     f"{_money(r.cost.per_1k_usd)}/1k requests")
    detail = "; ".join(notes)
    if not tested:
        return None, (f"none: quality vs {reference} could not be tested ({detail}). "
                      f"Test: {TEST_NAME}")
    ref_cost = ref.cost.per_1k_usd if ref.cost else None
    cheaper = [r for r in eligible if ref_cost is None or r.cost.per_1k_usd < ref_cost]
    if not cheaper:
        why = "no candidate is both not significantly worse and cheaper"
        if ref_cost is None:
            return None, f"none: {why} ({detail}). Test: {TEST_NAME}"
        return reference, (f"keep {reference} ({_money(ref_cost)}/1k requests): {why} "
                           f"({detail}). Test: {TEST_NAME}")
    best = min(cheaper, key=lambda r: r.cost.per_1k_usd)
    return best.target, (f"{best.target}: cheapest target not significantly worse than "
                         f"{reference} ({_money(best.cost.per_1k_usd)} vs {_money(ref_cost)} per "
                         f"1k requests). {detail}. Test: {TEST_NAME}")
