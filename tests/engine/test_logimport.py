"""`slam import`: a feature's logged API requests become a prompt set — redacted, deduplicated,
sampled — with the incumbent's answers as references and a summary of what was left out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from slam import promptsets
from slam.cli import app
from slam.redact import RedactionError, Redactor
from tests.api.cases import evaluation, model_deployment
from tests.conftest import STUB_API_KEY
from tests.servers import Stub

runner = CliRunner()
SLAM = str(Path(sys.executable).parent / "slam")
CALLER_KEY = "sk-proj-CALLERKEY0123456789abcdef"

# Personal data as people write it, in several countries' formats: (planted text, token).
PLANTED = [
    ("jane.doe@example.com", "[EMAIL]"),
    ("José.García+pedidos@correo.es", "[EMAIL]"),
    ("müller@beispiel.de", "[EMAIL]"),
    ("用户@例子.中国", "[EMAIL]"),
    ("(415) 555-2671", "[PHONE]"),         # US
    ("+1 415-555-2671", "[PHONE]"),
    ("020 7946 0958", "[PHONE]"),          # UK, national
    ("+44 20 7946 0958", "[PHONE]"),
    ("06 12 34 56 78", "[PHONE]"),         # France
    ("030 901820", "[PHONE]"),             # Germany
    ("+49 (0)30 901820", "[PHONE]"),
    ("03-1234-5678", "[PHONE]"),           # Japan
    ("098765 43210", "[PHONE]"),           # India
    ("(11) 98765-4321", "[PHONE]"),        # Brazil
    ("612 34 56 78", "[PHONE]"),           # Spain
    ("4111 1111 1111 1111", "[CARD]"),     # Visa, spaced
    ("5555-5555-5555-4444", "[CARD]"),     # Mastercard, dashed
    ("378282246310005", "[CARD]"),         # Amex, unbroken
    ("DE89 3704 0044 0532 0130 00", "[IBAN]"),
    ("GB82WEST12345698765432", "[IBAN]"),
    ("FR14 2004 1010 0505 0001 3M02 606", "[IBAN]"),
]

SENTENCES = [
    "Please contact me at {} about my order.",
    "Bitte rufen Sie mich unter {} zurück, danke!",
    "Mon numéro est le {}; merci de me rappeler.",
    "私の連絡先は {} です。",
    "Mi dato es {}, gracias.",
]

# Numbers that are not personal data and must survive.
ORDINARY = [
    "Order 1234 5678 9012 3456 shipped",  # 16 digits that fail the Luhn check
    "Meeting on 2024-03-15 at 10:30",
    "Le 15/03/2024 à 14h",
    "Total: $1,234.56 for 3 items",
    "Version 3.12.1 of the library, build 20240315",
    "Population 8,336,817 in 2020",
]


@pytest.mark.parametrize("planted,token", PLANTED, ids=[p for p, _ in PLANTED])
def test_personal_data_is_replaced_in_every_format(planted: str, token: str) -> None:
    redactor = Redactor.build()
    for sentence in SENTENCES:
        text, counts = redactor.redact(sentence.format(planted))
        assert planted not in text and token in text, (sentence, text)
        assert sum(counts.values()) == 1, counts
        assert redactor.redact(text)[0] == text  # redacting again changes nothing


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_numbers_are_left_alone(text: str) -> None:
    assert Redactor.build().redact(text) == (text, {})


def test_custom_patterns_run_first_and_bad_ones_are_named() -> None:
    redactor = Redactor.build([r"EMPLOYEE_ID=EMP-\d{6}", r"TICKET=\bT#\d+"])
    text, counts = redactor.redact("EMP-061234567 opened T#88, mail ops@example.com")
    assert text == "[EMPLOYEE_ID]567 opened [TICKET], mail [EMAIL]"
    assert counts == {"EMPLOYEE_ID": 1, "TICKET": 1, "email": 1}
    with pytest.raises(RedactionError, match=r"--redact ACCOUNT: not a valid regular expression"):
        Redactor.build(["ACCOUNT=ACC-(\\d+"])
    with pytest.raises(RedactionError, match="--redact EMPTY: the pattern matches empty text"):
        Redactor.build(["EMPTY=x*"])
    with pytest.raises(RedactionError, match="--redact 'no-equals': write NAME=REGEX"):
        Redactor.build(["no-equals"])
    with pytest.raises(RedactionError, match="--redact EMAIL: a built-in detector"):
        Redactor.build(["EMAIL=@"])
    with pytest.raises(RedactionError, match="phone regions XX: not ISO 3166"):
        Redactor.build(phone_regions=["GB", "XX"])
    # Only the detectors asked for run.
    only_email = Redactor.build(builtins=["email"])
    assert only_email.redact("a@b.io, 4111 1111 1111 1111")[0] == "[EMAIL], 4111 1111 1111 1111"


def test_phone_numbers_are_found_as_in_a_scan_of_the_whole_text() -> None:
    """The phone detector reads only the text around likely numbers (it would otherwise parse
    every short number in an answer once per region); it must find exactly what libphonenumber's
    matcher finds in the whole text, numbers side by side, inside words and punctuation
    included."""
    import random

    import phonenumbers

    from slam import redact

    rng = random.Random(30)
    pieces = [p for p, _ in PLANTED] + ORDINARY + [
        "step 1", "3 items", "tok15", "v2", "+", "(", ")", "-", "/", " ", ", ", "x", "ext. 12",
        "Tel.", "No.", "#", "call", "Z", "12", "2024-03-15", "555", "0800 123", "1-800-FLOWERS",
        "+44", "(0)", "20", "7946", "0958", "415", "555-2671", "06", "12 34", "56 78"]
    regions = redact.DEFAULT_PHONE_REGIONS
    redactor = Redactor.build()
    for _ in range(300):
        text = "".join(rng.choice(pieces) + rng.choice(["", " ", "  ", ": ", "\n", "a"])
                       for _ in range(rng.randint(1, 12)))
        spans = [(m.start, m.end) for region in regions
                 for m in phonenumbers.PhoneNumberMatcher(text, region)
                 if not redact._DATE.match(m.raw_string)]
        whole = redact._replace(text, spans, "[PHONE]")
        assert redact._phones(redactor, text) == whole, text


# --- the command ---------------------------------------------------------------------------------


def chat(content: str, model: str = "gpt-4o", **extra) -> dict:
    return {"model": model, "messages": [{"role": "system", "content": "You are a support bot."},
                                         {"role": "user", "content": content}], **extra}


def completion(*answers: str) -> dict:
    return {"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o",
            "choices": [{"index": i, "message": {"role": "assistant", "content": a},
                         "finish_reason": "stop"} for i, a in enumerate(answers)]}


def stream(*pieces: str) -> list[dict]:
    return [{"object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]


def planted_logs() -> list[object]:
    """A day of a support feature's logs: every shape and every reason to leave one out."""
    lines: list[object] = []
    for i, ((planted, _), sentence) in enumerate(
            zip(PLANTED, SENTENCES * 5, strict=False)):
        lines.append({"request": chat(sentence.format(planted) + f" (case {i})",
                                      user=f"user-{i}"),
                      "headers": {"Authorization": f"Bearer {CALLER_KEY}"},
                      "response": completion(f"Noted, we will reach you at {planted}.")})
    lines += [
        chat("Where is my parcel?\nIt was due Monday."),                        # bare body
        {"request": chat("Where is my parcel?\nIt was due   Monday."),           # duplicate
         "response": completion("It arrives tomorrow.")},
        {"request": chat("Where is my parcel?\nIt was due Monday."),
         "response": {"status_code": 200, "body": completion("It is in transit.",
                                                             "Tomorrow.")}},
        {"request": chat("Write a haiku about refunds", stream=True),
         "response": stream("Money ", "flows back ", "home")},
        {"request": chat("Summarise my complaint"),
         "response": {"error": {"type": "rate_limit_exceeded", "message": "slow down"}}},
        {"request": chat("Translate 'hello'", model="gpt-3.5-turbo"),
         "response": completion("Bonjour")},
        {"request": {"model": "gpt-4o", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}},
        {"request": {"model": "gpt-4o", "messages": [{"role": "developer", "content": "Be brief."},
                                                     {"role": "user", "content": [
                                                         {"type": "text", "text": "Hours?"}]}]},
         "response": completion("9 to 5.")},
        {"request": chat("Weather in Paris?", tools=[{"type": "function",
                                                      "function": {"name": "weather"}}])},
        {"request": {"model": "gpt-4o", "messages": [
            {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}},
        {"request": {"model": "text-embedding-3-small", "input": "embed me"}},
        {"custom_id": "emb-1", "method": "POST", "url": "/v1/embeddings",
         "body": {"model": "text-embedding-3-small", "input": "x"}},
        "not json at all {",
        {"request": chat("x" * 70000)},
    ]
    return lines


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False))
                            + "\n" for r in records), encoding="utf-8")
    return path


def invoke(*args: str):
    return runner.invoke(app, ["import", *args], env={"COLUMNS": "200"})


def test_logs_become_a_redacted_prompt_set_with_references_and_a_summary(tmp_path: Path) -> None:
    logs = write_jsonl(tmp_path / "support-2026-12-01.jsonl", planted_logs())
    out = tmp_path / "support.yaml"
    result = invoke(str(logs), "--out", str(out), "--model", "gpt-4o")
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "support-2026-12-01.jsonl: 35 read" in said
    for reason, count, lines in [("not valid JSON", 1, "34"),
                                 ("not a chat-completion request", 2, "32, 33"),
                                 ("a model not asked for (--model)", 1, "27"),
                                 ("non-text content (images, audio or files)", 1, "28"),
                                 ("function or tool calling", 1, "30"),
                                 ("does not end with a user message", 1, "31"),
                                 ("too long (over 64 messages", 1, "35"),
                                 ("duplicate of an earlier request", 2, "23, 24")]:
        assert reason in said and f" {count} " in said.split(reason, 1)[1][:90], reason
        assert lines in said.split(reason, 1)[1][:120], (reason, lines)
    assert "1 logged answer(s) were errors" in said
    assert f"wrote {out}: 25 prompts" in said

    text = out.read_text(encoding="utf-8")
    loaded = promptsets.read_file(out)  # an ordinary prompt set, valid as spec.promptSet.file
    assert len(loaded.prompts) == 25 and loaded.name == "support"
    # No planted personal data, no caller key, in the file or the summary.
    for planted, _ in PLANTED:
        assert planted not in text and planted not in result.output, planted
    assert CALLER_KEY not in text and "user-1" not in text
    assert text.count("[PHONE]") >= 2 * 11 and text.count("[CARD]") == 2 * 3
    by_content = {p.messages[-1]["content"]: p for p in loaded.prompts}
    parcel = by_content["Where is my parcel?\nIt was due Monday."]
    # The duplicates' answers pooled as references, each once.
    assert parcel.references == ("It arrives tomorrow.", "It is in transit.", "Tomorrow.")
    assert by_content["Write a haiku about refunds"].references == ("Money flows back home",)
    assert by_content["Summarise my complaint"].references == ()
    hours = by_content["Hours?"]
    assert hours.messages[0] == {"role": "system", "content": "Be brief."}  # developer → system
    assert hours.references == ("9 to 5.",)
    # The incumbent's answer echoed the caller's data: redacted too.
    case0 = next(p for c, p in by_content.items() if c.endswith("(case 0)"))
    assert case0.references == ("Noted, we will reach you at [EMAIL].",)
    description = yaml.safe_load(text)["description"]
    assert "35 requests read, 25 kept" in description and "e-mail addresses" in description

    # The same logs again give the same ids (hashes of the redacted request), so a re-import
    # does not re-key ratings; --force is needed to replace the file.
    again = invoke(str(logs), "--out", str(out), "--model", "gpt-4o")
    assert again.exit_code == 1 and "exists; pass --force" in again.output
    assert out.read_text(encoding="utf-8") == text
    assert invoke(str(logs), "--out", str(out), "--model", "gpt-4o", "--force").exit_code == 0
    assert out.read_text(encoding="utf-8") == text


def test_a_seeded_sample_is_reproducible_and_says_what_it_left_out(tmp_path: Path) -> None:
    logs = write_jsonl(tmp_path / "logs.jsonl", [chat(f"Question number {i}?")
                                                 for i in range(200)])

    def ids(seed: int, name: str) -> list[str]:
        out = tmp_path / name
        result = invoke(str(logs), "-o", str(out), "--sample", "20", "--seed", str(seed))
        assert result.exit_code == 0, result.output
        assert "outside the sample" in result.output and " 180 " in result.output
        return [p.id for p in promptsets.read_file(out).prompts]

    first, same, other = ids(7, "a.jsonl"), ids(7, "b.jsonl"), ids(8, "c.jsonl")
    assert len(first) == 20 and first == same and first != other
    # Log order is kept within the sample.
    all_ids = [p.id for p in promptsets.read_file(tmp_path / "a.jsonl").prompts]
    assert all_ids == first


def test_batch_input_with_its_output_file_gives_references(tmp_path: Path) -> None:
    requests = write_jsonl(tmp_path / "batch_input.jsonl", [
        {"custom_id": f"req-{i}", "method": "POST", "url": "/v1/chat/completions",
         "body": chat(f"Classify ticket {i}")} for i in range(3)])
    outputs = write_jsonl(tmp_path / "batch_output.jsonl", [
        {"id": "batch_req_1", "custom_id": "req-2",
         "response": {"status_code": 200, "body": completion("billing")}, "error": None},
        {"id": "batch_req_2", "custom_id": "req-0",
         "response": {"status_code": 200, "body": completion("shipping")}, "error": None},
        {"id": "batch_req_3", "custom_id": "req-1", "response": None,
         "error": {"code": "server_error", "message": "failed"}},
    ])
    out = tmp_path / "tickets.yaml"
    result = invoke(str(requests), "-o", str(out), "--responses", str(outputs))
    assert result.exit_code == 0, result.output
    got = {p.messages[-1]["content"]: p.references for p in promptsets.read_file(out).prompts}
    assert got == {"Classify ticket 0": ("shipping",), "Classify ticket 1": (),
                   "Classify ticket 2": ("billing",)}


def test_bad_input_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    logs = write_jsonl(tmp_path / "logs.jsonl", ["{", {"input": "embed"}])
    out = tmp_path / "p.yaml"
    result = invoke(str(logs), "-o", str(out))
    assert result.exit_code == 1 and not out.exists()
    said = " ".join(result.output.split())
    assert "no request could be used; nothing written" in said and "not valid JSON" in said
    for args, message in [
        (["--redact", "BAD=("], "--redact BAD: not a valid regular expression"),
        (["--phone-region", "ZZZ"], "phone regions ZZZ"),
        (["--id-prefix", "-x"], "--id-prefix '-x'"),
    ]:
        r = invoke(str(logs), "-o", str(out), *args)
        assert r.exit_code == 1 and message in " ".join(r.output.split()), (args, r.output)
    r = invoke(str(tmp_path / "missing.jsonl"), "-o", str(out))
    assert r.exit_code == 1 and "missing.jsonl: cannot read" in " ".join(r.output.split())
    r = invoke(str(logs), "-o", str(tmp_path / "p.csv"))
    assert r.exit_code == 1 and "name a .yaml or .jsonl file" in r.output
    (tmp_path / "latin1.jsonl").write_bytes(json.dumps(chat("x")).encode() + b"\xe9\n")
    r = invoke(str(tmp_path / "latin1.jsonl"), "-o", str(out))
    assert r.exit_code == 1 and "not UTF-8 text" in r.output
    assert not out.exists()


def test_the_imported_set_validates_and_runs_in_an_evaluation(tmp_path: Path, stub: Stub) -> None:
    logs = write_jsonl(tmp_path / "logs.jsonl", planted_logs())
    assert invoke(str(logs), "-o", str(tmp_path / "imported.yaml")).exit_code == 0
    ev = evaluation(promptSet={"file": "imported.yaml"})
    ev["spec"]["targets"][0]["external"]["baseUrl"] = stub.base_url
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump_all([model_deployment(), ev]))
    v = runner.invoke(app, ["validate", str(tmp_path / "eval.yaml")])
    assert v.exit_code == 0, v.output
    served = Stub(tmp_path / "served").start()
    try:
        run = subprocess.run(
            [SLAM, "run", str(tmp_path / "eval.yaml"), "--limit", "3", "--no-progress",
             "--store", f"sqlite:///{tmp_path / 'results.db'}",
             "--endpoint", f"mistral={served.base_url}"],
            capture_output=True, text=True, cwd=tmp_path, timeout=600,
            env={**os.environ, "SLAM_SECRET_OPENAI__API_KEY": STUB_API_KEY})
    finally:
        served.stop()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "6 requests sent (0 failed)" in " ".join((run.stdout + run.stderr).split())
