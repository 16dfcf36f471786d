-- Team namespaces sk8 provisions: the desired spec of each sjns-<team>-<env> (what the cluster
-- holds is read from the cluster, never stored). A namespace being deleted keeps its row, with
-- deleted_at set, until every cluster has let it go. Timestamps are Unix milliseconds.
CREATE TABLE namespaces (
    team       TEXT NOT NULL,
    env        TEXT NOT NULL,
    namespace  TEXT NOT NULL UNIQUE,
    spec       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT,
    version    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (team, env)
);
