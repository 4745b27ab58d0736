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
    c = decision.clustered_mean(values, clusters)
    return decision.p_values(c, threshold)[0] <= alpha


def test_at_the_margin_the_fixed_sample_test_claims_non_inferiority_at_most_alpha() -> None:
    rng = np.random.default_rng(1)
    prompts = np.arange(60)
    wins = rng.random((RUNS, 60)) < 0.45  # the candidate's true win rate sits on the margin
    rate = np.mean([rejects(w.astype(float), prompts, 0.45) for w in wins])
    print(f"false non-inferiority at the margin: {rate:.3f} (alpha {ALPHA})")
    assert rate <= ALPHA + MC


def test_clustered_prompts_keep_the_error_within_alpha_where_an_unclustered_interval_does_not(
        ) -> None:
    """30 prompts, 8 ratings each; prompts differ a lot (some are easy for the small model,
    some hard), around a mean win rate on the margin."""
    rng = np.random.default_rng(2)
    prompts, per = 30, 8
    clusters = np.repeat(np.arange(prompts), per)
    own = np.arange(prompts * per)  # each rating its own cluster: the independent-data interval
    clustered = unclustered = 0
    for _ in range(RUNS):
        p = rng.beta(0.45 * 2, 0.55 * 2, size=prompts)  # mean 0.45
        y = (rng.random((prompts, per)) < p[:, None]).astype(float).ravel()
        clustered += rejects(y, clusters, 0.45)
        unclustered += rejects(y, own, 0.45)
    clustered, unclustered = clustered / RUNS, unclustered / RUNS
    print(f"false non-inferiority with 8 ratings per prompt: clustered {clustered:.3f}, "
          f"unclustered {unclustered:.3f} (alpha {ALPHA})")
    assert clustered <= ALPHA + MC
    assert unclustered > 2 * ALPHA  # what ignoring the prompts would have claimed


def test_at_the_planned_number_of_prompts_the_power_is_at_least_the_planned_power() -> None:
    margin = Margin(threshold=0.45, assumed=0.5, sd=0.5)
    need = decision.prompts_needed(margin.sd, margin.assumed, margin.threshold, alpha=ALPHA,
                                   power=0.8)
    assert 600 <= need <= 640  # the textbook (z_0.95 + z_0.8)^2 * 0.25 / 0.05^2 = 619
    rng = np.random.default_rng(3)
    wins = rng.random((RUNS, need)) < 0.5  # no ties: sd 0.5 exactly
    prompts = np.arange(need)
    power = np.mean([rejects(w.astype(float), prompts, 0.45) for w in wins])
    print(f"power at the planned {need} prompts: {power:.3f} (planned 0.8)")
    assert power >= 0.8 - 3 * math.sqrt(0.8 * 0.2 / RUNS)
    # One prompt fewer than planned falls short of the power on paper (the plan is the smallest).
    assert decision.power_at(need - 1, 0.5, 0.5, 0.45, alpha=ALPHA) < 0.8 <= \
        decision.power_at(need, 0.5, 0.5, 0.45, alpha=ALPHA)


def test_holm_keeps_the_family_wise_error_with_several_candidates_on_the_margin() -> None:
    rng = np.random.default_rng(4)
    prompts = np.arange(40)
    margin = Margin(0.45, 0.5, 0.5)
    any_false = unadjusted = 0
    for _ in range(RUNS):
        data = {f"c{k}": decision.clustered_mean(
            (rng.random(40) < 0.45).astype(float), prompts) for k in range(3)}
        raw = [decision.p_values(d, margin.threshold)[0] for d in data.values()]
        any_false += any(p <= ALPHA for p in decision.holm(raw))  # what decide() claims
        unadjusted += any(p <= ALPHA for p in raw)
    any_false, unadjusted = any_false / RUNS, unadjusted / RUNS
    print(f"any false non-inferiority among 3 candidates: Holm {any_false:.3f}, "
          f"unadjusted {unadjusted:.3f}")
    assert any_false <= ALPHA + MC
    assert unadjusted > 2 * ALPHA


def test_verdicts_bounds_and_what_more_would_decide() -> None:
    margin = Margin(0.45, 0.5, 0.5)
    prompts = np.repeat(np.arange(40), 2)
    strong = decision.clustered_mean(np.tile([1.0, 1.0, 0.5, 1.0], 20), prompts)
    weak = decision.clustered_mean(np.tile([0.0, 0.0, 0.5, 0.0], 20), prompts)
    close = decision.clustered_mean(np.tile([1.0, 1.0, 0.0, 0.0], 20), prompts)
    few = decision.clustered_mean([1.0] * 9, list(range(9)))
    out = decision.decide({"strong": Evidence(decision.HUMAN, strong, margin),
                           "weak": Evidence(decision.HUMAN, weak, margin),
                           "close": Evidence(decision.HUMAN, close, margin),
                           "few": Evidence(decision.HUMAN, few, margin),
                           "none": Evidence(decision.HUMAN, None, margin)},
                          alpha=ALPHA, power=0.8)
    assert out["strong"].verdict == "non-inferior" and out["strong"].lower > 0.45
    assert out["strong"].why.startswith("non-inferior: human win rate 0.875 over 80 ratings "
                                        "on 40 prompts")
    assert out["weak"].verdict == "inferior" and out["weak"].upper < 0.45
    c = out["close"]
    assert c.verdict == "undecided" and c.lower < 0.45 < c.upper
    # 40 prompts at 0.5 with this spread: the plan for 3 tested candidates says how many more.
    need = decision.prompts_needed(close.sd_prompt, 0.5, 0.45, alpha=ALPHA / 3, power=0.8)
    assert c.more_prompts == need - 40 and c.more_observations == 2 * (need - 40)
    assert f"about {need - 40} more prompts ({2 * (need - 40)} ratings)" in c.why
    assert out["few"].verdict == "undecided" and out["few"].more_prompts == 1
    assert "covers 9 prompts, 10 are needed" in out["few"].why
    assert out["none"].more_prompts == 10 and out["none"].observations == 0


def test_the_auto_evidence_prefers_people_then_the_judge_then_similarity() -> None:
    ten = Clustered(0.5, 0.1, 10, 10, 0.3)
    three = Clustered(0.5, 0.1, 3, 3, 0.3)
    assert decision.choose({decision.HUMAN: three, decision.JUDGE: ten}) == decision.JUDGE
    assert decision.choose({decision.HUMAN: ten, decision.JUDGE: ten}) == decision.HUMAN
    assert decision.choose({decision.SIMILARITY: three}) == decision.SIMILARITY
    assert decision.choose({}) == decision.HUMAN
    assert decision.choose({decision.HUMAN: ten}, "similarity") == decision.SIMILARITY


def test_the_clustered_standard_error_is_the_cluster_robust_one() -> None:
    y = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.5])
    g = np.array(["a", "a", "b", "b", "c", "c"])
    c = decision.clustered_mean(y, g)
    resid_sums = np.array([1 - 2 * c.mean, 2 - 2 * c.mean, 0.5 - 2 * c.mean])
    assert c.mean == pytest.approx(3.5 / 6)
    assert c.se == pytest.approx(math.sqrt(3 / 2 * (resid_sums ** 2).sum()) / 6)
    assert (c.prompts, c.observations) == (3, 6)
    assert c.sd_prompt == pytest.approx(np.std([0.5, 1.0, 0.25], ddof=1))


def test_holm_adjusted_p_values() -> None:
    assert decision.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert decision.holm_levels([0.01, 0.04, 0.03], 0.05) == pytest.approx(
        [0.05 / 3, 0.05, 0.05 / 2])


def test_a_plan_that_cannot_be_met_says_so() -> None:
    rows = decision.plan({decision.HUMAN: Margin(0.45, 0.5, 0.5),
                          decision.SIMILARITY: Margin(-0.03, 0.0, 0.1)},
                         candidates=2, prompts=32, alpha=ALPHA, power=0.8)
    human, sim = rows
    assert human.alpha_each == 0.025 and human.prompts_needed > 700
    assert "short by" in human.line() and "each rated once per candidate" in human.line()
    assert sim.prompts_needed == decision.prompts_needed(0.1, 0.0, -0.03, alpha=0.025,
                                                         power=0.8)
    assert human.power_with_prompts < 0.2
    assert decision.prompts_needed(0.5, 0.45, 0.45, alpha=ALPHA, power=0.8) is None


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
    need = decision.prompts_needed(float(np.std(first, ddof=1)), 0.5, 0.45, alpha=ALPHA,
                                   power=0.8)
    assert d.verdict == "undecided" and d.more_prompts == need - 20
    assert f"keep rating, at least {need - 20} more prompts rated" in d.why
    on_margin, _ = decision.sequential_decision("c", [1.0, 0.0, 0.5, 0.3] * 5, None,
                                                Margin(0.45, 0.5, 0.5), alpha=ALPHA)
    assert on_margin.more_prompts is None and "sits on the margin" in on_margin.why
