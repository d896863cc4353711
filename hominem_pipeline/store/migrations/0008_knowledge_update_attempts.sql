-- One row per (conversation, method) the knowledge-update extractor has looked at: what it found, or
-- why it failed. Failures are kept, never replaced by invented pairs; a later run retries them.
CREATE TABLE knowledge_update_attempts (
    attempt_id       TEXT PRIMARY KEY,           -- hash(conversation content, method identity)
    conversation_id  TEXT NOT NULL,
    method           TEXT NOT NULL,
    ok               BOOLEAN NOT NULL,
    pairs_found      INTEGER NOT NULL,
    reason           TEXT,
    raw_output       TEXT,
    created_at       TIMESTAMP NOT NULL
);
