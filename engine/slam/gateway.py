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


class Sampler:
    """Decides per request; `choose` returns True for a request to record. Thread-unsafe by
    design: the gateway calls it from its one event loop."""

    def __init__(self, sampling: Sampling, *, draw: Callable[[], float] = random.random,
                 today: Callable[[], date] = lambda: datetime.now(UTC).date()):
        self.sampling = sampling
        self._draw = draw
        self._today = today
        self._day: date | None = None
        self._taken = 0

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
        day = self._today()
        if day != self._day:
            self._day, self._taken = day, 0
        if s.daily_cap is not None and self._taken >= s.daily_cap:
            return False
        if self._draw() >= s.rate:
            return False
        self._taken += 1
        return True


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
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
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
                           "Sampled requests waiting to be written.", registry=r)
        self.added = Histogram("slam_gateway_added_latency_seconds",
                               "Time the gateway adds before the first byte of an answer.",
                               buckets=(0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001,
                                        0.0015, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1),
                               registry=r)


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


class Recorder:
    """A bounded queue drained by a worker process that redacts and writes to the store; `offer`
    never blocks. The worker is a process, not a thread: redaction (phone numbers above all) and
    the store's driver are CPU work that, in a thread, would hold the GIL the request path's event
    loop needs (measured: TTFT p50 ratio 1.05 and +60 ms p99 at 500 requests/s with every request
    recorded, bench/gateway.py). Its outcomes come back on a second queue to the metrics."""

    def __init__(self, recording: Recording, redactor: Redactor, metrics: Metrics, *,
                 queue_size: int = 1000):
        import multiprocessing
        import os

        ctx = multiprocessing.get_context("spawn")  # nothing of this process's threads or loop
        self.metrics = metrics
        self._queue = ctx.Queue(maxsize=queue_size)
        self._outcomes = ctx.Queue()
        self._process = ctx.Process(
            target=_record, args=(recording, redactor, self._queue, self._outcomes, os.getpid()),
            name="slam-gateway-recorder", daemon=True)
        self._process.start()
        self._counter = threading.Thread(target=self._count, name="slam-gateway-outcomes",
                                         daemon=True)
        self._counter.start()

    def _depth(self) -> int:
        try:
            return self._queue.qsize()
        except NotImplementedError:  # macOS: no sem_getvalue
            return 0

    def offer(self, exchange: Exchange) -> None:
        import queue

        try:
            self._queue.put_nowait(exchange)
        except queue.Full:
            self.metrics.dropped.labels("queue_full").inc()
        self.metrics.queue.set(self._depth())

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
            self.metrics.queue.set(self._depth())

    def close(self, timeout: float) -> int:
        """Write what is queued, for at most `timeout` seconds; returns how many were left."""
        import queue

        deadline = time.monotonic() + timeout
        with contextlib.suppress(queue.Full, ValueError):
            self._queue.put(None, timeout=max(0.001, deadline - time.monotonic()))
        self._process.join(max(0.0, deadline - time.monotonic()))
        left = self._depth()
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
    """The proxy: `app()` serves the feature's requests, `metrics_app()` /metrics and /healthz."""

    upstream: str
    sampler: Sampler
    recorder: Recorder | None
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

    def metrics_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", lambda _: web.json_response({"ok": True}))
        return app

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry),
                            headers={"Content-Type": METRICS_TYPE})

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
            sampled = self.recorder is not None and self.sampler.choose(
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
        if captured is not None and self.recorder is not None:
            content_type = upstream.headers.get("Content-Type", "")
            self.recorder.offer(Exchange(
                request=parsed or {}, status=upstream.status, body=b"".join(captured),
                streamed=content_type.startswith("text/event-stream"),
                encoding=upstream.headers.get("Content-Encoding"), started_at=started_at,
                ttft_ms=(first - received) * 1000 if first is not None else None,
                e2e_ms=(time.perf_counter() - received) * 1000))
        return response


# --- running it --------------------------------------------------------------------------------


async def serve(gateway: Gateway, *, host: str, port: int, metrics_port: int | None,
                shutdown_timeout: float = 30.0, stop: asyncio.Event | None = None,
                ready: Callable[[Sequence[int]], None] | None = None) -> None:
    """Serve until `stop` is set (or SIGTERM/SIGINT): then stop accepting, let in-flight
    answers finish for up to `shutdown_timeout`, and write what the mirror queue holds."""
    import signal

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(gateway.app(), access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, host, port, shutdown_timeout=shutdown_timeout)
    await site.start()
    ports = [runner.addresses[0][1]]
    metrics_runner = None
    if metrics_port is not None:
        metrics_runner = web.AppRunner(gateway.metrics_app(), access_log=None)
        await metrics_runner.setup()
        await web.TCPSite(metrics_runner, host, metrics_port).start()
        ports.append(metrics_runner.addresses[0][1])
    log.info("forwarding :%d to %s (metrics on :%s)", ports[0], gateway.upstream,
             ports[1] if len(ports) > 1 else "-")
    if ready:
        ready(ports)
    await stop.wait()
    log.info("stopping: finishing in-flight answers (at most %.0f s)", shutdown_timeout)
    await runner.cleanup()
    if gateway.recorder is not None:
        left = await asyncio.to_thread(gateway.recorder.close, shutdown_timeout)
        if left:
            gateway.metrics.dropped.labels("queue_full").inc(left)
            log.warning("stopped with %d sampled requests unwritten", left)
    if metrics_runner is not None:
        await metrics_runner.cleanup()
    log.info("stopped")
