-- Leases: which replica does which share of the background work (src/lease.rs). A row per
-- lease; `term` grows by one at every change of holder and fences the holder's writes (a
-- write made under term T is refused once T is not the row's term any more). Timestamps are
-- Unix milliseconds of the writing replica's clock.
CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    term       BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
