"""One request, every way it can end: real llama.cpp timings, and the stub's failure modes."""

from __future__ import annotations

import asyncio
import time

import pytest

from slam.generate import Endpoint, GenerationParams, RequestRecord, generate
from slam.promptsets import PromptItem
from tests.conftest import STUB_API_KEY
from tests.servers import Llama, Stub

FAST = GenerationParams(max_tokens=8, temperature=0, timeout_seconds=2, max_retries=2)


def ask(endpoint: Endpoint, text: str, params: GenerationParams = FAST,
        sample: int = 0) -> RequestRecord:
    async def go() -> RequestRecord:
        client = endpoint.client(params)
        try:
            return await generate(client, endpoint, PromptItem("p1", (
                {"role": "user", "content": text},)), sample, params)
        finally:
            await client.close()
    return asyncio.run(go())


@pytest.fixture
def api(stub: Stub) -> Endpoint:
    stub.reset()
    return Endpoint("gpt4", stub.base_url, "gpt-4-0613", STUB_API_KEY)


def test_llama_cpp_records_real_timings_and_tokens(llama: Llama) -> None:
    endpoint = Endpoint("smollm2", llama.base_url, llama.alias)
    r = ask(endpoint, "Write one sentence about the sea.",
            GenerationParams(max_tokens=12, temperature=0, seed=1, timeout_seconds=60))
    assert r.ok, r.error_message
    assert r.text.strip()
    assert r.completion_tokens and 1 <= r.completion_tokens <= 12
    assert r.tokens_source == "chunks"  # llama-cpp-python sends no usage when streaming
    assert r.finish_reason in ("length", "stop")
    assert 0 < r.ttft_ms < r.e2e_ms
    if r.completion_tokens > 2:
        assert r.itl_mean_ms > 0 and r.itl_max_ms >= r.itl_p50_ms
    assert r.attempts == 1


def test_success_uses_reported_usage(api: Endpoint) -> None:
    r = ask(api, "hello there")
    assert r.ok and r.finish_reason == "length"
    assert (r.prompt_tokens, r.completion_tokens, r.tokens_source) == (2, 8, "usage")
    assert r.text == "".join(f" tok{i}" for i in range(8))
    assert 0 < r.ttft_ms <= r.e2e_ms


def test_500_is_retried_then_succeeds(api: Endpoint, stub: Stub) -> None:
    r = ask(api, "[[500:2]] hi")
    assert r.ok and r.attempts == 3
    assert stub.hits()["gpt-4-0613|[[500:2]] hi"] == 3


def test_500_beyond_the_retries_is_recorded(api: Endpoint, stub: Stub) -> None:
    r = ask(api, "[[500:9]] hi")
    assert not r.ok
    assert (r.error_class, r.status_code, r.attempts) == ("ServerError", 500, 3)
    assert stub.hits()["gpt-4-0613|[[500:9]] hi"] == 3


def test_429_honours_retry_after(api: Endpoint) -> None:
    t0 = time.monotonic()
    r = ask(api, "[[429:1]] hi")
    assert r.ok and r.attempts == 2
    # The stub says Retry-After: 1; the client waited for it and the latency shows it.
    assert time.monotonic() - t0 >= 1.0
    assert r.e2e_ms >= 1000


def test_400_is_not_retried(api: Endpoint, stub: Stub) -> None:
    r = ask(api, "[[400]] hi")
    assert (r.error_class, r.status_code, r.attempts) == ("ClientError", 400, 1)
    assert stub.hits()["gpt-4-0613|[[400]] hi"] == 1


def test_hang_past_the_timeout_is_retried_then_recorded(api: Endpoint, stub: Stub) -> None:
    params = GenerationParams(max_tokens=8, timeout_seconds=0.5, max_retries=1)
    r = ask(api, "[[hang]] hi", params)
    assert r.error_class == "Timeout" and r.attempts == 2
    assert "timeoutSeconds" in r.error_message
    assert stub.hits()["gpt-4-0613|[[hang]] hi"] == 2


def test_stream_cut_midway_is_recorded_with_the_partial_answer(api: Endpoint) -> None:
    r = ask(api, "[[cut:3]] hi")
    assert r.error_class == "StreamCut"
    assert r.text == " tok0 tok1 tok2" and r.completion_tokens == 3
    assert "3 streamed chunk(s)" in r.error_message


def test_malformed_json_is_recorded(api: Endpoint) -> None:
    r = ask(api, "[[badjson]] hi")
    assert r.error_class == "MalformedResponse" and r.text == " tok0"


def test_empty_choices_is_recorded(api: Endpoint) -> None:
    r = ask(api, "[[empty]] hi")
    assert r.error_class == "EmptyResponse"
    assert "no choices" in r.error_message


def test_wrong_key_is_recorded_without_the_key(stub: Stub) -> None:
    wrong = "wrong-key-0123456789"
    r = ask(Endpoint("gpt4", stub.base_url, "gpt-4", wrong), "hi")
    assert (r.error_class, r.status_code, r.attempts) == ("ClientError", 401, 1)
    assert wrong not in repr(r)
    assert STUB_API_KEY not in repr(Endpoint("gpt4", stub.base_url, "gpt-4", STUB_API_KEY))


def test_connection_refused_is_recorded(stub: Stub) -> None:
    from tests.controlplane.cluster import free_port
    r = ask(Endpoint("x", f"http://127.0.0.1:{free_port()}/v1", "m"), "hi",
            GenerationParams(max_tokens=4, timeout_seconds=1, max_retries=1))
    assert r.error_class == "ConnectionError" and r.attempts == 2
    assert "onnect" in r.error_message


def test_samples_get_distinct_seeds(api: Endpoint) -> None:
    from slam.generate import request_body
    params = GenerationParams(seed=7)
    prompt = PromptItem("p", ({"role": "user", "content": "x"},))
    seeds = {request_body(api, prompt, s, params)["seed"] for s in range(3)}
    assert seeds == {7, 8, 9}
