-- Deliveries seen, so a redelivery of the same (hook, delivery) never runs twice.
CREATE TABLE deliveries (
    hook_id     TEXT    NOT NULL,
    delivery_id TEXT    NOT NULL,
    received_at INTEGER NOT NULL,
    deployment_id INTEGER,
    PRIMARY KEY (hook_id, delivery_id)
) WITHOUT ROWID;

-- One row per GitHub deployment; the primary key is GitHub's deployment id,
-- so the same deployment in two deliveries is one row.
CREATE TABLE deployments (
    id              INTEGER PRIMARY KEY,
    seq             INTEGER NOT NULL UNIQUE,  -- arrival order
    repository      TEXT    NOT NULL,
    environment     TEXT    NOT NULL,
    task            TEXT    NOT NULL,
    git_ref         TEXT    NOT NULL,
    sha             TEXT    NOT NULL,
    payload         TEXT    NOT NULL,         -- compact JSON
    creator         TEXT    NOT NULL,
    production      INTEGER NOT NULL,
    transient       INTEGER NOT NULL,
    installation_id INTEGER,
    state           TEXT    NOT NULL,         -- queued running success failure error inactive
    description     TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,         -- unix ms
    started_at      INTEGER,
    finished_at     INTEGER
);
CREATE INDEX deployments_state ON deployments (state, seq);
CREATE INDEX deployments_env ON deployments (repository, environment, state);

-- Statuses to post to GitHub, in order per deployment; rows stay as history.
CREATE TABLE status_outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id   INTEGER NOT NULL REFERENCES deployments (id),
    state           TEXT    NOT NULL,
    description     TEXT    NOT NULL,
    log_url         TEXT,
    environment_url TEXT,
    auto_inactive   INTEGER,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    sent_at         INTEGER,
    failed_at       INTEGER,
    last_error      TEXT
);
CREATE INDEX status_outbox_pending ON status_outbox (deployment_id, seq)
    WHERE sent_at IS NULL AND failed_at IS NULL;
