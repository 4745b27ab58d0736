"""Statistics: Bradley-Terry against known strengths and against `choix`, intervals, tests."""

from __future__ import annotations

import choix
import numpy as np
import pytest

from slam import stats
from slam.stats import Battles


def simulate(theta: np.ndarray, per_pair: int, rng: np.random.Generator,
             tie_rate: float = 0.0) -> Battles:
    a, b, out = [], [], []
    n = len(theta)
    for i in range(n):
        for j in range(i + 1, n):
            p = 1.0 / (1.0 + np.exp(theta[j] - theta[i]))
            for _ in range(per_pair):
                a.append(i)
                b.append(j)
                if rng.random() < tie_rate:
                    out.append(0.5)
                else:
                    out.append(1.0 if rng.random() < p else 0.0)
    return Battles.from_lists(a, b, out, n)


TRUE = np.array([-1.2, -0.4, 0.0, 0.5, 1.1])


def test_recovers_the_order_of_known_strengths() -> None:
    battles = simulate(TRUE, 200, np.random.default_rng(1))
    theta = stats.bradley_terry(battles)
    assert list(np.argsort(theta)) == [0, 1, 2, 3, 4]
    assert np.max(np.abs(theta - (TRUE - TRUE.mean()))) < 0.2
    # Random ties (not caused by the strengths) shrink the scale but keep the order.
    with_ties = stats.bradley_terry(simulate(TRUE, 200, np.random.default_rng(1), tie_rate=0.2))
    assert list(np.argsort(with_ties)) == [0, 1, 2, 3, 4]


def test_agrees_with_choix_within_1e_6() -> None:
    battles = simulate(TRUE, 40, np.random.default_rng(2))
    ours = stats.bradley_terry(battles)
    pairs = [(int(a), int(b)) if o == 1.0 else (int(b), int(a))
             for a, b, o in zip(battles.a, battles.b, battles.outcome, strict=True)]
    theirs = choix.ilsr_pairwise(len(TRUE), pairs, alpha=0.0, tol=1e-12)
    theirs = theirs - theirs.mean()
    assert np.max(np.abs(ours - theirs)) < 1e-6


def test_ties_count_as_half_a_win_each() -> None:
    # a ties b 10 times and beats c 10:0 -> a and b are equally strong relative to each other
    battles = Battles.from_lists([0] * 10 + [0] * 5 + [1] * 5, [1] * 10 + [2] * 5 + [2] * 5,
                                 [0.5] * 10 + [1.0] * 4 + [0.0] + [1.0] * 4 + [0.0], 3)
    theta = stats.bradley_terry(battles)
    assert theta[0] == pytest.approx(theta[1], abs=1e-6) and theta[2] < theta[0]


def test_bootstrap_intervals_cover_the_truth_in_90_percent_of_trials() -> None:
    rng = np.random.default_rng(7)
    covered = total = 0
    for _ in range(30):
        battles = simulate(TRUE, 30, rng)
        _, low, high = stats.bootstrap_bradley_terry(battles, rng, rounds=200, prior=0.0)
        truth = TRUE - TRUE.mean()
        covered += int(((low <= truth) & (truth <= high)).sum())
        total += len(TRUE)
    assert covered / total >= 0.90, covered / total


def test_bootstrap_is_reproducible_with_the_same_seed() -> None:
    battles = simulate(TRUE, 20, np.random.default_rng(3))
    one = stats.bootstrap_bradley_terry(battles, np.random.default_rng(11), rounds=50)
    two = stats.bootstrap_bradley_terry(battles, np.random.default_rng(11), rounds=50)
    assert all(np.array_equal(x, y) for x, y in zip(one, two, strict=True))


def test_a_model_that_never_wins_gets_a_finite_strength_with_the_prior() -> None:
    battles = Battles.from_lists([0] * 8, [1] * 8, [1.0] * 8, 2)
    theta = stats.bradley_terry(battles, prior=0.5)
    assert np.all(np.isfinite(theta)) and theta[0] > theta[1]


def test_latency_summary_and_cv() -> None:
    s = stats.latency_summary([100.0, 200.0, 300.0, 400.0])
    assert (s.p50, s.mean) == (250.0, 250.0)
    assert s.cv == pytest.approx(np.std([100, 200, 300, 400], ddof=1) / 250.0)
    assert stats.latency_summary([]) is None


def test_means_and_intervals() -> None:
    ci = stats.mean_ci([1.0, 2.0, 3.0])
    assert ci.estimate == 2.0 and ci.low < 2.0 < ci.high
    b = stats.bootstrap_mean([0.0, 1.0] * 20, np.random.default_rng(0))
    assert b.low < 0.5 < b.high
    assert stats.win_rate([1.0, 0.0, 0.5, 0.5]) == 0.5


def test_krippendorff_alpha_matches_the_reference_implementation() -> None:
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", nominal example;
    # 0.743 and 0.828 are the `krippendorff` package's values for these data.
    coders = [[1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
              [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
              [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
              [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]]
    units = [[c[u] for c in coders if c[u] is not None] for u in range(12)]
    assert stats.krippendorff_alpha_nominal(units) == pytest.approx(0.743421, abs=1e-6)
    small = [[0, 0], [1, 1, 1], [0, 1, 0], [0, 0, 0], [2, 2, 2], [1, 1], [0, 0]]
    assert stats.krippendorff_alpha_nominal(small) == pytest.approx(0.828283, abs=1e-6)
    assert stats.krippendorff_alpha_nominal([["a"]]) is None


def test_cohen_kappa_and_agreement() -> None:
    kappa, agree = stats.cohen_kappa(["a", "b", "a", "b"], ["a", "b", "a", "b"])
    assert kappa == pytest.approx(1.0) and agree == 1.0
    kappa, agree = stats.cohen_kappa(["a", "a", "b", "b"], ["a", "b", "a", "b"])
    assert kappa == pytest.approx(0.0) and agree == 0.5
    assert stats.cohen_kappa([], []) == (None, None)


def test_coefficient_of_variation() -> None:
    assert stats.coefficient_of_variation([100, 100, 100]) == 0.0
    assert stats.coefficient_of_variation([90, 110]) == pytest.approx(np.std([90, 110], ddof=1)
                                                                       / 100)
    assert stats.coefficient_of_variation([5]) is None  # one sample has no spread
    assert stats.coefficient_of_variation([0, 0]) is None


def test_rolling_quantile_matches_pandas_trailing_windows() -> None:
    import pandas as pd
    values = np.random.default_rng(3).lognormal(6, 0.5, 40)
    for q in (0.5, 0.95):
        ours = stats.rolling_quantile(values, 10, q)
        theirs = pd.Series(values).rolling(10, min_periods=1).quantile(q).to_numpy()
        np.testing.assert_allclose(ours, theirs)
    assert stats.rolling_quantile([], 10, 0.5).size == 0


def test_quality_cost_frontier() -> None:
    # an API that is best and dearest; a cheap good model; one worse and dearer than that;
    # one whose quality is unknown (never on the frontier, dominates nothing)
    frontier = stats.pareto_frontier([1100.0, 1050.0, 1000.0, None], [27.0, 0.5, 1.0, 0.1])
    assert frontier == [True, True, False, False]
    assert stats.pareto_frontier([0.5, float("nan")], [1.0, 2.0]) == [True, False]
    assert stats.pareto_frontier([0.5, 0.5], [1.0, 1.0]) == [True, True]  # ties dominate none
