"""Scoring: the judge's order swap, unparseable verdicts, similarity on the real embedding model,
and the recommendation built from them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from slam import summary
from slam.generate import Endpoint, RequestRecord
from slam.promptsets import PromptItem, PromptSet
from slam.scoring import judge as judging
from slam.scoring.pipeline import ScoringConfig, score_judge, score_similarity
from slam.scoring.similarity import Embedder
from slam.store import Store
from tests.conftest import STUB_API_KEY
from tests.servers import Stub

N = 12


def seeded_store(url: str, *, references: bool = False, n: int = N, spec: dict | None = None
                 ) -> tuple[Store, int]:
    """gpt4 (reference, an API at $30/$60 per 1M tokens), `good` (answers contain GOOD, $1/$2)
    and `bland` ($0.5/$1), on N prompts."""
    store = Store.open(url)
    prompts = PromptSet("t", "t", tuple(
        PromptItem(f"p{i:02d}", ({"role": "user", "content": f"Write a pep talk for user {i}"},),
                   (f"You did great today, user {i}!",) if references else ())
        for i in range(n)))
    targets = [
        {"name": n, "kind": "external", "model": m, "base_url": "http://x/v1",
         "is_reference": n == "gpt4", "concurrency": 1,
         "details": {"pricing": {"inputPerMTokensUSD": pi, "outputPerMTokensUSD": po}}}
        for n, m, pi, po in (("gpt4", "gpt-4", 30, 60), ("good", "good-1b", 1, 2),
                             ("bland", "bland-1b", 0.5, 1))]
    run = store.begin_run(evaluation="ev", run_id="1", reference="gpt4", spec=spec or {},
                          targets=targets, prompts=prompts, total=3 * n)
    texts = {"gpt4": "Keep going, user {i}.", "good": "GOOD job, user {i}!",
             "bland": "Ok user {i}."}
    store.save(run, [RequestRecord(
        target=t, prompt_id=f"p{i:02d}", sample=0, started_at=datetime.now(UTC), attempts=1,
        ttft_ms=50.0 + i, e2e_ms=200.0 + 10 * i, prompt_tokens=20, completion_tokens=10,
        text=texts[t].format(i=i)) for t in texts for i in range(n)])
    return store, run


def judged(stub: Stub, store: Store, run: int, kind: str, mode: str = "pairwise") -> None:
    cfg = ScoringConfig(reference="gpt4", judge=Endpoint("judge", stub.base_url, f"judge-{kind}",
                                                         STUB_API_KEY),
                        judge_name=f"judge-{kind}", mode=mode)
    asyncio.run(score_judge(store, run, cfg))


def test_a_judge_that_always_prefers_the_first_answer_yields_ties(
        stub: Stub, tmp_path: Path) -> None:
    store, run = seeded_store(f"sqlite:///{tmp_path / 'r.db'}")
    judged(stub, store, run, "first")
    rows = store.judgments(run)
    assert len(rows) == 2 * 2 * N and all(j["verdict"] == "first" for j in rows)
    rep = summary.build(store, run)
    for name in ("good", "bland"):
        t = next(t for t in rep.targets if t.target == name)
        assert t.judge_consistency == 0.0
        assert t.judge_win_rate == 0.5  # every pair flipped with the order: all ties
        assert t.judge_elo.estimate == pytest.approx(
            next(x for x in rep.targets if x.is_reference).judge_elo.estimate, abs=1e-6)
        # A judge that follows the answers' order is no evidence: 12 ties do not make the
        # candidate non-inferior.
        assert t.decision.verdict == "undecided" and t.decision.prompts == 0
    assert rep.recommendation is None and rep.reason.startswith("none yet")


def test_a_consistent_judge_ranks_and_the_recommendation_follows(
        stub: Stub, tmp_path: Path) -> None:
    store, run = seeded_store(f"sqlite:///{tmp_path / 'r.db'}")
    judged(stub, store, run, "smart")
    rep = summary.build(store, run)
    good = next(t for t in rep.targets if t.target == "good")
    bland = next(t for t in rep.targets if t.target == "bland")
    assert (good.judge_win_rate, good.judge_consistency) == (1.0, 1.0)
    assert (bland.judge_win_rate, bland.judge_consistency) == (0.0, 1.0)
    assert good.judge_elo.low > bland.judge_elo.high  # separated beyond their intervals
    assert (bland.decision.verdict, good.decision.verdict) == ("inferior", "non-inferior")
    assert good.decision.evidence == bland.decision.evidence == "judgeWinRate"
    # bland is cheapest but inferior; good is cheaper than GPT-4 and non-inferior
    assert rep.recommendation == "good" and rep.leader == "good"
    assert "bland: inferior: judge win rate 0.000 (mean over 12 prompts, 12 judged pairs)" \
        in rep.reason
    assert "Holm over 2 candidate(s)" in rep.reason
    assert good.cost.per_1k_usd == pytest.approx(1000 * (20 * 1 + 10 * 2) / 1e6)


def test_unparseable_verdicts_are_asked_once_more_then_recorded(
        stub: Stub, tmp_path: Path) -> None:
    store, run = seeded_store(f"sqlite:///{tmp_path / 'r.db'}")
    stub.reset()
    judged(stub, store, run, "garbage")
    rows = store.judgments(run)
    assert {j["parse_status"] for j in rows} == {"unparseable"}
    assert all(j["verdict"] is None and "cannot decide" in j["raw"] for j in rows)
    hits = sum(v for k, v in stub.hits().items() if k.startswith("judge-garbage|"))
    assert hits == 2 * len(rows)  # each verdict asked for twice, never guessed
    rep = summary.build(store, run)
    assert rep.judge_unparseable == len(rows)
    assert all(t.judge_win_rate is None for t in rep.targets)

    store2, run2 = seeded_store(f"sqlite:///{tmp_path / 'r2.db'}")
    judged(stub, store2, run2, "retry")
    assert {j["parse_status"] for j in store2.judgments(run2)} == {"ok"}


def test_judging_resumes_without_asking_twice(stub: Stub, tmp_path: Path) -> None:
    store, run = seeded_store(f"sqlite:///{tmp_path / 'r.db'}")
    judged(stub, store, run, "smart")
    stub.reset()
    judged(stub, store, run, "smart")
    assert stub.hits() == {}
    assert len(store.judgments(run)) == 2 * 2 * N


def test_single_answer_grading(stub: Stub, tmp_path: Path) -> None:
    store, run = seeded_store(f"sqlite:///{tmp_path / 'r.db'}")
    judged(stub, store, run, "smart", mode="single")
    rep = summary.build(store, run)
    scores = {t.target: t.judge_score.estimate for t in rep.targets}
    assert scores == {"gpt4": 3.0, "good": 9.0, "bland": 3.0}


def test_parsers() -> None:
    assert judging.parse_pairwise("reasoning... [[B]]") == "second"
    assert judging.parse_pairwise("[[A]] or maybe [[B]]") is None
    assert judging.parse_pairwise("no verdict") is None
    assert judging.parse_rating("Rating: [[10]]") == 10.0
    assert judging.parse_rating("Rating: [[11]]") is None
    assert judging.combine("first", "second") == (1.0, True)
    assert judging.combine("first", "first") == (0.5, False)
    assert judging.combine("tie", "tie") == (0.5, True)
    assert judging.combine(None, "first") is None


def test_similarity_on_the_real_embedding_model(tmp_path: Path) -> None:
    store, run = seeded_store(f"sqlite:///{tmp_path / 'r.db'}", references=True)
    embedder = Embedder("sentence-transformers/all-MiniLM-L6-v2", store)
    same = embedder.embed(["You did great today, user 3!"] * 2)
    assert float(same[0] @ same[1]) == pytest.approx(1.0, abs=1e-5)
    cfg = ScoringConfig(reference="gpt4", similarity_model="sentence-transformers/all-MiniLM-L6-v2")
    scored, encoded = score_similarity(store, run, cfg, embedder)
    assert scored == 3 * N  # the reference too: the answers are hand-written
    sims = {(s["target"], s["prompt_id"]): s["score"] for s in store.scores(run, "similarity")}
    related = sims[("good", "p03")]
    unrelated = embedder.embed(["The mitochondria is the powerhouse of the cell.",
                                "You did great today, user 3!"])
    assert float(unrelated[0] @ unrelated[1]) < related - 0.3
    # Re-scoring is cheap: nothing new to encode, nothing scored twice.
    again = Embedder("sentence-transformers/all-MiniLM-L6-v2", store, model=embedder.model)
    assert score_similarity(store, run, cfg, again) == (0, 0)
    fresh = Embedder("sentence-transformers/all-MiniLM-L6-v2", store, model=embedder.model)
    fresh.embed(["GOOD job, user 1!", "You did great today, user 1!"])
    assert fresh.encoded == 0  # both came from the store's cache


def test_a_local_model_can_judge(llama, tmp_path: Path) -> None:
    """The judge path against a real llama.cpp server: every verdict is stored with its raw text
    and a parse status (a 135M model rarely follows the format; nothing is guessed)."""
    store, run = seeded_store(f"sqlite:///{tmp_path / 'r.db'}", n=2)
    cfg = ScoringConfig(reference="gpt4", judge=Endpoint("smollm2", llama.base_url, llama.alias),
                        judge_name="smollm2", max_tokens=16)
    asyncio.run(score_judge(store, run, cfg))
    rows = store.judgments(run)
    assert len(rows) == 2 * 2 * 2
    assert all(j["parse_status"] in ("ok", "unparseable") and j["raw"] for j in rows)
    assert all((j["verdict"] is None) == (j["parse_status"] == "unparseable") for j in rows)


def test_loading_the_embedding_model_draws_no_progress_bar(capfd) -> None:
    """`slam run`, `make demo` and the scoring Job's log show their own progress; transformers'
    "Loading weights" bar would be drawn in the middle of it."""
    from slam.scoring.similarity import DEFAULT_MODEL, load_model

    load_model(DEFAULT_MODEL)
    out, err = capfd.readouterr()
    assert "Loading weights" not in out + err


def test_the_judges_own_calls_are_priced_from_the_tokens_it_reported(
        stub: Stub, tmp_path: Path) -> None:
    """Issue 29 item 4: what the run cost includes an API judge's calls, retries included."""
    from slam import report
    spec = {"scorers": {"judge": {"external": {
        "baseUrl": stub.base_url, "model": "judge-garbage",
        "pricing": {"inputPerMTokensUSD": 2.0, "outputPerMTokensUSD": 8.0}}}}}
    store, run = seeded_store(f"sqlite:///{tmp_path / 'r.db'}", spec=spec)
    stub.reset()
    judged(stub, store, run, "garbage")  # every verdict asked twice (unparseable)
    rows = store.judgments(run)
    assert len(rows) == 2 * 2 * N
    # Both attempts counted: the retry's completion as long as the first one's.
    assert all(j["completion_tokens"] and j["completion_tokens"] % 2 == 0 for j in rows)
    assert all(j["prompt_tokens"] and j["prompt_tokens"] > 0 for j in rows)
    tin = sum(j["prompt_tokens"] for j in rows)
    tout = sum(j["completion_tokens"] for j in rows)
    rep = summary.build(store, run)
    assert rep.judge_spend is not None
    assert rep.judge_spend.usd == pytest.approx((tin * 2.0 + tout * 8.0) / 1e6)
    targets = sum(t.run_spend.usd for t in rep.targets if t.run_spend)
    assert rep.run_spend_usd == pytest.approx(targets + rep.judge_spend.usd)
    md = report.to_markdown(rep)
    assert f"- the judge (judge-garbage, {len(rows)} calls): $" in md
    assert f"{tin:,} input tokens × $2/M + {tout:,} output tokens × $8/M" in md
    # A target acting as the judge is already counted as that target.
    spend, note = summary.judge_spend(
        {"scorers": {"judge": {"target": "good"}}},
        [{"name": "good", "kind": "modelDeployment", "model": "good"}], rows, [])
    assert spend is None and "target good, whose instance time is counted above" in note
