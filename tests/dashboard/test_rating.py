"""The rating queue (pure): what a rater is served next once some decisions are reached."""

from __future__ import annotations

from slam_dashboard import rating

REF = "gpt4"


def items(prompts: int = 12) -> list[rating.Item]:
    responses = [{"target": t, "prompt_id": f"p{i:02d}", "sample": 0, "error_class": None,
                  "text": "answer"} for t in (REF, "alpha", "beta") for i in range(prompts)]
    return rating.items(responses)


def pair(a: rating.Assignment) -> frozenset[str]:
    return frozenset((a.left, a.right))


def test_decided_candidates_are_no_longer_served_and_undecided_ones_come_first() -> None:
    got = rating.session("ann", "/ev/1", items(), [], size=30, control_pairs=0,
                         reference=REF, decided=frozenset({"alpha"}))
    pairs = [pair(a) for a in got]
    assert frozenset((REF, "alpha")) not in pairs  # alpha is decided: no more of its pairs
    # Every (reference, beta) pair before any (alpha, beta) pair, which only refines the ranking.
    assert pairs[:12] == [frozenset((REF, "beta"))] * 12
    assert set(pairs[12:]) == {frozenset(("alpha", "beta"))}


def test_without_decisions_every_pair_is_served_reference_pairs_first() -> None:
    got = rating.session("ann", "/ev/1", items(), [], size=36, control_pairs=0, reference=REF)
    pairs = [pair(a) for a in got]
    assert len(pairs) == 36 and set(pairs[:24]) == {frozenset((REF, "alpha")),
                                                    frozenset((REF, "beta"))}
    assert set(pairs[24:]) == {frozenset(("alpha", "beta"))}
    # Sides are still drawn at random: the reference is not always A.
    assert {a.left == REF for a in got if REF in pair(a)} == {True, False}
