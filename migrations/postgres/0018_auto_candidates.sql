-- [target.auto_deploy]: each sha offered to an environment, once (the
-- unique key: a sha is deployed automatically at most once there), until
-- its deployment was created on GitHub or it was dropped or replaced.
CREATE TABLE auto_candidates (
    seq              BIGSERIAL PRIMARY KEY,
    repository       TEXT    NOT NULL,
    environment      TEXT    NOT NULL,
    sha              TEXT    NOT NULL,
    branch           TEXT,               -- a branch's head ...
    from_environment TEXT,               -- ... or a promotion from there
    from_deployment  BIGINT,
    installation_id  BIGINT,
    created_at       BIGINT NOT NULL,   -- ms since the epoch
    due_at           BIGINT NOT NULL,   -- not before (a promotion's soak)
    next_at          BIGINT NOT NULL,   -- the next look
    lease_owner      TEXT,               -- who looks at it now
    sent_at          BIGINT,            -- a creation was sent: GitHub may have it
    state            TEXT    NOT NULL DEFAULT 'waiting', -- created, dropped, replaced
    deployment_id    BIGINT,
    reason           TEXT,
    settled_at       BIGINT,
    UNIQUE (repository, environment, sha)
);
CREATE INDEX auto_candidates_due ON auto_candidates (next_at) WHERE state = 'waiting';
CREATE INDEX auto_candidates_sha ON auto_candidates (repository, sha) WHERE state = 'waiting';
CREATE INDEX auto_candidates_deployment ON auto_candidates (deployment_id);
