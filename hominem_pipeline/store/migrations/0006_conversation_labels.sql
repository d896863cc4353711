-- Teacher ratings of assistant turns: kind "reward" is the reward manifold (config/schemas/reward.yaml),
-- kind "emotion" the seed 000 phase 7 emotion axes (config/schemas/emotion.yaml).
CREATE TABLE conversation_labels (
    label_id          TEXT PRIMARY KEY,          -- hash(message_id, kind, rater, schema_hash)
    message_id        TEXT NOT NULL,
    conversation_id   TEXT NOT NULL,
    kind              TEXT NOT NULL,
    rater             TEXT NOT NULL,
    schema_hash       TEXT NOT NULL,
    vector            TEXT NOT NULL,             -- JSON {dimension: value}
    reward_intensity  DOUBLE NOT NULL,
    safety_score      DOUBLE NOT NULL,
    scalar_preference DOUBLE,
    rationale         TEXT NOT NULL,
    confidence        TEXT NOT NULL,             -- JSON
    event_day         DATE NOT NULL,
    created_at        TIMESTAMP NOT NULL
);
CREATE INDEX idx_conversation_labels_message ON conversation_labels (message_id);
CREATE INDEX idx_conversation_labels_day ON conversation_labels (event_day);

CREATE TABLE conversation_label_failures (
    label_id    TEXT PRIMARY KEY,
    message_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    rater       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    raw_output  TEXT,
    event_day   DATE NOT NULL,
    created_at  TIMESTAMP NOT NULL
);
