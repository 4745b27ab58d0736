"""A store with one finished run (three targets, six prompts) for the dashboard tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from slam.generate import RequestRecord
from slam.promptsets import PromptItem, PromptSet
from slam.store import Store

TARGETS = ("gpt4-reference", "mistral-candidate", "zephyr-candidate")
# What a rater must never learn either: each target's model and where it is served.
MODELS = ("openai/gpt-4o-2024-08-06", "mistralai/Mistral-7B-Instruct-v0.2",
          "HuggingFaceH4/zephyr-7b-beta")
HOSTS = ("api.openai.example", "mistral-serving.team-a.svc", "zephyr-serving.team-a.svc")
PROMPTS = 6
# Each invite token belongs to one person (SLAM_*_TOKENS hold name=token entries).
RATER_TOKEN, BO_TOKEN, ADMIN_TOKEN = "rater-invite-123", "rater-invite-789", "admin-invite-456"
RATER_TOKENS = f"ana={RATER_TOKEN},bo={BO_TOKEN}"
ADMIN_TOKENS = f"boss={ADMIN_TOKEN}"


def answer(target: str, i: int, extra: str = "") -> str:
    # The text never contains the target's name: blindness is tested on the page's HTML.
    return (f"Answer number {TARGETS.index(target) + 1} to question {i}: keep going, you did "
            f"well.{extra}")


def seed(url: str, evaluation: str = "pep-talk", human_rating: dict | None = None,
         priced: bool = False, answer_extra: str = "") -> int:
    store = Store.open(url)
    prompts = PromptSet("t", "t", tuple(
        PromptItem(f"p{i}", ({"role": "user", "content": f"Write a pep talk number {i}"},))
        for i in range(PROMPTS)))
    targets = [{"name": t, "kind": "external", "model": MODELS[i],
                "base_url": f"http://{HOSTS[i]}:8000/v1", "is_reference": t == TARGETS[0],
                "concurrency": 1, "details": {}} for i, t in enumerate(TARGETS)]
    if priced:  # the reference at API prices, the first candidate on a g5.xlarge
        targets[0]["details"] = {"pricing": {"inputPerMTokensUSD": 10.0,
                                             "outputPerMTokensUSD": 30.0}}
        targets[1] |= {"kind": "model_deployment", "details": {"instanceType": "g5.xlarge"}}
    hr = human_rating or {"criteria": ["clarity"], "controlPairs": 2}
    run = store.begin_run(evaluation=evaluation, run_id="1", reference=TARGETS[0],
                          spec={"humanRating": hr,
                                # the reference judges: a self-judging warning on the pages
                                "scorers": {"judge": {"target": TARGETS[0]}}},
                          targets=targets, prompts=prompts, total=len(TARGETS) * PROMPTS)
    store.save(run, [RequestRecord(target=t, prompt_id=f"p{i}", sample=0,
                                   started_at=datetime.now(UTC), attempts=1, ttft_ms=10.0,
                                   e2e_ms=100.0, prompt_tokens=20, completion_tokens=10,
                                   text=answer(t, i, answer_extra))
                     for t in TARGETS for i in range(PROMPTS)])
    return run


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, int]:
    url = f"sqlite:///{tmp_path / 'results.db'}"
    run = seed(url)
    monkeypatch.setenv("SLAM_STORE_URL", url)
    monkeypatch.setenv("SLAM_RATER_TOKENS", RATER_TOKENS)
    monkeypatch.setenv("SLAM_ADMIN_TOKENS", ADMIN_TOKENS)
    return url, run
