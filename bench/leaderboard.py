"""Leaderboard data at scale: 50,000 responses and 10,000 ratings in a SQLite store.

    .venv/bin/python bench/leaderboard.py [--responses 50000] [--ratings 10000]

Times the dashboard's leaderboard data function (every query, the Bradley-Terry bootstraps and
the cost model) cold, then served from Streamlit's cache, against a baseline in the same run:
reading the same rows with one plain SELECT. Target: under 2 s cold (not asserted anywhere).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from sqlalchemy import text  # noqa: E402

from slam.generate import RequestRecord  # noqa: E402
from slam.promptsets import PromptItem, PromptSet  # noqa: E402
from slam.store import Store  # noqa: E402
from slam_dashboard import data, rating  # noqa: E402

TARGETS = [f"model-{i}" for i in range(10)]


def fill(url: str, n_responses: int, n_ratings: int) -> int:
    store = Store.open(url)
    n_prompts = n_responses // len(TARGETS)
    prompts = PromptSet("b", "b", tuple(PromptItem(f"p{i}", ({"role": "user", "content": "x"},))
                                        for i in range(n_prompts)))
    targets = [{"name": t, "kind": "modelDeployment", "model": t, "base_url": "http://x/v1",
                "is_reference": t == TARGETS[0], "concurrency": 4,
                "details": {"instanceType": "g5.xlarge", "replicas": 1}} for t in TARGETS]
    run = store.begin_run(evaluation="bench", run_id="1", reference=TARGETS[0], spec={},
                          targets=targets, prompts=prompts, total=n_responses)
    rng = np.random.default_rng(0)
    now = datetime.now(UTC)
    records = [RequestRecord(target=t, prompt_id=f"p{i}", sample=0, started_at=now, attempts=1,
                             ttft_ms=float(rng.gamma(2, 50)), e2e_ms=float(rng.gamma(4, 200)),
                             prompt_tokens=60, completion_tokens=int(rng.integers(20, 200)),
                             text="an answer of typical length " * 8)
               for t in TARGETS for i in range(n_prompts)]
    for start in range(0, len(records), 5000):
        store.save(run, records[start:start + 5000])
    strength = {t: i * 0.1 for i, t in enumerate(TARGETS)}
    for k in range(n_ratings):
        a, b = rng.choice(len(TARGETS), 2, replace=False)
        ta, tb = TARGETS[a], TARGETS[b]
        p = 1 / (1 + np.exp(strength[tb] - strength[ta]))
        item = rating.Item(f"p{k % n_prompts}", 0, *sorted((ta, tb)))
        assign = rating.Assignment(1, item, ta, tb)
        store.save_rating(rating.rating_row(f"rater-{k}", run, "bench", assign,
                                            "A" if rng.random() < p else "B"))
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--responses", type=int, default=50_000)
    ap.add_argument("--ratings", type=int, default=10_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        t0 = time.perf_counter()
        run = fill(url, args.responses, args.ratings)
        print(f"filled {args.responses:,} responses and {args.ratings:,} ratings in "
              f"{time.perf_counter() - t0:.1f} s")
        store = Store.open(url)
        t0 = time.perf_counter()
        with store.engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM responses")).all()
            conn.execute(text("SELECT * FROM ratings")).all()
        baseline = time.perf_counter() - t0
        t0 = time.perf_counter()
        table, basis, _, n = data.leaderboard(url, run)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        data.leaderboard(url, run)
        warm = time.perf_counter() - t0
        print(f"baseline: one SELECT of all {len(rows):,} responses and the ratings: "
              f"{baseline:.2f} s")
        print(f"leaderboard data, cold: {cold:.2f} s (target < 2 s; "
              f"{cold / baseline:.1f}x the bare read), cached: {warm * 1000:.1f} ms")
        print(f"ranked by {basis}; {n:,} ratings; top: {list(table['target'])[:3]}")


if __name__ == "__main__":
    main()
