-- Teardowns are rows of deployments with negative ids (never a GitHub id),
-- so they take an environment's turn, leases, cancel and logs as
-- deployments do; teardown_of names the latest deployment they tear down.
ALTER TABLE deployments ADD COLUMN teardown_of INTEGER;
-- The latest deployment of an environment, and teardowns since it.
CREATE INDEX deployments_env_seq ON deployments (repository, environment, seq);
-- Idle transient environments are looked for among ended transient ones.
CREATE INDEX deployments_transient ON deployments (repository, environment, seq)
    WHERE transient AND id >= 0;
