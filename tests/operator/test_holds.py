"""Scale holds (holds.py): which runs keep a ModelDeployment up, and what it goes back to."""

from __future__ import annotations

from slam_operator import holds
from slam_operator.holds import Hold


def evaluation(uid: str = "u1", phase: str | None = "Running", completed: str | None = None,
               deleting: bool = False) -> dict:
    meta = {"uid": uid, **({"deletionTimestamp": "2026-12-03T10:00:00Z"} if deleting else {})}
    status = {**({"phase": phase} if phase else {}),
              **({"completionTime": completed} if completed else {})}
    return {"metadata": meta, "status": status}


SINCE = "2026-12-03T09:00:00Z"


def test_a_hold_lives_while_its_run_does_and_ends_with_it() -> None:
    hold = Hold("u1", 2, SINCE)
    assert holds.live(hold, evaluation())
    assert holds.live(hold, evaluation(phase=None))  # just created: no status yet
    assert not holds.live(hold, evaluation(phase="Succeeded", completed="2026-12-03T09:30:00Z"))
    assert not holds.live(hold, evaluation(phase="Failed", completed="2026-12-03T09:00:00Z"))
    assert not holds.live(hold, None)  # deleted
    assert not holds.live(hold, evaluation(deleting=True))
    assert not holds.live(hold, evaluation(uid="u2"))  # deleted and created again by name


def test_a_retried_run_holds_again_although_the_last_run_had_failed() -> None:
    # The watch can still show the earlier failure when the retry has taken its hold.
    retried = Hold("u1", 1, "2026-12-03T11:00:00Z")
    assert holds.live(retried, evaluation(phase="Failed", completed="2026-12-03T10:00:00Z"))


def test_served_replicas_are_the_spec_raised_to_the_largest_hold() -> None:
    assert holds.replicas(0, {}) == 0
    assert holds.replicas(0, {"a": Hold("u", 1, SINCE), "b": Hold("v", 3, SINCE)}) == 3
    assert holds.replicas(4, {"a": Hold("u", 1, SINCE)}) == 4  # never scaled below its own


def test_release_keeps_the_live_and_applies_the_latest_ended_after() -> None:
    held = {"a": Hold("ua", 2, "2026-12-03T09:00:00Z", after=1),
            "b": Hold("ub", 1, "2026-12-03T09:05:00Z", after=0),
            "c": Hold("uc", 1, "2026-12-03T09:10:00Z")}
    done = "2026-12-03T10:00:00Z"
    r = holds.release(held, {"a": evaluation("ua", "Succeeded", done),
                             "b": evaluation("ub", "Failed", done),
                             "c": evaluation("uc")})
    assert r.kept == {"c": held["c"]}
    assert r.dropped == ("a", "b")
    assert r.spec_replicas == 0  # b's, taken last
    # Ended without `after`: spec.replicas is left as it is (what the model had).
    r = holds.release({"c": held["c"]}, {})
    assert (r.kept, r.dropped, r.spec_replicas) == ({}, ("c",), None)


def test_taking_a_hold_keeps_when_it_was_first_taken_and_writes_nothing_twice() -> None:
    first = holds.take({}, "ev", "u1", 1, None, "2026-12-03T09:00:00Z")
    assert first == {"ev": Hold("u1", 1, "2026-12-03T09:00:00Z")}
    assert holds.take(first, "ev", "u1", 1, None, "2026-12-03T09:01:00Z") is None
    more = holds.take(first, "ev", "u1", 2, 0, "2026-12-03T09:02:00Z")
    assert more == {"ev": Hold("u1", 2, "2026-12-03T09:00:00Z", 0)}
    # Another object of the same name: a new hold, from now.
    again = holds.take(first, "ev", "u2", 1, None, "2026-12-03T09:03:00Z")
    assert again == {"ev": Hold("u2", 1, "2026-12-03T09:03:00Z")}


def test_the_annotation_round_trips_and_a_hand_edit_that_does_not_parse_holds_nothing() -> None:
    held = {"b": Hold("ub", 1, SINCE), "a": Hold("ua", 2, SINCE, 0)}
    text = holds.dump(held)
    assert text is not None and text.index('"a"') < text.index('"b"')
    assert holds.read({holds.HOLDS_ANNOTATION: text}) == held
    assert holds.dump({}) is None
    assert holds.read({holds.HOLDS_ANNOTATION: "not json"}) == {}
    assert holds.read({holds.HOLDS_ANNOTATION: '{"a": {"uid": "u"}, "b": '
                       '{"uid": "u", "replicas": "2", "since": "t"}}'}) == {
        "b": Hold("u", 2, "t")}
    assert holds.read(None) == {}
