-- Nightly maintenance of the memory channel (issue 10, seed 002 section 7; extraction/maintenance.py).
-- Sentence embeddings of each SFT row (instruction + response), computed once per row and embedding model,
-- so the nightly near-duplicate search embeds only new rows; a row's vector is replaced when the model changes.
CREATE TABLE sft_embeddings (
    pair_id TEXT PRIMARY KEY,
    model   TEXT NOT NULL,              -- the embedding model spec that produced the vector
    vector  FLOAT[] NOT NULL            -- unit norm
);
-- The k-means cluster of each row (the near-duplicate search compares rows only within a cluster), and
-- each cluster's centroid: new rows join the nearest centroid; all are recomputed when the model changes.
CREATE TABLE sft_clusters (
    pair_id TEXT PRIMARY KEY,
    cluster INTEGER NOT NULL,
    model   TEXT NOT NULL
);
CREATE TABLE sft_cluster_centroids (
    cluster INTEGER PRIMARY KEY,
    model   TEXT NOT NULL,
    vector  FLOAT[] NOT NULL
);
-- Rows maintenance removed (used and old, or merged into a near-duplicate), kept whole with why: nothing is
-- lost, and extraction never re-creates a removed row (store/sft.py skips these ids and message ids).
CREATE TABLE sft_pairs_removed AS SELECT * FROM sft_pairs LIMIT 0;
ALTER TABLE sft_pairs_removed ADD COLUMN removed_at TIMESTAMP;
ALTER TABLE sft_pairs_removed ADD COLUMN removed_reason TEXT;   -- aged_out | duplicate_content | near_duplicate
ALTER TABLE sft_pairs_removed ADD COLUMN kept_pair_id TEXT;     -- the row a duplicate was merged into
CREATE INDEX idx_sft_pairs_removed_message ON sft_pairs_removed (message_id);
-- Rows re-emitted for training (is_used cleared): training recorded before `reemitted_at` no longer
-- counts as consumption (store/consumption.py), so a promotion does not mark them used again unless an
-- adapter trained on them after the re-emission.
CREATE TABLE sft_reemitted (
    pair_id      TEXT PRIMARY KEY,
    reemitted_at TIMESTAMP NOT NULL
);
