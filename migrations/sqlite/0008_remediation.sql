-- Remediation (src/remediation): how each failed attempt was classified — by the recorder, from
-- its run record — and what the reconciler decided (class, rule, evidence, action, backoff).
-- JSON columns are TEXT.
ALTER TABLE attempt_records ADD COLUMN classification TEXT;
ALTER TABLE attempts ADD COLUMN remediation TEXT;
-- The size a resized retry found for a job, by its signature (team, env, name): where the next
-- submission of the same job starts (unless it or its team says "resize": "off").
CREATE TABLE remembered_sizes (
    team          TEXT NOT NULL,
    env           TEXT NOT NULL,
    name          TEXT NOT NULL,
    job_id        TEXT NOT NULL,
    attempt       BIGINT NOT NULL,
    changes       TEXT NOT NULL,
    remembered_at BIGINT NOT NULL,
    PRIMARY KEY (team, env, name)
);
-- Where a job's starting size came from (a remembered size), shown on the job.
ALTER TABLE jobs ADD COLUMN sized_from TEXT;
