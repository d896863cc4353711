"""Candidate responses from the teacher for each seed prompt, stored in DuckDB and resumable.

A trajectory's id hashes everything its text depends on (prompt content, teacher, sampling settings,
candidate index), so a re-run skips what exists and an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hominem_pipeline.data.prompts import SeedPrompt
from hominem_pipeline.store import TrainingDatabase
from hominem_pipeline.teacher.base import Teacher


def trajectory_id(
    prompt: SeedPrompt, teacher_identity: str, sampling: dict[str, Any], index: int, seed: int
) -> str:
    blob = json.dumps(
        [prompt.content_hash, teacher_identity, sampling, index, seed], sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass
class TrajectoryRun:
    trajectory_ids: list[str] = field(default_factory=list)
    generated: int = 0
    reused: int = 0


def generate_trajectories(
    db: TrainingDatabase,
    teacher: Teacher,
    prompts: list[SeedPrompt],
    n: int,
    sampling: dict[str, Any],
    seed: int = 0,
    batch_size: int = 8,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> TrajectoryRun:
    run = TrajectoryRun()
    ids_by_prompt = {
        p.prompt_id: [trajectory_id(p, teacher.identity, sampling, j, seed) for j in range(n)]
        for p in prompts
    }
    all_ids = [t for ids in ids_by_prompt.values() for t in ids]
    run.trajectory_ids = all_ids
    if force:
        db.con.execute("DELETE FROM trajectories WHERE trajectory_id IN (SELECT unnest(?))", [all_ids])
    existing = db.existing_ids("trajectories", "trajectory_id", all_ids)
    todo = [p for p in prompts if not set(ids_by_prompt[p.prompt_id]) <= existing]
    run.reused = len(existing)
    done = 0
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        candidates = teacher.generate([p.text for p in batch], n, seed=seed + start)
        rows = []
        for p, cands in zip(batch, candidates, strict=True):
            for j, text in enumerate(cands):
                tid = ids_by_prompt[p.prompt_id][j]
                if tid in existing:
                    continue
                rows.append(
                    {
                        "trajectory_id": tid,
                        "prompt_id": p.prompt_id,
                        "prompt_hash": p.content_hash,
                        "category": p.category,
                        "prompt": p.text,
                        "candidate_index": j,
                        "response": text,
                        "teacher": teacher.identity,
                        "sampling": sampling,
                    }
                )
        # One insert per batch: a crash loses at most the batch in flight, never stored rows.
        db.insert_trajectories(rows)
        run.generated += len(rows)
        done += len(batch)
        if progress:
            progress(done, len(todo))
    return run
