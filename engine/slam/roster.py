"""Whose rating counts for the sequential human decision, fixed before anyone rates. Pure.

The anytime-valid test needs observations whose expected value does not depend on who happened
to rate first: a fast, lenient rater who rates most prompts first would otherwise steer it. With
a roster (spec.humanRating.raters), every prompt's counted rating is assigned in advance to one
rater of the roster (rendezvous hashing on the run and the prompt: uniform over the roster,
independent of the answers and of anyone's speed, and adding or removing a rater moves only the
prompts that rater gains or loses), and prompts are counted in an order also fixed in advance.
The counted sequence is then the same whatever the order ratings arrive in; speed only decides
how long its prefix is at a given moment. The rating queue serves each rater their assigned
prompts first, in that order (slam_dashboard.rating).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


def run_key(run: Any) -> str:
    """The run's stable id (namespace/evaluation/run id), as the dashboard seeds with it."""
    return f"{getattr(run, 'namespace', '') or ''}/{run.evaluation}/{run.run_id}"


def _h(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def position(key: str, prompt_id: str) -> str:
    """Sort key of the prompt in the run's fixed counting order."""
    return _h(key, "order", prompt_id)


def assigned(key: str, prompt_id: str, roster: Sequence[str]) -> str:
    """The rater whose rating of this prompt counts (highest random weight)."""
    return max(roster, key=lambda r: _h(key, prompt_id, r))


@dataclass(frozen=True)
class Counted:
    """The counted outcomes (1 win, 0.5 tie, 0 loss for the candidate) in counting order, and
    what holds the sequence up: the next prompt's assigned rater and how many prompts after it
    already have their assigned rating."""

    values: list[float]
    waiting_for: tuple[str, str] | None = None  # (rater, prompt) the next count needs
    behind: int = 0
    prompts: int = 0  # prompts the sequence runs over (both answered)
    per_rater: dict[str, int] = field(default_factory=dict)  # counted ratings by rater


def counted(ratings: Iterable[dict], candidate: str, reference: str, roster: Sequence[str],
            key: str, prompts: Iterable[str], value: Any) -> Counted:
    """The candidate's counted outcomes against the reference. `ratings` in arrival order;
    `prompts`: those both answered (what can be rated); `value(rating)`: the outcome for the
    candidate. A roster rater's first rating of the pair on the prompt is theirs."""
    roster = sorted(set(roster))
    theirs: dict[tuple[str, str], float] = {}
    for r in ratings:
        if r.get("is_control") or {r["left"], r["right"]} != {candidate, reference}:
            continue
        theirs.setdefault((r["rater"], r["prompt_id"]), value(r))
    order = sorted(set(prompts), key=lambda p: position(key, p))
    out: list[float] = []
    per: dict[str, int] = {}
    for i, p in enumerate(order):
        who = assigned(key, p, roster)
        if (who, p) not in theirs:
            behind = sum((assigned(key, q, roster), q) in theirs for q in order[i + 1:])
            return Counted(out, (who, p), behind, len(order), per)
        out.append(theirs[(who, p)])
        per[who] = per.get(who, 0) + 1
    return Counted(out, None, 0, len(order), per)
