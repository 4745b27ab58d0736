"""One streamed chat completion against any OpenAI-compatible endpoint, timed honestly.

`generate()` never raises: an error is a `RequestRecord` with `error_class` and `error_message`,
as vLLM's benchmark request functions do. Retries (429 honouring Retry-After, 408/409, 5xx,
connection errors and timeouts before the response starts) are the `openai` client's own, with
its jittered exponential backoff; `attempts` comes from the client's `retries_taken`. A failure
after the response started (a stream cut mid-way, a malformed chunk) is recorded, not retried:
the partial answer was already timed, and a silent retry would hide the failure from the report.

Timings are taken from the moment the request is first sent, so they include any retries: that is
the latency a user of the feature would have seen.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import openai
from openai import AsyncOpenAI

from slam.promptsets import PromptItem

MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class Endpoint:
    """Where a target is served. The API key never appears in repr, logs or records."""

    target: str
    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)

    def client(self, params: GenerationParams) -> AsyncOpenAI:
        return AsyncOpenAI(
            base_url=self.base_url,
            # Self-hosted servers take any key; the client insists on one.
            api_key=self.api_key or "unused",
            max_retries=params.max_retries,
            timeout=params.timeout_seconds,
            # aiohttp under the SDK: a third of httpx's CPU per request at high concurrency
            # (bench/generator.py), which is what lets one process keep a 1,000 req/s schedule.
            http_client=openai.DefaultAioHttpClient(),
        )


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float | None = None
    seed: int | None = None
    timeout_seconds: float = 120.0
    max_retries: int = 3


@dataclass(frozen=True)
class RequestRecord:
    """The outcome of one request: timings, tokens and text, or the error."""

    target: str
    prompt_id: str
    sample: int
    started_at: datetime
    attempts: int
    ttft_ms: float | None = None
    e2e_ms: float | None = None
    itl_mean_ms: float | None = None
    itl_p50_ms: float | None = None
    itl_p95_ms: float | None = None
    itl_max_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens_source: str | None = None  # "usage" (reported by the server) or "chunks" (counted)
    finish_reason: str | None = None
    text: str = ""
    error_class: str | None = None
    error_message: str | None = None
    status_code: int | None = None
    schedule_lag_ms: float | None = None

    @property
    def ok(self) -> bool:
        return self.error_class is None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.target, self.prompt_id, self.sample)


class EmptyResponse(Exception):
    """The server answered without any choice or text."""


class IncompleteStream(Exception):
    """The stream ended cleanly but without saying why the answer finished."""


class StreamError(Exception):
    """The server reported an error inside the stream."""


def _scrub(message: str, secret: str | None) -> str:
    if secret:
        message = message.replace(secret, "***")
    return message[:MAX_ERROR_CHARS]


def _itl_summary(token_times: list[float]) -> dict[str, float | None]:
    if len(token_times) < 2:
        return {}
    gaps = np.diff(np.asarray(token_times)) * 1000.0
    p50, p95 = np.percentile(gaps, [50, 95])
    return {
        "itl_mean_ms": float(gaps.mean()),
        "itl_p50_ms": float(p50),
        "itl_p95_ms": float(p95),
        "itl_max_ms": float(gaps.max()),
    }


def request_body(endpoint: Endpoint, prompt: PromptItem, sample: int,
                 params: GenerationParams) -> dict:
    body: dict = {
        "model": endpoint.model,
        "messages": list(prompt.messages),
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if params.top_p is not None:
        body["top_p"] = params.top_p
    if params.seed is not None:
        # Distinct seeds per sample: the same seed would repeat one answer N times.
        body["seed"] = params.seed + sample
    return body


async def generate(
    client: AsyncOpenAI,
    endpoint: Endpoint,
    prompt: PromptItem,
    sample: int,
    params: GenerationParams,
    schedule_lag_ms: float | None = None,
) -> RequestRecord:
    """Send one streamed chat completion and return its record (never raises)."""
    started_at = datetime.now(UTC)
    t0 = time.perf_counter()
    token_times: list[float] = []
    parts: list[str] = []
    finish_reason = None
    usage = None
    chunks_with_choices = 0
    attempts = 1
    base = {"target": endpoint.target, "prompt_id": prompt.id, "sample": sample,
            "started_at": started_at, "schedule_lag_ms": schedule_lag_ms}
    body = request_body(endpoint, prompt, sample, params)
    try:
        # The client sends the request and retries it; the server-sent events are read here
        # with json.loads rather than the SDK's typed chunk models, which cost more CPU per token
        # than the rest of the request path together (bench/generator.py measures this).
        # The body is already in wire format: it goes as `extra_body`, which the SDK sends as
        # is, skipping its per-field TypedDict transform (a third of the CPU of a request at
        # 1,000 requests/s; bench/generator.py).
        async with client.chat.completions.with_streaming_response.create(
            model=body["model"], messages=[], extra_body=body
        ) as response:
            attempts = response.retries_taken + 1
            # The client's timeout bounds each wait for bytes; this bounds the whole answer, so
            # a server that trickles tokens forever still ends.
            async with asyncio.timeout(params.timeout_seconds):
                async for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = json.loads(data)
                    if "error" in chunk:
                        raise StreamError(str(chunk["error"].get("message", chunk["error"])))
                    if chunk.get("usage"):
                        usage = chunk["usage"]
                    choices = chunk.get("choices")
                    if not choices:
                        continue
                    chunks_with_choices += 1
                    choice = choices[0]
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        token_times.append(time.perf_counter())
                        parts.append(content)
                    if choice.get("finish_reason"):
                        finish_reason = choice["finish_reason"]
        end = time.perf_counter()
        if chunks_with_choices == 0:
            raise EmptyResponse("the response had no choices (empty `choices` in every chunk)")
        if finish_reason is None:
            # Every OpenAI-compatible server ends a stream with a finish_reason; without one the
            # answer was cut off (llama-cpp-python does this to a stream it interrupts).
            raise IncompleteStream("the stream ended without a finish_reason")
    except BaseException as e:  # noqa: BLE001 - a request never raises; cancellation re-raised
        if isinstance(e, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
            raise
        return _error_record(base, e, attempts, params, endpoint, token_times, t0, parts)
    return RequestRecord(
        **base,
        attempts=attempts,
        ttft_ms=(token_times[0] - t0) * 1000.0 if token_times else None,
        e2e_ms=(end - t0) * 1000.0,
        **_itl_summary(token_times),
        prompt_tokens=usage.get("prompt_tokens") if usage else None,
        completion_tokens=usage["completion_tokens"] if usage else len(token_times),
        tokens_source="usage" if usage else "chunks",
        finish_reason=finish_reason,
        text="".join(parts),
    )


def classify(e: BaseException, streamed: bool) -> str:
    """A stable error class for reports, whatever HTTP library raised it."""
    status = getattr(e, "status_code", None)
    if _refused(e):
        return "ConnectionError"
    if isinstance(e, TimeoutError | openai.APITimeoutError):
        return "Timeout"
    if status == 429:
        return "RateLimited"
    if status is not None and status >= 500:
        return "ServerError"
    if status is not None:
        return "ClientError"
    if isinstance(e, json.JSONDecodeError):
        return "MalformedResponse"
    if isinstance(e, EmptyResponse | IncompleteStream | StreamError):
        return type(e).__name__
    if isinstance(e, openai.APIConnectionError) or _is_transport(e):
        # After the first token it is a stream cut mid-way; before, the server was unreachable.
        return "StreamCut" if streamed else "ConnectionError"
    return type(e).__name__


def _causes(e: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    while e is not None and e not in chain and len(chain) < 10:
        chain.append(e)
        e = e.__cause__ or e.__context__
    return chain


def _refused(e: BaseException) -> bool:
    """The server could not be reached at all. The SDK's aiohttp transport reports a refused
    connection as a connect *timeout*; the cause chain says what really happened."""
    import aiohttp
    return any(isinstance(c, ConnectionRefusedError | aiohttp.ClientConnectorError)
               and not isinstance(c, aiohttp.ServerTimeoutError) for c in _causes(e))


def _is_transport(e: BaseException) -> bool:
    module = type(e).__module__
    return module.startswith(("httpx", "httpcore", "aiohttp", "h11")) or isinstance(e, OSError)


def _error_record(base: dict, e: BaseException, attempts: int, params: GenerationParams,
                  endpoint: Endpoint, token_times: list[float], t0: float,
                  parts: list[str]) -> RequestRecord:
    status = getattr(e, "status_code", None)
    name = classify(e, streamed=bool(token_times))
    retryable = name in ("Timeout", "RateLimited", "ServerError", "ConnectionError")
    if (retryable or status in (408, 409)) and not token_times:
        # The client gave up after its last retry (it reports no count when it fails).
        attempts = params.max_retries + 1
    if isinstance(e, TimeoutError):
        message = (f"the response did not finish within {params.timeout_seconds:g} s "
                   "(spec.generation.timeoutSeconds)")
    elif name == "ConnectionError" and _refused(e):
        cause = next(c for c in reversed(_causes(e)) if isinstance(c, OSError))
        message = f"cannot connect to {endpoint.base_url}: {cause}"
    elif name == "Timeout":
        message = (f"no response within {params.timeout_seconds:g} s after {attempts} "
                   "attempt(s) (spec.generation.timeoutSeconds)")
    else:
        message = f"{type(e).__name__}: {e}" if str(e) else repr(e)
        cause = e.__cause__ or e.__context__
        if isinstance(e, openai.APIConnectionError) and cause is not None:
            message = f"{message} ({type(cause).__name__}: {cause})"
    if token_times:
        message += f" after {len(token_times)} streamed chunk(s)"
    return RequestRecord(
        **base,
        attempts=attempts,
        ttft_ms=(token_times[0] - t0) * 1000.0 if token_times else None,
        e2e_ms=(time.perf_counter() - t0) * 1000.0,
        completion_tokens=len(token_times) if token_times else None,
        tokens_source="chunks" if token_times else None,
        text="".join(parts),
        error_class=name,
        error_message=_scrub(message, endpoint.api_key),
        status_code=status,
    )
