"""`make demo`'s command on the two real small models (two prompts, to keep it short)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from slam.store import Store
from tests.controlplane.cluster import REPO

SLAM = str(Path(sys.executable).parent / "slam")


def llama_servers(alias: str) -> list[int]:
    found = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                cmd = (p / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"llama_cpp.server" in cmd and alias.encode() in cmd:
                found.append(int(p.name))
    return found


def test_demo_serves_both_models_and_resumes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    env = {**os.environ, "COLUMNS": "200"}
    first = subprocess.run([SLAM, "demo", "--limit", "2", "--store", url], capture_output=True,
                           text=True, env=env, cwd=REPO, timeout=600)
    assert first.returncode == 0, first.stderr
    assert "serving smollm2-135m" in first.stderr and "serving gemma3-270m" in first.stderr
    out = first.stdout
    # quality (ranked), latency and cost tables, and a recommendation
    for title in ("Quality", "Latency (ms, successful requests)", "Cost"):
        assert f"pep-talk-local run 1: {title}" in out
    assert "Ranked by similarity." in out
    assert "smollm2 (ref)" in out and "gemma3" in out and out.count("│ 2/2 ") == 2
    assert "c7i.xlarge × 1: bundled table" in out and "$/1k requests at the SLO" in out
    # Each model's capacity at the example's SLO, searched alone after generation (issue 29).
    for name in ("smollm2", "gemma3"):
        assert f"capacity {name}: concurrency 1, 8 requests" in first.stderr
        assert f"{name}: goodput at the SLO (TTFT ≤ 3000 ms, e2e ≤ 15000 ms" in out
    assert "measured alone" in out and "always-on $" in out
    log = first.stderr
    assert log.index("capacity smollm2") > log.index("progress gemma3 2/2")  # after generation
    assert log.index("capacity gemma3") > log.rindex("capacity smollm2")  # one at a time
    assert "Recommendation:" in out
    store = Store.open(url)
    run = store.find_run("pep-talk-local")
    rows = store.responses(run.id)
    assert len(rows) == 4 and all(r["text"].strip() and r["ttft_ms"] for r in rows)
    sims = store.scores(run.id, "similarity")
    assert len(sims) == 4 and all(0 < s["score"] <= 1 for s in sims)  # hand-written references
    assert store.judgments(run.id) == []  # no judge in the local example
    assert llama_servers("gemma-3-270m") == [], "the demo's llama.cpp servers must stop with it"
    probes = store.capacity_probes(run.id)
    assert {p["target"] for p in probes} == {"smollm2", "gemma3"}
    again = subprocess.run([SLAM, "demo", "--limit", "2", "--store", url], capture_output=True,
                           text=True, env=env, cwd=REPO, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "0 requests sent (0 failed), 4 already stored" in " ".join(again.stderr.split())
    # The finished searches are not measured again.
    assert "capacity smollm2:" not in again.stderr
    assert len(store.capacity_probes(run.id)) == len(probes)
