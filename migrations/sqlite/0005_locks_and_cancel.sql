-- Environments an operator holds; only an unlock removes a row.
CREATE TABLE env_locks (
    repository  TEXT    NOT NULL,
    environment TEXT    NOT NULL,
    holder      TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    since       INTEGER NOT NULL,  -- unix ms
    PRIMARY KEY (repository, environment)
);

-- Who cancelled a deployment and why: set on a running one, the process
-- running it stops it; the final status says so either way.
ALTER TABLE deployments ADD COLUMN cancelled_by TEXT;
ALTER TABLE deployments ADD COLUMN cancel_reason TEXT;
-- Counted for /metrics every second.
CREATE INDEX deployments_cancelled ON deployments (id) WHERE cancelled_by IS NOT NULL;
