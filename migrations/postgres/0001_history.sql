-- Execution history: jobs, their labels, attempts, events (state transitions) and
-- idempotency keys. Timestamps are Unix milliseconds (BIGINT) so both engines decode them the
-- same way through sqlx::Any.
CREATE TABLE jobs (
    id              TEXT PRIMARY KEY,
    team            TEXT NOT NULL,
    env             TEXT NOT NULL,
    name            TEXT NOT NULL,
    namespace       TEXT NOT NULL,
    state           TEXT NOT NULL,
    spec            TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    failure_reason  TEXT,
    failure_class   TEXT,
    spark_ui_url    TEXT,
    idempotency_key TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    started_at      BIGINT,
    finished_at     BIGINT,
    next_attempt_at BIGINT,
    version         BIGINT NOT NULL DEFAULT 0
);
-- The reconciler scans only live jobs; a partial index keeps that cheap however long the history.
CREATE INDEX jobs_live ON jobs (state, id)
    WHERE state IN ('QUEUED', 'SUBMITTED', 'RUNNING', 'RETRYING', 'CANCELLING');
CREATE INDEX jobs_team_env ON jobs (team, env, id);
CREATE INDEX jobs_state ON jobs (state, id);
CREATE INDEX jobs_name ON jobs (name, id);

CREATE TABLE job_labels (
    job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (job_id, key)
);
CREATE INDEX job_labels_key_value ON job_labels (key, value, job_id);

CREATE TABLE attempts (
    job_id         TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt        BIGINT NOT NULL,
    backend        TEXT NOT NULL,
    backend_ref    TEXT,
    state          TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    ended_at       BIGINT,
    failure_reason TEXT,
    failure_class  TEXT,
    PRIMARY KEY (job_id, attempt)
);

CREATE TABLE events (
    id         BIGSERIAL PRIMARY KEY,
    job_id     TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt    BIGINT,
    from_state TEXT,
    to_state   TEXT NOT NULL,
    at         BIGINT NOT NULL,
    reason     TEXT NOT NULL,
    detail     TEXT
);
CREATE INDEX events_job ON events (job_id, id);

CREATE TABLE idempotency_keys (
    team       TEXT NOT NULL,
    key        TEXT NOT NULL,
    digest     TEXT NOT NULL,
    job_id     TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (team, key)
);
