"""LLM judge: pairwise against the reference in both orders, and single-answer 1-10 grading.

Prompts follow MT-Bench's judge prompts (Zheng et al., 2023). Pure parsing functions decide what
the judge said; an answer that cannot be parsed is asked for once more, then recorded as
`unparseable` with the raw text — never guessed. A pairwise verdict that flips when the answers
swap places is position bias, not preference: it counts as a tie (`combine`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from openai import AsyncOpenAI

from slam.generate import Endpoint

PAIRWISE_SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two "
    "AI assistants to the user question displayed below. Choose the assistant that follows the "
    "user's instructions and answers the user's question better, considering helpfulness, "
    "relevance, accuracy, depth, creativity and level of detail. Avoid any position bias: the "
    "order in which the responses are presented must not influence your decision. Do not let "
    "the length of the responses or the names of the assistants influence you. Be as objective "
    "as possible. After a short explanation, output your final verdict by strictly following "
    'this format: "[[A]]" if assistant A is better, "[[B]]" if assistant B is better, and '
    '"[[C]]" for a tie.'
)
PAIRWISE_USER = (
    "[User Question]\n{question}\n\n[The Start of Assistant A's Answer]\n{a}\n"
    "[The End of Assistant A's Answer]\n\n[The Start of Assistant B's Answer]\n{b}\n"
    "[The End of Assistant B's Answer]"
)
DEFAULT_RUBRIC = (
    "Consider helpfulness, relevance, accuracy, depth, creativity and level of detail, and "
    "whether the response follows every instruction in the question."
)
SINGLE_SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the response provided by an AI "
    "assistant to the user question displayed below. {rubric} Begin your evaluation with a short "
    "explanation. Be as objective as possible. After the explanation, rate the response on a "
    'scale of 1 to 10 by strictly following this format: "Rating: [[5]]".'
)
SINGLE_USER = (
    "[Question]\n{question}\n\n[The Start of Assistant's Answer]\n{answer}\n"
    "[The End of Assistant's Answer]"
)
RETRY_NOTE = ('Your previous reply did not end with a verdict in the required format. '
              'Reply again and end with exactly one of {options}.')

VERDICT = re.compile(r"\[\[\s*([ABC])\s*\]\]")
RATING = re.compile(r"\[\[\s*(10|[1-9])(?:\.\d+)?\s*\]\]")


def parse_pairwise(text: str) -> str | None:
    """'first', 'second' or 'tie'; None when absent or contradictory."""
    found = set(VERDICT.findall(text or ""))
    if len(found) != 1:
        return None
    return {"A": "first", "B": "second", "C": "tie"}[found.pop()]


def parse_rating(text: str) -> float | None:
    found = set(RATING.findall(text or ""))
    if len(found) != 1:
        return None
    return float(found.pop())


def question_text(messages: list[dict]) -> str:
    """The conversation as the judge should see it (system instructions included)."""
    parts = []
    for m in messages:
        if m["role"] == "system":
            parts.append(f"(Instructions given to the assistant: {m['content']})")
        else:
            parts.append(m["content"])
    return "\n\n".join(parts)


@dataclass(frozen=True)
class JudgeReply:
    raw: str | None
    parse_status: str  # ok | unparseable | error
    value: str | float | None  # pairwise: first|second|tie; single: 1-10
    attempts: int
    prompt_tokens: int | None = None  # over every attempt, as the judge's server reported them
    completion_tokens: int | None = None


async def _ask(client: AsyncOpenAI, endpoint: Endpoint, system: str, user: str,
               parse, options: str, max_tokens: int) -> JudgeReply:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    raw = None
    used: list[int | None] = [None, None]  # prompt, completion tokens over the attempts

    def count(usage: object) -> None:
        for i, name in enumerate(("prompt_tokens", "completion_tokens")):
            n = getattr(usage, name, None) if usage is not None else None
            if isinstance(n, int):
                used[i] = (used[i] or 0) + n

    for attempt in (1, 2):
        try:
            resp = await client.chat.completions.create(
                model=endpoint.model, messages=messages, temperature=0, max_tokens=max_tokens,
                seed=0)
        except Exception as e:  # noqa: BLE001 - a provider failure is a result, not a crash
            message = f"{type(e).__name__}: {e}"
            if endpoint.api_key:
                message = message.replace(endpoint.api_key, "***")
            return JudgeReply(message[:2000], "error", None, attempt, *used)
        count(getattr(resp, "usage", None))
        raw = (resp.choices[0].message.content or "") if resp.choices else ""
        value = parse(raw)
        if value is not None:
            return JudgeReply(raw, "ok", value, attempt, *used)
        messages = [*messages, {"role": "assistant", "content": raw},
                    {"role": "user", "content": RETRY_NOTE.format(options=options)}]
    return JudgeReply(raw, "unparseable", None, 2, *used)


async def judge_pair(client: AsyncOpenAI, endpoint: Endpoint, question: str, first: str,
                     second: str, max_tokens: int = 512) -> JudgeReply:
    return await _ask(client, endpoint, PAIRWISE_SYSTEM,
                      PAIRWISE_USER.format(question=question, a=first, b=second),
                      parse_pairwise, '"[[A]]", "[[B]]" or "[[C]]"', max_tokens)


async def grade(client: AsyncOpenAI, endpoint: Endpoint, question: str, answer: str,
                rubric: str | None = None, max_tokens: int = 512) -> JudgeReply:
    return await _ask(client, endpoint, SINGLE_SYSTEM.format(rubric=rubric or DEFAULT_RUBRIC),
                      SINGLE_USER.format(question=question, answer=answer),
                      parse_rating, '"Rating: [[1]]" to "Rating: [[10]]"', max_tokens)


def combine(candidate_first: str | None, reference_first: str | None) -> tuple[float, bool] | None:
    """Outcome for the candidate from the verdicts of both orders: (1 win / 0 loss / 0.5 tie,
    consistent). `candidate_first` is the verdict with the candidate shown as A. None if either
    order has no verdict."""
    if candidate_first is None or reference_first is None:
        return None
    as_first = {"first": 1.0, "second": 0.0, "tie": 0.5}[candidate_first]
    as_second = {"first": 0.0, "second": 1.0, "tie": 0.5}[reference_first]
    if as_first == as_second:
        return as_first, True
    return 0.5, False  # the verdict followed the position, not the answers
