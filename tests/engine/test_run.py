"""Whole runs: the runner and `slam run` against the stub, resume after SIGKILL, bad input."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from slam import secrets
from slam.api.common import SecretKeyRef
from slam.generate import Endpoint, GenerationParams
from slam.loadgen import Arrival
from slam.promptsets import PromptItem, PromptSet
from slam.runner import RunPlan, TargetRun, execute
from slam.store import Store
from tests.conftest import STUB_API_KEY
from tests.controlplane.cluster import REPO
from tests.servers import Stub

SLAM = str(Path(sys.executable).parent / "slam")
KEY_REF = SecretKeyRef(name="openai-api-key", key="api-key")
FAILURES = ["[[500:1]]", "[[429:1]]", "[[hang]]", "[[cut:2]]", "[[badjson]]", "[[empty]]",
            "[[400]]", "[[500:9]]"]


def prompt_set(n: int, directives: list[str] = ()) -> PromptSet:
    texts = [f"question {i}" for i in range(n)] + [f"{d} q" for d in directives]
    return PromptSet("t", "test", tuple(
        PromptItem(f"p{i:03d}", ({"role": "user", "content": t},)) for i, t in enumerate(texts)))


def test_a_run_with_every_failure_mode_completes_with_one_record_per_key(
        stub: Stub, store_url: str) -> None:
    stub.reset()
    params = GenerationParams(max_tokens=8, timeout_seconds=1, max_retries=1)
    targets = tuple(
        TargetRun(Endpoint(name, stub.base_url, model, STUB_API_KEY), concurrency=3)
        for name, model in (("gpt4", "gpt-4"), ("small", "small-model")))
    plan = RunPlan("ev", "1", "gpt4", targets, prompt_set(6, FAILURES), params, samples=2)
    store = Store.open(store_url)
    result = asyncio.run(execute(plan, store))
    rows = store.responses(result.run_pk)
    keys = [(r["target"], r["prompt_id"], r["sample"]) for r in rows]
    assert len(keys) == len(set(keys)) == 2 * 14 * 2 == plan.total
    by_text = {}
    for r in rows:
        by_text.setdefault(r["prompt_id"], set()).add(r["error_class"])
    # retried to success, or recorded, exactly as the single-request tests specify
    assert by_text["p006"] == {None} and by_text["p007"] == {None}  # 500 once, 429 once
    assert by_text["p008"] == {"Timeout"}
    assert by_text["p009"] == {"StreamCut"}
    assert by_text["p010"] == {"MalformedResponse"}
    assert by_text["p011"] == {"EmptyResponse"}
    assert by_text["p012"] == {"ClientError"}
    assert by_text["p013"] == {"ServerError"}
    assert store.progress(result.run_pk) == (56, 2 * 2 * 6, 56)
    # Running again sends nothing: everything is stored.
    again = asyncio.run(execute(plan, store))
    assert again.records == [] and again.skipped == 56
    # --retry-failed sends exactly the failed ones again.
    stub.reset()
    retried = asyncio.run(execute(plan, store, retry_failed=True))
    assert len(retried.records) == 24
    assert len(store.responses(result.run_pk)) == 56


def test_concurrency_limit_and_constant_arrivals(stub: Stub, tmp_path: Path) -> None:
    slow = Stub(tmp_path, tokens=5, interval=0.02).start()
    try:
        params = GenerationParams(max_tokens=5)
        plan = RunPlan("ev", "1", "a", (
            TargetRun(Endpoint("a", slow.base_url, "m"), concurrency=2),
            TargetRun(Endpoint("b", slow.base_url, "n"), concurrency=50,
                      arrival=Arrival("constant", 20.0)),
        ), prompt_set(20), params)
        store = Store.open(f"sqlite:///{tmp_path / 'r.db'}")
        result = asyncio.run(execute(plan, store))
    finally:
        slow.stop()
    rows = store.responses(result.run_pk)
    spans = {t: sorted((r["started_at"].timestamp(), r["started_at"].timestamp()
                        + r["e2e_ms"] / 1000) for r in rows if r["target"] == t) for t in "ab"}

    def most_in_flight(intervals: list[tuple[float, float]]) -> int:
        events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
        best = cur = 0
        for _, d in events:
            cur += d
            best = max(best, cur)
        return best

    assert most_in_flight(spans["a"]) <= 2
    starts = [s for s, _ in spans["b"]]
    # 20 requests at 20/s: spread over about a second, not sent in one burst.
    assert 0.8 <= starts[-1] - starts[0] <= 1.5
    lags = [r["schedule_lag_ms"] for r in rows if r["target"] == "b"]
    assert all(lag is not None and lag >= 0 for lag in lags)
    assert all(r["schedule_lag_ms"] is None for r in rows if r["target"] == "a")


# --- `slam run`, the command ---------------------------------------------------------------------


def write_manifests(folder: Path, base_url: str, prompts: int, extra: list[str] = ()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prompts.jsonl").write_text("".join(
        f'{{"id": "p{i:03d}", "messages": [{{"role": "user", "content": "question {i}"}}]}}\n'
        for i in range(prompts)) + "".join(
        f'{{"id": "x{i}", "messages": [{{"role": "user", "content": "{d} x"}}]}}\n'
        for i, d in enumerate(extra)))
    targets = [{"name": name, "concurrency": 2, "external": {
        "baseUrl": base_url, "model": model,
        "apiKeySecretRef": {"name": KEY_REF.name, "key": KEY_REF.key}}}
        for name, model in (("gpt4", "gpt-4"), ("candidate", "small"))]
    ev = {"apiVersion": "slam.dev/v1alpha1", "kind": "Evaluation",
          "metadata": {"name": "stubbed"},
          "spec": {"promptSet": {"file": "prompts.jsonl"}, "reference": "gpt4",
                   "targets": targets,
                   "generation": {"maxTokens": 8, "timeoutSeconds": 2, "maxRetries": 1}}}
    (folder / "evaluation.yaml").write_text(yaml.safe_dump(ev))
    return folder


def slam(*args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([SLAM, *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "COLUMNS": "200", **(env or {})}, timeout=300, **kw)


KEY_ENV = {secrets.env_name(KEY_REF): STUB_API_KEY}


def test_slam_run_resumes_after_sigkill(tmp_path: Path, store_url: str) -> None:
    slow = Stub(tmp_path / "stub", tokens=8, interval=0.03, api_key=STUB_API_KEY).start()
    try:
        folder = write_manifests(tmp_path / "m", slow.base_url, prompts=30)
        proc = subprocess.Popen([SLAM, "run", str(folder), "--store", store_url, "--no-progress"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env={**os.environ, **KEY_ENV}, cwd=REPO)
        store = Store.open(store_url)
        deadline = time.monotonic() + 120
        run = None
        while time.monotonic() < deadline:
            run = run or store.find_run("stubbed")
            if run and store.progress(run.id)[0] >= 25:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done_before = store.progress(run.id)[0]
        assert 25 <= done_before < 60, "the kill must land halfway"
        model = {"gpt4": "gpt-4", "candidate": "small"}
        stored_at_kill = {f"{model[r['target']]}|question {int(r['prompt_id'][1:])}"
                          for r in store.responses(run.id)}
        sent_at_kill = sum(slow.hits().values())
        second = slam("run", str(folder), "--store", store_url, "--no-progress", env=KEY_ENV)
        assert second.returncode == 0, second.stderr
        assert f"{done_before} already stored" in second.stderr
        rows = store.responses(run.id)
        keys = {(r["target"], r["prompt_id"], r["sample"]) for r in rows}
        assert len(rows) == len(keys) == 60 and all(r["error_class"] is None for r in rows)
        # What was stored before the kill is never sent again; only what was in flight (2 per
        # target) or answered but not yet written (one FLUSH_SECONDS batch) is sent twice.
        hits = slow.hits()
        assert all(hits[key] == 1 for key in stored_at_kill)
        assert sum(hits.values()) - 60 == sent_at_kill - done_before
        assert sent_at_kill - done_before <= 4 + 8
        assert store.progress(run.id) == (60, 0, 60)
    finally:
        slow.stop()


def test_slam_run_prints_a_summary_and_never_the_key(stub: Stub, tmp_path: Path,
                                                    store_url: str) -> None:
    folder = write_manifests(tmp_path, stub.base_url, prompts=4, extra=["[[500:9]]"])
    out = slam("run", str(folder), "--store", store_url, env=KEY_ENV)
    assert out.returncode == 0, out.stderr
    assert "gpt4 (ref)" in out.stdout and "candidate" in out.stdout
    assert "│ 4/5 " in out.stdout  # the [[500:9]] prompt failed for both targets
    assert "Recommendation:" in out.stdout
    report = slam("report", "--store", store_url, "--format", "json")
    csv = slam("report", "--store", store_url, "--format", "csv")
    md = slam("report", "--store", store_url, "-e", "stubbed")
    assert '"evaluation": "stubbed"' in report.stdout and csv.stdout.count("\n") == 11
    assert "| candidate |" in md.stdout and "ServerError" in md.stdout
    store = Store.open(store_url)
    dump = repr([store.runs(), store.targets(1), store.responses(store.find_run("stubbed").id)])
    for text in (out.stdout, out.stderr, report.stdout, csv.stdout, md.stdout, dump):
        assert STUB_API_KEY not in text
    if "@" in store_url:  # PostgreSQL: the password never printed either
        password = store_url.split(":")[2].split("@")[0]
        assert password not in out.stdout + out.stderr


def test_bad_input_fails_before_any_request(stub: Stub, tmp_path: Path) -> None:
    stub.reset()
    folder = write_manifests(tmp_path, stub.base_url, prompts=3)
    missing_key = slam("run", str(folder), "--store", f"sqlite:///{tmp_path}/r.db")
    assert missing_key.returncode == 1
    assert "spec.targets[0].external.apiKeySecretRef" in missing_key.stderr
    assert secrets.env_name(KEY_REF) in missing_key.stderr
    (folder / "prompts.jsonl").write_text('{"id": "a", "messages": []}\n')
    bad_prompts = slam("run", str(folder), "--store", f"sqlite:///{tmp_path}/r.db", env=KEY_ENV)
    assert bad_prompts.returncode == 1
    assert "prompts.jsonl: line 1 (id a): messages" in bad_prompts.stderr
    assert stub.hits() == {}


def test_non_llamacpp_model_deployment_needs_an_endpoint(tmp_path: Path) -> None:
    out = slam("run", str(REPO / "manifests/examples/pep-talk"), "--limit", "1")
    assert out.returncode == 1
    assert "uses runtime tgi, which needs a GPU cluster" in out.stderr
    assert "--endpoint" in out.stderr


def test_bad_store_url_is_one_clear_line_without_the_password(tmp_path: Path) -> None:
    folder = write_manifests(tmp_path, "http://127.0.0.1:1/v1", prompts=1)
    from tests.controlplane.cluster import free_port
    url = f"postgresql://slam:hunter2-secret@127.0.0.1:{free_port()}/x"
    out = slam("run", str(folder), "--store", url, env=KEY_ENV)
    assert out.returncode == 1
    assert "--store: cannot open the results store postgresql://slam:***@" in out.stderr
    assert "hunter2-secret" not in out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    nonsense = slam("report", "--store", "nonsense")
    assert nonsense.returncode == 1 and "not a SQLAlchemy URL" in nonsense.stderr


def test_a_target_whose_every_request_fails_fails_the_run_and_says_why(tmp_path: Path) -> None:
    from tests.controlplane.cluster import free_port
    folder = write_manifests(tmp_path, f"http://127.0.0.1:{free_port()}/v1", prompts=2)
    out = slam("run", str(folder), "--store", f"sqlite:///{tmp_path}/r.db", "--no-progress",
               env=KEY_ENV)
    assert out.returncode == 1
    assert "failed gpt4: 2 × ConnectionError, e.g. p000: cannot connect to" in out.stdout
    assert "every request to gpt4, candidate failed" in " ".join(out.stderr.split())
