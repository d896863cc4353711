"""The reward channel's data: `PreferencePair`s from three sources, and the two rules every pair follows.

- `teacher`: teacher-labelled candidates (`data/labeled/reward_samples.jsonl`): per prompt, chosen = the
  best and rejected = the worst candidate by the scalar aggregate (`select_teacher_pairs`, the one rule
  the reward model's training pairs use too).
- `feedback`: the user's choices in the event log (`feedback_choices`): an explicit chosen/rejected event,
  or two drafts of one reply whose emoji labels differ in valence by at least `min_valence_gap`.
- `import`: human preferences imported with `hominem import preferences` (scores left empty: the
  trainer scores them with the reward model).
Where both responses carry scores (teacher labels here, the reward model in training), `pair_scores` gives
a pair its numbers: `reward_intensity` (mean of the two), `safety_score` = the chosen response's safety
(the pair teaches the chosen response; an unsafe rejected one is what "prefer the safe answer" needs),
`chosen_safety` / `rejected_safety`, per-dimension deltas and the scalar margin. Each pair is dated by
its source event (label, feedback event or import), so recency acts on this channel.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from hominem_pipeline.manifold import RewardManifold
from hominem_pipeline.records import PreferencePair

T = TypeVar("T")


@dataclass
class PreferenceBuild:
    pairs: list[PreferencePair] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def count(self, source: str) -> int:
        return sum(1 for p in self.pairs if p.source == source)


@dataclass(frozen=True)
class ResponseScores:
    """What one response was scored (by a teacher label or the reward model)."""

    reward_vector: Mapping[str, float]
    reward_intensity: float
    safety_score: float
    scalar: float | None = None


def pair_scores(
    chosen: ResponseScores, rejected: ResponseScores, names: Iterable[str] | None = None
) -> dict[str, Any]:
    """The numbers a preference pair carries, from its two responses' scores: the one rule used for
    teacher labels, feedback and reward-model scoring. The gate acts on `safety_score`, which is the
    chosen response's safety: what the pair reinforces."""
    dims = list(names) if names is not None else list(chosen.reward_vector)
    out: dict[str, Any] = {
        "reward_intensity": (float(chosen.reward_intensity) + float(rejected.reward_intensity)) / 2.0,
        "safety_score": float(chosen.safety_score),
        "chosen_safety": float(chosen.safety_score),
        "rejected_safety": float(rejected.safety_score),
        "dimension_deltas": {
            n: round(float(chosen.reward_vector[n]) - float(rejected.reward_vector[n]), 6)
            for n in dims
            if n in chosen.reward_vector and n in rejected.reward_vector
        },
    }
    if chosen.scalar is not None and rejected.scalar is not None:
        out["margin"] = round(float(chosen.scalar) - float(rejected.scalar), 6)
    return out


def select_teacher_pairs(
    candidates: Iterable[T],
    *,
    prompt: Callable[[T], str],
    response: Callable[[T], str],
    scalar: Callable[[T], float],
    min_margin: float,
) -> tuple[list[tuple[T, T, float]], dict[str, int]]:
    """The one teacher-pair rule: per prompt, the best vs the worst candidate by scalar (ties broken by
    response text, so the result does not depend on input order), kept when the margin is at least
    `min_margin` and the two responses differ. Returns ([(best, worst, margin)], skipped counts)."""
    by_prompt: dict[str, list[T]] = defaultdict(list)
    for c in candidates:
        by_prompt[prompt(c)].append(c)
    chosen: list[tuple[T, T, float]] = []
    skipped: dict[str, int] = defaultdict(int)
    for group in by_prompt.values():
        if len(group) < 2:
            skipped["single_candidate"] += 1
            continue
        ranked = sorted(group, key=lambda c: (-scalar(c), response(c)))
        best, worst = ranked[0], ranked[-1]
        if response(best).strip() == response(worst).strip():
            skipped["identical_responses"] += 1
            continue
        margin = scalar(best) - scalar(worst)
        if margin < min_margin:
            skipped["below_margin"] += 1
            continue
        chosen.append((best, worst, margin))
    return chosen, dict(skipped)


def _scalar(row: dict[str, Any], manifold: RewardManifold) -> float:
    if row.get("scalar_preference") is not None:
        return float(row["scalar_preference"])
    return manifold.scalar_preference_of(row["reward_vector"])


def _label_scores(row: dict[str, Any], manifold: RewardManifold) -> ResponseScores:
    vector = row.get("reward_vector", row.get("vector"))
    return ResponseScores(
        vector,
        row["reward_intensity"],
        row["safety_score"],
        _scalar({**row, "reward_vector": vector}, manifold),
    )


def pairs_from_teacher_labels(
    rows: Iterable[dict[str, Any]],
    manifold: RewardManifold,
    min_margin: float,
    out: PreferenceBuild,
    label_times: Mapping[str, datetime] | None = None,
) -> None:
    """Teacher pairs, dated by the later of their two labels (`created_at` in the row, else
    `label_times[label_id]`)."""
    times = label_times or {}
    selected, skipped = select_teacher_pairs(
        rows,
        prompt=lambda r: r["prompt"],
        response=lambda r: r["response"],
        scalar=lambda r: _scalar(r, manifold),
        min_margin=min_margin,
    )
    for reason, n in skipped.items():
        out.skipped[f"teacher_{reason}"] += n
    for best, worst, _margin in selected:
        dated = [
            t
            for t in (
                best.get("created_at") or times.get(best["label_id"]),
                worst.get("created_at") or times.get(worst["label_id"]),
            )
            if t is not None
        ]
        out.pairs.append(
            PreferencePair(
                prompt=best["prompt"],
                chosen=best["response"],
                rejected=worst["response"],
                source="teacher",
                category=best.get("category"),
                scored_by=best.get("rater"),
                created_at=max(dated) if dated else None,
                metadata={"chosen_label_id": best["label_id"], "rejected_label_id": worst["label_id"]},
                **pair_scores(_label_scores(best, manifold), _label_scores(worst, manifold), manifold.names),
            )
        )


@dataclass(frozen=True)
class FeedbackChoice:
    """The user preferred `chosen_id` over `rejected_id` (two drafts of one reply), at `ts`."""

    chosen_id: str
    rejected_id: str
    event_id: str
    how: str  # "choice" (an explicit event) | "emoji_valence"
    ts: datetime | None
    prompt: str
    conversation_id: str


def feedback_choices(
    db: Any, min_valence_gap: float, skipped: dict[str, int] | None = None
) -> tuple[list[FeedbackChoice], dict[str, dict[str, Any]]]:
    """Every valid user choice between two drafts of one reply: explicit chosen/rejected events, then
    drafts whose summed emoji valence differs by at least `min_valence_gap`. Returns the choices and the
    messages they name. The rejected side of a choice is kept out of the memory channel (see
    `channels.build_sft_pairs`)."""
    skipped = skipped if skipped is not None else defaultdict(int)
    feedback = db.get_feedback()
    raw = [
        (f["chosen_message_id"], f["rejected_message_id"], f["event_id"], "choice", f["ts"])
        for f in feedback
        if f["kind"] == "preference"
    ]
    valence: dict[str, float] = defaultdict(float)
    emoji_ts: dict[str, datetime] = {}
    for f in feedback:
        if f["kind"] == "emoji" and "valence" in f["axes"]:
            valence[f["message_id"]] += f["axes"]["valence"]
            emoji_ts[f["message_id"]] = max(f["ts"], emoji_ts.get(f["message_id"], f["ts"]))
    ids = {m for c in raw for m in c[:2]} | set(valence)
    messages = db.get_messages(sorted(ids))
    prompts = _user_turns(db, messages)
    # Drafts of one reply (same user turn) whose summed valence differs enough make a pair.
    by_turn: dict[str, list[str]] = defaultdict(list)
    for mid in valence:
        if mid in prompts:
            by_turn[prompts[mid][0]].append(mid)
    for turn_mids in by_turn.values():
        if len(turn_mids) < 2:
            continue
        ranked = sorted(turn_mids, key=lambda m: (-valence[m], m))
        if valence[ranked[0]] - valence[ranked[-1]] >= min_valence_gap:
            raw.append(
                (ranked[0], ranked[-1], "", "emoji_valence", max(emoji_ts[ranked[0]], emoji_ts[ranked[-1]]))
            )
    out = []
    for chosen_id, rejected_id, event_id, how, ts in raw:
        if chosen_id not in messages or rejected_id not in messages:
            skipped["feedback_unknown_message"] += 1
            continue
        if prompts.get(chosen_id, (None,))[0] is None or prompts.get(chosen_id) != prompts.get(rejected_id):
            skipped["feedback_not_same_user_turn"] += 1
            continue
        if messages[chosen_id]["content"].strip() == messages[rejected_id]["content"].strip():
            skipped["feedback_identical_responses"] += 1
            continue
        out.append(
            FeedbackChoice(
                chosen_id,
                rejected_id,
                event_id,
                how,
                ts,
                prompts[chosen_id][1],
                messages[chosen_id]["conversation_id"],
            )
        )
    return out, messages


def emotion_scores(
    scores: dict[str, Any], chosen: dict[str, Any], rejected: dict[str, Any]
) -> dict[str, Any]:
    """Seed 000 7.4 on a feedback pair whose two drafts carry the teacher's emotion labels: the emotion
    intensity (mean of the two, how vivid the moment was) weights the pair, and each response's safety is
    the stricter of its reward-label and emotion-label safety, so the gate sees both."""
    out = dict(scores)
    out["reward_intensity"] = (float(chosen["reward_intensity"]) + float(rejected["reward_intensity"])) / 2.0
    for side, label in (("chosen", chosen), ("rejected", rejected)):
        known = scores.get(f"{side}_safety")
        out[f"{side}_safety"] = min(float(label["safety_score"]), 1.0 if known is None else float(known))
    out["safety_score"] = out["chosen_safety"]
    return out


def pairs_from_feedback(
    db: Any, manifold: RewardManifold, min_valence_gap: float, out: PreferenceBuild
) -> None:
    """One pair per user choice (`feedback_choices`), scored by the teacher's labels when both drafts have
    one; the emotion labels, where both drafts have them, set the intensity and tighten the safety
    (`emotion_scores`)."""
    choices, messages = feedback_choices(db, min_valence_gap, out.skipped)
    ids = sorted({m for c in choices for m in (c.chosen_id, c.rejected_id)})
    labels = (
        {r["message_id"]: r for r in db.get_conversation_labels(message_ids=ids, kind="reward")}
        if ids
        else {}
    )
    emotion = (
        {r["message_id"]: r for r in db.get_conversation_labels(message_ids=ids, kind="emotion")}
        if ids
        else {}
    )
    for c in choices:
        scores: dict[str, Any] = {}
        if c.chosen_id in labels and c.rejected_id in labels:
            lc, lr = labels[c.chosen_id], labels[c.rejected_id]
            scores = pair_scores(_label_scores(lc, manifold), _label_scores(lr, manifold), manifold.names)
            scores["scored_by"] = lc["rater"]
        if c.chosen_id in emotion and c.rejected_id in emotion:
            scores = emotion_scores(scores, emotion[c.chosen_id], emotion[c.rejected_id])
            scores.setdefault("scored_by", emotion[c.chosen_id]["rater"])
        out.pairs.append(
            PreferencePair(
                prompt=c.prompt,
                chosen=messages[c.chosen_id]["content"],
                rejected=messages[c.rejected_id]["content"],
                source="feedback",
                created_at=c.ts,
                metadata={
                    "how": c.how,
                    "feedback_event_id": c.event_id,
                    "chosen_message_id": c.chosen_id,
                    "rejected_message_id": c.rejected_id,
                    "conversation_id": c.conversation_id,
                    "intensity_from": "emotion labels"
                    if c.chosen_id in emotion and c.rejected_id in emotion
                    else "reward labels"
                    if scores
                    else "unscored",
                },
                **scores,
            )
        )


def _user_turns(db: Any, messages: dict[str, dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """assistant message id -> (user message id, user text): the most recent user message before it."""
    out: dict[str, tuple[str, str]] = {}
    conv_ids = sorted({m["conversation_id"] for m in messages.values()})
    if not conv_ids:
        return out
    for rows in db.iter_conversation_messages(conversation_ids=conv_ids):
        last_user: dict[str, Any] | None = None
        for r in rows:
            if r["role"] == "user":
                last_user = r
            elif r["role"] == "assistant" and last_user is not None and r["event_id"] in messages:
                out[r["event_id"]] = (last_user["event_id"], last_user["content"])
    return out


def pairs_from_imports(rows: Iterable[dict[str, Any]], out: PreferenceBuild) -> None:
    for r in rows:
        if r["chosen"].strip() == r["rejected"].strip():
            out.skipped["import_identical_responses"] += 1
            continue
        out.pairs.append(
            PreferencePair(
                pair_id=r["pair_id"],
                prompt=r["prompt"],
                chosen=r["chosen"],
                rejected=r["rejected"],
                source="import",
                created_at=r.get("imported_at"),
                metadata={"source_file": r.get("source_file"), "line_no": r.get("line_no")},
            )
        )


def build_preference_pairs(
    db: Any,
    manifold: RewardManifold,
    teacher_rows: list[dict[str, Any]],
    min_margin: float = 0.05,
    min_valence_gap: float = 1.0,
) -> PreferenceBuild:
    out = PreferenceBuild()
    label_ids = [r["label_id"] for r in teacher_rows if r.get("label_id") and not r.get("created_at")]
    label_times = {r["label_id"]: r["created_at"] for r in db.get_labels(label_ids)} if label_ids else {}
    pairs_from_teacher_labels(teacher_rows, manifold, min_margin, out, label_times)
    pairs_from_feedback(db, manifold, min_valence_gap, out)
    pairs_from_imports(db.get_imported_preferences(), out)
    unique: dict[str, PreferencePair] = {}
    for p in out.pairs:
        unique.setdefault(p.pair_id, p)
    out.pairs = list(unique.values())
    return out


def preference_pair_problems(rows: list[dict[str, Any]]) -> list[str]:
    """Every problem in an exported preferences file: empty texts, chosen == rejected, out-of-range
    numbers (each row re-validated as a PreferencePair), as 'row N (pair_id): field: reason'."""
    from pydantic import ValidationError

    problems = []
    for i, row in enumerate(rows, 1):
        where = f"row {i} ({row.get('pair_id', '?')})"
        for f in ("prompt", "chosen", "rejected"):
            if not str(row.get(f) or "").strip():
                problems.append(f"{where}: {f}: empty")
        try:
            PreferencePair.model_validate(row)
        except ValidationError as exc:
            problems.extend(
                f"{where}: {'.'.join(str(x) for x in e['loc']) or 'pair'}: {e['msg']}" for e in exc.errors()
            )
    return problems


def sft_pair_problems(rows: list[dict[str, Any]]) -> list[str]:
    """Same for an exported SFT file: empty texts, instruction == response, invalid fields/ranges."""
    from pydantic import ValidationError

    from hominem_pipeline.records import SFTPair

    problems = []
    for i, row in enumerate(rows, 1):
        where = f"row {i} ({row.get('pair_id', '?')})"
        for f in ("instruction", "response"):
            if not str(row.get(f) or "").strip():
                problems.append(f"{where}: {f}: empty")
        if (
            str(row.get("instruction", "")).strip()
            and row.get("instruction", "").strip() == str(row.get("response", "")).strip()
        ):
            problems.append(f"{where}: response: same text as the instruction")
        try:
            SFTPair.model_validate(row)
        except ValidationError as exc:
            problems.extend(
                f"{where}: {'.'.join(str(x) for x in e['loc']) or 'pair'}: {e['msg']}" for e in exc.errors()
            )
    return problems
