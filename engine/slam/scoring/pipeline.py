"""Score a run: similarity to the reference answers, then the LLM judge. Resumable like runs:
every score and verdict is keyed in the store, and what is there is not asked for again."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from slam.generate import Endpoint, GenerationParams
from slam.scoring import judge as judging
from slam.scoring.similarity import Embedder, best_cosine
from slam.store import Store

SIMILARITY = "similarity"
JUDGE_GRADE = "judge"


@dataclass(frozen=True)
class ScoringConfig:
    reference: str
    similarity_model: str | None = None  # None: similarity off
    judge: Endpoint | None = None  # None: no judge
    judge_name: str = "judge"
    mode: str = "pairwise"  # pairwise | single | both
    rubric: str | None = None
    concurrency: int = 4
    max_tokens: int = 512
    timeout_seconds: float = 120.0
    prompt_ids: frozenset[str] | None = None  # a shard's prompts; None: all


def _mine(cfg: ScoringConfig, prompt_id: str) -> bool:
    return cfg.prompt_ids is None or prompt_id in cfg.prompt_ids


@dataclass
class ScoringResult:
    similarity_scored: int = 0
    texts_encoded: int = 0
    judgments: int = 0
    grades: int = 0
    unparseable: int = 0
    errors: int = 0


def reference_texts(store: Store, run_pk: int, reference: str) -> dict[tuple[str, int], list[str]]:
    """(prompt, sample) -> reference answers: hand-written ones from the prompt set when present,
    else the reference target's own answer (when it succeeded)."""
    prompts = {p["prompt_id"]: p["references"] or [] for p in store.prompts(run_pk)}
    out: dict[tuple[str, int], list[str]] = {}
    for r in store.responses(run_pk, reference):
        refs = prompts.get(r["prompt_id"]) or ([r["text"]] if r["error_class"] is None
                                               and r["text"].strip() else [])
        if refs:
            out[(r["prompt_id"], r["sample"])] = refs
    for pid, refs in prompts.items():  # hand-written references also cover unanswered prompts
        if refs:
            for key in [k for k in out if k[0] == pid] or [(pid, 0)]:
                out[key] = refs
    return out


def score_similarity(store: Store, run_pk: int, cfg: ScoringConfig,
                     embedder: Embedder | None = None) -> tuple[int, int]:
    """(responses scored, texts encoded)."""
    embedder = embedder or Embedder(cfg.similarity_model, store)
    hand_written = any(p["references"] for p in store.prompts(run_pk))
    done = {s["response_id"] for s in store.scores(run_pk, SIMILARITY)}
    refs = reference_texts(store, run_pk, cfg.reference)
    todo = [r for r in store.responses(run_pk) if r["error_class"] is None and r["id"] not in done
            and (r["target"] != cfg.reference or hand_written) and _mine(cfg, r["prompt_id"])]
    todo = [r for r in todo if refs.get((r["prompt_id"], r["sample"]))
            or refs.get((r["prompt_id"], 0))]
    if not todo:
        return 0, 0
    ref_lists = [refs.get((r["prompt_id"], r["sample"])) or refs[(r["prompt_id"], 0)]
                 for r in todo]
    flat = [t for refs_ in ref_lists for t in refs_]
    vectors = embedder.embed([r["text"] for r in todo] + flat)
    answers, ref_vecs = vectors[: len(todo)], vectors[len(todo):]
    grouped, at = [], 0
    for refs_ in ref_lists:
        grouped.append(ref_vecs[at: at + len(refs_)])
        at += len(refs_)
    cosines = best_cosine(answers, grouped)
    source = "hand-written reference answers" if hand_written else f"{cfg.reference}'s answer"
    store.save_scores([
        {"response_id": r["id"], "scorer": SIMILARITY, "score": float(np.clip(c, -1, 1)),
         "passed": None, "reason": f"cosine to {source}", "raw": None}
        for r, c in zip(todo, cosines, strict=True)
    ])
    return len(todo), embedder.encoded


@dataclass(frozen=True)
class JudgeWork:
    """What the judge still has to do for a run (what the store holds is not asked again)."""

    responses: dict[tuple[str, str, int], dict]  # (target, prompt, sample) -> successful row
    pairs: list[tuple[str, int, str, str]]  # (prompt, sample, first, second): both orders
    singles: list[dict]  # rows to grade on the rubric

    @property
    def total(self) -> int:
        return len(self.pairs) + len(self.singles)


def judge_work(store: Store, run_pk: int, cfg: ScoringConfig) -> JudgeWork:
    """Pairwise: each candidate's answer against the reference's for the same prompt and
    sample, in both orders; single: every successful answer. This shard's prompts only."""
    ok = [r for r in store.responses(run_pk) if r["error_class"] is None
          and _mine(cfg, r["prompt_id"])]
    by_key = {(r["target"], r["prompt_id"], r["sample"]): r for r in ok}
    pairs: list[tuple[str, int, str, str]] = []
    singles: list[dict] = []
    if cfg.mode in ("pairwise", "both"):
        done = {(j["prompt_id"], j["sample"], j["first"], j["second"])
                for j in store.judgments(run_pk) if j["judge"] == cfg.judge_name}
        for (target, prompt_id, sample) in sorted(by_key):
            if target == cfg.reference or (cfg.reference, prompt_id, sample) not in by_key:
                continue
            for first, second in ((target, cfg.reference), (cfg.reference, target)):
                if (prompt_id, sample, first, second) not in done:
                    pairs.append((prompt_id, sample, first, second))
    if cfg.mode in ("single", "both"):
        graded = {s["response_id"] for s in store.scores(run_pk, JUDGE_GRADE)}
        singles = [r for r in ok if r["id"] not in graded]
    return JudgeWork(by_key, pairs, singles)


async def score_judge(store: Store, run_pk: int, cfg: ScoringConfig,
                      work: JudgeWork | None = None,
                      progress: Callable[[], None] | None = None) -> ScoringResult:
    """Ask the judge for `work` (default: judge_work(...)), storing each verdict as it comes."""
    result = ScoringResult()
    assert cfg.judge is not None
    if work is None:
        work = await asyncio.to_thread(judge_work, store, run_pk, cfg)
    client = cfg.judge.client(GenerationParams(timeout_seconds=cfg.timeout_seconds))
    sem = asyncio.Semaphore(cfg.concurrency)
    prompts = {p["prompt_id"]: p["messages"] for p in store.prompts(run_pk)}
    by_key = work.responses

    async def pair(prompt_id: str, sample: int, first: str, second: str) -> None:
        async with sem:
            reply = await judging.judge_pair(
                client, cfg.judge, judging.question_text(prompts[prompt_id]),
                by_key[(first, prompt_id, sample)]["text"],
                by_key[(second, prompt_id, sample)]["text"], cfg.max_tokens)
        await asyncio.to_thread(store.save_judgments, run_pk, [{
            "prompt_id": prompt_id, "sample": sample, "judge": cfg.judge_name, "first": first,
            "second": second, "verdict": reply.value, "parse_status": reply.parse_status,
            "raw": reply.raw, "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": reply.completion_tokens}])
        result.judgments += 1
        result.unparseable += reply.parse_status == "unparseable"
        result.errors += reply.parse_status == "error"
        if progress:
            progress()

    async def single(r: dict) -> None:
        async with sem:
            reply = await judging.grade(client, cfg.judge,
                                        judging.question_text(prompts[r["prompt_id"]]),
                                        r["text"], cfg.rubric, cfg.max_tokens)
        await asyncio.to_thread(store.save_scores, [{
            "response_id": r["id"], "scorer": JUDGE_GRADE, "score": reply.value,
            "passed": None, "reason": reply.parse_status,
            "raw": {"text": reply.raw, "judge": cfg.judge_name,
                    "prompt_tokens": reply.prompt_tokens,
                    "completion_tokens": reply.completion_tokens}}])
        result.grades += 1
        result.unparseable += reply.parse_status == "unparseable"
        result.errors += reply.parse_status == "error"
        if progress:
            progress()

    tasks = [pair(*p) for p in work.pairs] + [single(r) for r in work.singles]
    try:
        await asyncio.gather(*tasks)
    finally:
        await client.close()
    return result


async def score(store: Store, run_pk: int, cfg: ScoringConfig,
                progress: Callable[[str, int], Callable[[], None]] | None = None
                ) -> ScoringResult:
    """Similarity, then the judge. `progress(label, total)` returns a per-item callback."""
    result = ScoringResult()
    if cfg.similarity_model:
        result.similarity_scored, result.texts_encoded = await asyncio.to_thread(
            score_similarity, store, run_pk, cfg)
    if cfg.judge is not None:
        work = await asyncio.to_thread(judge_work, store, run_pk, cfg)
        tick = progress(f"judge ({cfg.judge_name})", work.total) if progress else None
        judged = await score_judge(store, run_pk, cfg, work, tick)
        result.judgments, result.grades = judged.judgments, judged.grades
        result.unparseable, result.errors = judged.unparseable, judged.errors
    return result
