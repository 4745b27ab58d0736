"""The ModelDeployments' work queue: each object waits once however many events name it, is never
reconciled twice at once, and comes back after a growing delay when its reconcile asks."""

from __future__ import annotations

import asyncio
import random

from slam_operator.workqueue import WorkQueue


def run(coro):
    return asyncio.run(coro)


def test_an_object_named_by_many_events_is_reconciled_once_and_fresh_if_any_asked() -> None:
    async def main():
        q = WorkQueue(lambda n: 1.0)
        for _ in range(50):
            q.add(("ns", "a"))
        q.add(("ns", "a"), fresh=True)
        q.add(("ns", "b"))
        q.add(("ns", "a"))
        assert len(q) == 2
        got = [await q.get(), await q.get()]
        assert got == [(("ns", "a"), True), (("ns", "b"), False)]
        assert len(q) == 0
        q.done(("ns", "a"))
        q.done(("ns", "b"))
        assert len(q) == 0
    run(main())


def test_an_object_added_while_a_worker_has_it_waits_for_that_worker() -> None:
    async def main():
        q = WorkQueue(lambda n: 1.0)
        q.add("a")
        key, _ = await q.get()
        q.add("a", fresh=True)
        q.add("a")
        assert len(q) == 0  # not handed to a second worker while the first has it
        q.done(key)
        assert len(q) == 1
        assert await q.get() == ("a", True)
    run(main())


def test_a_retry_comes_back_after_a_growing_delay_and_success_resets_it() -> None:
    async def main():
        q = WorkQueue(lambda n: 0.05 * 2 ** n)
        q.add("a")
        delays = []
        for _ in range(3):
            key, _ = await q.get()
            delays.append(q.done(key, retry=True))
            assert len(q) == 0  # not before its delay
        assert delays == [0.05, 0.1, 0.2]
        key, _ = await asyncio.wait_for(q.get(), 1)
        assert q.done(key) is None
        q.add("a")
        key, _ = await q.get()
        assert q.done(key, retry=True) == 0.05  # the count started again
        q.close()  # the pending retry is cancelled
        await asyncio.sleep(0.1)
        assert len(q) == 0
    run(main())


def test_an_event_brings_a_retrying_object_back_before_its_delay() -> None:
    async def main():
        q = WorkQueue(lambda n: 60.0)
        q.add("a")
        key, _ = await q.get()
        q.done(key, retry=True)
        q.add("a")
        assert await asyncio.wait_for(q.get(), 1) == ("a", False)
        q.done("a")
        q.close()
    run(main())


def test_workers_never_reconcile_one_object_twice_at_once_and_miss_no_event() -> None:
    async def main():
        q = WorkQueue(lambda n: 0.01)
        running: set[str] = set()
        overlaps = []
        seen_after: dict[str, int] = {}
        added_at: dict[str, int] = {}
        clock = 0

        async def worker():
            nonlocal clock
            while True:
                key, _ = await q.get()
                if key in running:
                    overlaps.append(key)
                running.add(key)
                started = clock
                await asyncio.sleep(random.random() / 500)
                running.discard(key)
                seen_after[key] = max(seen_after.get(key, -1), started)
                q.done(key)

        workers = [asyncio.create_task(worker()) for _ in range(8)]
        rng = random.Random(7)
        for _ in range(2000):
            clock += 1
            key = f"k{rng.randrange(20)}"
            added_at[key] = clock
            q.add(key)
            if rng.random() < 0.3:
                await asyncio.sleep(0)
        while len(q) or running:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        for w in workers:
            w.cancel()
        assert not overlaps
        # Every object's last add was followed by a reconcile that started after it.
        assert all(seen_after[k] >= t for k, t in added_at.items())
    run(main())
