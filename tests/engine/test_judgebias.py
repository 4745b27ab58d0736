"""Judge-bias controls: a judge that likes long answers, and judges that judge themselves."""

from __future__ import annotations

import numpy as np
import pytest

from slam import judgebias


def test_a_judge_that_prefers_longer_answers_is_corrected_by_the_length_control() -> None:
    """Candidate and reference are equally good (at equal length, the judge is a coin flip);
    the candidate writes longer answers and the judge rewards length. The raw win rate is far
    from the truth (0.5), the length-controlled one close to it."""
    rng = np.random.default_rng(7)
    n = 600
    ref_len = rng.integers(200, 800, n).astype(float)
    ratio = np.exp(rng.normal(0.6, 0.5, n))  # the candidate writes ~1.8x longer
    cand_len = ref_len * ratio
    p_win = 1 / (1 + np.exp(-2.5 * np.log(ratio)))  # the judge's taste for length
    u = rng.random(n)
    outcome = np.where(u < p_win * 0.8, 1.0, np.where(u < p_win * 0.8 + 0.2, 0.5, 0.0))
    raw = float(outcome.mean())
    controlled = judgebias.length_controlled_win_rate(outcome, cand_len, ref_len)
    print(f"raw judge win rate {raw:.3f}, length-controlled {controlled:.3f} (truth 0.5)")
    assert abs(raw - 0.5) > 0.15
    assert abs(controlled - 0.5) < 0.05


def test_without_a_length_effect_the_control_changes_little() -> None:
    rng = np.random.default_rng(8)
    n = 400
    ref_len = rng.integers(200, 800, n).astype(float)
    cand_len = ref_len * np.exp(rng.normal(0.0, 0.4, n))
    outcome = (rng.random(n) < 0.65).astype(float)
    controlled = judgebias.length_controlled_win_rate(outcome, cand_len, ref_len)
    assert controlled == pytest.approx(outcome.mean(), abs=0.05)
    assert judgebias.length_controlled_win_rate(outcome[:9], cand_len[:9], ref_len[:9]) is None
    assert judgebias.length_controlled_win_rate(outcome, ref_len, ref_len) is None


@pytest.mark.parametrize(("model", "fam"), [
    ("gpt-4-0613", "OpenAI GPT"), ("gpt-4o-mini", "OpenAI GPT"), ("o3-mini", "OpenAI GPT"),
    ("meta-llama/Llama-3.1-8B-Instruct", "Llama"), ("codellama/CodeLlama-7b-hf", "Llama"),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", "Mistral"), ("HuggingFaceH4/zephyr-7b-beta",
                                                          "Mistral"),
    ("google/gemma-3-270m-it", "Gemma"), ("HuggingFaceTB/SmolLM2-135M-Instruct", "SmolLM"),
    ("Qwen/Qwen2.5-7B-Instruct", "Qwen"), ("my-own-model", None), (None, None),
])
def test_model_families(model: str | None, fam: str | None) -> None:
    assert judgebias.family(model) == fam


def test_self_judging_and_same_family_judges_are_named() -> None:
    models = {"gpt4": "gpt-4-0613", "llama": "meta-llama/Llama-3.1-8B-Instruct",
              "gemma": "google/gemma-3-270m-it"}
    reason, message = judgebias.self_judging("gpt4", None, "gpt4", models)
    assert reason == "SelfJudging" and "the judge is the reference target gpt4" in message
    assert "spec.scorers.judge.external" in message
    reason, message = judgebias.self_judging(None, "gpt-4o", "gpt4", models)
    assert reason == "SameFamily"
    assert "the judge gpt-4o is of the OpenAI GPT family, like gpt4 (gpt-4-0613)" in message
    assert judgebias.self_judging(None, "claude-3-5-sonnet", "gpt4", models) is None
