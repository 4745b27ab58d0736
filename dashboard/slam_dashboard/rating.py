"""Blind pairwise rating: what a rater sees next, and how a choice maps back. Pure functions.

An item is one prompt answered by two targets. A rater's session (a batch) is a list of
assignments: items least rated so far first (so ratings spread evenly over model pairs and
prompts), in an order of their own, one per prompt, each with its sides drawn at random, plus
`control_pairs` earlier items repeated with the sides swapped to measure the rater's consistency.
Target names stay on the server; the page only ever gets the two answer texts and a position
number. Answers are shown as Markdown without HTML and without images (`answer_html`).
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from markdown_it import MarkdownIt

from slam import roster as rosters
from slam.summary import winner

CHOICES = {"A": "left", "B": "right", "About the same": "tie", "Both bad": "both_bad"}
LABELS = {v: k for k, v in CHOICES.items()}


@dataclass(frozen=True)
class Item:
    prompt_id: str
    sample: int
    first: str  # target names, in a canonical (sorted) order
    second: str


@dataclass(frozen=True)
class Assignment:
    position: int  # 1-based place in the rater's session (the only id the page sees)
    item: Item
    left: str  # target shown as A
    right: str  # target shown as B
    is_control: bool = False


def items(responses: Sequence[dict]) -> list[Item]:
    """Every (prompt, sample, pair of targets) where both targets answered successfully."""
    by_key: dict[tuple[str, int], list[str]] = {}
    for r in responses:
        if r["error_class"] is None and (r.get("text") or "").strip():
            by_key.setdefault((r["prompt_id"], r["sample"]), []).append(r["target"])
    out = []
    for (prompt, sample), targets in sorted(by_key.items()):
        for a, b in itertools.combinations(sorted(set(targets)), 2):
            out.append(Item(prompt, sample, a, b))
    return out


def rated_counts(ratings: Sequence[dict]) -> Counter[Item]:
    c: Counter[Item] = Counter()
    for r in ratings:
        if not r.get("is_control"):
            a, b = sorted((r["left"], r["right"]))
            c[Item(r["prompt_id"], r["sample"], a, b)] += 1
    return c


def assigned_first(rater: str, run_key: str, it: Item, reference: str | None,
                   roster: Sequence[str]) -> bool:
    """Whether the item is one whose rating by this rater counts for the sequential decision
    (slam.roster: the prompt is assigned to them, the pair is a candidate against the
    reference)."""
    return bool(roster) and rater in roster and reference in (it.first, it.second) \
        and rosters.assigned(run_key, it.prompt_id, sorted(set(roster))) == rater


def open_items(rater: str, run_key: str, all_items: Sequence[Item], ratings: Sequence[dict], *,
               reference: str | None = None, decided: frozenset[str] = frozenset(),
               rng: random.Random | None = None, roster: Sequence[str] = ()) -> list[Item]:
    """The items this rater could still be served, in serving order: with a `roster`, the
    pairs whose rating by this rater counts (their assigned prompts) first, in the run's fixed
    counting order; then least rated first; with the `reference` named, pairs of the reference
    with a candidate whose human decision is reached (`decided`) are dropped, and pairs of the
    reference with an undecided candidate come before pairs of two candidates (which only
    refine the ranking). Items the rater already rated are left out."""
    rng = rng or random.Random(f"{rater}|{run_key}")
    mine = {(r["prompt_id"], r["sample"], *sorted((r["left"], r["right"])))
            for r in ratings if r["rater"] == rater and not r.get("is_control")}
    counts = rated_counts(ratings)
    order = list(all_items)
    rng.shuffle(order)
    # Least-rated first; among equals, this rater's own shuffled order. Balance pairs too: the
    # model pair rated least so far goes before a pair that has had more.
    pair_counts: Counter[tuple[str, str]] = Counter()
    for it, n in counts.items():
        pair_counts[(it.first, it.second)] += n

    def group(it: Item) -> int:  # pairs with the reference first, when it is named
        return int(reference is not None and reference not in (it.first, it.second))

    if reference is not None:
        order = [it for it in order if reference not in (it.first, it.second)
                 or ({it.first, it.second} - {reference}).isdisjoint(decided)]
    def counting(it: Item) -> tuple[int, str]:  # assigned pairs first, in counting order
        if assigned_first(rater, run_key, it, reference, roster):
            return 0, rosters.position(run_key, it.prompt_id)
        return 1, ""

    order.sort(key=lambda it: (counting(it), group(it), counts[it],
                               pair_counts[(it.first, it.second)]))
    return [it for it in order if (it.prompt_id, it.sample, it.first, it.second) not in mine]


def session(rater: str, run_key: str, all_items: Sequence[Item], ratings: Sequence[dict], *,
            size: int = 20, control_pairs: int = 2, reference: str | None = None,
            decided: frozenset[str] = frozenset(), roster: Sequence[str] = ()
            ) -> list[Assignment]:
    """The rater's next batch for this run (`open_items`, one per prompt). Deterministic for
    (rater, run) and the ratings already in the store, so a refresh shows the same pages; items
    the rater already rated are skipped, so after a refresh the rater goes on where they were."""
    rng = random.Random(f"{rater}|{run_key}")
    todo = open_items(rater, run_key, all_items, ratings, reference=reference, decided=decided,
                      rng=rng, roster=roster)
    # One pair per prompt in a batch (control pairs aside): the same question again a few pairs
    # later reads as a trick and anchors the second answer on the first.
    # Within the batch, model pairs take turns (the first in serving order among the pairs
    # served least in this batch so far).
    chosen: list[Item] = []
    prompts: set[str] = set()
    in_batch: Counter[tuple[str, str]] = Counter()
    while len(chosen) < size:
        free = [it for it in todo if it.prompt_id not in prompts]
        if not free:
            break
        it = min(free, key=lambda it: (not assigned_first(rater, run_key, it, reference, roster),
                                       in_batch[(it.first, it.second)]))
        chosen.append(it)
        prompts.add(it.prompt_id)
        in_batch[(it.first, it.second)] += 1
    out = []
    for i, it in enumerate(chosen, start=1):
        left, right = (it.first, it.second) if rng.random() < 0.5 else (it.second, it.first)
        out.append(Assignment(i, it, left, right))
    if control_pairs and len(out) >= 2:
        repeat = rng.sample(out[: max(2, len(out) // 2)], min(control_pairs, len(out) // 2))
        for j, a in enumerate(repeat, start=len(out) + 1):
            out.append(Assignment(j, a.item, a.right, a.left, is_control=True))
    return out


def to_rows(batch: Sequence[Assignment]) -> list[dict]:
    """A batch as the store keeps it (`from_rows` reads it back)."""
    return [{"position": a.position, "prompt_id": a.item.prompt_id, "sample": a.item.sample,
             "first": a.item.first, "second": a.item.second, "left": a.left,
             "right": a.right, "is_control": a.is_control} for a in batch]


def from_rows(rows: Sequence[dict]) -> list[Assignment]:
    return [Assignment(r["position"], Item(r["prompt_id"], r["sample"], r["first"],
                                           r["second"]), r["left"], r["right"],
                       r["is_control"]) for r in rows]


def submission_key(rater: str, run_key: str, a: Assignment) -> str:
    """The same rater answering the same assignment (double click, refresh, a second tab) gets
    the same key, so the store keeps one rating."""
    raw = f"{rater}|{run_key}|{a.item.prompt_id}|{a.item.sample}|{a.item.first}|" \
          f"{a.item.second}|{'control' if a.is_control else 'main'}"
    return hashlib.sha256(raw.encode()).hexdigest()


def main_key(rater: str, run_key: str, a: Assignment) -> str:
    """The submission key of the item's main (not control) rating by this rater."""
    return submission_key(rater, run_key, Assignment(a.position, a.item, a.left, a.right))


def control_sides(a: Assignment, main: dict | None) -> Assignment:
    """A control pair shows the item with the sides swapped from the main rating the rater
    actually gave (which another tab may have shown the other way round), so it still measures
    consistency."""
    if not a.is_control or main is None or main["left"] != a.left:
        return a
    return Assignment(a.position, a.item, a.right, a.left, is_control=True)


def outcome(row: dict) -> str:
    """What a rating chose, whatever sides it was shown with: the target preferred, or tie /
    both bad."""
    return winner(row) or row["choice"]


def as_shown(row: dict, a: Assignment) -> str:
    """The label of a stored rating's choice as this assignment shows the pair ("A" is the
    answer on this tab's left, whatever side it had where it was chosen)."""
    chosen = winner(row)
    if chosen is None:
        return LABELS[row["choice"]]
    return "A" if chosen == a.left else "B"


def rating_row(rater: str, run_pk: int, run_key: str, a: Assignment, choice: str,
               criteria: dict[str, str] | None = None, reason: str | None = None) -> dict:
    """The row to store; `choice` and criteria values are the labels the rater clicked."""
    if choice not in CHOICES:
        raise ValueError(f"unknown choice {choice!r}")
    return {
        "submission": submission_key(rater, run_key, a), "run_pk": run_pk, "rater": rater,
        "prompt_id": a.item.prompt_id, "sample": a.item.sample, "left": a.left,
        "right": a.right, "choice": CHOICES[choice],
        "criteria": {k: CHOICES[v] for k, v in (criteria or {}).items() if v in CHOICES},
        "reason": (reason or "").strip() or None, "is_control": a.is_control,
    }


def consistency(ratings: Sequence[dict]) -> dict[str, float]:
    """Per rater: share of control pairs answered with the same winner as the first time."""
    firsts = {(r["rater"], r["prompt_id"], r["sample"], *sorted((r["left"], r["right"]))):
              winner(r) or r["choice"] for r in ratings if not r.get("is_control")}
    agree: dict[str, list[bool]] = {}
    for r in ratings:
        if r.get("is_control"):
            key = (r["rater"], r["prompt_id"], r["sample"], *sorted((r["left"], r["right"])))
            if key in firsts:
                agree.setdefault(r["rater"], []).append(firsts[key] == (winner(r) or r["choice"]))
    return {rater: sum(v) / len(v) for rater, v in agree.items()}


# CommonMark with tables and strikethrough; raw HTML is escaped (html=False) and images are not
# parsed (their syntax stays text), so an answer can fetch nothing: a remote image would tell its
# host who is rating, and when. Links are kept as links (markdown-it refuses javascript: and
# similar schemes).
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"]).disable(
    "image")


def answer_html(text: str) -> str:
    """A model's answer as HTML that shows its Markdown and runs or loads nothing."""
    return _MARKDOWN.render(text)
