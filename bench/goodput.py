"""Goodput at an SLO: our capacity search against GuideLLM's goodput profile, same server, same run.

    .venv/bin/python bench/goodput.py [--requests N] [--max-tokens T]

One llama.cpp server (SmolLM2-135M-Instruct, the test fixture's build) serves both tools in turn,
pinned to the second core with one thread; both tools run on the first core. (Unpinned, on two
cores, GuideLLM's worker processes take CPU from the server: its goodput came out at half ours.)
A calibration at concurrency 1 gives one request's e2e latency E; then, for SLOs on e2e latency
of 8 E, 2.5 E and 1.3 E (95% of requests), each tool searches for the highest concurrency that
meets it (start 1, double, bisect; at most 6 levels up to 8; N requests a level) and reports its
goodput there. A last SLO of 0.7 E is below one request's own p95: met at no level, goodput 0.
GuideLLM 0.8.1 runs from its own virtual environment (bench/peer.py).

Printed: each tool's highest passing concurrency and goodput per SLO, and the ratio ours /
GuideLLM. They agree when the passing levels are equal or one search step apart (the searches
bisect to the nearest level; on a server that answers one request at a time, neighbouring
levels are near the threshold by construction). Goodput should fall as the SLO tightens.
Nothing here asserts.

Workload: both ask for T output tokens and get them, every request with a prompt of its own. Ours
sends chat requests (16 random words and "Write a long story about these."); GuideLLM sends text
completions of its synthetic text of about the same length (its chat requests carry content as a
list of parts, which llama.cpp's Python server refuses).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import peer  # noqa: E402
from slam import goodput  # noqa: E402
from slam.generate import Endpoint, GenerationParams  # noqa: E402
from slam.loadgen import Work, drive  # noqa: E402
from slam.promptsets import PromptItem  # noqa: E402
from tests.servers import free_port, smollm2_path, spawn, stop, wait_http  # noqa: E402

# Every request a different prompt, as GuideLLM's synthetic data: llama.cpp keeps the last
# prompt's KV cache, so one prompt sent again and again skips its prefill and overstates what
# the server sustains (by about 40% here at concurrency 2: 1.7 vs 1.2 requests/s).
WORDS = ["apple", "river", "stone", "cloud", "piano", "tiger", "lemon", "candle", "forest",
         "rocket", "silver", "garden", "window", "marble", "harbor", "violet", "engine",
         "meadow", "lantern", "copper"]
RNG = random.Random(0)
PROMPTS = [PromptItem(f"p{i}", ({"role": "user", "content": " ".join(
    RNG.choice(WORDS) for _ in range(16)) + ". Write a long story about these."},))
    for i in range(256)]


def ours(endpoint: Endpoint, slo: goodput.Slo, search: goodput.Search, max_tokens: int
         ) -> goodput.Capacity:
    params = GenerationParams(max_tokens=max_tokens, temperature=0.0, max_retries=0,
                              timeout_seconds=300)
    probes = asyncio.run(goodput.measure(endpoint, PROMPTS, params, slo, search))
    return goodput.outcome(probes, slo, search)


def theirs(base_url: str, alias: str, slo: goodput.Slo, search: goodput.Search,
           max_tokens: int, prompt_tokens: int) -> list[dict]:
    """GuideLLM's goodput profile: one dict per probe (streams, attainment, goodput, passed)."""
    exe = peer.ensure_guidellm()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "guidellm.json"
        objectives = {k: v for k, v in (("ttft_ms", slo.ttft_ms), ("tpot_ms", slo.tpot_ms),
                                        ("e2el_ms", slo.e2e_ms)) if v is not None}
        cmd = [
            "taskset", "-c", "0", str(exe), "run",
            "--backend", f"kind=openai_http,target={base_url.removesuffix('/v1')},model={alias},"
                           "validate_backend=false,request_format=/v1/completions",
            "--profile", f"kind=goodput,initial_streams={search.initial},"
                         f"max_streams={search.max_concurrency},max_probes={search.max_probes},"
                         f"tolerance={search.tolerance},target_attainment={slo.attainment}",
            "--metrics", json.dumps({"kind": "generative", "slo": objectives}),
            "--constraint", f"kind=max_requests,count={search.requests_per_probe}",
            "--data", f"kind=synthetic_text,prompt_tokens={prompt_tokens},"
                      f"output_tokens={max_tokens}",
            "--tokenizer", f"kind=huggingface_auto,model={peer.tokenizer_dir()}",
            "--output", f"kind=json,path={out}",
            "--disable-console",
        ]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        done = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"guidellm failed ({done.returncode}):\n{done.stderr[-3000:]}")
        doc = json.loads(out.read_text())
    probes = []
    for b in doc["benchmarks"]:
        metrics = b["metrics"]
        rate = (metrics.get("request_goodput") or {}).get("successful") or {}
        attainment = metrics.get("slo_attainment")
        # The same requests, counted our way: conforming / (first start to last end).
        timings = [r["info"]["timings"] for r in b["requests"]["successful"]]
        window = (max(t["request_end"] for t in timings)
                  - min(t["request_start"] for t in timings)) if timings else 0.0
        good = sum((t["request_end"] - t["request_start"]) * 1000 <= (slo.e2e_ms or math.inf)
                   for t in timings)
        prompt = (metrics.get("prompt_token_count") or {}).get("successful") or {}
        probes.append({"streams": b["config"]["strategy"]["streams"],
                       "prompt_tokens": prompt.get("mean"),
                       "attainment": attainment, "goodput": rate.get("mean") or 0.0,
                       "ours_of_theirs": good / window if window else 0.0,
                       "passed": attainment is not None and attainment >= slo.attainment})
    return probes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=12, help="requests per load level")
    ap.add_argument("--max-tokens", type=int, default=24, help="output tokens per request")
    args = ap.parse_args()
    search = goodput.Search(initial=1, max_concurrency=8, max_probes=6,
                            requests_per_probe=args.requests, tolerance=0.1)
    os.sched_setaffinity(0, {0})
    alias = "smollm2-135m-instruct"
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        log = Path(tmp) / "llama.log"
        proc = spawn(["taskset", "-c", "1", sys.executable, "-m", "llama_cpp.server",
                      "--model", str(smollm2_path()), "--model_alias", alias, "--host",
                      "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "1",
                      "--interrupt_requests", "False"], log, marker=Path(tmp))
        base_url = f"http://127.0.0.1:{port}/v1"
        try:
            wait_http(f"{base_url}/models", proc, log, timeout=120)
            endpoint = Endpoint("smol", base_url, alias)
            records: list = []
            asyncio.run(drive(endpoint, [Work(p, 0) for p in PROMPTS[-8:]], GenerationParams(
                max_tokens=args.max_tokens, temperature=0.0, max_retries=0, timeout_seconds=300),
                concurrency=1, on_record=records.append))
            e = float(np.percentile([r.e2e_ms for r in records], 95))
            tokens = np.mean([r.completion_tokens or 0 for r in records])
            # GuideLLM's synthetic prompts as long as ours are once the chat template is
            # applied (the server's count), so both tools ask the server for the same work.
            prompt_tokens = round(float(np.mean([httpx.post(
                f"{base_url}/chat/completions", timeout=120, json={
                    "model": alias, "messages": list(p.messages), "max_tokens": 1,
                }).json()["usage"]["prompt_tokens"] for p in PROMPTS[:4]])))
            print(f"calibration: one request at a time, e2e p95 {e:.0f} ms, "
                  f"{tokens:.1f} output tokens (max_tokens {args.max_tokens}), {prompt_tokens} "
                  "prompt tokens", flush=True)
            print(f"{'SLO (e2e, 95%)':>16} {'tool':>9} {'levels':>18} {'best':>5} "
                  f"{'goodput/s':>9} {'wall s':>6}")
            for mult in (8.0, 2.5, 1.3, 0.7):
                slo = goodput.Slo(e2e_ms=round(mult * e), attainment=0.95)
                t0 = time.perf_counter()
                mine = ours(endpoint, slo, search, args.max_tokens)
                t1 = time.perf_counter()
                gl = theirs(base_url, alias, slo, search, args.max_tokens, prompt_tokens)
                t2 = time.perf_counter()
                gl_best = max((p for p in gl if p["passed"]), key=lambda p: p["streams"],
                              default=None)
                label = f"{slo.e2e_ms:.0f} ms ({mult:g}E)"
                print(f"{label:>16} {'ours':>9} "
                      f"{','.join(str(p.concurrency) for p in mine.probes):>18} "
                      f"{mine.best.concurrency if mine.best else 0:>5} "
                      f"{mine.goodput_rps:>9.2f} {t1 - t0:>6.1f}", flush=True)
                print(f"{'':>16} {'GuideLLM':>9} "
                      f"{','.join(str(p['streams']) for p in gl):>18} "
                      f"{gl_best['streams'] if gl_best else 0:>5} "
                      f"{gl_best['goodput'] if gl_best else 0.0:>9.2f} {t2 - t1:>6.1f}")
                ratio = (mine.goodput_rps / gl_best["goodput"]) if gl_best and \
                    gl_best["goodput"] else float("nan")
                step = abs((mine.best.concurrency if mine.best else 0)
                           - (gl_best["streams"] if gl_best else 0))
                if gl_best:
                    print(f"{'':>16} GuideLLM's requests at its best level ("
                          f"{gl_best['prompt_tokens'] or 0:.0f} prompt tokens), counted as ours "
                          f"counts (conforming / first start to last end): "
                          f"{gl_best['ours_of_theirs']:.2f}/s", flush=True)
                print(f"{'':>16} ours / GuideLLM goodput x{ratio:.2f}; best levels "
                      f"{'agree' if step == 0 else f'{step} apart'}", flush=True)
        finally:
            stop(proc)


if __name__ == "__main__":
    main()
