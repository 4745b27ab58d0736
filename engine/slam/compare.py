"""Two runs of one Evaluation side by side: did the new model version (or prompt, or server
flag) change quality, latency or cost? Pure functions of the two runs' rows.

Overall figures come from each run's report; quality changes are paired by prompt (the same
prompt in both runs), so each prompt's change is one observation and the interval is Student's t
over prompts. The largest per-prompt drops are listed, so a regression can be read, not just
counted.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from slam import decision, summary
from slam.scoring.pipeline import JUDGE_GRADE, SIMILARITY

LEVEL = 0.95


@dataclass(frozen=True)
class Change:
    target: str
    metric: str
    a: float | str | None
    b: float | str | None
    diff: float | None = None
    low: float | None = None  # LEVEL interval of the mean per-prompt change (paired metrics)
    high: float | None = None
    prompts: int | None = None  # prompts in both runs (paired metrics)


@dataclass(frozen=True)
class PromptChange:
    target: str
    metric: str
    prompt_id: str
    a: float
    b: float

    @property
    def diff(self) -> float:
        return self.b - self.a


@dataclass
class Comparison:
    evaluation: str
    run_a: str
    run_b: str
    changes: list[Change] = field(default_factory=list)
    prompts: list[PromptChange] = field(default_factory=list)  # largest drops first
    only_in_a: list[str] = field(default_factory=list)
    only_in_b: list[str] = field(default_factory=list)


def per_prompt(data: summary.RunData, scorer: str) -> dict[tuple[str, str], float]:
    """(target, prompt) -> mean score over the prompt's samples."""
    sums: dict[tuple[str, str], list[float]] = defaultdict(list)
    for s in data.scores:
        if s["scorer"] == scorer and s["score"] is not None:
            sums[(s["target"], s["prompt_id"])].append(s["score"])
    return {k: sum(v) / len(v) for k, v in sums.items()}


def judge_per_prompt(data: summary.RunData) -> dict[tuple[str, str], float]:
    """(candidate, prompt) -> mean judge outcome against the reference (ties half)."""
    sums: dict[tuple[str, str], list[float]] = defaultdict(list)
    for (cand, prompt, _), (outcome, _) in summary.judge_outcomes_by_item(
            data.judgments, data.run.reference).items():
        sums[(cand, prompt)].append(outcome)
    return {k: sum(v) / len(v) for k, v in sums.items()}


def paired(target: str, metric: str, a: dict[tuple[str, str], float],
           b: dict[tuple[str, str], float]) -> tuple[Change | None, list[PromptChange]]:
    shared = sorted(p for (t, p) in a if t == target and (t, p) in b)
    if not shared:
        return None, []
    rows = [PromptChange(target, metric, p, a[(target, p)], b[(target, p)]) for p in shared]
    mean_a = sum(r.a for r in rows) / len(rows)
    mean_b = sum(r.b for r in rows) / len(rows)
    c = decision.clustered_mean([r.diff for r in rows], shared)
    low = high = None
    if c.prompts >= 2 and math.isfinite(c.se):
        from scipy import stats as sps

        q = float(sps.t.ppf(0.5 + LEVEL / 2, c.prompts - 1))
        low, high = c.mean - q * c.se, c.mean + q * c.se
    return Change(target, metric, mean_a, mean_b, c.mean, low, high, c.prompts), rows


def compare(a: summary.RunData, b: summary.RunData, *, top: int = 10) -> Comparison:
    """What changed from run `a` to run `b` of the same Evaluation, per target."""
    rep_a, rep_b = summary.compute(a), summary.compute(b)
    out = Comparison(a.run.evaluation, a.run.run_id, b.run.run_id)
    ta = {t.target: t for t in rep_a.targets}
    tb = {t.target: t for t in rep_b.targets}
    out.only_in_a = sorted(set(ta) - set(tb))
    out.only_in_b = sorted(set(tb) - set(ta))
    quality = {SIMILARITY: (per_prompt(a, SIMILARITY), per_prompt(b, SIMILARITY)),
               JUDGE_GRADE: (per_prompt(a, JUDGE_GRADE), per_prompt(b, JUDGE_GRADE)),
               "judge win rate": (judge_per_prompt(a), judge_per_prompt(b))}
    drops: list[PromptChange] = []
    for name in [t.target for t in rep_b.targets if t.target in ta]:
        x, y = ta[name], tb[name]

        def plain(metric: str, va, vb, name: str = name) -> None:
            if va is None and vb is None:
                return
            diff = vb - va if isinstance(va, float | int) and isinstance(vb, float | int) \
                else None
            out.changes.append(Change(name, metric, va, vb, diff))

        plain("success rate", x.success_rate if x.requests else None,
              y.success_rate if y.requests else None)
        for metric, (qa, qb) in quality.items():
            change, rows = paired(name, metric, qa, qb)
            if change is not None:
                out.changes.append(change)
                drops += rows
        plain("human win rate", x.human_win_rate, y.human_win_rate)
        plain("e2e p50 ms", x.e2e.p50 if x.e2e else None, y.e2e.p50 if y.e2e else None)
        plain("TTFT p50 ms", x.ttft.p50 if x.ttft else None, y.ttft.p50 if y.ttft else None)
        plain("$/1k requests", x.cost.per_1k_usd if x.cost else None,
              y.cost.per_1k_usd if y.cost else None)
        if x.decision or y.decision:
            plain("decision", x.decision.verdict if x.decision else None,
                  y.decision.verdict if y.decision else None)
    out.prompts = sorted((d for d in drops if d.diff < 0), key=lambda d: d.diff)[:top]
    return out


def _fmt(v: float | str | None, metric: str) -> str:
    if v is None:
        return "–"
    if isinstance(v, str):
        return v
    if metric.endswith("ms"):
        return f"{v:,.0f}"
    if metric.startswith("$"):
        return f"${v:,.4f}"
    return f"{v:.3f}"


def to_markdown(c: Comparison) -> str:
    lines = [f"# {c.evaluation}: run {c.run_a} → run {c.run_b}", ""]
    if c.only_in_a or c.only_in_b:
        lines += [f"Targets only in run {c.run_a}: {', '.join(c.only_in_a) or 'none'}; only in "
                  f"run {c.run_b}: {', '.join(c.only_in_b) or 'none'}.", ""]
    lines += ["| target | metric | run " + c.run_a + " | run " + c.run_b + " | change | "
              f"{LEVEL:.0%} interval | prompts |", "|---|---|---|---|---|---|---|"]
    for ch in c.changes:
        interval = "–" if ch.low is None else f"[{ch.low:+.3f}, {ch.high:+.3f}]"
        diff = "–" if ch.diff is None else (
            f"{ch.diff:+,.0f}" if ch.metric.endswith("ms") else f"{ch.diff:+.3f}")
        lines.append(f"| {ch.target} | {ch.metric} | {_fmt(ch.a, ch.metric)} | "
                     f"{_fmt(ch.b, ch.metric)} | {diff} | {interval} | {ch.prompts or '–'} |")
    lines += ["", "Quality changes are paired by prompt (mean per-prompt change, t interval over "
              "prompts).", ""]
    if c.prompts:
        lines += ["## Largest per-prompt drops", "",
                  "| target | metric | prompt | run " + c.run_a + " | run " + c.run_b +
                  " | change |", "|---|---|---|---|---|---|"]
        lines += [f"| {d.target} | {d.metric} | {d.prompt_id} | {d.a:.3f} | {d.b:.3f} | "
                  f"{d.diff:+.3f} |" for d in c.prompts]
        lines.append("")
    return "\n".join(lines)


def to_json(c: Comparison) -> dict:
    import dataclasses

    return {"evaluation": c.evaluation, "runA": c.run_a, "runB": c.run_b,
            "onlyInA": c.only_in_a, "onlyInB": c.only_in_b,
            "changes": [dataclasses.asdict(x) for x in c.changes],
            "largestDrops": [dataclasses.asdict(x) | {"diff": x.diff} for x in c.prompts]}
