"""The conversation event log: the append-only record of every message and every piece of user feedback.

Writers (the chat server, `hominem import conversations`) append here without touching DuckDB; the
`conversations` asset ingests each day's file into the store.
"""

from hominem_pipeline.events.log import EventLog
from hominem_pipeline.events.schema import (
    EMOJI_AXES,
    EMOTION_AXES,
    Event,
    FeedbackEvent,
    MessageEvent,
    parse_event,
)

__all__ = ["EMOJI_AXES", "EMOTION_AXES", "Event", "EventLog", "FeedbackEvent", "MessageEvent", "parse_event"]
