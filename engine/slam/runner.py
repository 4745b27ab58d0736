"""Run an evaluation's generation: every (target, prompt, sample) once, resumably.

The plan is built once (`RunPlan`); `execute` skips the keys the store already holds, drives each
target concurrently, and hands records to a RecordWriter (writer.py), which saves them in small
batches off the event loop and waits out store outages. A record that was in flight or waiting
when the process died is generated again on the next run: the store's key makes duplicates
impossible, and the writer's bound limits what is asked twice.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from slam import goodput
from slam.generate import Endpoint, GenerationParams, RequestRecord
from slam.loadgen import Arrival, Work, drive
from slam.promptsets import PromptSet
from slam.store import Store
from slam.writer import INTERRUPT_GRACE, MAX_UNSTORED, Invariant, RecordWriter, StoreListener


@dataclass(frozen=True)
class TargetRun:
    endpoint: Endpoint
    concurrency: int = 4
    arrival: Arrival = Arrival()
    processes: int | None = None  # generator processes (None: as the rate needs)
    kind: str = "external"  # modelDeployment | external | recorded (never called)
    details: dict = field(default_factory=dict)  # runtime, instance type, pricing (no secrets)

    @property
    def name(self) -> str:
        return self.endpoint.target


@dataclass(frozen=True)
class RunPlan:
    evaluation: str
    run_id: str
    reference: str
    targets: tuple[TargetRun, ...]
    prompts: PromptSet  # the whole set; `shard` selects this process's part
    params: GenerationParams = GenerationParams()
    samples: int = 1
    namespace: str = ""
    spec: dict = field(default_factory=dict)
    shard: tuple[int, int] = (0, 1)  # (index, count)

    @property
    def total(self) -> int:
        """Requests in the whole run (all shards)."""
        return len(self.targets) * len(self.prompts.prompts) * self.samples

    def work(self, target: str, skip: set[tuple[str, str, int]]) -> list[Work]:
        mine = self.prompts.shard(*self.shard).prompts
        # Sample-major order: an interrupted run has covered every prompt at least once.
        return [
            Work(p, s) for s in range(self.samples) for p in mine if (target, p.id, s) not in skip
        ]


@dataclass
class RunResult:
    run_pk: int
    skipped: int = 0  # already in the store when the run started
    records: list[RequestRecord] = field(default_factory=list)
    seconds: float = 0.0
    invariant: Invariant = Invariant(0, 0, [])

    @property
    def failed(self) -> int:
        return sum(1 for r in self.records if not r.ok)


class StoreError(RuntimeError):
    """The results store failed in a way that waiting does not cure."""


class Listener(StoreListener):
    """Progress callbacks (the CLI draws bars; the scoring Job logs)."""

    def start(self, target: str, total: int, already: int) -> None: ...

    def record(self, record: RequestRecord) -> None: ...

    def capacity(self, target: str, probe: goodput.Probe, slo: goodput.Slo) -> None:
        """A load level of `target`'s capacity search has been measured."""


def target_rows(plan: RunPlan) -> list[dict]:
    return [
        # A recorded incumbent is priced as the API it is (its details say it was recorded).
        {"name": t.name, "kind": "external" if t.kind == "recorded" else t.kind,
         "model": t.endpoint.model,
         "base_url": t.endpoint.base_url, "is_reference": t.name == plan.reference,
         "concurrency": t.concurrency, "details": t.details}
        for t in plan.targets
    ]


async def execute(
    plan: RunPlan,
    store: Store,
    *,
    retry_failed: bool = False,
    listener: Listener | None = None,
    down: Callable[[RequestRecord], BaseException | None] | None = None,
    max_unstored: int = MAX_UNSTORED,
) -> RunResult:
    """Generate what the store does not hold yet for this run (and shard).

    Records go to the store through a RecordWriter (writer.py): kept until saved, retried
    through store outages, generation paused while `max_unstored` wait. `result.invariant`
    says whether every answer received was stored; the run is marked finished only then.

    `down` is asked about every failed record: when it returns an error (the server behind the
    target is gone, see localserve.watchdog), the run stops at once with that error, keeping
    what finished; the record is not stored, so a resumed run sends that request again.
    """
    listener = listener or Listener()
    t0 = time.perf_counter()
    run_pk = await asyncio.to_thread(
        store.begin_run,
        namespace=plan.namespace, evaluation=plan.evaluation, run_id=plan.run_id,
        reference=plan.reference, spec=plan.spec, targets=target_rows(plan),
        prompts=plan.prompts, total=plan.total,
    )
    done = await asyncio.to_thread(store.done_keys, run_pk, include_failed=not retry_failed)
    result = RunResult(run_pk)
    writer = RecordWriter(store, run_pk, replace_failed=retry_failed, listener=listener,
                          limit=max_unstored)
    stopped: list[BaseException] = []
    generating: asyncio.Future | None = None

    def stop(reason: BaseException) -> None:
        stopped.append(reason)
        assert generating is not None
        generating.cancel()

    async def on_record(record: RequestRecord) -> None:
        if stopped:
            return
        if not record.ok and down is not None and (reason := down(record)) is not None:
            stop(reason)
            return
        result.records.append(record)
        listener.record(record)
        # Waits while the store is away and MAX_UNSTORED answers wait: this request's
        # concurrency slot stays taken, so no further request goes out meanwhile.
        await writer.put(record)

    drivers = []
    for t in plan.targets:
        work = plan.work(t.name, done)
        mine = len(plan.work(t.name, set()))
        result.skipped += mine - len(work)
        listener.start(t.name, mine, mine - len(work))
        if t.kind == "recorded":
            # Answered when the gateway recorded the request; one it has no answer for (none,
            # as it stores both at once) cannot be asked again, and is left missing.
            continue
        drivers.append(drive(t.endpoint, work, plan.params, concurrency=t.concurrency,
                             arrival=t.arrival, on_record=on_record, seed=plan.shard[0],
                             processes=t.processes))
    flushing = asyncio.create_task(writer.run())
    flushing.add_done_callback(
        lambda task: None if task.cancelled() or task.exception() is None
        else stop(StoreError(f"the results store failed: "
                             f"{store.describe_error(task.exception())}")))
    generating = asyncio.gather(*drivers)
    interrupted = True
    try:
        await generating
        interrupted = False
    except asyncio.CancelledError:
        if not stopped:
            raise
        raise stopped[0] from None
    finally:
        flushing.cancel()
        # Whatever finished is kept, even when the run is interrupted (Ctrl-C, SIGTERM): the
        # last save waits for the store as long as it takes, or INTERRUPT_GRACE when stopped.
        writer.close(INTERRUPT_GRACE if interrupted else None)
        result.invariant = writer.check()
    if plan.shard[1] == 1 and result.invariant.ok:
        await asyncio.to_thread(store.finish_run, run_pk)
    result.seconds = time.perf_counter() - t0
    return result


def run(plan: RunPlan, store: Store, **kwargs: object) -> RunResult:
    return asyncio.run(execute(plan, store, **kwargs))  # type: ignore[arg-type]


def capacity_targets(plan: RunPlan) -> list[TargetRun]:
    """The targets whose capacity is searched: self-hosted ones, when the spec sets an SLO."""
    if goodput.Slo.from_spec((plan.spec.get("cost") or {}).get("slo")) is None:
        return []
    return [t for t in plan.targets if t.kind == "modelDeployment"]


def stored_probes(store: Store, run_pk: int, target: str) -> list[goodput.Probe]:
    return [goodput.Probe.from_row(row) for row in store.capacity_probes(run_pk, target)]


async def search_capacity(plan: RunPlan, store: Store, run_pk: int,
                          listener: Listener | None = None) -> dict[str, goodput.Capacity]:
    """Each self-hosted target's capacity search at the spec's SLO (slam.goodput), one target
    at a time so none is measured while another loads the machine or the cluster; run once the
    whole run is generated. Probes go to the store as they are measured: a search interrupted
    by a restart goes on from them."""
    targets = capacity_targets(plan)
    if not targets:
        return {}
    cost_spec = plan.spec.get("cost") or {}
    slo = goodput.Slo.from_spec(cost_spec.get("slo"))
    assert slo is not None
    search = goodput.Search.from_spec(cost_spec.get("capacitySearch"))
    listener = listener or Listener()
    # Every attempt counts: a retried request would hide the failure the SLO must count.
    params = dataclasses.replace(plan.params, max_retries=0)
    results = {}
    for t in targets:
        done = await asyncio.to_thread(stored_probes, store, run_pk, t.name)
        number = len(done)

        async def save(probe: goodput.Probe, target: str = t.name) -> None:
            nonlocal number
            await asyncio.to_thread(store.save_capacity_probe, run_pk, target, number, probe)
            number += 1
            listener.capacity(target, probe, slo)

        probes = await goodput.measure(t.endpoint, plan.prompts.prompts, params, slo, search,
                                       done=done, on_probe=save)
        results[t.name] = goodput.outcome(probes, slo, search,
                                          int(t.details.get("replicas") or 1))
    return results
