"""The periodic resync visits what no event reconciled within the period (slam_operator/resync)."""

from __future__ import annotations

from slam_operator.resync import due

A, B, C = ("team-a", "a"), ("team-a", "b"), ("team-b", "c")


def test_objects_no_handler_has_reconciled_yet_are_left_to_it() -> None:
    """Right after a restart kopf lists the cluster before it runs any handler: the resync must
    not reconcile from a half-filled view (it would write "Creating" over a running server)."""
    assert due([C, A, B], {}, now=100.0, period=20.0) == []
    assert due([C, A, B], {A: 50.0}, now=100.0, period=20.0) == [A]


def test_an_object_an_event_reconciled_within_the_period_is_skipped() -> None:
    last = {A: 90.0, B: 80.0, C: 79.0}
    assert due([A, B, C], last, now=100.0, period=20.0) == [B, C]


def test_the_pass_skips_what_events_keep_fresh_and_returns_to_it_when_they_stop() -> None:
    last: dict = {A: 0.0, B: 0.0}  # both reconciled by their create handlers at first
    visits: list[tuple[float, tuple[str, str]]] = []
    for now in (20.0, 40.0, 60.0, 80.0, 100.0):
        if now <= 60.0:
            last[A] = now - 5.0  # an event reconciled A 5 s before this pass
        for key in due([A, B], last, now, 20.0):
            visits.append((now, key))
            last[key] = now  # the pass reconciles it
    assert visits == [(20.0, B), (40.0, B), (60.0, B), (80.0, A), (80.0, B), (100.0, A),
                      (100.0, B)]


def test_deleted_objects_are_forgotten() -> None:
    last = {A: 1.0, B: 2.0}
    assert due([B], last, now=100.0, period=20.0) == [B]
    assert last == {B: 2.0}
