-- Foundation: seed prompts, teacher trajectories, reward labels and the labels the teacher failed to give.
CREATE TABLE seed_prompts (
    prompt_id     TEXT PRIMARY KEY,
    category      TEXT NOT NULL,
    text          TEXT NOT NULL,
    content_hash  TEXT NOT NULL,
    updated_at    TIMESTAMP NOT NULL
);

CREATE TABLE trajectories (
    trajectory_id    TEXT PRIMARY KEY,   -- hash(prompt content, teacher, sampling, candidate index)
    prompt_id        TEXT NOT NULL,
    prompt_hash      TEXT NOT NULL,
    category         TEXT NOT NULL,
    prompt           TEXT NOT NULL,
    candidate_index  INTEGER NOT NULL,
    response         TEXT NOT NULL,
    teacher          TEXT NOT NULL,
    sampling         TEXT NOT NULL,      -- JSON
    created_at       TIMESTAMP NOT NULL
);
CREATE INDEX idx_trajectories_prompt ON trajectories (prompt_id);

CREATE TABLE reward_labels (
    label_id           TEXT PRIMARY KEY, -- hash(trajectory_id, rater, schema_hash)
    trajectory_id      TEXT NOT NULL,
    rater              TEXT NOT NULL,
    schema_hash        TEXT NOT NULL,
    reward_vector      TEXT NOT NULL,    -- JSON {dimension: value}
    reward_intensity   DOUBLE NOT NULL,
    safety_score       DOUBLE NOT NULL,
    scalar_preference  DOUBLE,
    rationale          TEXT NOT NULL,
    confidence         TEXT NOT NULL,    -- JSON {dimension or scalar: confidence in [0, 1]}
    created_at         TIMESTAMP NOT NULL
);
CREATE INDEX idx_reward_labels_trajectory ON reward_labels (trajectory_id);

CREATE TABLE label_failures (
    label_id       TEXT PRIMARY KEY,
    trajectory_id  TEXT NOT NULL,
    rater          TEXT NOT NULL,
    schema_hash    TEXT NOT NULL,
    reason         TEXT NOT NULL,
    raw_output     TEXT,
    attempts       INTEGER NOT NULL,
    created_at     TIMESTAMP NOT NULL
);
