-- Every state change, recorded once, in the transaction that made it:
-- each status queued for a deployment, each lock and unlock, each
-- teardown's end. Triggers write them, so no path that changes state can
-- forget to. Consumers (notifications, pull-request replies, protection
-- rules, metrics) read them through a cursor each (event_cursors); with
-- one writer, seq order is commit order.
CREATE TABLE events (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    at            INTEGER NOT NULL,   -- unix ms
    kind          TEXT    NOT NULL,   -- status, lock, unlock, teardown
    deployment_id INTEGER,
    repository    TEXT    NOT NULL,
    environment   TEXT    NOT NULL,
    state         TEXT,               -- a status's state; a teardown's final state
    description   TEXT    NOT NULL,
    actor         TEXT                -- a lock's holder
);

CREATE TABLE event_cursors (
    consumer    TEXT    PRIMARY KEY,
    seq         INTEGER NOT NULL DEFAULT 0,
    leased_by   TEXT,
    lease_until INTEGER
);

CREATE TRIGGER status_outbox_event AFTER INSERT ON status_outbox BEGIN
    INSERT INTO events (at, kind, deployment_id, repository, environment, state, description)
    SELECT NEW.created_at, 'status', NEW.deployment_id, d.repository, d.environment,
           NEW.state, NEW.description
      FROM deployments d WHERE d.id = NEW.deployment_id;
END;

CREATE TRIGGER env_locks_lock_event AFTER INSERT ON env_locks BEGIN
    INSERT INTO events (at, kind, repository, environment, description, actor)
    VALUES (NEW.since, 'lock', NEW.repository, NEW.environment, NEW.reason, NEW.holder);
END;

CREATE TRIGGER env_locks_unlock_event AFTER DELETE ON env_locks BEGIN
    INSERT INTO events (at, kind, repository, environment, description, actor)
    VALUES (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER), 'unlock',
            OLD.repository, OLD.environment, OLD.reason, OLD.holder);
END;

CREATE TRIGGER teardown_event AFTER UPDATE OF state ON deployments
    WHEN NEW.teardown_of IS NOT NULL
     AND OLD.state IN ('queued', 'running')
     AND NEW.state NOT IN ('queued', 'running')
BEGIN
    INSERT INTO events (at, kind, deployment_id, repository, environment, state, description)
    VALUES (COALESCE(NEW.finished_at, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
            'teardown', NEW.id, NEW.repository, NEW.environment, NEW.state, NEW.description);
END;
