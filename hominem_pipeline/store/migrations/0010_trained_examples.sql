-- Which adapter version trained on which example (issue 8): a row counts as used only once an adapter
-- that trained on it is `current`, so the trainer records (example, adapter_version) here and promotion
-- / rollback set sft_pairs.is_used from it. One word for a training run: "cycle" (was training_epoch).
CREATE TABLE trained_examples (
    example_id      TEXT NOT NULL,            -- sft_pairs.pair_id or a preference pair's pair_id
    channel         TEXT NOT NULL,            -- sft | preference
    model_name      TEXT NOT NULL,            -- folder under artifacts/lora/
    adapter_version TEXT NOT NULL,
    cycle           INTEGER NOT NULL,         -- the adapter's cycle (1 = first adapter of its chain)
    trained_at      TIMESTAMP NOT NULL,
    PRIMARY KEY (example_id, channel, model_name, adapter_version)
);
CREATE INDEX idx_trained_examples_version ON trained_examples (model_name, adapter_version);

-- DuckDB refuses to alter a column of a table that has indexes; drop and recreate them around the rename.
DROP INDEX idx_sft_pairs_source;
DROP INDEX idx_sft_pairs_is_used;
DROP INDEX idx_sft_pairs_created_at;
DROP INDEX idx_sft_pairs_conversation;
DROP INDEX idx_sft_pairs_message;
ALTER TABLE sft_pairs RENAME COLUMN training_epoch TO cycle;
CREATE INDEX idx_sft_pairs_source ON sft_pairs (source);
CREATE INDEX idx_sft_pairs_is_used ON sft_pairs (is_used);
CREATE INDEX idx_sft_pairs_created_at ON sft_pairs (created_at);
CREATE INDEX idx_sft_pairs_conversation ON sft_pairs (conversation_id);
CREATE INDEX idx_sft_pairs_message ON sft_pairs (message_id);
