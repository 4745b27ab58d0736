"""Send a target its requests: an arrival process, a concurrency limit, records out.

Arrival processes are small async generators yielding the time each request was *scheduled*;
the dispatcher records how late it actually went out (schedule lag), which is how the capacity
benchmark knows the generator, not the server, kept up.

One process keeps a schedule up to a few hundred requests/s on the slower machines of our kind
(bench/generator.py measures it). Past that, `drive` splits the work over one generator process
per core: each process sends every n-th request on its own share of the schedule (a constant
rate shifted by its place in the interleave; for Poisson, n independent Poisson processes at
rate/n, whose superposition is Poisson at the full rate) and its share of the concurrency.
Records come back to the caller's `on_record` in this process, and a request's concurrency slot
in its worker is held until `on_record` has finished here, as it is in one process: while the
store is away, no more than `concurrency` answers wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from openai import AsyncOpenAI

from slam.api.evaluation import planned_processes as api_planned_processes
from slam.generate import Endpoint, GenerationParams, RequestRecord, generate
from slam.promptsets import PromptItem

log = logging.getLogger(__name__)

# Seconds the workers get between "all ready" and the first scheduled request.
START_MARGIN = 0.2


@dataclass(frozen=True)
class Arrival:
    process: str = "max"  # max | constant | poisson
    rate: float | None = None  # requests per second


async def arrivals(arrival: Arrival, rng: np.random.Generator,
                   start: float | None = None) -> AsyncIterator[float | None]:
    """Yield forever: None for `max` (no schedule), else the perf_counter time a request is due.
    The first request is due one gap after `start` (default: now)."""
    if arrival.process == "max":
        while True:
            yield None
    assert arrival.rate
    due = time.perf_counter() if start is None else start
    while True:
        if arrival.process == "constant":
            due += 1.0 / arrival.rate
        else:  # poisson: exponential gaps
            due += float(rng.exponential(1.0 / arrival.rate))
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        yield due


def available_cores(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota (a pod's
    CPU limit shows there, not in the affinity)."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def planned_processes(arrival: Arrival, processes: int | None) -> int:
    """Generator processes a target's load is planned for (the API's rule, one per
    GENERATOR_RATE_PER_PROCESS requests/s unless set)."""
    return api_planned_processes(arrival.process, arrival.rate, processes)


def processes_for(arrival: Arrival, processes: int | None, requests: int,
                  concurrency: int, cores: int | None = None) -> int:
    """How many processes `drive` actually uses: the plan, capped by the cores available, the
    concurrency (each process needs a slot) and the requests."""
    cores = available_cores() if cores is None else cores
    return max(1, min(planned_processes(arrival, processes), cores, concurrency, requests))


def share(arrival: Arrival, start: float, index: int, count: int) -> tuple[Arrival, float]:
    """Process `index` of `count`'s part of the schedule, and the time its schedule starts from:
    merged, the parts give back the whole schedule."""
    if arrival.process == "max" or not arrival.rate:
        return arrival, start
    part = Arrival(arrival.process, arrival.rate / count)
    if arrival.process == "constant":
        # Requests due at start + (index + 1 + j*count)/rate, j = 0, 1, ...: the whole
        # schedule start + k/rate, k = 1, 2, ..., interleaved.
        return part, start + (index + 1) / arrival.rate - count / arrival.rate
    return part, start


@dataclass(frozen=True)
class Work:
    prompt: PromptItem
    sample: int


async def drive(
    endpoint: Endpoint,
    work: Sequence[Work],
    params: GenerationParams,
    *,
    concurrency: int,
    arrival: Arrival = Arrival(),
    on_record: Callable[[RequestRecord], Awaitable[None] | None],
    seed: int = 0,
    client: AsyncOpenAI | None = None,
    processes: int | None = 1,
) -> None:
    """Send every item of `work` to `endpoint`; hand each record to `on_record` as it finishes.
    `processes`: generator processes (None: as the rate needs, see `planned_processes`)."""
    if not work:
        return
    n = 1 if client is not None else processes_for(arrival, processes, len(work), concurrency)
    if n > 1:
        await _drive_processes(endpoint, work, params, concurrency=concurrency, arrival=arrival,
                               on_record=on_record, seed=seed, count=n)
        return
    await _drive(endpoint, work, params, concurrency=concurrency, arrival=arrival,
                 on_record=on_record, seed=seed, client=client)


async def _drive(
    endpoint: Endpoint,
    work: Sequence[Work],
    params: GenerationParams,
    *,
    concurrency: int,
    arrival: Arrival,
    on_record: Callable[[RequestRecord], Awaitable[None] | None],
    seed: int | tuple[int, ...],
    client: AsyncOpenAI | None = None,
    start: float | None = None,
) -> None:
    sem = asyncio.Semaphore(concurrency)
    own_client = client is None
    client = client or endpoint.client(params)
    tasks: set[asyncio.Task] = set()
    rng = np.random.default_rng(seed)

    async def one(item: Work, lag_ms: float | None) -> None:
        try:
            record = await generate(client, endpoint, item.prompt, item.sample, params, lag_ms)
            result = on_record(record)
            if result is not None:
                await result
        finally:
            sem.release()

    try:
        schedule = arrivals(arrival, rng, start)
        for item in work:
            due = await anext(schedule)
            await sem.acquire()
            lag = None if due is None else (time.perf_counter() - due) * 1000.0
            task = asyncio.create_task(one(item, lag))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            await asyncio.gather(*list(tasks))
    finally:
        for t in tasks:
            t.cancel()
        if own_client:
            await client.close()


# --- one generator process per core ------------------------------------------------------------
#
# Each worker talks to this process over a duplex pipe: ("ready",) once imported, then
# ("record", id, RequestRecord) per answer (its slot held until ("ack", id) comes back), and
# ("done",) or ("error", text) at the end. Each side reads its pipe in a thread of its own, so
# neither can block the other's writes.


@dataclass(frozen=True)
class _Job:
    endpoint: Endpoint  # the API key travels in the pipe, never on a command line
    work: tuple[Work, ...]
    params: GenerationParams
    concurrency: int
    arrival: Arrival
    seed: tuple[int, int]
    index: int
    count: int


def _reader(conn, loop: asyncio.AbstractEventLoop,
            deliver: Callable[[object], None]) -> None:
    """Hand every message on `conn` to `deliver` in `loop`, in order; then None when the other
    end is gone. Messages already waiting go over together: one wake-up of the loop for many."""
    while True:
        batch: list[object] = []
        try:
            batch.append(conn.recv())
            while len(batch) < 256 and conn.poll():
                batch.append(conn.recv())
        except (EOFError, OSError):
            batch.append(None)
        try:
            loop.call_soon_threadsafe(_deliver_all, deliver, batch)
        except RuntimeError:  # the loop has closed
            return
        if batch[-1] is None:
            return


def _deliver_all(deliver: Callable[[object], None], batch: list[object]) -> None:
    for message in batch:
        deliver(message)


def _worker(conn, job: _Job) -> None:
    """A generator process: its share of the schedule and the concurrency."""
    try:
        asyncio.run(_work(conn, job))
        conn.send(("done",))
    except BaseException:  # noqa: BLE001 - reported to the parent, whatever it was
        with contextlib.suppress(OSError):
            conn.send(("error", traceback.format_exc(limit=8)))
    finally:
        conn.close()


async def _work(conn, job: _Job) -> None:
    loop = asyncio.get_running_loop()
    acks: dict[int, asyncio.Future] = {}
    started: asyncio.Future = loop.create_future()

    def deliver(message: object) -> None:
        if message is None:  # the parent is gone: stop sending
            for f in [started, *acks.values()]:
                if not f.done():
                    f.set_exception(ConnectionError("the parent process has gone"))
            return
        kind = message[0]
        if kind == "start" and not started.done():
            started.set_result(message[1])
        elif kind == "ack" and (f := acks.pop(message[1], None)) is not None and not f.done():
            f.set_result(None)

    threading.Thread(target=_reader, args=(conn, loop, deliver), daemon=True).start()
    conn.send(("ready",))
    start_epoch = await started
    start = time.perf_counter() + (start_epoch - time.time())
    part, part_start = share(job.arrival, start, job.index, job.count)
    ids = iter(range(len(job.work)))

    async def send(record: RequestRecord) -> None:
        i = next(ids)
        acks[i] = loop.create_future()
        conn.send(("record", i, record))
        await acks[i]

    await _drive(job.endpoint, job.work, job.params, concurrency=job.concurrency, arrival=part,
                 on_record=send, seed=job.seed, start=part_start)


async def _drive_processes(
    endpoint: Endpoint,
    work: Sequence[Work],
    params: GenerationParams,
    *,
    concurrency: int,
    arrival: Arrival,
    on_record: Callable[[RequestRecord], Awaitable[None] | None],
    seed: int,
    count: int,
) -> None:
    loop = asyncio.get_running_loop()
    # spawn, not fork: this process has threads (the store's writer, kopf's) that fork would
    # copy mid-flight.
    ctx = multiprocessing.get_context("spawn")
    events: asyncio.Queue = asyncio.Queue()
    workers = []
    for k in range(count):
        parent, child = ctx.Pipe()
        job = _Job(endpoint, tuple(work[k::count]), params,
                   concurrency // count + (k < concurrency % count), arrival, (seed, k), k, count)
        proc = ctx.Process(target=_worker, args=(child, job), daemon=True,
                           name=f"slam-generator-{endpoint.target}-{k}")
        workers.append((proc, parent, child))
    rate = f"{arrival.rate:g} requests/s ({arrival.process})" if arrival.rate else "max"
    log.info("target %s: %d requests from %d generator processes, concurrency %d, rate %s",
             endpoint.target, len(work), count, concurrency, rate)
    tasks: set[asyncio.Task] = set()
    try:
        for k, (proc, parent, child) in enumerate(workers):
            proc.start()
            child.close()  # the worker's end lives in the worker: its exit closes the pipe
            threading.Thread(target=_reader, daemon=True,
                             args=(parent, loop, lambda m, k=k: events.put_nowait((k, m)))).start()

        async def handle(k: int, i: int, record: RequestRecord) -> None:
            try:
                result = on_record(record)
                if result is not None:
                    await result
            except Exception as e:  # noqa: BLE001 - raised in the loop below, as one process would
                events.put_nowait((k, ("raise", e)))
                return
            with contextlib.suppress(OSError):  # a worker gone: its reader reports how
                workers[k][1].send(("ack", i))

        ready, running = 0, set(range(count))
        while running:
            k, message = await events.get()
            kind = message[0] if message else None
            if k not in running and kind != "raise":
                continue  # a finished worker's pipe closing
            if kind == "record":
                task = asyncio.create_task(handle(k, message[1], message[2]))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            elif kind == "ready":
                ready += 1
                if ready == count:
                    begin = time.time() + START_MARGIN
                    for _, parent, _ in workers:
                        parent.send(("start", begin))
            elif kind == "done":
                running.discard(k)
            elif kind == "raise":
                raise message[1]
            else:
                proc = workers[k][0]
                detail = message[1] if kind == "error" else (
                    f"it exited with code {await asyncio.to_thread(_exitcode, proc)}")
                raise RuntimeError(
                    f"generator process {k + 1} of {count} for target {endpoint.target} "
                    f"failed: {detail}")
        while tasks:
            await asyncio.gather(*list(tasks))
    finally:
        for t in tasks:
            t.cancel()
        for proc, parent, child in workers:
            child.close()
            if proc.is_alive():
                proc.terminate()
            await asyncio.to_thread(proc.join, 5)
            parent.close()


def _exitcode(proc: multiprocessing.process.BaseProcess) -> int | None:
    proc.join(5)
    return proc.exitcode
