"""A local stand-in for the OpenAI chat completions API that also plays its failure modes.

Streams `--tokens` tokens, one every `--interval` seconds (a fixed rate, for benchmarks;
`--stamp` puts `: received <ns>` and `: sent <ns>` (CLOCK_MONOTONIC) before the first, SSE
comments clients skip, so a benchmark on the same machine can time the request's way in and the
first token's way out alone). A prompt
steers the stub with a directive anywhere in its last message, counted per (model, prompt text):

  [[500:N]]   the first N attempts get HTTP 500, later ones succeed
  [[429:N]]   the first N attempts get HTTP 429 with `Retry-After: 1`
  [[400]]     HTTP 400 (not retryable)
  [[hang]]    accept the request and never answer
  [[cut:K]]   stream K tokens, then drop the connection mid-stream
  [[badjson]] stream one token, then a chunk that is not JSON
  [[empty]]   a well-formed stream whose chunks all have empty `choices`
  [[tokens:K]] answer with K tokens

`/v1/realtime` is the Realtime API's WebSocket as far as a proxy can tell: the bearer token is
checked before the upgrade (403 without it), then `session.created` with the `model` query
parameter, and each client event answered with a `response.done` quoting it.

`GET /_stub/hits` returns attempts per prompt; `--api-key` makes it demand that bearer token (and
answer 401 without ever echoing a key). Run: python -m tests.fakes.openai_stub --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time
from collections import Counter

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

DIRECTIVE = re.compile(r"\[\[(\w+)(?::(\d+))?\]\]")


class Cut(Exception):
    """Raised inside the body generator: uvicorn drops the connection mid-stream."""


def judge_reply(kind: str, messages: list[dict]) -> str:
    """Judges with known behaviour, chosen by the model name judge-<kind>:
    first: always prefers the answer shown first (pure position bias); garbage: never gives a
    verdict; retry: a verdict only when asked again; smart: prefers the answer containing GOOD,
    wherever it is shown (then "Keep going"). Grading requests (a 1-10 rating) get 7
    (smart: 9 for GOOD, else 3)."""
    system, user = messages[0]["content"], messages[1]["content"]
    asked_again = len(messages) > 2
    grading = "Rating: [[5]]" in system
    if kind == "garbage" or (kind == "retry" and not asked_again):
        return "Both answers have merits and I cannot decide."
    if grading:
        if kind == "smart":
            return "Rating: [[9]]" if "GOOD" in user else "Rating: [[3]]"
        return "The answer is fine. Rating: [[7]]"
    if kind == "smart":  # GOOD beats "Keep going", which beats anything else
        def quality(text: str) -> int:
            return 2 if "GOOD" in text else 1 if "Keep going" in text else 0
        a = user.split("[The Start of Assistant A's Answer]")[1].split("[The End")[0]
        b = user.split("[The Start of Assistant B's Answer]")[1].split("[The End")[0]
        if quality(a) == quality(b):
            return "Equally good. [[C]]"
        return "A is better. [[A]]" if quality(a) > quality(b) else "B is better. [[B]]"
    return "Assistant A is better. [[A]]"


def make_app(tokens: int = 16, interval: float = 0.0, api_key: str | None = None,
             created: int | None = None, first_token: float = 0.0,
             stamp: bool = False) -> Starlette:
    hits: Counter[str] = Counter()

    def now() -> int:
        return created if created is not None else int(time.time())

    def chunk(i: int, content: str | None, finish: str | None = None, model: str = "stub",
              choices: bool = True) -> bytes:
        body = {
            "id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": now(),
            "model": model,
            "choices": [{"index": 0, "delta": {"content": content} if content else {},
                         "finish_reason": finish}] if choices else [],
        }
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    async def completions(request: Request) -> Response:
        if api_key is not None and request.headers.get("authorization") != f"Bearer {api_key}":
            return JSONResponse({"error": {"message": "Incorrect API key provided.",
                                           "type": "invalid_request_error"}}, status_code=401)
        body = await request.json()
        received = time.monotonic_ns()
        text = body["messages"][-1]["content"]
        if isinstance(text, list):  # content parts, as the API also accepts
            text = " ".join(part.get("text", "") for part in text)
        model = body.get("model", "stub")
        key = f"{model}|{text}"
        hits[key] += 1
        attempt = hits[key]
        m = DIRECTIVE.search(text)
        mode, arg = (m.group(1), int(m.group(2) or 0)) if m else ("ok", 0)
        if mode == "500" and attempt <= arg:
            return JSONResponse({"error": {"message": "The server had an error"}}, status_code=500)
        if mode == "429" and attempt <= arg:
            return JSONResponse({"error": {"message": "Rate limit reached"}}, status_code=429,
                                headers={"retry-after": "1"})
        if mode == "400":
            return JSONResponse({"error": {"message": "Invalid 'messages'"}}, status_code=400)
        if mode == "hang":
            await asyncio.sleep(3600)
        n = min(body.get("max_tokens") or tokens, arg if mode == "tokens" else tokens)
        usage = (body.get("stream_options") or {}).get("include_usage")

        async def stream():
            if first_token:
                await asyncio.sleep(first_token)
            if mode == "empty":
                for i in range(3):
                    yield chunk(i, None, choices=False, model=model)
                yield b"data: [DONE]\n\n"
                return
            for i in range(n):
                if interval:
                    await asyncio.sleep(interval)
                if mode == "cut" and i == arg:
                    raise Cut("dropping the connection mid-stream")
                if mode == "badjson" and i == 1:
                    yield b'data: {"id": "chatcmpl-stub", "choices": [{"delta": \n\n'
                    return
                if stamp and i == 0:  # SSE comments (clients skip them): request in, this sent
                    yield (b": received %d\n\n: sent %d\n\n" % (received, time.monotonic_ns())
                           + chunk(i, " tok0", model=model))
                    continue
                yield chunk(i, f" tok{i}", model=model)
            yield chunk(n, None, "length" if n == body.get("max_tokens") else "stop", model=model)
            if usage:
                u = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "model": model,
                     "created": now(), "choices": [],
                     "usage": {"prompt_tokens": len(text.split()), "completion_tokens": n,
                               "total_tokens": len(text.split()) + n}}
                yield b"data: " + json.dumps(u).encode() + b"\n\n"
            yield b"data: [DONE]\n\n"

        if not body.get("stream"):
            if first_token:
                await asyncio.sleep(first_token)
            content = "".join(f" tok{i}" for i in range(n))
            if model.startswith("judge-"):
                content = judge_reply(model.removeprefix("judge-"), body["messages"])
            return JSONResponse({
                "id": "chatcmpl-stub", "object": "chat.completion", "model": model,
                "created": now(),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                             "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(text.split()), "completion_tokens": n,
                          "total_tokens": len(text.split()) + n},
            })
        return StreamingResponse(stream(), media_type="text/event-stream")

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": "stub", "object": "model"}]})

    async def get_hits(request: Request) -> Response:
        return JSONResponse(dict(hits))

    async def reset(request: Request) -> Response:
        hits.clear()
        return JSONResponse({})

    async def realtime(ws: WebSocket) -> None:
        if api_key is not None and ws.headers.get("authorization") != f"Bearer {api_key}":
            await ws.close(code=1008)  # before accepting: the client sees HTTP 403
            return
        await ws.accept()
        await ws.send_json({"type": "session.created",
                            "session": {"model": ws.query_params.get("model", "stub")}})
        try:
            while True:
                event = await ws.receive_json()
                await ws.send_json({"type": "response.done", "event": event})
        except WebSocketDisconnect:
            pass

    return Starlette(routes=[
        WebSocketRoute("/v1/realtime", realtime),
        Route("/v1/chat/completions", completions, methods=["POST"]),
        Route("/v1/models", models),
        Route("/health", lambda request: JSONResponse({})),  # as vLLM and TGI serve it
        Route("/_stub/hits", get_hits),
        Route("/_stub/reset", reset, methods=["POST"]),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--interval", type=float, default=0.0, help="seconds between tokens")
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--created", type=int, default=None,
                        help="a fixed `created` time, so answers are the same bytes every time")
    parser.add_argument("--first-token", type=float, default=0.0,
                        help="seconds before the first token (a real API's queue and prefill)")
    parser.add_argument("--stamp", action="store_true",
                        help="SSE comments before the first token: when the request arrived, "
                             "when the token was sent")
    args = parser.parse_args()
    app = make_app(args.tokens, args.interval, args.api_key, args.created, args.first_token,
                   args.stamp)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning",
                timeout_keep_alive=30, backlog=4096)


if __name__ == "__main__":
    main()
