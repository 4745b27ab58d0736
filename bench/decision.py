"""The decision and its planning at scale: 10 candidates, 10,000 human ratings (issue 13: under
1 s). Baseline in the same run: the plain mean of the same ratings per candidate (what any report
computes), so the ratio shows what the clustered, Holm-corrected decision adds.

    .venv/bin/python bench/decision.py
"""

from __future__ import annotations

import statistics
import time
from types import SimpleNamespace

import numpy as np

from slam import decision, summary
from slam.api.evaluation import DecisionSpec

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


def main() -> None:
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
