"""Simulated evaluations for the decision's error rates and power (tests/engine/test_decision_sim.py
at CI size, bench/decision.py at full size). Seeded; each cell is one kind of data a team has.

A cell draws, per experiment, each prompt's true mean for each candidate (prompts shared by the
candidates), a number of observations per prompt, and the observations; the decision is taken on
them exactly as `decision.decide` takes it (the betting test on equally weighted prompt means,
Holm over the candidates), vectorized over experiments. Under the null every candidate's true
mean (over prompts, each weighing the same) sits exactly on the margin, so any "non-inferior" is
a false claim; the family-wise rate is the share of experiments with at least one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from slam import decision
from slam.decision import GRADE, HUMAN, SIMILARITY

ALPHA = 0.05


def mc_bound(rate: float, runs: int) -> float:
    """Three Monte Carlo standard errors of a rate estimated from `runs` experiments."""
    return 3 * math.sqrt(rate * (1 - rate) / runs)


@dataclass(frozen=True)
class Cell:
    """One kind of data. `means(rng, runs, prompts, candidates)` gives the true prompt means
    (runs, candidates, prompts); `observe(rng, p)` one observation per entry of p (same shape);
    `counts(rng, runs, prompts)` observations per prompt (runs, prompts)."""

    name: str
    kind: str
    threshold: float
    means: Callable[[np.random.Generator, int, int, int, float], np.ndarray]
    observe: Callable[[np.random.Generator, np.ndarray], np.ndarray]
    counts: Callable[[np.random.Generator, int, int], np.ndarray] | None = None


# --- true prompt means, centred on the margin (mean over prompts exactly `target`) -------------

def fail_tail(share: float) -> Callable:
    """Each prompt of the feature's traffic fails outright with probability `share` (a win
    rate of 0), the others are a little better than the margin, so the mean over the traffic
    is exactly `target`. Prompts fail for every candidate alike (they share prompts)."""
    def means(rng, runs, prompts, cands, target):
        good = target / (1 - share)
        failed = rng.random((runs, 1, prompts)) < share
        return np.broadcast_to(np.where(failed, 0.0, good), (runs, cands, prompts)).copy()
    return means


def constant(runs, prompts, cands, target):
    return np.full((runs, cands, prompts), target)


def spread_beta(concentration: float) -> Callable:
    """Prompt means that differ a lot (some easy for the small model, some hard): half a
    difficulty the candidates share, half their own; mean exactly `target` over the traffic."""
    def means(rng, runs, prompts, cands, target):
        a, b = target * concentration, (1 - target) * concentration
        shared = rng.beta(a, b, size=(runs, 1, prompts))
        own = rng.beta(a, b, size=(runs, cands, prompts))
        return 0.5 * shared + 0.5 * own
    return means


# --- observations -------------------------------------------------------------------------------

def wins_with_ties(tie: float) -> Callable:
    """Human or judge outcomes of mean p: a tie (0.5) with probability `tie` where p allows it,
    otherwise win (1) or loss (0)."""
    def observe(rng, p):
        t = np.minimum(tie, 2 * np.minimum(p, 1 - p))
        win = np.where(t < 1, (p - t / 2) / np.maximum(1 - t, 1e-12), 0.0)
        u = rng.random(p.shape)
        return np.where(u < t, 0.5, (rng.random(p.shape) < win).astype(float))
    return observe


def differences(sd: float, lo: float, hi: float) -> Callable:
    """Paired differences of mean p with normal noise of `sd`, kept in [lo, hi] (reflecting
    the noise keeps the mean)."""
    def observe(rng, p):
        return np.clip(p + sd * rng.standard_normal(p.shape), lo, hi)
    return observe


def tie_sd(mean: float, tie: float) -> float:
    """The sd of one outcome of `wins_with_ties(tie)` with this mean."""
    win = (mean - tie / 2) / (1 - tie)
    return math.sqrt(tie * 0.25 + (1 - tie) * win - mean * mean)


def exact(rng, p):
    return p


def skewed_counts(rng, runs, prompts):
    """1 to 40 observations per prompt, heavily skewed: most prompts once, a few many times."""
    return np.minimum(1 + rng.zipf(1.6, size=(runs, prompts)) - 1, 40)


# --- the decision, vectorized over experiments ---------------------------------------------------

def prompt_means(rng: np.random.Generator, cell: Cell, p: np.ndarray) -> np.ndarray:
    """The observed prompt means (runs, candidates, prompts)."""
    if cell.counts is None:
        return cell.observe(rng, p)
    runs, cands, prompts = p.shape
    k = cell.counts(rng, runs, prompts)  # the same count for every candidate of a prompt
    top = int(k.max())
    draws = cell.observe(rng, np.repeat(p[..., None], top, axis=-1))
    mask = np.arange(top)[None, None, None, :] < k[:, None, :, None]
    return (draws * mask).sum(axis=-1) / k[:, None, :]


def p_non_inferior(means: np.ndarray, kind: str, threshold: float, alpha: float) -> np.ndarray:
    """The raw p-value of H0 "mean <= threshold" for each (run, candidate): decision.Test."""
    lo, hi = decision.RANGES[kind]
    z = (means - lo) / (hi - lo)
    n = z.shape[-1]
    z = z[..., decision._orders(n)]  # (runs, cands, orders, prompts)
    m = (threshold - lo) / (hi - lo)
    return np.minimum(1.0, np.exp(-decision._final_log_wealth(z, m, alpha, 1)))


def claims(means: np.ndarray, kind: str, threshold: float, alpha: float) -> np.ndarray:
    """Whether decide() would call each candidate non-inferior: Holm over the candidates
    (all with at least MIN_PROMPTS prompts)."""
    p = p_non_inferior(means, kind, threshold, alpha)
    m = p.shape[1]
    order = np.argsort(p, axis=1, kind="stable")
    sorted_p = np.take_along_axis(p, order, axis=1)
    ok = sorted_p <= alpha / (m - np.arange(m))[None, :]
    passed = np.cumprod(ok, axis=1).astype(bool)  # step-down: stop at the first failure
    out = np.zeros_like(passed)
    np.put_along_axis(out, order, passed, axis=1)
    return out


def run_cell(cell: Cell, *, prompts: int, candidates: int = 1, runs: int, seed: int,
             alpha: float = ALPHA, threshold: float | None = None,
             true_mean: float | None = None, t_test: bool = False) -> float:
    """The share of experiments with any candidate called non-inferior. Under the null
    (true_mean None: on the margin) that is the false claim rate; above it, the power. With
    `t_test`: what a t test on the prompt means (the old decision, one candidate) claims."""
    rng = np.random.default_rng(seed)
    threshold = cell.threshold if threshold is None else threshold
    target = threshold if true_mean is None else true_mean
    out = 0
    for start in range(0, runs, 500):  # batches keep memory small at 200+ prompts x 40 counts
        r = min(500, runs - start)
        p = cell.means(rng, r, prompts, candidates, target)
        means = prompt_means(rng, cell, p)
        if t_test:
            out += int(t_claims(means[:, 0], threshold, alpha).sum())
        else:
            out += int(claims(means, cell.kind, threshold, alpha).any(axis=1).sum())
    return out / runs


def t_claims(means: np.ndarray, threshold: float, alpha: float) -> np.ndarray:
    """What a t test on the prompt means would claim (one candidate): the old test's error."""
    from scipy import stats as sps

    n = means.shape[-1]
    mean, sd = means.mean(axis=-1), means.std(axis=-1, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (mean - threshold) / (sd / math.sqrt(n))
    t = np.where(sd == 0, np.where(mean > threshold, np.inf, -np.inf), t)
    return sps.t.sf(t, n - 1) <= alpha


# --- the cells: every kind of data the acceptance names ------------------------------------------

def _wins(name, means, tie=0.0, counts=None, threshold=0.45):
    return Cell(name, HUMAN, threshold, means, wins_with_ties(tie), counts)


NULL_CELLS: list[Cell] = [
    _wins("win rate, 2% of prompts failed outright", fail_tail(0.02)),
    _wins("win rate, 10% of prompts failed outright", fail_tail(0.10)),
    _wins("win rate, 30% of prompts failed outright, 40% ties", fail_tail(0.30), tie=0.4),
    _wins("win rate, ties on 90% of prompts (near-identical), losses on the rest",
          lambda rng, r, n, c, t: _near(rng, r, n, c, t), tie=1.0),
    _wins("win rate, no ties, prompts differ a lot", spread_beta(2.0)),
    _wins("win rate, 40% ties", spread_beta(4.0), tie=0.4),
    _wins("win rate, 80% ties", spread_beta(4.0), tie=0.8),
    _wins("win rate, 1-40 ratings per prompt (heavy skew), prompts differ",
          spread_beta(2.0), counts=skewed_counts),
    _wins("win rate, 1-40 ratings per prompt, 10% failed outright, 20% ties", fail_tail(0.10),
          tie=0.2, counts=skewed_counts),
    _wins("win rate, margin 0.40, 5% failed outright", fail_tail(0.05), threshold=0.40),
    _wins("win rate, margin 0.48, every prompt a tie or a loss", fail_tail(0.04), tie=1.0,
          threshold=0.48),
    Cell("similarity, normal differences (sd 0.1)", SIMILARITY, -0.03,
         lambda rng, r, n, c, t: constant(r, n, c, t), differences(0.1, -2, 2)),
    Cell("similarity, 10% of prompts failed (difference -0.6), the rest near-identical",
         SIMILARITY, -0.03, lambda rng, r, n, c, t: _sim_tail(rng, r, n, c, t, 0.10, -0.6),
         differences(0.005, -2, 2)),
    Cell("similarity, 2% of prompts failed (difference -1.5)", SIMILARITY, -0.03,
         lambda rng, r, n, c, t: _sim_tail(rng, r, n, c, t, 0.02, -1.5),
         differences(0.05, -2, 2)),
    Cell("similarity, margin -0.05, identical answers on 90% of prompts", SIMILARITY, -0.05,
         lambda rng, r, n, c, t: _sim_tail(rng, r, n, c, t, 0.10, -0.5), exact),
    Cell("similarity, 1-40 samples per prompt, 5% failed", SIMILARITY, -0.03,
         lambda rng, r, n, c, t: _sim_tail(rng, r, n, c, t, 0.05, -0.6),
         differences(0.1, -2, 2), skewed_counts),
    Cell("judge grade, 10% of prompts failed (difference -6)", GRADE, -0.5,
         lambda rng, r, n, c, t: _sim_tail(rng, r, n, c, t, 0.10, -6.0),
         differences(0.5, -9, 9)),
]


def _near(rng, runs, prompts, cands, target):
    """The candidate answers as the reference does on most prompts (a tie) and loses the
    rest, with the share of losses putting the traffic's mean on the margin."""
    lose = (0.5 - target) / 0.5
    lost = rng.random((runs, 1, prompts)) < lose
    return np.broadcast_to(np.where(lost, 0.0, 0.5), (runs, cands, prompts)).copy()


def _sim_tail(rng, runs, prompts, cands, target, share, failed):
    """Differences near 0 (near-identical answers) on most prompts, `failed` on a share of the
    traffic's prompts; the mean over the traffic exactly `target`."""
    rest = (target - share * failed) / (1 - share)
    hit = rng.random((runs, 1, prompts)) < share
    return np.broadcast_to(np.where(hit, failed, rest), (runs, cands, prompts)).copy()


# Power cells: where the planner's assumptions hold (prompt means with the assumed mean and sd,
# of the planning distribution's shape), at the planner's size.
POWER_CELLS: list[tuple[Cell, decision.Margin]] = [
    (Cell("win rate 0.5, no ties (sd 0.5), margin 0.45", HUMAN, 0.45,
          lambda rng, r, n, c, t: constant(r, n, c, t), wins_with_ties(0.0)),
     decision.Margin(0.45, 0.5, 0.5)),
    (Cell("win rate 0.55, half ties (sd 0.35), margin 0.45", HUMAN, 0.45,
          lambda rng, r, n, c, t: constant(r, n, c, t), wins_with_ties(0.5)),
     decision.Margin(0.45, 0.55, tie_sd(0.55, 0.5))),
    (Cell("similarity difference 0, sd 0.1, margin -0.03", SIMILARITY, -0.03,
          lambda rng, r, n, c, t: constant(r, n, c, t), differences(0.1, -2, 2)),
     decision.Margin(-0.03, 0.0, 0.1)),
    (Cell("judge grade difference 0, sd 2, margin -0.5", GRADE, -0.5,
          lambda rng, r, n, c, t: constant(r, n, c, t), differences(2.0, -9, 9)),
     decision.Margin(-0.5, 0.0, 2.0)),
]


# --- raters of different leniency and speed (the sequential human decision) ------------------

def rater_cell(*, runs: int, prompts: int, leniency: Sequence[float], speed: Sequence[float],
               ratings: int, assigned: bool, seed: int, true_mean: float = 0.45,
               threshold: float = 0.45, alpha: float = ALPHA) -> float:
    """How often the sequential test ever claims non-inferiority (looking after every rating)
    when raters differ: rater r says "candidate wins" with probability true_mean + leniency[r]
    (the leniencies average to 0, so the win rate over the roster is `true_mean`) and rates at
    `speed[r]` ratings per unit of time; the raters together give `ratings` ratings.

    assigned=False: the rating queue serves prompts nobody has rated first, and the first
    rating of each prompt counts in arrival order (the decision before issue 33).
    assigned=True: each prompt's counted rating is assigned in advance uniformly to a rater
    (slam.roster) and counted in a fixed order; the queue serves each rater their assigned
    prompts first, so the counted sequence is a prefix of the fixed one."""
    rng = np.random.default_rng(seed)
    lean = np.asarray(leniency, dtype=np.float64)
    rate = np.asarray(speed, dtype=np.float64)
    k = len(lean)
    # Who rates when: rater r's j-th rating at time (j + jitter) / speed[r].
    times = np.concatenate([(np.arange(ratings) + rng.random(ratings)) / rate[r]
                            for r in range(k)])
    who = np.concatenate([np.full(ratings, r) for r in range(k)])
    first = np.argsort(times, kind="stable")[:ratings]
    horizon = times[first[-1]]
    if not assigned:
        raters = who[first][:prompts]  # each new rating is a new prompt's first rating
        p = np.clip(true_mean + lean[raters], 0, 1)
        x = (rng.random((runs, len(raters))) < p).astype(float)
    else:
        done = np.floor(horizon * rate)  # ratings each rater has given by the horizon
        a = rng.integers(0, k, size=(runs, prompts))  # the assigned rater of each prompt
        rank = np.zeros((runs, prompts))
        for r in range(k):
            mine = a == r
            rank[mine] = (np.cumsum(mine, axis=1) - 1)[mine]
        ready = rank < done[a]
        prefix = np.where(ready.all(axis=1), prompts, np.argmin(ready, axis=1))
        p = np.clip(true_mean + lean[a], 0, 1)
        x = (rng.random((runs, prompts)) < p).astype(float)
        # past the prefix the sequence has not been seen: neutral values cannot cross
        x = np.where(np.arange(prompts)[None, :] < prefix[:, None], x, threshold)
    wealth = decision.log_wealth(x, threshold, alpha=alpha, side=1)
    return float(np.mean((wealth >= math.log(1 / alpha)).any(axis=1)))
