-- Notifications: one row per sink per event it hears, written by the
-- notifier as it reads the event stream, with the event's position as a
-- unique key (fanned out twice, stored once). The body is the JSON sent,
-- the same on every try; `chain` is what order is kept within (one
-- deployment, or one environment's locks): only the oldest pending row
-- of a chain is sent.
CREATE TABLE notifications (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sink          TEXT    NOT NULL,
    event         TEXT    NOT NULL,   -- queued … inactive, locked, unlocked
    chain         TEXT    NOT NULL,
    deployment_id BIGINT,
    delivery      TEXT    NOT NULL,   -- X-Ferry-Delivery
    body          TEXT    NOT NULL,
    created_at    BIGINT  NOT NULL,   -- unix ms
    state         TEXT    NOT NULL DEFAULT 'pending',   -- pending, delivered, given_up
    attempts      BIGINT  NOT NULL DEFAULT 0,
    next_try_at   BIGINT  NOT NULL,
    last_error    TEXT,
    done_at       BIGINT,
    leased_by     TEXT,
    lease_until   BIGINT,
    event_xid     BIGINT  NOT NULL,
    event_seq     BIGINT  NOT NULL,
    UNIQUE (sink, event_xid, event_seq)
);
-- A claim walks a sink's pending notifications in order (notifications_due)
-- and stops at its limit; whether one is its chain's head is a probe of
-- notifications_heads. Sorting all of a sink's pending rows instead cost
-- the SQLite writer its time once a sink fell behind.
CREATE INDEX notifications_due ON notifications (sink, id) WHERE state = 'pending';
CREATE INDEX notifications_heads ON notifications (sink, chain, id) WHERE state = 'pending';
CREATE INDEX notifications_of ON notifications (deployment_id) WHERE deployment_id IS NOT NULL;
CREATE INDEX notifications_done ON notifications (done_at) WHERE state <> 'pending';

-- The Slack message each deployment has in a sink's channel, updated in
-- place by its later events.
CREATE TABLE slack_messages (
    sink          TEXT    NOT NULL,
    deployment_id BIGINT  NOT NULL,
    channel       TEXT    NOT NULL,
    ts            TEXT    NOT NULL,
    PRIMARY KEY (sink, deployment_id)
);

-- Who lifted a lock, set just before its row is deleted, so that the
-- unlock event names who unlocked (not only who had held it).
ALTER TABLE env_locks ADD COLUMN unlocked_by TEXT;
CREATE OR REPLACE FUNCTION ferry_lock_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO events (at, kind, repository, environment, description, actor)
        VALUES (NEW.since, 'lock', NEW.repository, NEW.environment, NEW.reason, NEW.holder);
    ELSE
        INSERT INTO events (at, kind, repository, environment, description, actor)
        VALUES (CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT), 'unlock',
                OLD.repository, OLD.environment, OLD.reason,
                COALESCE(OLD.unlocked_by, OLD.holder));
    END IF;
    RETURN NULL;
END $$;
