-- The reward channel's training rows: one PreferencePair (hominem_pipeline.records) per row.
CREATE TABLE preference_pairs (
    pair_id           TEXT PRIMARY KEY,
    prompt            TEXT NOT NULL,
    chosen            TEXT NOT NULL,
    rejected          TEXT NOT NULL,
    source            TEXT NOT NULL,             -- teacher | feedback | import
    record            TEXT NOT NULL,             -- the full PreferencePair as JSON
    created_at        TIMESTAMP NOT NULL
);
CREATE INDEX idx_preference_pairs_source ON preference_pairs (source);
