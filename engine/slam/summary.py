"""Everything a stakeholder reads about one run, computed from the store alone.

Latency, quality (similarity, judge, human ratings), rankings with intervals, cost, and the
recommendation. Used by `slam run`/`slam report`, the operator's status and the dashboard, so they
all say the same thing. Bootstraps are seeded: the same store gives the same report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from slam import (
    coldstart,
    cost,
    decision,
    goodput,
    judgebias,
    pricing,
    roster,
    stats,
    timeline,
    traffic,
)
from slam.api.evaluation import DecisionSpec
from slam.scoring import judge as judging
from slam.scoring.pipeline import JUDGE_GRADE, SIMILARITY
from slam.stats import Battles, Interval, LatencySummary
from slam.store import Store

# Judge verdicts count towards a decision only when at least this share of pairs got the same
# verdict in both answer orders (below it, the figures are reported, not used).
JUDGE_MIN_CONSISTENCY = 0.5
# A human choice as the outcome for the answer shown left: a tie or "both bad" counts half.
CHOICE_VALUE = {"left": 1.0, "right": 0.0, "tie": 0.5, "both_bad": 0.5}
SEQUENTIAL = ("anytime-valid on the human win rate for {m} candidate(s): a betting test "
              "(Waudby-Smith & Ramdas 2023) on {basis}, alpha {alpha:g} "
              "each (Bonferroni), valid whenever the result is looked at")
BASIS_ASSIGNED = ("each prompt's rating by the rater assigned to it in advance "
                  "(spec.humanRating.raters), in an order fixed in advance")
BASIS_FIRST = "the first rating of each prompt"
METHOD = ("non-inferiority against the reference on {evidence}: a betting test on the mean "
          "over prompts (each prompt weighs the same; valid for any bounded data, Waudby-Smith "
          "& Ramdas 2023), Holm over {m} candidate(s) at family-wise alpha {alpha:g}; at least "
          "{min} prompts")


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
    judge_win_rate_lc: float | None = None  # the judge win rate at equal length
    judge_elo: Interval | None = None
    human_win_rate: float | None = None
    human_elo: Interval | None = None
    decision: decision.Decision | None = None  # candidates: the verdict against the reference
    sequence: decision.Sequential | None = None  # sequential human decisions: the bounds path
    # The verdicts on the other kinds of evidence with data (fixed-sample, each kind its own
    # Holm family): shown beside the one the recommendation uses, never hidden by `auto`.
    other_decisions: list[decision.Decision] = field(default_factory=list)
    cost: cost.CostEstimate | None = None
    monthly_usd: float | None = None
    break_even_requests_per_day: float | None = None
    cold_start: coldstart.ColdStart | None = None  # self-hosted: its server's last start
    run_spend: cost.Spend | None = None  # what this run itself cost on this target
    capacity: goodput.Capacity | None = None  # self-hosted, at the SLO: the capacity search
    sizing: cost.Sizing | None = None  # self-hosted, at the SLO: replicas hour by hour

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
    method: str = ""  # how the decisions were made, in one line
    # Per rating criterion (clarity, ...): each target's human Bradley-Terry Elo with its 95%
    # interval, from the raters' per-criterion choices.
    criteria: dict[str, dict[str, Interval]] = field(default_factory=dict)
    plan: list[decision.PlanRow] = field(default_factory=list)  # prompts the margins need
    slo: goodput.Slo | None = None  # spec.cost.slo
    search: goodput.Search | None = None  # spec.cost.capacitySearch, with an SLO
    traffic_profile: traffic.Profile | None = None  # the traffic the monthly costs are for

    @property
    def leader(self) -> str:
        return self.recommendation or "none"

    judge_spend: cost.Spend | None = None  # the judge's own calls, at its API price
    judge_spend_note: str = ""  # what the judge's calls cost, or why it is not counted

    @property
    def run_spend_usd(self) -> float | None:
        """What the run cost on the targets with a price, and the judge's calls."""
        spent = [t.run_spend.usd for t in self.targets if t.run_spend is not None]
        if self.judge_spend is not None:
            spent.append(self.judge_spend.usd)
        return sum(spent) if spent else None


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
    return [(r["left"], r["right"], CHOICE_VALUE[r["choice"]]) for r in ratings
            if not r.get("is_control")]


def criterion_pairs(ratings: list[dict]) -> dict[str, list[tuple[str, str, float]]]:
    """Per criterion the raters answered, its (left, right, outcome for left) pairs."""
    out: dict[str, list[tuple[str, str, float]]] = {}
    for r in ratings:
        if r.get("is_control"):
            continue
        for criterion, choice in sorted((r.get("criteria") or {}).items()):
            if choice in CHOICE_VALUE:
                out.setdefault(criterion, []).append((r["left"], r["right"], CHOICE_VALUE[choice]))
    return out


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


def judge_spend(spec: dict, targets: list[dict], judgments: list[dict], scores: list[dict]
                ) -> tuple[cost.Spend | None, str]:
    """What the judge's own calls cost: its reported tokens at its API price; a target serving
    as the judge is already counted as that target (its tokens or its instance time)."""
    judge = (spec.get("scorers") or {}).get("judge") or {}
    if not judge:
        return None, ""
    rows = [j for j in judgments] + [
        {"prompt_tokens": (s.get("raw") or {}).get("prompt_tokens"),
         "completion_tokens": (s.get("raw") or {}).get("completion_tokens")}
        for s in scores if s["scorer"] == JUDGE_GRADE and isinstance(s.get("raw"), dict)]
    if not rows:
        return None, ""
    if judge.get("target"):
        t = next((t for t in targets if t["name"] == judge["target"]), None)
        if t is None or t["kind"] != "external":
            return None, (f"the judge is target {judge['target']}, whose instance time is "
                          "counted above")
        price = pricing.token_price(t["model"], (t.get("details") or {}).get("pricing"))
        model = t["model"]
    else:
        external = judge.get("external") or {}
        model = external.get("model", "")
        price = pricing.token_price(model, external.get("pricing"))
    if price is None:
        return None, (f"the judge's calls: no price for {model} (set its pricing) — not counted")
    reported = sum(r.get("completion_tokens") is not None for r in rows)
    spend = cost.api_spend(price, rows)
    assert spend is not None
    note = f"the judge ({model}, {len(rows)} calls" + (
        f", {len(rows) - reported} without reported tokens" if reported < len(rows) else "") + ")"
    return spend, note


def run_spend(t: dict, rows: list[dict], rep: TargetReport,
              finished: datetime | None) -> cost.Spend | None:
    """What the run itself cost on target `t` (slam.cost: tokens × price, or instance-hours ×
    price from the scale-up or the first request to the run's end)."""
    if t["kind"] == "external":
        details = t.get("details") or {}
        return cost.api_spend(pricing.token_price(t["model"], details.get("pricing")), rows)
    if rep.cost is None or not rows:
        return None
    begins = [timeline.aware(r["started_at"]) for r in rows if r.get("started_at")]
    ends = [timeline.aware(r["started_at"]) + timedelta(milliseconds=r.get("e2e_ms") or 0)
            for r in rows if r.get("started_at")]
    cs = rep.cold_start
    if cs is not None and cs.requested_at is not None:
        start, since = cs.requested_at, "from the scale-up"
    else:
        start, since = (min(begins) if begins else None), "from the run's first request"
    end = timeline.aware(finished) if finished else (max(ends) if ends else None)
    return cost.instance_spend(rep.cost.hourly_usd, rep.cost.replicas, start, end, since)


@dataclass(frozen=True)
class RunData:
    """Everything the report is computed from, as read from the store (plain rows)."""

    run: Any  # slam.store.Run: evaluation, run_id, reference, spec
    targets: list[dict]
    responses: list[dict]
    scores: list[dict]
    judgments: list[dict]
    ratings: list[dict]
    states: list[dict] = field(default_factory=list)  # target_states (cluster runs)
    capacity: list[dict] = field(default_factory=list)  # capacity_probes (with an SLO)


def load(store: Store, run_pk: int) -> RunData:
    """Read one run's rows from the store."""
    return RunData(store.run(run_pk), store.targets(run_pk), store.responses(run_pk),
                   store.scores(run_pk), store.judgments(run_pk), store.ratings(run_pk),
                   store.target_states(run_pk), store.capacity_probes(run_pk))


def build(store: Store, run_pk: int, *, seed: int = 0, pricing_client: Any = None
          ) -> EvaluationReport:
    """The report for a run in the store (load, then compute)."""
    return compute(load(store, run_pk), seed=seed, pricing_client=pricing_client)


def compute(data: RunData, *, seed: int = 0, pricing_client: Any = None) -> EvaluationReport:
    """The report, as a pure function of the run's rows (bootstraps seeded by `seed`;
    `pricing_client`: a boto3 Pricing client for instance prices, else the offline table)."""
    from slam import metrics

    run = data.run
    spec = run.spec or {}
    cost_spec = spec.get("cost") or {}
    hpm = float(cost_spec.get("hoursPerMonth", 730.0))
    profile = (traffic.resolve(cost_spec.get("trafficProfile"))
               or traffic.flat(int(cost_spec.get("requestsPerDay", 10000))))
    rpd = round(profile.per_day)
    slo = goodput.Slo.from_spec(cost_spec.get("slo"))
    search = goodput.Search.from_spec(cost_spec.get("capacitySearch"))
    probes: dict[str, list[goodput.Probe]] = {}
    for row in data.capacity:
        probes.setdefault(row["target"], []).append(goodput.Probe.from_row(row))
    targets = sorted(data.targets, key=lambda t: (not t["is_reference"], t["name"]))
    names = [t["name"] for t in targets]
    rng = np.random.default_rng(seed)
    by_target: dict[str, list[dict]] = {n: [] for n in names}
    for r in data.responses:
        by_target.setdefault(r["target"], []).append(r)
    sims: dict[str, list[float]] = {}
    grades: dict[str, list[float]] = {}
    sim_by_key: dict[tuple[str, str, int], float] = {}
    for s in data.scores:
        if s["score"] is None:
            continue
        if s["scorer"] == SIMILARITY:
            sim_by_key[(s["target"], s["prompt_id"], s["sample"])] = s["score"]
        bucket = sims if s["scorer"] == SIMILARITY else grades if s["scorer"] == JUDGE_GRADE \
            else None
        if bucket is not None:
            bucket.setdefault(s["target"], []).append(s["score"])
    judgments = data.judgments
    outcomes = judge_outcomes(judgments, run.reference)
    judge_elo = _elo([(c, run.reference, o) for c, os in outcomes.items() for o, _ in os],
                     names, rng)
    hpairs = human_pairs(data.ratings)
    human_elo = _elo(hpairs, names, rng)
    by_criterion = {c: _elo(pairs, names, rng)
                    for c, pairs in criterion_pairs(data.ratings).items()}

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
            rep.judge_win_rate_lc = length_controlled(data, name)
        mine = [o if a == name else 1.0 - o for a, b, o in hpairs
                if {a, b} == {name, run.reference} and name != run.reference]
        if mine:
            rep.human_win_rate = stats.win_rate(mine)
        if rep.kind == "self-hosted":
            rep.cold_start = coldstart.cold_start((t.get("details") or {}).get("startup"),
                                                  coldstart.first_token_at(ok))
        rep.cost = target_cost(t, m, pricing_client)
        rep.run_spend = run_spend(t, rows, rep, getattr(run, "finished_at", None))
        if rep.kind == "self-hosted" and slo is not None:
            replicas = int((t.get("details") or {}).get("replicas") or 1)
            if probes.get(name):
                rep.capacity = goodput.outcome(probes[name], slo, search, replicas)
            rep.cost = cost_at_slo(rep.cost, rep.capacity, slo)
            if rep.capacity and rep.cost.per_1k_usd is not None:
                rep.sizing = cost.size(
                    profile.hourly, rep.capacity.goodput_per_replica, rep.cost.hourly_usd or 0,
                    hpm, rep.cold_start.total_s if rep.cold_start else None)
        rep.monthly_usd = (rep.sizing.always_on_monthly_usd if rep.sizing
                           else rep.cost.monthly_usd(rpd, hpm))
        reports.append(rep)
    ref = next((r for r in reports if r.is_reference), None)
    for rep in reports:
        if not (ref and rep is not ref and rep.cost and ref.cost):
            continue
        if rep.sizing and ref.cost.kind == "api" and ref.cost.per_request_usd:
            rep.break_even_requests_per_day = cost.break_even_scale(
                profile.hourly, rep.sizing.per_replica_rps, rep.sizing.hourly_usd,
                ref.cost.per_request_usd, hpm)
        elif not (slo and rep.kind == "self-hosted"):
            rep.break_even_requests_per_day = cost.break_even_requests_per_day(
                rep.cost, ref.cost, hpm)
    dspec = DecisionSpec.model_validate(spec.get("decision") or {})
    candidates = [n for n in names if n != run.reference]
    # A value the decision cannot use (NaN, infinite, out of range) leaves that candidate
    # undecided with the value named, and the rest of the report stands.
    available, refused = {}, {}
    for c in candidates:
        try:
            available |= evidence_data(data, [c], sim_by_key)
        except decision.DecisionInputError as e:
            available[c], refused[c] = dict.fromkeys(decision.EVIDENCE), str(e)
    notes = judge_notes(data, dspec)
    if notes and notes[-1].startswith(UNTRUSTED):
        for c in candidates:
            available[c][decision.JUDGE] = None
    notes += timeline.notes(data.responses, data.states, getattr(run, "finished_at", None))
    chosen = {c: decision.choose(available[c], dspec.evidence) for c in candidates}
    # Human ratings keep coming and owners keep looking: those decisions are sequential
    # (anytime-valid). Alpha is split by Bonferroni between the sequential candidates (alpha/m
    # each) and the fixed-sample ones (Holm among them at their share).
    m = len(candidates)
    seq = [c for c in candidates if dspec.sequential and chosen[c] == decision.HUMAN]
    fixed = [c for c in candidates if c not in seq]
    decided = decision.decide(
        {c: decision.Evidence(chosen[c], available[c].get(chosen[c]), margin(dspec, chosen[c]))
         for c in fixed}, alpha=dspec.alpha * len(fixed) / m if m else dspec.alpha,
        power=dspec.power)
    sequences = {}
    raters = ((spec.get("humanRating") or {}).get("raters")) or []
    for c in seq:
        if raters:
            got = assigned_ratings(data, c, raters)
            values, basis = got.values, "assigned ratings"
            waiting = None if got.waiting_for is None else (
                f"the next count waits for {got.waiting_for[0]}'s rating of prompt "
                f"{got.waiting_for[1]}" + (f" ({got.behind} more are rated and wait behind it)"
                                           if got.behind else ""))
        else:
            values, basis, waiting = first_ratings(data, c), "first ratings", None
        decided[c], sequences[c] = decision.sequential_decision(
            c, values, available[c][decision.HUMAN], margin(dspec, decision.HUMAN),
            alpha=dspec.alpha / m, power=dspec.power, basis=basis, waiting=waiting,
            prompts=len(rateable(data, c)),
            instead=[k for k in (decision.SIMILARITY, decision.JUDGE, decision.GRADE)
                     if available[c].get(k) is not None])
    if seq and not raters and len({r["rater"] for r in data.ratings
                                    if not r.get("is_control")}) > 1:
        notes.append("The sequential human decision counts the first rating of each prompt, "
                     "whoever gives it: a rater who is both faster and more lenient than the "
                     "others can steer it. List the raters in spec.humanRating.raters to count "
                     "each prompt's rating by a rater assigned in advance.")
    for c, problem in refused.items():
        decided[c] = decision.refused(c, chosen[c], margin(dspec, chosen[c]), problem)
        notes.append(f"{c}: not decided: {problem}")
    others: dict[str, list[decision.Decision]] = {c: [] for c in candidates}
    for kind in decision.EVIDENCE:
        items = {c: decision.Evidence(kind, available[c][kind], margin(dspec, kind))
                 for c in candidates if c not in refused and chosen[c] != kind
                 and available[c].get(kind) is not None}
        if items:
            for c, d in decision.decide(items, alpha=dspec.alpha, power=dspec.power).items():
                others[c].append(d)
    for rep in reports:
        rep.decision = decided.get(rep.target)
        rep.sequence = sequences.get(rep.target)
        rep.other_decisions = others.get(rep.target, [])
    kinds = sorted({decision.LABELS[chosen[c]] for c in fixed})
    parts = []
    if fixed:
        parts.append(METHOD.format(evidence=" / ".join(kinds), m=len(fixed),
                                   alpha=dspec.alpha * len(fixed) / m, min=decision.MIN_PROMPTS))
    if seq:
        parts.append(SEQUENTIAL.format(m=len(seq), alpha=dspec.alpha / m,
                                       basis=BASIS_ASSIGNED if raters else BASIS_FIRST))
    method = "; ".join(parts) or "no candidates"
    target, reason = recommend(reports, run.reference, method)
    spent_on_judge, judge_note = judge_spend(spec, data.targets, judgments, data.scores)
    basis = rank(reports)
    return EvaluationReport(
        run.evaluation, run.run_id, run.reference, reports, target, reason, rpd, hpm,
        judge_unparseable=sum(j["parse_status"] == "unparseable" for j in judgments),
        judge_errors=sum(j["parse_status"] == "error" for j in judgments),
        rank_basis=basis, method=method, notes=notes, criteria=by_criterion,
        plan=plan(dspec, len(candidates), len({r["prompt_id"] for r in data.responses})),
        slo=slo, search=search if slo else None, traffic_profile=profile,
        judge_spend=spent_on_judge, judge_spend_note=judge_note,
    )


def cost_at_slo(estimate: cost.CostEstimate, capacity: goodput.Capacity | None,
                slo: goodput.Slo) -> cost.CostEstimate:
    """A self-hosted target's cost at the SLO: its hourly price over the goodput of the highest
    load meeting the SLO (slam.goodput), instead of the throughput the run happened to see."""
    if estimate.hourly_usd is None:
        return estimate  # no price: the reason stands
    if capacity is None:
        return dataclasses.replace(
            estimate, per_1k_usd=None, capacity_rps=None,
            source="capacity at the SLO not measured yet (searched after generation)")
    if capacity.best is None:
        return dataclasses.replace(
            estimate, per_1k_usd=None, capacity_rps=None,
            source=f"does not meet the SLO ({slo.describe()}) at any concurrency searched"
                   + ("" if capacity.finished else " so far"))
    best = capacity.best
    est = cost.self_hosted_cost(estimate.target, pricing.HourlyPrice(estimate.hourly_usd, ""),
                                capacity.replicas, capacity.goodput_rps, None)
    per_replica = capacity.goodput_per_replica
    return dataclasses.replace(est, source=(
        f"at the SLO: goodput {per_replica:.3g} requests/s per replica at concurrency "
        f"{best.concurrency}" + ("" if capacity.finished else " (search unfinished)")
        + f"; {estimate.source}"))


def margin(dspec: DecisionSpec, kind: str) -> decision.Margin:
    m = dspec.margin(kind)
    return decision.Margin(m.at_least, m.assumed, m.sd)


def plan(dspec: DecisionSpec, candidates: int, prompts: int) -> list[decision.PlanRow]:
    """Prompts each kind of evidence needs at the spec's margins, and what `prompts` give."""
    return decision.plan({k: margin(dspec, k) for k in decision.EVIDENCE},
                         candidates=candidates, prompts=prompts, alpha=dspec.alpha,
                         power=dspec.power)


def plan_for_spec(spec: Any, prompts: int) -> list[decision.PlanRow]:
    """The plan for an Evaluation's spec (an EvaluationSpec) on a prompt set of `prompts`."""
    return plan(spec.decision or DecisionSpec(), len(spec.targets) - 1, prompts)


def gate(rep: EvaluationReport, candidate: str, max_failure_rate: float | None = None
         ) -> str | None:
    """The reason a CI gate fails (None: it passes): the candidate is not non-inferior, or a
    target failed more requests than `max_failure_rate` allows. Raises KeyError, naming the
    candidates, for a name that is not one."""
    found = next((t for t in rep.targets if t.target == candidate and not t.is_reference), None)
    if found is None:
        names = ", ".join(t.target for t in rep.targets if not t.is_reference) or "none"
        raise KeyError(f"{candidate} is not a candidate of {rep.evaluation} (candidates: "
                       f"{names})")
    if max_failure_rate is not None:
        for t in rep.targets:
            if t.requests and 1 - t.success_rate > max_failure_rate:
                return (f"gate failed: {t.target} failed {t.requests - t.succeeded} of "
                        f"{t.requests} requests ({1 - t.success_rate:.1%} > "
                        f"{max_failure_rate:.1%})")
    d = found.decision
    if d is None or d.verdict != decision.NON_INFERIOR:
        return f"gate failed: {candidate} is {d.why if d else 'not decided: no data'}"
    return None


UNTRUSTED = "judge not used for decisions"


def judge_notes(data: RunData, dspec: DecisionSpec) -> list[str]:
    """Warnings about the judge: whether it may favour a target (its own answers or its
    family's), and, last, whether it agrees too little with the raters to be used."""
    judge = ((data.run.spec or {}).get("scorers") or {}).get("judge")
    if not judge:
        return []
    notes = []
    models = {t["name"]: (t.get("details") or {}).get("model") or t.get("model")
              for t in data.targets}
    found = judgebias.self_judging(judge.get("target"), (judge.get("external") or {}).get(
        "model"), data.run.reference, models)
    if found:
        notes.append(f"Judge bias ({found[0]}): {found[1]}.")
    if data.judgments and data.ratings:
        a = agreement(data)
        if a.kappa is not None and a.compared >= decision.MIN_PROMPTS \
                and a.kappa < dspec.judge_min_kappa:
            notes.append(f"{UNTRUSTED}: its agreement with the raters is kappa {a.kappa:.2f} "
                         f"over {a.compared} ratings, below spec.decision.judgeMinKappa "
                         f"{dspec.judge_min_kappa:g}; its verdicts are reported, not used.")
    return notes


def length_controlled(data: RunData, candidate: str) -> float | None:
    """The judge's win rate for `candidate` at equal answer length (judgebias)."""
    ref = data.run.reference
    length = {(r["target"], r["prompt_id"], r["sample"]): len(r.get("text") or "")
              for r in data.responses if r["error_class"] is None}
    rows = [(o, length[(c, p, smp)], length[(ref, p, smp)])
            for (c, p, smp), (o, _) in judge_outcomes_by_item(data.judgments, ref).items()
            if c == candidate and (c, p, smp) in length and (ref, p, smp) in length]
    if not rows:
        return None
    return judgebias.length_controlled_win_rate(*zip(*rows, strict=True))


def first_ratings(data: RunData, candidate: str) -> list[float]:
    """The candidate's outcome (1 win, 0.5 tie, 0 loss) in the first rating of each prompt
    against the reference, in the order the ratings arrived (what the sequential test needs:
    one observation per prompt, so each has the same expected value)."""
    ref, seen, out = data.run.reference, set(), []
    for r in data.ratings:
        if r.get("is_control") or {r["left"], r["right"]} != {candidate, ref} \
                or r["prompt_id"] in seen:
            continue
        seen.add(r["prompt_id"])
        out.append(outcome_for(r, candidate))
    return out


def outcome_for(r: dict, candidate: str) -> float:
    """A rating's outcome for `candidate` (1 win, 0.5 tie or both bad, 0 loss), through the
    side randomisation."""
    left = CHOICE_VALUE[r["choice"]]
    return left if r["left"] == candidate else 1.0 - left


def rateable(data: RunData, candidate: str) -> list[str]:
    """Prompts the candidate and the reference both answered (what raters can be shown)."""
    answered: dict[str, set[str]] = {}
    for r in data.responses:
        if r["error_class"] is None and (r.get("text") or "").strip():
            answered.setdefault(r["prompt_id"], set()).add(r["target"])
    return [p for p, t in answered.items() if {candidate, data.run.reference} <= t]


def assigned_ratings(data: RunData, candidate: str, raters: Sequence[str]) -> roster.Counted:
    """The candidate's outcomes in the ratings of the raters assigned in advance to each prompt
    (slam.roster), in the run's fixed counting order: what the sequential test needs when the
    spec lists the raters."""
    return roster.counted(data.ratings, candidate, data.run.reference, raters,
                          roster.run_key(data.run), rateable(data, candidate),
                          lambda r: outcome_for(r, candidate))


def evidence_data(data: RunData, candidates: list[str],
                  sim_by_key: dict[tuple[str, str, int], float]
                  ) -> dict[str, dict[str, decision.Clustered | None]]:
    """Per candidate and kind of evidence, its observations against the reference as a mean
    clustered by prompt: human choices and judge verdicts (1 win, 0.5 tie, 0 loss), and paired
    (same prompt and sample) differences of similarity and judge grade."""
    ref = data.run.reference
    grade_by_key = {(s["target"], s["prompt_id"], s["sample"]): s["score"] for s in data.scores
                    if s["scorer"] == JUDGE_GRADE and s["score"] is not None}
    judged = judge_outcomes_by_item(data.judgments, ref)
    out: dict[str, dict[str, decision.Clustered | None]] = {}
    for c in candidates:
        human = [(r["prompt_id"], outcome_for(r, c)) for r in data.ratings
                 if not r.get("is_control") and {r["left"], r["right"]} == {c, ref}]
        judge = [(p, o, ok) for (cand, p, _), (o, ok) in judged.items() if cand == c]
        if judge and sum(ok for _, _, ok in judge) < JUDGE_MIN_CONSISTENCY * len(judge):
            judge = []  # a judge swayed by the answers' order more often than not: no evidence

        def paired(by_key: dict[tuple[str, str, int], float], c: str = c
                   ) -> list[tuple[str, float]]:
            return [(p, v - by_key[(ref, p, smp)]) for (tg, p, smp), v in by_key.items()
                    if tg == c and (ref, p, smp) in by_key]

        out[c] = {kind: decision.clustered_mean([v for _, v in rows], [p for p, _ in rows],
                                                kind=kind, candidate=c)
                  for kind, rows in ((decision.HUMAN, human),
                                     (decision.JUDGE, [(p, o) for p, o, _ in judge]),
                                     (decision.SIMILARITY, paired(sim_by_key)),
                                     (decision.GRADE, paired(grade_by_key)))}
    return out


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


def recommend(reports: list[TargetReport], reference: str, method: str = ""
              ) -> tuple[str | None, str]:
    """The cheapest non-inferior candidate cheaper than the reference, or None with the reason."""
    ref = next((r for r in reports if r.target == reference), None)
    if ref is None:
        return None, f"the reference {reference} has no results"
    eligible: list[TargetReport] = []
    notes: list[str] = []
    for r in reports:
        if r is ref or r.decision is None:
            continue
        notes.append(f"{r.target}: {r.decision.why}")
        if r.decision.verdict != decision.NON_INFERIOR:
            continue
        if r.cost is None or r.cost.per_1k_usd is None:
            notes.append(f"{r.target}: cost unknown ({r.cost.source if r.cost else 'no data'})")
            continue
        eligible.append(r)
    detail = "; ".join(notes) or "no candidates"
    tail = f". Method: {method}" if method else ""
    ref_cost = ref.cost.per_1k_usd if ref.cost else None
    cheaper = [r for r in eligible if ref_cost is None or r.cost.per_1k_usd < ref_cost]
    if not cheaper:
        why = "no candidate is both non-inferior and cheaper"
        open_ = [r for r in reports if r.decision and r.decision.verdict == decision.UNDECIDED]
        if ref_cost is None or open_:
            return None, f"none yet: {why} ({detail}){tail}"
        return reference, (f"keep {reference} ({_money(ref_cost)}/1k requests): {why} "
                           f"({detail}){tail}")
    best = min(cheaper, key=lambda r: r.cost.per_1k_usd)
    return best.target, (f"{best.target}: the cheapest non-inferior candidate "
                         f"({_money(best.cost.per_1k_usd)} vs {_money(ref_cost)} per 1k requests "
                         f"for {reference}). {detail}{tail}")


# --- views the dashboard draws (pure; the dashboard only queries and caches) ---------------------


def winner(rating: dict) -> str | None:
    """The target a rater preferred, through the side randomisation (None: tie or both bad)."""
    return {"left": rating["left"], "right": rating["right"]}.get(rating["choice"])


def judge_vs_human(ratings: list[dict], judgments: list[dict], reference: str
                   ) -> tuple[list[str], list[str]]:
    """Aligned labels ("candidate", "reference" or "tie") of the judge and of the human raters,
    one pair per non-control rating of a candidate against the reference that the judge also
    decided (both orders parsed)."""
    outcomes = {key: outcome for key, (outcome, _) in
                judge_outcomes_by_item(judgments, reference).items()}
    label = {1.0: "candidate", 0.0: "reference", 0.5: "tie"}
    judge, human = [], []
    for r in ratings:
        if r.get("is_control") or reference not in (r["left"], r["right"]):
            continue
        cand = r["right"] if r["left"] == reference else r["left"]
        key = (cand, r["prompt_id"], r["sample"])
        if key not in outcomes:
            continue
        win = winner(r)
        human.append("tie" if win is None else "candidate" if win == cand else "reference")
        judge.append(label[outcomes[key]])
    return judge, human


@dataclass(frozen=True)
class Agreement:
    kappa: float | None  # Cohen's kappa, judge vs humans
    agreement: float | None  # share of exact agreement, judge vs humans
    compared: int  # ratings the judge also decided
    alpha: float | None  # Krippendorff's alpha between raters (nominal)
    multiply_rated: int  # items rated by two or more raters


def agreement(data: RunData) -> Agreement:
    """Automated vs human (the judge's verdicts against the raters') and between raters."""
    ratings = [r for r in data.ratings if not r.get("is_control")]
    judge, human = judge_vs_human(ratings, data.judgments, data.run.reference)
    kappa, agree = stats.cohen_kappa(judge, human)
    units: dict[tuple, list[str]] = {}
    for r in ratings:
        key = (r["prompt_id"], r["sample"], *sorted((r["left"], r["right"])))
        units.setdefault(key, []).append(winner(r) or "tie")
    alpha = stats.krippendorff_alpha_nominal(list(units.values()))
    return Agreement(kappa, agree, len(judge), alpha,
                     sum(1 for u in units.values() if len(u) >= 2))
