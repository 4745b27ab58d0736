"""The one controller both kinds reconcile through (slam_operator/controller.py): what it does
with the body it reads and with what a reconcile returns."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from slam_operator import app, controller
from slam_operator.controller import Controller, Outcome, View
from slam_operator.evaluation import reconcile as evaluation
from slam_operator.modeldeployment import reconcile as model_deployment
from slam_operator.settings import from_env

KEY = ("team-a", "m")


def body(uid: str = "u1", status: dict | None = None, spec: dict | None = None) -> dict:
    return {"apiVersion": "slam.dev/v1alpha1", "kind": "Thing",
            "metadata": {"namespace": KEY[0], "name": KEY[1], "uid": uid},
            "spec": spec or {}, "status": status or {}}


class Recorder:
    """A kind's reconcile that records the bodies it was given and returns the next outcome."""

    def __init__(self, *outcomes: Outcome) -> None:
        self.outcomes = list(outcomes)
        self.seen: list[dict] = []
        self.views: list[View] = []

    def __call__(self, kube: Any, obj: dict, view: View) -> Outcome:
        self.seen.append(obj)
        self.views.append(view)
        return self.outcomes.pop(0) if self.outcomes else Outcome()


def make(rec: Recorder, bodies: dict, fresh: dict | None = None, **kw: Any) -> Controller:
    c = Controller("Thing", rec, read=lambda kube, ns, name: (fresh or {}).get((ns, name)),
                   kube=lambda: None, workers=2, resync_seconds=60.0, **kw)
    c.bodies = bodies
    return c


def test_the_two_kinds_are_two_instances_of_one_controller() -> None:
    """Not two copies: both kinds' reconciles are run by Controller's own code, each with its
    kind's reconcile function and settings."""
    op = app.Operator.build(from_env({"SLAM_MAX_WORKERS": "3", "SLAM_EVALUATION_WORKERS": "2",
                                      "SLAM_PROGRESS_SECONDS": "7",
                                      "HF_ENDPOINT": "http://hub.test/"}))
    mds, evs = op.model_deployments, op.evaluations
    assert type(mds) is Controller and type(evs) is Controller
    assert (mds.kind, mds.workers, mds.resyncs) == ("ModelDeployment", 3, True)
    assert (evs.kind, evs.workers, evs.resyncs) == ("Evaluation", 2, False)
    assert mds._reconcile.func is model_deployment.reconcile
    assert evs._reconcile.func is evaluation.reconcile
    assert evs._reconcile.keywords["progress_seconds"] == 7.0
    assert op.hub.endpoint == "http://hub.test"


def test_a_stale_body_from_the_watch_gets_the_status_last_written() -> None:
    """Two reconciles in a row: the second starts from the status the first wrote, not from
    the older one the watch still holds (else the same Events twice)."""
    rec = Recorder(Outcome(status={"phase": "Running"}), Outcome())
    c = make(rec, {KEY: [body(status={"phase": "Pending"})]})
    c.reconcile(KEY, fresh=False)
    c.reconcile(KEY, fresh=False)
    assert [s["status"] for s in rec.seen] == [{"phase": "Pending"}, {"phase": "Running"}]


def test_a_fresh_read_or_another_object_of_the_name_keeps_its_own_status() -> None:
    rec = Recorder(Outcome(status={"phase": "Running"}), Outcome(), Outcome())
    bodies = {KEY: [body(status={"phase": "Pending"})]}
    c = make(rec, bodies, fresh={KEY: body(status={"phase": "Failed"})})
    c.reconcile(KEY, fresh=False)
    c.reconcile(KEY, fresh=True)  # as the API server has it: someone else's word counts
    bodies[KEY] = [body(uid="u2", status={})]  # deleted and created again
    c.reconcile(KEY, fresh=False)
    assert [s["status"] for s in rec.seen] == [{"phase": "Pending"}, {"phase": "Failed"}, {}]


def test_gone_or_going_objects_are_not_reconciled() -> None:
    rec = Recorder()
    going = body()
    going["metadata"]["deletionTimestamp"] = "2026-12-03T00:00:00Z"
    c = make(rec, {KEY: [going]}, fresh={})
    assert c.reconcile(KEY, fresh=False) is None
    assert c.reconcile(KEY, fresh=True) is None
    assert rec.seen == []


def test_created_children_count_as_existing_until_the_watch_reports_them() -> None:
    deployment = {"kind": "Deployment", "metadata": {"name": "m"}, "spec": {"replicas": 1}}
    index: dict = {}
    created = Outcome(created={("Deployment", "m"): deployment})
    rec = Recorder(created, created)
    c = make(rec, {KEY: [body()]}, expect_seconds=0.3)
    c.view = View([index], c.expected)
    c.reconcile(KEY, fresh=False)
    assert c.view.children(*KEY) == {("Deployment", "m"): deployment}
    watched = {**deployment, "status": {"availableReplicas": 1}}
    index[KEY] = [watched]
    assert c.view.children(*KEY) == {("Deployment", "m"): watched}  # the watch wins
    index.clear()  # deleted by hand once the watch had reported it: missing at once
    assert c.view.children(*KEY) == {}
    c.reconcile(KEY, fresh=False)  # created again, and deleted before its watch event
    assert c.view.children(*KEY) == {("Deployment", "m"): deployment}
    time.sleep(0.35)
    assert c.view.children(*KEY) == {}  # taken as missing after the wait: recreated


def test_children_indexed_under_another_key_are_expected_under_it() -> None:
    """An Evaluation's Job is indexed (with its pods) under the Job's name: the Job it just
    created is expected there, the next reconcile does not create it again, and an expectation
    nobody looks at again (the Evaluation deleted at once) is dropped by the resync pass."""
    job = {"kind": "Job", "metadata": {"name": "m-run-1"}, "spec": {}}
    jobs: dict = {}
    rec = Recorder(Outcome(created={("Job", "m-run-1"): job}, created_under="m-run-1"))
    c = make(rec, {KEY: [body()]}, expect_seconds=0.3)
    c.view = View([jobs], c.expected, {"ModelDeployment": {("team-a", "md"): [{"x": 1}]}})
    c.reconcile(KEY, fresh=False)
    assert c.view.children(KEY[0], "m-run-1") == {("Job", "m-run-1"): job}
    assert c.view.children(*KEY) == {}
    assert c.view.get("ModelDeployment", "team-a", "md") == {"x": 1}
    assert c.view.get("ModelDeployment", "team-a", "other") is None
    c.resync_pass(now=time.monotonic())
    assert (KEY[0], "m-run-1") in c.expected  # not due yet
    c.resync_pass(now=time.monotonic() + 1)
    assert c.expected == {}


def test_the_workers_retry_with_backoff_and_look_again_when_asked() -> None:
    """A reconcile that asks to retry comes back after the backoff; one in flight (an
    Evaluation's run) after its requeue delay; one that raised is retried, not lost."""
    async def main() -> list[tuple[str, float]]:
        calls: list[tuple[str, float]] = []
        t0 = time.monotonic()
        plan = {"retry": [Outcome(retry=True), Outcome()],
                "again": [Outcome(requeue_after=0.2), Outcome()],
                "raises": ["raise", Outcome()]}

        def reconcile(kube: Any, obj: dict, view: View) -> Outcome:
            name = obj["metadata"]["name"]
            calls.append((name, round(time.monotonic() - t0, 1)))
            step = plan[name].pop(0)
            if step == "raise":
                raise RuntimeError("boom")
            return step

        bodies = {("ns", n): [{"metadata": {"namespace": "ns", "name": n, "uid": n}}]
                  for n in plan}
        c = Controller("Thing", reconcile, read=lambda *a: None, kube=lambda: None, workers=2,
                       resync_seconds=60.0)
        c.queue._backoff = lambda n: 0.3
        c.start(bodies)
        for key in bodies:
            c.add(key)
        deadline = time.monotonic() + 10
        while any(plan.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await c.stop()
        return calls

    calls = asyncio.run(main())
    for name in ("retry", "again", "raises"):
        times = [t for n, t in calls if n == name]
        assert len(times) == 2, calls
        assert times[1] - times[0] >= 0.15, (name, calls)


def test_the_resync_queues_what_no_event_reconciled_within_the_period() -> None:
    rec = Recorder()
    a, b = ("ns", "a"), ("ns", "b")
    c = make(rec, {a: [body()], b: [body()]})
    c.reconciled.update({a: 0.0, b: 50.0})
    c.statuses[("ns", "gone")] = ("u", {})
    assert c.resync_pass(now=100.0) == [a]
    assert ("ns", "gone") not in c.statuses  # what was remembered of a deleted object
    c.resyncs = False
    assert c.resync_pass(now=1000.0) == []


@pytest.mark.parametrize("retries, delay", [(0, 5.0), (1, 10.0), (6, 300.0), (20, 300.0)])
def test_backoff_doubles_up_to_five_minutes(retries: int, delay: float) -> None:
    assert controller.backoff(retries) == delay
