-- The memory channel's training rows (seed 002 section 1). is_used / used_timestamp / training_epoch are
-- set by the trainer through TrainingDatabase.update_sft_used when a pair is consumed.
CREATE TABLE sft_pairs (
    pair_id            TEXT PRIMARY KEY,         -- content hash of (instruction, response) unless given
    instruction        TEXT NOT NULL,
    response           TEXT NOT NULL,
    context            TEXT,
    source             TEXT NOT NULL,            -- conversation | knowledge_update | introspection | ...
    category           TEXT,
    confidence         DOUBLE NOT NULL,
    reward_intensity   DOUBLE,
    safety_score       DOUBLE,
    weight             DOUBLE NOT NULL,
    conversation_id    TEXT,
    message_id         TEXT,                     -- the assistant message the response came from
    instruction_length INTEGER NOT NULL,
    response_length    INTEGER NOT NULL,
    metadata           TEXT NOT NULL,            -- JSON
    created_at         TIMESTAMP NOT NULL,
    is_used            BOOLEAN NOT NULL DEFAULT FALSE,
    used_timestamp     TIMESTAMP,
    training_epoch     INTEGER
);
CREATE INDEX idx_sft_pairs_source ON sft_pairs (source);
CREATE INDEX idx_sft_pairs_is_used ON sft_pairs (is_used);
CREATE INDEX idx_sft_pairs_created_at ON sft_pairs (created_at);
CREATE INDEX idx_sft_pairs_conversation ON sft_pairs (conversation_id);
CREATE INDEX idx_sft_pairs_message ON sft_pairs (message_id);
