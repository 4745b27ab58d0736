"""The decision's error rates, by simulation (seeded): what a statistician reviewing it checks.

Each simulated experiment is what a team would run: prompts, answers or ratings per prompt, one
decision. Monte Carlo error over 2,000 experiments at 5%: sd 0.49 points, so bounds allow 3 sd.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from slam import decision
from slam.decision import Clustered, Evidence, Margin

ALPHA = 0.05
RUNS = 2000
MC = 3 * math.sqrt(ALPHA * (1 - ALPHA) / RUNS)  # three Monte Carlo standard errors at alpha


def rejects(values: np.ndarray, clusters: np.ndarray, threshold: float, alpha: float = ALPHA
            ) -> bool:
    """Whether the fixed-sample test claims non-inferiority (H0 mean <= threshold rejected)."""
    c = decision.clustered_mean(values, clusters, kind=decision.HUMAN)
    return decision.p_values(c, threshold, decision.HUMAN, alpha=alpha)[0] <= alpha


def test_at_the_margin_the_fixed_sample_test_claims_non_inferiority_at_most_alpha() -> None:
    rng = np.random.default_rng(1)
    prompts = np.arange(60)
    wins = rng.random((RUNS, 60)) < 0.45  # the candidate's true win rate sits on the margin
    rate = np.mean([rejects(w.astype(float), prompts, 0.45) for w in wins])
    print(f"false non-inferiority at the margin: {rate:.3f} (alpha {ALPHA})")
    assert rate <= ALPHA + MC


def test_prompts_are_the_unit_where_treating_ratings_as_independent_is_not(
        ) -> None:
    """30 prompts, 8 ratings each; prompts differ a lot (some are easy for the small model,
    some hard), around a mean win rate on the margin."""
    rng = np.random.default_rng(2)
    prompts, per = 30, 8
    clusters = np.repeat(np.arange(prompts), per)
    own = np.arange(prompts * per)  # each rating its own prompt: as if independent
    clustered = unclustered = 0
    runs = 1000
    for _ in range(runs):
        p = rng.beta(0.45 * 2, 0.55 * 2, size=prompts)  # mean 0.45
        y = (rng.random((prompts, per)) < p[:, None]).astype(float).ravel()
        clustered += rejects(y, clusters, 0.45)
        unclustered += rejects(y, own, 0.45)
    clustered, unclustered = clustered / runs, unclustered / runs
    print(f"false non-inferiority with 8 ratings per prompt: by prompt {clustered:.3f}, "
          f"ratings as independent {unclustered:.3f} (alpha {ALPHA})")
    assert clustered <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / runs)
    assert unclustered > clustered + 0.03  # what ignoring the prompts would have claimed


def test_the_planned_number_of_prompts_is_the_smallest_with_the_planned_power() -> None:
    margin = Margin(threshold=0.45, assumed=0.5, sd=0.5)
    need = decision.prompts_needed(margin, decision.HUMAN, alpha=ALPHA, power=0.8)
    # The t test's textbook (z_0.95 + z_0.8)^2 * 0.25 / 0.05^2 = 619 prompts; the betting
    # test, valid on any bounded data, needs more (bench/README.md: the power cost).
    assert 900 <= need <= 1200
    assert decision.power_at(need - 1, margin, decision.HUMAN, alpha=ALPHA) < 0.8 <= \
        decision.power_at(need, margin, decision.HUMAN, alpha=ALPHA)
    # Never fewer prompts than the test accepts, however large the effect.
    easy = Margin(threshold=0.05, assumed=0.95, sd=0.05)
    assert decision.prompts_needed(easy, decision.HUMAN, alpha=ALPHA, power=0.8) == \
        decision.MIN_PROMPTS


def test_the_planner_refuses_a_spread_that_is_not_positive_or_cannot_be() -> None:
    for sd in (0.0, -0.1):
        with pytest.raises(decision.DecisionInputError,
                           match=r"spec\.decision\.humanWinRate\.sd is .*above 0"):
            decision.plan({decision.HUMAN: Margin(0.45, 0.5, sd)}, candidates=1, prompts=100,
                          alpha=ALPHA, power=0.8)
    # An sd no win rate with that mean can have is planned at the largest one, and said so.
    [row] = decision.plan({decision.HUMAN: Margin(0.45, 0.55, 0.7)}, candidates=1,
                          prompts=100, alpha=ALPHA, power=0.8)
    assert row.prompts_needed == decision.prompts_needed(
        Margin(0.45, 0.55, decision.largest_sd(decision.HUMAN, 0.55)), decision.HUMAN,
        alpha=ALPHA, power=0.8)
    assert "sd 0.7, planned at the largest possible 0.497 per prompt" in row.line()


def test_holm_keeps_the_family_wise_error_with_several_candidates_on_the_margin() -> None:
    rng = np.random.default_rng(4)
    prompts = np.arange(40)
    any_false = unadjusted = 0
    runs = 1000
    for _ in range(runs):
        data = [decision.clustered_mean((rng.random(40) < 0.45).astype(float), prompts)
                for _ in range(3)]
        raw = [decision.p_values(d, 0.45, decision.HUMAN)[0] for d in data]
        any_false += any(p <= ALPHA for p in decision.holm(raw))  # what decide() claims
        unadjusted += any(p <= ALPHA for p in raw)
    any_false, unadjusted = any_false / runs, unadjusted / runs
    print(f"any false non-inferiority among 3 candidates: Holm {any_false:.3f}, "
          f"unadjusted {unadjusted:.3f}")
    assert any_false <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / runs)
    # Holm's correction matters here: testing each at alpha claims several times as often.
    assert unadjusted > 3 * any_false


def test_verdicts_bounds_and_what_more_would_decide() -> None:
    margin = Margin(0.45, 0.5, 0.5)
    prompts = np.repeat(np.arange(200), 2)
    strong = decision.clustered_mean(np.tile([1.0, 1.0, 0.5, 1.0], 100), prompts)
    weak = decision.clustered_mean(np.tile([0.0, 0.0, 0.5, 0.0], 100), prompts)
    close = decision.clustered_mean(np.tile([1.0, 1.0, 0.0, 0.0], 100), prompts)
    few = decision.clustered_mean([1.0] * 9, list(range(9)))
    out = decision.decide({"strong": Evidence(decision.HUMAN, strong, margin),
                           "weak": Evidence(decision.HUMAN, weak, margin),
                           "close": Evidence(decision.HUMAN, close, margin),
                           "few": Evidence(decision.HUMAN, few, margin),
                           "none": Evidence(decision.HUMAN, None, margin)},
                          alpha=ALPHA, power=0.8)
    assert out["strong"].verdict == "non-inferior" and out["strong"].lower > 0.45
    assert out["strong"].why.startswith("non-inferior: human win rate 0.875 (mean over 200 "
                                        "prompts, 400 ratings)")
    assert out["weak"].verdict == "inferior" and out["weak"].upper < 0.45
    c = out["close"]
    assert c.verdict == "undecided" and c.lower < 0.45 < c.upper
    assert f"bounds {c.lower:.3f}..{c.upper:.3f} include 0.45" in c.why
    # 200 prompts at 0.5 with this spread: the plan for 3 tested candidates says how many more.
    need = decision.prompts_needed(Margin(0.45, 0.5, min(close.sd_prompt, 0.5)), decision.HUMAN,
                                   alpha=ALPHA / 3, power=0.8)
    assert c.more_prompts == need - 200 and c.more_observations == 2 * (need - 200)
    assert f"about {need - 200} more prompts ({2 * (need - 200)} ratings)" in c.why
    assert out["few"].verdict == "undecided" and out["few"].more_prompts == 1
    assert "covers 9 prompts, 10 are needed" in out["few"].why
    assert out["none"].more_prompts == 10 and out["none"].observations == 0


def test_the_bounds_are_the_thresholds_the_test_rejects() -> None:
    rng = np.random.default_rng(7)
    c = decision.clustered_mean(np.clip(rng.normal(0.02, 0.1, 400), -2, 2), range(400),
                                kind=decision.SIMILARITY)
    test = decision.Test.of(c, decision.SIMILARITY)
    lower, upper = test.bounds(ALPHA, ALPHA)
    assert lower < c.mean < upper
    assert test.p_values(lower - 1e-3, ALPHA)[0] <= ALPHA < test.p_values(lower + 1e-3,
                                                                             ALPHA)[0]
    assert test.p_values(upper + 1e-3, ALPHA)[1] <= ALPHA < test.p_values(upper - 1e-3,
                                                                            ALPHA)[1]


def test_the_auto_evidence_prefers_people_then_the_judge_then_similarity() -> None:
    ten = Clustered(0.5, 0.1, 10, 10, 0.3)
    three = Clustered(0.5, 0.1, 3, 3, 0.3)
    assert decision.choose({decision.HUMAN: three, decision.JUDGE: ten}) == decision.JUDGE
    assert decision.choose({decision.HUMAN: ten, decision.JUDGE: ten}) == decision.HUMAN
    assert decision.choose({decision.SIMILARITY: three}) == decision.SIMILARITY
    assert decision.choose({}) == decision.HUMAN
    assert decision.choose({decision.HUMAN: ten}, "similarity") == decision.SIMILARITY


def test_prompts_weigh_the_same_and_are_kept_apart_as_given() -> None:
    y = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.5])
    g = np.array(["a", "a", "b", "b", "c", "c"])
    c = decision.clustered_mean(y, g)
    assert c.means == (0.5, 1.0, 0.25)
    assert c.mean == pytest.approx(1.75 / 3)  # each prompt's mean, each prompt once
    assert c.se == pytest.approx(np.std([0.5, 1.0, 0.25], ddof=1) / math.sqrt(3))
    assert (c.prompts, c.observations) == (3, 6)
    # Prompt ids are compared as given: the integer 1 and the text "1" are two prompts.
    assert decision.clustered_mean([1.0, 0.0], [1, "1"]).prompts == 2
    with pytest.raises(decision.DecisionInputError, match="3 values but 2 prompt ids"):
        decision.clustered_mean([1.0, 0.0, 1.0], ["a", "b"])


def test_holm_adjusted_p_values() -> None:
    assert decision.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert decision.holm_levels([0.01, 0.04, 0.03], 0.05) == pytest.approx(
        [0.05 / 3, 0.05, 0.05 / 2])


def test_a_plan_that_cannot_be_met_says_so() -> None:
    rows = decision.plan({decision.HUMAN: Margin(0.45, 0.5, 0.5),
                          decision.SIMILARITY: Margin(-0.03, 0.0, 0.1)},
                         candidates=2, prompts=32, alpha=ALPHA, power=0.8)
    human, sim = rows
    assert human.alpha_each == 0.025 and human.prompts_needed > 1000
    assert "short by" in human.line() and "each rated once per candidate" in human.line()
    assert sim.prompts_needed == decision.prompts_needed(Margin(-0.03, 0.0, 0.1),
                                                         decision.SIMILARITY, alpha=0.025,
                                                         power=0.8)
    assert human.power_with_prompts < 0.2
    assert decision.prompts_needed(Margin(0.45, 0.45, 0.5), decision.HUMAN, alpha=ALPHA,
                                   power=0.8) is None


def test_looking_after_every_rating_the_sequential_test_stays_within_alpha_and_naive_does_not(
        ) -> None:
    """Owners look after each of 300 ratings (first ratings of 300 prompts) of a candidate whose
    true win rate is on the margin: the betting test ever claims non-inferiority at most alpha of
    the time; a fixed-sample test repeated after every rating (from the 10th) claims it far more
    often."""
    rng = np.random.default_rng(5)
    n = 300
    x = (rng.random((RUNS, n)) < 0.45).astype(float)
    wealth = decision.log_wealth(x, 0.45, alpha=ALPHA, side=1)
    sequential = float(np.mean((wealth >= math.log(1 / ALPHA)).any(axis=1)))
    t = np.arange(1, n + 1)
    mean = np.cumsum(x, axis=1) / t
    var = (np.cumsum(x ** 2, axis=1) - t * mean ** 2) / np.maximum(t - 1, 1)
    from scipy import stats as sps

    crit = sps.t.ppf(1 - ALPHA, np.maximum(t - 1, 1))
    z = (mean - 0.45) / np.sqrt(np.maximum(var, 1e-12) / t)
    naive = float(np.mean((z[:, 9:] > crit[9:]).any(axis=1)))
    print(f"false non-inferiority when looking after every rating: sequential {sequential:.3f},"
          f" repeated fixed-sample test {naive:.3f} (alpha {ALPHA})")
    assert sequential <= ALPHA + MC
    assert naive > 3 * ALPHA


def test_a_clearly_better_candidate_is_decided_early_and_its_sequence_covers_the_truth() -> None:
    rng = np.random.default_rng(6)
    x = (rng.random(400) < 0.7).astype(float)  # wins 70% against the reference
    s = decision.sequential(x, 0.45, alpha=ALPHA)
    assert s.verdict == "non-inferior" and s.decided_at < 100
    assert np.all(np.diff(s.lower) >= 0) and np.all(np.diff(s.upper) <= 0)  # only narrows
    assert s.lower[s.decided_at - 1] > 0.45 - 0.0025  # the bound cleared the margin then
    assert s.lower[-1] < 0.7 < s.upper[-1]
    worse = decision.sequential((rng.random(400) < 0.2).astype(float), 0.45, alpha=ALPHA)
    assert worse.verdict == "inferior" and worse.upper[-1] < 0.45
    # Coverage: over 500 sequences of 200 ratings, the truth leaves the sequence at most alpha.
    out = 0
    for _ in range(500):
        s = decision.sequential((rng.random(200) < 0.6).astype(float), 0.45, alpha=ALPHA)
        out += bool(np.any(s.lower > 0.6) or np.any(s.upper < 0.6))
    assert out / 500 <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / 500)


def test_an_undecided_sequential_candidate_says_how_many_more_prompts_at_least() -> None:
    first = [1.0, 0.0] * 10  # 20 prompts, a win rate of 0.5: undecided at 0.45
    d, s = decision.sequential_decision("c", first, None, Margin(0.45, 0.5, 0.5), alpha=ALPHA)
    need = decision.prompts_needed(Margin(0.45, 0.5, min(float(np.std(first, ddof=1)), 0.5)),
                                   decision.HUMAN, alpha=ALPHA, power=0.8)
    assert d.verdict == "undecided" and d.more_prompts == need - 20
    assert f"keep rating, at least {need - 20} more prompts rated" in d.why
    on_margin, _ = decision.sequential_decision("c", [1.0, 0.0, 0.5, 0.3, 0.45] * 5, None,
                                                Margin(0.45, 0.5, 0.5), alpha=ALPHA)
    assert on_margin.more_prompts is None and "the estimate is on the margin" in on_margin.why
    # One rating says nothing about the spread: not "on the margin", just too few.
    one, _ = decision.sequential_decision("c", [0.5], None, Margin(0.45, 0.5, 0.5), alpha=ALPHA)
    assert "too few ratings yet" in one.why and "margin:" not in one.why


def test_when_every_prompt_is_counted_ratings_cannot_change_the_decision() -> None:
    """The demo's case: 32 prompts, each with its counted rating, still undecided. No further
    rating can change it, and the decision says what would: more prompts, or other evidence;
    with prompts left but fewer than needed, it says that too."""
    first = [1.0, 0.0] * 16  # 32 prompts at 0.5: undecided at 0.45
    d, _ = decision.sequential_decision("gemma3", first, None, Margin(0.45, 0.5, 0.5),
                                        alpha=ALPHA, prompts=32,
                                        instead=[decision.SIMILARITY])
    assert d.verdict == "undecided" and d.exhausted
    assert "ratings cannot change this decision: every one of the 32 prompts" in d.why
    assert f"add about {d.more_prompts} more prompts to the prompt set" in d.why
    assert "or decide on similarity difference (spec.decision.evidence: similarity)" in d.why
    assert "keep rating" not in d.why
    short, _ = decision.sequential_decision("gemma3", first, None, Margin(0.45, 0.5, 0.5),
                                            alpha=ALPHA, prompts=40)
    assert not short.exhausted
    assert (f"at least {short.more_prompts} more prompts rated, but the prompt set has 8 left"
            in short.why)
    plenty, _ = decision.sequential_decision("gemma3", first, None, Margin(0.45, 0.5, 0.5),
                                             alpha=ALPHA, prompts=10_000)
    assert not plenty.exhausted and "keep rating, at least" in plenty.why
