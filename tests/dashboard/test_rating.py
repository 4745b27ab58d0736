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


def item_pair(it: rating.Item) -> frozenset[str]:
    return frozenset((it.first, it.second))


def test_decided_candidates_are_no_longer_served_and_undecided_ones_come_first() -> None:
    got = rating.open_items("ann", "/ev/1", items(), [], reference=REF,
                            decided=frozenset({"alpha"}))
    pairs = [item_pair(it) for it in got]
    assert frozenset((REF, "alpha")) not in pairs  # alpha is decided: no more of its pairs
    # Every (reference, beta) pair before any (alpha, beta) pair, which only refines the ranking.
    assert pairs[:12] == [frozenset((REF, "beta"))] * 12
    assert set(pairs[12:]) == {frozenset(("alpha", "beta"))}


def test_without_decisions_every_pair_is_served_reference_pairs_first() -> None:
    got = rating.open_items("ann", "/ev/1", items(), [], reference=REF)
    pairs = [item_pair(it) for it in got]
    assert len(pairs) == 36 and set(pairs[:24]) == {frozenset((REF, "alpha")),
                                                    frozenset((REF, "beta"))}
    assert set(pairs[24:]) == {frozenset(("alpha", "beta"))}
    # Sides are still drawn at random: the reference is not always A.
    batch = rating.session("ann", "/ev/1", items(), [], size=12, control_pairs=0, reference=REF)
    assert {a.left == REF for a in batch if REF in pair(a)} == {True, False}


def test_a_batch_never_asks_the_same_prompt_twice_except_as_a_control_pair() -> None:
    """12 prompts x 3 pairs: a batch of 20 holds 12 pairs, one per prompt, then 2 controls
    (earlier pairs again, sides swapped); the next batch serves the other pairs."""
    batch = rating.session("ann", "/ev/1", items(), [], size=20, control_pairs=2, reference=REF)
    main = [a for a in batch if not a.is_control]
    assert len(main) == 12 and len({a.item.prompt_id for a in main}) == 12
    controls = [a for a in batch if a.is_control]
    assert len(controls) == 2 and all(
        any(m.item == c.item and (m.left, m.right) == (c.right, c.left) for m in main)
        for c in controls)
    rated = [{"rater": "ann", "prompt_id": a.item.prompt_id, "sample": a.item.sample,
              "left": a.left, "right": a.right, "choice": "left", "is_control": a.is_control}
             for a in batch]
    second = rating.session("ann", "/ev/1", items(), rated, size=20, control_pairs=0,
                            reference=REF)
    assert len(second) == 12 and not {a.item for a in second} & {a.item for a in main}


def test_with_a_roster_each_rater_is_served_the_prompts_assigned_to_them_first() -> None:
    from slam import roster

    raters = ("ann", "bo", "cy")
    for who in raters:
        got = rating.open_items(who, "/ev/1", items(), [], reference=REF, roster=raters)
        mine = [it.prompt_id for it in got
                if roster.assigned("/ev/1", it.prompt_id, sorted(raters)) == who
                and REF in (it.first, it.second)]
        # Their assigned pairs against the reference first, in the run's counting order.
        head = [it.prompt_id for it in got[:len(mine)]]
        assert head == mine == sorted(mine, key=lambda p: roster.position("/ev/1", p))
        batch = rating.session(who, "/ev/1", items(), [], size=20, control_pairs=0,
                               reference=REF, roster=raters)
        assigned = [a.item.prompt_id for a in batch if rating.assigned_first(
            who, "/ev/1", a.item, REF, raters)]
        # One pair per prompt in a batch: each assigned prompt once, before anything else.
        assert assigned == list(dict.fromkeys(mine))[:len(assigned)]
        assert [a.item.prompt_id for a in batch[:len(assigned)]] == assigned
    # Someone not on the roster is served as before (least rated first).
    other = rating.open_items("dee", "/ev/1", items(), [], reference=REF, roster=raters)
    assert other == rating.open_items("dee", "/ev/1", items(), [], reference=REF)
