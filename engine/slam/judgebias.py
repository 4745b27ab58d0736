"""Controls for an LLM judge's known biases. Pure functions.

- Self-preference: judges favour their own answers and their family's (MT-Bench, Zheng et al.
  2023; Chatbot Arena): a judge that is the reference target, a candidate, or of the same model
  family as a target gets a warning wherever results are read.
- Length: judges favour longer answers. The length-controlled win rate regresses the verdict
  (1 win, 0.5 tie, 0 loss) on the log length ratio of the two answers with a logistic link
  (fractional outcomes, as AlpacaEval's length-controlled win rate does) and reports the win
  rate the fit gives at equal length.
- Trust: the judge's agreement with human raters (Cohen's kappa) below a threshold keeps its
  verdicts out of the decision (they are still reported).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import numpy as np

# Model families, matched on the model name's last path part. OpenAI's models are one family.
_FAMILIES = (
    (r"^(gpt|chatgpt|o[134](-|$)|text-davinci)", "OpenAI GPT"),
    (r"^claude", "Anthropic Claude"),
    (r"(^|-)(code)?llama", "Llama"),
    (r"^(mistral|mixtral|ministral|codestral)", "Mistral"),
    (r"^gemma", "Gemma"),
    (r"^gemini", "Gemini"),
    (r"^qw(en|q)", "Qwen"),
    (r"^phi", "Phi"),
    (r"^smollm", "SmolLM"),
    (r"^deepseek", "DeepSeek"),
    (r"^falcon", "Falcon"),
    (r"^zephyr", "Zephyr (Mistral)"),
    (r"^command", "Cohere Command"),
    (r"^granite", "Granite"),
    (r"^olmo", "OLMo"),
)


def family(model: str | None) -> str | None:
    """The model family of a model name or Hub id (e.g. gpt-4-0613 -> OpenAI GPT,
    meta-llama/Llama-3.1-8B-Instruct -> Llama); None when unknown."""
    if not model:
        return None
    base = model.rsplit("/", 1)[-1].lower()
    for pattern, name in _FAMILIES:
        if re.search(pattern, base):
            return "Mistral" if name == "Zephyr (Mistral)" else name
    return None


def self_judging(judge_target: str | None, judge_model: str | None, reference: str,
                 models: Mapping[str, str | None]) -> tuple[str, str] | None:
    """(reason, message) when the judge may prefer some target's answers for being its own or
    its family's; None when it is independent (as far as names tell). `models`: target ->
    model name; `judge_target`: the target acting as judge, if any."""
    fix = "use an external judge (spec.scorers.judge.external) of another model family"
    if judge_target is not None:
        role = "the reference" if judge_target == reference else "a candidate"
        return ("SelfJudging",
                f"the judge is {role} target {judge_target}: LLM judges prefer their own answers "
                f"(MT-Bench and Chatbot Arena report large self-preference), so its verdicts "
                f"favour {judge_target}; {fix}")
    fam = family(judge_model)
    same = [f"{t} ({m})" for t, m in models.items() if fam is not None and family(m) == fam]
    if same:
        return ("SameFamily",
                f"the judge {judge_model} is of the {fam} family, like {', '.join(same)}: judges "
                f"favour answers of their own family, so its verdicts may favour them; {fix}")
    return None


def length_controlled_win_rate(outcomes: Sequence[float], candidate_lengths: Sequence[float],
                               reference_lengths: Sequence[float]) -> float | None:
    """The win rate at equal length: a logistic fit of the outcome on log(candidate length /
    reference length), read at a ratio of 1. None with fewer than 10 outcomes or when the length
    ratios do not vary (nothing to control)."""
    y = np.asarray(outcomes, dtype=np.float64)
    if len(y) < 10:
        return None
    d = np.log1p(np.asarray(candidate_lengths, dtype=np.float64)) - \
        np.log1p(np.asarray(reference_lengths, dtype=np.float64))
    if np.ptp(d) == 0:
        return None
    from scipy.optimize import minimize

    x = np.column_stack([np.ones_like(d), d])

    def loss(beta: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ beta
        # Bernoulli log-likelihood with fractional outcomes: softplus(z) - y z, stable.
        nll = float(np.sum(np.logaddexp(0.0, z) - y * z))
        grad = x.T @ (1.0 / (1.0 + np.exp(-z)) - y)
        return nll, grad

    fit = minimize(loss, np.zeros(2), jac=True, method="BFGS")
    return 1.0 / (1.0 + math.exp(-float(fit.x[0])))
