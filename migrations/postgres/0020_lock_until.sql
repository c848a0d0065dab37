-- `ferry lock --for`: a lock that lifts by itself at until_at (unix ms);
-- the lock event carries it, for the `locked` notification.
ALTER TABLE env_locks ADD COLUMN until_at BIGINT;
CREATE INDEX env_locks_until ON env_locks (until_at) WHERE until_at IS NOT NULL;
ALTER TABLE events ADD COLUMN until_at BIGINT;
CREATE OR REPLACE FUNCTION ferry_lock_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO events (at, kind, repository, environment, description, actor, until_at)
        VALUES (NEW.since, 'lock', NEW.repository, NEW.environment, NEW.reason, NEW.holder,
                NEW.until_at);
    ELSE
        INSERT INTO events (at, kind, repository, environment, description, actor)
        VALUES (CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT), 'unlock',
                OLD.repository, OLD.environment, OLD.reason,
                COALESCE(OLD.unlocked_by, OLD.holder));
    END IF;
    RETURN NULL;
END $$;
