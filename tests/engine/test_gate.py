"""`slam report --gate` and `slam plan`, as CI and a team planning a study use them."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from slam.generate import RequestRecord
from tests.engine.test_run import SLAM, slam
from tests.engine.test_scoring import judged, seeded_store
from tests.servers import Stub


@pytest.fixture(scope="module")
def judged_stores(tmp_path_factory: pytest.TempPathFactory, stub: Stub) -> dict[str, str]:
    """Two stores of the same three-target run (gpt4, good, bland on 12 prompts): one judged
    by a judge that sees quality, one by a judge that always picks the first answer."""
    out = {}
    for kind in ("smart", "first"):
        url = f"sqlite:///{tmp_path_factory.mktemp(kind) / 'r.db'}"
        store, run = seeded_store(url)
        judged(stub, store, run, kind)
        out[kind] = url
    return out


def gate(url: str, *args: str) -> subprocess.CompletedProcess:
    return slam("report", "-e", "ev", "--store", url, "--format", "md", "--gate", *args)


def test_the_gate_passes_a_non_inferior_candidate_and_the_report_shows_the_decision(
        judged_stores: dict[str, str]) -> None:
    passed = gate(judged_stores["smart"], "good")
    assert passed.returncode == 0, passed.stderr
    assert "gate passed: good is non-inferior: judge win rate 1.000 (mean over 12 prompts, 12 " \
        "judged pairs)" in passed.stderr
    assert "## Decision" in passed.stdout
    assert "- **bland**: inferior:" in passed.stdout
    assert "Holm over 2 candidate(s) at family-wise alpha 0.05" in passed.stdout
    assert "judge win rate > 0.45 (assuming 0.5, sd 0.5 per prompt): " in passed.stdout


def test_the_gate_fails_an_inferior_candidate_with_one_line(judged_stores: dict[str, str]
                                                           ) -> None:
    failed = gate(judged_stores["smart"], "bland")
    assert failed.returncode == 3
    lines = [x for x in failed.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, failed.stderr
    assert lines[0].startswith("error gate failed: bland is inferior: judge win rate 0.000 (mean "
                               "over 12 prompts, 12 judged pairs)")
    assert re.search(r"upper bound 0\.[0-3]\d\d < 0\.45", lines[0]), lines[0]
    assert "## Decision" in failed.stdout  # the report is still written for the CI log


def test_the_gate_fails_an_undecided_candidate_and_says_what_is_missing(
        judged_stores: dict[str, str]) -> None:
    # A judge that picks the first answer whatever it is: its verdicts are no evidence.
    failed = gate(judged_stores["first"], "good")
    assert failed.returncode == 3
    assert "gate failed: good is undecided: no human ratings yet" in failed.stderr


def test_the_gate_names_the_candidates_when_the_name_is_wrong(judged_stores: dict[str, str]
                                                             ) -> None:
    wrong = gate(judged_stores["smart"], "gpt4")
    assert wrong.returncode == 2
    assert "--gate gpt4 is not a candidate of ev (candidates: good, bland)" in wrong.stderr \
        or "--gate gpt4 is not a candidate of ev (candidates: bland, good)" in wrong.stderr
    assert wrong.stdout == ""


def test_the_gate_fails_on_a_failure_rate_over_the_limit(tmp_path: Path, stub: Stub) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store, run = seeded_store(url)
    judged(stub, store, run, "smart")
    store.save(run, [RequestRecord(
        target="good", prompt_id=f"x{i}", sample=0, started_at=datetime.now(UTC), attempts=3,
        error_class="HTTP 500", error_message="server error") for i in range(3)])
    ok = gate(url, "good", "--max-failure-rate", "0.25")
    assert ok.returncode == 0, ok.stderr  # 3 of 15 failed: 20%
    failed = gate(url, "good", "--max-failure-rate", "0.1")
    assert failed.returncode == 3
    assert "gate failed: good failed 3 of 15 requests (20.0% > 10.0%)" in failed.stderr


def test_slam_plan_says_how_many_prompts_each_margin_needs(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "prompts.jsonl").write_text("".join(
        f'{{"id": "p{i}", "messages": [{{"role": "user", "content": "q{i}"}}]}}\n'
        for i in range(40)))
    ev = {"apiVersion": "slam.dev/v1alpha1", "kind": "Evaluation", "metadata": {"name": "e"},
          "spec": {"promptSet": {"file": "prompts.jsonl"}, "reference": "gpt4",
                   "targets": [{"name": n, "external": {"baseUrl": "http://x/v1", "model": n}}
                               for n in ("gpt4", "a", "b")],
                   "decision": {"alpha": 0.1, "power": 0.9,
                                "similarity": {"atLeast": -0.05, "assumed": 0.0, "sd": 0.1}}}}
    (folder / "evaluation.yaml").write_text(yaml.safe_dump(ev))
    out = subprocess.run([SLAM, "plan", str(folder)], capture_output=True, text=True,
                         env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert "40 prompts × 1 sample(s), 2 candidate(s) against gpt4; alpha 0.1 family-wise, " \
        "power 90%" in out.stdout
    from slam import decision
    need = decision.prompts_needed(decision.Margin(-0.05, 0.0, 0.1), decision.SIMILARITY,
                                   alpha=0.05, power=0.9)
    assert (f"similarity difference > -0.05 (assuming 0, sd 0.1 per prompt): {need} prompts "
            f"for 90% power at alpha 0.05 per candidate; the prompt set has 40 (short by "
            f"{need - 40}; " in out.stdout)
    assert "human win rate > 0.45 (assuming 0.5, sd 0.5 per prompt): " in out.stdout
    assert "short by" in out.stdout
    # The same numbers in `slam validate`, for the evidence the decision uses first.
    checked = subprocess.run([SLAM, "validate", str(folder)], capture_output=True, text=True,
                             env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert checked.returncode == 0
    assert "Evaluation e: human win rate > 0.45" in checked.stdout
    # A margin planning cannot meet is refused with the field named.
    ev["spec"]["decision"]["similarity"]["assumed"] = -0.06
    (folder / "evaluation.yaml").write_text(yaml.safe_dump(ev))
    bad = subprocess.run([SLAM, "plan", str(folder)], capture_output=True, text=True,
                         env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert bad.returncode == 1
    assert "spec.decision.similarity.assumed: assumed must exceed atLeast" in bad.stderr


def test_junit_output_parses_and_carries_each_decision(judged_stores: dict[str, str],
                                                       tmp_path: Path) -> None:
    from junitparser import Failure, JUnitXml, Skipped

    out = tmp_path / "slam.xml"
    done = slam("report", "-e", "ev", "--store", judged_stores["smart"], "--format", "junit",
                "--max-failure-rate", "0.05", "--out", str(out))
    assert done.returncode == 0, done.stderr
    def only_suite(parsed):  # a file with a <testsuite> root parses as that suite
        return next(iter(parsed)) if isinstance(parsed, JUnitXml) else parsed

    suite = only_suite(JUnitXml.fromfile(str(out)))
    cases = {c.name: c for c in suite}
    assert set(cases) == {"good non-inferior to gpt4", "bland non-inferior to gpt4",
                          *(f"{t} failure rate <= 5.0%" for t in ("gpt4", "good", "bland"))}
    assert cases["good non-inferior to gpt4"].is_passed
    (failure,) = cases["bland non-inferior to gpt4"].result
    assert isinstance(failure, Failure) and failure.type == "inferior"
    assert failure.message.startswith("inferior: judge win rate 0.000")
    assert (suite.tests, suite.failures, suite.skipped) == (5, 1, 0)
    props = {p.name: p.value for p in suite.properties()}
    assert props["recommendation"] == "good" and "Holm" in props["method"]
    # An undecided candidate is skipped, with what would decide it.
    undecided = slam("report", "-e", "ev", "--store", judged_stores["first"], "--format",
                     "junit")
    parsed = only_suite(JUnitXml.fromstring(undecided.stdout))
    (skip,) = next(c for c in parsed if c.name == "good non-inferior to gpt4").result
    assert isinstance(skip, Skipped) and "no human ratings yet" in skip.message


def test_slam_compare_shows_what_changed_between_two_runs(tmp_path: Path) -> None:
    """Run 2 of the same Evaluation: `good` got worse on three prompts (a new model version),
    slower, and one request failed."""
    import json

    import numpy as np
    from scipy import stats as sps

    from slam.promptsets import PromptItem, PromptSet
    from slam.scoring.pipeline import SIMILARITY

    url = f"sqlite:///{tmp_path / 'r.db'}"
    store, run1 = seeded_store(url)
    prompts = PromptSet("t", "t", tuple(PromptItem(f"p{i:02d}", (
        {"role": "user", "content": f"Write a pep talk for user {i}"},), ()) for i in range(12)))
    run2 = store.begin_run(evaluation="ev", run_id="2", reference="gpt4", spec={},
                           targets=store.targets(run1), prompts=prompts, total=36)
    store.save(run2, [RequestRecord(
        target=t, prompt_id=f"p{i:02d}", sample=0, started_at=datetime.now(UTC), attempts=1,
        ttft_ms=80.0, e2e_ms=(400.0 if t == "good" else 200.0 + 10 * i), prompt_tokens=20,
        completion_tokens=10, text="x") if not (t == "good" and i == 11) else RequestRecord(
        target=t, prompt_id="p11", sample=0, started_at=datetime.now(UTC), attempts=3,
        error_class="HTTP 500", error_message="server error")
        for t in ("gpt4", "good", "bland") for i in range(12)])

    def similarity(run: int, drop: set[str]) -> None:
        store.save_scores([{"response_id": r["id"], "scorer": SIMILARITY,
                            "score": 0.3 if r["target"] == "good" and r["prompt_id"] in drop
                            else 0.8, "passed": None, "reason": "cosine", "raw": None}
                           for r in store.responses(run) if r["error_class"] is None])
    similarity(run1, set())
    similarity(run2, {"p00", "p01", "p02"})

    done = slam("compare", "1", "2", "-e", "ev", "--store", url)
    assert done.returncode == 0, done.stderr
    md = done.stdout
    assert md.startswith("# ev: run 1 → run 2")
    # good: 11 prompts in both runs (p11 failed in run 2), three of them down by 0.5.
    diffs = np.array([-0.5] * 3 + [0.0] * 8)
    half = sps.t.ppf(0.975, 10) * diffs.std(ddof=1) / np.sqrt(11)
    assert (f"| good | similarity | 0.800 | 0.664 | {diffs.mean():+.3f} | "
            f"[{diffs.mean() - half:+.3f}, {diffs.mean() + half:+.3f}] | 11 |") in md
    assert "| bland | similarity | 0.800 | 0.800 | +0.000 |" in md
    assert "| good | success rate | 1.000 | 0.917 | -0.083 |" in md
    assert "| good | e2e p50 ms | 255 | 400 | +145 |" in md
    drops = md.split("## Largest per-prompt drops")[1]
    assert [line.split("|")[3].strip() for line in drops.splitlines() if "| good |" in line] \
        == ["p00", "p01", "p02"]
    as_json = json.loads(slam("compare", "1", "2", "-e", "ev", "--store", url, "--format",
                              "json").stdout)
    assert {c["metric"] for c in as_json["changes"] if c["target"] == "good"} >= {
        "similarity", "success rate", "e2e p50 ms", "$/1k requests"}
    missing = slam("compare", "1", "3", "-e", "ev", "--store", url)
    assert missing.returncode == 1
    assert "no run 3 of evaluation ev" in missing.stderr and "(runs: 1, 2)" in missing.stderr


def test_the_report_warns_when_the_judge_is_of_a_target_family(tmp_path: Path, stub: Stub
                                                               ) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    judge = {"external": {"baseUrl": "http://judge/v1", "model": "gpt-4o"}}
    store, run = seeded_store(url, spec={"scorers": {"judge": judge}})
    judged(stub, store, run, "smart")
    md = slam("report", "-e", "ev", "--store", url).stdout
    assert ("> **Warning** — Judge bias (SameFamily): the judge gpt-4o is of the OpenAI GPT "
            "family, like gpt4 (gpt-4)") in md
    assert md.index("Judge bias") < md.index("## Recommendation")
    # The quality table carries the length-controlled judge win rate beside the raw one.
    assert "judge win, equal length" in md
