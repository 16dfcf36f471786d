-- Sizing advice applied at submit (src/advice/auto.rs, probation.rs).
-- What sizing did for a job: the advice it was given, what was applied and why (JSON).
ALTER TABLE jobs ADD COLUMN sizing TEXT;
-- One row per job that was given advice, for the per-team report (GET /v1/advice/report):
-- how many recommendations it was given and applied, and their estimated saving per run in
-- thousandths of GiB·s and core·s (counted once the job has succeeded).
CREATE TABLE sizing_decisions (
    job_id      TEXT PRIMARY KEY,
    team        TEXT NOT NULL,
    given       BIGINT NOT NULL,
    applied     BIGINT NOT NULL,
    gib_millis  BIGINT NOT NULL,
    core_millis BIGINT NOT NULL
);
CREATE INDEX sizing_decisions_team ON sizing_decisions (team);
-- Applied recommendations taken back after their probation run failed (for memory) or ran
-- slower: per signature (team, env, name, main program), they hold their rule back.
CREATE TABLE sizing_reverts (
    job_id      TEXT NOT NULL,
    setting     TEXT NOT NULL,
    team        TEXT NOT NULL,
    env         TEXT NOT NULL,
    name        TEXT NOT NULL,
    main        TEXT NOT NULL,
    rule        TEXT NOT NULL,
    from_value  TEXT NOT NULL,
    to_value    TEXT NOT NULL,
    reason      TEXT NOT NULL,
    reverted_at BIGINT NOT NULL,
    PRIMARY KEY (job_id, setting)
);
CREATE INDEX sizing_reverts_signature ON sizing_reverts (team, env, name);
