"""Prompt sets from production logs: `slam import`.

Reads a JSONL file of chat-completion requests as a feature sent them to its API model, one per
line, in any of these shapes:

- the request body itself (``{"model": ..., "messages": [...]}``);
- a logged exchange: ``{"request": {...}, "response": {...}}`` (``body`` is accepted for
  ``request``), where the response is a ``chat.completion``, the list of ``chat.completion.chunk``
  objects a stream sent, an error (``{"error": ...}``), or any of those wrapped as
  ``{"status_code": ..., "body": ...}``;
- an OpenAI Batch API input line (``{"custom_id", "method", "url", "body"}``), with the answers
  joined from the batch's output file by ``custom_id``.

Each request becomes a prompt of chat messages; the incumbent's answers (every choice) become its
reference answers. Personal data is redacted (slam.redact) before anything is kept, duplicates
are merged (their distinct answers pooled as references), an optional seeded sample is drawn, and
every request left out is counted by reason with the lines it was on. The written file is an
ordinary prompt set (YAML or JSONL) for `spec.promptSet`.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from slam.redact import Redactor, label

MAX_MESSAGES = 64
MAX_CHARS = 65536
MAX_REFERENCES = 16
EXAMPLE_LINES = 5

# Reasons a request is left out, in the order the summary lists them.
NOT_JSON = "not valid JSON"
NOT_CHAT = "not a chat-completion request"
OTHER_MODEL = "a model not asked for (--model)"
NOT_TEXT = "non-text content (images, audio or files)"
TOOLS = "function or tool calling"
NOTHING_TO_ANSWER = "does not end with a user message"
TOO_LONG = f"too long (over {MAX_MESSAGES} messages or {MAX_CHARS} characters in one)"
DUPLICATE = "duplicate of an earlier request"
NOT_SAMPLED = "outside the sample"
REASONS = (NOT_JSON, NOT_CHAT, OTHER_MODEL, NOT_TEXT, TOOLS, NOTHING_TO_ANSWER, TOO_LONG,
           DUPLICATE, NOT_SAMPLED)

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


class LogImportError(ValueError):
    """The logs cannot be imported at all (no file, nothing usable); the message says why."""


class _Skip(Exception):
    def __init__(self, reason: str):
        self.reason = reason


@dataclass
class Summary:
    """What happened to every line: read, kept, left out by reason, redacted by kind."""

    source: str
    read: int = 0
    kept: int = 0
    with_references: int = 0
    answer_errors: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    lines: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    redacted: Counter[str] = field(default_factory=Counter)

    def drop(self, reason: str, line: int) -> None:
        self.dropped[reason] += 1
        if len(self.lines[reason]) < EXAMPLE_LINES:
            self.lines[reason].append(line)

    def rows(self) -> list[tuple[str, int, str]]:
        """(reason, count, first lines) for every reason that left something out."""
        out = []
        for reason in REASONS:
            if self.dropped[reason]:
                shown = ", ".join(str(n) for n in self.lines[reason])
                more = ", ..." if self.dropped[reason] > len(self.lines[reason]) else ""
                out.append((reason, self.dropped[reason], shown + more))
        return out

    def describe(self) -> str:
        """One paragraph for the prompt set's description."""
        left = "; ".join(f"{count} {reason}" for reason, count, _ in self.rows())
        text = (f"Imported from {self.source}: {self.read} requests read, {self.kept} kept "
                f"({self.with_references} with the incumbent's answers as references)")
        if left:
            text += f"; left out: {left}"
        if self.redacted:
            text += "; redacted: " + ", ".join(f"{n} {label(kind)}" for kind, n in
                                              sorted(self.redacted.items()))
        return text + "."


@dataclass
class _Entry:
    messages: list[dict[str, str]]
    references: list[str]
    line: int


# --- reading one record ------------------------------------------------------------------------


def _unwrap(response: Any) -> Any:
    if isinstance(response, dict) and "body" in response and "choices" not in response:
        return response["body"]
    return response


def request_of(record: Any) -> tuple[dict[str, Any], Any, str | None]:
    """(request body, logged response or None, custom_id or None) of one log record."""
    if not isinstance(record, dict):
        raise _Skip(NOT_CHAT)
    if "messages" in record:
        return record, record.get("response"), record.get("custom_id")
    url = record.get("url")
    if isinstance(url, str) and not url.rstrip("/").endswith("/chat/completions"):
        raise _Skip(NOT_CHAT)
    request = record.get("request", record.get("body"))
    if isinstance(request, dict) and "body" in request and "messages" not in request:
        request = request["body"]  # a gateway log that keeps method, url and body
    if not isinstance(request, dict) or "messages" not in request:
        raise _Skip(NOT_CHAT)
    return request, record.get("response"), record.get("custom_id")


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            elif isinstance(part, str):
                texts.append(part)
            else:
                raise _Skip(NOT_TEXT)
        return "".join(texts)
    raise _Skip(NOT_CHAT)


def messages_of(request: dict[str, Any]) -> list[dict[str, str]]:
    """The request's chat messages in the prompt-set form; raises _Skip with the reason."""
    raw = request.get("messages")
    if not isinstance(raw, list) or not raw:
        raise _Skip(NOT_CHAT)
    if request.get("tools") or request.get("functions"):
        raise _Skip(TOOLS)
    messages = []
    for message in raw:
        if not isinstance(message, dict):
            raise _Skip(NOT_CHAT)
        if message.get("tool_calls") or message.get("function_call"):
            raise _Skip(TOOLS)
        role = message.get("role")
        if role in ("tool", "function"):
            raise _Skip(TOOLS)
        if role not in ROLES:
            raise _Skip(NOT_CHAT)
        messages.append({"role": ROLES[role], "content": _text(message.get("content"))})
    if messages[-1]["role"] != "user":
        raise _Skip(NOTHING_TO_ANSWER)
    if len(messages) > MAX_MESSAGES or any(len(m["content"]) > MAX_CHARS for m in messages):
        raise _Skip(TOO_LONG)
    return messages


def answers_of(response: Any) -> tuple[list[str], bool]:
    """(the incumbent's answer texts, whether the response was an error)."""
    response = _unwrap(response)
    if response is None:
        return [], False
    if isinstance(response, list):  # a stream's chunks, in order
        by_index: dict[int, list[str]] = defaultdict(list)
        for chunk in response:
            chunk = _unwrap(chunk)
            if not isinstance(chunk, dict):
                continue
            if "error" in chunk:
                return [], True
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") or {}
                if isinstance(delta.get("content"), str):
                    by_index[int(choice.get("index", 0))].append(delta["content"])
        texts = ["".join(parts) for _, parts in sorted(by_index.items())]
    elif isinstance(response, dict):
        if response.get("error"):
            return [], True
        texts = []
        for choice in response.get("choices") or ():
            message = (choice or {}).get("message") or {}
            content = message.get("content")
            if isinstance(content, str):
                texts.append(content)
    else:
        return [], False
    return [t for t in texts if t.strip() and len(t) <= MAX_CHARS], False


def prompt_key(messages: list[dict[str, str]]) -> str:
    """A request's identity: its roles and contents with whitespace runs collapsed (sha256)."""
    canonical = [[m["role"], " ".join(m["content"].split())] for m in messages]
    return hashlib.sha256(json.dumps(canonical, ensure_ascii=False).encode()).hexdigest()


# --- the whole file ----------------------------------------------------------------------------


def read_responses(path: Path) -> dict[str, Any]:
    """custom_id → response body from an OpenAI Batch API output file."""
    out: dict[str, Any] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise LogImportError(f"--responses {path}: cannot read ({e.strerror})") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise LogImportError(f"--responses {path}: line {number}: not valid JSON ({e.msg} at "
                               f"column {e.colno})") from None
        if isinstance(record, dict) and isinstance(record.get("custom_id"), str):
            out[record["custom_id"]] = record.get("response") or (
                {"error": record["error"]} if record.get("error") else None)
    return out


def import_logs(lines: Iterable[str], source: str, redactor: Redactor, *,
                models: Iterable[str] = (), sample: int | None = None, seed: int = 0,
                responses: dict[str, Any] | None = None,
                id_prefix: str = "p") -> tuple[list[dict[str, Any]], Summary]:
    """Prompts (prompt-set records, in log order) and the summary of what was left out."""
    wanted = set(models)
    summary = Summary(source)
    entries: dict[str, _Entry] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        summary.read += 1
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            summary.drop(NOT_JSON, number)
            continue
        try:
            request, response, custom_id = request_of(record)
            if wanted and request.get("model") not in wanted:
                raise _Skip(OTHER_MODEL)
            messages = messages_of(request)
        except _Skip as skip:
            summary.drop(skip.reason, number)
            continue
        if response is None and responses and custom_id in responses:
            response = responses[custom_id]
        answers, failed = answers_of(response)
        summary.answer_errors += failed
        for message in messages:
            message["content"], counts = redactor.redact(message["content"])
            summary.redacted += counts
        answers, counts = redactor.redact_all(answers)
        summary.redacted += counts
        key = prompt_key(messages)
        if key in entries:
            summary.drop(DUPLICATE, number)
            pooled = entries[key].references
            pooled += [a for a in answers if a not in pooled][:MAX_REFERENCES - len(pooled)]
            continue
        entries[key] = _Entry(messages, answers[:MAX_REFERENCES], number)
    keys = list(entries)
    if sample is not None and sample < len(keys):
        chosen = set(random.Random(seed).sample(keys, sample))
        for key in keys:
            if key not in chosen:
                summary.drop(NOT_SAMPLED, entries[key].line)
        keys = [k for k in keys if k in chosen]
    prompts = []
    for key in keys:
        entry = entries[key]
        prompt: dict[str, Any] = {"id": f"{id_prefix}-{key[:12]}", "messages": entry.messages}
        if entry.references:
            prompt["references"] = entry.references
            summary.with_references += 1
        prompts.append(prompt)
    summary.kept = len(prompts)
    return prompts, summary


# --- writing -----------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    # Multi-line messages and answers read as blocks, the way people write prompt sets.
    style = "|" if "\n" in value and not re.search(r"[ \t]\n|\s$|^\s", value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render(prompts: list[dict[str, Any]], summary: Summary, name: str, path: Path) -> str:
    """The prompt-set file's text: JSONL when the name ends in .jsonl, YAML otherwise."""
    if path.suffix == ".jsonl":
        return "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in prompts)
    document = {"name": name, "description": summary.describe(), "prompts": prompts}
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
