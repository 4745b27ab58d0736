"""The decision: its error and power at full simulation size (issue 33), and its speed at scale.

1. Error: every cell of tests/decisionsim.py (a share of prompts failed outright, near-identical
   answers, ties 0-100%, 1-40 observations per prompt, margins other than the defaults, win
   rate, similarity and grade) at 10, 20, 50, 200 (and 1,000) prompts, 1 and 4 candidates,
   10,000 experiments each: the betting test's false non-inferiority next to what the t test on
   prompt means (the decision before issue 33) claims on the same data.
2. Power at the planner's size where its assumptions hold, and the power cost against the t
   test on well-behaved data: the prompts each needs for 80% power.
3. Speed: 10 candidates, 10,000 human ratings (issue 13: under 1 s); baseline in the same run:
   the plain mean of the same ratings per candidate.

    .venv/bin/python bench/decision.py [--runs 10000] [--quick]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from slam import decision, summary  # noqa: E402
from slam.api.evaluation import DecisionSpec  # noqa: E402
from tests import decisionsim as sim  # noqa: E402

CANDIDATES, RATINGS, PROMPTS = 10, 10_000, 500


def rows(rng: np.random.Generator) -> summary.RunData:
    names = ["ref", *(f"c{i}" for i in range(CANDIDATES))]
    skill = dict(zip(names, [0.5, *np.linspace(0.3, 0.6, CANDIDATES)], strict=True))
    ratings = []
    for k in range(RATINGS):
        cand = names[1 + k % CANDIDATES]
        p = rng.random()
        choice = "left" if p < skill[cand] else "tie" if p < skill[cand] + 0.1 else "right"
        ratings.append({"left": cand, "right": "ref", "choice": choice, "is_control": False,
                        "prompt_id": f"p{rng.integers(PROMPTS)}", "rater": f"r{k % 40}"})
    return summary.RunData(SimpleNamespace(reference="ref"), [], [], [], [], ratings)


def decide(data: summary.RunData) -> dict[str, decision.Decision]:
    dspec = DecisionSpec()
    cands = [f"c{i}" for i in range(CANDIDATES)]
    available = summary.evidence_data(data, cands, {})
    out = decision.decide({c: decision.Evidence(decision.HUMAN, available[c][decision.HUMAN],
                                                summary.margin(dspec, decision.HUMAN))
                           for c in cands}, alpha=dspec.alpha, power=dspec.power)
    summary.plan(dspec, CANDIDATES, PROMPTS)
    return out


def plain(data: summary.RunData) -> dict[str, float]:
    value = {"left": 1.0, "right": 0.0, "tie": 0.5}
    out: dict[str, list[float]] = {}
    for r in data.ratings:
        out.setdefault(r["left"], []).append(value[r["choice"]])
    return {c: float(np.mean(v)) for c, v in out.items()}


def timed(fn, data, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(data)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def errors(runs: int) -> None:
    bound = sim.ALPHA + sim.mc_bound(sim.ALPHA, runs)
    print(f"False non-inferiority on the margin, {runs:,} experiments per cell (alpha "
          f"{sim.ALPHA}; 3 Monte Carlo sd: {bound:.4f}); betting / t test on prompt means")
    worst = 0.0
    for i, cell in enumerate(sim.NULL_CELLS):
        sizes = (10, 20, 50, 200) + ((1000,) if cell.kind != decision.HUMAN else ())
        parts = []
        for n in sizes:
            bet = sim.run_cell(cell, prompts=n, runs=runs, seed=1000 * i + n)
            t = sim.run_cell(cell, prompts=n, runs=runs, seed=1000 * i + n, t_test=True)
            worst = max(worst, bet)
            parts.append(f"{n}: {bet:.3f} / {t:.3f}")
        four = sim.run_cell(cell, prompts=50, candidates=4, runs=runs, seed=1000 * i + 7)
        worst = max(worst, four)
        print(f"  {cell.name}\n      {'; '.join(parts)}; 4 candidates x 50 prompts (Holm): "
              f"{four:.3f}")
    print(f"  worst betting cell: {worst:.3f} ->", "within alpha" if worst <= bound else
          "ABOVE alpha")


def raters(runs: int) -> None:
    print(f"Sequential human decision, raters of different leniency (averaging to the margin) "
          f"and speed, {runs:,} experiments: false non-inferiority counting first ratings / "
          "assigned ratings; power at a true win rate of 0.6 (assigned)")
    for lean, speed in ([0.3, -0.15, -0.15], [10, 1, 1]), ([0.2, -0.2], [5, 1]), \
            ([0.4, -0.1, -0.1, -0.1, -0.1], [20, 1, 1, 1, 1]), ([0.0, 0.0, 0.0], [1, 1, 1]), \
            ([-0.3, 0.15, 0.15], [10, 1, 1]):
        for n in (100, 400):
            kw = dict(runs=runs, prompts=n, leniency=lean, speed=speed, ratings=2 * n, seed=n)
            old = sim.rater_cell(assigned=False, **kw)
            new = sim.rater_cell(assigned=True, **kw)
            power = sim.rater_cell(assigned=True, true_mean=0.6, **kw)
            print(f"  leniency {lean}, speed {speed}, {n} prompts: {old:.3f} / {new:.3f}; "
                  f"power {power:.3f}")


def t_prompts(margin: decision.Margin, alpha: float, power: float) -> int:
    """What the t test (noncentral t) needed: the plan before issue 33."""
    from scipy import stats as sps
    from scipy.stats import norm

    def enough(n: int) -> bool:
        df = n - 1
        nc = (margin.assumed - margin.threshold) * math.sqrt(n) / margin.sd
        return sps.nct.sf(sps.t.ppf(1 - alpha, df), df, nc) >= power

    z = (norm.ppf(1 - alpha) + norm.ppf(power)) * margin.sd / (margin.assumed - margin.threshold)
    n = max(2, int(z * z) - 1)  # the normal approximation needs fewer than t does
    while not enough(n):
        n += 1
    return n


def power(runs: int) -> None:
    print(f"Power at the planner's size (target 0.80; 3 Monte Carlo sd "
          f"{sim.mc_bound(0.8, runs):.3f}) and the prompts each test needs for it:")
    for cell, margin in sim.POWER_CELLS:
        for cands in (1, 2):
            need = decision.prompts_needed(margin, cell.kind, alpha=sim.ALPHA / cands,
                                           power=0.8)
            got = sim.run_cell(cell, prompts=need, runs=runs, seed=5 + cands,
                               true_mean=margin.assumed, alpha=sim.ALPHA / cands)
            t_need = t_prompts(margin, sim.ALPHA / cands, 0.8)
            print(f"  {cell.name}, {cands} candidate(s): betting {need} prompts (power "
                  f"{got:.3f}); t test {t_need}; cost {need / t_need:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--quick", action="store_true", help="speed only")
    args = ap.parse_args()
    if not args.quick:
        t0 = time.perf_counter()
        errors(args.runs)
        power(args.runs)
        raters(args.runs)
        print(f"(simulations: {time.perf_counter() - t0:.0f} s)")
    data = rows(np.random.default_rng(0))
    t0 = time.perf_counter()
    import scipy.stats  # noqa: F401 - once per process; the report imports it lazily
    imported = time.perf_counter() - t0
    t0 = time.perf_counter()
    first = decide(data)
    cold = time.perf_counter() - t0
    warm, base = timed(decide, data), timed(plain, data)
    verdicts = {v: sum(d.verdict == v for d in first.values())
                for v in (decision.NON_INFERIOR, decision.INFERIOR, decision.UNDECIDED)}
    print(f"{CANDIDATES} candidates, {RATINGS:,} ratings on {PROMPTS} prompts: {verdicts}")
    print(f"importing scipy.stats (once per process): {imported:.3f} s")
    print(f"decision + planning: first call {cold:.3f} s, then {warm:.3f} s (median of 5); "
          f"plain means {base:.4f} s; ratio {warm / base:.1f}x")
    print("target: under 1 s —", "met" if max(cold, warm) < 1 else "NOT met")


if __name__ == "__main__":
    main()
