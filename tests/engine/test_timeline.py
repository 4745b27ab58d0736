"""Which configuration of a ModelDeployment served each answer, and when a target was away
(issue 34): the pure timeline and its rows in a real store (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from slam import summary, timeline
from slam.generate import Endpoint, GenerationParams
from slam.runner import RunPlan, TargetRun, execute
from slam.store import Store
from tests.conftest import STUB_API_KEY
from tests.engine.test_run import prompt_set
from tests.servers import Stub

T0 = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


def state(i: int, at: int, available: bool = True, generation: int | None = 1,
          args: list[str] | None = None, rolling_to: int | None = None,
          reason: str | None = None, target: str = "small") -> dict:
    return {"id": i, "target": target, "at": T0 + timedelta(seconds=at),
            "available": available, "reason": reason, "generation": generation,
            "revision": "abc123def4567890", "image": "llamacpp:1",
            "args": args or ["--ctx-size", "512"], "rolling_to": rolling_to}


def response(i: int, at: float, target: str = "small") -> dict:
    return {"id": i, "target": target, "started_at": T0 + timedelta(seconds=at)}


STATES = [
    state(1, -60),  # recorded when the run began: generation 1, in effect since before
    state(2, 20, available=False, reason="ReplicasNotReady: 0/1 replicas available"),
    state(3, 31),
    state(4, 40, rolling_to=2),
    state(5, 55, generation=2, args=["--ctx-size", "768"]),
]


def test_each_answer_belongs_to_the_state_in_effect_when_it_started() -> None:
    responses = [response(1, 0), response(2, 25), response(3, 45), response(4, 60),
                 response(5, 10, target="api")]
    assert timeline.served_by(responses, STATES) == {1: 1, 2: 2, 3: 4, 4: 5}
    # An answer started before any state was recorded belongs to the first one.
    assert timeline.served_by([response(9, -600)], STATES) == {9: 1}


def test_the_report_says_when_a_target_was_away_and_how_its_answers_split() -> None:
    responses = [response(i, t) for i, t in enumerate([0, 5, 10, 45, 50, 60, 70])]
    notes = timeline.notes(responses, STATES, T0 + timedelta(seconds=80))
    assert notes[0] == ("small was unavailable during the run: 12:00:20-12:00:31 UTC (11 s): "
                        "ReplicasNotReady: 0/1 replicas available")
    assert notes[1].startswith("small's ModelDeployment changed during the run: 3 by "
                               "generation 1 (revision abc123def456; args --ctx-size 512), "
                               "2 by generation 1")
    assert "while generation 2 was rolling out (either may have answered)" in notes[1]
    assert notes[1].endswith("2 by generation 2 (revision abc123def456; args --ctx-size 768)")
    # Still away at the end of the run.
    away = timeline.notes([], [state(1, 0), state(2, 5, available=False, reason="gone")], None)
    assert away == ["small was unavailable during the run: from 12:00:05 UTC to the end: gone"]
    # One configuration, always available: nothing to say.
    assert timeline.notes(responses, [state(1, 0)]) == []


def test_only_changes_are_recorded_and_answers_are_stamped_in_the_store(
        stub: Stub, store_url: str) -> None:
    store = Store.open(store_url)
    target = TargetRun(Endpoint("small", stub.base_url, "small-model", STUB_API_KEY))
    plan = RunPlan("timeline", "1", "small", (target,), prompt_set(4),
                   GenerationParams(max_tokens=2))
    run_pk = asyncio.run(execute(plan, store)).run_pk
    started = min(r["started_at"] for r in store.responses(run_pk))
    first = {k: v for k, v in state(0, 0).items() if k != "id"} | {
        "at": started - timedelta(hours=1)}
    assert store.record_target_states(run_pk, [first]) == 1
    # The same state again (another reconcile, reworded reason): no row.
    assert store.record_target_states(run_pk, [first | {"reason": "x"}]) == 0
    later = first | {"at": started + timedelta(hours=1), "generation": 2}
    assert store.record_target_states(run_pk, [later]) == 1
    rows = store.target_states(run_pk)
    assert [r["generation"] for r in rows] == [1, 2]
    assert store.attribute_responses(run_pk) == 4
    assert {r["served_by"] for r in store.responses(run_pk)} == {rows[0]["id"]}
    assert store.attribute_responses(run_pk) == 0  # already stamped
    assert summary.load(store, run_pk).states == rows
    store.delete_evaluation("timeline")
    assert store.target_states(run_pk) == []


def test_each_target_keeps_its_own_details_whatever_comes_before_it() -> None:
    """What the operator says serves each ModelDeployment target (SLAM_TARGET_DETAILS) reaches
    the run for every target, also after an external target (whose pricing is its details)."""
    from slam.api.evaluation import Evaluation
    from slam.evalplan import build
    from slam.promptsets import PromptSet

    ev = Evaluation.model_validate({
        "apiVersion": "slam.dev/v1alpha1", "kind": "Evaluation", "metadata": {"name": "e"},
        "spec": {"promptSet": {"file": "p.jsonl"}, "reference": "api", "targets": [
            {"name": "api", "external": {"baseUrl": "http://x/v1", "model": "gpt-4"}},
            {"name": "a", "modelDeploymentRef": {"name": "md-a"}},
            {"name": "b", "modelDeploymentRef": {"name": "md-b"}}]}})
    prompts = PromptSet("p", "p.jsonl", ())
    plan = build(ev, prompts, endpoints={"a": "http://a/v1", "b": "http://b/v1"}, env={},
                 details={"a": {"generation": 2, "runtime": "vllm"},
                          "b": {"generation": 5, "runtime": "llamacpp"}})
    got = {t.name: t.details for t in plan.targets}
    assert got["a"] == {"generation": 2, "runtime": "vllm"}
    assert got["b"] == {"generation": 5, "runtime": "llamacpp"}
    assert got["api"] == {"pricing": None}
