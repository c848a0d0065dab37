-- Delivery metrics (`ferry stats`, /metrics).
--
-- Each deployment that ran and ended gets its commit's time, read once
-- from GitHub by one replica (a look under a lease, retried while GitHub
-- is out of reach). The trigger queues the look in the transaction that
-- ends the deployment, so no path that ends one can forget it.
CREATE TABLE commit_times (
    seq             BIGSERIAL PRIMARY KEY,
    deployment_id   BIGINT NOT NULL UNIQUE,
    repository      TEXT   NOT NULL,
    sha             TEXT   NOT NULL,
    installation_id BIGINT,
    committed_at    BIGINT,            -- ms since the epoch, once read
    next_at         BIGINT NOT NULL,   -- the next look
    lease_owner     TEXT,
    attempts        BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    done_at         BIGINT
);
CREATE INDEX commit_times_due ON commit_times (next_at) WHERE done_at IS NULL;
CREATE INDEX commit_times_sha ON commit_times (repository, sha) WHERE committed_at IS NOT NULL;

CREATE FUNCTION ferry_commit_time_look() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO commit_times (deployment_id, repository, sha, installation_id, next_at)
    VALUES (NEW.id, NEW.repository, NEW.sha, NEW.installation_id,
            CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT))
    ON CONFLICT (deployment_id) DO NOTHING;
    RETURN NULL;
END $$;
CREATE TRIGGER deployment_commit_time AFTER UPDATE OF state ON deployments
    FOR EACH ROW
    WHEN (NEW.id > 0
          AND NEW.started_at IS NOT NULL
          AND OLD.state IN ('queued', 'running')
          AND NEW.state IN ('success', 'failure', 'error')
          AND NEW.task NOT IN ('deploy:lock', 'deploy:unlock'))
    EXECUTE FUNCTION ferry_commit_time_look();

-- Deployments that were rollbacks (`ferry rollback`, `.rollback`:
-- 'requested') or that put their hosts back themselves ('automatic').
CREATE TABLE rollbacks (
    deployment_id BIGINT PRIMARY KEY,
    kind          TEXT   NOT NULL,
    at            BIGINT NOT NULL
);

-- `ferry stats` reads the deployments that ended in its window; the
-- metrics read an environment's ends before a success (its recovery).
-- Partial: a deployment enters them when it ends, not at intake.
CREATE INDEX deployments_finished ON deployments (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX deployments_env_finished ON deployments (repository, environment, finished_at)
    WHERE finished_at IS NOT NULL;
