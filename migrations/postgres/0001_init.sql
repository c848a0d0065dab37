-- Deliveries seen, so a redelivery of the same (hook, delivery) never runs
-- twice, whichever replica it reaches.
CREATE TABLE deliveries (
    hook_id       TEXT   NOT NULL,
    delivery_id   TEXT   NOT NULL,
    received_at   BIGINT NOT NULL,
    deployment_id BIGINT,
    PRIMARY KEY (hook_id, delivery_id)
);

-- One row per GitHub deployment; the primary key is GitHub's deployment id,
-- so the same deployment in two deliveries (to two replicas) is one row.
CREATE TABLE deployments (
    id              BIGINT  PRIMARY KEY,
    seq             BIGINT  GENERATED ALWAYS AS IDENTITY UNIQUE,  -- arrival order
    repository      TEXT    NOT NULL,
    environment     TEXT    NOT NULL,
    task            TEXT    NOT NULL,
    git_ref         TEXT    NOT NULL,
    sha             TEXT    NOT NULL,
    payload         TEXT    NOT NULL,         -- compact JSON
    creator         TEXT    NOT NULL,
    production      BOOLEAN NOT NULL,
    transient       BOOLEAN NOT NULL,
    installation_id BIGINT,
    state           TEXT    NOT NULL
        CHECK (state IN ('queued', 'running', 'success', 'failure', 'error', 'inactive')),
    description     TEXT    NOT NULL DEFAULT '',
    created_at      BIGINT  NOT NULL,         -- unix ms
    started_at      BIGINT,
    finished_at     BIGINT,
    -- A running deployment is leased to one replica under an attempt
    -- number: the lease (on the database's clock) says who runs it and
    -- until when; the attempt fences writes from a replica that lost it.
    attempt         INTEGER NOT NULL DEFAULT 0,
    owner           TEXT,
    lease_until     BIGINT
);
-- One running deployment per environment, across every replica: the
-- database refuses a second claim, whatever the replicas believe.
CREATE UNIQUE INDEX deployments_one_running ON deployments (repository, environment)
    WHERE state = 'running';
CREATE INDEX deployments_queued ON deployments (repository, environment, seq)
    WHERE state = 'queued';
CREATE INDEX deployments_state ON deployments (state, seq);

-- Statuses to post to GitHub, in order per deployment; rows stay as history.
CREATE TABLE status_outbox (
    seq             BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    deployment_id   BIGINT  NOT NULL REFERENCES deployments (id),
    state           TEXT    NOT NULL,
    description     TEXT    NOT NULL,
    log_url         TEXT,
    environment_url TEXT,
    auto_inactive   BOOLEAN,
    created_at      BIGINT  NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT  NOT NULL,
    sent_at         BIGINT,
    failed_at       BIGINT,
    last_error      TEXT
);
CREATE INDEX status_outbox_pending ON status_outbox (deployment_id, seq)
    WHERE sent_at IS NULL AND failed_at IS NULL;
CREATE INDEX status_outbox_pending_seq ON status_outbox (seq)
    WHERE sent_at IS NULL AND failed_at IS NULL;
CREATE INDEX status_outbox_pending_due ON status_outbox (next_attempt_at)
    WHERE sent_at IS NULL AND failed_at IS NULL;

-- Wake-ups for every replica: new deployments, a deployment's state
-- changing (an environment freed) and new statuses are announced on
-- 'ferry_work'. A hint only: replicas also poll, since a listener that
-- reconnects misses what was sent meanwhile.
CREATE FUNCTION ferry_notify_work() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ferry_work', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER deployments_work AFTER INSERT OR UPDATE OF state ON deployments
    FOR EACH STATEMENT EXECUTE FUNCTION ferry_notify_work();
CREATE TRIGGER status_outbox_work AFTER INSERT ON status_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION ferry_notify_work();

-- Deployment logs: JSON lines in chunks of whole lines, each keyed by the
-- byte offset just past it, so readers resume at an offset as in a file.
CREATE TABLE log_chunks (
    deployment_id BIGINT NOT NULL,
    end_offset    BIGINT NOT NULL,
    body          BYTEA  NOT NULL,
    created_at    BIGINT NOT NULL,  -- unix ms, for storage.log_retention
    PRIMARY KEY (deployment_id, end_offset)
);

-- Leases on jobs one replica does at a time (the outbox), on the
-- database's clock.
CREATE TABLE ferry_leases (
    name  TEXT        PRIMARY KEY,
    owner TEXT        NOT NULL,
    until TIMESTAMPTZ NOT NULL
);

-- Keys every replica shares: the one that signs log links.
CREATE TABLE ferry_keys (
    name  TEXT  PRIMARY KEY,
    value BYTEA NOT NULL
);

-- Steps running now, with what it takes to end them from elsewhere: the
-- process group on the host, and the host's boot id (a rebooted host's
-- process ids mean nothing any more).
CREATE TABLE remote_steps (
    deployment_id BIGINT NOT NULL REFERENCES deployments (id),
    host          TEXT   NOT NULL,
    pgid          BIGINT NOT NULL,
    boot_id       TEXT   NOT NULL,
    PRIMARY KEY (deployment_id, host)
);
