"""Run an evaluation's generation: every (target, prompt, sample) once, resumably.

The plan is built once (`RunPlan`); `execute` skips the keys the store already holds, drives each
target concurrently, and writes records in small batches from a background thread so the event
loop keeps its schedule. A record that was in flight when the process died is generated again on
the next run: nothing is lost, and the store's key makes duplicates impossible.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from slam.generate import Endpoint, GenerationParams, RequestRecord
from slam.loadgen import Arrival, Work, drive
from slam.promptsets import PromptSet
from slam.store import Store

FLUSH_SECONDS = 0.25


@dataclass(frozen=True)
class TargetRun:
    endpoint: Endpoint
    concurrency: int = 4
    arrival: Arrival = Arrival()
    kind: str = "external"  # modelDeployment | external
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

    @property
    def failed(self) -> int:
        return sum(1 for r in self.records if not r.ok)


class Listener:
    """Progress callbacks (the CLI draws bars; the scoring Job logs)."""

    def start(self, target: str, total: int, already: int) -> None: ...

    def record(self, record: RequestRecord) -> None: ...


def target_rows(plan: RunPlan) -> list[dict]:
    return [
        {"name": t.name, "kind": t.kind, "model": t.endpoint.model,
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
) -> RunResult:
    """Generate what the store does not hold yet for this run (and shard).

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
    pending: list[RequestRecord] = []
    lock = threading.Lock()

    def flush() -> None:
        with lock:
            batch = pending[:]
            del pending[: len(batch)]
            if batch:
                store.save(run_pk, batch, replace_failed=retry_failed)

    async def flusher() -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await asyncio.to_thread(flush)

    stopped: list[BaseException] = []
    generating: asyncio.Future | None = None

    def on_record(record: RequestRecord) -> None:
        if stopped:
            return
        if not record.ok and down is not None and (reason := down(record)) is not None:
            stopped.append(reason)
            assert generating is not None
            generating.cancel()
            return
        pending.append(record)
        result.records.append(record)
        listener.record(record)

    drivers = []
    for t in plan.targets:
        work = plan.work(t.name, done)
        mine = len(plan.work(t.name, set()))
        result.skipped += mine - len(work)
        listener.start(t.name, mine, mine - len(work))
        drivers.append(drive(t.endpoint, work, plan.params, concurrency=t.concurrency,
                             arrival=t.arrival, on_record=on_record, seed=plan.shard[0]))
    flushing = asyncio.create_task(flusher())
    generating = asyncio.gather(*drivers)
    try:
        await generating
    except asyncio.CancelledError:
        if not stopped:
            raise
        raise stopped[0] from None
    finally:
        flushing.cancel()
        # Whatever finished is kept, even when the run is interrupted (Ctrl-C, SIGTERM).
        flush()
    if plan.shard[1] == 1:
        await asyncio.to_thread(store.finish_run, run_pk)
    result.seconds = time.perf_counter() - t0
    return result


def run(plan: RunPlan, store: Store, **kwargs: object) -> RunResult:
    return asyncio.run(execute(plan, store, **kwargs))  # type: ignore[arg-type]

