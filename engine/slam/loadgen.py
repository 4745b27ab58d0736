"""Send a target its requests: an arrival process, a concurrency limit, records out.

Arrival processes are small async generators yielding the time each request was *scheduled*;
the dispatcher records how late it actually went out (schedule lag), which is how the capacity
benchmark knows the generator, not the server, kept up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np
from openai import AsyncOpenAI

from slam.generate import Endpoint, GenerationParams, RequestRecord, generate
from slam.promptsets import PromptItem


@dataclass(frozen=True)
class Arrival:
    process: str = "max"  # max | constant | poisson
    rate: float | None = None  # requests per second


async def arrivals(arrival: Arrival, rng: np.random.Generator) -> AsyncIterator[float | None]:
    """Yield forever: None for `max` (no schedule), else the perf_counter time a request is due."""
    if arrival.process == "max":
        while True:
            yield None
    assert arrival.rate
    due = time.perf_counter()
    while True:
        if arrival.process == "constant":
            due += 1.0 / arrival.rate
        else:  # poisson: exponential gaps
            due += float(rng.exponential(1.0 / arrival.rate))
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        yield due


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
) -> None:
    """Send every item of `work` to `endpoint`; hand each record to `on_record` as it finishes."""
    if not work:
        return
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
        schedule = arrivals(arrival, rng)
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
