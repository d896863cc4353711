"""The reward channel's data: `PreferencePair`s from three sources.

- `teacher`: teacher-labelled candidates (`data/labeled/reward_samples.jsonl`): per prompt, chosen = the
  best and rejected = the worst candidate by the scalar aggregate, kept only when the margin reaches
  `min_margin`.
- `feedback`: the user's choices in the event log: an explicit chosen/rejected event, or two drafts of
  one reply whose emoji labels differ in valence by at least `min_valence_gap`.
- `import`: human preferences imported with `hominem import preferences` (scores left empty: the
  trainer scores them with the reward model).
Where both responses carry reward labels, a pair gets `reward_intensity` (mean of the two),
`safety_score` (the lower of the two), `chosen_safety` / `rejected_safety` and per-dimension deltas.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hominem_pipeline.manifold import RewardManifold
from hominem_pipeline.records import PreferencePair, content_hash


@dataclass
class PreferenceBuild:
    pairs: list[PreferencePair] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def count(self, source: str) -> int:
        return sum(1 for p in self.pairs if p.source == source)


def _scalar(row: dict[str, Any], manifold: RewardManifold) -> float:
    if row.get("scalar_preference") is not None:
        return float(row["scalar_preference"])
    return manifold.scalar_preference_of(row["reward_vector"])


def _scored(chosen: dict[str, Any], rejected: dict[str, Any], manifold: RewardManifold) -> dict[str, Any]:
    """The numbers a pair carries, from the two responses' labels (vector, intensity, safety)."""
    cv, rv = chosen["reward_vector"], rejected["reward_vector"]
    return {
        "reward_intensity": (chosen["reward_intensity"] + rejected["reward_intensity"]) / 2.0,
        "safety_score": min(chosen["safety_score"], rejected["safety_score"]),
        "chosen_safety": chosen["safety_score"],
        "rejected_safety": rejected["safety_score"],
        "dimension_deltas": {n: round(cv[n] - rv[n], 6) for n in manifold.names if n in cv and n in rv},
        "margin": round(_scalar(chosen, manifold) - _scalar(rejected, manifold), 6),
    }


def pairs_from_teacher_labels(
    rows: Iterable[dict[str, Any]], manifold: RewardManifold, min_margin: float, out: PreferenceBuild
) -> None:
    by_prompt: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_prompt[r.get("prompt_id") or content_hash(r["prompt"])].append(r)
    for group in by_prompt.values():
        if len(group) < 2:
            out.skipped["teacher_single_candidate"] += 1
            continue
        ranked = sorted(group, key=lambda r: (-_scalar(r, manifold), r["trajectory_id"]))
        best, worst = ranked[0], ranked[-1]
        if best["response"].strip() == worst["response"].strip():
            out.skipped["teacher_identical_responses"] += 1
            continue
        scores = _scored(best, worst, manifold)
        if scores["margin"] < min_margin:
            out.skipped["teacher_below_margin"] += 1
            continue
        out.pairs.append(
            PreferencePair(
                prompt=best["prompt"], chosen=best["response"], rejected=worst["response"], source="teacher",
                category=best.get("category"), scored_by=best.get("rater"),
                metadata={"chosen_label_id": best["label_id"], "rejected_label_id": worst["label_id"],
                          "candidates": len(group)},
                **scores,
            )
        )


def pairs_from_feedback(
    db: Any, manifold: RewardManifold, min_valence_gap: float, out: PreferenceBuild
) -> None:
    """Explicit chosen/rejected events, then emoji valence between drafts of one reply."""
    feedback = db.get_feedback()
    choices = [(f["chosen_message_id"], f["rejected_message_id"], f["event_id"], "choice") for f in feedback if f["kind"] == "preference"]
    valence: dict[str, float] = defaultdict(float)
    for f in feedback:
        if f["kind"] == "emoji" and "valence" in f["axes"]:
            valence[f["message_id"]] += f["axes"]["valence"]
    ids = {m for c in choices for m in c[:2]} | set(valence)
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
            choices.append((ranked[0], ranked[-1], "", "emoji_valence"))
    labels = {r["message_id"]: r for r in db.get_conversation_labels(message_ids=sorted(ids), kind="reward")}
    for chosen_id, rejected_id, event_id, how in choices:
        if chosen_id not in messages or rejected_id not in messages:
            out.skipped["feedback_unknown_message"] += 1
            continue
        if prompts.get(chosen_id, (None,))[0] is None or prompts.get(chosen_id) != prompts.get(rejected_id):
            out.skipped["feedback_not_same_user_turn"] += 1
            continue
        chosen, rejected = messages[chosen_id]["content"], messages[rejected_id]["content"]
        if chosen.strip() == rejected.strip():
            out.skipped["feedback_identical_responses"] += 1
            continue
        scores: dict[str, Any] = {}
        if chosen_id in labels and rejected_id in labels:
            lc, lr = labels[chosen_id], labels[rejected_id]
            scores = _scored(
                {**lc, "reward_vector": lc["vector"]}, {**lr, "reward_vector": lr["vector"]}, manifold
            )
            scores["scored_by"] = lc["rater"]
        out.pairs.append(
            PreferencePair(
                prompt=prompts[chosen_id][1], chosen=chosen, rejected=rejected, source="feedback",
                metadata={"how": how, "feedback_event_id": event_id, "chosen_message_id": chosen_id,
                          "rejected_message_id": rejected_id, "conversation_id": messages[chosen_id]["conversation_id"]},
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
                pair_id=r["pair_id"], prompt=r["prompt"], chosen=r["chosen"], rejected=r["rejected"], source="import",
                metadata={"source_file": r.get("source_file"), "line_no": r.get("line_no")},
            )
        )


def build_preference_pairs(
    db: Any, manifold: RewardManifold, teacher_rows: list[dict[str, Any]], min_margin: float = 0.05,
    min_valence_gap: float = 1.0,
) -> PreferenceBuild:
    out = PreferenceBuild()
    pairs_from_teacher_labels(teacher_rows, manifold, min_margin, out)
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
            problems.extend(f"{where}: {'.'.join(str(x) for x in e['loc']) or 'pair'}: {e['msg']}" for e in exc.errors())
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
        if str(row.get("instruction", "")).strip() and row.get("instruction", "").strip() == str(row.get("response", "")).strip():
            problems.append(f"{where}: response: same text as the instruction")
        try:
            SFTPair.model_validate(row)
        except ValidationError as exc:
            problems.extend(f"{where}: {'.'.join(str(x) for x in e['loc']) or 'pair'}: {e['msg']}" for e in exc.errors())
    return problems
