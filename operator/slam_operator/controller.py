"""One controller shape for both kinds, after client-go's controller pattern (informer, work
queue, workers; the shape controller-runtime gives KServe's and KubeAI's reconcilers).

A `Controller` runs one kind. It owns
  - its work queue (workqueue.py): kopf's handlers only add keys, each object waits once
    however many events name it, and no object is reconciled twice at once;
  - a fixed number of workers on a thread pool of its own: one kind's reconciles blocked (the
    Hub not answering) never hold up the other kind's, nor kopf's own handlers and indices;
  - the periodic resync (resync.py), for the kinds that need one;
  - the expectations: children a reconcile created that the watches have not reported yet;
  - the status it last wrote of each object: a body from the watch can predate it (the watch
    lags behind the writes), and two reconciles in a row would both start from the older
    status and post the same Events twice. Only this operator writes these statuses, so the
    one it wrote last is the current one, unless the body was just read from the API server or
    is another object of the same name.

It reads objects from kopf's watch-backed indices (or, `fresh`, from the API server: after a
child's deletion, and in the resync), calls the kind's reconcile function with a `View` of the
watched children, and acts on the `Outcome` it returns: the status written, children to expect,
retry with backoff, look again after a delay. The reconcile functions themselves
(modeldeployment/reconcile.py, evaluation/reconcile.py) observe, decide purely, plan, execute
through kube.py and write the status once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from slam_operator import metrics, resync
from slam_operator.kube import Kube
from slam_operator.workqueue import WorkQueue

log = logging.getLogger("slam_operator")

Key = tuple[str, str]  # (namespace, name)
ChildKey = tuple[str, str]  # (kind, name)
# A watch-backed index: key -> the values indexed under it (kopf.Index, or a dict in tests).
Index = Mapping[Any, Iterable[dict[str, Any]]]
# How long a created child is taken as existing before its watch event arrives.
EXPECT_SECONDS = 30.0


@dataclass
class Outcome:
    """What a reconcile tells its controller."""

    status: dict[str, Any] | None = None  # the object's status, when this reconcile wrote it
    # Children this reconcile created, by (kind, name): until the watches report them, the next
    # reconciles take them as existing (Kubernetes controllers' "expectations").
    created: dict[ChildKey, dict[str, Any]] = field(default_factory=dict)
    # The key the children are indexed under, when it is not the object's name (an
    # Evaluation's Job and its pods are indexed under the Job's name).
    created_under: str | None = None
    retry: bool = False  # something could not be asked (the Hub): again, with backoff
    requeue_after: float | None = None  # look again after this many seconds (a run in flight)
    actions: list[str] = field(default_factory=list)  # what it changed, for logs and tests


class View:
    """A reconcile's view of what the watches delivered: `children(namespace, key)` is every
    child indexed under `key` (a ModelDeployment's name; a Job's name for the Job and its pods)
    by (kind, name), plus those its controller expects; `get(kind, namespace, name)` is another
    watched object (an Evaluation's ModelDeployments), None when the watch has none."""

    def __init__(self, indices: Iterable[Index],
                 expected: dict[Key, tuple[float, dict[ChildKey, dict[str, Any]]]],
                 lookups: Mapping[str, Index] | None = None):
        self._indices = list(indices)
        self._expected = expected  # the controller's: (namespace, key) -> (deadline, created)
        self._lookups = dict(lookups or {})

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return next(iter(self._lookups[kind].get((namespace, name), ())), None)

    def children(self, namespace: str, key: str) -> dict[ChildKey, dict[str, Any]]:
        seen = {(c["kind"], c["metadata"]["name"]): c for index in self._indices
                for c in index.get((namespace, key), ())}
        # Children created for `key` that the watches have not reported yet: the Service's
        # event can come before the Deployment's, and a reconcile in between must not take the
        # Deployment for missing (status "Creating" again, and its Events twice). Expected until
        # the watches have reported all of them, or until the deadline: a child deleted before
        # its watch event is recreated then.
        deadline, created = self._expected.get((namespace, key), (0.0, {}))
        missing = {k: v for k, v in created.items() if k not in seen}
        if not missing or time.monotonic() > deadline:
            self._expected.pop((namespace, key), None)
            return seen
        return {**missing, **seen}


# (kube, body, view) -> Outcome: one kind's reconcile of one live object.
Reconcile = Callable[[Kube, dict[str, Any], View], Outcome]
# (kube, namespace, name) -> the object as the API server has it now, or None.
Read = Callable[[Kube, str, str], dict[str, Any] | None]


def backoff(retry: int) -> float:
    """Retries in a row: 5 s, 10 s, 20 s ... at most 5 minutes."""
    return float(min(300, 5 * 2 ** min(retry, 6)))


def live(obj: dict[str, Any] | None) -> bool:
    return obj is not None and not obj["metadata"].get("deletionTimestamp")


class Controller:
    def __init__(self, kind: str, reconcile: Reconcile, read: Read, kube: Callable[[], Kube],
                 workers: int, resync_seconds: float, resyncs: bool = True,
                 expect_seconds: float = EXPECT_SECONDS):
        """`kind` names it in logs and metrics; `read` gets an object fresh; `kube()` is the
        API client of the calling thread; `resyncs`: whether every object is reconciled once a
        period (`resync_seconds`) whatever the watches said (otherwise the period only prunes
        what is remembered of deleted objects)."""
        self.kind = kind
        self._reconcile, self._read, self._kube = reconcile, read, kube
        self.workers = workers
        self.resync_seconds = resync_seconds
        self.resyncs = resyncs
        self.expect_seconds = expect_seconds
        self.queue = WorkQueue(backoff)
        self.reconciled: dict[Key, float] = {}  # monotonic time of each object's last reconcile
        self.statuses: dict[Key, tuple[str | None, dict[str, Any]]] = {}  # (uid, last written)
        self.expected: dict[Key, tuple[float, dict[ChildKey, dict[str, Any]]]] = {}
        self.bodies: Index = {}
        self.view = View((), self.expected)
        self._executor: ThreadPoolExecutor | None = None
        self._tasks: list[asyncio.Task] = []

    # -- kopf's handlers hand off here --------------------------------------------------------

    def add(self, key: Key, fresh: bool = False) -> None:
        """Queue a reconcile of `key`; `fresh`: read it from the API server, not the watch."""
        self.queue.add(key, fresh)

    # -- running ------------------------------------------------------------------------------

    def start(self, bodies: Index, children: Iterable[Index] = (),
              lookups: Mapping[str, Index] | None = None) -> None:
        """Start the workers and the resync, on the running event loop. `bodies`: the kind's
        objects as the watch last delivered them, by (namespace, name); `children` and
        `lookups` (by kind): the indices a reconcile's View reads."""
        self.bodies = bodies
        self.view = View(children, self.expected, lookups)
        self._executor = ThreadPoolExecutor(self.workers,
                                            thread_name_prefix=f"reconcile-{self.kind}")
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]
        self._tasks.append(asyncio.create_task(self._resync_forever()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self.queue.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)

    async def _work(self) -> None:
        """One worker: reconcile the objects the queue hands out, one at a time."""
        loop = asyncio.get_running_loop()
        while True:
            key, fresh = await self.queue.get()
            retry, after = True, None  # a reconcile that raised is retried with backoff
            try:
                outcome = await loop.run_in_executor(self._executor, self.reconcile, key, fresh)
                retry = outcome is not None and outcome.retry
                after = outcome.requeue_after if outcome is not None else None
            except Exception:  # one object's failure must not stop the others
                log.exception("reconciling %s %s/%s failed", self.kind, *key)
            finally:
                delay = self.queue.done(key, retry, after)
            if retry:
                log.info("%s %s/%s: retrying in %.0f s", self.kind, *key, delay)

    def reconcile(self, key: Key, fresh: bool) -> Outcome | None:
        """Reconcile `key` (no other worker has it): as the watch last delivered it, with the
        status this controller last wrote, or, `fresh`, as the API server has it now. None: the
        object is gone or going."""
        namespace, name = key
        if fresh:
            body = self._read(self._kube(), namespace, name)
        else:
            body = next(iter(self.bodies.get(key, ())), None)
        if not live(body):
            return None
        written = self.statuses.get(key)
        if not fresh and written is not None and written[0] == body["metadata"].get("uid"):
            body = {**body, "status": written[1]}
        metrics.RECONCILES.labels(self.kind).inc()
        outcome = self._reconcile(self._kube(), body, self.view)
        self.reconciled[key] = time.monotonic()
        if outcome.created:
            self.expected[(namespace, outcome.created_under or name)] = (
                time.monotonic() + self.expect_seconds, outcome.created)
        # The status the object has now: what this reconcile wrote, or else what it started from.
        self.statuses[key] = (body["metadata"].get("uid"), outcome.status
                              if outcome.status is not None else body.get("status") or {})
        return outcome

    async def _resync_forever(self) -> None:
        """Every period: forget what is remembered of deleted objects and, for a kind that
        resyncs, queue each object no event reconciled within the period, to be read fresh (one
        GET: at most one API call per object per period). One loop for the whole kind rather
        than a kopf timer per object (a task per object)."""
        while True:
            await asyncio.sleep(self.resync_seconds)
            self.resync_pass(time.monotonic())

    def resync_pass(self, now: float) -> list[Key]:
        """One resync pass at `now`; the keys it queued. The objects come from the bodies index
        (an object stays in it while it exists). What is remembered is taken first: an entry
        is made only once its object is in the index, so none made in between is dropped as
        deleted."""
        remembered = set(self.statuses)
        keys = list(self.bodies)
        for gone in remembered - set(keys):
            self.statuses.pop(gone, None)
            self.expected.pop(gone, None)
        for key, (deadline, _) in list(self.expected.items()):
            if deadline < now:  # children of an object deleted before they were seen
                self.expected.pop(key, None)
        due = resync.due(keys, self.reconciled, now, self.resync_seconds)
        if not self.resyncs:
            return []
        for key in due:
            self.add(key, fresh=True)
        return due
