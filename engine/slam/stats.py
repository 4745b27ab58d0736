"""Statistics as pure NumPy functions with documented shapes and an explicit seeded Generator.

Pairwise outcomes ("battles") are three parallel arrays of length B:
  a, b     int64 model indices in [0, n)
  outcome  float64: 1.0 when a won, 0.0 when b won, 0.5 for a tie (ties count half a win each)

Bradley-Terry: P(i beats j) = p_i / (p_i + p_j). Fitted by Hunter's (2004) MM algorithm on the
win and comparison counts; returned as log-strengths theta (mean 0). `to_elo` maps theta to the
Elo-like scale of Chatbot Arena (400 / ln 10 per unit, centred on 1000).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Battles:
    a: np.ndarray  # (B,) int
    b: np.ndarray  # (B,) int
    outcome: np.ndarray  # (B,) float in {0, 0.5, 1}
    n: int

    @classmethod
    def from_lists(cls, a: Sequence[int], b: Sequence[int], outcome: Sequence[float],
                   n: int) -> Battles:
        return cls(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64),
                   np.asarray(outcome, dtype=np.float64), n)

    def __len__(self) -> int:
        return len(self.a)

    def take(self, idx: np.ndarray) -> Battles:
        return Battles(self.a[idx], self.b[idx], self.outcome[idx], self.n)


def counts(battles: Battles) -> tuple[np.ndarray, np.ndarray]:
    """wins (n,) with ties as halves, and comparisons (n, n) symmetric."""
    n = battles.n
    wins = np.bincount(battles.a, weights=battles.outcome, minlength=n) + np.bincount(
        battles.b, weights=1.0 - battles.outcome, minlength=n)
    comparisons = np.zeros((n, n))
    np.add.at(comparisons, (battles.a, battles.b), 1.0)
    return wins, comparisons + comparisons.T


def bradley_terry(battles: Battles, *, prior: float = 0.0, max_iter: int = 10_000,
                  tol: float = 1e-10) -> np.ndarray:
    """Log-strengths theta (n,), mean 0. `prior` adds that many virtual ties between every pair
    that met, so a model that never won still gets a finite strength (0 = plain maximum
    likelihood, which needs every model to win and lose at least once)."""
    wins, comparisons = counts(battles)
    if prior:
        met = comparisons > 0
        wins = wins + prior * met.sum(axis=1) / 2.0
        comparisons = comparisons + prior * met
    p = np.ones(battles.n)
    active = comparisons.sum(axis=1) > 0
    for _ in range(max_iter):
        denom = (comparisons / (p[:, None] + p[None, :])).sum(axis=1)
        new = np.where(active, wins / np.where(denom > 0, denom, 1.0), 1.0)
        new = np.maximum(new, 1e-300)
        new /= np.exp(np.mean(np.log(new[active]))) if active.any() else 1.0
        if np.max(np.abs(np.log(new) - np.log(p))) < tol:
            p = new
            break
        p = new
    theta = np.log(p)
    return theta - theta[active].mean() if active.any() else theta


def to_elo(theta: np.ndarray) -> np.ndarray:
    return 1000.0 + theta * 400.0 / np.log(10.0)


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


def bootstrap_bradley_terry(battles: Battles, rng: np.random.Generator, *, rounds: int = 500,
                            prior: float = 0.5, level: float = 0.95
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(theta, low, high), each (n,): the fit on all battles and percentile intervals from
    `rounds` resamples of the battles with replacement."""
    theta = bradley_terry(battles, prior=prior)
    samples = np.empty((rounds, battles.n))
    for r in range(rounds):
        idx = rng.integers(0, len(battles), len(battles))
        samples[r] = bradley_terry(battles.take(idx), prior=prior)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(samples, [alpha, 1.0 - alpha], axis=0)
    return theta, low, high


def win_rate(outcomes: Sequence[float]) -> float | None:
    """Share of wins with ties as half a win (outcomes in {0, 0.5, 1})."""
    return float(np.mean(outcomes)) if len(outcomes) else None


def bootstrap_mean(values: Sequence[float], rng: np.random.Generator, *, rounds: int = 2000,
                   level: float = 0.95) -> Interval | None:
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return None
    means = x[rng.integers(0, len(x), (rounds, len(x)))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return Interval(float(x.mean()), float(low), float(high))


def mean_ci(values: Sequence[float], level: float = 0.95) -> Interval | None:
    """Mean with a Student-t interval (the interval collapses to the mean for n = 1)."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) == 0:
        return None
    m = float(x.mean())
    if len(x) < 2 or x.std(ddof=1) == 0:
        return Interval(m, m, m)
    from scipy import stats as sps  # imported when used: ~90 MB the operator rarely needs

    low, high = sps.t.interval(level, len(x) - 1, loc=m, scale=sps.sem(x))
    return Interval(m, float(low), float(high))


@dataclass(frozen=True)
class LatencySummary:
    n: int
    p50: float
    p90: float
    p95: float
    p99: float
    mean: float
    std: float
    cv: float  # coefficient of variation: std / mean


def latency_summary(values_ms: Sequence[float]) -> LatencySummary | None:
    x = np.asarray([v for v in values_ms if v is not None], dtype=np.float64)
    if len(x) == 0:
        return None
    p50, p90, p95, p99 = np.percentile(x, [50, 90, 95, 99])
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if len(x) > 1 else 0.0
    return LatencySummary(len(x), float(p50), float(p90), float(p95), float(p99), mean, std,
                          std / mean if mean else 0.0)


def krippendorff_alpha_nominal(units: Sequence[Sequence[object]]) -> float | None:
    """Krippendorff's alpha for nominal data. `units`: for each rated unit, the values the coders
    gave it (missing values simply absent). Units with fewer than two values are not pairable
    and are ignored. None when there is nothing to compare or no variation at all."""
    pairable = [list(u) for u in units if len(u) >= 2]
    if not pairable:
        return None
    categories = sorted({v for u in pairable for v in u}, key=str)
    index = {c: i for i, c in enumerate(categories)}
    k = len(categories)
    coincidence = np.zeros((k, k))
    for u in pairable:
        counts = np.bincount([index[v] for v in u], minlength=k).astype(float)
        m = len(u)
        coincidence += (np.outer(counts, counts) - np.diag(counts)) / (m - 1)
    n_c = coincidence.sum(axis=1)
    n = n_c.sum()
    observed = n - np.trace(coincidence)
    expected = (n * n - (n_c ** 2).sum()) / (n - 1)
    if expected == 0:
        return None
    return float(1.0 - observed / expected)


def cohen_kappa(a: Sequence[object], b: Sequence[object]) -> tuple[float | None, float | None]:
    """(Cohen's kappa, share of exact agreement) between two aligned label sequences."""
    if not len(a):
        return None, None
    from sklearn.metrics import cohen_kappa_score
    agreement = float(np.mean([x == y for x, y in zip(a, b, strict=True)]))
    labels = {str(x) for x in a} | {str(y) for y in b}
    if len(labels) < 2:
        return None, agreement  # kappa is undefined when only one label ever occurs
    return float(cohen_kappa_score([str(x) for x in a], [str(y) for y in b])), agreement


def coefficient_of_variation(values: Sequence[float]) -> float | None:
    """Sample standard deviation / mean: latency consistency (lower is steadier). None for
    fewer than two values or a zero mean."""
    x = np.asarray(values, dtype=float)
    if x.size < 2 or x.mean() == 0:
        return None
    return float(x.std(ddof=1) / x.mean())


def rolling_quantile(values: Sequence[float], window: int, q: float) -> np.ndarray:
    """(N,) the q-quantile of each value's trailing window of `window` values (fewer at the
    start), linear interpolation between order statistics."""
    x = np.asarray(values, dtype=float)
    return np.array([np.quantile(x[max(0, i - window + 1):i + 1], q) for i in range(x.size)])


def pareto_frontier(quality: Sequence[float | None], cost: Sequence[float]) -> list[bool]:
    """For each point, whether no other point is at least as good on both quality (higher is
    better) and cost (lower) and strictly better on one. Points without quality are never on
    the frontier and dominate nothing."""
    q = [None if v is None or v != v else float(v) for v in quality]  # NaN is unknown
    out = []
    for i, (qi, ci) in enumerate(zip(q, cost, strict=True)):
        if qi is None:
            out.append(False)
            continue
        dominated = any(
            qj is not None and qj >= qi and cj <= ci and (qj > qi or cj < ci)
            for j, (qj, cj) in enumerate(zip(q, cost, strict=True)) if j != i)
        out.append(not dominated)
    return out
