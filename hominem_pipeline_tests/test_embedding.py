"""The one sentence embedder: one model per process, each distinct text encoded once, unit-norm rows,
and the reward model, the dedup rule and the diversity sampler all go through it. Real packaged MiniLM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hominem_pipeline.embedding import Embedder
from hominem_pipeline.training.sampler import build_sampler


def test_one_model_per_process_and_each_text_encoded_once(tmp_path: Path) -> None:
    a, b = Embedder(), Embedder()
    texts = ["How do I boil an egg?", "Simmer it for eight minutes.", "How do I boil an egg?"]
    va = a.embed(texts)
    assert a.model is b.model  # the second embedder did not load MiniLM again
    assert va.shape == (3, a.dim) and np.allclose(np.linalg.norm(va, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(va[0], va[2]) and a.texts_encoded == 2
    a.embed(["Simmer it for eight minutes.", "A new text."])
    assert a.texts_encoded == 3 and a.texts_embedded == 5 and a.calls == 2
    # Cached vectors are the encoder's own, and survive a save/load round trip.
    assert np.allclose(a.embed(["A new text."]), a.encode(["A new text."]), atol=1e-6)
    a.save_cache(tmp_path / "cache.npz")
    c = Embedder()
    assert c.load_cache(tmp_path / "cache.npz") == 3
    assert np.array_equal(c.embed(texts), va) and c.texts_encoded == 0
    with pytest.raises(ValueError, match="this embedder is"):
        Embedder("some/other-model").load_cache(tmp_path / "cache.npz")


def test_the_diversity_sampler_clusters_through_the_shared_embedder() -> None:
    texts = [f"How do I cook {x}?" for x in ("rice", "pasta", "beans")] + [
        f"My {x} is broken, how do I fix it?" for x in ("bike", "laptop", "phone")
    ]
    sampler = build_sampler(
        texts,
        [1.0] * 6,
        2,
        diversity=True,
        embedding_model="embedded:all-minilm-l6-v2",
        k=2,
        per_cluster=1,
        farthest_first_basis=False,
        seed=0,
    )
    assert sampler.embeddings is not None and sampler.embeddings.shape == (6, Embedder().dim)
    assert len(set(sampler.labels[:3])) == 1 and len(set(sampler.labels[3:])) == 1
    assert sampler.labels[0] != sampler.labels[3]
