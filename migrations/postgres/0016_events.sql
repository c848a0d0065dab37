-- Every state change, recorded once, in the transaction that made it:
-- each status queued for a deployment, each lock and unlock, each
-- teardown's end. Triggers write them, so no path that changes state can
-- forget to. Consumers read them through a cursor each (event_cursors).
--
-- Replicas commit concurrently, so seq order is not commit order: an
-- event with a lower seq may commit after one with a higher. Each event
-- keeps the id of the transaction that wrote it (xid), and a consumer
-- reads only events of transactions older than every one still running
-- (pg_snapshot_xmin), in (xid, seq) order: nothing is skipped.
CREATE TABLE events (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid           BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    at            BIGINT NOT NULL,   -- unix ms
    kind          TEXT   NOT NULL,   -- status, lock, unlock, teardown
    deployment_id BIGINT,
    repository    TEXT   NOT NULL,
    environment   TEXT   NOT NULL,
    state         TEXT,              -- a status's state; a teardown's final state
    description   TEXT   NOT NULL,
    actor         TEXT               -- a lock's holder
);
CREATE INDEX events_order ON events (xid, seq);

CREATE TABLE event_cursors (
    consumer    TEXT   PRIMARY KEY,
    xid         BIGINT NOT NULL DEFAULT 0,
    seq         BIGINT NOT NULL DEFAULT 0,
    leased_by   TEXT,
    lease_until BIGINT
);

-- One insert per statement (an intake batch queues many statuses at once).
CREATE FUNCTION ferry_status_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (at, kind, deployment_id, repository, environment, state, description)
    SELECT n.created_at, 'status', n.deployment_id, d.repository, d.environment,
           n.state, n.description
      FROM new_rows n JOIN deployments d ON d.id = n.deployment_id
     ORDER BY n.seq;
    RETURN NULL;
END $$;
CREATE TRIGGER status_outbox_events AFTER INSERT ON status_outbox
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION ferry_status_events();

CREATE FUNCTION ferry_lock_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO events (at, kind, repository, environment, description, actor)
        VALUES (NEW.since, 'lock', NEW.repository, NEW.environment, NEW.reason, NEW.holder);
    ELSE
        INSERT INTO events (at, kind, repository, environment, description, actor)
        VALUES (CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT), 'unlock',
                OLD.repository, OLD.environment, OLD.reason, OLD.holder);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER env_locks_events AFTER INSERT OR DELETE ON env_locks
    FOR EACH ROW EXECUTE FUNCTION ferry_lock_events();

CREATE FUNCTION ferry_teardown_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO events (at, kind, deployment_id, repository, environment, state, description)
    VALUES (COALESCE(NEW.finished_at, CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)),
            'teardown', NEW.id, NEW.repository, NEW.environment, NEW.state, NEW.description);
    RETURN NULL;
END $$;
CREATE TRIGGER teardown_events AFTER UPDATE OF state ON deployments
    FOR EACH ROW
    WHEN (NEW.teardown_of IS NOT NULL
          AND OLD.state IN ('queued', 'running')
          AND NEW.state NOT IN ('queued', 'running'))
    EXECUTE FUNCTION ferry_teardown_events();
