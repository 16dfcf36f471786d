-- Sizing advice reads one signature's latest runs (team, env, name), newest first: this index
-- serves it without reading the rest of the team's history.
CREATE INDEX jobs_signature ON jobs (team, env, name, id);
