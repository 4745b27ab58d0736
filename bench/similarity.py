"""Similarity scoring throughput: our scorer against a bare `SentenceTransformer.encode`.

    .venv/bin/python bench/similarity.py [--responses 2000]

Both encode the same texts (responses and their references) with the same loaded model, in the
same run, alternating; ours also hashes, checks and fills the store's embedding cache (SQLite,
cold) and writes one score row per response. Prints responses/s for each and the ratio
(target >= 0.9), then the warm re-score (everything cached) for comparison.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from slam.generate import RequestRecord  # noqa: E402
from slam.promptsets import PromptItem, PromptSet  # noqa: E402
from slam.scoring.pipeline import ScoringConfig, score_similarity  # noqa: E402
from slam.scoring.similarity import DEFAULT_MODEL, Embedder, load_model  # noqa: E402
from slam.store import Store  # noqa: E402

VOCABULARY = ("great steady progress today plan run offsite exam roadmap morning routine launch "
              "project summer energy focus team call landlord paperwork novel piano dog walk")
WORDS = VOCABULARY.split(" ")


def texts(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(30, 70)))) + f" #{seed}-{i}"
            for i in range(n)]


def fill(store: Store, n: int, seed: int) -> int:
    answers, refs = texts(n, seed), texts(n, seed + 1)
    prompts = PromptSet("b", "b", tuple(PromptItem(f"p{i}", ({"role": "user", "content": "x"},),
                                                   (refs[i],)) for i in range(n)))
    run = store.begin_run(evaluation=f"bench{seed}", run_id="1", reference="ref", spec={},
                          targets=[], prompts=prompts, total=n)
    store.save(run, [RequestRecord(target="cand", prompt_id=f"p{i}", sample=0,
                                   started_at=datetime.now(UTC), attempts=1, text=answers[i])
                     for i in range(n)])
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--responses", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    model = load_model(DEFAULT_MODEL)
    model.encode(["warm up"] * 64, batch_size=64)
    ours_rates, bare_rates = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            seed = 100 * r
            store = Store.open(f"sqlite:///{tmp}/bench{r}.db")
            run = fill(store, args.responses, seed)
            cfg = ScoringConfig(reference="ref", similarity_model=DEFAULT_MODEL)
            embedder = Embedder(DEFAULT_MODEL, store, model=model)
            t0 = time.perf_counter()
            scored, encoded = score_similarity(store, run, cfg, embedder)
            ours = time.perf_counter() - t0
            assert scored == args.responses
            t0 = time.perf_counter()
            a = model.encode(texts(args.responses, seed), batch_size=64,
                             normalize_embeddings=True)
            b = model.encode(texts(args.responses, seed + 1), batch_size=64,
                             normalize_embeddings=True)
            (a * b).sum(axis=1)
            bare = time.perf_counter() - t0
            ours_rates.append(args.responses / ours)
            bare_rates.append(args.responses / bare)
            print(f"round {r + 1}: ours {args.responses / ours:7.1f} responses/s "
                  f"({encoded} texts encoded), bare encode {args.responses / bare:7.1f} "
                  f"responses/s, ratio {bare / ours:.3f}")
            t0 = time.perf_counter()
            again = Embedder(DEFAULT_MODEL, store, model=model)
            again.embed(texts(args.responses, seed) + texts(args.responses, seed + 1))
            warm = time.perf_counter() - t0
            print(f"         warm cache: {args.responses / warm:7.1f} responses/s "
                  f"({again.encoded} encoded)")
    ratio = np.median(ours_rates) / np.median(bare_rates)
    print(f"median: ours {np.median(ours_rates):.1f} vs bare {np.median(bare_rates):.1f} "
          f"responses/s -> ratio {ratio:.3f} (target >= 0.9)")


if __name__ == "__main__":
    main()
