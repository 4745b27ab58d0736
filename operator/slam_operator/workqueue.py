"""The objects waiting for a reconcile, one queue per kind (controller.py), in the manner of
client-go's workqueue (which controller-runtime, and so KServe and KubeAI, reconcile from).

kopf's handlers only add keys: however many events name an object while it waits (its own
changes, each of its children's), it is in the queue once and is reconciled once, by one of a
fixed number of workers. An object is never reconciled twice at once: one added while a worker
has it waits until that worker is done. A reconcile that asks to be retried (the Hub did not
answer, an error) comes back after a growing delay, sooner if an event adds it first; one that
asks to be looked at again later (an Evaluation in flight) comes back after that delay, as
client-go's AddAfter and controller-runtime's RequeueAfter.

Why (issue 17): when each event ran its reconcile in kopf's own per-object worker, a burst of
thousands of objects kept thousands of kopf workers waiting for a handler thread, each with the
decoded events of its object: most of the operator's memory at 2,000 ModelDeployments.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable


class WorkQueue:
    def __init__(self, backoff: Callable[[int], float]):
        """`backoff(n)`: seconds before the (n+1)-th retry in a row of a key."""
        self._backoff = backoff
        self._ready: asyncio.Queue[Hashable] = asyncio.Queue()
        self._queued: dict[Hashable, bool] = {}  # waiting in _ready -> whether to read it fresh
        self._active: set[Hashable] = set()  # with a worker now
        self._again: dict[Hashable, bool] = {}  # added while with a worker -> fresh
        self._failures: dict[Hashable, int] = {}  # retries in a row
        self._timers: dict[Hashable, asyncio.TimerHandle] = {}

    def __len__(self) -> int:
        """Keys waiting for a worker."""
        return len(self._queued)

    def add(self, key: Hashable, fresh: bool = False) -> None:
        """Queue `key` unless it is queued already. `fresh`: the reconcile must read the object
        from the API server, not from the watch (kept if any of the adds asked for it)."""
        if key in self._active:
            self._again[key] = self._again.get(key, False) or fresh
        elif key in self._queued:
            self._queued[key] = self._queued[key] or fresh
        else:
            self._queued[key] = fresh
            self._ready.put_nowait(key)

    async def get(self) -> tuple[Hashable, bool]:
        """The next key and whether to read it fresh; the caller must call done(key)."""
        key = await self._ready.get()
        self._active.add(key)
        return key, self._queued.pop(key)

    def done(self, key: Hashable, retry: bool = False, after: float | None = None
             ) -> float | None:
        """A worker is done with `key`. `retry`: queue it again after the backoff delay
        (returned). Else `after`: queue it again after that many seconds (a success: the backoff
        starts over). A key added while the worker had it is queued again now."""
        self._active.discard(key)
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        delay = None
        if retry:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
            delay = self._backoff(failures)
            self._timers[key] = asyncio.get_running_loop().call_later(delay, self._retry, key)
        else:
            self._failures.pop(key, None)
            if after is not None:
                self._timers[key] = asyncio.get_running_loop().call_later(after, self._retry,
                                                                          key)
        again = self._again.pop(key, None)
        if again is not None:
            self.add(key, again)
        return delay

    def _retry(self, key: Hashable) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def close(self) -> None:
        """Cancel the pending retries (the operator is stopping)."""
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
