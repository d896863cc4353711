"""`RewardModel`: the fast scorer the training loop, the server's `/reward` and the health index call.

Scoring a (prompt, response): both texts are embedded by the shared sentence embedder; one linear head
per reward dimension (and for reward_intensity and safety_score) reads features of the pair; a gate
reads the prompt alone and gives each dimension a weight (softmax), and `scalar_preference` is the
gate-weighted sum of the dimension scores, so a request for something harmful can be judged mostly on
harm_avoidance and a benign task mostly on helpfulness. `preference_probability` turns a difference of
scalars into a probability with a temperature calibrated on held-out pairs.

A version folder holds everything needed to score: `heads.safetensors` (every array), `model.json` (head
names, embedder spec, the manifold it was trained for) and `METADATA.json` (for people: metrics,
calibration, data hash, date). Scores are computed from exactly the arrays that are saved, so a loaded
model scores bit-for-bit like the one that was trained.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from hominem_pipeline.embedding import Embedder
from hominem_pipeline.manifold import RewardManifold
from hominem_pipeline.reward_model.dataset import head_range

MODEL_FILE = "model.json"
WEIGHTS_FILE = "heads.safetensors"
METADATA_FILE = "METADATA.json"
FORMAT = "hominem-reward-model/2"
FEATURES = ["prompt", "response", "prompt*response", "|prompt-response|"]
# A gate logit this low gives its dimension no weight (exp(-30) ~ 1e-13) without an infinity on disk.
GATE_OFF = -30.0


def pair_features(prompt_emb: np.ndarray, response_emb: np.ndarray) -> np.ndarray:
    """[e_p, e_r, e_p * e_r, |e_p - e_r|]: the response alone, the prompt as context, and how they relate."""
    return np.concatenate(
        [prompt_emb, response_emb, prompt_emb * response_emb, np.abs(prompt_emb - response_emb)], axis=1
    ).astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class RewardOutput(BaseModel):
    """What the reward model says about one (prompt, response), every value inside the manifold's ranges.
    `gate` is the weight each dimension has in `scalar_preference` for this prompt (sums to 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reward_vector: dict[str, float]
    reward_intensity: float
    safety_score: float
    scalar_preference: float
    gate: dict[str, float] = {}


@dataclass
class HeadParams:
    """Arrays of a trained model. Heads predict standardised targets from centred features:
    value = target_mean + target_std * ((x - feature_mean) @ weights[h]). The gate's weights over the
    manifold's dimensions are softmax(prompt_embedding @ gate_weights.T + gate_bias)."""

    heads: list[str]
    feature_mean: np.ndarray  # (D,)
    weights: np.ndarray  # (H, D)
    target_mean: np.ndarray  # (H,)
    target_std: np.ndarray  # (H,)
    gate_weights: np.ndarray  # (N dimensions, E)
    gate_bias: np.ndarray  # (N,)
    temperature: float = 1.0  # P(a beats b) = sigmoid(temperature * (scalar_a - scalar_b))

    def tensors(self) -> dict[str, np.ndarray]:
        return {
            "feature_mean": self.feature_mean.astype(np.float32),
            "weights": self.weights.astype(np.float32),
            "target_mean": self.target_mean.astype(np.float32),
            "target_std": self.target_std.astype(np.float32),
            "gate_weights": self.gate_weights.astype(np.float32),
            "gate_bias": self.gate_bias.astype(np.float32),
            "temperature": np.array([self.temperature], dtype=np.float32),
        }

    @classmethod
    def from_tensors(cls, heads: list[str], t: dict[str, np.ndarray]) -> HeadParams:
        return cls(
            heads=list(heads),
            feature_mean=t["feature_mean"],
            weights=t["weights"],
            target_mean=t["target_mean"],
            target_std=t["target_std"],
            gate_weights=t["gate_weights"],
            gate_bias=t["gate_bias"],
            temperature=float(t["temperature"][0]),
        )

    def rounded(self) -> HeadParams:
        """The same parameters as stored (float32), so an in-memory model equals its saved copy."""
        return HeadParams.from_tensors(self.heads, self.tensors())


@dataclass
class Scores:
    """Unclipped outputs for a batch: every head, the gate's weights and the gated scalar."""

    heads: dict[str, np.ndarray]
    gate: np.ndarray  # (n, N dimensions)
    scalar: np.ndarray  # (n,)


class RewardModel:
    """Multi-head, prompt-gated reward model over frozen sentence embeddings. Build with `load(folder)`
    or the trainer."""

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
                f"{folder / MODEL_FILE}: unknown format {spec.get('format')!r}, expected {FORMAT!r} "
                "(retrain: `hominem reward train`)"
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
            "features": FEATURES,
            "gate": "softmax(prompt_embedding @ gate_weights.T + gate_bias) over the manifold's dimensions",
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

    def embed(self, items: list[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
        """(prompt embeddings, response embeddings) for the items."""
        prompts = self.embedder.embed([p for p, _ in items])
        responses = self.embedder.embed([r for _, r in items])
        if self.embedding_dim is not None and prompts.shape[1] != self.embedding_dim:
            raise ValueError(
                f"embedder gives dimension {prompts.shape[1]}, the model was trained on {self.embedding_dim}"
            )
        return prompts, responses

    def gate(self, prompt_emb: np.ndarray) -> np.ndarray:
        """(n, N dimensions) weights of each dimension in scalar_preference, per prompt."""
        p = self.params
        logits = prompt_emb.astype(np.float64) @ p.gate_weights.astype(np.float64).T
        return softmax(logits + p.gate_bias.astype(np.float64))

    def raw_scores(self, prompt_emb: np.ndarray, response_emb: np.ndarray) -> Scores:
        """Unclipped head outputs, gate and gated scalar (evaluation and ranking use these)."""
        p = self.params
        x = pair_features(prompt_emb, response_emb)
        centred = x.astype(np.float64) - p.feature_mean.astype(np.float64)
        z = centred @ p.weights.astype(np.float64).T
        values = p.target_mean.astype(np.float64) + p.target_std.astype(np.float64) * z
        heads = {h: values[:, i] for i, h in enumerate(p.heads)}
        gate = self.gate(prompt_emb)
        dims = np.stack([heads[d] for d in self.manifold.names], axis=1)
        scalar = (gate * dims).sum(axis=1)
        return Scores(heads, gate, scalar)

    def clipped(self, scores: Scores) -> dict[str, np.ndarray]:
        """Every head and scalar_preference clipped to its manifold range (what RewardOutput carries)."""
        out = {}
        for h, v in scores.heads.items():
            lo, hi = head_range(self.manifold, h)
            out[h] = np.clip(v, lo, hi)
        lo, hi = self.manifold.scalar_preference.range
        out["scalar_preference"] = np.clip(scores.scalar, lo, hi)
        return out

    def score_items(self, items: list[tuple[str, str]]) -> Scores:
        return self.raw_scores(*self.embed(items))

    def score_batch(self, items: list[tuple[str, str]]) -> list[RewardOutput]:
        if not items:
            return []
        scores = self.score_items(items)
        values = self.clipped(scores)
        names = list(self.manifold.names)
        outputs = []
        for i in range(len(items)):
            outputs.append(
                RewardOutput(
                    reward_vector={d: float(values[d][i]) for d in names},
                    reward_intensity=float(values["reward_intensity"][i]),
                    safety_score=float(values["safety_score"][i]),
                    scalar_preference=float(values["scalar_preference"][i]),
                    gate={d: float(scores.gate[i, j]) for j, d in enumerate(names)},
                )
            )
        return outputs

    def score(self, prompt: str, response: str) -> RewardOutput:
        return self.score_batch([(prompt, response)])[0]

    def preference_probability(self, prompt: str, a: str, b: str) -> float:
        """P(a preferred over b): sigmoid(temperature * (scalar_a - scalar_b)) on the unclipped scalars,
        with the temperature calibrated on held-out pairs (see METADATA `calibration_pairs`)."""
        s = self.score_items([(prompt, a), (prompt, b)]).scalar
        return float(1.0 / (1.0 + np.exp(-self.params.temperature * (s[0] - s[1]))))
