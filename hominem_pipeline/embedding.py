"""The one sentence embedder (MiniLM by default) for every part of hominem that needs text vectors.

The reward model, the SFT dedup rule and the trainer's diversity sampler all call `Embedder.embed`. A
sentence-transformers model is loaded once per process and folder (on first use, so code paths that never
embed never load it), and each `Embedder` keeps the vectors of the texts it has seen, keyed by the text's
hash, because the same prompt recurs for every candidate that answers it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hominem_pipeline.models import MODEL_LOADING, resolve_embedding_model

DEFAULT_EMBEDDING_SPEC = "embedded:all-minilm-l6-v2"

_MODELS: dict[str, Any] = {}


def load_sentence_model(path: str) -> Any:
    """The process-wide sentence-transformers model for a resolved folder (loaded on first call)."""
    cached = _MODELS.get(path)
    if cached is not None:  # never wait behind another model's load for one already here
        return cached
    with MODEL_LOADING:  # the process-wide cache, and no other model built beside it (models.MODEL_LOADING)
        if path not in _MODELS:
            from sentence_transformers import SentenceTransformer

            _MODELS[path] = SentenceTransformer(path, device="cpu")
        return _MODELS[path]


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class Embedder:
    """`embed(texts)` -> unit-norm float32 rows (a dot product is the cosine similarity).

    `spec` is `embedded:all-minilm-l6-v2`, a local sentence-transformers folder, or a cached hub id.
    `calls` and `texts_embedded` count requests, `texts_encoded` the texts that missed the cache.
    """

    def __init__(self, spec: str = DEFAULT_EMBEDDING_SPEC, batch_size: int = 64, cache_size: int = 50_000):
        self.spec = spec
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._model: Any = None
        self.calls = 0
        self.texts_embedded = 0
        self.texts_encoded = 0

    @property
    def path(self) -> str:
        return resolve_embedding_model(self.spec)

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = load_sentence_model(self.path)
        return self._model

    @property
    def dim(self) -> int:
        get = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        return int(get())

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """The bare encoder: every text through the model, no cache (benchmarks compare against it)."""
        return np.asarray(
            self.model.encode(
                list(texts),
                batch_size=self.batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            ),
            dtype=np.float32,
        )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, each row unit-norm; only texts not seen before are encoded."""
        texts = list(texts)
        self.calls += 1
        self.texts_embedded += len(texts)
        keys = [text_key(t) for t in texts]
        with self._lock:
            todo: dict[str, str] = {}
            for k, t in zip(keys, texts, strict=True):
                if k not in self._cache and k not in todo:
                    todo[k] = t
            if todo:
                self.texts_encoded += len(todo)
                for k, v in zip(todo, self.encode(list(todo.values())), strict=True):
                    self._cache[k] = v
            if not keys:
                return np.zeros((0, self.dim), np.float32)
            out = np.stack([self._cache[k] for k in keys])
            for k in keys:
                self._cache.move_to_end(k)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return out

    def save_cache(self, path: Path | str) -> int:
        """Write the cached vectors to an .npz keyed by text hash (for benchmarks that re-embed the same
        thousands of texts); returns how many were written."""
        with self._lock:
            keys = list(self._cache)
            vecs = np.stack([self._cache[k] for k in keys]) if keys else np.zeros((0, 0), np.float32)
        tmp = Path(path).with_suffix(".tmp.npz")
        np.savez(tmp, keys=np.array(keys), vectors=vecs, spec=np.array(self.spec))
        tmp.replace(path)
        return len(keys)

    def load_cache(self, path: Path | str) -> int:
        """Add vectors saved by `save_cache` from the same model spec; returns how many were loaded."""
        data = np.load(path)
        if str(data["spec"]) != self.spec:
            raise ValueError(f"{path}: vectors of {str(data['spec'])!r}, this embedder is {self.spec!r}")
        with self._lock:
            for k, v in zip(data["keys"].tolist(), data["vectors"], strict=True):
                self._cache[str(k)] = v.astype(np.float32)
        return len(data["keys"])
