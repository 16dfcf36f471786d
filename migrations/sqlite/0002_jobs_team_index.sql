-- Listing one team's jobs newest first (GET /v1/jobs?team=T) walks this index in id order
-- instead of reading and sorting every job of the team: 4 s -> milliseconds at 100k jobs
-- (docs/benchmarks.md). (team, env, id) cannot serve it when env is not filtered.
CREATE INDEX jobs_team ON jobs (team, id);
