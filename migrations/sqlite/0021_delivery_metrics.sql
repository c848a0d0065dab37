-- Delivery metrics (`ferry stats`, /metrics).
--
-- Each deployment that ran and ended gets its commit's time, read once
-- from GitHub by a running ferry (a look under a lease, retried while
-- GitHub is out of reach). The trigger queues the look in the
-- transaction that ends the deployment, so no path that ends one can
-- forget it.
CREATE TABLE commit_times (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id   INTEGER NOT NULL UNIQUE,
    repository      TEXT    NOT NULL,
    sha             TEXT    NOT NULL,
    installation_id INTEGER,
    committed_at    INTEGER,            -- ms since the epoch, once read
    next_at         INTEGER NOT NULL,   -- the next look
    lease_owner     TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    done_at         INTEGER
);
CREATE INDEX commit_times_due ON commit_times (next_at) WHERE done_at IS NULL;
CREATE INDEX commit_times_sha ON commit_times (repository, sha) WHERE committed_at IS NOT NULL;

CREATE TRIGGER deployment_commit_time AFTER UPDATE OF state ON deployments
    WHEN NEW.id > 0
     AND NEW.started_at IS NOT NULL
     AND OLD.state IN ('queued', 'running')
     AND NEW.state IN ('success', 'failure', 'error')
     AND NEW.task NOT IN ('deploy:lock', 'deploy:unlock')
BEGIN
    INSERT OR IGNORE INTO commit_times (deployment_id, repository, sha, installation_id, next_at)
    VALUES (NEW.id, NEW.repository, NEW.sha, NEW.installation_id,
            CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));
END;

-- Deployments that were rollbacks (`ferry rollback`, `.rollback`:
-- 'requested') or that put their hosts back themselves ('automatic').
CREATE TABLE rollbacks (
    deployment_id INTEGER PRIMARY KEY,
    kind          TEXT    NOT NULL,
    at            INTEGER NOT NULL
);

-- `ferry stats` reads the deployments that ended in its window; the
-- metrics read an environment's ends before a success (its recovery).
-- Partial: a deployment enters them when it ends, not at intake.
CREATE INDEX deployments_finished ON deployments (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX deployments_env_finished ON deployments (repository, environment, finished_at)
    WHERE finished_at IS NOT NULL;
