"""Everything the pages read or write, in one place: the store connection (st.cache_resource),
cached queries (st.cache_data) and the rating submission. Pages hold no SQL and no maths."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from slam import summary
from slam.store import Store, default_url
from slam_dashboard import rating


def store_url() -> str:
    return os.environ.get("SLAM_STORE_URL") or default_url()


@st.cache_resource(show_spinner=False)
def store(url: str) -> Store:
    return Store.open(url)


@dataclass(frozen=True)
class RunChoice:
    run_pk: int
    label: str  # "<evaluation> (run <id>)", what raters pick from
    run_key: str  # stable id for seeding and submission keys
    criteria: tuple[str, ...]
    require_reason: bool
    control_pairs: int


@st.cache_data(ttl=10, show_spinner=False)
def runs_open_for_rating(url: str) -> list[RunChoice]:
    out = []
    for r in store(url).runs():
        hr = (r.spec or {}).get("humanRating") or {}
        if hr.get("enabled", True) is False:
            continue
        label = f"{r.evaluation} (run {r.run_id})" + (f" in {r.namespace}" if r.namespace else "")
        out.append(RunChoice(r.id, label, f"{r.namespace}/{r.evaluation}/{r.run_id}",
                             tuple(hr.get("criteria") or ()), bool(hr.get("requireReason")),
                             int(hr.get("controlPairs", 2))))
    return out


@st.cache_data(ttl=30, show_spinner=False)
def _responses(url: str, run_pk: int) -> list[dict]:
    return store(url).responses(run_pk)


@st.cache_data(ttl=30, show_spinner=False)
def _prompts(url: str, run_pk: int) -> dict[str, list[dict]]:
    return {p["prompt_id"]: p["messages"] for p in store(url).prompts(run_pk)}


def rater_session(url: str, run: RunChoice, rater: str, size: int = 20
                  ) -> list[rating.Assignment]:
    items = rating.items(_responses(url, run.run_pk))
    return rating.session(rater, run.run_key, items, store(url).ratings(run.run_pk), size=size,
                          control_pairs=run.control_pairs)


@dataclass(frozen=True)
class Screen:
    """What the rating page shows for one assignment: texts only, no target names."""

    position: int
    total: int
    question: str
    answer_a: str
    answer_b: str


def screen(url: str, run: RunChoice, assignments: list[rating.Assignment], index: int
           ) -> Screen:
    a = assignments[index]
    texts = {(r["target"], r["prompt_id"], r["sample"]): r["text"]
             for r in _responses(url, run.run_pk)}
    messages = _prompts(url, run.run_pk)[a.item.prompt_id]
    question = "\n\n".join(m["content"] for m in messages if m["role"] == "user")
    return Screen(a.position, len(assignments), question,
                  texts[(a.left, a.item.prompt_id, a.item.sample)],
                  texts[(a.right, a.item.prompt_id, a.item.sample)])


def submit(url: str, run: RunChoice, rater: str, a: rating.Assignment, choice: str,
           criteria: dict[str, str] | None = None, reason: str | None = None) -> bool:
    """Store a rating; False if this exact submission was already stored (never counts twice)."""
    row = rating.rating_row(rater, run.run_pk, run.run_key, a, choice, criteria, reason)
    return store(url).save_rating(row)


@st.cache_data(ttl=10, show_spinner=False)
def leaderboard(url: str, run_pk: int) -> tuple[pd.DataFrame, str | None, str, int]:
    """(table, ranked by, recommendation text, number of ratings)."""
    s = store(url)
    rep = summary.build(s, run_pk)
    ratings = s.ratings(run_pk)
    consistency = rating.consistency(ratings)

    def ci(iv, digits=0):
        return None if iv is None else f"{iv.estimate:.{digits}f} [{iv.low:.{digits}f}, " \
                                       f"{iv.high:.{digits}f}]"
    rows = [{
        "rank": t.rank, "target": t.target + (" (reference)" if t.is_reference else ""),
        "human Elo [95% CI]": ci(t.human_elo), "human win rate": t.human_win_rate,
        "judge Elo [95% CI]": ci(t.judge_elo), "judge win rate": t.judge_win_rate,
        "judge consistency": t.judge_consistency,
        "similarity [95% CI]": ci(t.similarity, 2),
        "$/1k requests": t.cost.per_1k_usd if t.cost else None,
    } for t in rep.targets]
    table = pd.DataFrame(rows)
    table = table.dropna(axis=1, how="all")
    note = f"{rep.leader}: {rep.reason}"
    if consistency:
        mean = sum(consistency.values()) / len(consistency)
        note += f" Rater consistency on control pairs: {mean:.0%} over {len(consistency)} raters."
    return table, rep.rank_basis, note, len([r for r in ratings if not r["is_control"]])
