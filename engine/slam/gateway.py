"""The shadow gateway: an OpenAI-compatible reverse proxy in front of the incumbent API model that
records a sample of the feature's real traffic as a run of an Evaluation.

Two processes, one command (`slam gateway`, this module's `run`):

- The request path is `slam-gateway-proxy` (gateway/, Go): net/http/httputil's ReverseProxy
  forwards every request to the upstream unchanged (method, path, query, headers including the
  caller's own API key, body) and relays its answer as the upstream sent it — status, headers and
  body bytes, a stream flushed chunk by chunk as each arrives, an upstream that cuts a stream cut
  on the caller the same way. It decides which requests are sampled (rate, daily cap, routes,
  models, `user` include/exclude patterns), keeps a copy of a sampled answer on its way through,
  and after the caller got it offers the exchange to a bounded queue, never waited on (a full
  queue is a counted drop). It serves the metrics (Prometheus, with /healthz): requests
  forwarded by status, sampled, recorded, dropped by reason, the queue's depth, and the latency
  it adds (its time before the upstream request is sent plus before the answer's head is
  relayed). Why Go and not this process's asyncio: one event loop relays one chunk at a time,
  and at 64 concurrent streams whose first tokens arrive together the last one waited ~15 ms
  (bench/README.md, issue 30); Go relays on every core at microseconds a chunk.
- The recorder is this process: the queue's one consumer hands it the exchanges over a Unix
  socket in batches (those queued within 200 ms, at most 64: `recorder_app`); it redacts each
  request and answer (slam.redact) and writes the batch to the results store in one transaction
  — each prompt into the run's prompt set, each answer as the incumbent target's response with
  its timings — and answers with each one's outcome, which the proxy counts. A store
  that is down or slow costs drops, counted by reason, and nothing else. The caller's key is
  forwarded and never kept: only messages and answers are written, and nothing logs a header.

On SIGTERM/SIGINT the proxy stops accepting, lets in-flight answers finish (`--shutdown-timeout`),
then its queue is written; this process waits for it and exits with its code.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from aiohttp import web

from slam.generate import RequestRecord
from slam.logimport import _Skip, answers_of, messages_of, prompt_key
from slam.redact import Redactor

log = logging.getLogger("slam.gateway")

PROXY = "slam-gateway-proxy"
RECORDER_NICENESS = 10
CHAT_ROUTE = "/v1/chat/completions"


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

    def proxy_args(self) -> list[str]:
        """The same settings as the proxy's flags (it decides per request)."""
        args = [f"--sample-rate={self.rate}",
                f"--daily-cap={-1 if self.daily_cap is None else self.daily_cap}"]
        args += [f"--route={r}" for r in self.routes] + [f"--model={m}" for m in self.models]
        if self.users is not None:
            args.append(f"--user={self.users.pattern}")
        if self.exclude_users is not None:
            args.append(f"--exclude-user={self.exclude_users.pattern}")
        return args


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

    @classmethod
    def from_proxy(cls, data: dict) -> Exchange:
        """An exchange as the proxy sends it (gateway/mirror.go: the body in base64)."""
        return cls(request=data["request"], status=int(data["status"]),
                   body=base64.b64decode(data.get("body") or b""),
                   streamed=bool(data.get("streamed")), encoding=data.get("encoding") or None,
                   started_at=datetime.fromisoformat(data["started_at"]),
                   ttft_ms=data.get("ttft_ms"), e2e_ms=float(data["e2e_ms"]))


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


class _Writer:
    """Redacts and stores the exchanges of a batch (in the recorder), the batch in one
    transaction; a store that fails is left alone for `recording.retry_seconds`, each exchange
    meanwhile a counted drop."""

    def __init__(self, recording: Recording, redactor: Redactor):
        self.recording = recording
        self.redactor = redactor
        self._store = None
        self._run_pk: int | None = None
        self._down_until = 0.0

    def handle(self, exchanges: list[Exchange]) -> list[str | None]:
        """Each exchange's drop reason, or None when it was written."""
        if time.monotonic() < self._down_until:
            return ["store_unavailable"] * len(exchanges)
        outcomes: list[str | None] = []
        items, model = [], ""
        for ex in exchanges:
            item = self._prepare(ex)
            if isinstance(item, str):
                outcomes.append(item)
            else:
                outcomes.append(None)
                items.append((len(outcomes) - 1, item))
                model = model or str(ex.request.get("model", ""))
            _let_the_proxy_run()
        if not items:
            return outcomes
        try:
            store, run_pk = self._run(model)
            added = store.add_prompts(run_pk, [item for _, item in items],
                                      between=_let_the_proxy_run)
        except Exception as e:  # noqa: BLE001 - a store error is a counted drop, never a crash
            self._down_until = time.monotonic() + self.recording.retry_seconds
            self._forget_store()
            log.warning("store unavailable, dropping sampled requests for %.0f s: %s",
                        self.recording.retry_seconds, _safe_error(e, self.recording.store_url))
            for i, _ in items:
                outcomes[i] = "store_unavailable"
            return outcomes
        for (i, _), ok in zip(items, added, strict=True):
            outcomes[i] = None if ok else "duplicate"
        return outcomes

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

    def _prepare(self, ex: Exchange) -> str | tuple[str, list[dict], tuple, RequestRecord]:
        """One exchange redacted, as the store's prompt item; or the reason it is not kept."""
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
        record = RequestRecord(
            target=self.recording.incumbent, prompt_id=prompt_id, sample=0,
            started_at=ex.started_at, attempts=1, ttft_ms=ex.ttft_ms, e2e_ms=ex.e2e_ms,
            status_code=ex.status, **answer)
        return prompt_id, messages, (), record


def _let_the_proxy_run() -> None:
    """Between two exchanges of a batch (redacting them, then storing them), the recorder gives
    its core up to any proxy thread that is waiting for it (a no-op when none is). Under the
    kernel's EEVDF scheduler a SCHED_IDLE task can be picked over a runnable thread that has had
    more than its share lately, and then runs until it blocks or the next tick (4 ms at HZ=250):
    a yield every exchange bounds that to one exchange's work."""
    with contextlib.suppress(OSError, AttributeError):
        os.sched_yield()


def _safe_error(e: BaseException, store_url: str) -> str:
    from sqlalchemy.engine import make_url

    from slam.store import describe_error

    try:
        password = make_url(store_url).password
    except Exception:  # noqa: BLE001 - an unparsable URL has no password to hide
        password = None
    return describe_error(e, password)




# --- the recorder, and the two processes together ----------------------------------------------


def recorder_app(writer: _Writer) -> web.Application:
    """POST /exchanges: a batch of exchanges from the proxy's queue (a JSON list), answered with
    each one's outcome (`{"outcomes": [...]}`: `null` when it was written, else the drop reason).
    The proxy sends one batch at a time; the writer works in a thread so this process's loop
    stays free."""
    lock = asyncio.Lock()

    async def exchanges(request: web.Request) -> web.Response:
        try:
            batch = await request.json()
        except ValueError:
            return web.json_response({"error": "not a JSON list of exchanges"}, status=400)
        if not isinstance(batch, list):
            return web.json_response({"error": "not a JSON list of exchanges"}, status=400)
        parsed: list[Exchange | None] = []
        for data in batch:
            try:
                parsed.append(Exchange.from_proxy(data))
            except (ValueError, KeyError, TypeError, AttributeError):
                parsed.append(None)
        async with lock:
            written = iter(await asyncio.to_thread(
                writer.handle, [ex for ex in parsed if ex is not None]))
        return web.json_response({"outcomes": [
            next(written) if ex is not None else "not_recordable" for ex in parsed]})

    app = web.Application(client_max_size=160 << 20)
    app.router.add_post("/exchanges", exchanges)
    return app


class GatewayError(RuntimeError):
    """The gateway could not start."""


def proxy_binary() -> str:
    """The request path's program: $SLAM_GATEWAY_PROXY, else next to this Python (the venv's or
    the image's bin), else on PATH."""
    named = os.environ.get("SLAM_GATEWAY_PROXY")
    if named:
        if not os.access(named, os.X_OK):
            raise GatewayError(f"SLAM_GATEWAY_PROXY={named}: not an executable file")
        return named
    beside = Path(sys.executable).parent / PROXY
    if os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(PROXY)
    if found:
        return found
    raise GatewayError(f"the gateway's request path ({PROXY}) is not installed: `make "
                       "gateway-proxy` builds it from gateway/ (needs Go) into the venv; the "
                       "operator image has it")


def _yield_cpu() -> None:
    """The recorder yields the CPU to the request path: redaction and the store's driver are CPU
    work that, on the pod's core, would otherwise delay relayed chunks. SCHED_IDLE runs it only
    when the proxy has nothing to do (a waking proxy thread preempts it at once; under a load
    that keeps the core busy the mirror queue fills and its drops are counted, as designed);
    where that policy is refused, niceness 10. Both are per thread on Linux: set on every thread
    this process has (the store's and the redactor's may have started some), and inherited by
    the ones it starts later (the writer's). Lowering either needs no privilege."""
    threads = [int(t) for t in os.listdir("/proc/self/task")] if os.path.isdir(
        "/proc/self/task") else [0]
    for tid in threads:
        try:
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        except (OSError, AttributeError):
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, tid,
                               os.getpriority(os.PRIO_PROCESS, tid) + RECORDER_NICENESS)


def signal_child(proc: asyncio.subprocess.Process, sig: int) -> None:
    """Pass a signal on to the proxy without reaping it. asyncio's Process.send_signal polls the
    child first (subprocess, bpo-38630); when the proxy had already exited (a SIGTERM to the
    process group reaches both processes), that poll took its exit status away from the child
    watcher, which then reported 255 ("Unknown child process") and a clean stop ended as an
    error. Until the watcher reaps it the exited proxy keeps its pid, so the plain kill cannot
    reach another process."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def run(*, upstream: str, sampling: Sampling, recording: Recording, redactor: Redactor,
              host: str, port: int, metrics_port: int | None, queue_size: int = 1000,
              shutdown_timeout: float = 30.0, workers: int | None = None) -> int:
    """Serve until SIGTERM/SIGINT: the proxy forwards (and serves the metrics), this process
    records. Returns the exit code (the proxy's; 1 when it could not start or died)."""
    binary = proxy_binary()
    writer = _Writer(recording, redactor)
    with tempfile.TemporaryDirectory(prefix="slam-gateway-") as folder:
        socket_path = str(Path(folder) / "recorder.sock")
        runner = web.AppRunner(recorder_app(writer), access_log=None)
        await runner.setup()
        await web.UnixSite(runner, socket_path).start()
        args = [f"--listen={_address(host, port)}", f"--upstream={upstream}",
                f"--recorder={socket_path}", f"--queue-size={queue_size}",
                f"--shutdown-timeout={shutdown_timeout}s", *sampling.proxy_args()]
        if metrics_port is not None:
            args.append(f"--metrics-listen={_address(host, metrics_port)}")
        env = dict(os.environ)
        if workers:
            env["GOMAXPROCS"] = str(workers)  # the proxy keeps at least 2 (gateway/main.go)
        proc = await asyncio.create_subprocess_exec(binary, *args, env=env)
        _yield_cpu()
        loop = asyncio.get_running_loop()
        stopping = False

        def forward(sig: signal.Signals) -> None:
            nonlocal stopping
            stopping = True
            signal_child(proc, sig)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, forward, sig)
        try:
            code = await proc.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await runner.cleanup()
            writer.close()
    if code < 0 or (code and stopping):
        log.error("the gateway's request path (%s) exited with code %d", PROXY, code)
        return 1
    return code
