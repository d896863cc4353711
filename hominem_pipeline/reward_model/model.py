"""`RewardModel`: the fast scorer the training loop, the server's `/reward` and the health index call.

A version folder holds everything needed to score: `heads.safetensors` (the linear heads over frozen
sentence-embedding features), `model.json` (head names, embedder spec, the manifold it was trained for)
and `METADATA.json` (for people: metrics, calibration, data hash, date). Scores are computed from exactly
the arrays that are saved, so a loaded model scores bit-for-bit like the one that was trained.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from hominem_pipeline.manifold import RewardManifold
from hominem_pipeline.reward_model.dataset import head_range
from hominem_pipeline.reward_model.embedder import Embedder, pair_features

MODEL_FILE = "model.json"
WEIGHTS_FILE = "heads.safetensors"
METADATA_FILE = "METADATA.json"
FORMAT = "hominem-reward-model/1"


class RewardOutput(BaseModel):
    """What the reward model says about one (prompt, response), every value inside the manifold's ranges."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reward_vector: dict[str, float]
    reward_intensity: float
    safety_score: float
    scalar_preference: float


@dataclass
class HeadParams:
    """Arrays of a trained model. Regression heads predict standardised targets from centred features:
    value = target_mean + target_std * ((x - feature_mean) @ weights[h])."""

    heads: list[str]
    feature_mean: np.ndarray  # (D,)
    weights: np.ndarray  # (H, D)
    target_mean: np.ndarray  # (H,)
    target_std: np.ndarray  # (H,)
    preference_weights: np.ndarray | None = None  # (D,) Bradley-Terry-refined scalar head, raw units
    preference_bias: float = 0.0

    def tensors(self) -> dict[str, np.ndarray]:
        out = {
            "feature_mean": self.feature_mean.astype(np.float32),
            "weights": self.weights.astype(np.float32),
            "target_mean": self.target_mean.astype(np.float32),
            "target_std": self.target_std.astype(np.float32),
        }
        if self.preference_weights is not None:
            out["preference_weights"] = self.preference_weights.astype(np.float32)
            out["preference_bias"] = np.array([self.preference_bias], dtype=np.float32)
        return out

    @classmethod
    def from_tensors(cls, heads: list[str], t: dict[str, np.ndarray]) -> HeadParams:
        return cls(
            heads=list(heads),
            feature_mean=t["feature_mean"],
            weights=t["weights"],
            target_mean=t["target_mean"],
            target_std=t["target_std"],
            preference_weights=t.get("preference_weights"),
            preference_bias=float(t["preference_bias"][0]) if "preference_bias" in t else 0.0,
        )

    def rounded(self) -> HeadParams:
        """The same parameters as stored (float32), so an in-memory model equals its saved copy."""
        return HeadParams.from_tensors(self.heads, self.tensors())


class RewardModel:
    """Multi-head reward model over frozen sentence embeddings. Build with `load(folder)` or the trainer."""

    def __init__(
        self,
        manifold: RewardManifold,
        params: HeadParams,
        embedder_spec: str,
        version: str = "unsaved",
        metadata: dict[str, Any] | None = None,
        embedder: Embedder | None = None,
        embedding_dim: int | None = None,
    ):
        self.manifold = manifold
        self.params = params.rounded()
        self.embedder_spec = embedder_spec
        self.version = version
        self.metadata = metadata or {}
        self._embedder = embedder
        self.embedding_dim = embedding_dim

    # -- loading ------------------------------------------------------------------------------
    @classmethod
    def load(cls, folder: Path | str, embedder: Embedder | None = None) -> RewardModel:
        """Load a saved version. Only the folder is needed (the embedder is resolved from its spec)."""
        from safetensors.numpy import load_file

        folder = Path(folder)
        try:
            spec = json.loads((folder / MODEL_FILE).read_text())
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"{folder} is not a reward-model version (no {MODEL_FILE})") from exc
        if spec.get("format") != FORMAT:
            raise ValueError(
                f"{folder / MODEL_FILE}: unknown format {spec.get('format')!r}, expected {FORMAT!r}"
            )
        manifold = RewardManifold.model_validate(spec["manifold"])
        params = HeadParams.from_tensors(spec["heads"], load_file(str(folder / WEIGHTS_FILE)))
        meta_path = folder / METADATA_FILE
        metadata = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        if embedder is not None and embedder.spec != spec["embedder"]:
            raise ValueError(f"{folder}: trained with embedder {spec['embedder']!r}, given {embedder.spec!r}")
        return cls(
            manifold,
            params,
            spec["embedder"],
            version=folder.name,
            metadata=metadata,
            embedder=embedder,
            embedding_dim=int(spec["embedding_dim"]),
        )

    def model_spec(self, training_data_hash: str) -> dict[str, Any]:
        """What `model.json` holds: everything scoring depends on besides the arrays."""
        return {
            "format": FORMAT,
            "heads": self.params.heads,
            "embedder": self.embedder_spec,
            "embedding_dim": self.embedding_dim,
            "training_data_hash": training_data_hash,
            "features": ["prompt", "response", "prompt*response", "|prompt-response|"],
            "preference_head": self.params.preference_weights is not None,
            "manifold": self.manifold.model_dump(mode="json"),
        }

    def save_arrays(self, folder: Path) -> None:
        from safetensors.numpy import save_file

        save_file(self.params.tensors(), str(Path(folder) / WEIGHTS_FILE))

    # -- scoring ------------------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = Embedder(self.embedder_spec)
        return self._embedder

    def features(self, items: list[tuple[str, str]]) -> np.ndarray:
        prompts = self.embedder.embed([p for p, _ in items])
        responses = self.embedder.embed([r for _, r in items])
        x = pair_features(prompts, responses)
        if self.embedding_dim is not None and prompts.shape[1] != self.embedding_dim:
            raise ValueError(
                f"embedder gives dimension {prompts.shape[1]}, the model was trained on {self.embedding_dim}"
            )
        return x

    def raw_scores(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Unclipped head outputs for a feature matrix (used by evaluation and scoring alike)."""
        p = self.params
        centred = x.astype(np.float64) - p.feature_mean.astype(np.float64)
        z = centred @ p.weights.astype(np.float64).T
        values = p.target_mean.astype(np.float64) + p.target_std.astype(np.float64) * z
        out = {h: values[:, i] for i, h in enumerate(p.heads)}
        if p.preference_weights is not None:
            out["scalar_preference"] = p.preference_bias + centred @ p.preference_weights.astype(np.float64)
        return out

    def clipped_scores(self, x: np.ndarray) -> dict[str, np.ndarray]:
        raw = self.raw_scores(x)
        out = {}
        for h, v in raw.items():
            lo, hi = head_range(self.manifold, h)
            out[h] = np.clip(v, lo, hi)
        return out

    def score_batch(self, items: list[tuple[str, str]]) -> list[RewardOutput]:
        if not items:
            return []
        scores = self.clipped_scores(self.features(items))
        outputs = []
        for i in range(len(items)):
            vector = {d: float(scores[d][i]) for d in self.manifold.names}
            if "scalar_preference" in scores:
                scalar = float(scores["scalar_preference"][i])
            else:
                scalar = float(self.manifold.scalar_preference_of(vector))
            outputs.append(
                RewardOutput(
                    reward_vector=vector,
                    reward_intensity=float(scores["reward_intensity"][i]),
                    safety_score=float(scores["safety_score"][i]),
                    scalar_preference=scalar,
                )
            )
        return outputs

    def score(self, prompt: str, response: str) -> RewardOutput:
        return self.score_batch([(prompt, response)])[0]

    def preference_probability(self, prompt: str, a: str, b: str) -> float:
        """P(a preferred over b) under the Bradley-Terry temperature learned in training (0.5 if none)."""
        beta = float(self.metadata.get("preference", {}).get("temperature", 0.0) or 0.0)
        sa, sb = (o.scalar_preference for o in self.score_batch([(prompt, a), (prompt, b)]))
        return float(1.0 / (1.0 + np.exp(-beta * (sa - sb))))
