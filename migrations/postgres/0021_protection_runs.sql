-- [protection]: GitHub Actions runs waiting at ferry's deployment
-- protection rule, once each (the callback URL is unique per run).
CREATE TABLE protection_runs (
    seq             BIGSERIAL PRIMARY KEY,
    repository      TEXT    NOT NULL,
    environment     TEXT    NOT NULL,
    run_id          BIGINT NOT NULL,
    callback_url    TEXT    NOT NULL UNIQUE,
    installation_id BIGINT,
    since           BIGINT NOT NULL,   -- ms since the epoch
    next_at         BIGINT NOT NULL,
    lease_owner     TEXT,
    reported        TEXT,               -- what GitHub was told last
    state           TEXT    NOT NULL DEFAULT 'waiting', -- approved, gone
    done_at         BIGINT
);
CREATE INDEX protection_runs_due ON protection_runs (next_at) WHERE state = 'waiting';
