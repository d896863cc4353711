"""The memory channel's data: SFT pairs extracted from conversations under seed 002's locked rules, and
knowledge updates (seed 000 5.5.4) identified by the teacher."""

from hominem_pipeline.extraction.sft import (
    Conversation,
    ExtractionOptions,
    Message,
    dedup_drafts,
    extract_sft_pairs_from_conversation,
)
from hominem_pipeline.extraction.store import ExtractionResult, extract_and_store_sft_pairs

__all__ = [
    "Conversation",
    "ExtractionOptions",
    "ExtractionResult",
    "Message",
    "dedup_drafts",
    "extract_and_store_sft_pairs",
    "extract_sft_pairs_from_conversation",
]
