-- The audit log: who did what to which resource, and how it ended. Written in batches off the
-- request path (src/audit.rs); never holds a credential. Timestamps are Unix milliseconds.
CREATE TABLE audit_events (
    id       BIGSERIAL PRIMARY KEY,
    at       BIGINT NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    team     TEXT,
    resource TEXT,
    outcome  TEXT NOT NULL,
    detail   TEXT
);
-- A team's events newest first (what a team admin reads).
CREATE INDEX audit_events_team ON audit_events (team, id);
-- What audit.retentionDays prunes, by time.
CREATE INDEX audit_events_at ON audit_events (at);
