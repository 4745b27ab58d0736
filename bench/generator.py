"""How honest and how fast is the load generator? Three measurements in one run, one stub server.

    .venv/bin/python bench/generator.py [--quick] [--peer]

1. Harness overhead: our request path (openai async client, streaming, per-token timing, records)
   against a minimal raw `httpx` streaming loop, same stub, same workload, rounds interleaved.
   Prints the end-to-end latency ratio (ours / raw) at concurrency 1 and 64. Target <= 1.05.
2. CPU per request: CPU seconds this process (and any generator processes it started) spent
   per request, ours against the raw loops, at concurrency 64: the cost that decides how many
   requests/s one core can schedule, measured apart from how busy the machine is.
3. Capacity: constant-rate arrivals at increasing rates, with one generator process and with
   one per core; for each, the p99 of our own schedule lag (how late a request went out).
   Prints the highest rate whose lag p99 <= 5 ms. Target >= 1,000 requests/s.
4. Peer (--peer): the same constant-rate workload through GuideLLM (installed in its own
   virtual environment by bench/peer_guidellm.sh), against the same stub: achieved rate and
   rate accuracy, ours as a ratio to theirs.

The stub (tests/fakes/openai_stub.py) streams tokens at a fixed rate from its own process.
Nothing here asserts: numbers are printed, ratios against a baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from slam.generate import Endpoint, GenerationParams, RequestRecord  # noqa: E402
from slam.loadgen import Arrival, Work, drive  # noqa: E402
from slam.promptsets import PromptItem  # noqa: E402
from tests.servers import Stub  # noqa: E402

PROMPT = PromptItem("p", ({"role": "user", "content": "Write a pep talk for Maya."},))


def work(n: int) -> list[Work]:
    return [Work(PROMPT, i) for i in range(n)]


MAX = Arrival()


async def ours(base_url: str, n: int, concurrency: int, params: GenerationParams,
               arrival: Arrival = MAX, processes: int = 1) -> list[RequestRecord]:
    records: list[RequestRecord] = []
    await drive(Endpoint("t", base_url, "stub"), work(n), params, concurrency=concurrency,
                arrival=arrival, on_record=records.append, processes=processes)
    return records


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the generator processes)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


async def raw_httpx(base_url: str, n: int, concurrency: int, max_tokens: int) -> list[float]:
    """The baseline: the least a client can do to time a streamed completion."""
    body = {"model": "stub", "messages": list(PROMPT.messages), "max_tokens": max_tokens,
            "stream": True}
    sem = asyncio.Semaphore(concurrency)
    e2e: list[float] = []
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits) as client:
        async def one() -> None:
            async with sem:
                t0 = time.perf_counter()
                async with client.stream("POST", "/chat/completions", json=body) as r:
                    async for line in r.aiter_lines():
                        if line.startswith("data: ") and line != "data: [DONE]":
                            json.loads(line[6:])
                e2e.append((time.perf_counter() - t0) * 1000)
        await asyncio.gather(*(one() for _ in range(n)))
    return e2e


async def raw_aiohttp(base_url: str, n: int, concurrency: int, max_tokens: int) -> list[float]:
    """A second baseline: the same minimal loop on aiohttp (the transport our client uses)."""
    import aiohttp
    body = {"model": "stub", "messages": list(PROMPT.messages), "max_tokens": max_tokens,
            "stream": True}
    sem = asyncio.Semaphore(concurrency)
    e2e: list[float] = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1000)) as session:
        async def one() -> None:
            async with sem:
                t0 = time.perf_counter()
                async with session.post(f"{base_url}/chat/completions", json=body) as r:
                    async for raw in r.content:
                        line = raw.decode().strip()
                        if line.startswith("data: ") and line != "data: [DONE]":
                            json.loads(line[6:])
                e2e.append((time.perf_counter() - t0) * 1000)
        await asyncio.gather(*(one() for _ in range(n)))
    return e2e


def overhead(stub: Stub, rounds: int, n_per_conc: dict[int, int]) -> None:
    params = GenerationParams(max_tokens=stub.tokens, temperature=0, timeout_seconds=60)
    print(f"\n1. Harness overhead: stub streams {stub.tokens} tokens, one every "
          f"{stub.interval * 1000:.0f} ms; {rounds} interleaved rounds")
    print(f"{'concurrency':>11} {'requests':>8} {'httpx mean':>10} {'aiohttp mean':>12} "
          f"{'ours mean':>9} {'ours p50':>8} {'vs httpx':>8} {'vs aiohttp':>10}   (ms)")
    for conc, n in n_per_conc.items():
        mine: list[float] = []
        httpx_ms: list[float] = []
        aiohttp_ms: list[float] = []
        asyncio.run(ours(stub.base_url, min(n, 2 * conc), conc, params))  # warm up
        for _ in range(rounds):
            recs = asyncio.run(ours(stub.base_url, n, conc, params))
            assert all(r.ok for r in recs), [r.error_message for r in recs if not r.ok][:3]
            mine += [r.e2e_ms for r in recs]
            httpx_ms += asyncio.run(raw_httpx(stub.base_url, n, conc, stub.tokens))
            aiohttp_ms += asyncio.run(raw_aiohttp(stub.base_url, n, conc, stub.tokens))
        m, h, a = (statistics.mean(x) for x in (mine, httpx_ms, aiohttp_ms))
        print(f"{conc:>11} {n * rounds:>8} {h:>10.1f} {a:>12.1f} {m:>9.1f} "
              f"{statistics.median(mine):>8.1f} {m / h:>8.3f} {m / a:>10.3f}")
    print("ratio = our mean end-to-end latency / the baseline's (target <= 1.05)")


def cpu_per_request(stub: Stub, rounds: int, n: int, concurrency: int = 64) -> None:
    params = GenerationParams(max_tokens=stub.tokens, temperature=0, timeout_seconds=60)
    print(f"\n2. CPU per request: {n} requests at concurrency {concurrency}, {stub.tokens} "
          f"streamed tokens each, {rounds} interleaved rounds (the stub runs in its own process)")
    runs = {
        "raw httpx": lambda: asyncio.run(raw_httpx(stub.base_url, n, concurrency, stub.tokens)),
        "raw aiohttp": lambda: asyncio.run(raw_aiohttp(stub.base_url, n, concurrency,
                                                       stub.tokens)),
        "ours": lambda: asyncio.run(ours(stub.base_url, n, concurrency, params)),
        "ours, 2 processes": lambda: asyncio.run(ours(stub.base_url, n, concurrency, params,
                                                      processes=2)),
    }
    spent: dict[str, list[float]] = {name: [] for name in runs}
    startup: list[float] = []
    for _ in range(rounds):
        for name, run in runs.items():
            c0 = cpu_seconds()
            run()
            spent[name].append((cpu_seconds() - c0) / n * 1e6)
        # The processes' start-up (interpreter, imports), paid once per target and run: two
        # processes sending one request each.
        c0 = cpu_seconds()
        asyncio.run(ours(stub.base_url, 2, 2, params, processes=2))
        startup.append(cpu_seconds() - c0)
    spent["ours, 2 processes"] = [
        us - s / n * 1e6 for us, s in zip(spent["ours, 2 processes"], startup, strict=True)]
    base = statistics.median(spent["raw aiohttp"])
    print(f"{'client':>18} {'CPU us/request':>14} {'vs raw aiohttp':>14}")
    for name, values in spent.items():
        us = statistics.median(values)
        print(f"{name:>18} {us:>14.0f} {us / base:>14.2f}")
    print(f"median over rounds; '2 processes' is net of their start-up, "
          f"{statistics.median(startup):.2f} CPU s once per run, and includes each record's "
          f"trip back to this process")


def capacity(stub: Stub, rates: list[int], seconds: float, processes: int) -> int:
    params = GenerationParams(max_tokens=1, temperature=0, timeout_seconds=60, max_retries=0)
    print(f"\n3. Capacity, {processes} generator process{'es' if processes > 1 else ''}: "
          f"constant arrivals for {seconds:g} s per rate; 1-token answers")
    print(f"{'rate/s':>7} {'sent':>6} {'achieved/s':>10} {'lag p50 ms':>10} {'lag p99 ms':>10} "
          f"{'errors':>6}")
    best = 0
    for rate in rates:
        n = int(rate * seconds)
        t0 = time.perf_counter()
        recs = asyncio.run(ours(stub.base_url, n, 4096, params, Arrival("constant", rate),
                                processes=processes))
        starts = sorted(r.started_at.timestamp() for r in recs)
        achieved = (n - 1) / (starts[-1] - starts[0]) if n > 1 else 0
        lags = np.array([r.schedule_lag_ms for r in recs])
        p50, p99 = np.percentile(lags, [50, 99])
        errors = sum(not r.ok for r in recs)
        print(f"{rate:>7} {n:>6} {achieved:>10.0f} {p50:>10.2f} {p99:>10.2f} {errors:>6}"
              f"   ({time.perf_counter() - t0:.1f} s)")
        if p99 <= 5.0 and errors == 0:
            best = rate
        else:
            break
    print(f"highest rate with schedule lag p99 <= 5 ms, {processes} process(es): {best} "
          f"requests/s (target >= 1,000)")
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds and rates (a smoke run)")
    ap.add_argument("--peer", action="store_true", help="also run GuideLLM on the same workload")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stub = Stub(Path(tmp) / "stub", tokens=16, interval=0.01).start()
        try:
            overhead(stub, rounds=1 if args.quick else 3,
                     n_per_conc={1: 20 if args.quick else 50, 64: 256 if args.quick else 640})
            cpu_per_request(stub, rounds=1 if args.quick else 3, n=640 if args.quick else 1920)
        finally:
            stub.stop()
        fast = Stub(Path(tmp) / "fast", tokens=1, interval=0.0).start()
        try:
            rates = [250, 500, 1000] if args.quick else [250, 500, 750, 1000, 1250, 1500, 2000]
            for processes in sorted({1, min(2, len(os.sched_getaffinity(0)))}):
                capacity(fast, rates, seconds=2.0 if args.quick else 4.0, processes=processes)
            if args.peer:
                from bench import peer
                peer.compare(fast.base_url, rate=500, seconds=4.0, ours=ours)
        finally:
            fast.stop()


if __name__ == "__main__":
    main()
