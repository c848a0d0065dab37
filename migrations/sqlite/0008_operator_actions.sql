-- What operators did through the command line (lock, unlock, cancel,
-- teardown), for the running ferry to write to its log (the journal, with
-- ACTOR=) once each: the command acts through the store, often as another
-- user and without a socket to the daemon.
CREATE TABLE operator_actions (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    at            INTEGER NOT NULL,   -- ms since the epoch
    actor         TEXT    NOT NULL,
    action        TEXT    NOT NULL,   -- lock, unlock, cancel, teardown
    repository    TEXT    NOT NULL,
    environment   TEXT    NOT NULL,
    deployment_id INTEGER,
    detail        TEXT    NOT NULL,   -- what it did, in words
    logged_at     INTEGER             -- when a ferry wrote it to its log
);
CREATE INDEX operator_actions_unlogged ON operator_actions (seq) WHERE logged_at IS NULL;


-- When this store began: the reconciler takes only deployments GitHub
-- created after it (an older one was another agent's, or before ferry).
-- A store from before this migration began with its first deployment.
CREATE TABLE store_info (
    created_at INTEGER NOT NULL  -- ms since the epoch
);
INSERT INTO store_info (created_at) VALUES (COALESCE(
    (SELECT MIN(created_at) FROM deployments),
    CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)));
