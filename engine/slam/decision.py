"""The pre-registered decision: is a candidate at most a little worse than the reference?

Pure functions, no I/O. Each kind of evidence gives, per candidate, observations grouped by prompt
(a human choice or judge verdict against the reference: 1 win, 0.5 tie, 0 loss; or a paired
difference of similarity or judge grade). The quantity tested is the mean over observations.

Method (written down in the README):
- Observations of one prompt share the prompt's difficulty (several samples, several raters), so
  they are not independent. The standard error is the cluster-robust one with prompts as clusters
  (Liang-Zeger CR1 for a mean), and the reference distribution Student's t with G-1 degrees of
  freedom (G prompts). Treating the observations as independent understates the error; the
  simulations in tests/engine/test_decision.py show by how much.
- Candidate k is *non-inferior* when H0 "mean <= threshold" is rejected, i.e. its one-sided lower
  bound at the level Holm's step-down assigns it clears the threshold; *inferior* when H0 "mean >=
  threshold" is rejected the same way (upper bound below the threshold); otherwise *undecided*.
  Holm controls the family-wise error over the candidates compared with one reference, separately
  for the claims "non-inferior" and "inferior".
- Planning: the number of prompts for which the one-sided t-test at level alpha/m (Bonferroni,
  Holm's first step: conservative) has the planned power when the true mean is `assumed`, from
  the noncentral t distribution, for a stated standard deviation of one prompt's mean.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# Evidence in the order an "auto" decision prefers it: people over the judge over similarity.
HUMAN, JUDGE, SIMILARITY, GRADE = "humanWinRate", "judgeWinRate", "similarity", "judgeGrade"
EVIDENCE = (HUMAN, JUDGE, SIMILARITY, GRADE)
LABELS = {HUMAN: "human win rate", JUDGE: "judge win rate",
          SIMILARITY: "similarity difference", GRADE: "judge grade difference"}
UNITS = {HUMAN: "ratings", JUDGE: "judged pairs", SIMILARITY: "scored answers",
         GRADE: "graded answers"}
MIN_PROMPTS = 10  # fewer prompts: undecided whatever the data say (t with < 9 df is too fragile)

NON_INFERIOR, INFERIOR, UNDECIDED = "non-inferior", "inferior", "undecided"


@dataclass(frozen=True)
class Margin:
    """What "at most a little worse" means for one kind of evidence: the candidate's mean must
    exceed `threshold` (a win rate of at least 0.45; a difference of at least -0.03).
    `assumed`: the true mean planning assumes; `sd`: the standard deviation of one prompt's mean
    planning assumes (the observed one is used once there are data)."""

    threshold: float
    assumed: float
    sd: float


@dataclass(frozen=True)
class Clustered:
    """A mean with its prompt-clustered standard error."""

    mean: float
    se: float
    prompts: int
    observations: int
    sd_prompt: float  # standard deviation of the per-prompt means (what planning needs)


def clustered_mean(values: Sequence[float], clusters: Sequence[Hashable]) -> Clustered | None:
    """Mean of `values` and its CR1 standard error with `clusters` (prompt ids) as clusters."""
    y = np.asarray(values, dtype=np.float64)
    if len(y) == 0:
        return None
    _, idx = np.unique(np.asarray([str(c) for c in clusters]), return_inverse=True)
    g = int(idx.max()) + 1
    n = len(y)
    mean = float(y.mean())
    sums = np.bincount(idx, weights=y - mean, minlength=g)
    se = math.sqrt(g / (g - 1) * float((sums ** 2).sum())) / n if g > 1 else math.inf
    counts = np.bincount(idx, minlength=g)
    means = np.bincount(idx, weights=y, minlength=g) / counts
    sd = float(means.std(ddof=1)) if g > 1 else math.nan
    return Clustered(mean, se, g, n, sd)


@dataclass(frozen=True)
class Decision:
    candidate: str
    evidence: str  # one of EVIDENCE
    verdict: str  # NON_INFERIOR | INFERIOR | UNDECIDED
    threshold: float
    estimate: float | None
    lower: float | None  # one-sided bounds at `level`
    upper: float | None
    level: float  # the one-sided error level of the bounds (Holm's step for this candidate)
    p_non_inferior: float | None  # Holm-adjusted, H0: mean <= threshold
    p_inferior: float | None  # Holm-adjusted, H0: mean >= threshold
    prompts: int
    observations: int
    more_prompts: int | None  # undecided: further prompts expected to decide (None: cannot say)
    more_observations: int | None
    why: str  # one line a stakeholder reads

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v)
                for k, v in self.__dict__.items()}


def _t():
    from scipy import stats as sps  # lazy: scipy.stats costs ~1 s to import

    return sps.t


def p_values(c: Clustered, threshold: float) -> tuple[float, float]:
    """One-sided p-values for H0 "mean <= threshold" and H0 "mean >= threshold"."""
    if c.prompts < 2:
        return 1.0, 1.0
    if c.se == 0:
        return (0.0, 1.0) if c.mean > threshold else (1.0, 0.0) if c.mean < threshold \
            else (1.0, 1.0)
    z = (c.mean - threshold) / c.se
    t = _t()
    return float(t.sf(z, c.prompts - 1)), float(t.cdf(z, c.prompts - 1))


def holm(p: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (reject where adjusted p <= alpha)."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def holm_levels(p: Sequence[float], alpha: float) -> list[float]:
    """The level Holm's procedure tests each hypothesis at: alpha/(m - rank)."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    levels = [alpha] * m
    for rank, i in enumerate(order):
        levels[i] = alpha / (m - rank)
    return levels


def power_at(prompts: int, sd: float, assumed: float, threshold: float, *,
             alpha: float) -> float:
    """Probability that the one-sided t-test of H0 "mean <= threshold" at level `alpha` rejects
    on `prompts` prompts when the true mean is `assumed` (noncentral t)."""
    if prompts < 2:
        return 0.0
    if sd <= 0:
        return 1.0 if assumed > threshold else 0.0
    from scipy import stats as sps

    df = prompts - 1
    return float(sps.nct.sf(sps.t.ppf(1 - alpha, df), df,
                            (assumed - threshold) * math.sqrt(prompts) / sd))


def prompts_needed(sd: float, assumed: float, threshold: float, *, alpha: float, power: float,
                   limit: int = 10_000_000) -> int | None:
    """Smallest number of prompts at which the one-sided t-test of H0 "mean <= threshold" at
    level `alpha` has `power` when the true mean is `assumed` and one prompt's mean has standard
    deviation `sd`. None when `assumed` does not exceed the threshold (no number of prompts
    can show a candidate at or below the margin to be non-inferior)."""
    effect = assumed - threshold
    if effect <= 0 or not math.isfinite(sd):
        return None
    if sd <= 0:
        return 2
    from scipy.stats import norm

    z = (norm.ppf(1 - alpha) + norm.ppf(power)) * sd / effect
    lo = max(2, int(z * z) - 1)  # the normal approximation needs fewer than t does
    if lo > limit:
        return None
    hi = lo
    while power_at(hi, sd, assumed, threshold, alpha=alpha) < power:
        lo, hi = hi, hi * 2
        if hi > limit:
            return None
    while lo < hi:  # the smallest count in [lo, hi] with enough power
        mid = (lo + hi) // 2
        if power_at(mid, sd, assumed, threshold, alpha=alpha) >= power:
            hi = mid
        else:
            lo = mid + 1
    return hi


@dataclass(frozen=True)
class PlanRow:
    evidence: str
    margin: Margin
    alpha_each: float  # the level of Holm's first step: alpha / candidates
    power: float
    prompts_needed: int | None
    prompts: int  # what the prompt set has
    power_with_prompts: float  # what the prompt set gives

    def line(self) -> str:
        m = self.margin
        head = (f"{LABELS[self.evidence]} > {m.threshold:g} (assuming {m.assumed:g}, sd "
                f"{m.sd:g} per prompt): ")
        if self.prompts_needed is None:
            return head + "cannot be planned (the assumed value does not clear the margin)"
        unit = "prompts, each rated once per candidate" if self.evidence == HUMAN else \
            "prompts"
        verdict = "enough" if self.prompts >= self.prompts_needed else \
            f"short by {self.prompts_needed - self.prompts}"
        return (head + f"{self.prompts_needed} {unit} for {self.power:.0%} power at "
                f"alpha {self.alpha_each:.3g} per candidate; the prompt set has {self.prompts} "
                f"({verdict}; power {self.power_with_prompts:.0%})")


def plan(margins: Mapping[str, Margin], *, candidates: int, prompts: int, alpha: float,
         power: float) -> list[PlanRow]:
    """Per kind of evidence, the prompts needed for the planned power (Bonferroni over the
    candidates: Holm's first step) and the power the prompt set gives."""
    each = alpha / max(candidates, 1)
    return [PlanRow(kind, m, each, power,
                    prompts_needed(m.sd, m.assumed, m.threshold, alpha=each, power=power),
                    prompts, power_at(prompts, m.sd, m.assumed, m.threshold, alpha=each))
            for kind, m in margins.items()]


@dataclass(frozen=True)
class Evidence:
    """What one candidate is judged on: the kind of evidence, its data and its margin."""

    kind: str  # one of EVIDENCE
    data: Clustered | None
    margin: Margin


def choose(available: Mapping[str, Clustered | None], preferred: str = "auto") -> str:
    """The evidence a candidate is judged on: `preferred`, or (auto) the first in EVIDENCE with
    data on MIN_PROMPTS prompts, else the first with any data, else human ratings."""
    if preferred != "auto":
        return preferred
    for need in (MIN_PROMPTS, 1):
        for kind in EVIDENCE:
            d = available.get(kind)
            if d is not None and d.prompts >= need:
                return kind
    return HUMAN


def decide(items: Mapping[str, Evidence], *, alpha: float, power: float) -> dict[str, Decision]:
    """The decision for each candidate, with Holm's correction over the candidates that have
    enough prompts to be tested (one family per claim: non-inferior, inferior)."""
    testable = [c for c, e in items.items() if e.data is not None
                and e.data.prompts >= MIN_PROMPTS]
    raw = [p_values(items[c].data, items[c].margin.threshold) for c in testable]
    p_ni, p_inf = holm([r[0] for r in raw]), holm([r[1] for r in raw])
    lv_ni = holm_levels([r[0] for r in raw], alpha)
    lv_inf = holm_levels([r[1] for r in raw], alpha)
    m = len(testable)
    out: dict[str, Decision] = {}
    for cand, e in items.items():
        d, threshold = e.data, e.margin.threshold
        label, unit = LABELS[e.kind], UNITS[e.kind]
        if cand not in testable:
            have = 0 if d is None else d.prompts
            out[cand] = Decision(
                cand, e.kind, UNDECIDED, threshold, None if d is None else d.mean, None, None,
                alpha, None, None, have, 0 if d is None else d.observations,
                MIN_PROMPTS - have, None,
                f"undecided: {label} covers {have} prompts, {MIN_PROMPTS} are needed to test")
            continue
        i = testable.index(cand)
        if p_ni[i] <= alpha:
            verdict, level = NON_INFERIOR, lv_ni[i]
        elif p_inf[i] <= alpha:
            verdict, level = INFERIOR, lv_inf[i]
        else:
            verdict, level = UNDECIDED, min(lv_ni[i], lv_inf[i])
        q = float(_t().ppf(1 - level, d.prompts - 1))
        lower, upper = d.mean - q * d.se, d.mean + q * d.se
        more_p = more_o = None
        if verdict == UNDECIDED:
            # At the current estimate and spread: prompts for `power` to settle the claim the
            # estimate leans to, at the level of Holm's first step (alpha/m: conservative).
            lean = d.mean if d.mean >= threshold else 2 * threshold - d.mean
            need = prompts_needed(d.sd_prompt, lean, threshold, alpha=alpha / m, power=power)
            if need is not None:
                more_p = max(need - d.prompts, 1)
                more_o = math.ceil(more_p * d.observations / d.prompts)
        out[cand] = Decision(
            cand, e.kind, verdict, threshold, d.mean, lower, upper, level, p_ni[i], p_inf[i],
            d.prompts, d.observations, more_p, more_o,
            _why(verdict, label, unit, d, lower, upper, level, threshold, more_p, more_o))
    return out


def _why(verdict: str, label: str, unit: str, d: Clustered, lower: float, upper: float,
         level: float, threshold: float, more_p: int | None, more_o: int | None) -> str:
    conf = f"{100 * (1 - level):.4g}%"
    est = f"{label} {d.mean:.3f} over {d.observations} {unit} on {d.prompts} prompts"
    if verdict == NON_INFERIOR:
        return f"non-inferior: {est}; {conf} lower bound {lower:.3f} > {threshold:g}"
    if verdict == INFERIOR:
        return f"inferior: {est}; {conf} upper bound {upper:.3f} < {threshold:g}"
    if more_p is None:
        return (f"undecided: {est}; {conf} bounds {lower:.3f}..{upper:.3f} straddle "
                f"{threshold:g}, and the estimate sits on it: no amount of data is expected "
                "to decide")
    return (f"undecided: {est}; {conf} bounds {lower:.3f}..{upper:.3f} straddle {threshold:g}; "
            f"about {more_p} more prompts ({more_o} {unit}) expected to decide")


# --- sequential (anytime-valid) decision on human ratings -------------------------------------
#
# Raters keep rating and owners keep looking: a fixed-sample test checked after every rating
# claims far more than alpha (tests/engine/test_decision.py shows how much). The betting test of
# Waudby-Smith & Ramdas (2023, "Estimating means of bounded random variables by betting", the
# predictable plug-in bet) is valid at every rating: the wealth of a bettor against H0 "mean <=
# threshold" is a nonnegative supermartingale under H0, so by Ville's inequality it ever reaches
# 1/alpha with probability at most alpha. Its observations must have the same conditional mean:
# the first rating of each prompt for the pair (prompts drawn from the feature's traffic, served
# in an order that does not depend on the answers: the rating queue's order depends only on
# counts and a per-rater shuffle). Several candidates: Bonferroni (alpha / candidates).

BET_CAP = 0.5  # bet at most half the wealth that could be lost (WSR's c = 1/2)


def log_wealth(x: np.ndarray, m: float | np.ndarray, *, alpha: float, side: int = 1
               ) -> np.ndarray:
    """Log-wealth after each observation of the bettor against H0 "mean <= m" (side=1) or
    "mean >= m" (side=-1), for observations in [0, 1] along the last axis of `x`; `m` broadcasts
    against x's leading axes (a column of thresholds gives one row of wealth per threshold)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    t = np.arange(1, n + 1, dtype=np.float64)
    mu = (0.5 + np.cumsum(x, axis=-1)) / (t + 1)
    mu_before = np.concatenate([np.full(x.shape[:-1] + (1,), 0.5), mu[..., :-1]], axis=-1)
    var = (0.25 + np.cumsum((x - mu_before) ** 2, axis=-1)) / (t + 1)
    var_before = np.concatenate([np.full(x.shape[:-1] + (1,), 0.25), var[..., :-1]], axis=-1)
    lam = np.sqrt(2 * math.log(1 / alpha) / (var_before * t * np.log1p(t)))
    m = np.asarray(m, dtype=np.float64)
    cap = BET_CAP / np.clip(m if side > 0 else 1 - m, 1e-9, None)
    lam = np.minimum(lam, cap)
    return np.cumsum(np.log1p(side * lam * (x - m)), axis=-1)


@dataclass(frozen=True)
class Sequential:
    """The anytime-valid verdict on a sequence of first ratings (time order)."""

    verdict: str
    decided_at: int | None  # the rating (1-based) at which the verdict was reached
    n: int
    estimate: float | None
    lower: np.ndarray  # the confidence sequence after each rating (running intersection)
    upper: np.ndarray


GRID = np.linspace(0.0025, 0.9975, 399)


def sequential(x: Sequence[float], threshold: float, *, alpha: float) -> Sequential:
    """Non-inferior at the first rating where the bet against "mean <= threshold" reaches
    1/alpha, inferior where the bet against "mean >= threshold" does; otherwise undecided. The
    confidence sequence (for the chart) is the set of means neither bet has rejected."""
    y = np.asarray(x, dtype=np.float64)
    if len(y) == 0:
        empty = np.zeros(0)
        return Sequential(UNDECIDED, None, 0, None, empty, empty)
    level = math.log(1 / alpha)
    up = log_wealth(y, threshold, alpha=alpha, side=1)
    down = log_wealth(y, threshold, alpha=alpha, side=-1)
    hit_up = np.flatnonzero(up >= level)
    hit_down = np.flatnonzero(down >= level)
    first_up = int(hit_up[0]) if len(hit_up) else None
    first_down = int(hit_down[0]) if len(hit_down) else None
    verdict, at = UNDECIDED, None
    if first_up is not None and (first_down is None or first_up <= first_down):
        verdict, at = NON_INFERIOR, first_up + 1
    elif first_down is not None:
        verdict, at = INFERIOR, first_down + 1
    grid = GRID[:, None]
    kept_low = log_wealth(y[None, :], grid, alpha=alpha, side=1) < level  # (grid, n)
    kept_high = log_wealth(y[None, :], grid, alpha=alpha, side=-1) < level
    lower = np.where(kept_low.any(axis=0), GRID[np.argmax(kept_low, axis=0)], 1.0)
    upper = np.where(kept_high.any(axis=0),
                     GRID[len(GRID) - 1 - np.argmax(kept_high[::-1], axis=0)], 0.0)
    lower = np.maximum.accumulate(np.maximum(lower - GRID[0], 0.0))
    upper = np.minimum.accumulate(np.minimum(upper + GRID[0], 1.0))
    return Sequential(verdict, at, len(y), float(y.mean()), lower, upper)


def sequential_decision(candidate: str, first: Sequence[float], data: Clustered | None,
                        margin: Margin, *, alpha: float, power: float = 0.8
                        ) -> tuple[Decision, Sequential]:
    """The anytime-valid decision on a candidate's first ratings per prompt (time order), at
    level `alpha` (already split over the candidates); `data`: all its ratings, for the counts."""
    s = sequential(first, margin.threshold, alpha=alpha)
    conf = f"{100 * (1 - alpha):.4g}%"
    lower = float(s.lower[-1]) if s.n else None
    upper = float(s.upper[-1]) if s.n else None
    ratings = data.observations if data else 0
    head = (f"human win rate {s.estimate:.3f} over the first ratings of {s.n} prompts "
            f"({ratings} ratings)" if s.n else "no human ratings yet")
    if s.verdict == NON_INFERIOR:
        why = (f"non-inferior: {head}; decided at rating {s.decided_at}, when the anytime-valid "
               f"{conf} lower bound cleared {margin.threshold:g}")
    elif s.verdict == INFERIOR:
        why = (f"inferior: {head}; decided at rating {s.decided_at}, when the anytime-valid "
               f"{conf} upper bound fell below {margin.threshold:g}")
    more = None
    if s.verdict == UNDECIDED and s.n >= 2:
        # At the current estimate and spread, the prompts a fixed-sample test would need for
        # `power`: a floor for the anytime-valid test, which pays for looking at every rating.
        sd = float(np.std(np.asarray(first, dtype=np.float64), ddof=1))
        lean = s.estimate if s.estimate >= margin.threshold else 2 * margin.threshold - s.estimate
        need = prompts_needed(sd, lean, margin.threshold, alpha=alpha, power=power)
        more = None if need is None else max(need - s.n, 1)
    if s.verdict == UNDECIDED and s.n:
        expect = ("the estimate sits on the margin: no amount of data is expected to decide"
                  if more is None else f"at least {more} more prompts rated")
        why = (f"undecided: {head}; anytime-valid {conf} bounds {lower:.3f}..{upper:.3f} "
               f"straddle {margin.threshold:g}: keep rating, {expect} (looking after every "
               "rating is allowed)")
    elif s.verdict == UNDECIDED:
        why = "undecided: no human ratings yet"
    return Decision(candidate, HUMAN, s.verdict, margin.threshold, s.estimate, lower, upper,
                    alpha, None, None, s.n, ratings, more, more, why), s
