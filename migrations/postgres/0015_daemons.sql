-- Each running `ferry serve` (each replica) beats here every second, so
-- that `ferry deploy` can say at once that no ferry runs. Times are the
-- database's clock: the command and the replicas may be on other hosts.
CREATE TABLE daemons (
    name TEXT PRIMARY KEY,
    started_at BIGINT NOT NULL,
    beat_at BIGINT NOT NULL
);
