"""The pre-registered decision: is a candidate at most a little worse than the reference?

Pure functions, no I/O. Each kind of evidence gives, per candidate, observations grouped by prompt
(a human choice or judge verdict against the reference: 1 win, 0.5 tie, 0 loss; or a paired
difference of similarity or judge grade). The quantity tested is the mean over prompts of each
prompt's mean: every prompt weighs the same, however often it was rated or sampled.

Method (written down in the README, simulated in tests/engine/test_decision_sim.py and
bench/decision.py):
- Both kinds of evidence are bounded (RANGES): a win rate lies in [0, 1], a similarity
  difference in [-2, 2], a grade difference in [-9, 9]. The fixed-sample test is a betting test
  for bounded means (Waudby-Smith & Ramdas 2023, "Estimating means of bounded random variables by
  betting", predictable plug-in bets tuned to the sample size): a bettor against H0 "mean <=
  threshold" stakes a share of its wealth on each prompt's mean in turn; under H0 its wealth is a
  nonnegative supermartingale, so it reaches 1/alpha with probability at most alpha (Ville) --
  whatever the shape of the data: a few prompts failed outright, answers equal to the
  reference's on most prompts, ties, a zero variance. Prompts are bet on in PERMUTATIONS seeded
  orders and the wealths averaged (a mean of e-values is an e-value), so the verdict does not
  hang on one order. The p-value is 1/wealth (Markov). A t test here claims "non-inferior" far
  more often than alpha at small and moderate prompt counts (the simulations show how much).
- Candidate k is *non-inferior* when H0 "mean <= threshold" is rejected at the level Holm's
  step-down assigns it; *inferior* when H0 "mean >= threshold" is rejected the same way;
  otherwise *undecided*. Holm controls the family-wise error over the candidates compared with
  one reference, separately for the claims "non-inferior" and "inferior". The bounds reported
  are the thresholds the same test rejects at that level (a confidence interval by inversion).
- Planning: the number of prompts at which this test, at level alpha/m (Bonferroni, Holm's first
  step: conservative), has the planned power when prompts' means have the assumed mean and
  standard deviation: the log-wealth is a sum over prompts whose moments are computed exactly
  for a planning distribution (win rates: wins, ties and losses; differences: a normal clipped
  to the range), and its tail from those moments (Edgeworth). Never fewer than MIN_PROMPTS.
"""

from __future__ import annotations

import functools
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
# What one observation can be: the test's validity rests on these bounds, so values outside
# them are refused (DecisionInputError), never clipped.
RANGES = {HUMAN: (0.0, 1.0), JUDGE: (0.0, 1.0), SIMILARITY: (-2.0, 2.0), GRADE: (-9.0, 9.0)}
FIELDS = {HUMAN: "choice", JUDGE: "verdict", SIMILARITY: "similarity", GRADE: "grade"}
MIN_PROMPTS = 10  # fewer prompts: undecided whatever the data say; the planner never asks fewer
BET_CAP = 0.5  # the sequential bettor stakes at most half of what it could lose (WSR c=1/2)
BET_SHARE = 0.75  # the fixed-sample bettor stakes at most this share of what it could lose
PERMUTATIONS = 8  # orders the prompts are bet on in (seeded; wealths averaged)
PLAN_LIMIT = 1_000_000  # prompts beyond which the planner says "cannot be planned"

NON_INFERIOR, INFERIOR, UNDECIDED = "non-inferior", "inferior", "undecided"


class DecisionInputError(ValueError):
    """A value the decision cannot use (not a number, infinite, outside its range, a planning
    sd that is not positive); the message names the candidate, prompt and field."""


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
    """Observations grouped by prompt: the mean over prompts of each prompt's mean, with the
    standard error of that mean (the spread of prompt means / sqrt(prompts))."""

    mean: float
    se: float
    prompts: int
    observations: int
    sd_prompt: float  # standard deviation of the per-prompt means (what planning needs)
    means: tuple[float, ...] = ()  # each prompt's mean, in the order prompts first appear


def _check_values(y: np.ndarray, clusters: Sequence[Hashable], kind: str | None,
                  candidate: str | None) -> None:
    where = f"{candidate}: " if candidate else ""
    field = f"{LABELS[kind]} ({FIELDS[kind]})" if kind else "value"
    bad = ~np.isfinite(y)
    if kind is not None:
        lo, hi = RANGES[kind]
        bad |= (y < lo) | (y > hi)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        rng = f" outside [{RANGES[kind][0]:g}, {RANGES[kind][1]:g}]" if kind else ""
        what = "not a number" if math.isnan(y[i]) else "infinite" if math.isinf(y[i]) else \
            f"{y[i]:g},{rng}"
        raise DecisionInputError(
            f"{where}prompt {clusters[i]!r}: {field} is {what}; "
            f"{int(bad.sum())} such value(s) in all. Fix or remove them in the results store "
            "before deciding: the test's error level holds only for values in range")


def clustered_mean(values: Sequence[float], clusters: Sequence[Hashable], *,
                   kind: str | None = None, candidate: str | None = None) -> Clustered | None:
    """Observations `values` grouped by `clusters` (prompt ids, compared as given: 1 and "1"
    are two prompts). With `kind`, values outside its RANGES are refused; NaN and infinities
    always are (DecisionInputError naming `candidate`, the prompt and the field)."""
    y = np.asarray(values, dtype=np.float64)
    if len(y) != len(clusters):
        raise DecisionInputError(f"{candidate + ': ' if candidate else ''}{len(y)} values but "
                                 f"{len(clusters)} prompt ids: each value needs its prompt")
    if len(y) == 0:
        return None
    _check_values(y, clusters, kind, candidate)
    index: dict[tuple[type, Hashable], int] = {}
    idx = np.fromiter((index.setdefault((type(c), c), len(index)) for c in clusters),
                      dtype=np.int64, count=len(y))
    g = len(index)
    counts = np.bincount(idx, minlength=g)
    means = np.bincount(idx, weights=y, minlength=g) / counts
    mean = float(means.mean())
    sd = float(means.std(ddof=1)) if g > 1 else math.nan
    se = sd / math.sqrt(g) if g > 1 else math.inf
    return Clustered(mean, se, g, len(y), sd, tuple(float(v) for v in means))


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
    # Undecided, and no further rating of this prompt set can change it (a sequential human
    # decision whose every prompt has its counted rating): more prompts, or other evidence.
    exhausted: bool = False

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v)
                for k, v in self.__dict__.items()}


# --- the betting test ---------------------------------------------------------------------------

def log_wealth(x: np.ndarray, m: float | np.ndarray, *, alpha: float, side: int = 1,
               horizon: int | None = None, share: float | None = None) -> np.ndarray:
    """Log-wealth after each observation of the bettor against H0 "mean <= m" (side=1) or
    "mean >= m" (side=-1), for observations in [0, 1] along the last axis of `x`; `m` broadcasts
    against x's leading axes (a column of thresholds gives one row of wealth per threshold).

    The bet on observation t is the predictable plug-in of Waudby-Smith & Ramdas: from the
    running mean and variance of the observations before it, sqrt(2 log(1/alpha) / (var * r_t))
    with r_t = t log(1 + t) when the test may stop at any time (`horizon` None: the sequential
    test) or r_t = horizon for a fixed sample; capped at `share` of what a loss could take."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    t = np.arange(1, n + 1, dtype=np.float64)
    mu = (0.5 + np.cumsum(x, axis=-1)) / (t + 1)
    mu_before = np.concatenate([np.full(x.shape[:-1] + (1,), 0.5), mu[..., :-1]], axis=-1)
    var = (0.25 + np.cumsum((x - mu_before) ** 2, axis=-1)) / (t + 1)
    var_before = np.concatenate([np.full(x.shape[:-1] + (1,), 0.25), var[..., :-1]], axis=-1)
    rate = t * np.log1p(t) if horizon is None else float(horizon)
    lam = np.sqrt(2 * math.log(1 / alpha) / (var_before * rate))
    m = np.asarray(m, dtype=np.float64)
    share = (BET_CAP if horizon is None else BET_SHARE) if share is None else share
    cap = share / np.clip(m if side > 0 else 1 - m, 1e-9, None)
    lam = np.minimum(lam, cap)
    return np.cumsum(np.log1p(side * lam * (x - m)), axis=-1)


def _orders(n: int) -> np.ndarray:
    """PERMUTATIONS seeded orders of n prompts (the first is the given order)."""
    rng = np.random.default_rng(20_261_203 + n)
    return np.stack([np.arange(n)] + [rng.permutation(n) for _ in range(PERMUTATIONS - 1)])


def _final_log_wealth(z: np.ndarray, m: float | np.ndarray, alpha: float, side: int
                      ) -> np.ndarray:
    """log of the wealth averaged over the orders, at the end of the sample; z: (orders, n)."""
    m = np.asarray(m, dtype=np.float64)
    lw = log_wealth(z, m[..., None, None] if m.ndim else m, alpha=alpha, side=side,
                    horizon=z.shape[-1])[..., -1]
    top = lw.max(axis=-1, keepdims=True)
    return (top + np.log(np.exp(lw - top).mean(axis=-1, keepdims=True)))[..., 0]


@dataclass(frozen=True)
class Test:
    """The fixed-sample betting test of one candidate at one threshold (normalized units)."""

    z: np.ndarray  # (orders, prompts): prompt means mapped to [0, 1]
    lo: float
    hi: float

    @classmethod
    def of(cls, data: Clustered, kind: str) -> Test:
        lo, hi = RANGES[kind]
        z = (np.asarray(data.means, dtype=np.float64) - lo) / (hi - lo)
        return cls(z[_orders(len(z))], lo, hi)

    def norm(self, v: float) -> float:
        return (v - self.lo) / (self.hi - self.lo)

    def p_values(self, threshold: float, alpha: float) -> tuple[float, float]:
        """p for H0 "mean <= threshold" and for H0 "mean >= threshold": 1/wealth, at most 1.
        (The bets are tuned for `alpha`, the family-wise level; any level may be read off.)"""
        m = self.norm(threshold)
        out = []
        for side in (1, -1):
            if (side > 0 and m <= 0) or (side < 0 and m >= 1):
                out.append(0.0)  # a threshold at the range's end: no mean is below it
            elif (side > 0 and m >= 1) or (side < 0 and m <= 0):
                out.append(1.0)
            else:
                out.append(float(min(1.0, math.exp(-_final_log_wealth(self.z, m, alpha, side)))))
        return out[0], out[1]

    def bounds(self, level: float, alpha: float) -> tuple[float, float]:
        """The one-sided bounds at `level`: the highest threshold H0 "mean <= threshold" is
        rejected below, and the lowest H0 "mean >= threshold" is rejected above."""
        need = math.log(1 / level)

        def edge(side: int) -> float:
            # Rejection holds on one side of a single edge (the wealth is monotone in m).
            a, b = 1e-9, 1 - 1e-9

            def rejected_at(v: float) -> bool:
                return bool(_final_log_wealth(self.z, v, alpha, side) >= need)

            inside = a if side > 0 else b  # the end where rejection is likeliest
            if not rejected_at(inside):
                return 0.0 if side > 0 else 1.0
            for _ in range(40):
                mid = (a + b) / 2
                if rejected_at(mid) == (side > 0):
                    a = mid
                else:
                    b = mid
            return a if side > 0 else b

        span = self.hi - self.lo
        return self.lo + edge(1) * span, self.lo + edge(-1) * span


def p_values(c: Clustered, threshold: float, kind: str = HUMAN, *, alpha: float = 0.05
             ) -> tuple[float, float]:
    """One-sided p-values for H0 "mean <= threshold" and H0 "mean >= threshold" (betting)."""
    if c.prompts < 2:
        return 1.0, 1.0
    return Test.of(c, kind).p_values(threshold, alpha)


def _holm_order(p: Sequence[float]) -> tuple[list[float], list[int]]:
    """The p-values checked (NaN and values outside [0, 1] refused: DecisionInputError, they
    would steer the others' verdicts), and Holm's order: smallest first, ties by position."""
    out = [float(v) for v in p]
    for i, v in enumerate(out):
        if not (0.0 <= v <= 1.0):  # NaN fails this too
            raise DecisionInputError(
                f"p-value {i + 1} of {len(out)} is {v!r}, not between 0 and 1: Holm's order "
                "would depend on it, and so would every other candidate's verdict")
    return out, sorted(range(len(out)), key=lambda i: (out[i], i))


def holm(p: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (reject where adjusted p <= alpha)."""
    p, order = _holm_order(p)
    m = len(p)
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def holm_levels(p: Sequence[float], alpha: float) -> list[float]:
    """The level Holm's procedure tests each hypothesis at: alpha/(m - rank)."""
    p, order = _holm_order(p)
    levels = [alpha] * len(p)
    for rank, i in enumerate(order):
        levels[i] = alpha / (len(p) - rank)
    return levels


def holm_blocker(p: Sequence[float], alpha: float) -> list[int | None]:
    """For each hypothesis whose raw p clears its own Holm level but is not rejected: the index
    of the hypothesis at which Holm's step-down stopped (else None)."""
    p, order = _holm_order(p)
    levels = holm_levels(p, alpha)
    stop = next((rank for rank, i in enumerate(order) if p[i] > levels[i]), None)
    out: list[int | None] = [None] * len(p)
    if stop is not None:
        for rank, i in enumerate(order):
            if rank > stop and p[i] <= levels[i]:
                out[i] = order[stop]
    return out


# --- planning ------------------------------------------------------------------------------------

def _check_margin(margin: Margin, kind: str, field: str) -> None:
    lo, hi = RANGES[kind]
    for name, v in (("atLeast", margin.threshold), ("assumed", margin.assumed),
                    ("sd", margin.sd)):
        if not math.isfinite(v):
            raise DecisionInputError(f"{field}.{name} is {v!r}: give a number")
    if margin.sd <= 0:
        raise DecisionInputError(
            f"{field}.sd is {margin.sd:g}: give the standard deviation of one prompt's mean "
            "that you expect (above 0; e.g. 0.5 for a win rate without ties). A zero spread "
            "is never assumed: it would promise a verdict from a handful of prompts")
    if not lo <= margin.assumed <= hi or not lo <= margin.threshold <= hi:
        raise DecisionInputError(f"{field}: atLeast and assumed must lie in [{lo:g}, {hi:g}], "
                                 f"the range of a {LABELS[kind]}")


def largest_sd(kind: str, mean: float) -> float:
    """The largest sd a prompt mean of this kind with this mean can have (all of it at the
    range's two ends); a planning sd above it is planned at it."""
    lo, hi = RANGES[kind]
    return math.sqrt(max(0.0, (mean - lo) * (hi - mean)))


def _planning_points(kind: str, mean: float, sd: float) -> tuple[np.ndarray, np.ndarray]:
    """A distribution of prompt means (normalized to [0, 1]) with the assumed mean and sd:
    win rates as wins, ties and losses where that fits, otherwise (and for differences) a
    normal clipped to the range, by quantiles."""
    lo, hi = RANGES[kind]
    mu, s = (mean - lo) / (hi - lo), sd / (hi - lo)
    if kind in (HUMAN, JUDGE):
        tie = 4 * (mu - mu * mu - s * s)
        win = mu - tie / 2
        if tie >= 0 and win >= 0 and 1 - win - tie >= 0:
            return np.array([0.0, 0.5, 1.0]), np.array([1 - win - tie, tie, win])
    from scipy.stats import norm

    q = norm.ppf((np.arange(64) + 0.5) / 64)
    q = q / q.std()  # exactly the assumed sd before clipping
    return np.clip(mu + s * q, 0.0, 1.0), np.full(64, 1 / 64)


@functools.lru_cache(maxsize=4096)
def _power(prompts: int, kind: str, threshold: float, assumed: float, sd: float,
           alpha: float) -> float:
    lo, hi = RANGES[kind]
    m = (threshold - lo) / (hi - lo)
    if m <= 0:
        return 1.0
    if m >= 1:
        return 0.0
    x, w = _planning_points(kind, assumed, min(sd, largest_sd(kind, assumed)))
    mu = float(w @ x)
    s2 = float(w @ (x - mu) ** 2)
    n = prompts
    # Prompt t's bet, from what the plug-in variance is expected to be before it; past the
    # first 256 prompts the bet barely moves, so runs of prompts share one (geometric pieces).
    if n <= 512:
        t, count = np.arange(1, n + 1, dtype=np.float64), np.ones(n)
    else:
        edges = np.unique(np.geomspace(257, n + 1, 257).round())
        t = np.concatenate([np.arange(1, 257, dtype=np.float64), (edges[:-1] + edges[1:] - 1) / 2])
        count = np.concatenate([np.ones(256), np.diff(edges)])
    var_before = (0.25 + (t - 1) * s2) / t
    lam = np.minimum(np.sqrt(2 * math.log(1 / alpha) / (var_before * n)), BET_SHARE / m)
    steps = np.log1p(lam[:, None] * (x[None, :] - m))  # (steps, points)
    e1 = steps @ w
    centred = steps - e1[:, None]
    mean = float(count @ e1)
    var, k3 = float(count @ (centred ** 2 @ w)), float(count @ (centred ** 3 @ w))
    need = math.log(1 / alpha)
    if var <= 0:
        return float(mean >= need)
    from scipy.stats import norm

    zz = (need - mean) / math.sqrt(var)
    skew = k3 / var ** 1.5
    p = norm.sf(zz) + norm.pdf(zz) * skew / 6 * (zz * zz - 1)  # Edgeworth
    return float(min(1.0, max(0.0, p)))


def power_at(prompts: int, margin: Margin, kind: str, *, alpha: float,
             field: str = "margin") -> float:
    """Probability that the fixed-sample test of H0 "mean <= threshold" at level `alpha`
    rejects on `prompts` prompts when prompts' means have the margin's assumed mean and sd."""
    _check_margin(margin, kind, field)
    if prompts < MIN_PROMPTS:
        return 0.0
    return _power(int(prompts), kind, float(margin.threshold), float(margin.assumed),
                  float(margin.sd), float(alpha))


def prompts_needed(margin: Margin, kind: str, *, alpha: float, power: float,
                   field: str = "margin", limit: int = PLAN_LIMIT) -> int | None:
    """Smallest number of prompts (at least MIN_PROMPTS) at which the fixed-sample test at
    level `alpha` has `power` when prompts' means have the margin's assumed mean and sd. None
    when the assumed mean does not clear the threshold (no number of prompts can show such a
    candidate non-inferior) or when more than `limit` prompts would be needed. A non-positive
    sd is refused, naming `field`."""
    _check_margin(margin, kind, field)
    if margin.assumed <= margin.threshold:
        return None

    def enough(n: int) -> bool:
        return power_at(n, margin, kind, alpha=alpha, field=field) >= power

    lo = MIN_PROMPTS
    if enough(lo):
        return lo
    hi = lo * 2
    while not enough(hi):
        lo, hi = hi, hi * 2
        if lo >= limit:
            return None
    while hi - lo > 1:  # enough(hi), not enough(lo)
        mid = (lo + hi) // 2
        if enough(mid):
            hi = mid
        else:
            lo = mid
    return hi if hi <= limit else None


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
        most = largest_sd(self.evidence, m.assumed)
        sd = f"{m.sd:g}" if m.sd <= most else \
            f"{m.sd:g}, planned at the largest possible {most:.3g}"
        head = (f"{LABELS[self.evidence]} > {m.threshold:g} (assuming {m.assumed:g}, sd "
                f"{sd} per prompt): ")
        if self.prompts_needed is None:
            why = ("the assumed value does not clear the margin" if m.assumed <= m.threshold
                   else f"more than {PLAN_LIMIT:,} prompts would be needed")
            return head + f"cannot be planned ({why})"
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
                    prompts_needed(m, kind, alpha=each, power=power,
                                   field=f"spec.decision.{kind}"),
                    prompts, power_at(prompts, m, kind, alpha=each,
                                      field=f"spec.decision.{kind}"))
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


def _more(d: Clustered, kind: str, threshold: float, *, alpha: float, power: float
          ) -> int | None:
    """Undecided: further prompts expected to settle the claim the estimate leans to, at the
    current estimate and spread (None: the estimate is on the margin, or the spread unknown)."""
    lo, hi = RANGES[kind]
    if d.prompts < 2 or not math.isfinite(d.sd_prompt) or d.mean == threshold:
        return None
    lean = d.mean if d.mean > threshold else 2 * threshold - d.mean
    if not lo < lean < hi:
        return None
    sd = min(max(d.sd_prompt, 1e-3 * (hi - lo)), largest_sd(kind, lean))
    need = prompts_needed(Margin(threshold, lean, sd), kind, alpha=alpha, power=power,
                          field="observed")
    return None if need is None else max(need - d.prompts, 1)


def decide(items: Mapping[str, Evidence], *, alpha: float, power: float) -> dict[str, Decision]:
    """The decision for each candidate, with Holm's correction over the candidates that have
    enough prompts to be tested (one family per claim: non-inferior, inferior)."""
    testable = [c for c, e in items.items() if e.data is not None
                and e.data.prompts >= MIN_PROMPTS]
    tests = {c: Test.of(items[c].data, items[c].kind) for c in testable}
    raw = [tests[c].p_values(items[c].margin.threshold, alpha) for c in testable]
    p_ni, p_inf = holm([r[0] for r in raw]), holm([r[1] for r in raw])
    lv_ni = holm_levels([r[0] for r in raw], alpha)
    lv_inf = holm_levels([r[1] for r in raw], alpha)
    blocked_ni = holm_blocker([r[0] for r in raw], alpha)
    blocked_inf = holm_blocker([r[1] for r in raw], alpha)
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
        blocker = None
        if p_ni[i] <= alpha:
            verdict, level = NON_INFERIOR, lv_ni[i]
        elif p_inf[i] <= alpha:
            verdict, level = INFERIOR, lv_inf[i]
        else:
            verdict = UNDECIDED
            side = 0 if d.mean >= threshold else 1
            level = (lv_ni, lv_inf)[side][i]
            j = (blocked_ni, blocked_inf)[side][i]
            if j is not None:
                blocker = (testable[j], raw[j][side], (lv_ni, lv_inf)[side][j])
        lower, upper = tests[cand].bounds(level, alpha)
        more_p = more_o = None
        if verdict == UNDECIDED:
            more_p = _more(d, e.kind, threshold, alpha=alpha / m, power=power)
            if more_p is not None:
                more_o = math.ceil(more_p * d.observations / d.prompts)
        out[cand] = Decision(
            cand, e.kind, verdict, threshold, d.mean, lower, upper, level, p_ni[i], p_inf[i],
            d.prompts, d.observations, more_p, more_o,
            _why(verdict, label, unit, d, lower, upper, level, threshold, more_p, more_o, m,
                 blocker))
    return out


def refused(candidate: str, kind: str, margin: Margin, problem: str) -> Decision:
    """The decision on a candidate whose data hold a value the test cannot use: undecided,
    saying which value (DecisionInputError's message)."""
    return Decision(candidate, kind, UNDECIDED, margin.threshold, None, None, None, 0.0, None,
                    None, 0, 0, None, None, f"undecided: not tested: {problem}")


def _why(verdict: str, label: str, unit: str, d: Clustered, lower: float, upper: float,
         level: float, threshold: float, more_p: int | None, more_o: int | None, m: int,
         blocker: tuple[str, float, float] | None) -> str:
    conf = f"{100 * (1 - level):.4g}%"
    step = f" (Holm's level {level:.3g} of {m} candidates)" if m > 1 else ""
    est = f"{label} {d.mean:.3f} (mean over {d.prompts} prompts, {d.observations} {unit})"
    if verdict == NON_INFERIOR:
        return f"non-inferior: {est}; {conf} lower bound {lower:.3f} > {threshold:g}{step}"
    if verdict == INFERIOR:
        return f"inferior: {est}; {conf} upper bound {upper:.3f} < {threshold:g}{step}"
    if blocker is not None:
        name, p, lv = blocker
        head = (f"undecided: {est}; it would clear {threshold:g} at its own Holm level, but "
                f"Holm's step-down stopped before it: {name} (p {p:.3g} > {lv:.3g}) was not "
                "decided, so no candidate after it may be")
    else:
        head = (f"undecided: {est}; {conf} bounds {lower:.3f}..{upper:.3f} include "
                f"{threshold:g}{step}")
    if more_p is None:
        tail = ("the estimate is on the margin: no number of prompts is expected to decide"
                if d.mean == threshold else "how many more prompts would decide cannot be "
                "estimated from these data")
        return f"{head}; {tail}"
    return f"{head}; about {more_p} more prompts ({more_o} {unit}) expected to decide"


# --- sequential (anytime-valid) decision on human ratings -------------------------------------
#
# Raters keep rating and owners keep looking: a fixed-sample test checked after every rating
# claims far more than alpha (tests/engine/test_decision.py shows how much). The betting test of
# Waudby-Smith & Ramdas (2023, "Estimating means of bounded random variables by betting", the
# predictable plug-in bet) is valid at every rating: the wealth of a bettor against H0 "mean <=
# threshold" is a nonnegative supermartingale under H0, so by Ville's inequality it ever reaches
# 1/alpha with probability at most alpha. Its observations must have the same conditional mean,
# whoever rates and whenever: with a roster (spec.humanRating.raters) each prompt's counted
# rating is the one by a rater assigned in advance, in an order fixed in advance (slam.roster),
# so neither speed nor leniency decides which ratings count; without one, the first rating of
# each prompt counts (valid when raters are alike). Several candidates: Bonferroni.

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
    bad = np.flatnonzero(~np.isfinite(y) | (y < 0) | (y > 1))
    if len(bad):
        raise DecisionInputError(
            f"rating {int(bad[0]) + 1} of {len(y)} is {float(y[bad[0]])!r}: a human choice "
            "counts 1 (win), 0.5 (tie) or 0 (loss); one bad value would freeze the bet or "
            "steer it")
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
                        margin: Margin, *, alpha: float, power: float = 0.8,
                        basis: str = "first ratings", waiting: str | None = None,
                        prompts: int | None = None, instead: Sequence[str] = ()
                        ) -> tuple[Decision, Sequential]:
    """The anytime-valid decision on one counted rating per prompt (the first ratings in time
    order, or the assigned ratings in the run's fixed order: `basis`), at level `alpha`
    (already split over the candidates); `data`: all its ratings, for the counts; `waiting`:
    what holds the counted sequence up, if anything; `prompts`: how many prompts can be
    counted at all (the prompt set's, both targets answered); `instead`: the other kinds of
    evidence with data, named when ratings cannot decide."""
    s = sequential(first, margin.threshold, alpha=alpha)
    conf = f"{100 * (1 - alpha):.4g}%"
    lower = float(s.lower[-1]) if s.n else None
    upper = float(s.upper[-1]) if s.n else None
    ratings = data.observations if data else 0
    head = (f"human win rate {s.estimate:.3f} over the {basis} of {s.n} prompts "
            f"({ratings} ratings)" if s.n else "no human ratings yet" if not ratings
            else f"no {basis} yet ({ratings} ratings)")
    if s.verdict == NON_INFERIOR:
        why = (f"non-inferior: {head}; decided at rating {s.decided_at}, when the anytime-valid "
               f"{conf} lower bound cleared {margin.threshold:g}")
    elif s.verdict == INFERIOR:
        why = (f"inferior: {head}; decided at rating {s.decided_at}, when the anytime-valid "
               f"{conf} upper bound fell below {margin.threshold:g}")
    more = None
    if s.verdict == UNDECIDED and s.n >= 2:
        # At the current estimate and spread, the prompts the fixed-sample test would need for
        # `power`: a floor for the anytime-valid test, which pays for looking at every rating.
        seen = clustered_mean(first, list(range(s.n)), kind=HUMAN, candidate=candidate)
        more = _more(seen, HUMAN, margin.threshold, alpha=alpha, power=power)
    left = None if prompts is None else max(0, prompts - s.n)
    other = (f", or decide on {' or '.join(LABELS[k] for k in instead)} "
             f"(spec.decision.evidence: {instead[0]})") if instead else ""
    exhausted = s.verdict == UNDECIDED and bool(s.n) and left == 0
    if exhausted:
        add = f"about {more} more prompts" if more is not None else "more prompts"
        why = (f"undecided, and ratings cannot change this decision: every one of the {s.n} "
               f"prompts has its counted rating ({head}; anytime-valid {conf} bounds "
               f"{lower:.3f}..{upper:.3f} include {margin.threshold:g}). To decide: add {add} "
               f"to the prompt set (a new spec.runId){other}")
    elif s.verdict == UNDECIDED and s.n:
        if more is not None and left is not None and more > left:
            expect = (f"at least {more} more prompts rated, but the prompt set has {left} left: "
                      f"add prompts (a new spec.runId){other}")
        elif more is not None:
            expect = f"at least {more} more prompts rated"
        elif s.n >= 2 and s.estimate == margin.threshold:
            expect = "the estimate is on the margin: no number of prompts is expected to decide"
        else:
            expect = "too few ratings yet to estimate how many more"
        why = (f"undecided: {head}; anytime-valid {conf} bounds {lower:.3f}..{upper:.3f} "
               f"include {margin.threshold:g}: keep rating, {expect} (looking after every "
               "rating is allowed)")
    elif s.verdict == UNDECIDED:
        why = f"undecided: {head}"
    if waiting and s.verdict == UNDECIDED and not exhausted:
        why += f"; {waiting}"
    return Decision(candidate, HUMAN, s.verdict, margin.threshold, s.estimate, lower, upper,
                    alpha, None, None, s.n, ratings, more, more, why, exhausted), s
