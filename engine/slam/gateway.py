"""The shadow gateway: an OpenAI-compatible reverse proxy in front of the incumbent API model that
records a sample of the feature's real traffic as a run of an Evaluation.

The request path: every request goes to the upstream unchanged (method, path, query, headers
including the caller's own API key, body) and its answer comes back as the upstream sent it —
status, headers and body bytes, a stream relayed chunk by chunk as each arrives, an upstream that
cuts a stream cut on the caller the same way. Forwarding is aiohttp's (already the load
generator's HTTP stack): an asyncio server and client that relay a body without buffering it and
without decompressing it (`auto_decompress=False`), with one pooled connection set to the
upstream.

The mirror path, after the answer went back: a sampled request (rate, daily cap, routes, models,
`user` include/exclude patterns) and its answer are put on a bounded queue — never waited on; a
full queue is a counted drop — and one worker process redacts them (slam.redact) and writes them
to the results store: the prompt into the run's prompt set, the answer as the incumbent target's
response with its timings. A store that is down or slow costs drops, counted by reason, and
nothing else. The caller's key is forwarded and never kept: only messages and answers are
written, and nothing here logs a header.

With `--workers N`, N processes forward on the same port (SO_REUSEPORT: the kernel spreads the
connections), feeding one recorder, keeping one daily cap (shared memory) and one set of metrics
(prometheus_client's multiprocess mode); the first process only supervises them (`supervise`).

Metrics (Prometheus, on their own port with /healthz): requests forwarded by status, sampled,
recorded, dropped by reason, the queue's depth, and the latency the gateway adds (its own time
before the upstream request is sent plus before the first byte of the answer is relayed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from prometheus_client import CONTENT_TYPE_LATEST as METRICS_TYPE
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from slam.generate import RequestRecord
from slam.logimport import _Skip, answers_of, messages_of, prompt_key
from slam.redact import Redactor

log = logging.getLogger("slam.gateway")

# Hop-by-hop headers (RFC 9110 7.6.1) are the connection's, not the message's: never relayed.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization",
                        "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"})
CHAT_ROUTE = "/v1/chat/completions"
DROP_REASONS = ("queue_full", "store_unavailable", "too_large", "incumbent_error",
                "not_recordable", "duplicate")


# --- what to sample ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sampling:
    """Which requests are recorded: a share of those on `routes` to `models` from `user`s that
    match `users` and not `exclude_users`, at most `daily_cap` a (UTC) day."""

    rate: float = 0.1
    daily_cap: int | None = None
    routes: tuple[str, ...] = (CHAT_ROUTE,)
    models: tuple[str, ...] = ()
    users: re.Pattern[str] | None = None
    exclude_users: re.Pattern[str] | None = None

    def describe(self) -> dict:
        """The settings as stored with the run (no secrets: there are none here)."""
        return {"rate": self.rate, "dailyCap": self.daily_cap, "routes": list(self.routes),
                "models": list(self.models),
                "users": self.users.pattern if self.users else None,
                "excludeUsers": self.exclude_users.pattern if self.exclude_users else None}


class DailyTally:
    """How many requests were recorded today, in one process."""

    def __init__(self) -> None:
        self._day = 0
        self._taken = 0

    def take(self, day: date, cap: int) -> bool:
        """Count one more for `day` if fewer than `cap` were taken that day."""
        if day.toordinal() != self._day:
            self._day, self._taken = day.toordinal(), 0
        if self._taken >= cap:
            return False
        self._taken += 1
        return True


class SharedTally:
    """The same count shared by the gateway's worker processes, so a pod's daily cap is one cap
    whatever its number of workers (shared memory and a lock; taken only by sampled requests of
    a capped gateway)."""

    def __init__(self, ctx) -> None:
        self._day = ctx.Value("q", 0, lock=False)
        self._taken = ctx.Value("q", 0)  # its lock guards both

    def take(self, day: date, cap: int) -> bool:
        with self._taken.get_lock():
            if day.toordinal() != self._day.value:
                self._day.value, self._taken.value = day.toordinal(), 0
            if self._taken.value >= cap:
                return False
            self._taken.value += 1
            return True


class Sampler:
    """Decides per request; `choose` returns True for a request to record. The daily count is
    `tally`'s: this process's alone (the default) or shared by the gateway's workers."""

    def __init__(self, sampling: Sampling, *, draw: Callable[[], float] = random.random,
                 today: Callable[[], date] = lambda: datetime.now(UTC).date(),
                 tally: DailyTally | SharedTally | None = None):
        self.sampling = sampling
        self._draw = draw
        self._today = today
        self._tally = tally or DailyTally()

    def choose(self, method: str, path: str, body: dict | None) -> bool:
        s = self.sampling
        if method != "POST" or path not in s.routes or not isinstance(body, dict):
            return False
        if s.models and body.get("model") not in s.models:
            return False
        user = body.get("user")
        user = user if isinstance(user, str) else ""
        if s.users is not None and not s.users.search(user):
            return False
        if s.exclude_users is not None and s.exclude_users.search(user):
            return False
        if self._draw() >= s.rate:
            return False
        return s.daily_cap is None or self._tally.take(self._today(), s.daily_cap)


# --- one recorded exchange ---------------------------------------------------------------------


@dataclass
class Exchange:
    """A sampled request and the incumbent's answer as the gateway relayed it."""

    request: dict
    status: int
    body: bytes
    streamed: bool
    encoding: str | None
    started_at: datetime
    ttft_ms: float | None
    e2e_ms: float


def _decoded(body: bytes, encoding: str | None) -> bytes:
    if not encoding or encoding == "identity":
        return body
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompress(body, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompress(body)
    raise ValueError(f"content-encoding {encoding}")


def parse_answer(body: bytes, streamed: bool) -> dict:
    """The answer's text (first choice), finish reason and token counts, from a chat.completion
    or from the server-sent events of a stream."""
    if streamed:
        chunks = []
        for line in body.splitlines():
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            chunks.append(json.loads(data))
        texts, failed = answers_of(chunks)
        finish = next((c["finish_reason"] for chunk in chunks for c in chunk.get("choices") or ()
                       if c.get("finish_reason")), None)
        usage = next((chunk["usage"] for chunk in chunks if chunk.get("usage")), None)
    else:
        response = json.loads(body)
        texts, failed = answers_of(response)
        choices = response.get("choices") or [{}]
        finish = choices[0].get("finish_reason")
        usage = response.get("usage")
    if failed or not texts:
        raise ValueError("no answer text")
    return {"text": texts[0], "finish_reason": finish,
            "prompt_tokens": (usage or {}).get("prompt_tokens"),
            "completion_tokens": (usage or {}).get("completion_tokens"),
            "tokens_source": "usage" if usage else None}


# --- metrics -----------------------------------------------------------------------------------


class Metrics:
    """The gateway's metrics. With several worker processes (`in_files`), every process writes
    its values to files in PROMETHEUS_MULTIPROC_DIR and /metrics adds them up (prometheus_client's
    multiprocess mode: counters and histograms summed, the queue depth the supervisor's)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, in_files: bool = False):
        self.registry = registry or CollectorRegistry()
        self.in_files = in_files
        r = self.registry
        self.forwarded = Counter("slam_gateway_requests_forwarded",
                                 "Requests forwarded to the incumbent, by the status it answered "
                                 "(502: it could not be reached).", ["code"], registry=r)
        self.sampled = Counter("slam_gateway_requests_sampled",
                               "Requests chosen for recording.", registry=r)
        self.recorded = Counter("slam_gateway_requests_recorded",
                                "Sampled requests written to the results store.", registry=r)
        self.dropped = Counter("slam_gateway_requests_dropped",
                               "Sampled requests not recorded, by reason.", ["reason"],
                               registry=r)
        for reason in DROP_REASONS:
            self.dropped.labels(reason)
        self.cut = Counter("slam_gateway_streams_cut",
                           "Answers that ended early: the upstream cut its stream or the caller "
                           "went away.", registry=r)
        self.queue = Gauge("slam_gateway_mirror_queue_depth",
                           "Sampled requests waiting to be written.", registry=r,
                           multiprocess_mode="livemax")  # only the supervisor sets it
        self.added = Histogram("slam_gateway_added_latency_seconds",
                               "Time the gateway adds before the first byte of an answer.",
                               buckets=(0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001,
                                        0.0015, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1),
                               registry=r)

    def exposition(self) -> bytes:
        if not self.in_files:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)


def metrics_in_files(directory: str) -> None:
    """Make this process (and the processes it spawns, through the environment) write metric
    values to files in `directory`: prometheus_client's multiprocess mode. Before any metric is
    made."""
    import os

    from prometheus_client import values

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    values.ValueClass = values.get_value_class()


# --- the mirror path ---------------------------------------------------------------------------


@dataclass
class Recording:
    """Where sampled traffic goes: a run of an Evaluation, the incumbent as its reference."""

    store_url: str
    evaluation: str
    run_id: str
    namespace: str = ""
    incumbent: str = "incumbent"
    upstream: str = ""
    sampling: dict = field(default_factory=dict)
    retry_seconds: float = 5.0


class Mirror:
    """The request path's end of the mirror queue: `offer` never blocks, a full queue is a counted
    drop. Each of the gateway's worker processes has one on the same queue: one recorder for all."""

    def __init__(self, queue, metrics: Metrics):
        self.queue = queue
        self.metrics = metrics

    def depth(self) -> int:
        try:
            return self.queue.qsize()
        except NotImplementedError:  # macOS: no sem_getvalue
            return 0

    def offer(self, exchange: Exchange) -> None:
        import queue

        try:
            self.queue.put_nowait(exchange)
        except queue.Full:
            self.metrics.dropped.labels("queue_full").inc()
        if not self.metrics.in_files:  # with workers, the supervisor sets it
            self.metrics.queue.set(self.depth())


class Recorder:
    """A bounded queue drained by a worker process that redacts and writes to the store; its
    `mirror` is what the request path offers exchanges to. The worker is a process, not a thread:
    redaction (phone numbers above all) and the store's driver are CPU work that, in a thread,
    would hold the GIL the request path's event loop needs (measured: TTFT p50 ratio 1.05 and
    +60 ms p99 at 500 requests/s with every request recorded, bench/gateway.py). Its outcomes
    come back on a second queue to the metrics."""

    def __init__(self, recording: Recording, redactor: Redactor, metrics: Metrics, *,
                 queue_size: int = 1000):
        import multiprocessing
        import os

        ctx = multiprocessing.get_context("spawn")  # nothing of this process's threads or loop
        self.metrics = metrics
        self._queue = ctx.Queue(maxsize=queue_size)
        self.mirror = Mirror(self._queue, metrics)
        self._outcomes = ctx.Queue()
        self._process = ctx.Process(
            target=_record, args=(recording, redactor, self._queue, self._outcomes, os.getpid()),
            name="slam-gateway-recorder", daemon=True)
        self._process.start()
        self._counter = threading.Thread(target=self._count, name="slam-gateway-outcomes",
                                         daemon=True)
        self._counter.start()

    def _count(self) -> None:
        while True:
            try:
                reason = self._outcomes.get()
            except (EOFError, OSError):
                return
            if reason == _DONE:
                return
            if reason is None:
                self.metrics.recorded.inc()
            else:
                self.metrics.dropped.labels(reason).inc()
            self.metrics.queue.set(self.mirror.depth())

    def close(self, timeout: float) -> int:
        """Write what is queued, for at most `timeout` seconds; returns how many were left."""
        import queue

        deadline = time.monotonic() + timeout
        with contextlib.suppress(queue.Full, ValueError):
            self._queue.put(None, timeout=max(0.001, deadline - time.monotonic()))
        self._process.join(max(0.0, deadline - time.monotonic()))
        left = self.mirror.depth()
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)
            left = max(left, 1)
        self._counter.join(max(0.0, min(2.0, deadline - time.monotonic())))
        self._queue.cancel_join_thread()  # what the worker never took is dropped, not waited on
        return left


_DONE = "__done__"


def _record(recording: Recording, redactor: Redactor, work, outcomes, parent: int) -> None:
    """The worker process: take exchanges until the sentinel (or until the gateway is gone),
    write each, send its outcome back."""
    import os
    import queue
    import signal

    # The gateway decides when this stops (it drains the queue on SIGTERM first); a signal sent
    # to the whole process group must not cut that short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    writer = _Writer(recording, redactor)
    try:
        while True:
            try:
                exchange = work.get(timeout=1.0)
            except queue.Empty:
                if os.getppid() != parent:  # the gateway died without saying so
                    return
                continue
            if exchange is None:
                return
            outcomes.put(writer.handle(exchange))
    finally:
        writer.close()
        outcomes.put(_DONE)


class _Writer:
    """Redacts and stores one exchange at a time (in the worker process); a store that fails
    is left alone for `recording.retry_seconds`, each exchange meanwhile a counted drop."""

    def __init__(self, recording: Recording, redactor: Redactor):
        self.recording = recording
        self.redactor = redactor
        self._store = None
        self._run_pk: int | None = None
        self._down_until = 0.0

    def handle(self, exchange: Exchange) -> str | None:
        """The drop reason, or None when it was written."""
        try:
            return self._write(exchange)
        except Exception as e:  # noqa: BLE001 - a store error is a counted drop, never a crash
            self._down_until = time.monotonic() + self.recording.retry_seconds
            self._forget_store()
            log.warning("store unavailable, dropping sampled requests for %.0f s: %s",
                        self.recording.retry_seconds, _safe_error(e, self.recording.store_url))
            return "store_unavailable"

    def close(self) -> None:
        self._forget_store()

    def _forget_store(self) -> None:
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.close()
        self._store, self._run_pk = None, None

    def _run(self, model: str) -> tuple[object, int]:
        if self._store is None:
            from slam.store import Store

            self._store = Store.open(self.recording.store_url)
        if self._run_pk is None:
            r = self.recording
            self._run_pk = self._store.recording_run(
                evaluation=r.evaluation, run_id=r.run_id, reference=r.incumbent,
                namespace=r.namespace,
                spec={"upstream": r.upstream, "model": model, "sampling": r.sampling},
                target={"name": r.incumbent, "kind": "external", "model": model,
                        "base_url": r.upstream, "is_reference": True, "concurrency": 0,
                        "details": {"recordedBy": "slam gateway"}})
        return self._store, self._run_pk

    def _write(self, ex: Exchange) -> str | None:
        """Redact and store one exchange; the drop reason, or None when it was written."""
        if time.monotonic() < self._down_until:
            return "store_unavailable"
        if not 200 <= ex.status < 300:
            return "incumbent_error"
        try:
            messages = messages_of(ex.request)
            answer = parse_answer(_decoded(ex.body, ex.encoding), ex.streamed)
        except (_Skip, ValueError, KeyError, TypeError, AttributeError, zlib.error):
            return "not_recordable"
        for message in messages:
            message["content"], _ = self.redactor.redact(message["content"])
        answer["text"], _ = self.redactor.redact(answer["text"])
        prompt_id = f"gw-{prompt_key(messages)[:12]}"
        store, run_pk = self._run(str(ex.request.get("model", "")))
        record = RequestRecord(
            target=self.recording.incumbent, prompt_id=prompt_id, sample=0,
            started_at=ex.started_at, attempts=1, ttft_ms=ex.ttft_ms, e2e_ms=ex.e2e_ms,
            status_code=ex.status, **answer)
        if not store.add_prompt(run_pk, prompt_id, messages, record=record):
            return "duplicate"
        return None


def _safe_error(e: BaseException, store_url: str) -> str:
    from sqlalchemy.engine import make_url

    from slam.store import describe_error

    try:
        password = make_url(store_url).password
    except Exception:  # noqa: BLE001 - an unparsable URL has no password to hide
        password = None
    return describe_error(e, password)


# --- the request path --------------------------------------------------------------------------


@dataclass
class Gateway:
    """The proxy: `app()` serves the feature's requests."""

    upstream: str
    sampler: Sampler
    mirror: Mirror | None
    metrics: Metrics
    max_record_bytes: int = 4 << 20
    connect_timeout: float = 10.0
    _session: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("*", "/{tail:.*}", self.forward)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, _: web.Application) -> None:
        self._session = aiohttp.ClientSession(
            auto_decompress=False, timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self.connect_timeout),
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300))

    async def _stop(self, _: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    def _target(self, request: web.Request) -> str:
        return self.upstream.rstrip("/") + request.raw_path  # path and query, as sent

    async def forward(self, request: web.Request) -> web.StreamResponse:
        received = time.perf_counter()
        started_at = datetime.now(UTC)
        body = await request.read()
        headers = CIMultiDict((k, v) for k, v in request.headers.items()
                              if k.lower() not in HOP_BY_HOP and k.lower() != "host")
        sampled = False
        parsed: dict | None = None
        if request.method == "POST" and request.path in self.sampler.sampling.routes:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
            sampled = self.mirror is not None and self.sampler.choose(
                request.method, request.path, parsed)
        assert self._session is not None
        sent = time.perf_counter()
        try:
            upstream = await self._session.request(
                request.method, self._target(request), headers=headers, data=body,
                allow_redirects=False, skip_auto_headers=("User-Agent", "Accept-Encoding",
                                                          "Accept", "Content-Type"))
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            self.metrics.forwarded.labels("502").inc()
            return web.json_response(
                {"error": {"message": f"the gateway could not reach the upstream API "
                                      f"({type(e).__name__})", "type": "gateway_error",
                           "code": "upstream_unreachable"}}, status=502)
        answered = time.perf_counter()
        async with upstream:
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.raw_headers:
                name = key.decode("latin-1")
                if name.lower() not in HOP_BY_HOP:
                    response.headers.add(name, value.decode("latin-1"))
            await response.prepare(request)
            self.metrics.added.observe((sent - received) + (time.perf_counter() - answered))
            self.metrics.forwarded.labels(str(upstream.status)).inc()
            captured: list[bytes] | None = [] if sampled else None
            size = 0
            first: float | None = None
            try:
                async for data in upstream.content.iter_any():
                    if first is None:
                        first = time.perf_counter()
                    await response.write(data)
                    size += len(data)
                    if captured is not None:
                        if size > self.max_record_bytes:
                            captured = None
                            self.metrics.dropped.labels("too_large").inc()
                        else:
                            captured.append(data)
            except aiohttp.ClientPayloadError:
                # The incumbent cut its answer: cut the caller's the same way (what was relayed
                # is flushed, the body is never ended), and record nothing.
                log.warning("the upstream cut its answer to %s %s after %d bytes; the caller's "
                            "connection is closed the same way", request.method, request.path,
                            size)
                self.metrics.cut.inc()
                if request.transport is not None:
                    request.transport.close()
                return response
            except ConnectionError:
                # The caller went away: stop reading the answer (the upstream connection is
                # released), record nothing.
                self.metrics.cut.inc()
                return response
            await response.write_eof()
        if sampled:
            self.metrics.sampled.inc()
        if captured is not None and self.mirror is not None:
            content_type = upstream.headers.get("Content-Type", "")
            self.mirror.offer(Exchange(
                request=parsed or {}, status=upstream.status, body=b"".join(captured),
                streamed=content_type.startswith("text/event-stream"),
                encoding=upstream.headers.get("Content-Encoding"), started_at=started_at,
                ttft_ms=(first - received) * 1000 if first is not None else None,
                e2e_ms=(time.perf_counter() - received) * 1000))
        return response


# --- running it --------------------------------------------------------------------------------


def metrics_app(metrics: Metrics, *, refresh: Callable[[], None] | None = None,
                healthy: Callable[[], bool] = lambda: True) -> web.Application:
    """/metrics, and /healthz (503 while `healthy()` says not)."""

    async def exposition(_: web.Request) -> web.Response:
        if refresh is not None:
            refresh()
        return web.Response(body=metrics.exposition(), headers={"Content-Type": METRICS_TYPE})

    async def health(_: web.Request) -> web.Response:
        ok = healthy()
        return web.json_response({"ok": ok}, status=200 if ok else 503)

    app = web.Application()
    app.router.add_get("/metrics", exposition)
    app.router.add_get("/healthz", health)
    return app


def _stop_on_signals(stop: asyncio.Event) -> None:
    import signal

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)


async def _site(app: web.Application, host: str, port: int, *, shutdown_timeout: float = 60.0,
                reuse_port: bool = False) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    await web.TCPSite(runner, host, port, shutdown_timeout=shutdown_timeout,
                      reuse_port=reuse_port or None).start()
    return runner


async def _close_recorder(recorder: Recorder, timeout: float) -> None:
    left = await asyncio.to_thread(recorder.close, timeout)
    if left:
        recorder.metrics.dropped.labels("queue_full").inc(left)
        log.warning("stopped with %d sampled requests unwritten", left)


async def serve(gateway: Gateway, *, host: str, port: int, metrics_port: int | None,
                shutdown_timeout: float = 30.0, stop: asyncio.Event | None = None,
                ready: Callable[[Sequence[int]], None] | None = None,
                recorder: Recorder | None = None) -> None:
    """One process serves the feature and the metrics until `stop` is set (or SIGTERM/SIGINT):
    then it stops accepting, lets in-flight answers finish for up to `shutdown_timeout`, and
    `recorder` writes what its queue holds."""
    stop = stop or asyncio.Event()
    _stop_on_signals(stop)
    runner = await _site(gateway.app(), host, port, shutdown_timeout=shutdown_timeout)
    ports = [runner.addresses[0][1]]
    metrics_runner = None
    if metrics_port is not None:
        metrics_runner = await _site(metrics_app(gateway.metrics), host, metrics_port)
        ports.append(metrics_runner.addresses[0][1])
    log.info("forwarding :%d to %s (metrics on :%s)", ports[0], gateway.upstream,
             ports[1] if len(ports) > 1 else "-")
    if ready:
        ready(ports)
    await stop.wait()
    log.info("stopping: finishing in-flight answers (at most %.0f s)", shutdown_timeout)
    await runner.cleanup()
    if recorder is not None:
        await _close_recorder(recorder, shutdown_timeout)
    if metrics_runner is not None:
        await metrics_runner.cleanup()
    log.info("stopped")


# --- several worker processes ------------------------------------------------------------------


class WorkerError(RuntimeError):
    """A worker process could not start forwarding."""


@dataclass(frozen=True)
class Forwarding:
    """What a worker process needs to forward and sample (picklable: it crosses to the spawned
    process)."""

    upstream: str
    sampling: Sampling
    host: str
    port: int
    shutdown_timeout: float = 30.0


def _forward(forwarding: Forwarding, queue, tally: SharedTally | None, listening,
             parent: int) -> None:
    """A worker process: an event loop of its own on the shared port, until SIGTERM/SIGINT (then
    in-flight answers finish) or until the supervisor is gone. The kernel spreads connections
    over the workers (SO_REUSEPORT); every worker's sampled exchanges go to the one recorder."""
    import os

    import uvloop

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    f = forwarding
    metrics = Metrics(in_files=True)
    gateway = Gateway(upstream=f.upstream, sampler=Sampler(f.sampling, tally=tally),
                      mirror=Mirror(queue, metrics) if queue is not None else None,
                      metrics=metrics)

    async def main() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        runner = await _site(gateway.app(), f.host, f.port, shutdown_timeout=f.shutdown_timeout,
                             reuse_port=True)
        listening.set()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            if os.getppid() != parent:  # the supervisor died without saying so
                log.warning("the gateway's supervisor is gone: stopping")
                break
        await runner.cleanup()

    uvloop.run(main())


async def supervise(forwarding: Forwarding, workers: int, *, metrics: Metrics,
                    recorder: Recorder | None, tally: SharedTally | None,
                    metrics_port: int | None, stop: asyncio.Event | None = None,
                    ready: Callable[[Sequence[int]], None] | None = None) -> None:
    """Forward on `workers` processes sharing one port (one event loop relays chunks one after
    another: at 64 concurrent streams whose first tokens arrive together, the last waits for the
    63 before it). This process serves the metrics (the workers' added up: `metrics` must be
    in files, see `metrics_in_files`), keeps the recorder every worker feeds, starts a worker
    again if one dies, and on SIGTERM/SIGINT stops them all (each lets its in-flight answers
    finish), then writes the queue."""
    import dataclasses
    import multiprocessing
    import os
    import signal
    import socket

    from prometheus_client import multiprocess

    assert metrics.in_files, "the workers' metrics must be in files"
    ctx = multiprocessing.get_context("spawn")
    stop = stop or asyncio.Event()
    _stop_on_signals(stop)
    queue = recorder.mirror.queue if recorder is not None else None
    procs: list = [None] * workers
    holder = socket.socket(socket.AF_INET6 if ":" in forwarding.host else socket.AF_INET)

    async def start(i: int) -> None:
        listening = ctx.Event()
        p = ctx.Process(target=_forward, args=(forwarding, queue, tally, listening, os.getpid()),
                        name=f"slam-gateway-{i}", daemon=True)
        p.start()
        procs[i] = p
        while not await asyncio.to_thread(listening.wait, 0.5):
            if not p.is_alive():
                raise WorkerError(f"gateway worker {i} exited with code {p.exitcode} before "
                                   f"listening on {forwarding.host}:{forwarding.port}")

    def depth() -> None:
        if recorder is not None:
            metrics.queue.set(recorder.mirror.depth())

    metrics_runner = None
    try:
        # Port 0: pick one now and hold it (bound, not listening): every worker binds that one.
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            holder.bind((forwarding.host, forwarding.port))
        except OSError as e:
            raise OSError(e.errno, f"--port {forwarding.port}: cannot listen on "
                                   f"{forwarding.host}:{forwarding.port} ({e.strerror})") from None
        forwarding = dataclasses.replace(forwarding, port=holder.getsockname()[1])
        await asyncio.gather(*(start(i) for i in range(workers)))
        ports = [forwarding.port]
        if metrics_port is not None:
            metrics_runner = await _site(
                metrics_app(metrics, refresh=depth,
                            healthy=lambda: all(p.is_alive() for p in procs)),
                forwarding.host, metrics_port)
            ports.append(metrics_runner.addresses[0][1])
        log.info("forwarding :%d to %s on %d worker processes (metrics on :%s)", ports[0],
                 forwarding.upstream, workers, ports[1] if len(ports) > 1 else "-")
        if ready:
            ready(ports)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
            for i, p in enumerate(procs):
                if not stop.is_set() and not p.is_alive():
                    log.warning("gateway worker %d exited with code %s: starting another", i,
                                p.exitcode)
                    multiprocess.mark_process_dead(p.pid)
                    await start(i)
        log.info("stopping: finishing in-flight answers (at most %.0f s)",
                 forwarding.shutdown_timeout)
    finally:
        for p in procs:
            if p is not None and p.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + forwarding.shutdown_timeout + 5
        for p in procs:
            if p is not None:
                await asyncio.to_thread(p.join, max(0.0, deadline - time.monotonic()))
                if p.is_alive():
                    p.kill()
                    await asyncio.to_thread(p.join, 5)
        holder.close()
        if recorder is not None:
            await _close_recorder(recorder, forwarding.shutdown_timeout)
        if metrics_runner is not None:
            await metrics_runner.cleanup()
    log.info("stopped")
