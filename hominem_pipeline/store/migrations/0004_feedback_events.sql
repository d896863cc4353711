-- User feedback from the event log: emoji labels on one assistant message, or a chosen/rejected choice
-- between two assistant messages answering the same user turn.
CREATE TABLE feedback_events (
    event_id             TEXT PRIMARY KEY,
    conversation_id      TEXT NOT NULL,
    kind                 TEXT NOT NULL,          -- emoji | preference
    message_id           TEXT,                   -- emoji: the labelled assistant message
    emoji                TEXT,                   -- emoji: one of the seed 000 phase 7 labels
    axes                 TEXT,                   -- emoji: JSON {emotion axis: value} the label stands for
    chosen_message_id    TEXT,                   -- preference
    rejected_message_id  TEXT,                   -- preference
    ts                   TIMESTAMP NOT NULL,
    event_day            DATE NOT NULL,
    metadata             TEXT NOT NULL,
    ingested_at          TIMESTAMP NOT NULL
);
CREATE INDEX idx_feedback_events_conversation ON feedback_events (conversation_id);
CREATE INDEX idx_feedback_events_day ON feedback_events (event_day);
