"""What does the shadow gateway cost the feature? One run, one stub server, ratios to direct calls.

    .venv/bin/python bench/gateway.py [--quick] [--sample-rate 0.1] [--workers 2] [--pin]
                                      [--sections 1,2,3] [--streams 1,64] [--rounds 3]
                                      [--client go|python]
                                      [--stub go|python]

1. Added latency at 1 and 64 concurrent streams: the same streamed requests straight to the stub
   and through `slam gateway` (its Go request path, mirror on, recording into SQLite) with each
   `--workers` count (the cores it may use at once; its GOMAXPROCS is never below 2; one
   gateway per count, all running; "gw-2" is --workers 2), rounds interleaved. Prints TTFT
   and end-to-end p50/p99 both ways, the TTFT p50 ratio (target <= 1.02), the client-side p99
   difference, and the gateway's own added-latency histogram p99 (target <= 2 ms). The stub
   stamps its first token with the time the request reached its handler and the time it sent
   the token (CLOCK_MONOTONIC, one machine), so each request's two legs are printed apart from
   the stub's own first-token jitter: the request's way in (the client's send to the stub's
   handler: the proxy's accept, read and forward) and the first token's way out (the stub's
   write to the client's read: loopback, the proxy, the client's wake-up); their p99
   differences are the added latency least disturbed by the rest of the machine. A client's
   first request on each connection also pays for opening it; the TTFT on kept-alive
   connections (the streams' steady state, what the targets are for) and that of a new
   connection's first request are printed apart. Each round is a fresh client process, so at 64
   streams the 64 connections open together, after the proxy sat idle for the other paths'
   rounds.
2. 500 requests/s: constant-rate arrivals for a few seconds, both ways, the same figures.
3. The highest rate forwarded with the mirror on: rising constant rates through the gateway; a
   rate is forwarded when every request succeeds, the achieved rate is >= 95% of it and the
   TTFT p99 stays within 10% of the stub's first-token time, in one of two windows.

The stub streams its tokens from its own process: `loadgen --serve` (Go, the default) or with
`--stub python` the tests' stand-in (tests/fakes/openai_stub.py), which at 500 requests/s writes
9,000 chunks a second in Python on the core the client also needs. The client is bench/loadgen
(Go, built here with the Go toolchain that builds the gateway), or with `--client python` (or
without Go) an aiohttp loop in this process, which at 500 requests/s is busy enough that its
own waits show in every path's p99. On a 2-core machine the stub, the
gateway and the client share the cores, so the figures are a floor. `--pin` puts the client
and the stub on the first core and the proxies (each gateway with its recorder, nginx) on the
second (taskset / sched_setaffinity; `--workers 1` unless given): the proxy then has a core to
itself, as it would in its own pod, and the direct path pays the same client and stub costs.
Nothing here asserts: numbers are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402
import httpx  # noqa: E402
import numpy as np  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from tests.controlplane.cluster import free_port  # noqa: E402
from tests.servers import Stub, spawn, stop, wait_http  # noqa: E402

SLAM = str(Path(sys.executable).parent / "slam")
SENT = iter(range(10**9))


def body() -> str:
    """A distinct request each time, so the mirror records rather than skipping duplicates."""
    return json.dumps({"model": "gpt-4o", "stream": True, "max_tokens": 16, "messages": [
        {"role": "user", "content": f"Write a pep talk for Maya, number {next(SENT)}."}]})


SENT_AT = re.compile(rb": sent (\d+)")
RECEIVED_AT = re.compile(rb": received (\d+)")


FIELDS = ("ttft_ms", "e2e_ms", "delivery_ms", "request_ms", "new_connection")


async def measure(base: str, n: int, concurrency: int | None = None, rate: float | None = None
                  ) -> dict:
    """n streamed requests, by concurrency or rate: each one's TTFT and end-to-end time, its
    first token's delivery (the stub's write to this client's read), its request's way in (this
    client's send to the stub's handler; both -1 when the stub did not stamp) and whether it went
    on a connection opened for it (ms; lists aligned), then the failures and seconds taken."""
    out: dict = {f: [] for f in FIELDS} | {"failures": 0}
    trace = aiohttp.TraceConfig()

    async def opened(_session, ctx, _params) -> None:
        ctx.trace_request_ctx["new"] = True
    trace.on_connection_create_end.append(opened)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, trace_configs=[trace]) as session:
        async def one() -> None:
            start = time.perf_counter()
            start_ns = time.monotonic_ns()
            conn = {"new": False}
            delivery = request = -1.0
            try:
                async with session.post(f"{base}/v1/chat/completions", data=body(),
                                        headers={"Content-Type": "application/json"},
                                        trace_request_ctx=conn) as r:
                    first = None
                    async for data in r.content.iter_any():
                        if first is None:
                            first = time.perf_counter()
                            read_ns = time.monotonic_ns()
                            if sent := SENT_AT.search(data):
                                delivery = (read_ns - int(sent.group(1))) / 1e6
                            if received := RECEIVED_AT.search(data):
                                request = (int(received.group(1)) - start_ns) / 1e6
                    if r.status != 200 or first is None:
                        out["failures"] += 1
                        return
            except aiohttp.ClientError:
                out["failures"] += 1
                return
            end = time.perf_counter()
            for field, value in zip(FIELDS, ((first - start) * 1000, (end - start) * 1000,
                                             delivery, request, conn["new"]), strict=True):
                out[field].append(value)

        began = time.perf_counter()
        if rate is not None:
            tasks = []
            for i in range(n):
                delay = began + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one()))
            await asyncio.gather(*tasks)
        else:
            assert concurrency is not None
            queue = iter(range(n))

            async def worker() -> None:
                for _ in queue:
                    await one()

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        out["seconds"] = time.perf_counter() - began
        return out


CLIENT: str | None = None  # bench/loadgen's binary, when built


def build_loadgen() -> str | None:
    go = shutil.which("go")  # as gateway/build.sh finds it
    if go is None:
        print("(Go not found: the aiohttp client measures instead)")
        return None
    out = Path(tempfile.gettempdir()) / f"slam-bench-loadgen-{os.getuid()}"
    subprocess.run([go, "build", "-o", str(out), "."], check=True,
                   cwd=Path(__file__).parent / "loadgen", env={**os.environ, "CGO_ENABLED": "0"})
    return str(out)


class GoStub:
    """`loadgen --serve`: the stand-in's streamed answers (stub.go), in this process's cores."""

    def __init__(self, workdir: Path, tokens: int, interval: float, first_token: float) -> None:
        self.workdir, self.port, self.proc = workdir, free_port(), None
        self.cmd = [CLIENT, "--serve", f"127.0.0.1:{self.port}", "--tokens", str(tokens),
                    "--interval", f"{interval * 1000:g}ms",
                    "--first-token", f"{first_token * 1000:g}ms", "--stamp"]

    def start(self) -> GoStub:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.workdir / f"stub-{self.port}.log"
        self.proc = spawn(self.cmd, log, marker=self.workdir)
        wait_http(f"http://127.0.0.1:{self.port}/v1/models", self.proc, log, timeout=30)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


def run_client(base: str, n: int, concurrency: int | None = None, rate: float | None = None
               ) -> dict:
    """measure(), by bench/loadgen when it is built (a subprocess on this process's core)."""
    if CLIENT is None:
        return asyncio.run(measure(base, n, concurrency=concurrency, rate=rate))
    how = ["--rate", str(rate)] if rate is not None else ["--concurrency", str(concurrency)]
    first, *_ = itertools.islice(SENT, n)  # n numbers taken, so bodies stay distinct
    out = subprocess.run([CLIENT, "--url", base, "--n", str(n), "--first", str(first), *how],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def gateway_added_p99(metrics_port: int) -> tuple[float, int]:
    """p99 (ms, upper bucket bound) and count of the gateway's own added-latency histogram."""
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    buckets = []
    for family in text_string_to_metric_families(text):
        if family.name == "slam_gateway_added_latency_seconds":
            for s in family.samples:
                if s.name.endswith("_bucket"):
                    buckets.append((float(s.labels["le"]), s.value))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0
    for bound, count in buckets:
        if total and count >= 0.99 * total:
            return bound * 1000, int(total)
    return float("nan"), int(total)


def compare(label: str, bases: dict[str, str], metrics_ports: dict[str, int], rounds: int,
            **how) -> None:
    """Interleaved rounds straight to the stub and through each proxy; figures per path."""
    before = {name: gateway_added_p99(port)[1] for name, port in metrics_ports.items()}
    got: dict[str, dict] = {name: {f: [] for f in FIELDS} | {"failures": 0} for name in bases}
    for _ in range(rounds):  # interleaved, so drift in the machine's load hits all alike
        for name, base in bases.items():
            r = run_client(base, **how)
            for field in (*FIELDS, "failures"):
                got[name][field] += r[field]
    print(f"{label}: " + ", ".join(f"{name} {len(got[name]['ttft_ms'])} "
                                   f"({got[name]['failures']} failed)" for name in bases))
    d = "direct"

    def added(name: str, times: dict[str, list[float]]) -> str:
        return (f"added p50 {p(times[name], 50) - p(times[d], 50):+.2f} ms p99 "
                f"{p(times[name], 99) - p(times[d], 99):+.2f} ms")

    def row(name: str, times: dict[str, list[float]], width: int = 6) -> str:
        line = f"ms p50 {p(times[name], 50):{width}.2f} p99 {p(times[name], 99):{width}.2f}"
        return line + (f"   {added(name, times)}" if name != d else "")

    ttft = {name: got[name]["ttft_ms"] for name in bases}
    e2e = {name: got[name]["e2e_ms"] for name in bases}
    for name in bases:
        line = (f"  {name:8s} TTFT ms p50 {p(ttft[name], 50):7.2f} p99 {p(ttft[name], 99):7.2f}"
                f"   e2e ms p50 {p(e2e[name], 50):7.2f} p99 {p(e2e[name], 99):7.2f}")
        if name != d:
            line += (f"   TTFT p50 ratio {p(ttft[name], 50) / p(ttft[d], 50):.3f}, "
                     f"{added(name, ttft)}")
        print(line)
    for leg, field in (("request, client's send to stub's handler", "request_ms"),
                       ("first token, stub's write to client's read", "delivery_ms")):
        times = {name: [t for t in got[name][field] if t >= 0] for name in bases}
        for name in bases:
            print(f"  {name:8s} {leg}: {row(name, times)}")
    # A client's first request on each connection also pays for opening it (the proxy accepts,
    # reads and forwards a burst of them when the streams start together): shown apart from
    # the kept-alive requests when a run has both.
    new: dict[str, list[float]] = {name: [] for name in bases}
    kept: dict[str, list[float]] = {name: [] for name in bases}
    for name in bases:
        for t, fresh in zip(got[name]["ttft_ms"], got[name]["new_connection"], strict=True):
            (new if fresh else kept)[name].append(t)
    if all(new.values()) and all(kept.values()):
        for name in bases:
            print(f"  {name:8s} TTFT on kept-alive connections ({len(kept[name])}): "
                  f"{row(name, kept, 7)}")
        for name in bases:
            print(f"  {name:8s} TTFT, a new connection's first request ({len(new[name])}): "
                  f"{row(name, new, 7)}")
    for name, port in metrics_ports.items():
        added, count = gateway_added_p99(port)
        print(f"  {name}'s own added latency (its histogram): p99 <= {added:.2f} ms over "
              f"{count - before[name]} requests (target <= 2 ms; TTFT ratio target <= 1.02)")


NGINX_CONF = """
worker_processes 1;
daemon off;
master_process off;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {work}/nginx-body;
    proxy_temp_path {work}/nginx-proxy;
    upstream incumbent {{ server 127.0.0.1:{stub_port}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://incumbent;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
}}
"""


def start_nginx(work: Path, stub_port: int, prefix: list[str]
                ) -> tuple[subprocess.Popen | None, str | None]:
    """nginx as a plain streaming reverse proxy, one worker process."""
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists()
                                       else None)
    if binary is None:
        print("(nginx not installed: `apt-get install nginx-light` to compare with it)")
        return None, None
    port = free_port()
    conf = work / "nginx.conf"
    conf.write_text(NGINX_CONF.format(work=work, stub_port=stub_port, port=port))
    proc = subprocess.Popen([*prefix, binary, "-c", str(conf), "-p", str(work)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/v1/models", timeout=1)
            return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    print("(nginx did not start; see nginx-error.log)")
    return None, None


def highest_rate(gw_base: str, rates: list[int], seconds: float, first_token_ms: float,
                 tries: int = 2) -> int:
    """The highest rate at which every request succeeds, the sender keeps up (>= 95%) and the
    TTFT p99 stays within 10% of the incumbent's own first-token time (nothing queues). A rate
    gets `tries` windows: on a shared machine one window can meet another process's burst, so
    a rate fails when every window fails."""
    best = 0
    for rate in rates:
        n = int(rate * seconds)
        ok = False
        for attempt in range(1, tries + 1):
            r = run_client(gw_base, n, rate=rate)
            ttfts, failures, took = r["ttft_ms"], r["failures"], r["seconds"]
            achieved = n / max(took - p(ttfts, 50) / 1000, 1e-9)
            ok = (failures == 0 and achieved >= 0.95 * rate
                  and p(ttfts, 99) <= 1.1 * first_token_ms)
            print(f"  {rate:5d}/s (window {attempt}): achieved {achieved:7.1f}/s, failed "
                  f"{failures}, TTFT p50 {p(ttfts, 50):.2f} ms p99 {p(ttfts, 99):.2f} ms "
                  f"{'ok' if ok else 'NOT forwarded'}")
            if ok:
                break
        if not ok:
            break
        best = rate
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds and rates (a smoke run)")
    ap.add_argument("--sample-rate", type=float, default=0.1,
                    help="share of requests the mirror records (default 0.1)")
    ap.add_argument("--workers", default=None,
                    help="the gateway's --workers, one gateway per comma-separated count "
                         "(default 2; with --pin 1: the one core the proxies get; its "
                         "GOMAXPROCS is 2 either way, Go's floor)")
    ap.add_argument("--incumbent-ttft-ms", type=float, default=250.0,
                    help="the stub's time to first token (a hosted API's is 200-600 ms)")
    ap.add_argument("--pin", action="store_true",
                    help="client and stub on core 0, the proxies on core 1 (needs 2 cores)")
    ap.add_argument("--client", choices=["go", "python"], default="go",
                    help="the load client: bench/loadgen (Go; the default) or aiohttp")
    ap.add_argument("--stub", choices=["go", "python"], default="go",
                    help="the incumbent stand-in: loadgen --serve (Go; the default) or the "
                         "tests' Python one")
    ap.add_argument("--rounds", type=int, default=None,
                    help="interleaved rounds per comparison (default 3, --quick 1); more rounds "
                         "pool more of the machine's minutes into each p99")
    ap.add_argument("--sections", default="1,2,3",
                    help="which of the three parts to run (e.g. 2 for 500/s alone)")
    ap.add_argument("--streams", default="1,64",
                    help="part 1's concurrent stream counts (default 1,64)")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    try:
        streams_counts = [int(n) for n in args.streams.split(",")]
    except ValueError:
        streams_counts = []
    if not streams_counts or min(streams_counts) < 1:
        ap.error(f"--streams {args.streams}: comma-separated counts of at least 1 (e.g. 64)")
    if not sections <= {"1", "2", "3"}:
        ap.error(f"--sections {args.sections}: comma-separated parts 1, 2 and 3 (e.g. 2)")
    global CLIENT
    if args.client == "go":
        CLIENT = build_loadgen()
    print(f"client: {CLIENT or 'aiohttp (this process)'}")
    if args.rounds is not None and args.rounds < 1:
        ap.error(f"--rounds {args.rounds}: at least 1")
    rounds = args.rounds or (1 if args.quick else 3)
    proxy_prefix: list[str] = []
    if args.pin:
        if len(os.sched_getaffinity(0)) < 2:
            ap.error("--pin needs two cores")
        first, second, *_ = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {first})  # this process: the client (the stub inherits it)
        proxy_prefix = ["taskset", "-c", str(second)]
        args.workers = args.workers or "1"
        print(f"pinned: client and stub on core {first}, proxies on core {second}")
    args.workers = args.workers or "2"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.stub == "go" and CLIENT is not None:
            stub = GoStub(work / "stub", tokens=16, interval=0.002,
                          first_token=args.incumbent_ttft_ms / 1000).start()
        else:
            stub = Stub(work / "stub", tokens=16, interval=0.002,
                        first_token=args.incumbent_ttft_ms / 1000, stamp=True).start()
        print(f"stub: {'loadgen --serve (Go)' if isinstance(stub, GoStub) else 'Python'}")
        gateways = {}  # name -> (process, port, metrics port, log)
        for count in [int(w) for w in args.workers.split(",")]:
            port, metrics_port = free_port(), free_port()
            log = work / f"gateway-{count}.log"
            proc = spawn([*proxy_prefix, SLAM, "gateway", "--upstream", f"http://127.0.0.1:{stub.port}",
                          "--evaluation", "bench", "--run-id", f"bench-{count}",
                          "--host", "127.0.0.1", "--port", str(port),
                          "--metrics-port", str(metrics_port), "--workers", str(count),
                          "--store", f"sqlite:///{work / f'results-{count}.db'}",
                          "--sample-rate", str(args.sample_rate), "--queue-size", "10000"],
                         log, marker=work)
            gateways[f"gw-{count}"] = (proc, port, metrics_port, log)
        nginx, nginx_base = start_nginx(work, stub.port, proxy_prefix)
        try:
            for proc, _, metrics_port, log in gateways.values():
                wait_http(f"http://127.0.0.1:{metrics_port}/healthz", proc, log, timeout=60)
            bases = {"direct": f"http://127.0.0.1:{stub.port}"}
            bases |= {name: f"http://127.0.0.1:{g[1]}" for name, g in gateways.items()}
            metrics_ports = {name: g[2] for name, g in gateways.items()}
            if nginx_base:
                bases["nginx"] = nginx_base
            for base in bases.values():  # warm every path
                run_client(base, 64, concurrency=16)
            print(f"stub: first token after {args.incumbent_ttft_ms:.0f} ms, then 16 tokens 2 ms "
                  f"apart; mirror on: {args.sample_rate:.0%} of requests recorded into SQLite\n")
            if "1" in sections:
                print("1. Added latency")
                for streams in streams_counts:
                    per_stream = 40 if args.quick else 100 if streams == 1 else 30
                    compare(f"concurrency {streams}", bases, metrics_ports, rounds,
                            n=streams * (10 if args.quick and streams > 1 else per_stream),
                            concurrency=streams)
            if "2" in sections:
                print("\n2. 500 requests/s")
                compare("constant 500/s", bases, metrics_ports, rounds,
                        n=1000 if args.quick else 2500, rate=500)
            if "3" in sections:
                print("\n3. Highest rate forwarded")
                rates = [250, 500, 1000] if args.quick else [250, 500, 750, 1000, 1500, 2000,
                                                            3000]
                for name, base in bases.items():
                    if name == "direct":
                        continue
                    print(f" {name}{' (mirror on)' if name in gateways else ''}:")
                    best = highest_rate(base, rates, 2.0 if args.quick else 4.0,
                                        args.incumbent_ttft_ms)
                    print(f"  highest rate forwarded: {best}/s")
            for name, (_, _, metrics_port, _) in gateways.items():
                metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
                mirror = [line for line in metrics.splitlines()
                          if line.startswith(("slam_gateway_requests_recorded_total",
                                              "slam_gateway_requests_dropped_total"))
                          and float(line.rsplit(" ", 1)[1]) != 0]
                print(f"  {name}'s mirror: " + "; ".join(mirror))
        finally:
            for proc, *_ in gateways.values():
                stop(proc)
            if nginx is not None:
                nginx.terminate()
                nginx.wait(10)
            stub.stop()


if __name__ == "__main__":
    main()
