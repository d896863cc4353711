"""Sentence embeddings for the dedup rule: the packaged MiniLM (or the configured model), loaded lazily
so that extraction which never meets two drafts of one reply never loads it."""

from __future__ import annotations

from typing import Any

import numpy as np

from hominem_pipeline.models import resolve_embedding_model

DEFAULT_EMBEDDING_SPEC = "embedded:all-minilm-l6-v2"


class SentenceEmbedder:
    """`embed(texts)` -> unit-normalised float32 rows, so a dot product is the cosine similarity."""

    def __init__(self, spec: str = DEFAULT_EMBEDDING_SPEC, batch_size: int = 64):
        self.spec = spec
        self.batch_size = batch_size
        self._model: Any = None
        self.calls = 0
        self.texts_embedded = 0

    def _load(self) -> Any:
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(resolve_embedding_model(self.spec), device="cpu")
        return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        self.texts_embedded += len(texts)
        vectors = self._load().encode(
            texts, batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)
