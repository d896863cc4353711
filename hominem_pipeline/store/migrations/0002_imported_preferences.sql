-- Human preference data imported from JSONL ({prompt, chosen, rejected}, e.g. HH-RLHF layout).
-- pair_id hashes (prompt, chosen, rejected): importing the same file twice adds nothing.
CREATE TABLE imported_preferences (
    pair_id      TEXT PRIMARY KEY,
    prompt       TEXT NOT NULL,
    chosen       TEXT NOT NULL,
    rejected     TEXT NOT NULL,
    source_file  TEXT NOT NULL,
    line_no      INTEGER NOT NULL,
    imported_at  TIMESTAMP NOT NULL
);
