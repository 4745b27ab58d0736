"""The load generator split over processes: the schedule it keeps, the concurrency it respects,
the records it hands back, and the failures it reports."""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from slam.api.evaluation import Target
from slam.generate import Endpoint, GenerationParams, RequestRecord
from slam.loadgen import Arrival, Work, arrivals, available_cores, drive, processes_for, share
from slam.promptsets import PromptItem
from slam.runner import RunPlan, TargetRun, execute
from slam.store import Store
from tests.conftest import STUB_API_KEY
from tests.engine.test_run import prompt_set
from tests.servers import Stub

PARAMS = GenerationParams(max_tokens=4, timeout_seconds=10, max_retries=0)


def work(n: int, text: str = "hello") -> list[Work]:
    return [Work(PromptItem(f"p{i:03d}", ({"role": "user", "content": f"{text} {i}"},)), 0)
            for i in range(n)]


async def schedule(arrival: Arrival, start: float, n: int, seed: object = 0) -> list[float]:
    """The first n due times of an arrival process, without waiting for them."""
    out = []
    gen = arrivals(arrival, np.random.default_rng(seed), start)
    for _ in range(n):
        out.append(await anext(gen))
    return out


@pytest.mark.parametrize("count", [2, 3, 4])
def test_constant_shares_interleave_back_into_the_whole_schedule(count: int) -> None:
    rate, start = 400.0, -1e6  # due times in the past: nothing sleeps
    whole = asyncio.run(schedule(Arrival("constant", rate), start, 12 * count))
    merged = []
    for k in range(count):
        part, part_start = share(Arrival("constant", rate), start, k, count)
        assert part.rate == pytest.approx(rate / count)
        merged += asyncio.run(schedule(part, part_start, 12))
    assert sorted(merged) == pytest.approx(whole)


def test_poisson_shares_add_up_to_the_rate() -> None:
    rate, start, count = 600.0, -1e6, 3
    merged = []
    for k in range(count):
        part, part_start = share(Arrival("poisson", rate), start, k, count)
        merged += asyncio.run(schedule(part, part_start, 4000, seed=(7, k)))
    merged.sort()
    # Over the span all three cover, the superposition runs at the full rate with exponential
    # gaps (mean = standard deviation = 1/rate).
    horizon = min(max(s for s in merged[k::count]) for k in range(count))
    inside = np.array([t for t in merged if t <= horizon]) - start
    gaps = np.diff(inside)
    assert len(inside) / inside[-1] == pytest.approx(rate, rel=0.05)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.08)


def test_processes_follow_the_rate_and_are_capped_by_cores_concurrency_and_requests() -> None:
    assert processes_for(Arrival(), None, 1000, 64, cores=8) == 1
    assert processes_for(Arrival("constant", 200), None, 1000, 64, cores=8) == 1
    assert processes_for(Arrival("constant", 900), None, 1000, 64, cores=8) == 4
    assert processes_for(Arrival("poisson", 900), None, 1000, 64, cores=2) == 2
    assert processes_for(Arrival("constant", 900), None, 1000, 3, cores=8) == 3
    assert processes_for(Arrival("constant", 900), None, 2, 64, cores=8) == 2
    assert processes_for(Arrival(), 3, 1000, 64, cores=8) == 3  # set in the spec


def test_the_spec_and_the_scoring_job_agree_on_processes() -> None:
    from slam.api.evaluation import EvaluationSpec
    from slam_operator.evaluation.job import generator_cpus

    def target(name: str, **extra: object) -> dict:
        return {"name": name, "external": {"baseUrl": "http://x/v1", "model": "m"}, **extra}

    spec = EvaluationSpec.model_validate({
        "promptSet": {"file": "prompts.yaml"}, "reference": "a",
        "targets": [target("a"), target("b", arrival={"process": "constant", "rate": 600}),
                    target("c", processes=2)]})
    assert [t.generator_processes for t in spec.targets] == [1, 3, 2]
    assert generator_cpus(spec) == 1 + 3 + 2
    assert Target.model_validate(target("d", arrival={"process": "poisson", "rate": 250})
                                 ).generator_processes == 1


def test_available_cores_reads_the_cgroup_quota(tmp_path: Path) -> None:
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")
    unlimited = available_cores(cpu_max)
    assert unlimited >= 1
    cpu_max.write_text("150000 100000\n")  # a pod limit of 1.5 CPU: one more process fits
    assert available_cores(cpu_max) == min(unlimited, 2)
    cpu_max.write_text("50000 100000\n")
    assert available_cores(cpu_max) == 1
    assert available_cores(tmp_path / "absent") == unlimited


@pytest.fixture
def two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plan as on a machine with two free cores, whatever this one reports."""
    monkeypatch.setattr("slam.loadgen.available_cores", lambda: 2)


def test_two_processes_send_every_request_once_and_hand_back_every_record(
        stub: Stub, two_cores: None) -> None:
    stub.reset()
    records: list[RequestRecord] = []
    children: list[int] = []

    def on_record(r: RequestRecord) -> None:
        records.append(r)
        children.append(len(multiprocessing.active_children()))

    endpoint = Endpoint("t", stub.base_url, "m", STUB_API_KEY)
    asyncio.run(drive(endpoint, work(60, "two"), PARAMS, concurrency=8,
                      arrival=Arrival("constant", 300), on_record=on_record, processes=None))
    assert sorted(r.prompt_id for r in records) == [f"p{i:03d}" for i in range(60)]
    assert all(r.ok for r in records), [r.error_message for r in records if not r.ok][:3]
    assert all(r.schedule_lag_ms is not None for r in records)
    assert max(children) == 2  # the rate asked for two generator processes
    assert sum(stub.hits().values()) == 60  # and each request went out once
    assert multiprocessing.active_children() == []  # none is left behind


def test_a_slow_consumer_holds_the_slots_across_processes(stub: Stub, two_cores: None) -> None:
    """While on_record waits (the store away), no more than `concurrency` answers wait: the
    slots stay taken in the worker processes, as they do in one."""
    arrived: list[RequestRecord] = []

    async def main() -> None:
        gate = asyncio.Event()

        async def on_record(r: RequestRecord) -> None:
            arrived.append(r)
            await gate.wait()

        endpoint = Endpoint("t", stub.base_url, "m", STUB_API_KEY)
        run = asyncio.create_task(drive(endpoint, work(40, "slow"), PARAMS, concurrency=4,
                                        on_record=on_record, processes=2))
        for _ in range(100):  # until the slots are all taken
            await asyncio.sleep(0.1)
            if len(arrived) >= 4:
                break
        await asyncio.sleep(1.0)  # longer than 40 answers from the stub take
        held = len(arrived)
        gate.set()
        await run
        assert held == 4, f"{held} answers waited with concurrency 4"

    asyncio.run(main())
    assert len(arrived) == 40


def test_a_consumer_error_stops_the_run_and_the_processes(stub: Stub, two_cores: None) -> None:
    def on_record(r: RequestRecord) -> None:
        raise ValueError("the store refused it")

    endpoint = Endpoint("t", stub.base_url, "m", STUB_API_KEY)
    with pytest.raises(ValueError, match="the store refused it"):
        asyncio.run(drive(endpoint, work(20, "err"), PARAMS, concurrency=4, on_record=on_record,
                          processes=2))
    assert multiprocessing.active_children() == []


def test_a_dead_generator_process_fails_the_run_and_says_which(
        stub: Stub, two_cores: None) -> None:
    async def main() -> None:
        async def on_record(r: RequestRecord) -> None:
            for p in multiprocessing.active_children():
                if p.name.endswith("-1"):
                    p.kill()
            await asyncio.sleep(0.05)

        endpoint = Endpoint("t", stub.base_url, "m", STUB_API_KEY)
        await drive(endpoint, work(40, "dead"), PARAMS, concurrency=2, on_record=on_record,
                    processes=2)

    with pytest.raises(RuntimeError, match=r"generator process 2 of 2 for target t failed: "
                                           r"it exited with code -9"):
        asyncio.run(main())
    assert multiprocessing.active_children() == []


def test_a_run_through_two_processes_is_stored_and_resumes(
        stub: Stub, store_url: str, two_cores: None) -> None:
    """The runner's guarantees hold with a target split over processes: one row per key, and a
    second run sends nothing."""
    target = TargetRun(Endpoint("small", stub.base_url, "small-model", STUB_API_KEY),
                       concurrency=4, arrival=Arrival("constant", 400), processes=None)
    reference = TargetRun(Endpoint("gpt4", stub.base_url, "gpt-4", STUB_API_KEY), concurrency=2)
    plan = RunPlan("ev", "mp", "gpt4", (reference, target), prompt_set(15), PARAMS, samples=2)
    store = Store.open(store_url)
    result = asyncio.run(execute(plan, store))
    rows = store.responses(result.run_pk)
    keys = {(r["target"], r["prompt_id"], r["sample"]) for r in rows}
    assert len(rows) == len(keys) == plan.total == 60
    assert all(r["error_class"] is None for r in rows)
    assert asyncio.run(execute(plan, store)).skipped == 60
