"""Every Hugging Face Hub outcome, through huggingface_hub against a local Hub stand-in."""

from __future__ import annotations

import pytest

from slam_operator.modeldeployment import hub
from tests.fakes.hub import SHA, FakeHub, Repo


@pytest.fixture
def fake_hub():
    h = FakeHub(hang_seconds=5).start()
    yield h
    h.stop()


def lookup(fake: FakeHub, model: str, revision: str, token: str | None):
    return hub.lookup(model, revision, token, endpoint=fake.url, timeout=1.0)


def test_found_resolves_sha_parameters_licence(fake_hub) -> None:
    fake_hub.repos["org/model"] = Repo(parameters=135_000_000, license="apache-2.0")
    out = lookup(fake_hub, "org/model", "main", None)
    assert (out.status, out.sha, out.parameters, out.license, out.gated) == (
        "found", SHA, 135_000_000, "apache-2.0", False
    )


def test_not_found_says_what_to_check(fake_hub) -> None:
    out = lookup(fake_hub, "org/nope", "main", None)
    assert out.status == "not_found"
    assert "spec.model.id" in out.message and "spec.hfTokenSecretRef" in out.message


def test_unknown_revision(fake_hub) -> None:
    fake_hub.repos["org/model"] = Repo()
    out = lookup(fake_hub, "org/model", "v9", None)
    assert out.status == "revision_not_found"
    assert "spec.model.revision" in out.message


def test_gated_without_and_with_token(fake_hub) -> None:
    fake_hub.repos["meta/llama"] = Repo(behaviour="gated", token="hf_test_good")
    assert lookup(fake_hub, "meta/llama", "main", None).status == "gated"
    wrong = lookup(fake_hub, "meta/llama", "main", "hf_test_wrong")
    assert wrong.status == "gated" and "no access" in wrong.message
    assert "hf_test_wrong" not in wrong.message
    ok = lookup(fake_hub, "meta/llama", "main", "hf_test_good")
    assert ok.status == "found" and ok.gated is True


def test_server_error_and_hang_are_unreachable(fake_hub) -> None:
    fake_hub.repos["org/broken"] = Repo(behaviour="error")
    fake_hub.repos["org/slow"] = Repo(behaviour="hang")
    assert lookup(fake_hub, "org/broken", "main", None).status == "unreachable"
    out = lookup(fake_hub, "org/slow", "main", None)
    # The stub answers 504 after 5 s; the 1 s client timeout must have cut it short first.
    assert out.status == "unreachable"
    assert "did not answer" in out.message, out.message


def test_cache_keeps_found_only(fake_hub) -> None:
    fake_hub.repos["org/model"] = Repo()
    cached = hub.CachedHub(fake_hub.url, timeout=1.0)
    for _ in range(3):
        assert cached.lookup("org/model", "main", None).status == "found"
        assert cached.lookup("org/missing", "main", None).status == "not_found"
    assert cached.calls == 4  # one found (then cached) + three not-found


def test_the_models_shape_comes_from_its_config_json_at_the_resolved_commit(
        fake_hub, tmp_path, monkeypatch) -> None:
    import json

    # The stand-in serves every repository at one commit: a cache of this test's own.
    monkeypatch.setattr(hub, "CONFIG_CACHE", str(tmp_path / "configs"))

    from tests.operator.modeldeployment.test_gpu import MISTRAL_7B_V02

    config = tmp_path / "config.json"
    config.write_text(json.dumps(MISTRAL_7B_V02))
    fake_hub.repos["org/model"] = Repo(files={"config.json": config})
    out = lookup(fake_hub, "org/model", "main", None)
    assert out.status == "found"
    assert out.shape is not None and out.shape.kv_bytes_per_token == 131_072
    assert any(path == f"/org/model/resolve/{SHA}/config.json"
               for path, _ in fake_hub.requests)  # the commit, not the branch
    # No config.json, or one that says nothing of the shape: found all the same, no shape.
    fake_hub.repos["org/bare"] = Repo()
    assert lookup(fake_hub, "org/bare", "main", None).shape is None
    config.write_text("{not json")
    fake_hub.repos["org/odd"] = Repo(files={"config.json": config})
    odd = lookup(fake_hub, "org/odd", "main", None)
    assert (odd.status, odd.shape) == ("found", None)


def test_a_4bit_checkpoint_counts_its_unpacked_parameters(fake_hub) -> None:
    """The Hub counts int32 elements of an AWQ checkpoint (Qwen2.5-32B-Instruct-AWQ: 5.7B
    "parameters"); each holds eight 4-bit weights, so the fit check sees the model's 32B."""
    fake_hub.repos["Qwen/Qwen2.5-32B-Instruct-AWQ"] = Repo(
        parameters=1, dtypes={"I32": 3_910_000_000, "F16": 1_820_000_000})
    out = lookup(fake_hub, "Qwen/Qwen2.5-32B-Instruct-AWQ", "main", None)
    assert out.parameters == 8 * 3_910_000_000 + 1_820_000_000
    assert hub.parameter_count({"BF16": 7_000_000_000}, 7_000_000_000) == 7_000_000_000
    assert hub.parameter_count(None, 123) == 123 and hub.parameter_count(None, None) is None
