"""Seed 002's locked extraction rules, as pure functions over one conversation.

- Pairing: every assistant turn pairs with the most recent user message; several assistant drafts
  after one user message all pair with it.
- Dedup within a user turn: among drafts of one reply whose cosine similarity exceeds 0.92, keep only
  the one with the highest reward intensity (no loss exists at extraction time, so with no intensity
  the first draft is kept). Embeddings are computed only for user turns with more than one draft.
- Introspection is excluded by default. With `include_introspection`, only internal-generated
  introspection is taken, deduplicated by content hash and by similarity, down-weighted, and tagged
  `source="introspection"`, `category="introspection"`; and only when a known safety score passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np

from hominem_pipeline.extraction.intensity import IntensitySource, NoIntensity
from hominem_pipeline.records import SFTPair, content_hash

DEDUP_THRESHOLD = 0.92


@dataclass(slots=True)
class Message:
    message_id: str
    role: str
    content: str
    ts: datetime | None = None
    internal_generated: bool = False
    introspection: bool = False
    draft_index: int | None = None

    @classmethod
    def from_row(cls, r: dict[str, Any]) -> Message:
        return cls(
            message_id=r.get("event_id") or r["message_id"],
            role=r["role"],
            content=r["content"],
            ts=r.get("ts"),
            internal_generated=bool(r.get("internal_generated")),
            introspection=bool(r.get("introspection")),
            draft_index=r.get("draft_index"),
        )


@dataclass(slots=True)
class Conversation:
    conversation_id: str
    messages: list[Message]

    @classmethod
    def from_rows(cls, rows: Sequence[dict[str, Any]]) -> Conversation:
        return cls(rows[0]["conversation_id"], [Message.from_row(r) for r in rows])


@dataclass
class ExtractionOptions:
    include_context: bool = False
    context_turns: int = 6  # how many earlier messages make the context
    include_introspection: bool = False
    introspection_weight: float = 0.3  # seed 002 (OBSTACLE 4): introspection is down-weighted
    introspection_min_safety: float = 0.7
    dedup_threshold: float = DEDUP_THRESHOLD


@dataclass
class ExtractionStats:
    assistant_turns: int = 0
    pairs: int = 0
    unpaired: int = 0  # assistant turns before any user message
    multi_draft_turns: int = 0
    dropped_near_duplicates: int = 0
    introspection_excluded: int = 0
    introspection_not_internal: int = 0
    introspection_unsafe_or_unscored: int = 0
    introspection_duplicates: int = 0
    texts_embedded: int = 0
    ranked_by: dict[str, int] = field(default_factory=dict)

    def add(self, other: ExtractionStats) -> None:
        for k, v in vars(other).items():
            if isinstance(v, int):
                setattr(self, k, getattr(self, k) + v)
        for k, v in other.ranked_by.items():
            self.ranked_by[k] = self.ranked_by.get(k, 0) + v


def dedup_drafts(
    embeddings: np.ndarray, intensities: Sequence[float | None], threshold: float = DEDUP_THRESHOLD
) -> list[int]:
    """Indices of the drafts to keep, in their original order.

    Drafts are visited from highest to lowest intensity (unknown intensity ranks below any known one;
    ties keep the earlier draft); a draft is dropped when its cosine similarity with an already kept
    draft is above `threshold`. So of any near-duplicate group, the most intense survives."""
    n = len(intensities)
    if n <= 1:
        return list(range(n))
    vectors = np.asarray(embeddings, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.where(norms == 0, 1.0, norms)
    order = sorted(range(n), key=lambda i: (intensities[i] is None, -(intensities[i] or 0.0), i))
    kept: list[int] = []
    for i in order:
        if all(float(vectors[i] @ vectors[k]) <= threshold for k in kept):
            kept.append(i)
    return sorted(kept)


@dataclass
class _Turn:
    user: Message
    context: list[Message]
    replies: list[Message] = field(default_factory=list)


def _turns(conversation: Conversation, context_turns: int) -> tuple[list[_Turn], int]:
    turns: list[_Turn] = []
    unpaired = 0
    history: list[Message] = []
    current: _Turn | None = None
    for m in conversation.messages:
        if m.role == "user":
            current = _Turn(user=m, context=history[-context_turns:] if context_turns else [])
            turns.append(current)
        elif m.role == "assistant":
            if current is None:
                unpaired += 1
            else:
                current.replies.append(m)
        if m.role != "assistant" or not current or len(current.replies) <= 1:
            history.append(m)  # later drafts of the same reply are not context for the next turn
    return turns, unpaired


def _context_text(messages: list[Message]) -> str | None:
    if not messages:
        return None
    return "\n".join(f"{m.role}: {m.content}" for m in messages)


def _is_introspection(turn: _Turn, reply: Message) -> bool:
    return reply.introspection or turn.user.introspection


def texts_to_embed(conversation: Conversation, options: ExtractionOptions | None = None) -> list[str]:
    """The texts extraction will embed for this conversation: drafts of user turns with more than one
    draft, and (when included) internal-generated introspection. Lets a caller embed many
    conversations' texts in one batch (see `PrecomputedEmbedder`)."""
    opts = options or ExtractionOptions()
    turns, _ = _turns(conversation, 0)
    out: list[str] = []
    for turn in turns:
        plain = [r for r in turn.replies if not _is_introspection(turn, r)]
        if len(plain) > 1:
            out.extend(r.content for r in plain)
        if opts.include_introspection:
            out.extend(r.content for r in turn.replies if _is_introspection(turn, r) and r.internal_generated)
    return out


class PrecomputedEmbedder:
    """Serves vectors computed ahead in one batch; anything not precomputed goes to `fallback`."""

    def __init__(self, vectors: dict[str, np.ndarray], fallback: Any):
        self.vectors = vectors
        self.fallback = fallback

    def embed(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.vectors]
        if missing:
            self.vectors.update(zip(missing, self.fallback.embed(missing), strict=True))
        return np.stack([self.vectors[t] for t in texts])


def extract_sft_pairs_from_conversation(
    conversation: Conversation | Sequence[dict[str, Any]],
    include_context: bool = False,
    *,
    options: ExtractionOptions | None = None,
    embedder: Any = None,
    intensity: IntensitySource | None = None,
    stats: ExtractionStats | None = None,
) -> list[SFTPair]:
    """Every SFT pair one conversation yields under the locked rules (see the module docstring).

    `embedder` (an `embedding.Embedder`) is needed only when a user turn has several drafts or when
    introspection is included; `intensity` ranks drafts (default: none, so the first draft wins)."""
    if not isinstance(conversation, Conversation):
        conversation = Conversation.from_rows(list(conversation))
    opts = options or ExtractionOptions()
    if include_context and not opts.include_context:
        opts = replace(opts, include_context=True)
    source = intensity or NoIntensity()
    st = stats if stats is not None else ExtractionStats()
    turns, unpaired = _turns(conversation, opts.context_turns)
    st.unpaired += unpaired
    pairs: list[SFTPair] = []
    introspective: list[tuple[_Turn, Message]] = []
    for turn in turns:
        st.assistant_turns += len(turn.replies)
        replies = []
        for r in turn.replies:
            if _is_introspection(turn, r):
                introspective.append((turn, r))
            else:
                replies.append(r)
        kept = replies
        ranked: list[float | None] = [None] * len(replies)
        if len(replies) > 1:
            st.multi_draft_turns += 1
            if embedder is None:
                raise ValueError("a user turn has several drafts: the dedup rule needs an embedder")
            vectors = embedder.embed([r.content for r in replies])
            st.texts_embedded += len(replies)
            ranked = source.intensities(
                turn.user.content, [r.content for r in replies], [r.message_id for r in replies]
            )
            how = source.name if any(x is not None for x in ranked) else "first_draft"
            st.ranked_by[how] = st.ranked_by.get(how, 0) + 1
            keep = dedup_drafts(vectors, ranked, opts.dedup_threshold)
            st.dropped_near_duplicates += len(replies) - len(keep)
            kept = [replies[i] for i in keep]
            ranked = [ranked[i] for i in keep]
        for r, ri in zip(kept, ranked, strict=True):
            pairs.append(_pair(conversation, turn, r, "conversation", None, 1.0, ri, opts, len(replies)))
    pairs.extend(_introspection_pairs(conversation, introspective, opts, embedder, source, st))
    st.pairs += len(pairs)
    return pairs


def _pair(
    conversation: Conversation,
    turn: _Turn,
    reply: Message,
    source: str,
    category: str | None,
    weight: float,
    reward_intensity: float | None,
    opts: ExtractionOptions,
    drafts: int,
    safety: float | None = None,
) -> SFTPair:
    context = _context_text(turn.context) if opts.include_context else None
    return SFTPair(
        pair_id=content_hash("sft", turn.user.content, reply.content, context or ""),
        instruction=turn.user.content,
        response=reply.content,
        source=source,  # type: ignore[arg-type]
        category=category,
        weight=weight,
        reward_intensity=None if reward_intensity is None else min(1.0, max(0.0, reward_intensity)),
        safety_score=safety,
        context=context,
        conversation_id=conversation.conversation_id,
        message_id=reply.message_id,
        created_at=reply.ts,
        metadata={
            "user_message_id": turn.user.message_id,
            "drafts_in_turn": drafts,
            "draft_index": reply.draft_index,
        },
    )


def _introspection_pairs(
    conversation: Conversation,
    items: list[tuple[_Turn, Message]],
    opts: ExtractionOptions,
    embedder: Any,
    source: IntensitySource,
    st: ExtractionStats,
) -> list[SFTPair]:
    if not items:
        return []
    if not opts.include_introspection:
        st.introspection_excluded += len(items)
        return []
    candidates: list[tuple[_Turn, Message, float]] = []
    seen_hashes: set[str] = set()
    for turn, r in items:
        if not r.internal_generated:
            st.introspection_not_internal += 1
            continue
        h = content_hash(r.content.strip().lower())
        if h in seen_hashes:
            st.introspection_duplicates += 1
            continue
        safety = getattr(source, "safety", lambda _m: None)(r.message_id)
        if safety is None or safety < opts.introspection_min_safety:
            st.introspection_unsafe_or_unscored += 1
            continue
        seen_hashes.add(h)
        candidates.append((turn, r, safety))
    if len(candidates) > 1:
        if embedder is None:
            raise ValueError("introspection dedup needs an embedder")
        vectors = embedder.embed([r.content for _, r, _ in candidates])
        st.texts_embedded += len(candidates)
        ranked = source.intensities(
            "", [r.content for _, r, _ in candidates], [r.message_id for _, r, _ in candidates]
        )
        keep = dedup_drafts(vectors, ranked, opts.dedup_threshold)
        st.introspection_duplicates += len(candidates) - len(keep)
        candidates = [candidates[i] for i in keep]
    out = []
    for turn, r, safety in candidates:
        [ri] = source.intensities(turn.user.content, [r.content], [r.message_id])
        out.append(
            _pair(
                conversation,
                turn,
                r,
                "introspection",
                "introspection",
                opts.introspection_weight,
                ri,
                opts,
                1,
                safety,
            )
        )
    return out
