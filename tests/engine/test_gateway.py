"""The shadow gateway (`slam gateway`) in front of the OpenAI stand-in: the incumbent path exactly
as a direct call, a redacted sample in the store, and faults on the mirror path that cost the
feature nothing."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from slam.gateway import CHAT_ROUTE, signal_child
from slam.store import Store
from tests.conftest import STUB_API_KEY
from tests.controlplane.cluster import REPO, free_port
from tests.engine.test_logimport import PLANTED, SENTENCES
from tests.servers import Stub, spawn, stop, wait_http

SLAM = str(Path(sys.executable).parent / "slam")
CREATED = 1_764_800_000


@dataclass
class Gw:
    proc: subprocess.Popen
    port: int
    metrics_port: int
    log: Path
    store_url: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metrics(self) -> dict[tuple[str, tuple], float]:
        text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics").text
        out = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return out

    def count(self, name: str, **labels: str) -> float:
        return self.metrics().get((name, tuple(sorted(labels.items()))), 0.0)

    def wait_for(self, name: str, value: float, timeout: float = 30, **labels: str) -> None:
        deadline = time.monotonic() + timeout
        while self.count(name, **labels) < value:
            assert time.monotonic() < deadline, (name, labels, str({
                k: v for k, v in self.metrics().items() if k[0].endswith("_total")}))
            time.sleep(0.05)


def start_gateway(tmp_path: Path, upstream: str, *args: str, store_url: str | None = None,
                  name: str = "gw") -> Gw:
    port, metrics_port = free_port(), free_port()
    store_url = store_url or f"sqlite:///{tmp_path / 'results.db'}"
    log = tmp_path / f"{name}.log"
    proc = spawn([SLAM, "gateway", "--upstream", upstream, "--evaluation", "support-shadow",
                  "--run-id", "week-49", "--host", "127.0.0.1", "--port", str(port),
                  "--metrics-port", str(metrics_port), "--store", store_url, *args],
                 log, marker=tmp_path)
    wait_http(f"http://127.0.0.1:{metrics_port}/healthz", proc, log, timeout=60)
    return Gw(proc, port, metrics_port, log, store_url)


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Stub]:
    s = Stub(tmp_path / "stub", api_key=STUB_API_KEY, created=CREATED).start()
    try:
        yield s
    finally:
        s.stop()


def origin(stub: Stub) -> str:
    return f"http://127.0.0.1:{stub.port}"


AUTH = {"Authorization": f"Bearer {STUB_API_KEY}"}


def body(content: str, *, stream: bool = False, model: str = "gpt-4o", **extra) -> dict:
    b = {"model": model, "messages": [{"role": "system", "content": "You are a support bot."},
                                      {"role": "user", "content": content}], **extra}
    if stream:
        b["stream"] = True
        b["stream_options"] = {"include_usage": True}
    return b


def exchange(base: str, payload: dict, headers: dict | None = None) -> tuple[int, dict, bytes]:
    with httpx.Client(timeout=30) as client, client.stream(
            "POST", f"{base}/v1/chat/completions", json=payload,
            headers={**AUTH, **(headers or {})}) as r:
        return r.status_code, dict(r.headers), b"".join(r.iter_raw())


def comparable(headers: dict) -> dict:
    # The date is the second it was sent; the framing is the connection's, not the answer's.
    return {k: v for k, v in headers.items() if k not in ("date", "transfer-encoding",
                                                           "connection")}


@pytest.mark.parametrize("workers", [1, 3])
def test_answers_and_errors_arrive_as_the_incumbent_sent_them(tmp_path: Path, upstream: Stub,
                                                              workers: int) -> None:
    gw = start_gateway(tmp_path, origin(upstream), "--sample-rate", "0",
                       "--workers", str(workers))
    try:
        for payload in [body("Where is my parcel?"), body("Where is my parcel?", stream=True),
                        body("Answer briefly [[tokens:3]]", stream=True),
                        body("Fail please [[400]]"), body("Busy [[429:100]]"),
                        body("Broken [[500:100]]")]:
            direct = exchange(upstream.base_url.removesuffix("/v1"), payload)
            shadowed = exchange(gw.url, payload)
            assert shadowed[0] == direct[0], payload
            assert shadowed[2] == direct[2], payload  # byte for byte
            assert comparable(shadowed[1]) == comparable(direct[1]), payload
            if shadowed[0] == 429:
                assert shadowed[1]["retry-after"] == "1"
        # The caller's own key is what authenticates: a wrong one gets the incumbent's 401.
        status, _, raw = exchange(gw.url, body("hi"), {"Authorization": "Bearer sk-wrong"})
        assert status == 401 and b"Incorrect API key" in raw
        # Other routes are forwarded too (the feature's base URL is the gateway's).
        assert httpx.get(f"{gw.url}/v1/models", headers=AUTH).json()["data"][0]["id"] == "stub"
        assert gw.count("slam_gateway_requests_forwarded_total", code="200") == 4
        assert gw.count("slam_gateway_requests_forwarded_total", code="429") == 1
        assert gw.count("slam_gateway_requests_sampled_total") == 0
        assert gw.count("slam_gateway_added_latency_seconds_count") == 8
        # The cores it may use, as its metrics show them: never one scheduler P (a burst of new
        # connections would wait on the network poll), three when three are given.
        assert gw.count("go_sched_gomaxprocs_threads") == max(workers, 2)
        # The Grafana dashboard's gateway panels query what the gateway serves.
        served = {name for name, _ in gw.metrics()}
        dashboard = json.loads((REPO / "deploy" / "grafana" / "slam-operator.json").read_text())
        queried = {name for panel in dashboard["panels"] for t in panel["targets"]
                   for name in re.findall(r"\bslam_gateway_[a-z0-9_]+", t["expr"])}
        assert len(queried) >= 6 and queried <= served, queried - served
    finally:
        stop(gw.proc)


def test_a_cut_stream_is_cut_on_the_caller_too(tmp_path: Path, upstream: Stub) -> None:
    gw = start_gateway(tmp_path, origin(upstream), "--sample-rate", "1")
    try:
        got = {}
        for name, base in [("direct", upstream.base_url.removesuffix("/v1")), ("gateway", gw.url)]:
            received = []
            with pytest.raises(httpx.RemoteProtocolError), httpx.Client(timeout=30) as c, \
                    c.stream("POST", f"{base}/v1/chat/completions", headers=AUTH,
                             json=body(f"Tell me more [[cut:3]] ({name})", stream=True)) as r:
                assert r.status_code == 200
                for piece in r.iter_raw():
                    received.append(piece)
            got[name] = b"".join(received).replace(b"(gateway)", b"(direct)")
        assert got["gateway"].count(b"data: ") == got["direct"].count(b"data: ") == 3
        assert gw.count("slam_gateway_streams_cut_total") == 1
        # A cut answer is not a pair to rate: sampled, not recorded, and the process lives on.
        assert exchange(gw.url, body("still there?"))[0] == 200
        gw.wait_for("slam_gateway_requests_recorded_total", 1)
        store = Store.open(gw.store_url)
        run = store.find_run("support-shadow", "week-49")
        assert [p["messages"][-1]["content"] for p in store.prompts(run.id)] == ["still there?"]
    finally:
        stop(gw.proc)


def test_the_realtime_apis_websocket_goes_through_untouched(tmp_path: Path,
                                                            upstream: Stub) -> None:
    """A Realtime API session is a WebSocket: the upgrade, the caller's key and every event go
    both ways through the gateway as they would direct; it is forwarded, never recorded, and a
    refused key is the incumbent's refusal."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    gw = start_gateway(tmp_path, origin(upstream), "--sample-rate", "1")
    try:
        ws_url = gw.url.replace("http://", "ws://") + "/v1/realtime?model=gpt-4o-realtime"
        with connect(ws_url, additional_headers=AUTH, open_timeout=30) as ws:
            hello = json.loads(ws.recv(timeout=30))
            assert hello == {"type": "session.created", "session": {"model": "gpt-4o-realtime"}}
            for i in range(3):
                event = {"type": "conversation.item.create", "n": i,
                         "item": {"content": [{"type": "input_text", "text": f"hi {i} ✓"}]}}
                ws.send(json.dumps(event))
                assert json.loads(ws.recv(timeout=30)) == {"type": "response.done",
                                                           "event": event}
        with pytest.raises(InvalidStatus) as refused:
            connect(ws_url, additional_headers={"Authorization": "Bearer sk-wrong"},
                    open_timeout=30)
        assert refused.value.response.status_code == 403
        assert gw.count("slam_gateway_requests_forwarded_total", code="101") == 1
        assert gw.count("slam_gateway_requests_forwarded_total", code="403") == 1
        assert gw.count("slam_gateway_requests_sampled_total") == 0
        # And plain requests still flow on the same gateway afterwards.
        assert exchange(gw.url, body("after the session"))[0] == 200
    finally:
        stop(gw.proc)
    assert STUB_API_KEY not in gw.log.read_text()


def test_sampled_traffic_is_stored_redacted_and_the_key_nowhere(tmp_path: Path,
                                                                upstream: Stub) -> None:
    gw = start_gateway(tmp_path, origin(upstream), "--sample-rate", "1", "--model", "gpt-4o",
                       "--exclude-user", "^internal-", "--redact", r"ORDER=ORD-\d{6}")
    try:
        planted = [sentence.format(p) for (p, _), sentence in
                   zip(PLANTED, SENTENCES * 5, strict=False)]
        for i, text in enumerate(planted):
            payload = body(f"{text} ORD-{i:06d} (case {i})", stream=i % 2 == 0,
                           user=f"customer-{i}")
            assert exchange(gw.url, payload)[0] == 200
        exchange(gw.url, body("not recorded", user="internal-qa"))
        exchange(gw.url, body("not recorded either", model="gpt-3.5-turbo"))
        # The same question from another customer, about another order: once redacted, the same
        # prompt, so it is not stored twice.
        exchange(gw.url, body(planted[1] + " ORD-999999 (case 1)", user="customer-again"))
        gw.wait_for("slam_gateway_requests_recorded_total", len(planted))
        gw.wait_for("slam_gateway_requests_dropped_total", 1, reason="duplicate")
        assert gw.count("slam_gateway_requests_sampled_total") == len(planted) + 1
    finally:
        stop(gw.proc)
    store = Store.open(gw.store_url)
    run = store.find_run("support-shadow", "week-49")
    assert run is not None and run.reference == "incumbent"
    assert [t["name"] for t in store.targets(run.id)] == ["incumbent"]
    prompts = store.prompts(run.id)
    assert len(prompts) == len(planted)
    texts = [p["messages"][-1]["content"] for p in prompts]
    assert all("[ORDER]" in t for t in texts)
    assert not any("not recorded" in t for t in texts)
    responses = {r["prompt_id"]: r for r in store.responses(run.id, "incumbent")}
    assert set(responses) == {p["prompt_id"] for p in prompts}
    for r in responses.values():
        assert r["text"].startswith(" tok0") and r["error_class"] is None
        assert r["e2e_ms"] > 0 and r["completion_tokens"] == 8 and r["status_code"] == 200
    streamed = [responses[p["prompt_id"]] for p, i in zip(prompts, range(len(planted)),
                                                           strict=True) if i % 2 == 0]
    assert all(r["ttft_ms"] is not None and r["ttft_ms"] <= r["e2e_ms"] for r in streamed)
    # Nothing planted, no key, no customer id in the store file or the log.
    raw = Path(gw.store_url.removeprefix("sqlite:///")).read_bytes()
    for wal in Path(gw.store_url.removeprefix("sqlite:///")).parent.glob("results.db-*"):
        raw += wal.read_bytes()
    log = gw.log.read_bytes()
    for secret in [STUB_API_KEY, "customer-3", *(p for p, _ in PLANTED)]:
        assert secret.encode() not in raw and secret.encode() not in log, secret


def test_store_down_costs_the_feature_nothing_and_is_counted(tmp_path: Path,
                                                             upstream: Stub) -> None:
    closed = free_port()  # nothing listens here: the store is down
    url = f"postgresql://slam:s3cret-pw@127.0.0.1:{closed}/results"
    gw = start_gateway(tmp_path, origin(upstream), "--sample-rate", "1", store_url=url)
    try:
        for i in range(20):
            status, _, raw = exchange(gw.url, body(f"question {i}", stream=i % 2 == 1))
            assert status == 200 and raw.count(b"tok") >= 8
        gw.wait_for("slam_gateway_requests_dropped_total", 20, reason="store_unavailable")
        assert gw.count("slam_gateway_requests_recorded_total") == 0
        assert gw.count("slam_gateway_requests_forwarded_total", code="200") == 20
    finally:
        stop(gw.proc)
    log = gw.log.read_text()
    assert "store unavailable" in log and "s3cret-pw" not in log


def test_a_full_queue_drops_and_counts_while_answers_keep_flowing(tmp_path: Path,
                                                                  upstream: Stub) -> None:
    db = tmp_path / "results.db"
    Store.open(f"sqlite:///{db}").close()
    gw = start_gateway(tmp_path, origin(upstream), "--sample-rate", "1", "--queue-size", "2")
    lock = sqlite3.connect(db, timeout=1)
    lock.execute("BEGIN EXCLUSIVE")  # the store is stuck: every write waits
    try:
        started = time.monotonic()
        for i in range(12):
            assert exchange(gw.url, body(f"question {i}"))[0] == 200
        answered_in = time.monotonic() - started
        # At most 2 wait (queued or gathered into the next batch) and a batch of at most 2 is
        # being written: the other 8 or more are dropped and counted.
        gw.wait_for("slam_gateway_requests_dropped_total", 8, reason="queue_full")
        assert answered_in < 30  # not waiting on the store's 60 s lock timeout
        lock.rollback()
        gw.wait_for("slam_gateway_requests_recorded_total", 1)
        deadline = time.monotonic() + 30
        while True:  # the last batch may still be on its way
            recorded = gw.count("slam_gateway_requests_recorded_total")
            dropped = gw.count("slam_gateway_requests_dropped_total", reason="queue_full")
            if recorded + dropped == 12 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert recorded + dropped == 12 and recorded <= 4, (recorded, dropped)
    finally:
        lock.close()
        stop(gw.proc)


def test_an_unreachable_incumbent_is_a_502_in_the_apis_error_shape(tmp_path: Path) -> None:
    gw = start_gateway(tmp_path, f"http://127.0.0.1:{free_port()}", "--sample-rate", "1")
    try:
        status, _, raw = exchange(gw.url, body("hello"))
        assert status == 502
        assert json.loads(raw)["error"]["code"] == "upstream_unreachable"
        assert gw.count("slam_gateway_requests_forwarded_total", code="502") == 1
    finally:
        stop(gw.proc)


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_lets_an_answer_in_flight_finish_and_writes_the_queue(tmp_path: Path,
                                                                      workers: int) -> None:
    slow = Stub(tmp_path / "slow", api_key=STUB_API_KEY, tokens=40, interval=0.05).start()
    try:
        # Kubernetes signals the container's first process only: with workers, the supervisor.
        gw = start_gateway(tmp_path, origin(slow), "--sample-rate", "1",
                           "--workers", str(workers))
        result: dict = {}

        def call() -> None:
            result["answer"] = exchange(gw.url, body("a long one", stream=True))

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.6)  # mid-stream (40 tokens, 50 ms apart)
        os.kill(gw.proc.pid, signal.SIGTERM)
        caller.join(30)
        assert gw.proc.wait(30) == 0
        status, _, raw = result["answer"]
        assert status == 200 and raw.rstrip().endswith(b"data: [DONE]")
        assert raw.count(b'" tok') == 40
        store = Store.open(gw.store_url)
        run = store.find_run("support-shadow", "week-49")
        [response] = store.responses(run.id)
        assert response["completion_tokens"] == 40
        assert "stopped" in gw.log.read_text()
    finally:
        slow.stop()


def test_a_sigterm_to_the_whole_group_is_a_clean_stop(tmp_path: Path, upstream: Stub) -> None:
    # A shell, `docker stop` of a tini-less image or a test harness signals the process group:
    # the proxy and the recorder both get SIGTERM, and the proxy often exits first.
    for attempt in range(2):
        gw = start_gateway(tmp_path, origin(upstream), "--sample-rate", "1",
                           name=f"gw-{attempt}")
        assert exchange(gw.url, body(f"hello {attempt}"))[0] == 200
        os.killpg(gw.proc.pid, signal.SIGTERM)
        assert gw.proc.wait(30) == 0, gw.log.read_text()[-2000:]
        log = gw.log.read_text()
        assert "Unknown child process" not in log and "exited with code" not in log, log


def test_passing_the_signal_on_leaves_the_proxys_exit_status_to_its_watcher() -> None:
    # The proxy has exited and is not reaped yet; the recorder passes a SIGTERM on. The exit
    # status must still be there for asyncio's child watcher (taking it made a clean stop end
    # with code 255 and an error line).
    proxy = subprocess.Popen([sys.executable, "-c", "raise SystemExit(0)"])
    deadline = time.monotonic() + 30
    while Path(f"/proc/{proxy.pid}/stat").read_text().split(") ")[1][0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    signal_child(proxy, signal.SIGTERM)
    pid, status = os.waitpid(proxy.pid, os.WNOHANG)
    assert pid == proxy.pid and os.waitstatus_to_exitcode(status) == 0


def test_the_daily_cap_models_and_users_decide_what_is_recorded(tmp_path: Path,
                                                                upstream: Stub) -> None:
    """Every request is forwarded; only eligible ones are recorded, at most the day's cap, on
    as many cores as the request path is given."""
    gw = start_gateway(tmp_path, origin(upstream), "--sample-rate", "1", "--daily-cap", "3",
                       "--model", "gpt-4o", "--user", "^cust-", "--exclude-user", "-test$",
                       "--workers", "2")
    try:
        assert httpx.get(f"{gw.url}/v1/models", headers=AUTH).status_code == 200
        for payload in [body("wrong model", model="gpt-4", user="cust-1"),
                        body("staff", user="staff-1"), body("no user"),
                        body("a test account", user="cust-2-test")]:
            assert exchange(gw.url, payload)[0] == 200
        for i in range(5):
            assert exchange(gw.url, body(f"question {i}", stream=i % 2 == 0,
                                         user=f"cust-{i}"))[0] == 200
        gw.wait_for("slam_gateway_requests_recorded_total", 3)
        assert gw.count("slam_gateway_requests_sampled_total") == 3  # the day's cap
        assert gw.count("slam_gateway_requests_forwarded_total", code="200") == 10
        assert gw.count("slam_gateway_added_latency_seconds_count") == 10
    finally:
        stop(gw.proc)
    store = Store.open(gw.store_url)
    run = store.find_run("support-shadow", "week-49")
    assert [p["messages"][-1]["content"] for p in store.prompts(run.id)] == [
        "question 0", "question 1", "question 2"]
    assert run.spec["sampling"] == {
        "rate": 1.0, "dailyCap": 3, "routes": [CHAT_ROUTE], "models": ["gpt-4o"],
        "users": "^cust-", "excludeUsers": "-test$"}


def test_a_request_path_that_dies_ends_the_gateway_clearly(tmp_path: Path,
                                                           upstream: Stub) -> None:
    """The request path is its own process (slam-gateway-proxy): if it dies, `slam gateway`
    exits non-zero saying so, and Kubernetes starts the container again."""
    gw = start_gateway(tmp_path, origin(upstream), "--sample-rate", "1")
    [proxy] = Path(f"/proc/{gw.proc.pid}/task/{gw.proc.pid}/children").read_text().split()
    assert Path(f"/proc/{proxy}/exe").resolve().name == "slam-gateway-proxy"
    # The recorder yields the CPU to the request path, never the other way round.
    assert exchange(gw.url, body("hello"))[0] == 200
    assert os.sched_getscheduler(int(proxy)) == os.sched_getscheduler(0)
    for task in Path(f"/proc/{gw.proc.pid}/task").iterdir():  # the writer's threads too
        assert os.sched_getscheduler(int(task.name)) == os.SCHED_IDLE
    os.kill(int(proxy), signal.SIGKILL)
    assert gw.proc.wait(30) == 1
    assert "slam-gateway-proxy) exited with code -9" in gw.log.read_text()


def test_a_port_already_taken_is_refused_clearly(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        out = subprocess.run(
            [SLAM, "gateway", "--upstream", "http://127.0.0.1:9", "--evaluation", "e",
             "--run-id", "1", "--host", "127.0.0.1", "--port", str(port),
             "--metrics-port", str(free_port()), "--workers", "2",
             "--store", f"sqlite:///{tmp_path / 'r.db'}"],
            capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    finally:
        taken.close()
    assert out.returncode == 1
    assert f"--port: cannot listen on 127.0.0.1:{port} (address already in use)" in out.stderr, \
        out.stderr


# --- an Evaluation of the recorded traffic ------------------------------------------------------


def recorded_evaluation(folder: Path, candidate: str, min_prompts: int) -> Path:
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    ev = {"apiVersion": "slam.dev/v1alpha1", "kind": "Evaluation",
          "metadata": {"name": "support-shadow"},
          "spec": {"runId": "week-49", "promptSet": {"recorded": {"minPrompts": min_prompts}},
                   "reference": "incumbent",
                   "targets": [{"name": "incumbent", "recorded": {"model": "gpt-4o"}},
                               {"name": "small", "concurrency": 2,
                                "external": {"baseUrl": candidate, "model": "small-model"}}],
                   "generation": {"maxTokens": 8, "timeoutSeconds": 5, "maxRetries": 1},
                   "cost": {"requestsPerDay": 10000}}}
    path = folder / "evaluation.yaml"
    path.write_text(yaml.safe_dump(ev))
    return path


def slam_run(manifest: Path, store_url: str) -> subprocess.CompletedProcess:
    return subprocess.run([SLAM, "run", str(manifest), "--store", store_url, "--no-progress"],
                          capture_output=True, text=True, cwd=REPO, timeout=300,
                          env={**os.environ, "COLUMNS": "200"})


def test_an_evaluation_replays_the_recorded_traffic_on_a_candidate(tmp_path: Path,
                                                                  upstream: Stub) -> None:
    """promptSet.recorded: the candidate answers the requests the gateway recorded, the
    incumbent's answers are the ones the feature got (it is never called again), and a later
    run of the same runId adds what the gateway recorded since."""
    candidate = Stub(tmp_path / "candidate", tokens=6).start()
    gw = start_gateway(tmp_path, origin(upstream), "--sample-rate", "1",
                       "--redact", r"ORDER=ORD-\d{6}")
    manifest = recorded_evaluation(tmp_path / "m", candidate.base_url, min_prompts=5)
    try:
        def record(first: int, last: int) -> None:
            for i in range(first, last):
                payload = body(f"Where is order ORD-{i:06d}? Question {i}.", stream=i % 2 == 0,
                               user=f"customer-{i}")
                assert exchange(gw.url, payload)[0] == 200
            gw.wait_for("slam_gateway_requests_recorded_total", last)

        record(0, 3)
        too_few = slam_run(manifest, gw.store_url)
        assert too_few.returncode != 0
        assert "spec.promptSet.recorded" in too_few.stderr
        assert "3 so far, fewer than minPrompts 5" in too_few.stderr
        assert sum(candidate.hits().values()) == 0  # nothing generated

        record(3, 6)
        feature_calls = sum(upstream.hits().values())
        out = slam_run(manifest, gw.store_url)
        assert out.returncode == 0, out.stderr
        assert "incumbent (ref)" in out.stdout and "small" in out.stdout
        assert "Recommendation:" in out.stdout
        assert sum(upstream.hits().values()) == feature_calls  # the incumbent is not called
        hits = candidate.hits()
        assert sum(hits.values()) == 6
        # The candidate got the redacted requests, never an order number.
        assert all("[ORDER]" in k and "ORD-" not in k for k in hits)

        store = Store.open(gw.store_url)
        run = store.find_run("support-shadow", "week-49")
        assert run.spec["promptSet"] == {"recorded": {"minPrompts": 5}}  # the Evaluation's now
        targets = {t["name"]: t for t in store.targets(run.id)}
        assert set(targets) == {"incumbent", "small"} and targets["incumbent"]["is_reference"]
        assert targets["incumbent"]["model"] == "gpt-4o"
        answers = {(r["target"], r["prompt_id"]): r for r in store.responses(run.id)}
        assert len(answers) == 12 and all(r["error_class"] is None for r in answers.values())
        assert all(r["text"].startswith(" tok0 tok1 tok2 tok3 tok4 tok5 tok6")
                   for (t, _), r in answers.items() if t == "incumbent")  # what the feature got
        assert store.progress(run.id) == (12, 0, 12)
        report = subprocess.run([SLAM, "report", "--store", gw.store_url, "--format", "json"],
                                capture_output=True, text=True, cwd=REPO, timeout=120)
        assert '"incumbent"' in report.stdout and '"small"' in report.stdout

        # The gateway records on; the same runId run again replays only the new requests.
        record(6, 8)
        again = slam_run(manifest, gw.store_url)
        assert again.returncode == 0, again.stderr
        assert sum(candidate.hits().values()) == 8
        assert store.progress(run.id) == (16, 0, 16)
        assert sum(upstream.hits().values()) == feature_calls + 2
    finally:
        stop(gw.proc)
        candidate.stop()


def test_a_hanging_candidate_costs_the_feature_nothing(tmp_path: Path, upstream: Stub) -> None:
    """The candidates answer off the request path: while a replay run waits on a candidate that
    does not answer, the feature's requests through the gateway are answered and recorded as
    before, and the candidate's requests end as timeouts, kept for a retry."""
    hanging = Stub(tmp_path / "hanging", first_token=60).start()
    gw = start_gateway(tmp_path, origin(upstream), "--sample-rate", "1")
    manifest = recorded_evaluation(tmp_path / "m", hanging.base_url, min_prompts=3)
    run = None
    try:
        for i in range(3):
            assert exchange(gw.url, body(f"Question {i}"))[0] == 200
        gw.wait_for("slam_gateway_requests_recorded_total", 3)
        run = subprocess.Popen([SLAM, "run", str(manifest), "--store", gw.store_url,
                                "--no-progress"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, cwd=REPO)
        deadline = time.monotonic() + 60
        while sum(hanging.hits().values()) < 2:  # the candidate is being waited on
            assert time.monotonic() < deadline and run.poll() is None
            time.sleep(0.1)
        for i in range(3, 9):
            status, _, raw = exchange(gw.url, body(f"Question {i}", stream=i % 2 == 0))
            assert status == 200 and b"tok0" in raw
        gw.wait_for("slam_gateway_requests_recorded_total", 9)
        out, _ = run.communicate(timeout=120)
        assert run.returncode == 1 and "every request to small failed" in out, out
        assert gw.count("slam_gateway_requests_forwarded_total", code="200") == 9
        assert sum(gw.count("slam_gateway_requests_dropped_total", reason=r) for r in (
            "queue_full", "store_unavailable", "too_large", "incumbent_error")) == 0
        store = Store.open(gw.store_url)
        rows = store.responses(store.find_run("support-shadow", "week-49").id, "small")
        assert len(rows) == 3 and all(r["error_class"] for r in rows)  # none answered
        assert "Timeout" in {r["error_class"] for r in rows}
    finally:
        if run is not None and run.poll() is None:
            run.kill()
        stop(gw.proc)
        hanging.stop()


def test_a_recorded_evaluation_on_a_store_that_does_not_answer_says_so(tmp_path: Path) -> None:
    """The recorded requests live in the store: a store that cannot be reached fails the run
    before anything is sent, naming the field and the store, never its password."""
    port = free_port()
    manifest = recorded_evaluation(tmp_path / "m", "http://127.0.0.1:9/v1", min_prompts=1)
    out = slam_run(manifest, f"postgresql+psycopg://slam:s3cret-pw@127.0.0.1:{port}/results")
    assert out.returncode != 0
    assert "spec.promptSet.recorded" in out.stderr and f"127.0.0.1:{port}" in out.stderr
    assert "s3cret-pw" not in out.stdout + out.stderr


def test_bad_gateway_settings_are_refused_before_it_listens(tmp_path: Path) -> None:
    """Every wrong setting is named at once, with how to write it; nothing is served."""
    out = subprocess.run(
        [SLAM, "gateway", "--upstream", "api.openai.com", "--evaluation", "e", "--run-id", "1",
         "--user", "customer-(", "--redact", "BAD=(", "--route", "v1/chat/completions",
         "--port", str(free_port()), "--metrics-port", str(free_port()),
         "--store", f"sqlite:///{tmp_path / 'r.db'}"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 1
    for said in ("--redact BAD: not a valid regular expression",
                 "--user: not a valid regular expression",
                 "--upstream 'api.openai.com': an http(s) origin, e.g. https://api.openai.com",
                 "--route 'v1/chat/completions': a path starting with /"):
        assert said in out.stderr, out.stderr
    assert not (tmp_path / "r.db").exists()  # refused before anything was opened


def test_each_exchange_of_a_batch_gets_its_own_outcome(tmp_path: Path) -> None:
    # The recorder's side of the Unix socket: the proxy sends what it sampled in batches; one
    # exchange it cannot use must cost that exchange alone, counted by its own reason.
    from aiohttp.test_utils import TestClient, TestServer

    from slam.gateway import Recording, _Writer, recorder_app
    from slam.redact import Redactor

    url = f"sqlite:///{tmp_path / 'results.db'}"
    writer = _Writer(Recording(store_url=url, evaluation="support-shadow", run_id="week-49"),
                     Redactor())

    def sampled(question: str, *, status: int = 200) -> dict:
        answer = {"id": "c", "object": "chat.completion", "created": CREATED, "model": "gpt-4o",
                  "choices": [{"index": 0, "finish_reason": "stop", "message": {
                      "role": "assistant", "content": f"About {question}: call me at "
                                                      "+44 20 7946 0958."}}],
                  "usage": {"prompt_tokens": 9, "completion_tokens": 7}}
        return {"request": body(question), "status": status,
                "body": base64.b64encode(json.dumps(answer).encode()).decode(),
                "streamed": False, "started_at": "2026-12-06T10:00:00.000000Z",
                "ttft_ms": None, "e2e_ms": 120.5}

    batch = [sampled("refunds"), {"status": 200}, sampled("returns", status=500),
             sampled("refunds"), sampled("invoices")]

    async def send() -> tuple[list, int]:
        async with TestClient(TestServer(recorder_app(writer))) as client:
            answered = await client.post("/exchanges", json=batch)
            refused = await client.post("/exchanges", data=b'{"request": ')
            return (await answered.json())["outcomes"], refused.status

    try:
        outcomes, refused = asyncio.run(send())
    finally:
        writer.close()
    assert outcomes == [None, "not_recordable", "incumbent_error", "duplicate", None]
    assert refused == 400
    store = Store.open(url)
    run = store.find_run("support-shadow", "week-49")
    assert run is not None
    assert [p["messages"][-1]["content"] for p in store.prompts(run.id)] == ["refunds", "invoices"]
    texts = [r["text"] for r in store.responses(run.id, "incumbent")]
    assert len(texts) == 2 and all("[PHONE]" in t and "7946" not in t for t in texts)
