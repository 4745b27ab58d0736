"""The decision on the data teams actually have (issue 33), by simulation and by example.

Simulations (tests/decisionsim.py, seeded): a share of prompts failed outright, answers equal to
the reference's on most prompts, ties from 0 to 100%, 1 to 40 observations per prompt with heavy
skew, 10 to 1,000 prompts, 1 and 4 candidates sharing prompts, win-rate, similarity and grade
evidence, margins other than the defaults. 2,000 experiments per cell here (Monte Carlo sd of a
5% rate: 0.49 points; the bound allows 3 sd), 10,000 in bench/decision.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from slam import decision, summary
from slam.decision import Evidence, Margin
from tests import decisionsim as sim

ALPHA = sim.ALPHA
RUNS = 2000
BOUND = ALPHA + sim.mc_bound(ALPHA, RUNS)


@pytest.mark.parametrize("cell", sim.NULL_CELLS, ids=lambda c: c.name)
def test_on_the_margin_non_inferiority_is_claimed_at_most_alpha(cell: sim.Cell) -> None:
    sizes = (10, 20, 50, 200) + ((1000,) if cell.kind != decision.HUMAN else ())
    rates = {(n, k): sim.run_cell(cell, prompts=n, candidates=k, runs=RUNS if k == 1 else
                                  RUNS // 2, seed=n * 10 + k)
             for n in sizes for k in (1, 4) if not (k == 4 and n > 200)}
    print(cell.name, {f"{n} prompts, {k} cand.": r for (n, k), r in rates.items()})
    for (n, k), rate in rates.items():
        runs = RUNS if k == 1 else RUNS // 2
        assert rate <= ALPHA + sim.mc_bound(ALPHA, runs), (cell.name, n, k, rate)


@pytest.mark.parametrize("name, prompts", [
    ("win rate, ties on 90% of prompts (near-identical), losses on the rest", 10),
    ("win rate, margin 0.48, every prompt a tie or a loss", 20),
    ("similarity, 10% of prompts failed (difference -0.6), the rest near-identical", 10),
    ("similarity, 2% of prompts failed (difference -1.5)", 50),
    ("judge grade, 10% of prompts failed (difference -6)", 20),
])
def test_these_cells_are_where_a_t_test_claims_far_more_than_alpha(name: str,
                                                                    prompts: int) -> None:
    """The cells have teeth: the t test on prompt means (the decision before issue 33) makes
    false claims there, where the betting test does not."""
    cell = next(c for c in sim.NULL_CELLS if c.name == name)
    t_rate = sim.run_cell(cell, prompts=prompts, runs=RUNS, seed=99, t_test=True)
    rate = sim.run_cell(cell, prompts=prompts, runs=RUNS, seed=99)
    print(f"{name}, {prompts} prompts: t test {t_rate:.3f}, betting {rate:.3f}")
    assert t_rate > 2 * ALPHA and rate <= BOUND


@pytest.mark.parametrize("cell, margin", sim.POWER_CELLS, ids=lambda c: getattr(c, "name", ""))
@pytest.mark.parametrize("candidates", [1, 2])
def test_at_the_planned_size_the_power_is_the_planned_power(cell: sim.Cell, margin: Margin,
                                                            candidates: int) -> None:
    """Where the planner's assumptions hold (prompt means with the assumed mean and sd), the
    power at its size is the planned 80% within Monte Carlo error. Two candidates: planned at
    alpha/2 (Holm's first step), power counted for the first candidate alone."""
    need = decision.prompts_needed(margin, cell.kind, alpha=ALPHA / candidates, power=0.8)
    assert need is not None and need >= decision.MIN_PROMPTS
    power = sim.run_cell(cell, prompts=need, runs=RUNS, seed=7, true_mean=margin.assumed,
                         alpha=ALPHA / candidates)
    print(f"{cell.name}, {candidates} candidate(s): {need} prompts, power {power:.3f}")
    assert abs(power - 0.8) <= sim.mc_bound(0.8, RUNS) + 0.01


def test_the_simulation_decides_as_decide_does() -> None:
    """The vectorized simulation is the decision itself: the same verdicts on the same data."""
    rng = np.random.default_rng(11)
    cell = sim.NULL_CELLS[4]
    p = cell.means(rng, 30, 60, 3, 0.5)
    means = sim.prompt_means(rng, cell, p)
    fast = sim.claims(means, decision.HUMAN, 0.45, ALPHA)
    for r in range(30):
        items = {f"c{k}": Evidence(decision.HUMAN, decision.clustered_mean(
            means[r, k], range(60), kind=decision.HUMAN), Margin(0.45, 0.5, 0.5))
            for k in range(3)}
        out = decision.decide(items, alpha=ALPHA, power=0.8)
        assert [out[f"c{k}"].verdict == "non-inferior" for k in range(3)] == list(fast[r])


# --- each defect of issue 33, by example -------------------------------------------------------

def test_a_zero_spread_is_never_evidence_by_itself() -> None:
    margin = Margin(0.48, 0.5, 0.5)
    ties = decision.clustered_mean([0.5] * 10, range(10))  # every prompt a tie
    cancel = decision.clustered_mean([1.0, 0.0] * 12, [i // 2 for i in range(24)])
    sim0 = decision.clustered_mean([0.0] * 10, range(10), kind=decision.SIMILARITY)
    out = decision.decide({"ties": Evidence(decision.HUMAN, ties, margin),
                           "cancel": Evidence(decision.HUMAN, cancel, margin),
                           "same": Evidence(decision.SIMILARITY, sim0, Margin(-0.03, 0, 0.1))},
                          alpha=ALPHA, power=0.8)
    for name, d in out.items():
        assert d.verdict == "undecided", (name, d.why)
        assert d.lower < d.threshold < d.upper


def test_nan_infinite_and_out_of_range_values_are_refused_naming_target_prompt_and_field(
        ) -> None:
    with pytest.raises(decision.DecisionInputError,
                       match=r"^gemma: prompt 'p2': similarity difference \(similarity\) is "
                             r"not a number"):
        decision.clustered_mean([0.1, 0.0, math.nan], ["p1", "p1", "p2"],
                                kind=decision.SIMILARITY, candidate="gemma")
    with pytest.raises(decision.DecisionInputError, match=r"prompt 'q': .* is infinite"):
        decision.clustered_mean([math.inf], ["q"], kind=decision.GRADE, candidate="c")
    with pytest.raises(decision.DecisionInputError,
                       match=r"smol: prompt 3: human win rate \(choice\) is 3, outside \[0, 1\]"):
        decision.clustered_mean([1.0, 3.0], [1, 3], kind=decision.HUMAN, candidate="smol")
    with pytest.raises(decision.DecisionInputError, match=r"is 5, outside \[-2, 2\]"):
        decision.clustered_mean([5.0], ["a"], kind=decision.SIMILARITY, candidate="c")


def test_a_nan_score_in_the_store_is_refused_by_the_report_naming_it() -> None:
    from types import SimpleNamespace

    scores = [{"target": t, "prompt_id": f"p{i}", "sample": 0, "scorer": "judge",
               "score": (math.nan if (t, i) == ("cand", 4) else 7.0)}
              for t in ("ref", "cand") for i in range(12)]
    data = summary.RunData(SimpleNamespace(reference="ref"), [], [], scores, [], [])
    with pytest.raises(decision.DecisionInputError,
                       match=r"cand: prompt 'p4': judge grade difference \(grade\) is not a "
                             "number"):
        summary.evidence_data(data, ["cand"], {})
    # The report stands: that candidate is undecided, the value named; the gate fails on it.
    from dataclasses import replace

    from tests.engine.test_summary import REF, run_data
    graded = [{**s, "target": REF if s["target"] == "ref" else "small",
               "prompt_id": f"p{int(s['prompt_id'][1:]):03d}"} for s in scores]
    rep = summary.compute(replace(run_data([], 12, {"decision": {"evidence": "judgeGrade"}}),
                                  scores=graded))
    small = next(t for t in rep.targets if t.target == "small")
    assert small.decision.verdict == "undecided"
    assert small.decision.why.startswith("undecided: not tested: small: prompt 'p004': judge "
                                         "grade difference (grade) is not a number")
    assert any(n.startswith("small: not decided: small: prompt 'p004'") for n in rep.notes)
    assert "not tested" in summary.gate(rep, "small")


def test_holm_and_the_sequential_test_refuse_a_bad_value_instead_of_being_steered() -> None:
    with pytest.raises(decision.DecisionInputError, match=r"p-value 1 of 3 is nan"):
        decision.holm([math.nan, 0.01, 0.02])
    with pytest.raises(decision.DecisionInputError, match=r"p-value 2 of 2 is 1\.5"):
        decision.holm_levels([0.01, 1.5], ALPHA)
    with pytest.raises(decision.DecisionInputError, match=r"rating 3 of 4 is nan"):
        decision.sequential([1.0, 0.5, math.nan, 1.0], 0.45, alpha=ALPHA)
    with pytest.raises(decision.DecisionInputError, match=r"rating 1 of 1 is 2\.0"):
        decision.sequential([2.0], 0.45, alpha=ALPHA)
    # The verdicts do not depend on the order the candidates are listed in.
    rng = np.random.default_rng(5)
    data = {c: decision.clustered_mean((rng.random(300) < q).astype(float), range(300))
            for c, q in (("a", 0.58), ("b", 0.6), ("c", 0.5))}
    margin = Margin(0.45, 0.5, 0.5)
    one = decision.decide({c: Evidence(decision.HUMAN, data[c], margin) for c in "abc"},
                          alpha=ALPHA, power=0.8)
    other = decision.decide({c: Evidence(decision.HUMAN, data[c], margin) for c in "cba"},
                            alpha=ALPHA, power=0.8)
    assert {c: (d.verdict, d.p_non_inferior) for c, d in one.items()} == \
        {c: (d.verdict, d.p_non_inferior) for c, d in other.items()}


def test_a_candidate_held_back_by_holms_step_down_is_told_so() -> None:
    rng = np.random.default_rng(373)  # two candidates with raw p 0.039 and 0.041
    a, b = ((rng.random(300) < 0.55).astype(float) for _ in range(2))
    margin = Margin(0.45, 0.5, 0.5)
    out = decision.decide({"a": Evidence(decision.HUMAN, decision.clustered_mean(a, range(300)),
                                         margin),
                           "b": Evidence(decision.HUMAN, decision.clustered_mean(b, range(300)),
                                         margin)}, alpha=ALPHA, power=0.8)
    assert out["a"].verdict == out["b"].verdict == "undecided"
    # a (the smaller p) is tested first at 0.025 and fails: its bounds include the margin.
    assert "bounds" in out["a"].why and "include 0.45" in out["a"].why
    assert out["a"].lower < 0.45
    # b would clear at its own level (0.05) but Holm stopped at a: said so, not "straddle".
    assert "Holm's step-down stopped before it: a (p 0.0391 > 0.025)" in out["b"].why
    assert "straddle" not in out["b"].why and "include" not in out["b"].why


# --- raters of different leniency and speed (issue 33, defect 6) --------------------------------

RATERS = [  # (leniencies averaging to 0, speeds): the lenient one is the fast one
    ([0.3, -0.15, -0.15], [10, 1, 1]),
    ([0.2, -0.2], [5, 1]),
    ([0.4, -0.1, -0.1, -0.1, -0.1], [20, 1, 1, 1, 1]),
]


@pytest.mark.parametrize("leniency, speed", RATERS)
@pytest.mark.parametrize("prompts", [100, 400])
def test_a_fast_lenient_rater_cannot_steer_the_sequential_verdict_with_assigned_ratings(
        leniency: list[float], speed: list[float], prompts: int) -> None:
    """The raters' win rate, averaged over the roster, is on the margin. Counting the first
    rating of each prompt (what the queue's fastest rater gives) claims non-inferiority most
    of the time; counting each prompt's rating by the rater assigned to it in advance, in a
    fixed order, stays within alpha whoever is fast."""
    kw = dict(runs=RUNS, prompts=prompts, leniency=leniency, speed=speed, ratings=2 * prompts,
              seed=prompts)
    first = sim.rater_cell(assigned=False, **kw)
    assigned = sim.rater_cell(assigned=True, **kw)
    print(f"leniency {leniency}, speed {speed}, {prompts} prompts: first ratings {first:.3f}, "
          f"assigned ratings {assigned:.3f}")
    assert first > 0.4
    assert assigned <= BOUND


def test_the_counted_sequence_does_not_depend_on_the_order_ratings_arrive_in() -> None:
    """Through the real queue and report: three raters work through their batches at different
    speeds; the counted sequence is the fixed one, whatever the arrival order, and a prompt
    whose assigned rater has not rated it holds the sequence up, said in the verdict."""
    import random

    from slam_dashboard import rating
    from tests.engine.test_summary import REF, run_data

    raters = ["ann", "bo", "cy"]
    spec = {"humanRating": {"raters": raters}}
    base = run_data([], 40, spec)
    items = rating.items(base.responses)
    key = "/ev/1"
    rows: list[dict] = []
    rng = random.Random(3)
    lenient = {"ann": 0.9, "bo": 0.2, "cy": 0.2}  # ann says "small wins" far more often
    for turn in range(60):
        who = ["ann"] * 8 + ["bo", "cy"]
        who = who[turn % len(who)]
        batch = rating.session(who, key, items, rows, size=1, control_pairs=0, reference=REF,
                               roster=raters)
        if not batch:
            continue
        a = batch[0]
        wins = rng.random() < lenient[who]
        choice = ("left" if a.left == "small" else "right") if wins else \
            ("right" if a.left == "small" else "left")
        rows.append({"rater": who, "prompt_id": a.item.prompt_id, "sample": 0, "left": a.left,
                     "right": a.right, "choice": choice, "is_control": False})
    from dataclasses import replace

    data = replace(base, ratings=rows)
    got = summary.assigned_ratings(data, "small", raters)
    for seed in range(5):  # the same ratings arriving in another order count the same
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        assert summary.assigned_ratings(replace(base, ratings=shuffled), "small",
                                        raters).values == got.values
    # ann rated 8 times as often: she gives most first ratings, but counts only for the prompts
    # assigned to her, and the sequence waits for bo's and cy's.
    firsts = {}
    for r in rows:
        firsts.setdefault(r["prompt_id"], r["rater"])
    assert sum(w == "ann" for w in firsts.values()) > 0.7 * len(firsts)
    assert got.waiting_for is not None and got.waiting_for[0] in ("bo", "cy")
    assert len(got.values) < 40 and got.behind > 0
    assert got.per_rater["ann"] <= len(got.values) // 2 + 2
    rep = summary.compute(data)
    small = next(t for t in rep.targets if t.target == "small")
    assert "over the assigned ratings of" in small.decision.why
    assert "each prompt's rating by the rater assigned to it in advance" in rep.method
    assert small.decision.verdict == "undecided"
    assert (f"the next count waits for {got.waiting_for[0]}'s rating of prompt "
            f"{got.waiting_for[1]} ({got.behind} more are rated and wait behind it)"
            in small.decision.why)
