-- Conversation messages ingested from the event log (data/events/YYYY-MM-DD.jsonl).
-- event_id is the log record's id (for imports, a content hash): ingesting a file twice adds nothing.
CREATE TABLE conversation_messages (
    event_id            TEXT PRIMARY KEY,
    conversation_id     TEXT NOT NULL,
    role                TEXT NOT NULL,          -- user | assistant | system
    content             TEXT NOT NULL,
    ts                  TIMESTAMP NOT NULL,     -- when the message was said (UTC)
    seq                 INTEGER,                -- position in the conversation when the writer knew it
    parent_id           TEXT,                   -- the message this one answers, when the writer knew it
    draft_index         INTEGER,                -- 0, 1, ... for several assistant drafts of one reply
    internal_generated  BOOLEAN NOT NULL,
    introspection       BOOLEAN NOT NULL,
    origin              TEXT NOT NULL,          -- server | import:<format> | cli
    event_day           DATE NOT NULL,          -- the event-log file (partition) it came from
    metadata            TEXT NOT NULL,          -- JSON
    ingested_at         TIMESTAMP NOT NULL
);
CREATE INDEX idx_conversation_messages_conversation ON conversation_messages (conversation_id);
CREATE INDEX idx_conversation_messages_day ON conversation_messages (event_day);
