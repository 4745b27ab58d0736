"""Condition merge and the roll-up into Ready."""

from __future__ import annotations

from slam_operator.conditions import Cond, merge, roll_up, transitions


def test_roll_up_true_only_when_all_true() -> None:
    parts = [Cond("ModelResolved", "True", "Resolved"), Cond("Fits", "True", "Fits"),
             Cond("Available", "True", "MinimumReplicasAvailable")]
    assert roll_up(parts).status == "True"


def test_false_wins_and_the_first_blocking_part_explains() -> None:
    parts = [Cond("ModelResolved", "Unknown", "HubUnreachable", "retrying"),
             Cond("Fits", "True", "Fits"),
             Cond("Available", "False", "NotDeployed", "no Deployment")]
    ready = roll_up(parts)
    assert (ready.status, ready.reason) == ("False", "HubUnreachable")
    assert ready.message == "ModelResolved: retrying"
    assert roll_up(parts[:2]).status == "Unknown"
    fits = roll_up([Cond("ModelResolved", "True", "Resolved"),
                    Cond("Fits", "False", "InsufficientGPUMemory", "needs 17 GiB")])
    assert (fits.status, fits.message) == ("False", "Fits: needs 17 GiB")


def test_transition_time_moves_only_on_status_change() -> None:
    first = merge(None, [Cond("Ready", "False", "Creating")], 1, "t1")
    same = merge(first, [Cond("Ready", "False", "ReplicasNotReady", "0/1")], 2, "t2")
    assert same[0]["lastTransitionTime"] == "t1"
    assert same[0]["observedGeneration"] == 2
    flipped = merge(same, [Cond("Ready", "True", "Ready")], 2, "t3")
    assert flipped[0]["lastTransitionTime"] == "t3"
    assert transitions(same, flipped) == flipped
    assert transitions(flipped, merge(flipped, [Cond("Ready", "True", "Ready")], 2, "t4")) == []


def test_a_blocked_ready_gets_no_event_of_its_own_when_its_cause_has_one() -> None:
    resolved = Cond("ModelResolved", "True", "Resolved")
    loading = Cond("Available", "False", "ReplicasNotReady", "0/1 available")
    first = merge(None, [resolved, loading, roll_up([resolved, loading])], 1, "t1")
    # Ready=False ReplicasNotReady says what Available's Event says: one Event, Available's.
    assert [c["type"] for c in transitions(None, first)] == ["ModelResolved", "Available"]
    stuck = Cond("Available", "False", "Unschedulable", "no node")
    later = merge(first, [resolved, stuck, roll_up([resolved, stuck])], 1, "t2")
    assert [c["type"] for c in transitions(first, later)] == ["Available"]
    # Ready changing alone, or becoming True, is an Event of its own.
    ready = merge(later, [resolved, Cond("Available", "True", "MinimumReplicasAvailable"),
                          Cond("Ready", "True", "Ready")], 1, "t3")
    assert [c["type"] for c in transitions(later, ready)] == ["Available", "Ready"]
    quiet = merge(first, [resolved, loading, Cond("Ready", "False", "Paused")], 1, "t4")
    assert [c["type"] for c in transitions(first, quiet)] == ["Ready"]
