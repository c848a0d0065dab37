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

