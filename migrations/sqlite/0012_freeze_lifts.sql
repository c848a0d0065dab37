-- `ferry unlock` during a freeze window: the freeze no longer holds that
-- environment until the window ends (`until`); the next window holds it
-- again. Rows past their `until` mean nothing and are pruned.
CREATE TABLE freeze_lifts (
    repository  TEXT    NOT NULL,
    environment TEXT    NOT NULL,
    freeze_name TEXT    NOT NULL,   -- the [[freeze]]'s name
    until       INTEGER NOT NULL,   -- the window's end, ms since the epoch
    lifted_by   TEXT    NOT NULL,
    lifted_at   INTEGER NOT NULL,
    PRIMARY KEY (repository, environment, freeze_name, until)
);
