-- Run records (src/record): per attempt, its Spark application id, where its driver log (and
-- failed executors' log tails) were archived, the evidence of how it ended and the summary of
-- its event log. A row is written 'pending' in the transaction that ends the attempt and
-- filled in by the recorder; it goes with its job. JSON columns are TEXT; timestamps are Unix
-- milliseconds.
CREATE TABLE attempt_records (
    job_id          TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    attempt         BIGINT NOT NULL,
    state           TEXT NOT NULL,
    app_id          TEXT,
    driver_log      TEXT,
    evidence        TEXT,
    summary         TEXT,
    headline        TEXT,
    ended_at        BIGINT NOT NULL,
    recorded_at     BIGINT,
    logs_deleted_at BIGINT,
    PRIMARY KEY (job_id, attempt)
);
-- What the recorder has left to do, oldest first.
CREATE INDEX attempt_records_pending ON attempt_records (ended_at, job_id, attempt)
    WHERE state = 'pending';
-- What history.retentionDays has left to delete, by age.
CREATE INDEX attempt_records_retained ON attempt_records (ended_at)
    WHERE logs_deleted_at IS NULL;
