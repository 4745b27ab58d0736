"""A run's answers on their way to the results store: nothing paid for is lost to a store outage.

Every answer stays in memory until a save that includes it has committed. A failed save keeps
its batch and is tried again with exponential backoff and jitter (tenacity) until the store
answers; the background flusher never ends on a store error. Once `limit` answers wait,
`put()` waits too, and since the load generator hands an answer over before it frees that
request's concurrency slot, generation pauses (back-pressure) until the store takes them.

What a pod that dies during an outage can lose -- and what the next pod asks again -- is
therefore bounded: at most `limit` answers waiting here, plus the requests in flight (each
target's concurrency). The README states it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import exc as sa_exc
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    stop_never,
    wait_exponential_jitter,
)

from slam.generate import RequestRecord
from slam.store import Store

# Answers that may wait for the store before generation pauses. Small enough that a pod killed
# during an outage re-asks little (a few cents of API calls at GPT-4 prices), large enough that
# a store answering slowly for a moment never stalls a run at the concurrencies used here.
MAX_UNSTORED = 32
FLUSH_SECONDS = 0.25  # how often waiting answers are written while the store answers
# Backoff between failed saves: 0.5 s doubling to at most 15 s, each with up to 1 s of jitter
# (several scoring pods that lost the same database do not all come back at once).
WAIT = wait_exponential_jitter(initial=0.5, max=15, jitter=1)
# On SIGTERM (kubectl delete, a node drained) the last save is tried this long: inside the
# pod's 30 s termination grace period, leaving time to exit.
INTERRUPT_GRACE = 20.0


def transient(e: BaseException) -> bool:
    """A store error worth waiting out: the connection or the server, not the statement."""
    if isinstance(e, sa_exc.DBAPIError):
        return isinstance(e, sa_exc.OperationalError | sa_exc.InterfaceError) \
            or e.connection_invalidated
    return isinstance(e, sa_exc.DisconnectionError | sa_exc.TimeoutError | OSError)


@dataclass
class Outage:
    """The store is not answering: since when, and the last error (password masked)."""

    since: float
    error: str
    attempts: int = 0


class StoreListener:
    """What the writer tells its listener (the CLI's bars, the Job's log lines)."""

    def store_unavailable(self, seconds: float, waiting: int, error: str) -> None: ...

    def store_available(self, seconds: float, waiting: int) -> None: ...

    def store_unsaved(self, count: int, error: str) -> None:
        """The run stops with `count` answers the store never took (asked again next run)."""


class RecordWriter:
    """Buffers a run's records and saves them in batches, through store outages."""

    def __init__(self, store: Store, run_pk: int, *, replace_failed: bool = False,
                 limit: int = MAX_UNSTORED, interval: float = FLUSH_SECONDS,
                 listener: StoreListener | None = None, report_every: float = 30.0,
                 wait: Callable | None = None):
        self.store, self.run_pk, self.replace_failed = store, run_pk, replace_failed
        self.limit, self.interval, self.report_every = limit, interval, report_every
        self.wait = wait or WAIT
        self.listener = listener or StoreListener()
        self.pending: list[RequestRecord] = []
        self.received: list[tuple[str, str, int]] = []  # every record's key, in arrival order
        self.outage: Outage | None = None
        self.failed: BaseException | None = None  # a non-transient store error ends the run
        self._room = asyncio.Condition()
        self._reported = 0.0

    # --- the generation side ---------------------------------------------------------------

    async def put(self, record: RequestRecord) -> None:
        """Take a record; waits while `limit` records wait for the store (back-pressure)."""
        self.received.append(record.key)
        async with self._room:
            await self._room.wait_for(lambda: len(self.pending) < self.limit
                                      or self.failed is not None)
            self.pending.append(record)

    # --- the store side --------------------------------------------------------------------

    def _retrying(self, stop, sync: bool):
        cls = Retrying if sync else AsyncRetrying
        return cls(retry=retry_if_exception(transient), wait=self.wait, stop=stop,
                   before_sleep=self._failed_attempt, reraise=True)

    def _failed_attempt(self, state: RetryCallState) -> None:
        e = state.outcome.exception() if state.outcome else None
        error = self.store.describe_error(e) if e is not None else "unknown error"
        now = time.monotonic()
        if self.outage is None:
            self.outage = Outage(now, error)
            self._reported = 0.0
        self.outage.error, self.outage.attempts = error, self.outage.attempts + 1
        if now - self._reported >= self.report_every:
            self._reported = now
            self.listener.store_unavailable(now - self.outage.since, len(self.pending), error)

    def _saved(self, count: int) -> None:
        del self.pending[:count]
        if self.outage is not None:
            self.listener.store_available(time.monotonic() - self.outage.since,
                                          len(self.pending))
            self.outage = None

    def _save(self, batch: list[RequestRecord]) -> None:
        self.store.save(self.run_pk, batch, replace_failed=self.replace_failed)

    async def flush(self) -> None:
        """Save what waits, retrying until the store answers."""
        if not self.pending:
            return
        batch = self.pending[:]
        async for attempt in self._retrying(stop_never, sync=False):
            with attempt:
                await asyncio.to_thread(self._save, batch)
        self._saved(len(batch))
        async with self._room:
            self._room.notify_all()

    async def run(self) -> None:
        """The background flusher: every `interval`, save what waits. Ends only when cancelled
        or on a store error that waiting will not cure (then `failed` says which)."""
        try:
            while True:
                await asyncio.sleep(self.interval)
                await self.flush()
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # noqa: BLE001 - recorded, then the run stops on it
            self.failed = e
            async with self._room:
                self._room.notify_all()
            raise

    def close(self, grace: float | None = None) -> None:
        """The last save, in the caller's thread: retried until the store answers, or for
        `grace` seconds at most (an interrupted run). What is still unsaved stays in
        `pending` (see `unstored`)."""
        if not self.pending:
            return
        batch = self.pending[:]
        stop = stop_never if grace is None else stop_after_delay(grace)
        try:
            for attempt in self._retrying(stop, sync=True):
                with attempt:
                    self._save(batch)
        except Exception as e:  # noqa: BLE001 - what was not saved is counted by check()
            self.listener.store_unsaved(len(batch), self.store.describe_error(e))
            return
        self._saved(len(batch))

    # --- the end of a run ------------------------------------------------------------------

    def check(self) -> Invariant:
        """Every record received is in the store, once; no key was received twice (a request
        sent twice). What `close` could not save is missing; when everything was saved, the
        store's keys for the run are read back to confirm it."""
        received = set(self.received)
        missing = {r.key for r in self.pending}
        if not missing:
            try:
                missing = received - self.store.done_keys(self.run_pk)
            except Exception as e:  # noqa: BLE001 - every save committed; the read-back failed
                if not transient(e):
                    raise
        return Invariant(received=len(self.received), distinct=len(received),
                         missing=sorted(missing))


@dataclass(frozen=True)
class Invariant:
    """The end-of-run check: stored = received, nothing received twice."""

    received: int
    distinct: int
    missing: list[tuple[str, str, int]]

    @property
    def ok(self) -> bool:
        return not self.missing and self.received == self.distinct

    def message(self) -> str:
        parts = []
        if self.missing:
            first = ", ".join(f"{t}/{p}#{s}" for t, p, s in self.missing[:3])
            parts.append(f"{len(self.missing)} of {self.distinct} answers received were not "
                         f"stored (e.g. {first})")
        if self.received != self.distinct:
            parts.append(f"{self.received - self.distinct} answers were received twice")
        return "; ".join(parts)
