"""Trajectories and labels are keyed by content hash: re-runs skip finished work, interrupted runs resume,
failures are recorded with their reason and retried on the next run."""

from __future__ import annotations

from pathlib import Path

import pytest

from hominem_pipeline.data.labels import label_trajectories
from hominem_pipeline.data.prompts import load_seed_prompts, select_prompts
from hominem_pipeline.data.trajectories import generate_trajectories
from hominem_pipeline.manifold import load_manifold
from hominem_pipeline.settings import REPO_ROOT, Settings, TeacherConfig
from hominem_pipeline.store import TrainingDatabase
from hominem_pipeline.teacher import build_teacher
from hominem_pipeline.teacher.openai_backend import OpenAITeacher
from hominem_pipeline_tests.loopback_http import closed_port_url

SAMPLING = {"temperature": 0.8, "top_p": 0.95, "max_new_tokens": 12}


class CrashAfter:
    """Fault injection around a real teacher: the process 'dies' after `calls` generate() calls."""

    def __init__(self, teacher, calls: int):
        self.inner, self.left = teacher, calls
        self.identity, self.rater_identity = teacher.identity, teacher.rater_identity

    def generate(self, prompts, n, seed=0):
        if self.left == 0:
            raise KeyboardInterrupt("simulated crash")
        self.left -= 1
        return self.inner.generate(prompts, n, seed)


@pytest.fixture
def setup(hominem_home: Path):
    settings = Settings(home=hominem_home)
    manifold = load_manifold(settings.manifold_path)
    teacher = build_teacher(settings)
    prompts = select_prompts(load_seed_prompts(settings.seed_prompts_path), 6)
    db = TrainingDatabase(settings.database_path)
    yield settings, manifold, teacher, prompts, db
    db.close()


def test_interrupted_generation_resumes_without_redoing_finished_batches(setup) -> None:
    settings, manifold, teacher, prompts, db = setup
    with pytest.raises(KeyboardInterrupt):
        generate_trajectories(db, CrashAfter(teacher, calls=1), prompts, 2, SAMPLING, batch_size=2)
    assert db.scalar("SELECT count(*) FROM trajectories") == 4  # the first batch of 2 prompts x 2 survived

    run = generate_trajectories(db, teacher, prompts, 2, SAMPLING, batch_size=2)
    assert (run.reused, run.generated) == (4, 8)
    assert db.scalar("SELECT count(*) FROM trajectories") == 12

    again = generate_trajectories(db, teacher, prompts, 2, SAMPLING, batch_size=2)
    assert (again.reused, again.generated) == (12, 0)
    assert again.trajectory_ids == run.trajectory_ids

    # Changing what the text depends on (sampling) makes new trajectories; force regenerates in place.
    changed = generate_trajectories(
        db, teacher, prompts[:1], 2, {**SAMPLING, "temperature": 0.5}, batch_size=2
    )
    assert changed.generated == 2 and set(changed.trajectory_ids).isdisjoint(run.trajectory_ids)
    forced = generate_trajectories(db, teacher, prompts[:1], 2, SAMPLING, batch_size=2, force=True)
    assert forced.generated == 2 and forced.trajectory_ids == run.trajectory_ids[:2]


def test_labels_resume_and_follow_the_manifold(setup, tmp_path: Path) -> None:
    settings, manifold, teacher, prompts, db = setup
    ids = generate_trajectories(db, teacher, prompts[:3], 2, SAMPLING).trajectory_ids
    first = label_trajectories(db, teacher, manifold, ids, batch_size=4)
    assert (first.labelled, first.reused, first.failed) == (6, 0, 0)
    assert label_trajectories(db, teacher, manifold, ids).labelled == 0

    # A new manifold (here: one dimension dropped) is a new schema hash: everything is labelled again.
    text = settings.manifold_path.read_text()
    start = text.index("  - name: curiosity")
    end = text.index("reward_intensity:")
    reduced = tmp_path / "reward.yaml"
    reduced.write_text(text[:start] + "\n" + text[end:])
    smaller = load_manifold(reduced)
    rerun = label_trajectories(db, teacher, smaller, ids)
    assert rerun.labelled == 6
    assert "curiosity" not in db.get_labels(rerun.label_ids)[0]["reward_vector"]


def test_failures_are_recorded_with_reason_then_retried_on_the_next_run(
    setup, openai_server_url: str, tmp_path: Path
) -> None:
    settings, _, teacher, prompts, db = setup
    manifold = _two_dimensions(settings, tmp_path)  # short ratings keep the real server quick on 2 cores
    ids = generate_trajectories(db, teacher, prompts[:1], 1, SAMPLING).trajectory_ids
    down = OpenAITeacher(  # a closed port: the failure does not depend on anything a model says
        TeacherConfig(backend="openai", base_url=closed_port_url(), rating_mode="json_object", max_retries=0),
        rationale=False,
    )
    up = OpenAITeacher(
        TeacherConfig(
            backend="openai",
            base_url=openai_server_url,
            rating_mode="json_object",
            max_retries=1,
            rating_max_tokens=200,
            request_timeout_s=600,  # a loaded 2-core box can take over a minute
        ),
        rationale=False,
    )
    assert up.rater_identity != down.rater_identity
    down.rater_identity = up.rater_identity  # same rater, first unreachable, then back

    failed = label_trajectories(db, down, manifold, ids)
    assert (failed.labelled, failed.failed) == (0, 1)
    [row] = db.get_label_failures(failed.label_ids)
    assert row["reason"].startswith("request failed: APIConnectionError")
    assert row["attempts"] == 2  # the request and its one transport retry
    assert db.scalar("SELECT count(*) FROM reward_labels") == 0  # no number was invented

    # The server is back: the next run rates it (the rating schema's grammar keeps every number on the
    # scale, whatever the model would say) and the failure record is cleared, so nothing is counted twice.
    retried = label_trajectories(db, up, manifold, ids)
    assert (retried.labelled, retried.failed) == (1, 0)
    [label] = db.get_labels(retried.label_ids)
    assert set(label["reward_vector"]) == {"empathy", "curiosity"}
    assert db.get_label_failures(retried.label_ids) == []


def _two_dimensions(settings: Settings, tmp_path: Path):
    import yaml

    raw = yaml.safe_load(settings.manifold_path.read_text())
    raw["dimensions"] = [d for d in raw["dimensions"] if d["name"] in ("empathy", "curiosity")]
    path = tmp_path / "reward-2d.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_manifold(path)


def test_seed_prompts_file_covers_all_five_categories() -> None:
    prompts = load_seed_prompts(REPO_ROOT / "config/prompts/seed_prompts.yaml")
    assert 50 <= len(prompts) <= 100
    cats = {p.category for p in prompts}
    assert cats == {
        "emotional_support",
        "disagreement_conflict",
        "moral_dilemmas",
        "information_seeking",
        "agency_empowerment",
    }
    assert {p.category for p in select_prompts(prompts, 5)} == cats
