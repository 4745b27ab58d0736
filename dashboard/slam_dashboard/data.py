"""Everything the pages read or write, in one place: the store connection (st.cache_resource),
cached queries (st.cache_data) and the rating submission. Pages hold no SQL and no maths."""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from slam import charts, coldstart, decision, stats, summary
from slam.store import Store, default_url
from slam_dashboard import rating


def store_url() -> str:
    return os.environ.get("SLAM_STORE_URL") or default_url()


@st.cache_resource(show_spinner=False)
def store(url: str) -> Store:
    return Store.open(url)


@dataclass(frozen=True)
class RunChoice:
    run_pk: int
    label: str  # "<evaluation> (run <id>)", what raters pick from
    run_key: str  # stable id for seeding and submission keys
    criteria: tuple[str, ...]
    require_reason: bool
    control_pairs: int
    open_for_rating: bool = True  # spec.humanRating.enabled (default true)
    evaluation: str = ""
    run_id: str = ""


@st.cache_data(ttl=10, show_spinner=False)
def runs(url: str) -> list[RunChoice]:
    """Every run in the store: the owner pages show them all."""
    out = []
    for r in store(url).runs():
        hr = (r.spec or {}).get("humanRating") or {}
        label = f"{r.evaluation} (run {r.run_id})" + (f" in {r.namespace}" if r.namespace else "")
        out.append(RunChoice(r.id, label, f"{r.namespace}/{r.evaluation}/{r.run_id}",
                             tuple(hr.get("criteria") or ()), bool(hr.get("requireReason")),
                             int(hr.get("controlPairs", 2)), hr.get("enabled", True) is not False,
                             r.evaluation, r.run_id))
    return out


def runs_open_for_rating(url: str) -> list[RunChoice]:
    """The runs raters may rate (spec.humanRating.enabled is not false)."""
    return [r for r in runs(url) if r.open_for_rating]


@st.cache_data(ttl=30, show_spinner=False)
def _responses(url: str, run_pk: int) -> list[dict]:
    return store(url).responses(run_pk)


@st.cache_data(ttl=30, show_spinner=False)
def _prompts(url: str, run_pk: int) -> dict[str, list[dict]]:
    return {p["prompt_id"]: p["messages"] for p in store(url).prompts(run_pk)}


@st.cache_data(ttl=10, show_spinner=False)
def _serving(url: str, run_pk: int) -> dict:
    """What the rating queue depends on: every item, the reference, the candidates whose human
    decision is reached or cannot be changed by more ratings (no longer served against the
    reference). Cached briefly: the page
    asks for it on every choice, and building the summary is the costly part."""
    rep = summary.build(store(url), run_pk)
    # Reached, or out of reach on this prompt set (every prompt's counted rating is in):
    # either way no further rating against the reference can change it.
    decided = frozenset(t.target for t in rep.targets if t.decision is not None
                        and t.decision.evidence == decision.HUMAN
                        and (t.decision.verdict != decision.UNDECIDED or t.decision.exhausted))
    hr = (store(url).run(run_pk).spec or {}).get("humanRating") or {}
    return {"all_items": rating.items(_responses(url, run_pk)), "reference": rep.reference,
            "decided": decided, "roster": tuple(hr.get("raters") or ())}


def rater_session(url: str, run: RunChoice, rater: str, size: int = 20
                  ) -> list[rating.Assignment]:
    """A new batch for the rater, from the ratings stored now."""
    return rating.session(rater, run.run_key, ratings=store(url).ratings(run.run_pk), size=size,
                          control_pairs=run.control_pairs, **_serving(url, run.run_pk))


@dataclass
class Batch:
    """Where a rater is: batch `number`, its pairs, the next one to show (`index`) and how
    many of them are rated."""

    number: int
    assignments: list[rating.Assignment]
    index: int
    saved: int


def _at(url: str, run: RunChoice, rater: str, number: int,
        assignments: list[rating.Assignment]) -> Batch:
    stored = {r["submission"] for r in store(url).ratings(run.run_pk) if r["rater"] == rater}
    rated = [rating.submission_key(rater, run.run_key, a) in stored for a in assignments]
    # Where it goes on: its first pair with no rating (len: every one is rated).
    return Batch(number, assignments, rated.index(False) if False in rated else len(rated),
                 sum(rated))


def current_batch(url: str, run: RunChoice, rater: str) -> Batch:
    """The rater's batch as it stands in the store (a refresh, another tab, another replica of
    the dashboard: the same pairs, at the first one not rated yet), or a first one."""
    found = store(url).rating_batch(run.run_pk, rater)
    if found is None:
        return next_batch(url, run, rater, 1)
    number, rows = found
    return _at(url, run, rater, number, rating.from_rows(rows))


def next_batch(url: str, run: RunChoice, rater: str, number: int) -> Batch:
    """Batch `number`, made now and stored; when another tab stored it first, that one."""
    made = rater_session(url, run, rater)
    if made and not store(url).save_rating_batch(run.run_pk, rater, number,
                                                 rating.to_rows(made)):
        return current_batch(url, run, rater)
    return Batch(number, made, 0, 0)  # an empty one (nothing left to rate) is not stored


@dataclass(frozen=True)
class Progress:
    """How far a rater and the whole evaluation have come (main pairs; control pairs aside)."""

    mine: int
    everyone: int
    raters: int
    left_for_me: int  # pairs this rater could still be served (0: nothing more is needed)


def rating_progress(url: str, run: RunChoice, rater: str) -> Progress:
    everything = store(url).ratings(run.run_pk)
    ratings = [r for r in everything if not r.get("is_control")]
    left = rating.open_items(rater, run.run_key, ratings=everything, **_serving(url, run.run_pk))
    return Progress(mine=sum(r["rater"] == rater for r in ratings), everyone=len(ratings),
                    raters=len({r["rater"] for r in ratings}), left_for_me=len(left))


@dataclass(frozen=True)
class Screen:
    """What the rating page shows for one assignment: texts only, no target names."""

    position: int
    total: int
    question: str
    answer_a: str
    answer_b: str


def screen(url: str, run: RunChoice, assignments: list[rating.Assignment], index: int
           ) -> Screen:
    a = assignments[index]
    texts = {(r["target"], r["prompt_id"], r["sample"]): r["text"]
             for r in _responses(url, run.run_pk)}
    messages = _prompts(url, run.run_pk)[a.item.prompt_id]
    question = "\n\n".join(m["content"] for m in messages if m["role"] == "user")
    return Screen(a.position, len(assignments), question,
                  texts[(a.left, a.item.prompt_id, a.item.sample)],
                  texts[(a.right, a.item.prompt_id, a.item.sample)])


@dataclass(frozen=True)
class Submitted:
    saved: bool  # False: this rater had already rated this pair (a double click, another tab)
    kept: str | None = None  # the label stored first, when it differs from this submission's


def submit(url: str, run: RunChoice, rater: str, a: rating.Assignment, choice: str,
           criteria: dict[str, str] | None = None, reason: str | None = None) -> Submitted:
    """Store a rating. A pair counts once per rater: the first submission stands, and a later
    one that chose a different answer (compared through the side randomisation: another tab
    may show the pair the other way round) is reported (`kept`, in this tab's letters), never
    dropped silently."""
    row = rating.rating_row(rater, run.run_pk, run.run_key, a, choice, criteria, reason)
    s = store(url)
    if s.save_rating(row):
        return Submitted(True)
    first = s.rating(row["submission"]) or row
    return Submitted(False, None if rating.outcome(first) == rating.outcome(row) else
                     rating.as_shown(first, a))


def shown_sides(url: str, run: RunChoice, rater: str, a: rating.Assignment
                ) -> rating.Assignment:
    """The assignment as it is to be shown: a control pair with its sides swapped from the
    main rating the rater gave, wherever they gave it."""
    if not a.is_control:
        return a
    return rating.control_sides(a, store(url).rating(rating.main_key(rater, run.run_key, a)))


@st.cache_data(ttl=10, show_spinner=False)
def leaderboard(url: str, run_pk: int) -> dict:
    """The decision at a glance: `table` (one row per target, rank first, win rates in
    percent), `basis` (what ranks it), `recommended` and `reason`, `verdicts` (per candidate,
    the decision against the reference and its bounds), `plan` (prompts each margin needs),
    `sequences` (sequential human decisions: the anytime-valid bounds after each rating),
    `final` (per candidate undecided for good on this prompt set, why and what would decide),
    `roster` (spec.humanRating.raters),
    `counts` (ratings, raters, prompts) and `forest` (each
    ranking's estimate and 95% interval per target, for the chart)."""
    s = store(url)
    rep = summary.build(s, run_pk)
    ratings = s.ratings(run_pk)
    consistency = rating.consistency(ratings)

    def ci(iv, digits=0):
        return None if iv is None else f"{iv.estimate:.{digits}f} [{iv.low:.{digits}f}, " \
                                       f"{iv.high:.{digits}f}]"

    def pct(x):
        return None if x is None else 100.0 * x
    rows = [{
        "rank": t.rank, "target": t.target + (" (reference)" if t.is_reference else ""),
        "human Elo [95% CI]": ci(t.human_elo), "human win rate": pct(t.human_win_rate),
        "judge Elo [95% CI]": ci(t.judge_elo), "judge win rate": pct(t.judge_win_rate),
        "judge win rate, equal length": pct(t.judge_win_rate_lc),
        "judge consistency": pct(t.judge_consistency),
        "judge 1-10 [95% CI]": ci(t.judge_score, 1),
        "similarity [95% CI]": ci(t.similarity, 2),
        "$/1k requests": t.cost.per_1k_usd if t.cost else None,
    } for t in rep.targets]
    table = pd.DataFrame(rows)
    table = table[["rank", "target", *(c for c in table.columns[2:] if table[c].notna().any())]]
    forest = [{"target": t.target, "measure": name, "estimate": iv.estimate,
               "low": iv.low, "high": iv.high}
              for t in rep.targets
              for name, iv in (("human Elo", t.human_elo), ("judge Elo", t.judge_elo),
                               ("similarity", t.similarity)) if iv is not None]
    rated = [r for r in ratings if not r["is_control"]]
    reason = rep.reason.rstrip()
    if consistency:
        mean, n = sum(consistency.values()) / len(consistency), len(consistency)
        reason = (reason if reason.endswith(".") else reason + ".") + (
            f" Rater consistency on control pairs: {mean:.0%} over {n} "
            f"rater{'s' if n != 1 else ''}.")
    return {
        "table": table, "basis": rep.rank_basis, "recommended": rep.recommendation,
        "reason": reason, "verdicts": pd.DataFrame(charts.verdicts(rep)),
        "roster": list(((s.run(run_pk).spec or {}).get("humanRating") or {})
                       .get("raters") or []),
        "final": {t.target: t.decision.why for t in rep.targets
                  if t.decision is not None and t.decision.exhausted},
        "plan": [row.line() for row in rep.plan], "warnings": rep.notes,
        "criteria": pd.DataFrame(
            [{"target": t.target + (" (reference)" if t.is_reference else ""),
              **{f"{c} Elo [95% CI]": ci(by.get(t.target)) for c, by in
                 sorted(rep.criteria.items())}} for t in rep.targets] if rep.criteria else []),
        "sequences": pd.DataFrame(
            [{"candidate": t.target, "rating": i + 1, "lower": lo, "upper": hi,
              "margin": t.decision.threshold}
             for t in rep.targets if t.sequence is not None
             for i, (lo, hi) in enumerate(zip(t.sequence.lower, t.sequence.upper,
                                               strict=True))],
            columns=["candidate", "rating", "lower", "upper", "margin"]),
        "counts": {"ratings": len(rated), "raters": len({r["rater"] for r in rated}),
                   "prompts rated": len({r["prompt_id"] for r in rated}),
                   "prompts": len(s.prompts(run_pk))},
        "forest": pd.DataFrame(forest, columns=["target", "measure", "estimate", "low", "high"]),
    }


@st.cache_data(ttl=10, show_spinner=False)
def ratings_export(url: str, run_pk: int) -> pd.DataFrame:
    """Every rating with what the rater saw as A and B, the winner and the reason, for the
    owners' export (CSV, JSON) and the reasons table."""
    rows = [{"rater": r["rater"], "prompt": r["prompt_id"], "sample": r["sample"],
             "A": r["left"], "B": r["right"], "choice": rating.LABELS.get(r["choice"]),
             "winner": summary.winner(r), "criteria": r.get("criteria") or {},
             "reason": r.get("reason"), "control pair": bool(r["is_control"]),
             "at": r["created_at"].isoformat() if r.get("created_at") else None}
            for r in store(url).ratings(run_pk)]
    return pd.DataFrame(rows, columns=["rater", "prompt", "sample", "A", "B", "choice",
                                       "winner", "criteria", "reason", "control pair", "at"])


def file_name(run: RunChoice, what: str, ext: str) -> str:
    """Downloads say which evaluation and run they hold: pep-talk-run-1-leaderboard.csv."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{run.evaluation}-run-{run.run_id}")
    return f"{safe}-{what}.{ext}"


# --- stakeholder views -------------------------------------------------------------------------


@st.cache_data(ttl=10, show_spinner=False)
def agreement(url: str, run_pk: int) -> dict:
    """Judge vs humans (Cohen's kappa, % agreement), between raters (Krippendorff's alpha) and
    each rater's consistency on control pairs."""
    run_data = summary.load(store(url), run_pk)
    return {**dataclasses.asdict(summary.agreement(run_data)),
            "rater_consistency": rating.consistency(run_data.ratings)}


@st.cache_data(ttl=10, show_spinner=False)
def latencies(url: str, run_pk: int) -> pd.DataFrame:
    """One row per successful request: target, ttft_ms, e2e_ms."""
    rows = [{"target": r["target"], "ttft_ms": r["ttft_ms"], "e2e_ms": r["e2e_ms"]}
            for r in store(url).responses(run_pk) if r["error_class"] is None]
    return pd.DataFrame(rows, columns=["target", "ttft_ms", "e2e_ms"])


@st.cache_data(ttl=10, show_spinner=False)
def cold_starts(url: str, run_pk: int) -> pd.DataFrame:
    """Per self-hosted target whose server start the operator recorded: each part of its cold
    start in seconds (slam.coldstart, as `slam report` prints it), and the total."""
    s = store(url)
    responses = s.responses(run_pk)
    out = []
    for t in s.targets(run_pk):
        cs = coldstart.cold_start((t.get("details") or {}).get("startup"),
                                  coldstart.first_token_at(
                                      r for r in responses if r["target"] == t["name"]))
        if cs is None:
            continue
        total = ("scale-up → first token" if cs.first_token_s is not None else
                 "scale-up → Ready" if cs.requested else "pod created → Ready")
        out += [{"target": t["name"], "part": what, "seconds": sec} for what, sec in cs.parts]
        out.append({"target": t["name"], "part": f"total: {total}", "seconds": cs.total_s})
    return pd.DataFrame(out, columns=["target", "part", "seconds"])


def latency_percentiles(url: str, run_pk: int, measure: str) -> pd.DataFrame:
    """Per target, the percentiles `slam report` prints for `measure` ("e2e_ms" or "ttft_ms"):
    requests, p50, p95, p99 (milliseconds), from the same successful requests as the plot."""
    rows = []
    for target, group in latencies(url, run_pk).groupby("target", sort=False):
        got = stats.latency_summary(group[measure].dropna().tolist())
        if got is not None:
            rows.append({"target": target, "requests": got.n, "p50 ms": got.p50,
                         "p95 ms": got.p95, "p99 ms": got.p99})
    return pd.DataFrame(rows, columns=["target", "requests", "p50 ms", "p95 ms", "p99 ms"])


@st.cache_data(ttl=10, show_spinner=False)
def probes(url: str, run_pk: int, window: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(samples with rolling p50/p95 bands per target, summary with the coefficient of
    variation). Probed names: a ModelDeployment's name, or evaluation/target for external ones."""
    s = store(url)
    run = s.run(run_pk)
    names = {}
    for t in s.targets(run_pk):
        md = (t.get("details") or {}).get("modelDeployment")
        names[md or f"{run.evaluation}/{t['name']}"] = t["name"]
    series, table = charts.probe_series(s.probe_samples(run.namespace), names, window)
    columns = ["target", "at", "e2e_ms", "ttft_ms", "p50", "p95"]
    return pd.DataFrame(series, columns=columns), pd.DataFrame(table)


# Traffic levels of the cost curves: 100 to a million requests a day, evenly on a log scale.
COST_GRID = [int(x) for x in np.unique(np.geomspace(100, 1_000_000, 60).round())]


@st.cache_data(ttl=10, show_spinner=False)
def costs(url: str, run_pk: int) -> dict:
    """$/1k per target, monthly cost curves over requests/day, break-even, quality vs cost."""
    rep = summary.build(store(url), run_pk)
    monthly = charts.monthly_at(rep, rep.requests_per_day)
    return {"curves": pd.DataFrame(charts.cost_curves(rep, COST_GRID)),
            "points": pd.DataFrame(charts.quality_cost_points(rep)),
            "monthly": pd.DataFrame(monthly),
            "floor": [f for row in monthly
                      if (f := charts.floor_sentence(row, rep.requests_per_day))],
            "requests_per_day": rep.requests_per_day,
            "missing": [f"{t.target}: {t.cost.source}" for t in rep.targets
                        if t.cost and t.cost.per_1k_usd is None],
            "slo": rep.slo.describe() if rep.slo else None,
            "traffic": rep.traffic_profile.source if rep.traffic_profile else None,
            "at_slo": pd.DataFrame(charts.slo_costs(rep)),
            "hours": pd.DataFrame(charts.replicas_by_hour(rep)),
            "spend": pd.DataFrame(charts.spend_rows(rep)),
            "spend_total": rep.run_spend_usd}


@st.cache_data(ttl=30, show_spinner=False)
def prompt_ids(url: str, run_pk: int) -> list[str]:
    return [p["prompt_id"] for p in store(url).prompts(run_pk)]


@st.cache_data(ttl=10, show_spinner=False)
def drilldown(url: str, run_pk: int, prompt_id: str
              ) -> tuple[str, str | None, dict[str, list[dict]]]:
    """The question, the reference target, and per target (reference first) its answers to
    one prompt in sample order, each with its error (None when it succeeded) and scores. Plain
    dicts, not a frame: a column mixing None and text turns None into NaN, and a failure then
    read as an answer."""
    s = store(url)
    messages = _prompts(url, run_pk)[prompt_id]
    question = "\n\n".join(f"[{m['role']}] {m['content']}" for m in messages)
    sims = {sc["response_id"]: sc["score"] for sc in s.scores(run_pk, "similarity")}
    reference = s.run(run_pk).reference
    by_target: dict[str, list[dict]] = {}
    for r in sorted(s.responses(run_pk), key=lambda r: (r["target"] != reference, r["target"],
                                                         r["sample"])):
        if r["prompt_id"] == prompt_id:
            by_target.setdefault(r["target"], []).append({
                "sample": r["sample"], "answer": r["text"], "error": r["error_class"],
                "similarity": sims.get(r["id"]), "e2e_ms": r["e2e_ms"]})
    return question, reference, by_target


@st.cache_data(ttl=30, show_spinner=False)
def responses_csv(url: str, run_pk: int) -> str:
    from slam import report
    return report.to_csv(store(url).responses(run_pk))
