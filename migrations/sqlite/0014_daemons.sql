-- Each running `ferry serve` beats here every second, so that `ferry
-- deploy` can say at once that no ferry runs instead of waiting 30 s.
CREATE TABLE daemons (
    name TEXT PRIMARY KEY,
    started_at INTEGER NOT NULL,
    beat_at INTEGER NOT NULL
);
