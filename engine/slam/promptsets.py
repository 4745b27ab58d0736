"""Prompt sets: load, validate and resolve prompts into chat messages, before any request is sent.

File formats (both validated against the same `Prompt` model as `spec.promptSet.inline`):

- YAML: a list of prompts, or a mapping with `prompts:` and optional set-wide `system` and
  `template` that every prompt inherits (see manifests/examples/prompts/pep-talk.yaml);
- JSONL: one prompt object per line.

Sources: a file, inline in the Evaluation, a ConfigMap key (read through the API server) or an S3
object (boto3). Every problem is reported with the file (or ConfigMap/S3 object), the line or
record, and the field, and all problems are reported at once.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from slam.api.common import describe_errors
from slam.api.evaluation import Prompt, PromptSetSource

SET_DEFAULTS = ("system", "template")
SET_KEYS = {"name", "description", "prompts", *SET_DEFAULTS}


class PromptSetError(ValueError):
    """A prompt set that cannot be used; `problems` has one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


@dataclass(frozen=True)
class PromptItem:
    """A prompt ready to send: chat messages, plus reference answers if the set has them."""

    id: str
    messages: tuple[dict[str, str], ...]
    references: tuple[str, ...] = ()


@dataclass(frozen=True)
class PromptSet:
    name: str
    source: str  # where it came from, for messages and reports
    prompts: tuple[PromptItem, ...]

    def shard(self, index: int, count: int) -> PromptSet:
        """The prompts of shard `index` of `count` (round robin, stable across restarts)."""
        return PromptSet(self.name, self.source, self.prompts[index::count])


# --- resolving ---------------------------------------------------------------------------------


def template_fields(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


def resolve(prompt: Prompt) -> PromptItem:
    """Chat messages for a validated prompt (template variables already checked)."""
    if prompt.messages is not None:
        messages = [m.model_dump() for m in prompt.messages]
        if prompt.system and not any(m["role"] == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": prompt.system})
    else:
        assert prompt.template is not None
        messages = [{"role": "user", "content": prompt.template.format_map(prompt.variables or {})}]
        if prompt.system:
            messages.insert(0, {"role": "system", "content": prompt.system})
    return PromptItem(prompt.id, tuple(messages), tuple(prompt.references or ()))


def _template_problems(prompt: Prompt) -> list[str]:
    if prompt.template is None:
        return []
    try:
        names = template_fields(prompt.template)
    except ValueError as e:
        return [f"template: not a valid template ({e}); write literal braces as {{{{ and }}}}"]
    missing = sorted(set(names) - set(prompt.variables or {}))
    return [f"variables.{name}: missing (the template uses {{{name}}})" for name in missing]


def validate_records(
    records: Iterable[tuple[str, Any]], defaults: dict[str, Any], source: str
) -> list[PromptItem]:
    """Validate (location, raw record) pairs; raise PromptSetError with every problem."""
    items: list[PromptItem] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for where, raw in records:
        if not isinstance(raw, dict):
            problems.append(f"{source}: {where}: a prompt must be a mapping with an id")
            continue
        label = f"{source}: {where}"
        if isinstance(raw.get("id"), str):
            label += f" (id {raw['id']})"
        merged = dict(raw)
        if "messages" not in raw:
            for key in SET_DEFAULTS:
                if key in defaults and key not in raw:
                    merged[key] = defaults[key]
        elif "system" in defaults and "system" not in raw:
            merged["system"] = defaults["system"]
        try:
            prompt = Prompt.model_validate(merged)
        except ValidationError as e:
            problems += [f"{label}: {p}" for p in describe_errors(e)]
            continue
        template_problems = _template_problems(prompt)
        if template_problems:
            problems += [f"{label}: {p}" for p in template_problems]
            continue
        if prompt.id in seen:
            problems.append(f"{label}: id: duplicate of {seen[prompt.id]}")
            continue
        seen[prompt.id] = where
        items.append(resolve(prompt))
    if problems:
        raise PromptSetError(problems)
    if not items:
        raise PromptSetError([f"{source}: no prompts (add at least one under `prompts:`)"])
    return items


# --- parsing -----------------------------------------------------------------------------------


def parse_jsonl(text: str, source: str) -> PromptSet:
    records: list[tuple[str, Any]] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((f"line {number}", json.loads(line)))
        except json.JSONDecodeError as e:
            problems.append(
                f"{source}: line {number}: not valid JSON ({e.msg} at column {e.colno})"
            )
    if problems:
        raise PromptSetError(problems)
    items = validate_records(records, {}, source)
    return PromptSet(Path(source).stem, source, tuple(items))


def parse_yaml(text: str, source: str) -> PromptSet:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise PromptSetError([f"{source}: not valid YAML: {e}"]) from None
    if isinstance(data, list):
        defaults: dict[str, Any] = {}
        prompts, seq = data, node
        name = Path(source).stem
    elif isinstance(data, dict):
        unknown = sorted(set(data) - SET_KEYS)
        if unknown:
            raise PromptSetError(
                [f"{source}: {k}: unknown top-level key (expected {', '.join(sorted(SET_KEYS))})"
                 for k in unknown]
            )
        prompts = data.get("prompts")
        if not isinstance(prompts, list):
            raise PromptSetError([f"{source}: prompts: must be a list of prompts"])
        defaults = {k: data[k] for k in SET_DEFAULTS if k in data}
        seq = next(v for k, v in node.value if k.value == "prompts")
        name = str(data.get("name") or Path(source).stem)
    else:
        raise PromptSetError(
            [f"{source}: expected a list of prompts or a mapping with `prompts:`"]
        )
    lines = [item.start_mark.line + 1 for item in seq.value]
    records = [(f"line {line}, prompts[{i}]", raw) for i, (line, raw) in
               enumerate(zip(lines, prompts, strict=True))]
    return PromptSet(name, source, tuple(validate_records(records, defaults, source)))


def parse(text: str, source: str) -> PromptSet:
    """Parse a prompt-set file's text; JSONL when the name ends in .jsonl, YAML otherwise."""
    if source.endswith(".jsonl"):
        return parse_jsonl(text, source)
    return parse_yaml(text, source)


# --- sources -----------------------------------------------------------------------------------


def read_file(path: Path) -> PromptSet:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PromptSetError([f"{path}: no such prompt-set file (spec.promptSet.file)"]) from None
    except OSError as e:
        raise PromptSetError([f"{path}: cannot read the prompt set: {e.strerror}"]) from None
    return parse(text, str(path))


def read_s3(bucket: str, key: str, region: str | None = None, s3_client: Any = None) -> PromptSet:
    """A prompt set in S3 (credentials and endpoint from the usual AWS environment)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    where = f"s3://{bucket}/{key}"
    s3 = s3_client or boto3.client("s3", region_name=region)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404"):
            raise PromptSetError([f"{where}: no such object (spec.promptSet.s3.key)"]) from None
        if code == "NoSuchBucket":
            raise PromptSetError([f"{where}: no such bucket (spec.promptSet.s3.bucket)"]) from None
        raise PromptSetError([f"{where}: cannot read it: {code or e}"]) from None
    except BotoCoreError as e:
        raise PromptSetError([f"{where}: cannot read it: {e}"]) from None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PromptSetError([f"{where}: not UTF-8 text"]) from None
    return parse(text, where)


def load(
    source: PromptSetSource,
    *,
    base_dir: Path | None = None,
    s3_client: Any = None,
    recorded: Callable[[], PromptSet] | None = None,
) -> PromptSet:
    """Load and validate the prompt set an Evaluation names; `limit` applied. `recorded` reads
    the requests the shadow gateway recorded (from the results store)."""
    if source.recorded is not None:
        if recorded is None:
            raise PromptSetError(["spec.promptSet.recorded: the recorded requests are in the "
                                  "results store; `slam run` and the scoring Job read them"])
        ps = recorded()
        if len(ps.prompts) < source.recorded.min_prompts:
            raise PromptSetError([
                f"spec.promptSet.recorded: {ps.source}: {len(ps.prompts)} so far, fewer than "
                f"minPrompts {source.recorded.min_prompts}; let the gateway record more (or "
                "raise its sample rate), then run again"])
    elif source.inline is not None:
        bad = [f"spec.promptSet.inline (id {p.id}): {msg}" for p in source.inline
               for msg in _template_problems(p)]
        if bad:
            raise PromptSetError(bad)
        items = [resolve(p) for p in source.inline]
        ps = PromptSet("inline", "spec.promptSet.inline", tuple(items))
    elif source.file is not None:
        path = Path(source.file)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        ps = read_file(path)
    elif source.config_map is not None:
        # In a cluster the operator mounts the ConfigMap into the scoring Job as a file (and
        # the spec the Job gets names that file); `slam run` reads it from the manifests.
        raise PromptSetError(
            ["spec.promptSet.configMap: read in a cluster; without one, point "
             "spec.promptSet.file at a local copy of the file"]
        )
    else:
        assert source.s3 is not None
        ps = read_s3(source.s3.bucket, source.s3.key, source.s3.region, s3_client)
    if source.limit is not None:
        ps = PromptSet(ps.name, ps.source, ps.prompts[: source.limit])
    return ps
