-- Interactive sessions (Spark Connect servers reached through the gateway) and their state
-- changes. Timestamps are Unix milliseconds, as in 0001.
CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    team           TEXT NOT NULL,
    env            TEXT NOT NULL,
    name           TEXT NOT NULL,
    namespace      TEXT NOT NULL,
    state          TEXT NOT NULL,
    spec           TEXT NOT NULL,
    starts         BIGINT NOT NULL DEFAULT 0,
    backend_ref    TEXT,
    endpoint       TEXT,
    reason         TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    last_active_at BIGINT NOT NULL,
    deleted_at     BIGINT,
    version        BIGINT NOT NULL DEFAULT 0
);
-- One session per (team, env, name) until it is deleted: a second create finds the first.
CREATE UNIQUE INDEX sessions_name ON sessions (team, env, name) WHERE deleted_at IS NULL;
CREATE INDEX sessions_team ON sessions (team, id);
CREATE INDEX sessions_live ON sessions (state, id)
    WHERE state IN ('STARTING', 'READY', 'STOPPING');

CREATE TABLE session_events (
    id         BIGSERIAL PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    from_state TEXT,
    to_state   TEXT NOT NULL,
    at         BIGINT NOT NULL,
    reason     TEXT NOT NULL
);
CREATE INDEX session_events_session ON session_events (session_id, id);
