"""Frozen sentence embeddings for the reward model, cached per text within a process.

The reward model scores (prompt, response) pairs where the same prompt recurs for every candidate, so
each distinct text is embedded once (keyed by its hash) and reused. Loaded sentence-transformers models
are shared per folder, so tests and long-lived processes load MiniLM once.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from hominem_pipeline.models import resolve_embedding_model

_MODELS: dict[str, Any] = {}
_MODELS_LOCK = threading.Lock()


def _load_sentence_model(path: str) -> Any:
    with _MODELS_LOCK:
        if path not in _MODELS:
            from sentence_transformers import SentenceTransformer

            _MODELS[path] = SentenceTransformer(path, device="cpu")
        return _MODELS[path]


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class Embedder:
    """Unit-norm sentence embeddings from a spec such as `embedded:all-minilm-l6-v2` or a local folder."""

    def __init__(self, spec: str, batch_size: int = 64, cache_size: int = 50_000):
        self.spec = spec
        self.path = resolve_embedding_model(spec)
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._model: Any = None

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = _load_sentence_model(self.path)
        return self._model

    @property
    def dim(self) -> int:
        get = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        return int(get())

    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row unit-norm; only texts not seen before are encoded."""
        keys = [text_key(t) for t in texts]
        todo: dict[str, str] = {}
        for k, t in zip(keys, texts, strict=True):
            if k not in self._cache and k not in todo:
                todo[k] = t
        if todo:
            vecs = self.model.encode(
                list(todo.values()),
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            ).astype(np.float32)
            for k, v in zip(todo, vecs, strict=True):
                self._cache[k] = v
        out = np.stack([self._cache[k] for k in keys]) if keys else np.zeros((0, self.dim), np.float32)
        for k in keys:
            self._cache.move_to_end(k)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out


def pair_features(prompt_emb: np.ndarray, response_emb: np.ndarray) -> np.ndarray:
    """[e_p, e_r, e_p * e_r, |e_p - e_r|]: the response alone, the prompt as context, and how they relate."""
    return np.concatenate(
        [prompt_emb, response_emb, prompt_emb * response_emb, np.abs(prompt_emb - response_emb)], axis=1
    ).astype(np.float32)
