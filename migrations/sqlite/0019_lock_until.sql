-- `ferry lock --for`: a lock that lifts by itself at until_at (unix ms);
-- the lock event carries it, for the `locked` notification.
ALTER TABLE env_locks ADD COLUMN until_at INTEGER;
CREATE INDEX env_locks_until ON env_locks (until_at) WHERE until_at IS NOT NULL;
ALTER TABLE events ADD COLUMN until_at INTEGER;
DROP TRIGGER env_locks_lock_event;
CREATE TRIGGER env_locks_lock_event AFTER INSERT ON env_locks BEGIN
    INSERT INTO events (at, kind, repository, environment, description, actor, until_at)
    VALUES (NEW.since, 'lock', NEW.repository, NEW.environment, NEW.reason, NEW.holder,
            NEW.until_at);
END;
