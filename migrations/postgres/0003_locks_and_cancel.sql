-- Environments an operator holds; only an unlock removes a row.
CREATE TABLE env_locks (
    repository  TEXT   NOT NULL,
    environment TEXT   NOT NULL,
    holder      TEXT   NOT NULL,
    reason      TEXT   NOT NULL,
    since       BIGINT NOT NULL,  -- unix ms
    PRIMARY KEY (repository, environment)
);

-- Who cancelled a deployment and why: set on a running one, the replica
-- running it stops it; the final status says so either way.
ALTER TABLE deployments ADD COLUMN cancelled_by TEXT;
ALTER TABLE deployments ADD COLUMN cancel_reason TEXT;
-- Counted for /metrics every second.
CREATE INDEX deployments_cancelled ON deployments (id) WHERE cancelled_by IS NOT NULL;

-- An unlock frees an environment and a cancel must reach the replica
-- running the deployment: both wake every replica (a hint; they poll too).
CREATE TRIGGER env_locks_work AFTER DELETE ON env_locks
    FOR EACH STATEMENT EXECUTE FUNCTION ferry_notify_work();
CREATE TRIGGER deployments_cancel AFTER UPDATE OF cancelled_by ON deployments
    FOR EACH STATEMENT EXECUTE FUNCTION ferry_notify_work();
