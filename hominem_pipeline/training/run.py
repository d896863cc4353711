"""One training cycle from the project's files: what both faces (`hominem train`, the `dual_lora` asset)
call. Reads the exports and the store, scores unscored pairs with the current reward model, trains,
publishes. Plain Python; no Dagster.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hominem_pipeline.adapters import AdapterRegistry, model_name_for_spec
from hominem_pipeline.atomic import Pointer, file_digest
from hominem_pipeline.health.config import load_health_config
from hominem_pipeline.health.gate import learning_rate_factor
from hominem_pipeline.models import resolve_model
from hominem_pipeline.reward_model.registry import current_with_note
from hominem_pipeline.settings import REPO_ROOT, Settings
from hominem_pipeline.store.consumption import times_trained
from hominem_pipeline.training.config import TrainingConfig, load_training_config
from hominem_pipeline.training.data import load_preference_pairs, load_sft_pairs, prepare_examples
from hominem_pipeline.training.reuse import FINGERPRINT_KEY, find_reusable, inputs_fingerprint
from hominem_pipeline.training.trainer import Progress, TrainingResult, train_dual

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "training/lora_dual.yaml"


def preferences_path(settings: Settings) -> Path:
    return settings.data_dir / "preferences" / "preferences.jsonl"


def sft_jsonl_path(settings: Settings) -> Path:
    return settings.data_dir / "sft" / "sft_training.jsonl"


def lora_root(settings: Settings, config: TrainingConfig) -> Path:
    spec = config.base_model or settings.inference.student.model
    return settings.artifacts_dir / "lora" / (config.model_name or model_name_for_spec(spec))


def resolve_config_path(settings: Settings, path: Path | str | None) -> Path:
    """A given path as is; otherwise the project's config dir, then the repository's default file."""
    if path is not None:
        return Path(path)
    own = settings.config_dir / DEFAULT_CONFIG
    return own if own.is_file() else REPO_ROOT / "config" / DEFAULT_CONFIG


def load_config(
    settings: Settings, path: Path | str | None = None, overrides: dict | None = None
) -> TrainingConfig:
    return load_training_config(resolve_config_path(settings, path), overrides)


def training_sources(settings: Settings, config: TrainingConfig, db: Any | None) -> dict[str, Any]:
    """A digest of each source a cycle reads (for `training.reuse`): the preference export, the SFT rows
    (their content and re-emissions in the store, else the export), the current reward model."""
    from hominem_pipeline.reward_model.registry import reward_model_root

    prefs = preferences_path(settings)
    sft_from_store = db is not None and config.sft_source in ("auto", "database")
    sft_jsonl = sft_jsonl_path(settings)
    return {
        "preferences": file_digest(prefs) if prefs.is_file() else None,
        "sft": db.sft_content_digest()
        if sft_from_store
        else (file_digest(sft_jsonl) if sft_jsonl.is_file() else None),
        "reward_model": Pointer(reward_model_root(settings.artifacts_dir), "current").target,
    }


def run_training(
    settings: Settings,
    config: TrainingConfig,
    *,
    db: Any | None = None,
    progress: Progress | None = None,
    reuse: bool = True,
) -> TrainingResult:
    """Load both channels, weight and gate them, train, publish under artifacts/lora/<model>/<version>/.
    With `reuse` (the default), a cycle that would learn nothing new trains nothing and returns the
    published adapter those inputs give (`training.reuse`; its metadata says `reused` and why)."""
    root = lora_root(settings, config)
    # Before the fingerprint: a learning rate the RHI's slow loop lowered is a changed recipe.
    config, lr_note = _slow_loop_learning_rates(settings, config, root.name)
    parent = Pointer(root, "current").target if config.continue_from_current else None
    base_spec = config.base_model or settings.inference.student.model
    fingerprint = inputs_fingerprint(config, base_spec, training_sources(settings, config, db))
    if reuse:
        found = find_reusable(root, fingerprint, parent)
        if found is not None:
            log.info("training: nothing to train, reusing %s (%s)", found.version, found.reason)
            return TrainingResult(
                found.version,
                found.path,
                False,
                {**found.metadata, "reused": True, "reuse_reason": found.reason},
            )
    pairs = load_preference_pairs(preferences_path(settings))
    if config.preferences_limit:
        pairs = pairs[: config.preferences_limit]
    sft_pairs, from_db = load_sft_pairs(
        db, sft_jsonl_path(settings), config.sft_source, config.sft_limit, config.sft_unused_only
    )
    needs_scoring = any(p.reward_intensity is None or p.safety_score is None for p in [*pairs, *sft_pairs])
    reward_model, note = current_with_note(settings.artifacts_dir) if needs_scoring else (None, "not needed")
    log.info(
        "training: %d preference pairs, %d SFT pairs (%s); scoring: %s",
        len(pairs),
        len(sft_pairs),
        "store" if from_db else "jsonl",
        note,
    )
    replays = {}
    if db is not None and parent:
        # How often the current adapter's lineage already trained each pair (preference replay cap/decay).
        lineage = AdapterRegistry(settings.artifacts_dir, root.name).lineage(parent)
        replays = times_trained(db, root.name, lineage, "preference")
    data = prepare_examples(config, pairs, sft_pairs, from_db, reward_model, replays)
    base = resolve_model(base_spec, settings.models_cache_dir)
    return train_dual(
        config,
        data,
        base_model_path=base,
        lora_root=root,
        db=db,
        reward_model_version=str(reward_model.version) if reward_model is not None else None,
        progress=progress,
        notes={"reward_model": note, "sft_source": "store" if from_db else "jsonl", **lr_note},
        health_probes=load_health_config(settings).probes,
        extra_metadata={FINGERPRINT_KEY: fingerprint},
    )


def _slow_loop_learning_rates(
    settings: Settings, config: TrainingConfig, model_name: str
) -> tuple[TrainingConfig, dict[str, str]]:
    """The Reward Health Index's slow loop may have asked for lower learning rates (RHI falling night
    after night, `health.gate`); both channels' rates are multiplied by its factor."""
    factor = learning_rate_factor(settings.artifacts_dir, model_name)
    if factor == 1.0:
        return config, {}
    scaled = config.model_copy(
        update={
            "sft_learning_rate": config.sft_learning_rate * factor,
            "preference_learning_rate": config.preference_learning_rate * factor,
        }
    )
    return scaled, {"learning_rate_factor": f"{factor:g} (RHI slow loop, artifacts/rhi/{model_name}/)"}
