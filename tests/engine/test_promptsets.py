"""Prompt sets: the example set, every source, and errors that name file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from slam import promptsets
from slam.api.evaluation import PromptSetSource
from slam.promptsets import PromptSetError
from tests.controlplane.cluster import REPO

PEP_TALK = REPO / "manifests/examples/prompts/pep-talk.yaml"


def problems_of(text: str, name: str) -> list[str]:
    with pytest.raises(PromptSetError) as e:
        promptsets.parse(text, name)
    return e.value.problems


def test_the_pep_talk_example_has_30_plus_resolved_prompts() -> None:
    ps = promptsets.read_file(PEP_TALK)
    assert ps.name == "pep-talk" and len(ps.prompts) >= 30
    first = ps.prompts[0]
    assert first.id == "pep-01"
    assert [m["role"] for m in first.messages] == ["system", "user"]
    assert "Maya" in first.messages[1]["content"] and "{" not in first.messages[1]["content"]
    assert len({p.id for p in ps.prompts}) == len(ps.prompts)


def test_jsonl_with_messages_and_references() -> None:
    text = "\n".join(json.dumps(r) for r in [
        {"id": "a", "messages": [{"role": "user", "content": "hi"}], "references": ["hello"]},
        {"id": "b", "template": "Hi {who}", "variables": {"who": "Ann"}, "system": "Be brief"},
    ])
    ps = promptsets.parse(text, "set.jsonl")
    assert ps.prompts[0].references == ("hello",)
    assert ps.prompts[1].messages == ({"role": "system", "content": "Be brief"},
                                      {"role": "user", "content": "Hi Ann"})


def test_jsonl_errors_name_the_line_and_field() -> None:
    text = "\n".join([
        json.dumps({"id": "a", "messages": [{"role": "user", "content": "hi"}]}),
        '{"id": "b", "messages": [',
        json.dumps({"id": "c", "messages": [{"role": "robot", "content": "hi"}]}),
        json.dumps({"id": "a", "messages": [{"role": "user", "content": "again"}]}),
    ])
    with pytest.raises(PromptSetError) as e:
        promptsets.parse(text, "set.jsonl")
    assert e.value.problems == ["set.jsonl: line 2: not valid JSON (Expecting value at column 26)"]
    text = text.replace('{"id": "b", "messages": [', '{"id": "b", "template": "x {y}"}')
    problems = problems_of(text, "set.jsonl")
    assert any(p.startswith("set.jsonl: line 2 (id b): variables.y: missing") for p in problems)
    assert any(p.startswith("set.jsonl: line 3 (id c): messages[0].role") for p in problems)
    assert any(p.startswith("set.jsonl: line 4 (id a): id: duplicate of line 1") for p in problems)


def test_yaml_errors_name_the_line_and_field() -> None:
    text = """\
template: "Hello {name}"
prompts:
- id: ok
  variables: {name: Ann}
- id: no-name
  variables: {nmae: Bob}
- variables: {name: Cy}
- id: both
  messages: [{role: user, content: x}]
  template: "y"
"""
    problems = problems_of(text, "p.yaml")
    assert "p.yaml: line 5, prompts[1] (id no-name): variables.name: missing (the template " \
           "uses {name})" in problems
    assert any(p.startswith("p.yaml: line 7, prompts[2]: id: Field required") for p in problems)
    assert any(p.startswith("p.yaml: line 8, prompts[3] (id both):") and "exactly one" in p
               for p in problems)


@pytest.mark.parametrize(("text", "expected"), [
    ("prompts: [", "p.yaml: not valid YAML"),
    ("promps: []", "p.yaml: promps: unknown top-level key"),
    ("prompts: {a: 1}", "p.yaml: prompts: must be a list"),
    ("prompts: []", "p.yaml: no prompts"),
    ("- just a string", "p.yaml: line 1, prompts[0]: a prompt must be a mapping"),
])
def test_malformed_yaml_sets(text: str, expected: str) -> None:
    assert problems_of(text, "p.yaml")[0].startswith(expected)


def test_file_source_relative_to_the_manifest_and_limit(tmp_path: Path) -> None:
    source = PromptSetSource.model_validate({"file": "../prompts/pep-talk.yaml", "limit": 5})
    ps = promptsets.load(source, base_dir=REPO / "manifests/examples/local")
    assert [p.id for p in ps.prompts] == [f"pep-0{i}" for i in range(1, 6)]
    with pytest.raises(PromptSetError, match="no-such.yaml: no such prompt-set file"):
        promptsets.load(PromptSetSource(file="no-such.yaml"), base_dir=tmp_path)


def test_inline_source_checks_template_variables() -> None:
    source = PromptSetSource.model_validate(
        {"inline": [{"id": "a", "template": "Hi {who}", "variables": {"whom": "x"}}]})
    with pytest.raises(PromptSetError, match=r"inline \(id a\): variables.who: missing"):
        promptsets.load(source)


def test_shards_cover_every_prompt_once() -> None:
    ps = promptsets.read_file(PEP_TALK)
    ids = [p.id for i in range(3) for p in ps.shard(i, 3).prompts]
    assert sorted(ids) == sorted(p.id for p in ps.prompts)


def test_config_map_source_without_a_cluster_says_what_to_do() -> None:
    """In a cluster the operator mounts the ConfigMap as a file (tests/operator/evaluation);
    on its own the engine cannot read one, and says so."""
    source = PromptSetSource.model_validate({"configMap": {"name": "prompts", "key": "p.yaml"}})
    with pytest.raises(PromptSetError, match="spec.promptSet.configMap.*spec.promptSet.file"):
        promptsets.load(source)


def test_s3_source_through_a_local_s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://{host}:{port}")
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="prompts-bucket")
        s3.put_object(Bucket="prompts-bucket", Key="sets/pep.yaml", Body=PEP_TALK.read_bytes())
        src = PromptSetSource.model_validate(
            {"s3": {"bucket": "prompts-bucket", "key": "sets/pep.yaml", "region": "us-east-1"}})
        assert len(promptsets.load(src).prompts) >= 30
        missing = PromptSetSource.model_validate(
            {"s3": {"bucket": "prompts-bucket", "key": "nope.yaml"}})
        with pytest.raises(PromptSetError, match="s3://prompts-bucket/nope.yaml: no such object"):
            promptsets.load(missing)
    finally:
        server.stop()
